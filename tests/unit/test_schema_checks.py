"""The template checks of schema.new_object: a good template passes through compiled set
checks, and a bad one gets the code for its first offending attribute, in the caller's
order (Base §4.1.1), exactly as an attribute-by-attribute check gives."""
from __future__ import annotations

from typing import Any

import pytest

from hspkcs11.consts import CKA, CKK, CKO, CKR
from hspkcs11.errors import P11Error
from hspkcs11.p11.schema import How, new_object

SECRET, AES, RSA = int(CKO.SECRET_KEY), int(CKK.AES), int(CKK.RSA)


def _rv(how: How, klass: int, kt: int, template: dict[int, Any], is_so: bool = False) -> int:
    try:
        new_object(how, klass, kt, template, is_so)
    except P11Error as exc:
        return exc.rv
    return CKR.OK


CASES = [
    # (how, template in the caller's order, is_so, expected code)
    (How.UNWRAP, {CKA.LABEL: b"ok", CKA.ENCRYPT: True}, False, CKR.OK),
    (How.UNWRAP, {CKA.LOCAL: True, CKA.MODULUS_BITS: 2048}, False, CKR.ATTRIBUTE_READ_ONLY),
    (How.UNWRAP, {CKA.MODULUS_BITS: 2048, CKA.LOCAL: True}, False, CKR.ATTRIBUTE_TYPE_INVALID),
    (How.UNWRAP, {CKA.VALUE: bytes(32)}, False, CKR.TEMPLATE_INCONSISTENT),         # FORBID_UNWRAP
    (How.CREATE, {CKA.VALUE: bytes(32), CKA.VALUE_LEN: 32}, False, CKR.ATTRIBUTE_READ_ONLY),
    (How.GENERATE, {CKA.VALUE: bytes(32)}, False, CKR.TEMPLATE_INCONSISTENT),
    (How.GENERATE, {CKA.TRUSTED: True, CKA.LOCAL: True}, False, CKR.ATTRIBUTE_READ_ONLY),
    (How.UNWRAP, {CKA.TRUSTED: True}, False, CKR.ATTRIBUTE_READ_ONLY),                # SO only
    (How.UNWRAP, {CKA.TRUSTED: True}, True, CKR.OK),
    (How.UNWRAP, {CKA.TRUSTED: False}, False, CKR.OK),                                # false is anyone's
    (How.CREATE, {CKA.LABEL: b"no value"}, False, CKR.TEMPLATE_INCOMPLETE),           # CKA_VALUE required
    (How.UNWRAP, {0x80001234: b"vendor"}, False, CKR.ATTRIBUTE_TYPE_INVALID),
]


def _id(case: tuple) -> str:
    how, template, is_so, _ = case
    names = [getattr(k, "name", hex(k)) for k in template]
    return "-".join([how.name, *names] + (["so"] if is_so else []))


@pytest.mark.parametrize("how,template,is_so,expected", CASES, ids=[_id(c) for c in CASES])
def test_the_first_offending_attribute_names_the_code(how: How, template: dict[int, Any], is_so: bool,
                                                       expected: int) -> None:
    as_ints = {int(k): v for k, v in template.items()}
    assert _rv(how, SECRET, AES, as_ints, is_so) == expected
    assert _rv(how, SECRET, AES, template, is_so) == expected      # IntEnum keys: the same


def test_a_good_template_comes_back_with_defaults_and_untouched() -> None:
    template = {int(CKA.LABEL): b"k", int(CKA.ENCRYPT): True}
    attrs = new_object(How.UNWRAP, SECRET, AES, template)
    assert template == {int(CKA.LABEL): b"k", int(CKA.ENCRYPT): True}
    assert attrs[CKA.LABEL] == b"k" and attrs[CKA.ENCRYPT] is True
    assert attrs[CKA.TOKEN] is False and attrs[CKA.SENSITIVE] is False   # defaults (table 10)
    attrs[CKA.LABEL] = b"changed"
    assert new_object(How.UNWRAP, SECRET, AES, template)[CKA.LABEL] == b"k"
