"""Generic secret keys (PKCS#11 v2.40 Current Mechanisms, "Generic secret key"): the
CKK_GENERIC_SECRET key type and CKM_GENERIC_SECRET_KEY_GEN.

Also home of `template_value_len`, shared by every secret-key generator whose length
comes from CKA_VALUE_LEN (generic, AES).
"""
from __future__ import annotations

import os

from ..consts import CKA, CKK, CKM, CKO, CKR
from ..errors import P11Error
from .params import Param
from .registry import (Attr, AttrFlag, Attrs, KeyTypeSpec, KeyView, Mechanism, Template,
                       register, register_key_type)

# Spec: the key-size fields of CKM_GENERIC_SECRET_KEY_GEN are in bits. SoftHSM2 reports
# 1 .. 0x80000000; we report (and enforce) the same range.
GENERIC_MIN_BITS = 1
GENERIC_MAX_BITS = 0x80000000

# Attribute rules of a secret key whose length varies (generic, AES): table "generic
# secret key object attributes", footnotes 1,4,6,7 (CKA_VALUE) and 2,3 (CKA_VALUE_LEN).
SECRET_VALUE = Attr(AttrFlag.REQUIRED_CREATE | AttrFlag.FORBID_GENERATE | AttrFlag.FORBID_UNWRAP
                    | AttrFlag.SENSITIVE | AttrFlag.SEALED)
SECRET_VALUE_LEN = Attr(AttrFlag.FORBID_CREATE | AttrFlag.REQUIRED_GENERATE)
VARIABLE_SECRET_ATTRS = {CKO.SECRET_KEY: {CKA.VALUE: SECRET_VALUE, CKA.VALUE_LEN: SECRET_VALUE_LEN}}


def template_value_len(template: Template) -> int:
    """CKA_VALUE_LEN of a C_GenerateKey template: missing -> CKR_TEMPLATE_INCOMPLETE."""
    n = template.get(CKA.VALUE_LEN)
    if n is None:
        raise P11Error(CKR.TEMPLATE_INCOMPLETE, "CKA_VALUE_LEN is required to generate this key")
    if not isinstance(n, int) or isinstance(n, bool):
        raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, "CKA_VALUE_LEN is not a CK_ULONG")
    return n


def secret_len(key: KeyView) -> int:
    """Key size of a secret key in bytes (the unit of the AES and HMAC mechanism infos)."""
    return len(key.secret())


def _generate(template: Template, param: Param) -> Attrs:
    n = template_value_len(template)
    if not GENERIC_MIN_BITS <= n * 8 <= GENERIC_MAX_BITS:
        raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"generic secret of {n} bytes")
    return {CKA.VALUE: os.urandom(n), CKA.KEY_TYPE: CKK.GENERIC_SECRET}


# Any length is a valid generic secret (SoftHSM2 accepts even 0 bytes); the mechanisms
# that use one (HMAC) check the length against their own range at init.
register_key_type(KeyTypeSpec(CKK.GENERIC_SECRET, VARIABLE_SECRET_ATTRS, size=secret_len))

register(Mechanism(CKM.GENERIC_SECRET_KEY_GEN, min_key=GENERIC_MIN_BITS,
                   max_key=GENERIC_MAX_BITS, generate=_generate))
