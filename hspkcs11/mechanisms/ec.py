"""Elliptic-curve keys over prime fields (PKCS#11 v2.40 Current Mechanisms §2.3): the CKK_EC
key type, CKM_EC_KEY_PAIR_GEN, CKM_ECDSA (+ ECDSA_SHA1..SHA512) and CKM_ECDH1_DERIVE.

Also home of the small helpers the other asymmetric families (rsa, eddsa, dh) share, as
generic.py is for secret keys: DER encoding of CKA_EC_PARAMS / CKA_EC_POINT, attribute
decoding, and sign/verify ops built from one function.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from cryptography.exceptions import InternalError, InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from ..consts import CKA, CKD, CKK, CKM, CKO, CKR, MechFlag
from ..errors import P11Error
from .digest import DIGESTS
from .params import Ecdh1Params, Param, ParamKind
from .registry import (KEY_TYPES, Attr, AttrFlag, Attrs, KeyTypeSpec, KeyView, Mechanism,
                       SignOp, Template, VerifyOp, register, register_key_type, require_param)

# --- helpers shared by the asymmetric families -----------------------------------------------

Getter = Callable[[int], Any]


def need(get: Getter, cka: int) -> Any:
    """A required attribute of a key being built: missing -> CKR_TEMPLATE_INCOMPLETE."""
    value = get(cka)
    if value is None:
        raise P11Error(CKR.TEMPLATE_INCOMPLETE, f"{CKA(cka).name} is required")
    return value


def big(value: bytes) -> int:
    """A PKCS#11 "Big integer": big-endian bytes."""
    return int.from_bytes(value, "big")


def big_bytes(n: int, length: int = 0) -> bytes:
    """An int as a PKCS#11 big integer: minimal big-endian bytes, or padded to `length`."""
    return n.to_bytes(max(length, (n.bit_length() + 7) // 8, 1), "big")


@contextmanager
def invalid_as(rv: CKR, why: str) -> Iterator[None]:
    """`cryptography` says ValueError for a bad key or point (InternalError for some domain
    parameters OpenSSL refuses): report it as `rv`."""
    try:
        yield
    except (ValueError, InternalError) as exc:
        raise P11Error(rv, f"{why}: {exc}") from None


def private_of(key: KeyView, cls: type | tuple[type, ...]) -> Any:
    """The `cryptography` private key of `key`: a public key here -> KEY_TYPE_INCONSISTENT."""
    obj = key.crypto()
    if not isinstance(obj, cls):
        raise P11Error(CKR.KEY_TYPE_INCONSISTENT, "this operation needs a private key")
    return obj


def public_of(key: KeyView, cls: type | tuple[type, ...]) -> Any:
    obj = key.crypto()
    if not isinstance(obj, cls):
        raise P11Error(CKR.KEY_TYPE_INCONSISTENT, "this operation needs a public key")
    return obj


# Minimal DER (X.690): the TLVs PKCS#11 attributes carry (OID, OCTET STRING, PrintableString).
OID, OCTET_STRING, PRINTABLE_STRING, SEQUENCE = 0x06, 0x04, 0x13, 0x30


def der_tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes((tag, n)) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + value


def der_value(tag: int, data: bytes) -> bytes | None:
    """The value of the one TLV with `tag` that fills `data` exactly, else None."""
    if len(data) < 2 or data[0] != tag:
        return None
    n, start = data[1], 2
    if n & 0x80:
        width = n & 0x7F
        if not 1 <= width <= 4 or len(data) < 2 + width:
            return None
        n, start = int.from_bytes(data[2:2 + width], "big"), 2 + width
    return data[start:] if len(data) - start == n else None


def der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in (40 * arcs[0] + arcs[1], *arcs[2:]):
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return der_tlv(OID, bytes(body))


def raw_point(value: bytes, lengths: tuple[int, ...]) -> bytes:
    """A point as given in CKA_EC_POINT or ECDH public data: the DER OCTET STRING that
    SoftHSM2 and pkcs11-tool use, or the bare encoding. The two never collide: a wrapped
    point is 2 or 3 bytes longer than every bare length of its curve."""
    if len(value) in lengths:
        return bytes(value)
    inner = der_value(OCTET_STRING, bytes(value))
    if inner is None or len(inner) not in lengths:
        raise ValueError(f"{len(value)}-byte point: neither bare nor a DER OCTET STRING")
    return inner


# --- sign/verify ops from one function -------------------------------------------------------

class RawDigest(hashes.HashAlgorithm):
    """A "hash" of the caller's own length, for `Prehashed`: the raw ECDSA and DSA mechanisms
    sign the bytes they are given, and OpenSSL truncates them to the bit length of the group
    order as X9.62 §7.3 and FIPS 186-4 §4.6 say (PKCS#11 §2.3.1: "any" input length)."""

    name = "raw"
    block_size = None

    def __init__(self, size: int) -> None:
        self._size = size

    @property
    def digest_size(self) -> int:  # type: ignore[override]
        return self._size


class Message:
    """The input of one sign/verify: hashed as it comes (hash-then-sign mechanisms) or
    collected whole (the raw single-part ones)."""

    def __init__(self, hash_cls: type[hashes.HashAlgorithm] | None) -> None:
        self._alg = hash_cls() if hash_cls else None
        self._hash = hashes.Hash(self._alg) if self._alg else None
        self._data = bytearray()

    def update(self, data: bytes) -> None:
        if self._hash:
            self._hash.update(data)
        else:
            self._data += data

    def final(self) -> tuple[bytes, hashes.HashAlgorithm]:
        """(the hash and its algorithm) or (the raw data and a RawDigest of its length)."""
        if self._hash:
            return self._hash.finalize(), self._alg  # type: ignore[return-value]
        return bytes(self._data), RawDigest(len(self._data))


SignFn = Callable[[bytes, hashes.HashAlgorithm], bytes]
VerifyFn = Callable[[bytes, hashes.HashAlgorithm, bytes], None]


class FnSign(SignOp):
    """Sign with `fn(data or hash, algorithm)`; multi-part only when hashing here."""

    def __init__(self, hash_cls: type[hashes.HashAlgorithm] | None, fn: SignFn) -> None:
        self._msg, self._fn = Message(hash_cls), fn
        self.multipart = hash_cls is not None

    def update(self, data: bytes) -> None:
        self._msg.update(data)

    def final(self) -> bytes:
        return self._fn(*self._msg.final())


class FnVerify(VerifyOp):
    """Verify with `fn(data or hash, algorithm, signature)`, which raises P11Error."""

    def __init__(self, hash_cls: type[hashes.HashAlgorithm] | None, fn: VerifyFn) -> None:
        self._msg, self._fn = Message(hash_cls), fn
        self.multipart = hash_cls is not None

    def update(self, data: bytes) -> None:
        self._msg.update(data)

    def final(self, signature: bytes) -> None:
        self._fn(*self._msg.final(), bytes(signature))


def dss_sign(private: Any, n_len: int, scheme: Callable[[Any], Any]) -> SignFn:
    """ECDSA/DSA: `cryptography` gives DER; PKCS#11 wants r || s, each n_len bytes (§2.3.1)."""
    def sign(data: bytes, alg: hashes.HashAlgorithm) -> bytes:
        r, s = utils.decode_dss_signature(private.sign(data, scheme(utils.Prehashed(alg))))
        return r.to_bytes(n_len, "big") + s.to_bytes(n_len, "big")
    return sign


def dss_verify(public: Any, n_len: int, scheme: Callable[[Any], Any],
               allow_short: bool) -> VerifyFn:
    """The reverse of `dss_sign`. PKCS#11 §2.3.1 lets an EC signature to verify be shorter
    than 2*nLen (r and s of equal length); DSA (§2.2) wants exactly 2*qLen."""
    def verify(data: bytes, alg: hashes.HashAlgorithm, signature: bytes) -> None:
        n = len(signature)
        if n != 2 * n_len and not (allow_short and 0 < n < 2 * n_len and n % 2 == 0):
            raise P11Error(CKR.SIGNATURE_LEN_RANGE, f"{n}-byte signature, want {2 * n_len}")
        der = utils.encode_dss_signature(big(signature[:n // 2]), big(signature[n // 2:]))
        try:
            public.verify(der, data, scheme(utils.Prehashed(alg)))
        except InvalidSignature:
            raise P11Error(CKR.SIGNATURE_INVALID) from None
    return verify


def derive_length(template: Template, default: int) -> int:
    """Bytes a KDF must produce for the key being derived: CKA_VALUE_LEN, else the fixed
    length of its key type, else `default` (the p11 layer cuts to VALUE_LEN anyway)."""
    n = template.get(CKA.VALUE_LEN)
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        return n
    spec = KEY_TYPES.get(template.get(CKA.KEY_TYPE, -1))
    return spec.value_len if spec is not None and spec.value_len else default


# --- the CKK_EC key type ---------------------------------------------------------------------

# Named prime-field curves `cryptography` offers, keyed by the DER OID that CKA_EC_PARAMS holds
# (PKCS#11 §2.3.3: ecParameters CHOICE, namedCurve). Explicit parameters are not supported.
_OIDS = ec.EllipticCurveOID
CURVES: dict[bytes, type[ec.EllipticCurve]] = {
    der_oid(oid.dotted_string): cls for oid, cls in (
        (_OIDS.SECP192R1, ec.SECP192R1), (_OIDS.SECP224R1, ec.SECP224R1),
        (_OIDS.SECP256R1, ec.SECP256R1), (_OIDS.SECP384R1, ec.SECP384R1),
        (_OIDS.SECP521R1, ec.SECP521R1), (_OIDS.SECP256K1, ec.SECP256K1),
        (_OIDS.BRAINPOOLP256R1, ec.BrainpoolP256R1), (_OIDS.BRAINPOOLP384R1, ec.BrainpoolP384R1),
        (_OIDS.BRAINPOOLP512R1, ec.BrainpoolP512R1))}
CURVE_PARAMS: dict[str, bytes] = {cls.name: der for der, cls in CURVES.items()}
EC_MIN_BITS = min(cls.key_size for cls in CURVES.values())
EC_MAX_BITS = max(cls.key_size for cls in CURVES.values())
EC_FLAGS = MechFlag.EC_F_P | MechFlag.EC_NAMEDCURVE | MechFlag.EC_UNCOMPRESS


def curve_of(params: bytes | None) -> ec.EllipticCurve:
    """The curve CKA_EC_PARAMS names. A well-formed choice we lack (another OID, explicit
    parameters, a curve name) -> CKR_CURVE_NOT_SUPPORTED; anything else is not a value."""
    if params is None:
        raise P11Error(CKR.TEMPLATE_INCOMPLETE, "CKA_EC_PARAMS is required")
    cls = CURVES.get(bytes(params))
    if cls is None:
        known_form = params[:1] in (bytes((OID,)), bytes((SEQUENCE,)), bytes((PRINTABLE_STRING,)))
        raise P11Error(CKR.CURVE_NOT_SUPPORTED if known_form else CKR.ATTRIBUTE_VALUE_INVALID,
                       f"EC_PARAMS {bytes(params).hex()}")
    return cls()


def field_len(curve: ec.EllipticCurve) -> int:
    """Bytes of a coordinate, and of the order n for these curves (nLen of §2.3.1)."""
    return (curve.key_size + 7) // 8


def point_lengths(curve: ec.EllipticCurve) -> tuple[int, int]:
    """Uncompressed (04 || x || y) and compressed (02/03 || x) point lengths (SEC 1 §2.3.3)."""
    return 1 + 2 * field_len(curve), 1 + field_len(curve)


def _to_crypto(klass: int, get: Getter) -> Any:
    curve = curve_of(get(CKA.EC_PARAMS))
    if klass == CKO.PRIVATE_KEY:
        with invalid_as(CKR.ATTRIBUTE_VALUE_INVALID, "EC private value"):
            return ec.derive_private_key(big(need(get, CKA.VALUE)), curve)
    with invalid_as(CKR.ATTRIBUTE_VALUE_INVALID, "CKA_EC_POINT"):
        point = raw_point(need(get, CKA.EC_POINT), point_lengths(curve))
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)


def _from_public(key: ec.EllipticCurvePublicKey) -> Attrs:
    point = key.public_bytes(serialization.Encoding.X962,
                             serialization.PublicFormat.UncompressedPoint)
    return {CKA.EC_PARAMS: CURVE_PARAMS[key.curve.name], CKA.EC_POINT: der_tlv(OCTET_STRING, point)}


def _from_private(key: ec.EllipticCurvePrivateKey) -> tuple[Attrs, Attrs]:
    value = big_bytes(key.private_numbers().private_value, field_len(key.curve))
    return _from_public(key.public_key()), {CKA.EC_PARAMS: CURVE_PARAMS[key.curve.name],
                                            CKA.VALUE: value}


def to_pkcs8(key: Any) -> bytes:
    """PrivateKeyInfo DER (RFC 5208), the wrap encoding of private keys; any key type."""
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _size(key: KeyView) -> int:
    return key.crypto().curve.key_size


# Table "Elliptic Curve public/private key object attributes" (§2.3.3, §2.3.4).
_F = AttrFlag
SECRET = _F.REQUIRED_CREATE | _F.FORBID_GENERATE | _F.FORBID_UNWRAP | _F.SENSITIVE | _F.SEALED
EC_ATTRS = {
    CKO.PUBLIC_KEY: {CKA.EC_PARAMS: Attr(_F.REQUIRED_CREATE | _F.REQUIRED_GENERATE),
                     CKA.EC_POINT: Attr(_F.REQUIRED_CREATE | _F.FORBID_GENERATE)},
    CKO.PRIVATE_KEY: {CKA.EC_PARAMS: Attr(_F.REQUIRED_CREATE | _F.FORBID_GENERATE
                                          | _F.FORBID_UNWRAP),
                      CKA.VALUE: Attr(SECRET)},
}

register_key_type(KeyTypeSpec(CKK.EC, EC_ATTRS, size=_size, to_crypto=_to_crypto,
                              from_private=_from_private, from_public=_from_public,
                              to_pkcs8=to_pkcs8))


# --- mechanisms ------------------------------------------------------------------------------

def _generate_pair(pub_t: Template, priv_t: Template, param: Param) -> tuple[Attrs, Attrs]:
    key = ec.generate_private_key(curve_of(pub_t.get(CKA.EC_PARAMS)))
    pub, priv = _from_private(key)
    pub[CKA.KEY_TYPE] = priv[CKA.KEY_TYPE] = CKK.EC
    return pub, priv


def _signer(hash_cls: type[hashes.HashAlgorithm] | None):
    def sign(key: KeyView, param: Param) -> SignOp:
        private = private_of(key, ec.EllipticCurvePrivateKey)
        return FnSign(hash_cls, dss_sign(private, field_len(private.curve), ec.ECDSA))
    return sign


def _verifier(hash_cls: type[hashes.HashAlgorithm] | None):
    def verify(key: KeyView, param: Param) -> VerifyOp:
        public = public_of(key, ec.EllipticCurvePublicKey)
        return FnVerify(hash_cls, dss_verify(public, field_len(public.curve), ec.ECDSA,
                                             allow_short=True))
    return verify


# ECDH1 KDFs (§2.3.8, CK_EC_KDF_TYPE): ANSI X9.63 KDF with the named hash.
KDF_HASHES = {CKD.SHA1_KDF: DIGESTS[CKM.SHA_1], CKD.SHA224_KDF: DIGESTS[CKM.SHA224],
              CKD.SHA256_KDF: DIGESTS[CKM.SHA256], CKD.SHA384_KDF: DIGESTS[CKM.SHA384],
              CKD.SHA512_KDF: DIGESTS[CKM.SHA512]}


def _ecdh_derive(key: KeyView, param: Param, template: Template) -> bytes:
    """ECDH1 (§2.3.8): Z = x coordinate of d * Q, then the KDF (CKD_NULL: Z itself)."""
    p = require_param(param, Ecdh1Params)
    private = private_of(key, ec.EllipticCurvePrivateKey)
    with invalid_as(CKR.MECHANISM_PARAM_INVALID, "ECDH public data"):
        point = raw_point(p.public_data, point_lengths(private.curve))
        peer = ec.EllipticCurvePublicKey.from_encoded_point(private.curve, point)
        z = private.exchange(ec.ECDH(), peer)
    if p.kdf == CKD.NULL:
        if p.shared_data:  # §2.3.8: with CKD_NULL pSharedData must be NULL
            raise P11Error(CKR.MECHANISM_PARAM_INVALID, "shared data with CKD_NULL")
        return z
    hash_cls = KDF_HASHES.get(p.kdf)
    if hash_cls is None:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"KDF 0x{p.kdf:x}")
    return X963KDF(hash_cls(), derive_length(template, len(z)), p.shared_data or None).derive(z)


def _ec_mech(mech: int, **kw: Any) -> Mechanism:
    return Mechanism(mech, key_types=(CKK.EC,), min_key=EC_MIN_BITS, max_key=EC_MAX_BITS,
                     extra_flags=EC_FLAGS, **kw)


ECDSA_HASHES = {CKM.ECDSA: None, CKM.ECDSA_SHA1: DIGESTS[CKM.SHA_1],
                CKM.ECDSA_SHA224: DIGESTS[CKM.SHA224], CKM.ECDSA_SHA256: DIGESTS[CKM.SHA256],
                CKM.ECDSA_SHA384: DIGESTS[CKM.SHA384], CKM.ECDSA_SHA512: DIGESTS[CKM.SHA512]}

register(_ec_mech(CKM.EC_KEY_PAIR_GEN, generate_pair=_generate_pair),
         _ec_mech(CKM.ECDH1_DERIVE, param=ParamKind.ECDH1, derive=_ecdh_derive),
         *(_ec_mech(m, sign=_signer(h), verify=_verifier(h)) for m, h in ECDSA_HASHES.items()))
