"""RSA (PKCS#11 v2.40 Current Mechanisms §2.1): the CKK_RSA key type, key-pair generation,
PKCS#1 v1.5, raw X.509, OAEP and PSS, and the hash-then-sign PKCS#1 v1.5 and PSS mechanisms.

Everything goes through `cryptography` except what it has no primitive for: the raw RSA
private-key operation (RFC 8017 RSADP/RSASP1), needed by CKM_RSA_X_509, by CKM_RSA_PKCS
signatures over data that is not a DigestInfo, and by CKM_RSA_PKCS decryption. The last
one because `cryptography` decrypts PKCS#1 v1.5 with implicit rejection (a random message
instead of an error), while PKCS#11 wants CKR_ENCRYPTED_DATA_INVALID for bad padding.
"""
from __future__ import annotations

import hmac
import math
import secrets
from functools import cached_property
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from ..consts import CKA, CKG, CKK, CKM, CKO, CKR, CKZ_DATA_SPECIFIED, MechFlag
from ..errors import P11Error
from .digest import DIGESTS
from .ec import (FnSign, FnVerify, Getter, big, big_bytes, invalid_as, need, private_of,
                 public_of, to_pkcs8)
from .params import OaepParams, Param, ParamKind, PssParams
from .registry import (Attr, AttrFlag, Attrs, CipherOp, KeyTypeSpec, KeyView, Mechanism,
                       SignOp, Template, VerifyOp, register, register_key_type, require_param)

# Modulus sizes in bits, as SoftHSM2 reports them; `cryptography` generates from 1024 bits.
RSA_MIN_BITS, RSA_GEN_MIN_BITS, RSA_MAX_BITS = 512, 1024, 16384
# `cryptography` generates keys with these public exponents only.
GEN_EXPONENTS = (3, 65537)
PKCS1_OVERHEAD = 11  # §2.1.6: PKCS#1 v1.5 carries at most k-11 bytes

# Hashes OAEP and PSS may name (CK_RSA_PKCS_OAEP_PARAMS.hashAlg, ..._PSS_PARAMS.hashAlg)
PARAM_HASHES = {m: DIGESTS[m] for m in (CKM.SHA_1, CKM.SHA224, CKM.SHA256, CKM.SHA384,
                                         CKM.SHA512)}
MGF_HASHES = {CKG.MGF1_SHA1: DIGESTS[CKM.SHA_1], CKG.MGF1_SHA224: DIGESTS[CKM.SHA224],
              CKG.MGF1_SHA256: DIGESTS[CKM.SHA256], CKG.MGF1_SHA384: DIGESTS[CKM.SHA384],
              CKG.MGF1_SHA512: DIGESTS[CKM.SHA512]}

# DigestInfo prefixes (RFC 8017 §9.2 note 1): a CKM_RSA_PKCS signature over one of these is
# exactly `cryptography`'s PKCS1v15 signature of the hash, so OpenSSL can make it.
DIGEST_INFO = {bytes.fromhex(prefix): DIGESTS[m] for prefix, m in (
    ("3020300c06082a864886f70d020505000410", CKM.MD5),
    ("3021300906052b0e03021a05000414", CKM.SHA_1),
    ("302d300d06096086480165030402040500041c", CKM.SHA224),
    ("3031300d060960864801650304020105000420", CKM.SHA256),
    ("3041300d060960864801650304020205000430", CKM.SHA384),
    ("3051300d060960864801650304020305000440", CKM.SHA512))}


# --- the CKK_RSA key type --------------------------------------------------------------------

def _optional(get: Getter, cka: int) -> int | None:
    value = get(cka)
    return None if value is None else big(value)


def _to_crypto(klass: int, get: Getter) -> Any:
    n = big(need(get, CKA.MODULUS))
    if klass == CKO.PUBLIC_KEY:
        with invalid_as(CKR.ATTRIBUTE_VALUE_INVALID, "RSA public key"):
            return rsa.RSAPublicNumbers(big(need(get, CKA.PUBLIC_EXPONENT)), n).public_key()
    # §2.1.3: only the modulus and private exponent are required; rebuild the rest, keeping
    # what is given so that `cryptography` checks it is consistent.
    d = big(need(get, CKA.PRIVATE_EXPONENT))
    e, p, q, dmp1, dmq1, iqmp = (_optional(get, cka) for cka in (
        CKA.PUBLIC_EXPONENT, CKA.PRIME_1, CKA.PRIME_2, CKA.EXPONENT_1, CKA.EXPONENT_2,
        CKA.COEFFICIENT))
    with invalid_as(CKR.ATTRIBUTE_VALUE_INVALID, "RSA private key"):
        if p is None or q is None:
            if e is None:
                raise P11Error(CKR.TEMPLATE_INCOMPLETE,
                               "RSA private key needs its primes or public exponent")
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
        if e is None:
            e = pow(d, -1, math.lcm(p - 1, q - 1))
        return rsa.RSAPrivateNumbers(
            p, q, d, rsa.rsa_crt_dmp1(d, p) if dmp1 is None else dmp1,
            rsa.rsa_crt_dmq1(d, q) if dmq1 is None else dmq1,
            rsa.rsa_crt_iqmp(p, q) if iqmp is None else iqmp,
            rsa.RSAPublicNumbers(e, n)).private_key()


def _from_public(key: rsa.RSAPublicKey) -> Attrs:
    nums = key.public_numbers()
    return {CKA.MODULUS: big_bytes(nums.n), CKA.PUBLIC_EXPONENT: big_bytes(nums.e),
            CKA.MODULUS_BITS: key.key_size}


def _from_private(key: rsa.RSAPrivateKey) -> tuple[Attrs, Attrs]:
    nums = key.private_numbers()
    pub = nums.public_numbers
    priv = {CKA.MODULUS: big_bytes(pub.n), CKA.PUBLIC_EXPONENT: big_bytes(pub.e),
            CKA.PRIVATE_EXPONENT: big_bytes(nums.d), CKA.PRIME_1: big_bytes(nums.p),
            CKA.PRIME_2: big_bytes(nums.q), CKA.EXPONENT_1: big_bytes(nums.dmp1),
            CKA.EXPONENT_2: big_bytes(nums.dmq1), CKA.COEFFICIENT: big_bytes(nums.iqmp)}
    return _from_public(key.public_key()), priv


def _size(key: KeyView) -> int:
    return key.crypto().key_size


# Tables "RSA public/private key object attributes" (§2.1.2, §2.1.3).
_F = AttrFlag
_CRT = _F.FORBID_GENERATE | _F.FORBID_UNWRAP | _F.SENSITIVE | _F.SEALED
RSA_ATTRS = {
    CKO.PUBLIC_KEY: {CKA.MODULUS: Attr(_F.REQUIRED_CREATE | _F.FORBID_GENERATE),
                     CKA.MODULUS_BITS: Attr(_F.REQUIRED_GENERATE | _F.FORBID_CREATE),
                     CKA.PUBLIC_EXPONENT: Attr(_F.REQUIRED_CREATE)},
    CKO.PRIVATE_KEY: {CKA.MODULUS: Attr(_F.REQUIRED_CREATE | _F.FORBID_GENERATE | _F.FORBID_UNWRAP),
                      CKA.PUBLIC_EXPONENT: Attr(_F.FORBID_GENERATE | _F.FORBID_UNWRAP),
                      CKA.PRIVATE_EXPONENT: Attr(_F.REQUIRED_CREATE | _CRT),
                      CKA.PRIME_1: Attr(_CRT), CKA.PRIME_2: Attr(_CRT),
                      CKA.EXPONENT_1: Attr(_CRT), CKA.EXPONENT_2: Attr(_CRT),
                      CKA.COEFFICIENT: Attr(_CRT)},
}

register_key_type(KeyTypeSpec(CKK.RSA, RSA_ATTRS, size=_size, to_crypto=_to_crypto,
                              from_private=_from_private, from_public=_from_public,
                              to_pkcs8=to_pkcs8))


def _generate_pair(pub_t: Template, priv_t: Template, param: Param) -> tuple[Attrs, Attrs]:
    bits = pub_t.get(CKA.MODULUS_BITS)
    if bits is None:
        raise P11Error(CKR.TEMPLATE_INCOMPLETE, "CKA_MODULUS_BITS is required")
    if not RSA_GEN_MIN_BITS <= bits <= RSA_MAX_BITS:
        raise P11Error(CKR.KEY_SIZE_RANGE, f"{bits}-bit modulus")
    given = pub_t.get(CKA.PUBLIC_EXPONENT)
    e = big(given) if given else 65537
    if e not in GEN_EXPONENTS:
        raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"public exponent {e}: only 3 or 65537")
    pub, priv = _from_private(rsa.generate_private_key(e, bits))
    pub[CKA.KEY_TYPE] = priv[CKA.KEY_TYPE] = CKK.RSA
    return pub, priv


# --- the raw RSA operations ------------------------------------------------------------------

class RawRsa:
    """RSAEP/RSAVP1 and RSADP/RSASP1 (RFC 8017 §5.1-5.2) on k-byte strings. The private
    operation uses CRT and is blinded (§5.1.2 note), so its timing does not follow the
    input; Python integers are not constant-time, acceptable in an emulator."""

    def __init__(self, key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> None:
        self._key = key
        public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
        self.n, self.e = public.public_numbers().n, public.public_numbers().e
        self.k = (public.key_size + 7) // 8

    @cached_property
    def _numbers(self) -> rsa.RSAPrivateNumbers:
        return self._key.private_numbers()  # type: ignore[union-attr]

    def below_n(self, data: bytes, rv: CKR) -> int:
        m = big(data)
        if m >= self.n:
            raise P11Error(rv, "input is not less than the modulus")
        return m

    def public(self, m: int) -> bytes:
        return pow(m, self.e, self.n).to_bytes(self.k, "big")

    def private(self, c: int) -> bytes:
        nums, n = self._numbers, self.n
        r = secrets.randbelow(n - 3) + 2
        blinded = c * pow(r, self.e, n) % n
        m1, m2 = pow(blinded, nums.dmp1, nums.p), pow(blinded, nums.dmq1, nums.q)
        m = m2 + (nums.iqmp * (m1 - m2) % nums.p) * nums.q
        return (m * pow(r, -1, n) % n).to_bytes(self.k, "big")


class OneShot(CipherOp):
    """A single-part RSA cipher: collects the input, transforms it in `final`."""

    multipart = False

    def __init__(self, fn: Callable[[bytes], bytes]) -> None:
        self._fn, self._data = fn, bytearray()

    def update(self, data: bytes) -> bytes:
        self._data += data
        return b""

    def final(self) -> bytes:
        return self._fn(bytes(self._data))


def _check_len(data: bytes, limit: int) -> None:
    if len(data) > limit:
        raise P11Error(CKR.DATA_LEN_RANGE, f"{len(data)} bytes, at most {limit}")


def _check_sig_len(signature: bytes, k: int) -> None:
    if len(signature) != k:
        raise P11Error(CKR.SIGNATURE_LEN_RANGE, f"{len(signature)}-byte signature, want {k}")


def _check_ct_len(data: bytes, k: int) -> None:
    if len(data) != k:
        raise P11Error(CKR.ENCRYPTED_DATA_LEN_RANGE, f"{len(data)} bytes, want {k}")


def _keys(key: KeyView, private: bool) -> tuple[Any, RawRsa]:
    obj = private_of(key, rsa.RSAPrivateKey) if private else public_of(key, rsa.RSAPublicKey)
    return obj, RawRsa(obj)


# --- CKM_RSA_X_509 (§2.1.8): raw RSA, input zero-padded on the left to k bytes ---------------

def _x509_encrypt(key: KeyView, param: Param) -> CipherOp:
    _, raw = _keys(key, private=False)

    def encrypt(data: bytes) -> bytes:
        _check_len(data, raw.k)
        return raw.public(raw.below_n(data, CKR.DATA_INVALID))
    return OneShot(encrypt)


def _x509_decrypt(key: KeyView, param: Param) -> CipherOp:
    _, raw = _keys(key, private=True)

    def decrypt(data: bytes) -> bytes:
        _check_ct_len(data, raw.k)
        return raw.private(raw.below_n(data, CKR.ENCRYPTED_DATA_INVALID))
    return OneShot(decrypt)


def _x509_sign(key: KeyView, param: Param) -> SignOp:
    _, raw = _keys(key, private=True)

    def sign(data: bytes, _alg: Any) -> bytes:
        _check_len(data, raw.k)
        return raw.private(raw.below_n(data, CKR.DATA_INVALID))
    return FnSign(None, sign)


def _x509_verify(key: KeyView, param: Param) -> VerifyOp:
    _, raw = _keys(key, private=False)

    def verify(data: bytes, _alg: Any, signature: bytes) -> None:
        _check_len(data, raw.k)
        _check_sig_len(signature, raw.k)
        s = raw.below_n(signature, CKR.SIGNATURE_INVALID)
        if not hmac.compare_digest(raw.public(s), data.rjust(raw.k, b"\0")):
            raise P11Error(CKR.SIGNATURE_INVALID)
    return FnVerify(None, verify)


# --- CKM_RSA_PKCS (§2.1.6): PKCS#1 v1.5, single-part -----------------------------------------

def _pkcs_encrypt(key: KeyView, param: Param) -> CipherOp:
    public, raw = _keys(key, private=False)

    def encrypt(data: bytes) -> bytes:
        _check_len(data, raw.k - PKCS1_OVERHEAD)
        return public.encrypt(data, padding.PKCS1v15())
    return OneShot(encrypt)


def _pkcs_decrypt(key: KeyView, param: Param) -> CipherOp:
    _, raw = _keys(key, private=True)

    def decrypt(data: bytes) -> bytes:
        _check_ct_len(data, raw.k)
        em = raw.private(raw.below_n(data, CKR.ENCRYPTED_DATA_INVALID))
        # EME-PKCS1-v1_5 decoding (RFC 8017 §7.2.2 step 3): 00 02 PS(>= 8 non-zero) 00 M
        sep = em.find(b"\0", 2)
        if em[:2] != b"\0\x02" or sep < 10:
            raise P11Error(CKR.ENCRYPTED_DATA_INVALID, "bad PKCS#1 v1.5 padding")
        return em[sep + 1:]
    return OneShot(decrypt)


def _pkcs_sign(key: KeyView, param: Param) -> SignOp:
    private, raw = _keys(key, private=True)

    def sign(data: bytes, _alg: Any) -> bytes:
        _check_len(data, raw.k - PKCS1_OVERHEAD)
        for prefix, hash_cls in DIGEST_INFO.items():
            if data.startswith(prefix) and len(data) == len(prefix) + hash_cls.digest_size:
                return private.sign(data[len(prefix):], padding.PKCS1v15(),
                                    utils.Prehashed(hash_cls()))
        # EMSA-PKCS1-v1_5 block (RFC 8017 §9.2 step 5) around data that is no DigestInfo
        em = b"\0\x01" + b"\xff" * (raw.k - 3 - len(data)) + b"\0" + data
        return raw.private(big(em))
    return FnSign(None, sign)


def _pkcs_verify(key: KeyView, param: Param) -> VerifyOp:
    public, raw = _keys(key, private=False)

    def verify(data: bytes, _alg: Any, signature: bytes) -> None:
        _check_len(data, raw.k - PKCS1_OVERHEAD)
        _check_sig_len(signature, raw.k)
        try:
            recovered = public.recover_data_from_signature(signature, padding.PKCS1v15(), None)
        except InvalidSignature:
            raise P11Error(CKR.SIGNATURE_INVALID) from None
        if not hmac.compare_digest(recovered, data):
            raise P11Error(CKR.SIGNATURE_INVALID)
    return FnVerify(None, verify)


# --- hash-then-sign PKCS#1 v1.5 (§2.1.11, §2.1.14) -------------------------------------------

def _hashed_sign(hash_cls: type[hashes.HashAlgorithm]):
    def factory(key: KeyView, param: Param) -> SignOp:
        private = private_of(key, rsa.RSAPrivateKey)
        return FnSign(hash_cls, lambda digest, alg: private.sign(
            digest, padding.PKCS1v15(), utils.Prehashed(alg)))
    return factory


def _hashed_verify(hash_cls: type[hashes.HashAlgorithm]):
    def factory(key: KeyView, param: Param) -> VerifyOp:
        public = public_of(key, rsa.RSAPublicKey)
        k = (public.key_size + 7) // 8

        def verify(digest: bytes, alg: hashes.HashAlgorithm, signature: bytes) -> None:
            _check_sig_len(signature, k)
            try:
                public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(alg))
            except InvalidSignature:
                raise P11Error(CKR.SIGNATURE_INVALID) from None
        return FnVerify(hash_cls, verify)
    return factory


# --- PSS (§2.1.15-2.1.17) --------------------------------------------------------------------

def _mgf(mgf: int) -> padding.MGF1:
    hash_cls = MGF_HASHES.get(mgf)
    if hash_cls is None:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"MGF 0x{mgf:x}")
    return padding.MGF1(hash_cls())


def _pss(param: Param, key_bits: int,
         mech_hash: int | None) -> tuple[padding.PSS, hashes.HashAlgorithm]:
    """The PSS padding of CK_RSA_PKCS_PSS_PARAMS and its hash; the SHA*_RSA_PKCS_PSS
    mechanisms must name their own hash (§2.1.17). The salt must fit: emLen >= hLen+sLen+2
    (RFC 8017 §9.1.1 step 3), emLen = ceil((modBits-1)/8)."""
    p = require_param(param, PssParams)
    hash_cls = PARAM_HASHES.get(p.hash_alg)
    if hash_cls is None or (mech_hash is not None and p.hash_alg != mech_hash):
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"PSS hash 0x{p.hash_alg:x}")
    if p.salt_len < 0 or hash_cls.digest_size + p.salt_len + 2 > (key_bits + 6) // 8:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"PSS salt of {p.salt_len} bytes")
    return padding.PSS(_mgf(p.mgf), p.salt_len), hash_cls()


def _pss_sign(mech_hash: int | None):
    def factory(key: KeyView, param: Param) -> SignOp:
        private = private_of(key, rsa.RSAPrivateKey)
        pss, alg = _pss(param, private.key_size, mech_hash)

        def sign(digest: bytes, _alg: Any) -> bytes:
            if len(digest) != alg.digest_size:  # CKM_RSA_PKCS_PSS signs a ready hash
                raise P11Error(CKR.DATA_LEN_RANGE, f"{len(digest)}-byte hash for {alg.name}")
            return private.sign(digest, pss, utils.Prehashed(alg))
        return FnSign(None if mech_hash is None else type(alg), sign)
    return factory


def _pss_verify(mech_hash: int | None):
    def factory(key: KeyView, param: Param) -> VerifyOp:
        public = public_of(key, rsa.RSAPublicKey)
        pss, alg = _pss(param, public.key_size, mech_hash)
        k = (public.key_size + 7) // 8

        def verify(digest: bytes, _alg: Any, signature: bytes) -> None:
            if len(digest) != alg.digest_size:
                raise P11Error(CKR.DATA_LEN_RANGE, f"{len(digest)}-byte hash for {alg.name}")
            _check_sig_len(signature, k)
            try:
                public.verify(signature, digest, pss, utils.Prehashed(alg))
            except InvalidSignature:
                raise P11Error(CKR.SIGNATURE_INVALID) from None
        return FnVerify(None if mech_hash is None else type(alg), verify)
    return factory


# --- OAEP (§2.1.9) ---------------------------------------------------------------------------

def _oaep(param: Param) -> tuple[padding.OAEP, int]:
    """The OAEP padding of CK_RSA_PKCS_OAEP_PARAMS, and the hash length. The label comes
    only with source CKZ_DATA_SPECIFIED; a source of 0 (sent by some clients) means none."""
    p = require_param(param, OaepParams)
    hash_cls = PARAM_HASHES.get(p.hash_alg)
    if hash_cls is None:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"OAEP hash 0x{p.hash_alg:x}")
    if p.source not in (0, CKZ_DATA_SPECIFIED) or (p.source == 0 and p.label):
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"OAEP source {p.source}")
    return padding.OAEP(_mgf(p.mgf), hash_cls(), p.label or None), hash_cls.digest_size


def _oaep_encrypt(key: KeyView, param: Param) -> CipherOp:
    public, raw = _keys(key, private=False)
    oaep, h_len = _oaep(param)

    def encrypt(data: bytes) -> bytes:
        _check_len(data, raw.k - 2 * h_len - 2)  # RFC 8017 §7.1.1 step 1b
        return public.encrypt(data, oaep)
    return OneShot(encrypt)


def _oaep_decrypt(key: KeyView, param: Param) -> CipherOp:
    private, raw = _keys(key, private=True)
    oaep, _ = _oaep(param)

    def decrypt(data: bytes) -> bytes:
        _check_ct_len(data, raw.k)
        with invalid_as(CKR.ENCRYPTED_DATA_INVALID, "OAEP decoding"):
            return private.decrypt(data, oaep)
    return OneShot(decrypt)


# --- registration ----------------------------------------------------------------------------

def _rsa_mech(mech: int, min_bits: int = RSA_MIN_BITS, **kw: Any) -> Mechanism:
    return Mechanism(mech, key_types=(CKK.RSA,), min_key=min_bits, max_key=RSA_MAX_BITS, **kw)


_WRAP = MechFlag.WRAP | MechFlag.UNWRAP
PKCS_HASHED = {CKM.MD5_RSA_PKCS: CKM.MD5, CKM.SHA1_RSA_PKCS: CKM.SHA_1,
               CKM.SHA224_RSA_PKCS: CKM.SHA224, CKM.SHA256_RSA_PKCS: CKM.SHA256,
               CKM.SHA384_RSA_PKCS: CKM.SHA384, CKM.SHA512_RSA_PKCS: CKM.SHA512}
PSS_HASHED = {CKM.RSA_PKCS_PSS: None, CKM.SHA1_RSA_PKCS_PSS: CKM.SHA_1,
              CKM.SHA224_RSA_PKCS_PSS: CKM.SHA224, CKM.SHA256_RSA_PKCS_PSS: CKM.SHA256,
              CKM.SHA384_RSA_PKCS_PSS: CKM.SHA384, CKM.SHA512_RSA_PKCS_PSS: CKM.SHA512}

register(
    _rsa_mech(CKM.RSA_PKCS_KEY_PAIR_GEN, RSA_GEN_MIN_BITS, generate_pair=_generate_pair),
    _rsa_mech(CKM.RSA_PKCS, encrypt=_pkcs_encrypt, decrypt=_pkcs_decrypt, sign=_pkcs_sign,
              verify=_pkcs_verify, extra_flags=_WRAP, randomized=True),
    _rsa_mech(CKM.RSA_X_509, encrypt=_x509_encrypt, decrypt=_x509_decrypt, sign=_x509_sign,
              verify=_x509_verify),
    _rsa_mech(CKM.RSA_PKCS_OAEP, param=ParamKind.OAEP, encrypt=_oaep_encrypt,
              decrypt=_oaep_decrypt, extra_flags=_WRAP, randomized=True),
    *(_rsa_mech(m, sign=_hashed_sign(DIGESTS[h]), verify=_hashed_verify(DIGESTS[h]))
      for m, h in PKCS_HASHED.items()),
    *(_rsa_mech(m, param=ParamKind.PSS, sign=_pss_sign(h), verify=_pss_verify(h))
      for m, h in PSS_HASHED.items()),
)
