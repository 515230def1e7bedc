"""Objects (Base §4, §5.7): create, copy, destroy, attributes, find; both modules."""
from __future__ import annotations

from typing import Callable

import pkcs11
import pytest
from pkcs11 import Attribute as A, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (AttributeReadOnly, AttributeSensitive, AttributeTypeInvalid,
                               AttributeValueInvalid, ObjectHandleInvalid, TemplateIncomplete)

from conftest import Module
from hspkcs11.consts import CK_UNAVAILABLE_INFORMATION, CKA, CKO, CKR
from rawp11 import Raw, ffi, template, ulong

CERT_DER = bytes.fromhex(  # a tiny self-signed X.509 certificate is not needed: any DER value will do
    "3003020101")


def ckr_of(exc: BaseException) -> int:
    """The CK_RV behind a python-pkcs11 exception (it leaves some codes unnamed)."""
    names = {"ActionProhibited": CKR.ACTION_PROHIBITED, "AttributeReadOnly": CKR.ATTRIBUTE_READ_ONLY}
    if type(exc).__name__ in names:
        return names[type(exc).__name__]
    return int(str(exc).rsplit("0x", 1)[1], 16)


def _data(s: pkcs11.Session, **extra: object) -> pkcs11.Object:
    attrs = {A.CLASS: ObjectClass.DATA, A.TOKEN: True, A.PRIVATE: False, A.LABEL: "d", A.VALUE: b"v"}
    attrs.update({getattr(A, k): v for k, v in extra.items()})
    return s.create_object(attrs)


def _aes(s: pkcs11.Session, **extra: object) -> pkcs11.SecretKey:
    attrs = {A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES, A.TOKEN: True, A.VALUE: bytes(16),
             A.LABEL: "aes"}
    attrs.update({getattr(A, k): v for k, v in extra.items()})
    return s.create_object(attrs)


def test_data_object_defaults(session: pkcs11.Session) -> None:
    obj = session.create_object({A.CLASS: ObjectClass.DATA, A.VALUE: b"x"})
    assert obj[A.TOKEN] is False
    assert obj[A.MODIFIABLE] is True and obj[A.COPYABLE] is True and obj[A.DESTROYABLE] is True
    assert obj[A.PRIVATE] is True
    assert obj[A.APPLICATION] == "" and obj[A.OBJECT_ID] == b"" and obj[A.LABEL] == ""


def test_secret_key_defaults_and_history_of_a_created_key(session: pkcs11.Session) -> None:
    key = session.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES,
                                 A.VALUE: bytes(range(16))})
    assert key[A.SENSITIVE] is False and key[A.EXTRACTABLE] is False
    assert key[A.ENCRYPT] and key[A.DECRYPT] and key[A.SIGN] and key[A.VERIFY]
    assert key[A.LOCAL] is False
    assert key[A.ALWAYS_SENSITIVE] is False and key[A.NEVER_EXTRACTABLE] is False
    assert key[A.VALUE_LEN] == 16


def test_generated_key_keeps_its_history(session: pkcs11.Session) -> None:
    key = session.generate_key(KeyType.AES, 128, template={A.SENSITIVE: True, A.EXTRACTABLE: False})
    assert key[A.LOCAL] is True
    assert key[A.KEY_GEN_MECHANISM] == Mechanism.AES_KEY_GEN
    assert key[A.ALWAYS_SENSITIVE] is True and key[A.NEVER_EXTRACTABLE] is True
    plain = session.generate_key(KeyType.AES, 128, template={A.SENSITIVE: False, A.EXTRACTABLE: True})
    assert plain[A.ALWAYS_SENSITIVE] is False and plain[A.NEVER_EXTRACTABLE] is False
    plain[A.SENSITIVE] = True
    assert plain[A.ALWAYS_SENSITIVE] is False      # history: it was once readable


def test_sensitive_value_is_never_readable(session: pkcs11.Session) -> None:
    key = _aes(session, SENSITIVE=True, EXTRACTABLE=True)
    with pytest.raises(AttributeSensitive):
        key[A.VALUE]
    unextractable = _aes(session, SENSITIVE=False, EXTRACTABLE=False)
    with pytest.raises(AttributeSensitive):
        unextractable[A.VALUE]
    readable = _aes(session, SENSITIVE=False, EXTRACTABLE=True)
    assert readable[A.VALUE] == bytes(16)


def test_sensitive_cannot_go_back_to_false_nor_extractable_to_true(session: pkcs11.Session) -> None:
    key = _aes(session, SENSITIVE=True, EXTRACTABLE=False)
    with pytest.raises(AttributeReadOnly):
        key[A.SENSITIVE] = False
    with pytest.raises(AttributeReadOnly):
        key[A.EXTRACTABLE] = True


def test_computed_attributes_are_read_only(session: pkcs11.Session) -> None:
    with pytest.raises(AttributeReadOnly):
        _aes(session, LOCAL=True)
    key = _aes(session)
    with pytest.raises(AttributeReadOnly):
        key[A.ALWAYS_SENSITIVE] = True


def test_set_attribute_changes_label_and_id(session: pkcs11.Session) -> None:
    obj = _data(session)
    obj[A.LABEL] = "renamed"
    assert obj[A.LABEL] == "renamed"
    key = _aes(session)
    key[A.ID] = b"\x01\x02"
    assert [k[A.LABEL] for k in session.get_objects({A.ID: b"\x01\x02"})] == ["aes"]


def test_non_modifiable_objects_refuse_changes(session: pkcs11.Session, module: Module) -> None:
    obj = _data(session, MODIFIABLE=False)
    with pytest.raises(pkcs11.exceptions.PKCS11Error) as err:
        obj[A.LABEL] = "x"
    assert ckr_of(err.value) == CKR.ACTION_PROHIBITED


def test_copy_object_with_changes(session: pkcs11.Session) -> None:
    obj = _data(session, LABEL="orig")
    copy = obj.copy({A.LABEL: "copy", A.TOKEN: False})
    assert copy[A.LABEL] == "copy" and copy[A.VALUE] == b"v" and copy[A.TOKEN] is False
    assert obj[A.LABEL] == "orig"


def test_copy_of_non_copyable_object_is_prohibited(session: pkcs11.Session) -> None:
    obj = _data(session, COPYABLE=False)
    with pytest.raises(pkcs11.exceptions.PKCS11Error) as err:
        obj.copy({A.LABEL: "c"})
    assert ckr_of(err.value) == CKR.ACTION_PROHIBITED


def test_destroy_and_non_destroyable(session: pkcs11.Session) -> None:
    obj = _data(session, LABEL="bye")
    obj.destroy()
    assert list(session.get_objects({A.LABEL: "bye"})) == []
    keep = _data(session, LABEL="keep", DESTROYABLE=False)
    with pytest.raises(pkcs11.exceptions.PKCS11Error) as err:
        keep.destroy()
    assert ckr_of(err.value) == CKR.ACTION_PROHIBITED


def test_destroyed_handle_is_invalid(session: pkcs11.Session) -> None:
    obj = _data(session)
    obj.destroy()
    with pytest.raises(ObjectHandleInvalid):
        obj[A.LABEL]


def test_missing_required_attributes(session: pkcs11.Session) -> None:
    with pytest.raises(TemplateIncomplete):
        session.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES})
    with pytest.raises(TemplateIncomplete):
        session.create_object({A.LABEL: "no class"})


def test_bad_attribute_values_and_types(module: Module, token: pkcs11.Token) -> None:
    raw = Raw(module.path)
    slot = next(s.slot_id for s in module.lib.get_slots() if s.get_token().label == token.label)
    h = raw.open_session(slot)
    raw.login(h, 1, "1234")     # data objects are private by default: log in first
    out = ffi.new("CK_OBJECT_HANDLE *")
    try:
        bad_bool, keep = template((CKA.CLASS, ulong(CKO.DATA)), (CKA.TOKEN, b"\x01\x00"))
        assert raw.C_CreateObject(h, bad_bool, 2, out) == CKR.ATTRIBUTE_VALUE_INVALID
        short_ulong, keep = template((CKA.CLASS, b"\x00"))
        # SoftHSM2 treats an unreadable CKA_CLASS as missing; either code names the fault
        assert raw.C_CreateObject(h, short_ulong, 1, out) in (CKR.ATTRIBUTE_VALUE_INVALID,
                                                               CKR.TEMPLATE_INCOMPLETE)
        unknown, keep = template((CKA.CLASS, ulong(CKO.DATA)), (0x7FFF0000, b"x"))
        assert raw.C_CreateObject(h, unknown, 2, out) == CKR.ATTRIBUTE_TYPE_INVALID
        assert raw.C_CreateObject(h, ffi.NULL, 1, out) == CKR.ARGUMENTS_BAD
        assert raw.C_CreateObject(h, unknown, 2, ffi.NULL) == CKR.ARGUMENTS_BAD
    finally:
        raw.C_CloseSession(h)


def test_get_attribute_value_fills_what_it_can(module: Module, token: pkcs11.Token,
                                               session: pkcs11.Session) -> None:
    key = _aes(session, SENSITIVE=True, LABEL="mixed")
    raw = Raw(module.path)
    slot = next(s.slot_id for s in module.lib.get_slots() if s.get_token().label == token.label)
    h = raw.open_session(slot)
    try:
        label = ffi.new("CK_BYTE[16]")
        small = ffi.new("CK_BYTE[1]")
        tmpl = ffi.new("CK_ATTRIBUTE[4]")
        tmpl[0].type, tmpl[0].pValue, tmpl[0].ulValueLen = CKA.LABEL, label, 16
        tmpl[1].type, tmpl[1].pValue, tmpl[1].ulValueLen = CKA.VALUE, small, 1
        tmpl[2].type, tmpl[2].pValue, tmpl[2].ulValueLen = CKA.MODULUS, small, 1
        tmpl[3].type, tmpl[3].pValue, tmpl[3].ulValueLen = CKA.ID, ffi.NULL, 0
        rv = raw.C_GetAttributeValue(h, key.handle, tmpl, 4)
        assert rv in (CKR.ATTRIBUTE_SENSITIVE, CKR.ATTRIBUTE_TYPE_INVALID)
        assert tmpl[0].ulValueLen == 5 and bytes(label[0:5]) == b"mixed"
        assert tmpl[1].ulValueLen == CK_UNAVAILABLE_INFORMATION
        assert tmpl[2].ulValueLen == CK_UNAVAILABLE_INFORMATION
        assert tmpl[3].ulValueLen == 0
        tmpl[0].ulValueLen = 2
        assert raw.C_GetAttributeValue(h, key.handle, tmpl, 1) == CKR.BUFFER_TOO_SMALL
        assert tmpl[0].ulValueLen == CK_UNAVAILABLE_INFORMATION
    finally:
        raw.C_CloseSession(h)


def test_find_matches_any_template(session: pkcs11.Session) -> None:
    for i in range(3):
        _data(session, LABEL=f"find-{i}", APPLICATION="app-x" if i else "app-y")
    found = sorted(o[A.LABEL] for o in session.get_objects({A.APPLICATION: "app-x"}))
    assert found == ["find-1", "find-2"]
    assert [o[A.LABEL] for o in session.get_objects({A.LABEL: "find-0", A.CLASS: ObjectClass.DATA})] == ["find-0"]
    assert list(session.get_objects({A.LABEL: "find-0", A.CLASS: ObjectClass.SECRET_KEY})) == []


def test_unfinished_find_never_wedges_the_session(module: Module, token: pkcs11.Token) -> None:
    raw = Raw(module.path)
    slot = next(s.slot_id for s in module.lib.get_slots() if s.get_token().label == token.label)
    h = raw.open_session(slot)
    try:
        assert raw.C_FindObjectsInit(h, ffi.NULL, 0) == CKR.OK
        assert raw.C_FindObjectsInit(h, ffi.NULL, 0) == CKR.OPERATION_ACTIVE
        assert raw.C_FindObjectsFinal(h) == CKR.OK
        assert raw.C_FindObjectsFinal(h) == CKR.OPERATION_NOT_INITIALIZED
        assert raw.C_FindObjectsInit(h, ffi.NULL, 0) == CKR.OK   # left unfinished on purpose
    finally:
        assert raw.C_CloseSession(h) == CKR.OK
    h = raw.open_session(slot)
    try:
        assert raw.C_FindObjectsInit(h, ffi.NULL, 0) == CKR.OK
    finally:
        raw.C_CloseSession(h)


def test_find_with_an_unknown_attribute_finds_nothing(module: Module, token: pkcs11.Token,
                                                      differs: Callable[[str, str], None]) -> None:
    raw = Raw(module.path)
    slot = next(s.slot_id for s in module.lib.get_slots() if s.get_token().label == token.label)
    h = raw.open_session(slot)
    try:
        tmpl, keep = template((0x7FFF0001, b"x"))
        assert raw.C_FindObjectsInit(h, tmpl, 1) == CKR.OK
        handles, count = ffi.new("CK_OBJECT_HANDLE[4]"), ffi.new("CK_ULONG *")
        assert raw.C_FindObjects(h, handles, 4, count) == CKR.OK
        assert count[0] == 0
        assert raw.C_FindObjectsFinal(h) == CKR.OK
    finally:
        raw.C_CloseSession(h)


def test_certificate_object(session: pkcs11.Session) -> None:
    cert = session.create_object({A.CLASS: ObjectClass.CERTIFICATE, A.CERTIFICATE_TYPE: 0, A.TOKEN: True,
                                  A.SUBJECT: b"\x30\x00", A.VALUE: CERT_DER, A.LABEL: "cert"})
    assert cert[A.VALUE] == CERT_DER
    assert cert[A.PRIVATE] is False
    with pytest.raises(AttributeReadOnly):
        cert[A.TRUSTED] = True     # only the SO may mark a certificate trusted


def test_object_size_is_reported(module: Module, token: pkcs11.Token, session: pkcs11.Session) -> None:
    obj = _data(session, VALUE=b"x" * 100)
    raw = Raw(module.path)
    size = ffi.new("CK_ULONG *")
    slot = next(s.slot_id for s in module.lib.get_slots() if s.get_token().label == token.label)
    h = raw.open_session(slot)
    try:
        rv = raw.C_GetObjectSize(h, obj.handle, size)
        assert rv == CKR.OK
        assert size[0] > 0
        assert raw.C_GetObjectSize(h, 0xDEAD, size) == CKR.OBJECT_HANDLE_INVALID
    finally:
        raw.C_CloseSession(h)


def test_attribute_type_invalid_for_class(session: pkcs11.Session) -> None:
    with pytest.raises(AttributeTypeInvalid):
        session.create_object({A.CLASS: ObjectClass.DATA, A.MODULUS: b"\x01"})


def test_aes_value_length_is_checked(session: pkcs11.Session, differs: Callable[[str, str], None]) -> None:
    differs("softhsm", "SoftHSM2 accepts a 15-byte AES key; AES keys are 16, 24 or 32 bytes (FIPS 197)")
    with pytest.raises(AttributeValueInvalid):
        session.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES, A.VALUE: bytes(15)})
