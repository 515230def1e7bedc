"""Finite-field keys: DSA (PKCS#11 v2.40 Current Mechanisms §2.2: CKK_DSA, DSA_KEY_PAIR_GEN,
CKM_DSA and DSA_SHA1..SHA512, DSA_PARAMETER_GEN) and PKCS #3 Diffie-Hellman (§2.5: CKK_DH,
DH_PKCS_KEY_PAIR_GEN, DH_PKCS_PARAMETER_GEN, DH_PKCS_DERIVE). Key pairs are generated from
the domain parameters of the public-key template; the PARAMETER_GEN mechanisms make
CKO_DOMAIN_PARAMETERS objects (Base §4.10) for C_GenerateKey.

A private key object holds x but not y (§2.2.3, §2.5.3); `cryptography` wants both, so
y = g^x mod p is recomputed when the key is loaded.
"""
from __future__ import annotations

import secrets
import threading
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
# Domain parameter objects (tables "DSA/DH domain parameter object attributes"): the
# parameters are footnotes 1,4; CKA_PRIME_BITS is 2,3 (the generation template names the
# size; on C_CreateObject the token computes it, see p11.manage).
_DOMAIN_PARAM = Attr(_F.REQUIRED_CREATE | _F.FORBID_GENERATE)
_PRIME_BITS = Attr(_F.FORBID_CREATE | _F.REQUIRED_GENERATE)


def _domain(template: Template, ckas: tuple[int, ...]) -> list[int]:
    """Domain parameters from a generation template: missing -> CKR_TEMPLATE_INCOMPLETE."""
    return [big(need(template.get, cka)) for cka in ckas]


def _prime_bits(template: Template, allowed: Any) -> int:
    """CKA_PRIME_BITS of a parameter-generation template (footnote 3: required). A size
    the mechanism cannot make is a bad template value, as for AES's CKA_VALUE_LEN."""
    bits = need(template.get, CKA.PRIME_BITS)
    if bits not in allowed:
        raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"CKA_PRIME_BITS {bits}")
    return bits


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
    CKO.DOMAIN_PARAMETERS: {CKA.PRIME: _DOMAIN_PARAM, CKA.SUBPRIME: _DOMAIN_PARAM,
                            CKA.BASE: _DOMAIN_PARAM, CKA.PRIME_BITS: _PRIME_BITS},
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


def _dsa_parameter_gen(template: Template, param: Param) -> Attrs:
    """CKM_DSA_PARAMETER_GEN ("DSA domain parameter generation"): FIPS 186-4 parameters
    of CKA_PRIME_BITS bits, with the subprime size `cryptography` (OpenSSL) pairs with it
    (160 bits for 1024, else 256)."""
    bits = _prime_bits(template, DSA_BITS)
    nums = dsa.generate_parameters(bits).parameter_numbers()
    return {CKA.CLASS: CKO.DOMAIN_PARAMETERS, CKA.KEY_TYPE: CKK.DSA, CKA.PRIME: big_bytes(nums.p),
            CKA.SUBPRIME: big_bytes(nums.q), CKA.BASE: big_bytes(nums.g),
            CKA.PRIME_BITS: nums.p.bit_length()}


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
         Mechanism(CKM.DSA_PARAMETER_GEN, generate=_dsa_parameter_gen, **_DSA_RANGE),
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
    CKO.DOMAIN_PARAMETERS: {CKA.PRIME: _DOMAIN_PARAM, CKA.BASE: _DOMAIN_PARAM,
                            CKA.PRIME_BITS: _PRIME_BITS},
}

# `cryptography` re-checks a DH group each time a key is built from numbers or DER
# (OpenSSL's DH_check: Miller-Rabin on p and, without q, on (p-1)/2; ~1.5 s for a
# 2236-bit p), and offers no way to build a key from a checked group. So a group is
# checked once per process and kept here; generation uses the kept `DHParameters`, and the
# agreement is computed from the numbers (`_modexp`). Bounded: clients use few groups.
_GROUPS: dict[tuple[int, int], dh.DHParameters] = {}
_GROUPS_MAX = 64
_GROUPS_LOCK = threading.Lock()     # sessions may run in several threads


def _dh_group(p: int, g: int, made: dh.DHParameters | None = None) -> dh.DHParameters:
    """The checked group (p, g): ValueError if `cryptography` refuses it. `made`: a group
    `cryptography` just generated, which needs no check."""
    group = _GROUPS.get((p, g))
    if group is None:
        group = made if made is not None else dh.DHParameterNumbers(p, g).parameters()
        with _GROUPS_LOCK:
            if len(_GROUPS) >= _GROUPS_MAX:
                del _GROUPS[next(iter(_GROUPS))]     # the oldest
            _GROUPS[(p, g)] = group
    return group


def _modexp(base: int, exponent: int, p: int) -> int:
    """base^exponent mod the (checked) prime p. Python's pow takes a time that depends on
    the exponent's bits, so the secret exponent is blinded with a random multiple of the
    group order p-1 (exponent blinding, the usual timing countermeasure): base^(p-1) = 1
    for 0 < base < p."""
    return pow(base, exponent + secrets.randbits(64) * (p - 1), p)


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


def _dh_pair_attrs(p: int, g: int, x: int, y: int) -> tuple[Attrs, Attrs]:
    prime, base = big_bytes(p), big_bytes(g)
    return ({CKA.PRIME: prime, CKA.BASE: base, CKA.VALUE: big_bytes(y)},
            {CKA.PRIME: prime, CKA.BASE: base, CKA.VALUE: big_bytes(x),
             CKA.VALUE_BITS: x.bit_length()})


def _dh_from_private(key: dh.DHPrivateKey) -> tuple[Attrs, Attrs]:
    nums = key.private_numbers()
    dom = nums.public_numbers.parameter_numbers
    return _dh_pair_attrs(dom.p, dom.g, nums.x, nums.public_numbers.y)


def _dh_generate(pub_t: Template, priv_t: Template, param: Param) -> tuple[Attrs, Attrs]:
    p, g = _domain(pub_t, _DH_DOMAIN)
    if not DH_MIN_BITS <= p.bit_length() <= DH_MAX_BITS:
        raise P11Error(CKR.KEY_SIZE_RANGE, f"{p.bit_length()}-bit DH prime")
    bits = priv_t.get(CKA.VALUE_BITS)
    with invalid_as(CKR.DOMAIN_PARAMS_INVALID, "DH domain parameters"):
        group = _dh_group(p, g)
    if bits is None:
        pub, priv = _dh_from_private(group.generate_private_key())
    else:
        # PKCS #3 §7.1: with a private-value length l, 2^(l-1) <= x < 2^l
        if not 2 <= bits < p.bit_length():
            raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"CKA_VALUE_BITS {bits}")
        x = secrets.randbits(bits - 1) | 1 << (bits - 1)
        pub, priv = _dh_pair_attrs(p, g, x, _modexp(g, x, p))
    pub[CKA.KEY_TYPE] = priv[CKA.KEY_TYPE] = CKK.DH
    return pub, priv


def _dh_derive(key: KeyView, param: Param, template: Template) -> bytes:
    """PKCS #3 key agreement (§2.5.7; PKCS #3 §8, phase II): the parameter is the other party's y;
    the result is the shared secret z = y^x mod p, padded to the prime's length (as OpenSSL
    gives it). y is checked to lie in 2..p-2 (SP 800-56A §5.6.2.3.1), as OpenSSL does for a
    group without q; the group itself is checked once (`_dh_group`)."""
    if key.klass != CKO.PRIVATE_KEY:
        raise P11Error(CKR.KEY_TYPE_INCONSISTENT, "DH derive needs a private key")
    if not isinstance(param, (bytes, bytearray)) or not param:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, "DH derive needs the other public value")
    p, g, x = (big(need(key.attr, cka)) for cka in (CKA.PRIME, CKA.BASE, CKA.VALUE))
    with invalid_as(CKR.ATTRIBUTE_VALUE_INVALID, "DH key"):
        _dh_group(p, g)
    y = big(bytes(param))
    if not 1 < y < p - 1:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, "DH public value out of range")
    return big_bytes(_modexp(y, x, p), (p.bit_length() + 7) // 8)


def _dh_parameter_gen(template: Template, param: Param) -> Attrs:
    """CKM_DH_PKCS_PARAMETER_GEN ("PKCS #3 Diffie-Hellman domain parameter generation"): a
    safe prime p of CKA_PRIME_BITS bits with generator 2, as `cryptography` (OpenSSL) makes
    them. Slow, as safe primes are rare: up to seconds for 1024 bits, seconds to minutes for
    2048."""
    bits = _prime_bits(template, range(DH_MIN_BITS, DH_MAX_BITS + 1))
    group = dh.generate_parameters(2, bits)
    nums = group.parameter_numbers()
    _dh_group(nums.p, nums.g, group)
    return {CKA.CLASS: CKO.DOMAIN_PARAMETERS, CKA.KEY_TYPE: CKK.DH, CKA.PRIME: big_bytes(nums.p),
            CKA.BASE: big_bytes(nums.g), CKA.PRIME_BITS: nums.p.bit_length()}


def _dh_size(key: KeyView) -> int:
    """Bits of the prime, read from the attribute: building the key would check the group."""
    return big(key.attr(CKA.PRIME) or b"").bit_length()


register_key_type(KeyTypeSpec(CKK.DH, DH_ATTRS, size=_dh_size,
                              to_crypto=_dh_to_crypto, from_private=_dh_from_private,
                              from_public=_dh_from_public, to_pkcs8=to_pkcs8))

_DH_RANGE = dict(key_types=(CKK.DH,), min_key=DH_MIN_BITS, max_key=DH_MAX_BITS)
register(Mechanism(CKM.DH_PKCS_KEY_PAIR_GEN, generate_pair=_dh_generate, **_DH_RANGE),
         Mechanism(CKM.DH_PKCS_PARAMETER_GEN, generate=_dh_parameter_gen, **_DH_RANGE),
         Mechanism(CKM.DH_PKCS_DERIVE, param=ParamKind.RAW, derive=_dh_derive, **_DH_RANGE))
