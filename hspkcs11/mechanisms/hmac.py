"""HMAC (RFC 2104) over MD5, SHA-1 and SHA-2: CKM_<hash>_HMAC, PKCS#11 v2.40 Current
Mechanisms ("General-length ... HMAC" sections). No parameter; the MAC is the full
hash output. The *_HMAC_GENERAL variants are not offered.

Key sizes are in bytes and follow SoftHSM2 (the reference): the minimum is the hash
output length, as RFC 2104 §3 advises ("less than L bytes is strongly discouraged"),
the maximum 512 bytes. A key outside that range gives CKR_KEY_SIZE_RANGE at init.
"""
from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _hmac

from ..consts import CKK, CKM, CKR
from ..errors import P11Error
from .digest import DIGESTS
from .params import Param
from .registry import KeyView, Mechanism, SignOp, VerifyBySigning, VerifyOp, register

HMAC_MAX_KEY = 512

# CKM_*_HMAC -> the CKM digest it is built on.
HMACS: dict[int, int] = {
    CKM.MD5_HMAC: CKM.MD5,
    CKM.SHA_1_HMAC: CKM.SHA_1,
    CKM.SHA224_HMAC: CKM.SHA224,
    CKM.SHA256_HMAC: CKM.SHA256,
    CKM.SHA384_HMAC: CKM.SHA384,
    CKM.SHA512_HMAC: CKM.SHA512,
}

# Generic secrets are the HMAC key type; AES keys are accepted too (project decision;
# SoftHSM2 refuses them with CKR_KEY_TYPE_INCONSISTENT).
HMAC_KEY_TYPES = (CKK.GENERIC_SECRET, CKK.AES)


class HmacSign(SignOp):
    def __init__(self, key: bytes, algorithm: hashes.HashAlgorithm) -> None:
        self._mac = _hmac.HMAC(key, algorithm)

    def update(self, data: bytes) -> None:
        self._mac.update(data)

    def final(self) -> bytes:
        return self._mac.finalize()


def _factories(algorithm: type[hashes.HashAlgorithm]):
    min_len = algorithm.digest_size

    def sign(key: KeyView, param: Param) -> SignOp:
        value = key.secret()
        if not min_len <= len(value) <= HMAC_MAX_KEY:
            raise P11Error(CKR.KEY_SIZE_RANGE, f"HMAC key of {len(value)} bytes")
        return HmacSign(value, algorithm())

    def verify(key: KeyView, param: Param) -> VerifyOp:
        return VerifyBySigning(sign(key, param))

    return min_len, sign, verify


for _mech, _digest in HMACS.items():
    _min, _sign, _verify = _factories(DIGESTS[_digest])
    register(Mechanism(_mech, key_types=HMAC_KEY_TYPES, min_key=_min, max_key=HMAC_MAX_KEY,
                       sign=_sign, verify=_verify))
