"""Templates the bridge keeps decoded (hspkcs11/abi/bridge.py `_template`).

A client sends the same template call after call, so the bridge keeps the decoded form
by its bytes. What must hold: each call gets its own copy (an object made from a kept
template is not changed by what happens to another), a template differing by one byte
is decoded afresh, a bad template is refused every time, and a template carrying key
material is never kept. The behavioural tests run on both modules.
"""
from __future__ import annotations

import struct
import sys

import pkcs11
import pytest
from pkcs11 import Attribute as A, KeyType, Mechanism as M, ObjectClass
from pkcs11.exceptions import AttributeReadOnly, AttributeTypeInvalid, TemplateIncomplete

from conftest import Module
from hspkcs11.consts import CKA


def _unwrap(kek: pkcs11.SecretKey, blob: bytes, **template: object) -> pkcs11.SecretKey:
    return kek.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, blob, mechanism=M.AES_KEY_WRAP,
                          label="same", template={A.EXTRACTABLE: True, **template})


def test_objects_made_from_one_template_stay_apart(session: pkcs11.Session) -> None:
    kek = session.generate_key(KeyType.AES, 256, template={A.WRAP: True, A.UNWRAP: True})
    target = session.generate_key(KeyType.AES, 256, template={A.EXTRACTABLE: True})
    blob = kek.wrap_key(target, mechanism=M.AES_KEY_WRAP)
    first, second, third = (_unwrap(kek, blob) for _ in range(3))
    first[A.LABEL] = "changed"
    assert (first[A.LABEL], second[A.LABEL], third[A.LABEL]) == ("changed", "same", "same")
    assert len({first.handle, second.handle, third.handle}) == 3
    assert kek.wrap_key(third, mechanism=M.AES_KEY_WRAP) == blob


def test_a_template_one_byte_apart_is_its_own(session: pkcs11.Session) -> None:
    keys = [session.generate_key(KeyType.AES, 256, label=label) for label in ("k-a", "k-b", "k-a")]
    assert [k[A.LABEL] for k in keys] == ["k-a", "k-b", "k-a"]
    sizes = [session.generate_key(KeyType.AES, bits, label="k-a")[A.VALUE_LEN] for bits in (128, 256, 128)]
    assert sizes == [16, 32, 16]


@pytest.mark.parametrize("times", [1, 2, 3])
def test_a_bad_template_is_refused_every_time(session: pkcs11.Session, times: int) -> None:
    # CKA_LOCAL is set by the token (Base §4.4 table 10 footnote 2) and CKA_VALUE_LEN is
    # required for key generation: the same refusal however often the template comes.
    for _ in range(times):
        with pytest.raises(AttributeReadOnly):
            session.generate_key(KeyType.AES, 256, template={A.LOCAL: True})
        with pytest.raises(TemplateIncomplete):
            session.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES})
        with pytest.raises(AttributeTypeInvalid):
            session.generate_key(KeyType.AES, 256, template={A.MODULUS_BITS: 2048})


def test_key_material_in_a_template_is_never_kept(module: Module, session: pkcs11.Session) -> None:
    value = bytes(range(0x40, 0x60))
    template = {A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES, A.VALUE: value,
                A.ENCRYPT: True, A.LABEL: "imported"}
    keys = [session.create_object(template) for _ in range(2)]
    iv = bytes(16)
    assert keys[0].encrypt(b"x" * 16, mechanism=M.AES_CBC, mechanism_param=iv) == \
        keys[1].encrypt(b"x" * 16, mechanism=M.AES_CBC, mechanism_param=iv)
    session.generate_key(KeyType.AES, 128, label="kept")      # a template that is kept
    if module.name != "hspkcs11":
        return
    # The engine runs in this process: look at what its bridge keeps.
    bridge = sys.modules["hspkcs11.abi.bridge"]
    kept = bridge._KEPT_TEMPLATES
    assert any(b"kept" in flat for flat in kept), "the ordinary template was not kept"
    assert not any(value in flat or value in kept[flat].values() for flat in kept)


def _flat(*attrs: tuple[int, bytes]) -> bytes:
    """A template as the shim flattens it (csrc/shim.c hs_flatten): type, length, value
    padded to 8 bytes."""
    out = b""
    for cka, value in attrs:
        out += struct.pack("@LL", cka, len(value)) + value + bytes(-len(value) % 8)
    return out


def test_each_call_gets_its_own_copy(hs: Module) -> None:
    """The bridge's own memory, so hspkcs11 only: it runs in this process."""
    hs.lib.get_slots()                  # the module is loaded and its bridge bound
    bridge = sys.modules["hspkcs11.abi.bridge"]
    flat = _flat((CKA.LABEL, b"copy-test"), (CKA.TOKEN, b"\x00"))
    buf = bridge.ffi.from_buffer(flat)
    bridge._KEPT_TEMPLATES.pop(flat, None)
    for _ in range(3):            # decoded and kept, then answered twice from what was kept
        got = bridge._template(buf, len(flat))
        assert got == {CKA.LABEL: b"copy-test", CKA.TOKEN: False}
        got[CKA.LABEL] = b"changed by the caller"
        got[CKA.ID] = b"added by the caller"
    assert flat in bridge._KEPT_TEMPLATES
