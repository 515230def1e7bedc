"""Edwards-curve keys (PKCS#11 v3.0 §2.3.5-2.3.14, which SoftHSM2 2.6 also offers on top of
v2.40): the CKK_EC_EDWARDS key type, CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA (RFC 8032).

CKA_EC_PARAMS names the curve by OID (RFC 8410: 1.3.101.112 Ed25519, 1.3.101.113 Ed448) or
by PrintableString ("edwards25519", "edwards448"); both are accepted. CKA_EC_POINT is the
encoded public key (32 or 57 bytes) in a DER OCTET STRING, as SoftHSM2 stores it; the bare
key is accepted too. CKA_VALUE of the private key is the RFC 8032 secret (32 or 57 bytes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

from ..consts import CKA, CKK, CKM, CKO, CKR
from ..errors import P11Error
from .ec import (EC_ATTRS, OCTET_STRING, PRINTABLE_STRING, FnSign, FnVerify, Getter, der_oid,
                 der_tlv, der_value, invalid_as, need, private_of, public_of, raw_point,
                 to_pkcs8)
from .params import EddsaParams, Param, ParamKind
from .registry import (Attrs, KeyTypeSpec, KeyView, Mechanism, SignOp, Template, VerifyOp,
                       register, register_key_type, require_param)

_RAW = serialization.Encoding.Raw


@dataclass(frozen=True)
class Curve:
    private: Any          # the `cryptography` private key class
    public: Any
    key_len: int          # bytes of a public key and of the secret (RFC 8032 §5.1.5, §5.2.5)
    bits: int             # key size in the mechanism-info unit (SoftHSM2: 256 and 456)
    params: bytes         # CKA_EC_PARAMS we emit: the RFC 8410 OID

    @property
    def sig_len(self) -> int:
        return 2 * self.key_len


ED25519 = Curve(ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey, 32, 256,
                der_oid("1.3.101.112"))
ED448 = Curve(ed448.Ed448PrivateKey, ed448.Ed448PublicKey, 57, 456, der_oid("1.3.101.113"))
CURVES: dict[bytes, Curve] = {
    ED25519.params: ED25519, der_tlv(PRINTABLE_STRING, b"edwards25519"): ED25519,
    ED448.params: ED448, der_tlv(PRINTABLE_STRING, b"edwards448"): ED448,
}
PRIVATE_TYPES = (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
PUBLIC_TYPES = (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)


def curve_of(params: bytes | None) -> Curve:
    if params is None:
        raise P11Error(CKR.TEMPLATE_INCOMPLETE, "CKA_EC_PARAMS is required")
    curve = CURVES.get(bytes(params))
    if curve is None:
        raise P11Error(CKR.CURVE_NOT_SUPPORTED, f"EC_PARAMS {bytes(params).hex()}")
    return curve


def curve_of_key(key: Any) -> Curve:
    return ED25519 if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)) \
        else ED448


def _to_crypto(klass: int, get: Getter) -> Any:
    curve = curve_of(get(CKA.EC_PARAMS))
    with invalid_as(CKR.ATTRIBUTE_VALUE_INVALID, "EdDSA key"):
        if klass == CKO.PRIVATE_KEY:
            value = bytes(need(get, CKA.VALUE))
            if len(value) != curve.key_len:  # tolerate a DER OCTET STRING around it
                value = der_value(OCTET_STRING, value) or value
            return curve.private.from_private_bytes(value)
        return curve.public.from_public_bytes(raw_point(need(get, CKA.EC_POINT),
                                                        (curve.key_len,)))


def _from_public(key: Any) -> Attrs:
    curve = curve_of_key(key)
    raw = key.public_bytes(_RAW, serialization.PublicFormat.Raw)
    return {CKA.EC_PARAMS: curve.params, CKA.EC_POINT: der_tlv(OCTET_STRING, raw)}


def _from_private(key: Any) -> tuple[Attrs, Attrs]:
    curve = curve_of_key(key)
    value = key.private_bytes(_RAW, serialization.PrivateFormat.Raw,
                              serialization.NoEncryption())
    return _from_public(key.public_key()), {CKA.EC_PARAMS: curve.params, CKA.VALUE: value}


def _size(key: KeyView) -> int:
    return curve_of_key(key.crypto()).bits


# Same attribute rules as CKK_EC (v3.0 §2.3.6, §2.3.7).
register_key_type(KeyTypeSpec(CKK.EC_EDWARDS, EC_ATTRS, size=_size, to_crypto=_to_crypto,
                              from_private=_from_private, from_public=_from_public,
                              to_pkcs8=to_pkcs8))


def _generate_pair(pub_t: Template, priv_t: Template, param: Param) -> tuple[Attrs, Attrs]:
    params = pub_t.get(CKA.EC_PARAMS)
    pub, priv = _from_private(curve_of(params).private.generate())
    # keep the caller's spelling of the curve (OID or name) on both halves
    pub[CKA.EC_PARAMS] = priv[CKA.EC_PARAMS] = bytes(params)
    pub[CKA.KEY_TYPE] = priv[CKA.KEY_TYPE] = CKK.EC_EDWARDS
    return pub, priv


def _check_param(param: Param) -> None:
    """CK_EDDSA_PARAMS is optional (v3.0 §2.3.14). `cryptography` offers pure Ed25519 and
    Ed448 with an empty context only: Ed25519ph/ctx, Ed448ph and contexts are refused."""
    if param is None:
        return
    p = require_param(param, EddsaParams)
    if p.prehash or p.context:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, "only pure EdDSA without context")


def _sign(key: KeyView, param: Param) -> SignOp:
    _check_param(param)
    private = private_of(key, PRIVATE_TYPES)
    return FnSign(None, lambda data, _alg: private.sign(data))  # pure EdDSA: single-part


def _verify(key: KeyView, param: Param) -> VerifyOp:
    _check_param(param)
    public = public_of(key, PUBLIC_TYPES)
    sig_len = curve_of_key(public).sig_len

    def verify(data: bytes, _alg: Any, signature: bytes) -> None:
        if len(signature) != sig_len:
            raise P11Error(CKR.SIGNATURE_LEN_RANGE, f"{len(signature)}-byte signature")
        try:
            public.verify(signature, data)
        except InvalidSignature:
            raise P11Error(CKR.SIGNATURE_INVALID) from None
    return FnVerify(None, verify)


_RANGE = dict(key_types=(CKK.EC_EDWARDS,), min_key=ED25519.bits, max_key=ED448.bits)
register(Mechanism(CKM.EC_EDWARDS_KEY_PAIR_GEN, generate_pair=_generate_pair, **_RANGE),
         Mechanism(CKM.EDDSA, param=ParamKind.EDDSA, param_optional=True, sign=_sign,
                   verify=_verify, **_RANGE))
