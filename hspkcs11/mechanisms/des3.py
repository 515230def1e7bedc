"""Triple-DES (PKCS#11 v2.40 Current Mechanisms "Double and Triple-length DES", and the
DES3 variants of "Key derivation by data encryption"): the CKK_DES3 key type,
CKM_DES3_KEY_GEN, DES3_ECB, DES3_CBC, DES3_CBC_PAD, DES3_{ECB,CBC}_ENCRYPT_DATA.

Key sizes: the spec says the ulMinKeySize/ulMaxKeySize fields are not used for DES3
(general block cipher key generation), and SoftHSM2 reports 0/0; so do we. The key
length (24 bytes) is checked here instead.
"""
from __future__ import annotations

import os
import warnings

from ..consts import CKA, CKK, CKM, CKO, CKR
from ..errors import P11Error
from .aes import WRAP_FLAGS, BlockCipher, block_mode_ops, encrypt_data_derive
from .generic import SECRET_VALUE, secret_len
from .params import Param, ParamKind
from .registry import Attrs, KeyTypeSpec, Mechanism, Template, register, register_key_type

try:  # cryptography >= 43 keeps TripleDES among the "decrepit" algorithms
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # older versions: the deprecated location, without its warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

DES3_LEN = 24
DES3 = BlockCipher(TripleDES, 8, frozenset((DES3_LEN,)))
DES3_SIZES = {"key_types": (CKK.DES3,)}

# Each byte with its low bit set so the byte has odd parity (FIPS 46-3 §3).
_ODD_PARITY = bytes((b & 0xFE) | (bin(b & 0xFE).count("1") + 1) % 2 for b in range(256))


def _check_value(value: bytes) -> None:
    # Parity is not checked: SoftHSM2 accepts any, and DES ignores the parity bits.
    if len(value) != DES3_LEN:
        raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"DES3 key of {len(value)} bytes")


def _generate(template: Template, param: Param) -> Attrs:
    # Generated keys get proper parity bits, as the spec requires.
    return {CKA.VALUE: os.urandom(DES3_LEN).translate(_ODD_PARITY), CKA.KEY_TYPE: CKK.DES3}


# A DES3 key has CKA_VALUE only (footnotes 1,4,6,7); no CKA_VALUE_LEN, as in SoftHSM2.
register_key_type(KeyTypeSpec(CKK.DES3, {CKO.SECRET_KEY: {CKA.VALUE: SECRET_VALUE}},
                              size=secret_len, check_value=_check_value, value_len=DES3_LEN))

register(
    Mechanism(CKM.DES3_KEY_GEN, generate=_generate),
    Mechanism(CKM.DES3_ECB, **DES3_SIZES, extra_flags=WRAP_FLAGS, wrap_pad=8,
              **block_mode_ops(DES3, chained=False, pad=False)),
    Mechanism(CKM.DES3_CBC, **DES3_SIZES, param=ParamKind.RAW, extra_flags=WRAP_FLAGS, wrap_pad=8,
              **block_mode_ops(DES3, chained=True, pad=False)),
    Mechanism(CKM.DES3_CBC_PAD, **DES3_SIZES, param=ParamKind.RAW, extra_flags=WRAP_FLAGS,
              **block_mode_ops(DES3, chained=True, pad=True)),
    Mechanism(CKM.DES3_ECB_ENCRYPT_DATA, **DES3_SIZES, param=ParamKind.DERIVATION_STRING,
              derive=encrypt_data_derive(DES3, chained=False)),
    Mechanism(CKM.DES3_CBC_ENCRYPT_DATA, **DES3_SIZES, param=ParamKind.DES_CBC_DATA,
              derive=encrypt_data_derive(DES3, chained=True)),
)
