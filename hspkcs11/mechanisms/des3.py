"""The DES family (PKCS#11 v2.40 Current Mechanisms "DES", "Double and Triple-length DES",
"DES3 CMAC"/"General block cipher" CMAC, and the DES/DES3 variants of "Key derivation by
data encryption"): the CKK_DES, CKK_DES2 and CKK_DES3 key types; CKM_DES_KEY_GEN,
DES_ECB, DES_CBC, DES_CBC_PAD, DES_{ECB,CBC}_ENCRYPT_DATA; CKM_DES2_KEY_GEN,
DES3_KEY_GEN, DES3_ECB, DES3_CBC, DES3_CBC_PAD, DES3_CMAC, DES3_CMAC_GENERAL and
DES3_{ECB,CBC}_ENCRYPT_DATA.

Every key runs through `cryptography`'s TripleDES with the keying options of SP 800-67
§3.1: a DES key k is k||k||k (option 3, which is single DES), a DES2 key k1||k2 is
k1||k2||k1 (option 2), a DES3 key is used as it is (option 1). The DES3 mechanisms take
DES2 and DES3 keys, the DES mechanisms DES keys.

Key sizes: the spec says the ulMinKeySize/ulMaxKeySize fields are not used for DES and
DES3 (general block cipher key generation), and SoftHSM2 reports 0/0; so do we. The key
length is checked here instead: it must be the one of the key's type.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import CipherAlgorithm

from ..consts import CKA, CKK, CKM, CKO, CKR
from ..errors import P11Error
from .aes import WRAP_FLAGS, BlockCipher, block_mode_ops, cmac_ops, encrypt_data_derive
from .generic import SECRET_VALUE, secret_len
from .params import Param, ParamKind
from .registry import Attrs, KeyTypeSpec, KeyView, Mechanism, Template, register, register_key_type

try:  # cryptography >= 43 keeps TripleDES among the "decrepit" algorithms
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # older versions: the deprecated location, without its warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

# CKA_VALUE length of each key type (tables "DES/DES2/DES3 secret key object attributes").
KEY_LENS = {CKK.DES: 8, CKK.DES2: 16, CKK.DES3: 24}
DES3_LEN = KEY_LENS[CKK.DES3]
DES_BLOCK = 8
DES3_CMAC_LEN = 8    # a full CMAC is one block (SP 800-38B §6.2)

# Each byte with its low bit set so the byte has odd parity (FIPS 46-3 §3).
_ODD_PARITY = bytes((b & 0xFE) | (bin(b & 0xFE).count("1") + 1) % 2 for b in range(256))


def _keying(value: bytes) -> bytes:
    """The 24-byte TDEA key of a DES, DES2 or DES3 value (SP 800-67 §3.1 keying options).
    `cryptography` deprecates its own expansion of short keys, so it is done here."""
    if len(value) == 8:
        return value * 3
    if len(value) == 16:
        return value + value[:8]
    return value


def _tdea(value: bytes) -> CipherAlgorithm:
    return TripleDES(_keying(value))


@dataclass(frozen=True)
class DesCipher(BlockCipher):
    """A `BlockCipher` whose key must be of one of `key_types`, with that type's length."""

    key_types: tuple[int, ...] = ()

    def key(self, key: KeyView) -> CipherAlgorithm:
        if key.key_type not in self.key_types:
            raise P11Error(CKR.KEY_TYPE_INCONSISTENT, f"key type 0x{key.key_type:x}")
        value = key.secret()
        if len(value) != KEY_LENS[key.key_type]:
            raise P11Error(CKR.KEY_SIZE_RANGE, f"key of {len(value)} bytes")
        return self.algorithm(value)


DES = DesCipher(_tdea, DES_BLOCK, frozenset((8,)), key_types=(CKK.DES,))
DES3 = DesCipher(_tdea, DES_BLOCK, frozenset((16, 24)), key_types=(CKK.DES2, CKK.DES3))
DES_SIZES = {"key_types": DES.key_types}
DES3_SIZES = {"key_types": DES3.key_types}


def _check_value(key_type: int):
    n = KEY_LENS[key_type]

    def check(value: bytes) -> None:
        # Parity is not checked: SoftHSM2 accepts any, and DES ignores the parity bits.
        if len(value) != n:
            raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"{CKK(key_type).name} key of {len(value)} bytes")
    return check


def _generator(key_type: int):
    def generate(template: Template, param: Param) -> Attrs:
        # Generated keys get proper parity bits, as the spec requires of DES key generation.
        return {CKA.VALUE: os.urandom(KEY_LENS[key_type]).translate(_ODD_PARITY),
                CKA.KEY_TYPE: key_type}
    return generate


# --- DES3 CMAC (SP 800-38B with TDEA: 64-bit blocks, so MACs of up to 8 bytes) ---------------

_CMAC, _CMAC_GENERAL = cmac_ops(DES3, DES3_CMAC_LEN)


# DES keys have CKA_VALUE only (footnotes 1,4,6,7); no CKA_VALUE_LEN, as in SoftHSM2.
for _kt in KEY_LENS:
    register_key_type(KeyTypeSpec(_kt, {CKO.SECRET_KEY: {CKA.VALUE: SECRET_VALUE}}, size=secret_len,
                                  check_value=_check_value(_kt), value_len=KEY_LENS[_kt]))


def _block_mechanisms(cipher: DesCipher, ecb: int, cbc: int, cbc_pad: int, ecb_data: int,
                      cbc_data: int) -> tuple[Mechanism, ...]:
    """ECB, CBC, CBC_PAD and the two ENCRYPT_DATA derivations of one DES variant. ECB and
    CBC zero-pad a wrapped key to the block size (Current Mechanisms "DES-ECB", "DES-CBC")."""
    types = {"key_types": cipher.key_types}
    return (
        Mechanism(ecb, **types, extra_flags=WRAP_FLAGS, wrap_pad=DES_BLOCK,
                  **block_mode_ops(cipher, chained=False, pad=False)),
        Mechanism(cbc, **types, param=ParamKind.RAW, extra_flags=WRAP_FLAGS, wrap_pad=DES_BLOCK,
                  **block_mode_ops(cipher, chained=True, pad=False)),
        Mechanism(cbc_pad, **types, param=ParamKind.RAW, extra_flags=WRAP_FLAGS,
                  **block_mode_ops(cipher, chained=True, pad=True)),
        Mechanism(ecb_data, **types, param=ParamKind.DERIVATION_STRING,
                  derive=encrypt_data_derive(cipher, chained=False)),
        Mechanism(cbc_data, **types, param=ParamKind.DES_CBC_DATA,
                  derive=encrypt_data_derive(cipher, chained=True)),
    )


register(
    Mechanism(CKM.DES_KEY_GEN, generate=_generator(CKK.DES)),
    Mechanism(CKM.DES2_KEY_GEN, generate=_generator(CKK.DES2)),
    Mechanism(CKM.DES3_KEY_GEN, generate=_generator(CKK.DES3)),
    *_block_mechanisms(DES, CKM.DES_ECB, CKM.DES_CBC, CKM.DES_CBC_PAD,
                       CKM.DES_ECB_ENCRYPT_DATA, CKM.DES_CBC_ENCRYPT_DATA),
    *_block_mechanisms(DES3, CKM.DES3_ECB, CKM.DES3_CBC, CKM.DES3_CBC_PAD,
                       CKM.DES3_ECB_ENCRYPT_DATA, CKM.DES3_CBC_ENCRYPT_DATA),
    Mechanism(CKM.DES3_CMAC, **DES3_SIZES, **_CMAC),
    Mechanism(CKM.DES3_CMAC_GENERAL, **DES3_SIZES, param=ParamKind.ULONG,
              **_CMAC_GENERAL),
)
