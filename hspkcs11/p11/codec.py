"""How each attribute's value travels: the one table from CKA to its C encoding.

Values inside the engine are Python values: bool, int, bytes, or a tuple of mechanism
numbers. `decode` checks the length the spec fixes for the type (Base §4.1.x tables).
"""
from __future__ import annotations

import struct
from enum import Enum, auto
from typing import Any, Callable, Iterable

from ..consts import CKA, CKA_VENDOR_DEFINED, CKR
from ..errors import P11Error


class Kind(Enum):
    BOOL = auto()
    ULONG = auto()
    BYTES = auto()
    DATE = auto()
    MECHS = auto()


_ULONG = struct.Struct("=Q")

KINDS: dict[int, Kind] = {cka: Kind.BYTES for cka in CKA}
KINDS.update({cka: Kind.BOOL for cka in (
    CKA.TOKEN, CKA.PRIVATE, CKA.TRUSTED, CKA.SENSITIVE, CKA.ENCRYPT, CKA.DECRYPT, CKA.WRAP,
    CKA.UNWRAP, CKA.SIGN, CKA.SIGN_RECOVER, CKA.VERIFY, CKA.VERIFY_RECOVER, CKA.DERIVE,
    CKA.EXTRACTABLE, CKA.LOCAL, CKA.NEVER_EXTRACTABLE, CKA.ALWAYS_SENSITIVE, CKA.MODIFIABLE,
    CKA.COPYABLE, CKA.DESTROYABLE, CKA.ALWAYS_AUTHENTICATE, CKA.WRAP_WITH_TRUSTED,
    CKA.RESET_ON_INIT, CKA.HAS_RESET)})
KINDS.update({cka: Kind.ULONG for cka in (
    CKA.CLASS, CKA.CERTIFICATE_TYPE, CKA.CERTIFICATE_CATEGORY, CKA.JAVA_MIDP_SECURITY_DOMAIN,
    CKA.NAME_HASH_ALGORITHM, CKA.KEY_TYPE, CKA.MODULUS_BITS, CKA.PRIME_BITS, CKA.SUBPRIME_BITS,
    CKA.VALUE_BITS, CKA.VALUE_LEN, CKA.KEY_GEN_MECHANISM, CKA.HW_FEATURE_TYPE)})
KINDS.update({CKA.START_DATE: Kind.DATE, CKA.END_DATE: Kind.DATE, CKA.ALLOWED_MECHANISMS: Kind.MECHS})
# Attribute arrays (CKA_WRAP_TEMPLATE...) are not supported: they are absent from KINDS.
for _cka in (CKA.WRAP_TEMPLATE, CKA.UNWRAP_TEMPLATE, CKA.DERIVE_TEMPLATE):
    del KINDS[_cka]


def known(cka: int) -> bool:
    return cka in KINDS


def _decode_bool(cka: int, raw: bytes) -> bool:
    if len(raw) != 1:
        raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"{_name(cka)}: CK_BBOOL must be 1 byte")
    return raw != b"\x00"


def _decode_ulong(cka: int, raw: bytes) -> int:
    if len(raw) != _ULONG.size:
        raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"{_name(cka)}: CK_ULONG must be 8 bytes")
    return _ULONG.unpack(raw)[0]


def _decode_bytes(cka: int, raw: bytes) -> bytes:
    return raw


def _decode_date(cka: int, raw: bytes) -> bytes:
    if len(raw) not in (0, 8) or (raw and not raw.isdigit()):
        raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"{_name(cka)}: CK_DATE is YYYYMMDD or empty")
    return raw


def _decode_mechs(cka: int, raw: bytes) -> tuple[int, ...]:
    if len(raw) % _ULONG.size:
        raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"{_name(cka)}: not a CK_MECHANISM_TYPE array")
    return tuple(v for (v,) in _ULONG.iter_unpack(raw))


def _encode_bool(value: Any) -> bytes:
    return b"\x01" if value else b"\x00"


def _encode_mechs(value: Any) -> bytes:
    return b"".join(_ULONG.pack(m) for m in value)


_DECODE_KIND = {Kind.BOOL: _decode_bool, Kind.ULONG: _decode_ulong, Kind.BYTES: _decode_bytes,
                Kind.DATE: _decode_date, Kind.MECHS: _decode_mechs}
_ENCODE_KIND = {Kind.BOOL: _encode_bool, Kind.ULONG: _ULONG.pack, Kind.BYTES: bytes,
                Kind.DATE: bytes, Kind.MECHS: _encode_mechs}
# Per attribute type, keyed by plain int: each call is one dict lookup and one call
# (comparing Kind members costs an Enum attribute lookup each on Python 3.11).
_DECODERS: dict[int, Callable[[int, bytes], Any]] = {int(c): _DECODE_KIND[k] for c, k in KINDS.items()}
ENCODERS: dict[int, Callable[[Any], bytes]] = {int(c): _ENCODE_KIND[k] for c, k in KINDS.items()}


def decode(cka: int, raw: bytes) -> Any:
    """C bytes -> Python value; CKR_ATTRIBUTE_TYPE_INVALID / _VALUE_INVALID on bad input."""
    fn = _DECODERS.get(cka)
    if fn is None:
        why = "vendor-defined" if cka >= CKA_VENDOR_DEFINED else "unknown or unsupported"
        raise P11Error(CKR.ATTRIBUTE_TYPE_INVALID, f"attribute 0x{cka:x} is {why}")
    return fn(cka, raw)


def encode(cka: int, value: Any) -> bytes:
    return ENCODERS[cka](value)


def pack_attrs(attrs: Iterable[tuple[int, Any]]) -> bytes:
    """A compact record of attributes for the store: (type, length, C encoding)*."""
    out = bytearray()
    for cka, value in attrs:
        raw = encode(cka, value)
        out += struct.pack("=QI", cka, len(raw)) + raw
    return bytes(out)


def unpack_attrs(blob: bytes) -> dict[int, Any]:
    attrs: dict[int, Any] = {}
    pos = 0
    while pos < len(blob):
        cka, n = struct.unpack_from("=QI", blob, pos)
        pos += 12
        attrs[cka] = decode(cka, blob[pos:pos + n])
        pos += n
    return attrs


def _name(cka: int) -> str:
    try:
        return "CKA_" + CKA(cka).name
    except ValueError:
        return f"0x{cka:x}"
