"""A minimal `KeyView` of a secret key, for the AES key-wrap mechanism tests."""
from __future__ import annotations

from typing import Any

from hspkcs11.consts import CKA, CKK, CKO


class FakeAesKey:
    """A secret key as a mechanism sees it (see mechanisms.registry.KeyView)."""

    def __init__(self, value: bytes, key_type: int = CKK.AES) -> None:
        self.klass = CKO.SECRET_KEY
        self.key_type = key_type
        self._attrs = {CKA.CLASS: CKO.SECRET_KEY, CKA.KEY_TYPE: key_type, CKA.VALUE: value,
                       CKA.VALUE_LEN: len(value)}

    def attr(self, cka: int, default: Any = None) -> Any:
        return self._attrs.get(cka, default)

    def secret(self) -> bytes:
        return self._attrs[CKA.VALUE]

    def crypto(self) -> Any:
        raise AssertionError("a secret key has no cryptography key object here")
