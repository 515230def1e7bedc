"""Message digests: CKM_MD5, CKM_SHA_1 and the SHA-2 family (PKCS#11 v2.40 Current
Mechanisms: "MD5", "SHA-1", "SHA-224", "SHA-256", "SHA-384", "SHA-512"): no parameter,
no key, multi-part.

`DIGESTS` is the one table from a CKM digest value to its `cryptography` hash class;
HMAC, RSA, EC and the ECDH KDFs import it from here rather than repeat it.
"""
from __future__ import annotations

from cryptography.hazmat.primitives import hashes

from ..consts import CKM
from .params import Param
from .registry import DigestOp, Mechanism, register

DIGESTS: dict[int, type[hashes.HashAlgorithm]] = {
    CKM.MD5: hashes.MD5,
    CKM.SHA_1: hashes.SHA1,
    CKM.SHA224: hashes.SHA224,
    CKM.SHA256: hashes.SHA256,
    CKM.SHA384: hashes.SHA384,
    CKM.SHA512: hashes.SHA512,
}


class HashOp(DigestOp):
    """One C_DigestInit .. C_DigestFinal (or C_Digest) run."""

    def __init__(self, algorithm: type[hashes.HashAlgorithm]) -> None:
        self._hash = hashes.Hash(algorithm())

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def final(self) -> bytes:
        return self._hash.finalize()


def _factory(algorithm: type[hashes.HashAlgorithm]):
    def digest(param: Param) -> DigestOp:
        return HashOp(algorithm)
    return digest


for _mech, _alg in DIGESTS.items():
    register(Mechanism(_mech, digest=_factory(_alg)))
