"""Objects as the engine holds them, and their path to and from a unit's store.

Public attributes live in `attrs`; secret ones (schema flag SEALED) are sealed under the
master key before the store sees them and unsealed lazily, once, when a key is used.
The `cryptography` key object is built once per object and kept (DESIGN "Cost per call").
"""
from __future__ import annotations

import os
from typing import Any, Protocol

from ..consts import CKA, CKR
from ..errors import P11Error
from ..hsm.store import ObjectRow
from ..hsm.unit import UID_LEN
from ..mechanisms.registry import KEY_TYPES
from . import codec, schema

SESSION_HANDLE_BASE = 0x40000000   # session objects; token objects use the store's handles


class Sealer(Protocol):
    """Who seals secret attributes under the master key (the region's units)."""

    def seal(self, uid: bytes, payload: bytes) -> tuple[bytes, str]: ...

    def unseal(self, uid: bytes, blob: bytes) -> bytes: ...


class P11Object:
    """A token or session object. Implements the mechanisms' KeyView protocol."""

    __slots__ = ("handle", "serial", "session", "_uid", "attrs", "_sealed", "_secrets", "_crypto",
                 "_unit", "mkvp")

    def __init__(self, handle: int, serial: str, attrs: dict[int, Any], *, session: int | None = None,
                 uid: bytes | None = None, secrets: dict[int, Any] | None = None,
                 sealed: bytes | None = None, unit: Sealer | None = None, mkvp: str | None = None):
        self.handle, self.serial, self.session = handle, serial, session
        self._uid = uid   # drawn on first use: a session key that is never sealed needs none
        self.attrs = attrs
        self._secrets = secrets
        self._sealed, self._unit, self.mkvp = sealed, unit, mkvp
        self._crypto: Any = None

    @property
    def uid(self) -> bytes:
        """The object's identity in the sealed blob's associated data (docs/store-format.md)."""
        if self._uid is None:
            self._uid = os.urandom(UID_LEN)
        return self._uid

    # ---- KeyView -----------------------------------------------------------------------
    @property
    def klass(self) -> int:
        return self.attrs[CKA.CLASS]

    @property
    def key_type(self) -> int:
        return self.attrs.get(CKA.KEY_TYPE, -1)

    @property
    def is_token(self) -> bool:
        return self.session is None

    @property
    def private(self) -> bool:
        return bool(self.attrs.get(CKA.PRIVATE))

    def secrets(self) -> dict[int, Any]:
        if self._secrets is None:
            if self._sealed is None or self._unit is None:
                self._secrets = {}
            else:
                self._secrets = codec.unpack_attrs(self._unit.unseal(self.uid, self._sealed))
        return self._secrets

    def attr(self, cka: int, default: Any = None) -> Any:
        if cka in self.attrs:
            return self.attrs[cka]
        if self._secrets is not None and cka in self._secrets:   # unsealed already
            return self._secrets[cka]
        if schema.is_sealed(self.attrs, cka):
            return self.secrets().get(cka, default)
        return default

    def sealed_size(self) -> int:
        return len(self._sealed or b"")

    def secret(self) -> bytes:
        value = self.attr(CKA.VALUE)
        if value is None:
            raise P11Error(CKR.KEY_TYPE_INCONSISTENT, "the key has no CKA_VALUE")
        return value

    def crypto(self) -> Any:
        if self._crypto is None:
            spec = KEY_TYPES[self.key_type]
            if spec.to_crypto is None:
                raise P11Error(CKR.KEY_TYPE_INCONSISTENT, "not an asymmetric key")
            self._crypto = spec.to_crypto(self.klass, self.attr)
        return self._crypto

    def all_attrs(self) -> dict[int, Any]:
        return {**self.attrs, **self.secrets()}

    def replace_attrs(self, attrs: dict[int, Any]) -> None:
        """New attribute values (set/copy): split public from secret, drop caches."""
        self.attrs, self._secrets = split(attrs)
        self._sealed, self._crypto = None, None


def split(attrs: dict[int, Any]) -> tuple[dict[int, Any], dict[int, Any]]:
    """(public, secret) attributes. A class has few sealed types and a key many public
    ones, so the secret ones are picked out of a copy (cheaper than sorting each one)."""
    sealed = schema.compiled(attrs[CKA.CLASS], attrs.get(CKA.KEY_TYPE)).sealed
    public = dict(attrs)
    secret = {cka: public.pop(cka) for cka in sealed if cka in public}
    return public, secret


# ---- store rows ------------------------------------------------------------------------

def to_row(obj: P11Object, unit: Sealer) -> ObjectRow:
    """Seal the secrets and produce the store row (the store never sees a key byte)."""
    secrets = obj.secrets()
    sealed, mkvp = (None, None)
    if secrets:
        sealed, mkvp = unit.seal(obj.uid, codec.pack_attrs(sorted(secrets.items())))
    obj._sealed, obj._unit, obj.mkvp = sealed, unit, mkvp
    a = obj.attrs
    return ObjectRow(obj.handle, obj.serial, obj.uid, a[CKA.CLASS], a.get(CKA.KEY_TYPE),
                     bool(a.get(CKA.PRIVATE)), a.get(CKA.LABEL), a.get(CKA.ID),
                     codec.pack_attrs(sorted(a.items())), sealed, mkvp)


def from_row(row: ObjectRow, unit: Sealer) -> P11Object:
    return P11Object(row.handle, row.serial, codec.unpack_attrs(row.attrs), uid=row.uid,
                     sealed=row.sealed, unit=unit, mkvp=row.mkvp)


def matches(obj: P11Object, template: dict[int, Any]) -> bool:
    """C_FindObjects matching. Sealed attributes never match: no oracle on key bytes."""
    attrs = obj.attrs
    for cka, value in template.items():
        if attrs.get(cka, _MISSING) != value:
            return False
    return True


_MISSING = object()
