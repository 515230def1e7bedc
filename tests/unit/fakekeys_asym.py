"""A minimal `KeyView` for the asymmetric families (rsa, ec, eddsa, dh), built through the key
type's own `to_crypto` / `from_private`, so that every test also runs the attribute codecs,
and small drivers that stand in for the token layer."""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from hspkcs11.consts import CKA, CKO, CKR
from hspkcs11.errors import P11Error
from hspkcs11.mechanisms import KEY_TYPES, MECHANISMS


class FakeKey:
    """A public or private key object as a mechanism sees it (see registry.KeyView)."""

    def __init__(self, klass: int, key_type: int, attrs: dict[int, Any]) -> None:
        self.klass, self.key_type = klass, key_type
        self.attrs = {k: v for k, v in attrs.items() if k != CKA.KEY_TYPE}
        self._crypto: Any = None

    def attr(self, cka: int, default: Any = None) -> Any:
        return self.attrs.get(cka, default)

    def secret(self) -> bytes:
        raise AssertionError("an asymmetric mechanism asked for a secret value")

    def crypto(self) -> Any:
        if self._crypto is None:
            self._crypto = KEY_TYPES[self.key_type].to_crypto(self.klass, self.attrs.get)
        return self._crypto


def pair_from_crypto(private_key: Any, key_type: int) -> tuple[FakeKey, FakeKey]:
    """(public, private) FakeKeys holding the attributes `from_private` gives a key."""
    pub, priv = KEY_TYPES[key_type].from_private(private_key)
    return FakeKey(CKO.PUBLIC_KEY, key_type, pub), FakeKey(CKO.PRIVATE_KEY, key_type, priv)


def generate(mech: int, pub_t: dict, priv_t: dict | None = None) -> tuple[FakeKey, FakeKey]:
    pub, priv = MECHANISMS[mech].generate_pair(pub_t, priv_t or {}, None)
    key_type = pub[CKA.KEY_TYPE]
    assert priv[CKA.KEY_TYPE] == key_type
    return FakeKey(CKO.PUBLIC_KEY, key_type, pub), FakeKey(CKO.PRIVATE_KEY, key_type, priv)


def check_size(mech: int, key: FakeKey) -> None:
    """What the token layer does at operation init: the key size against the mechanism info."""
    m = MECHANISMS[mech]
    assert key.key_type in m.key_types
    size = KEY_TYPES[key.key_type].size(key)
    if not m.min_key <= size <= m.max_key:
        raise P11Error(CKR.KEY_SIZE_RANGE, f"{size}")


def chunks(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.choice((0, 1, 5, 16, 63, 100))
        out.append(data[i:i + n])
        i += n
    return out


def sign(mech: int, key: FakeKey, data: bytes, param: Any = None,
         rng: random.Random | None = None) -> bytes:
    """C_Sign, or C_SignUpdate in random pieces + C_SignFinal when `rng` is given."""
    check_size(mech, key)
    op = MECHANISMS[mech].sign(key, param)
    if rng is None:
        return op.oneshot(data)
    assert op.multipart
    for piece in chunks(data, rng):
        op.update(piece)
    return op.final()


def verify(mech: int, key: FakeKey, data: bytes, signature: bytes, param: Any = None,
           rng: random.Random | None = None) -> None:
    check_size(mech, key)
    op = MECHANISMS[mech].verify(key, param)
    if rng is None:
        op.oneshot(data, signature)
        return
    assert op.multipart
    for piece in chunks(data, rng):
        op.update(piece)
    op.final(signature)


def encrypt(mech: int, key: FakeKey, data: bytes, param: Any = None) -> bytes:
    check_size(mech, key)
    return MECHANISMS[mech].encrypt(key, param).oneshot(data)


def decrypt(mech: int, key: FakeKey, data: bytes, param: Any = None) -> bytes:
    check_size(mech, key)
    return MECHANISMS[mech].decrypt(key, param).oneshot(data)


@contextmanager
def raises_rv(rv: int) -> Iterator[Any]:
    """pytest.raises for a P11Error carrying exactly `rv`."""
    with pytest.raises(P11Error) as info:
        yield info
    assert info.value.rv == rv, f"expected {CKR(rv).name}, got {info.value.rv.name}"


def flip(data: bytes, index: int = -1) -> bytes:
    """`data` with one bit of byte `index` flipped."""
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)
