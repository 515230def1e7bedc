"""Mechanism parameters as plain Python values.

`abi.params` decodes the C structures (which hold pointers) into these; a mechanism
declares which kind it takes (`ParamKind`) and never sees a pointer.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, auto

from ..consts import fast_members


class ParamKind(IntEnum):    # IntEnum: STRUCTS is looked up per call, and int hashing is C
    NONE = auto()            # no parameter allowed
    RAW = auto()             # the bytes as given (an IV, a DH public value, a KW IV)
    ULONG = auto()           # one CK_ULONG (CK_MAC_GENERAL_PARAMS)
    GCM = auto()             # CK_GCM_PARAMS
    CTR = auto()             # CK_AES_CTR_PARAMS
    OAEP = auto()            # CK_RSA_PKCS_OAEP_PARAMS
    PSS = auto()             # CK_RSA_PKCS_PSS_PARAMS
    ECDH1 = auto()           # CK_ECDH1_DERIVE_PARAMS
    DERIVATION_STRING = auto()  # CK_KEY_DERIVATION_STRING_DATA
    AES_CBC_DATA = auto()    # CK_AES_CBC_ENCRYPT_DATA_PARAMS
    DES_CBC_DATA = auto()    # CK_DES_CBC_ENCRYPT_DATA_PARAMS
    EDDSA = auto()           # CK_EDDSA_PARAMS (optional for Ed25519)


ParamKind = fast_members(ParamKind)  # type: ignore[misc]  # consts.py: plain attribute lookup


@dataclass(frozen=True)
class GcmParams:
    iv: bytes
    aad: bytes
    tag_bits: int


@dataclass(frozen=True)
class CtrParams:
    counter_bits: int
    cb: bytes


@dataclass(frozen=True)
class OaepParams:
    hash_alg: int   # a CKM digest value
    mgf: int        # a CKG value
    source: int     # 0 or CKZ_DATA_SPECIFIED
    label: bytes


@dataclass(frozen=True)
class PssParams:
    hash_alg: int
    mgf: int
    salt_len: int


@dataclass(frozen=True)
class Ecdh1Params:
    kdf: int        # a CKD value
    shared_data: bytes
    public_data: bytes


@dataclass(frozen=True)
class CbcEncryptData:
    iv: bytes
    data: bytes


@dataclass(frozen=True)
class EddsaParams:
    prehash: bool
    context: bytes


Param = None | bytes | int | GcmParams | CtrParams | OaepParams | PssParams | Ecdh1Params \
    | CbcEncryptData | EddsaParams
