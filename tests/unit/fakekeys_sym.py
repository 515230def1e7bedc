"""A minimal `KeyView` for unit tests of the symmetric families, and small helpers."""
from __future__ import annotations

import json
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from hspkcs11.consts import CKA, CKO, CKR
from hspkcs11.errors import P11Error

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "sym"


class FakeSecretKey:
    """A secret key object as a mechanism sees it (see registry.KeyView)."""

    def __init__(self, value: bytes, key_type: int, **attrs: Any) -> None:
        self.klass = CKO.SECRET_KEY
        self.key_type = key_type
        self._value = value
        self._attrs = {CKA.VALUE: value, CKA.KEY_TYPE: key_type, **attrs}

    def attr(self, cka: int, default: Any = None) -> Any:
        return self._attrs.get(cka, default)

    def secret(self) -> bytes:
        return self._value

    def crypto(self) -> Any:
        raise AssertionError("a secret-key mechanism asked for a cryptography key object")


def load(name: str) -> Any:
    """A JSON vector file of tests/vectors/sym/, hex strings left as they are."""
    return json.loads((VECTORS / name).read_text())


def h(text: str) -> bytes:
    """Hex (spaces allowed) -> bytes."""
    return bytes.fromhex(text.replace(" ", ""))


def chunks(data: bytes, rng: random.Random) -> list[bytes]:
    """`data` cut at random places, with some empty pieces mixed in."""
    out, i = [], 0
    while i < len(data):
        n = rng.choice((0, 1, 3, 7, 15, 16, 17, 31, 33, 64))
        out.append(data[i:i + n])
        i += n
    out.insert(rng.randrange(len(out) + 1), b"")
    return out


def run_cipher(op: Any, data: bytes, rng: random.Random | None = None) -> bytes:
    """Drive a CipherOp multi-part with random chunking (or single-part if rng is None)."""
    if rng is None:
        return op.oneshot(data)
    return b"".join(op.update(piece) for piece in chunks(data, rng)) + op.final()


@contextmanager
def raises_rv(rv: int) -> Iterator[Any]:
    """pytest.raises for a P11Error carrying exactly `rv`."""
    with pytest.raises(P11Error) as info:
        yield info
    assert info.value.rv == rv, f"expected {CKR(rv).name}, got {info.value.rv.name}"
