"""PKCS#11 v2.40 constants, written once (values from the OASIS pkcs11t.h).

The C shim's header (`csrc/build/hs_consts.h`) is generated from these tables by the
cffi build script, so C and Python never disagree. Logs print `.name`, not numbers.
This module imports nothing else from the package: the build script loads it by path.
"""
from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Any, Iterator, Mapping

CK_UNAVAILABLE_INFORMATION = 0xFFFFFFFFFFFFFFFF  # ~0UL with 64-bit CK_ULONG
CK_EFFECTIVELY_INFINITE = 0
CK_INVALID_HANDLE = 0
CKA_VENDOR_DEFINED = 0x80000000
CKF_ARRAY_ATTRIBUTE = 0x40000000


class CKR(IntEnum):
    OK = 0x000
    CANCEL = 0x001
    HOST_MEMORY = 0x002
    SLOT_ID_INVALID = 0x003
    GENERAL_ERROR = 0x005
    FUNCTION_FAILED = 0x006
    ARGUMENTS_BAD = 0x007
    NO_EVENT = 0x008
    NEED_TO_CREATE_THREADS = 0x009
    CANT_LOCK = 0x00A
    ATTRIBUTE_READ_ONLY = 0x010
    ATTRIBUTE_SENSITIVE = 0x011
    ATTRIBUTE_TYPE_INVALID = 0x012
    ATTRIBUTE_VALUE_INVALID = 0x013
    ACTION_PROHIBITED = 0x01B
    DATA_INVALID = 0x020
    DATA_LEN_RANGE = 0x021
    DEVICE_ERROR = 0x030
    DEVICE_MEMORY = 0x031
    DEVICE_REMOVED = 0x032
    ENCRYPTED_DATA_INVALID = 0x040
    ENCRYPTED_DATA_LEN_RANGE = 0x041
    FUNCTION_CANCELED = 0x050
    FUNCTION_NOT_PARALLEL = 0x051
    FUNCTION_NOT_SUPPORTED = 0x054
    KEY_HANDLE_INVALID = 0x060
    KEY_SIZE_RANGE = 0x062
    KEY_TYPE_INCONSISTENT = 0x063
    KEY_NOT_NEEDED = 0x064
    KEY_CHANGED = 0x065
    KEY_NEEDED = 0x066
    KEY_INDIGESTIBLE = 0x067
    KEY_FUNCTION_NOT_PERMITTED = 0x068
    KEY_NOT_WRAPPABLE = 0x069
    KEY_UNEXTRACTABLE = 0x06A
    MECHANISM_INVALID = 0x070
    MECHANISM_PARAM_INVALID = 0x071
    OBJECT_HANDLE_INVALID = 0x082
    OPERATION_ACTIVE = 0x090
    OPERATION_NOT_INITIALIZED = 0x091
    PIN_INCORRECT = 0x0A0
    PIN_INVALID = 0x0A1
    PIN_LEN_RANGE = 0x0A2
    PIN_EXPIRED = 0x0A3
    PIN_LOCKED = 0x0A4
    SESSION_CLOSED = 0x0B0
    SESSION_COUNT = 0x0B1
    SESSION_HANDLE_INVALID = 0x0B3
    SESSION_PARALLEL_NOT_SUPPORTED = 0x0B4
    SESSION_READ_ONLY = 0x0B5
    SESSION_EXISTS = 0x0B6
    SESSION_READ_ONLY_EXISTS = 0x0B7
    SESSION_READ_WRITE_SO_EXISTS = 0x0B8
    SIGNATURE_INVALID = 0x0C0
    SIGNATURE_LEN_RANGE = 0x0C1
    TEMPLATE_INCOMPLETE = 0x0D0
    TEMPLATE_INCONSISTENT = 0x0D1
    TOKEN_NOT_PRESENT = 0x0E0
    TOKEN_NOT_RECOGNIZED = 0x0E1
    TOKEN_WRITE_PROTECTED = 0x0E2
    UNWRAPPING_KEY_HANDLE_INVALID = 0x0F0
    UNWRAPPING_KEY_SIZE_RANGE = 0x0F1
    UNWRAPPING_KEY_TYPE_INCONSISTENT = 0x0F2
    USER_ALREADY_LOGGED_IN = 0x100
    USER_NOT_LOGGED_IN = 0x101
    USER_PIN_NOT_INITIALIZED = 0x102
    USER_TYPE_INVALID = 0x103
    USER_ANOTHER_ALREADY_LOGGED_IN = 0x104
    USER_TOO_MANY_TYPES = 0x105
    WRAPPED_KEY_INVALID = 0x110
    WRAPPED_KEY_LEN_RANGE = 0x112
    WRAPPING_KEY_HANDLE_INVALID = 0x113
    WRAPPING_KEY_SIZE_RANGE = 0x114
    WRAPPING_KEY_TYPE_INCONSISTENT = 0x115
    RANDOM_SEED_NOT_SUPPORTED = 0x120
    RANDOM_NO_RNG = 0x121
    DOMAIN_PARAMS_INVALID = 0x130
    CURVE_NOT_SUPPORTED = 0x140
    BUFFER_TOO_SMALL = 0x150
    SAVED_STATE_INVALID = 0x160
    INFORMATION_SENSITIVE = 0x170
    STATE_UNSAVEABLE = 0x180
    CRYPTOKI_NOT_INITIALIZED = 0x190
    CRYPTOKI_ALREADY_INITIALIZED = 0x191
    MUTEX_BAD = 0x1A0
    MUTEX_NOT_LOCKED = 0x1A1
    NEW_PIN_MODE = 0x1B0
    NEXT_OTP = 0x1B1
    EXCEEDED_MAX_ITERATIONS = 0x1B5
    FIPS_SELF_TEST_FAILED = 0x1B6
    LIBRARY_LOAD_FAILED = 0x1B7
    PIN_TOO_WEAK = 0x1B8
    PUBLIC_KEY_INVALID = 0x1B9
    FUNCTION_REJECTED = 0x200


class CKO(IntEnum):
    DATA = 0
    CERTIFICATE = 1
    PUBLIC_KEY = 2
    PRIVATE_KEY = 3
    SECRET_KEY = 4
    HW_FEATURE = 5
    DOMAIN_PARAMETERS = 6
    MECHANISM = 7
    OTP_KEY = 8


class CKK(IntEnum):
    RSA = 0x00
    DSA = 0x01
    DH = 0x02
    EC = 0x03
    GENERIC_SECRET = 0x10
    DES = 0x13
    DES2 = 0x14
    DES3 = 0x15
    AES = 0x1F
    EC_EDWARDS = 0x40  # v3.0 value; SoftHSM2 2.6 uses it too (vendor range before 3.0)


class CKC(IntEnum):
    X_509 = 0
    X_509_ATTR_CERT = 1
    WTLS = 2


class CKA(IntEnum):
    CLASS = 0x000
    TOKEN = 0x001
    PRIVATE = 0x002
    LABEL = 0x003
    APPLICATION = 0x010
    VALUE = 0x011
    OBJECT_ID = 0x012
    CERTIFICATE_TYPE = 0x080
    ISSUER = 0x081
    SERIAL_NUMBER = 0x082
    AC_ISSUER = 0x083
    OWNER = 0x084
    ATTR_TYPES = 0x085
    TRUSTED = 0x086
    CERTIFICATE_CATEGORY = 0x087
    JAVA_MIDP_SECURITY_DOMAIN = 0x088
    URL = 0x089
    HASH_OF_SUBJECT_PUBLIC_KEY = 0x08A
    HASH_OF_ISSUER_PUBLIC_KEY = 0x08B
    NAME_HASH_ALGORITHM = 0x08C
    CHECK_VALUE = 0x090
    KEY_TYPE = 0x100
    SUBJECT = 0x101
    ID = 0x102
    SENSITIVE = 0x103
    ENCRYPT = 0x104
    DECRYPT = 0x105
    WRAP = 0x106
    UNWRAP = 0x107
    SIGN = 0x108
    SIGN_RECOVER = 0x109
    VERIFY = 0x10A
    VERIFY_RECOVER = 0x10B
    DERIVE = 0x10C
    START_DATE = 0x110
    END_DATE = 0x111
    MODULUS = 0x120
    MODULUS_BITS = 0x121
    PUBLIC_EXPONENT = 0x122
    PRIVATE_EXPONENT = 0x123
    PRIME_1 = 0x124
    PRIME_2 = 0x125
    EXPONENT_1 = 0x126
    EXPONENT_2 = 0x127
    COEFFICIENT = 0x128
    PUBLIC_KEY_INFO = 0x129
    PRIME = 0x130
    SUBPRIME = 0x131
    BASE = 0x132
    PRIME_BITS = 0x133
    SUBPRIME_BITS = 0x134
    VALUE_BITS = 0x160
    VALUE_LEN = 0x161
    EXTRACTABLE = 0x162
    LOCAL = 0x163
    NEVER_EXTRACTABLE = 0x164
    ALWAYS_SENSITIVE = 0x165
    KEY_GEN_MECHANISM = 0x166
    MODIFIABLE = 0x170
    COPYABLE = 0x171
    DESTROYABLE = 0x172
    EC_PARAMS = 0x180
    EC_POINT = 0x181
    ALWAYS_AUTHENTICATE = 0x202
    WRAP_WITH_TRUSTED = 0x210
    WRAP_TEMPLATE = CKF_ARRAY_ATTRIBUTE | 0x211
    UNWRAP_TEMPLATE = CKF_ARRAY_ATTRIBUTE | 0x212
    DERIVE_TEMPLATE = CKF_ARRAY_ATTRIBUTE | 0x213
    HW_FEATURE_TYPE = 0x300
    RESET_ON_INIT = 0x301
    HAS_RESET = 0x302
    ALLOWED_MECHANISMS = CKF_ARRAY_ATTRIBUTE | 0x600


class CKM(IntEnum):
    RSA_PKCS_KEY_PAIR_GEN = 0x0000
    RSA_PKCS = 0x0001
    RSA_X_509 = 0x0003
    MD5_RSA_PKCS = 0x0005
    SHA1_RSA_PKCS = 0x0006
    RSA_PKCS_OAEP = 0x0009
    RSA_PKCS_PSS = 0x000D
    SHA1_RSA_PKCS_PSS = 0x000E
    DSA_KEY_PAIR_GEN = 0x0010
    DSA = 0x0011
    DSA_SHA1 = 0x0012
    DSA_SHA224 = 0x0013
    DSA_SHA256 = 0x0014
    DSA_SHA384 = 0x0015
    DSA_SHA512 = 0x0016
    DH_PKCS_KEY_PAIR_GEN = 0x0020
    DH_PKCS_DERIVE = 0x0021
    SHA256_RSA_PKCS = 0x0040
    SHA384_RSA_PKCS = 0x0041
    SHA512_RSA_PKCS = 0x0042
    SHA256_RSA_PKCS_PSS = 0x0043
    SHA384_RSA_PKCS_PSS = 0x0044
    SHA512_RSA_PKCS_PSS = 0x0045
    SHA224_RSA_PKCS = 0x0046
    SHA224_RSA_PKCS_PSS = 0x0047
    DES_KEY_GEN = 0x0120
    DES_ECB = 0x0121
    DES_CBC = 0x0122
    DES_CBC_PAD = 0x0125
    DES2_KEY_GEN = 0x0130
    DES3_KEY_GEN = 0x0131
    DES3_ECB = 0x0132
    DES3_CBC = 0x0133
    DES3_CBC_PAD = 0x0136
    DES3_CMAC_GENERAL = 0x0137
    DES3_CMAC = 0x0138
    MD5 = 0x0210
    MD5_HMAC = 0x0211
    SHA_1 = 0x0220
    SHA_1_HMAC = 0x0221
    SHA256 = 0x0250
    SHA256_HMAC = 0x0251
    SHA224 = 0x0255
    SHA224_HMAC = 0x0256
    SHA384 = 0x0260
    SHA384_HMAC = 0x0261
    SHA512 = 0x0270
    SHA512_HMAC = 0x0271
    GENERIC_SECRET_KEY_GEN = 0x0350
    DSA_PARAMETER_GEN = 0x2000
    DH_PKCS_PARAMETER_GEN = 0x2001
    EC_KEY_PAIR_GEN = 0x1040
    ECDSA = 0x1041
    ECDSA_SHA1 = 0x1042
    ECDSA_SHA224 = 0x1043
    ECDSA_SHA256 = 0x1044
    ECDSA_SHA384 = 0x1045
    ECDSA_SHA512 = 0x1046
    ECDH1_DERIVE = 0x1050
    EC_EDWARDS_KEY_PAIR_GEN = 0x1055
    EDDSA = 0x1057
    AES_KEY_GEN = 0x1080
    AES_ECB = 0x1081
    AES_CBC = 0x1082
    AES_MAC = 0x1083
    AES_MAC_GENERAL = 0x1084
    AES_CBC_PAD = 0x1085
    AES_CTR = 0x1086
    AES_GCM = 0x1087
    AES_CMAC_GENERAL = 0x108B
    AES_CMAC = 0x108A
    DES_ECB_ENCRYPT_DATA = 0x1100
    DES_CBC_ENCRYPT_DATA = 0x1101
    DES3_ECB_ENCRYPT_DATA = 0x1102
    DES3_CBC_ENCRYPT_DATA = 0x1103
    AES_ECB_ENCRYPT_DATA = 0x1104
    AES_CBC_ENCRYPT_DATA = 0x1105
    AES_KEY_WRAP = 0x2109
    AES_KEY_WRAP_PAD = 0x210A  # RFC 5649 ("KWP"), the v2.40 mechanism number


class CKG(IntEnum):
    """Mask generation functions (CK_RSA_PKCS_MGF_TYPE)."""
    MGF1_SHA1 = 1
    MGF1_SHA256 = 2
    MGF1_SHA384 = 3
    MGF1_SHA512 = 4
    MGF1_SHA224 = 5


class CKD(IntEnum):
    """Key derivation functions for ECDH (CK_EC_KDF_TYPE)."""
    NULL = 1
    SHA1_KDF = 2
    SHA224_KDF = 5
    SHA256_KDF = 6
    SHA384_KDF = 7
    SHA512_KDF = 8


CKZ_DATA_SPECIFIED = 1  # OAEP source of the encoding parameter (the label)


class CKU(IntEnum):
    SO = 0
    USER = 1
    CONTEXT_SPECIFIC = 2


class CKS(IntEnum):
    RO_PUBLIC_SESSION = 0
    RO_USER_FUNCTIONS = 1
    RW_PUBLIC_SESSION = 2
    RW_USER_FUNCTIONS = 3
    RW_SO_FUNCTIONS = 4


class SlotFlag(IntFlag):
    TOKEN_PRESENT = 0x1
    REMOVABLE_DEVICE = 0x2
    HW_SLOT = 0x4


class TokenFlag(IntFlag):
    RNG = 0x1
    WRITE_PROTECTED = 0x2
    LOGIN_REQUIRED = 0x4
    USER_PIN_INITIALIZED = 0x8
    RESTORE_KEY_NOT_NEEDED = 0x20
    CLOCK_ON_TOKEN = 0x40
    PROTECTED_AUTHENTICATION_PATH = 0x100
    DUAL_CRYPTO_OPERATIONS = 0x200
    TOKEN_INITIALIZED = 0x400
    SECONDARY_AUTHENTICATION = 0x800
    USER_PIN_COUNT_LOW = 0x10000
    USER_PIN_FINAL_TRY = 0x20000
    USER_PIN_LOCKED = 0x40000
    USER_PIN_TO_BE_CHANGED = 0x80000
    SO_PIN_COUNT_LOW = 0x100000
    SO_PIN_FINAL_TRY = 0x200000
    SO_PIN_LOCKED = 0x400000
    SO_PIN_TO_BE_CHANGED = 0x800000


class SessionFlag(IntFlag):
    RW_SESSION = 0x2
    SERIAL_SESSION = 0x4


class MechFlag(IntFlag):
    HW = 0x1
    ENCRYPT = 0x100
    DECRYPT = 0x200
    DIGEST = 0x400
    SIGN = 0x800
    SIGN_RECOVER = 0x1000
    VERIFY = 0x2000
    VERIFY_RECOVER = 0x4000
    GENERATE = 0x8000
    GENERATE_KEY_PAIR = 0x10000
    WRAP = 0x20000
    UNWRAP = 0x40000
    DERIVE = 0x80000
    EC_F_P = 0x100000
    EC_NAMEDCURVE = 0x800000
    EC_UNCOMPRESS = 0x1000000
    EC_COMPRESS = 0x2000000


class InitFlag(IntFlag):
    LIBRARY_CANT_CREATE_OS_THREADS = 0x1
    OS_LOCKING_OK = 0x2


# ---- fast member lookup ------------------------------------------------------------------
# On Python 3.11, `EnumType` defines `__getattr__`, which puts every class attribute
# lookup (`CKA.VALUE`) on CPython's slow hook: ~80 ns instead of ~10 ns. The engine makes
# dozens such lookups per PKCS#11 call (a quarter of C_UnwrapKey's Python time), so
# each enum is published as a plain namespace holding the same members. Members stay
# IntEnum/IntFlag members (names in logs, int maths); calling, indexing, iterating,
# `in` and isinstance go to the enum itself. (Python 3.12 dropped that __getattr__.)

class _Members(type):
    """The type of a namespace of one enum's members (see above)."""

    _enum: Any

    def __call__(cls, *args: Any) -> Any:
        return cls._enum(*args)

    def __getitem__(cls, name: str) -> Any:
        return cls._enum[name]

    def __iter__(cls) -> Iterator[Any]:
        return iter(cls._enum)

    def __len__(cls) -> int:
        return len(cls._enum)

    def __contains__(cls, value: object) -> bool:
        return value in cls._enum

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, cls._enum)

    def __repr__(cls) -> str:
        return repr(cls._enum)

    @property
    def __members__(cls) -> Mapping[str, Any]:
        return cls._enum.__members__


def fast_members(enum: Any) -> Any:
    """A namespace of `enum`'s members with plain (fast) attribute lookup."""
    return _Members(enum.__name__, (), {**enum.__members__, "_enum": enum,
                                        "__doc__": enum.__doc__, "__module__": enum.__module__})


for _name in ("CKR", "CKO", "CKK", "CKC", "CKA", "CKM", "CKG", "CKD", "CKU", "CKS",
              "SlotFlag", "TokenFlag", "SessionFlag", "MechFlag", "InitFlag"):
    globals()[_name] = fast_members(globals()[_name])
del _name


def c_header() -> str:
    """The `#define`s the C shim needs, generated so that C and Python share one source."""
    lines = ["/* generated from hspkcs11/consts.py by csrc/build_shim.py: do not edit */",
             "#pragma once"]
    for enum, prefix in ((CKR, "CKR_"), (CKU, "CKU_"), (SessionFlag, "CKF_"),
                         (InitFlag, "CKF_"), (TokenFlag, "CKF_")):
        lines += [f"#define HS_{prefix}{m.name} 0x{int(m):X}UL" for m in enum]
    lines.append(f"#define HS_CK_UNAVAILABLE_INFORMATION 0x{CK_UNAVAILABLE_INFORMATION:X}UL")
    lines.append(f"#define HS_CKF_ARRAY_ATTRIBUTE 0x{CKF_ARRAY_ATTRIBUTE:X}UL")
    return "\n".join(lines) + "\n"
