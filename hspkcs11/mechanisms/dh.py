"""Finite-field keys: DSA (PKCS#11 v2.40 Current Mechanisms §2.2: CKK_DSA, DSA_KEY_PAIR_GEN,
CKM_DSA and DSA_SHA1..SHA512) and PKCS #3 Diffie-Hellman (§2.5: CKK_DH,
DH_PKCS_KEY_PAIR_GEN, DH_PKCS_DERIVE). Key pairs are generated from the domain parameters
of the public-key template; parameter generation is not offered.

A private key object holds x but not y (§2.2.3, §2.5.3); `cryptography` wants both, so
y = g^x mod p is recomputed when the key is loaded.
"""
from __future__ import annotations

import secrets
import warnings
from typing import Any

from cryptography.hazmat.primitives.asymmetric import dh, dsa
from cryptography.utils import CryptographyDeprecationWarning

from ..consts import CKA, CKK, CKM, CKO, CKR
from ..errors import P11Error
from .digest import DIGESTS
from .ec import (SECRET, FnSign, FnVerify, Getter, big, big_bytes, dss_sign, dss_verify,
                 invalid_as, need, private_of, public_of, to_pkcs8)
from .params import Param, ParamKind
from .registry import (Attr, AttrFlag, Attrs, KeyTypeSpec, KeyView, Mechanism, SignOp,
                       Template, VerifyOp, register, register_key_type)

# `cryptography` 48+ marks finite-field DH deprecated; PKCS#3 DH is part of what we emulate.
warnings.filterwarnings("ignore", message="Diffie-Hellman over finite fields",
                        category=CryptographyDeprecationWarning)

_F = AttrFlag
_DOMAIN_PUBLIC = Attr(_F.REQUIRED_CREATE | _F.REQUIRED_GENERATE)
_DOMAIN_PRIVATE = Attr(_F.REQUIRED_CREATE | _F.FORBID_GENERATE | _F.FORBID_UNWRAP)
_PUBLIC_VALUE = Attr(_F.REQUIRED_CREATE | _F.FORBID_GENERATE)


def _domain(template: Template, ckas: tuple[int, ...]) -> list[int]:
    """Domain parameters from a generation template: missing -> CKR_TEMPLATE_INCOMPLETE."""
    return [big(need(template.get, cka)) for cka in ckas]


# --- DSA -------------------------------------------------------------------------------------

# `cryptography` (OpenSSL) loads DSA primes of these sizes only (FIPS 186-4 §4.2).
DSA_BITS = (1024, 2048, 3072, 4096)
_DSA_DOMAIN = (CKA.PRIME, CKA.SUBPRIME, CKA.BASE)

# Tables "DSA public/private key object attributes" (§2.2.2, §2.2.3).
DSA_ATTRS = {
    CKO.PUBLIC_KEY: {CKA.PRIME: _DOMAIN_PUBLIC, CKA.SUBPRIME: _DOMAIN_PUBLIC,
                     CKA.BASE: _DOMAIN_PUBLIC, CKA.VALUE: _PUBLIC_VALUE},
    CKO.PRIVATE_KEY: {CKA.PRIME: _DOMAIN_PRIVATE, CKA.SUBPRIME: _DOMAIN_PRIVATE,
                      CKA.BASE: _DOMAIN_PRIVATE, CKA.VALUE: Attr(SECRET)},
}


def _dsa_to_crypto(klass: int, get: Getter) -> Any:
    p, q, g = (big(need(get, cka)) for cka in _DSA_DOMAIN)
    value = big(need(get, CKA.VALUE))
    with invalid_as(CKR.ATTRIBUTE_VALUE_INVALID, "DSA key"):
        domain = dsa.DSAParameterNumbers(p, q, g)
        if klass == CKO.PUBLIC_KEY:
            return dsa.DSAPublicNumbers(value, domain).public_key()
        public = dsa.DSAPublicNumbers(pow(g, value, p), domain)
        return dsa.DSAPrivateNumbers(value, public).private_key()


def _dsa_from_public(key: dsa.DSAPublicKey) -> Attrs:
    nums = key.public_numbers()
    dom = nums.parameter_numbers
    return {CKA.PRIME: big_bytes(dom.p), CKA.SUBPRIME: big_bytes(dom.q),
            CKA.BASE: big_bytes(dom.g), CKA.VALUE: big_bytes(nums.y)}


def _dsa_from_private(key: dsa.DSAPrivateKey) -> tuple[Attrs, Attrs]:
    pub = _dsa_from_public(key.public_key())
    return pub, {**pub, CKA.VALUE: big_bytes(key.private_numbers().x)}


def _dsa_generate(pub_t: Template, priv_t: Template, param: Param) -> tuple[Attrs, Attrs]:
    p, q, g = _domain(pub_t, _DSA_DOMAIN)
    if p.bit_length() not in DSA_BITS:
        raise P11Error(CKR.KEY_SIZE_RANGE, f"{p.bit_length()}-bit DSA prime")
    with invalid_as(CKR.DOMAIN_PARAMS_INVALID, "DSA domain parameters"):
        key = dsa.DSAParameterNumbers(p, q, g).parameters().generate_private_key()
    pub, priv = _dsa_from_private(key)
    pub[CKA.KEY_TYPE] = priv[CKA.KEY_TYPE] = CKK.DSA
    return pub, priv


def _q_len(key: dsa.DSAPrivateKey | dsa.DSAPublicKey) -> int:
    """Bytes of the subprime q: each of r and s in a DSA signature (§2.2.1)."""
    return (key.parameters().parameter_numbers().q.bit_length() + 7) // 8


def _dsa_signer(hash_cls):
    def sign(key: KeyView, param: Param) -> SignOp:
        private = private_of(key, dsa.DSAPrivateKey)
        return FnSign(hash_cls, dss_sign(private, _q_len(private), lambda alg: alg))
    return sign


def _dsa_verifier(hash_cls):
    def verify(key: KeyView, param: Param) -> VerifyOp:
        public = public_of(key, dsa.DSAPublicKey)
        return FnVerify(hash_cls, dss_verify(public, _q_len(public), lambda alg: alg,
                                             allow_short=False))
    return verify


register_key_type(KeyTypeSpec(CKK.DSA, DSA_ATTRS, size=lambda key: key.crypto().key_size,
                              to_crypto=_dsa_to_crypto, from_private=_dsa_from_private,
                              from_public=_dsa_from_public, to_pkcs8=to_pkcs8))

DSA_HASHES = {CKM.DSA: None, CKM.DSA_SHA1: DIGESTS[CKM.SHA_1], CKM.DSA_SHA224: DIGESTS[CKM.SHA224],
              CKM.DSA_SHA256: DIGESTS[CKM.SHA256], CKM.DSA_SHA384: DIGESTS[CKM.SHA384],
              CKM.DSA_SHA512: DIGESTS[CKM.SHA512]}
_DSA_RANGE = dict(key_types=(CKK.DSA,), min_key=DSA_BITS[0], max_key=DSA_BITS[-1])

register(Mechanism(CKM.DSA_KEY_PAIR_GEN, generate_pair=_dsa_generate, **_DSA_RANGE),
         *(Mechanism(m, sign=_dsa_signer(h), verify=_dsa_verifier(h), **_DSA_RANGE)
           for m, h in DSA_HASHES.items()))


# --- PKCS #3 Diffie-Hellman ------------------------------------------------------------------

# Prime sizes in bits, as SoftHSM2 reports them (OpenSSL's limit is 10000 bits too).
DH_MIN_BITS, DH_MAX_BITS = 512, 10000
_DH_DOMAIN = (CKA.PRIME, CKA.BASE)

# Tables "Diffie-Hellman public/private key object attributes" (§2.5.2, §2.5.3).
DH_ATTRS = {
    CKO.PUBLIC_KEY: {CKA.PRIME: _DOMAIN_PUBLIC, CKA.BASE: _DOMAIN_PUBLIC,
                     CKA.VALUE: _PUBLIC_VALUE},
    CKO.PRIVATE_KEY: {CKA.PRIME: _DOMAIN_PRIVATE, CKA.BASE: _DOMAIN_PRIVATE,
                      CKA.VALUE: Attr(SECRET),
                      CKA.VALUE_BITS: Attr(_F.FORBID_CREATE | _F.FORBID_UNWRAP)},
}


def _dh_private(x: int, domain: dh.DHParameterNumbers) -> dh.DHPrivateKey:
    public = dh.DHPublicNumbers(pow(domain.g, x, domain.p), domain)
    return dh.DHPrivateNumbers(x, public).private_key()


def _dh_to_crypto(klass: int, get: Getter) -> Any:
    p, g = (big(need(get, cka)) for cka in _DH_DOMAIN)
    value = big(need(get, CKA.VALUE))
    with invalid_as(CKR.ATTRIBUTE_VALUE_INVALID, "DH key"):
        domain = dh.DHParameterNumbers(p, g)
        if klass == CKO.PUBLIC_KEY:
            return dh.DHPublicNumbers(value, domain).public_key()
        return _dh_private(value, domain)


def _dh_from_public(key: dh.DHPublicKey) -> Attrs:
    nums = key.public_numbers()
    dom = nums.parameter_numbers
    return {CKA.PRIME: big_bytes(dom.p), CKA.BASE: big_bytes(dom.g), CKA.VALUE: big_bytes(nums.y)}


def _dh_from_private(key: dh.DHPrivateKey) -> tuple[Attrs, Attrs]:
    pub = _dh_from_public(key.public_key())
    x = key.private_numbers().x
    return pub, {CKA.PRIME: pub[CKA.PRIME], CKA.BASE: pub[CKA.BASE], CKA.VALUE: big_bytes(x),
                 CKA.VALUE_BITS: x.bit_length()}


def _dh_generate(pub_t: Template, priv_t: Template, param: Param) -> tuple[Attrs, Attrs]:
    p, g = _domain(pub_t, _DH_DOMAIN)
    if not DH_MIN_BITS <= p.bit_length() <= DH_MAX_BITS:
        raise P11Error(CKR.KEY_SIZE_RANGE, f"{p.bit_length()}-bit DH prime")
    bits = priv_t.get(CKA.VALUE_BITS)
    with invalid_as(CKR.DOMAIN_PARAMS_INVALID, "DH domain parameters"):
        domain = dh.DHParameterNumbers(p, g)
        if bits is None:
            key = domain.parameters().generate_private_key()
        else:
            # PKCS #3 §7.1: with a private-value length l, 2^(l-1) <= x < 2^l
            if not 2 <= bits < p.bit_length():
                raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"CKA_VALUE_BITS {bits}")
            key = _dh_private(secrets.randbits(bits - 1) | 1 << (bits - 1), domain)
    pub, priv = _dh_from_private(key)
    pub[CKA.KEY_TYPE] = priv[CKA.KEY_TYPE] = CKK.DH
    return pub, priv


def _dh_derive(key: KeyView, param: Param, template: Template) -> bytes:
    """PKCS #3 key agreement (§2.5.7): the parameter is the other party's y; the result is
    the shared secret g^xy mod p, as `cryptography` gives it (padded to the prime length)."""
    if not isinstance(param, (bytes, bytearray)) or not param:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, "DH derive needs the other public value")
    private = private_of(key, dh.DHPrivateKey)
    with invalid_as(CKR.MECHANISM_PARAM_INVALID, "DH public value"):
        domain = private.parameters().parameter_numbers()
        peer = dh.DHPublicNumbers(big(bytes(param)), domain).public_key()
        return private.exchange(peer)


register_key_type(KeyTypeSpec(CKK.DH, DH_ATTRS, size=lambda key: key.crypto().key_size,
                              to_crypto=_dh_to_crypto, from_private=_dh_from_private,
                              from_public=_dh_from_public, to_pkcs8=to_pkcs8))

_DH_RANGE = dict(key_types=(CKK.DH,), min_key=DH_MIN_BITS, max_key=DH_MAX_BITS)
register(Mechanism(CKM.DH_PKCS_KEY_PAIR_GEN, generate_pair=_dh_generate, **_DH_RANGE),
         Mechanism(CKM.DH_PKCS_DERIVE, param=ParamKind.RAW, derive=_dh_derive, **_DH_RANGE))
