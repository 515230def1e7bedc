"""Answers the shim keeps (csrc/shim.c "answers kept while nothing changed").

C_GetAttributeValue and C_WrapKey are answered from the calling thread's last answer
while nothing it depends on changed. These tests change each thing it depends on
between two identical calls, and check that the second call sees the change: the
same call in this process, another process's write, a logout, a zone outage. Both
modules must behave the same (the spec knows nothing of the cache).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute as A, KeyType, Mechanism as M
from pkcs11.exceptions import DeviceError, KeyUnextractable, ObjectHandleInvalid

from conftest import USER_PIN, Module
from hspkcs11.config import load as load_config
from hspkcs11.consts import CKA, CKR, CKU
from rawp11 import Raw, ffi
from regionkit import cli


def read_label(raw: Raw, h: int, obj: int) -> tuple[int, bytes]:
    """C_GetAttributeValue(CKA_LABEL) as a C client does it: length, then value."""
    attr = ffi.new("CK_ATTRIBUTE *")
    attr.type, attr.pValue, attr.ulValueLen = CKA.LABEL, ffi.NULL, 0
    rv = raw.C_GetAttributeValue(h, obj, attr, 1)
    if rv != CKR.OK:
        return rv, b""
    buf = ffi.new("CK_BYTE[]", max(attr.ulValueLen, 1))
    attr.pValue = buf
    rv = raw.C_GetAttributeValue(h, obj, attr, 1)
    return rv, ffi.buffer(buf, attr.ulValueLen)[:]


def test_a_set_attribute_is_seen_by_the_next_read(session: pkcs11.Session) -> None:
    key = session.generate_key(KeyType.AES, 256, label="before")
    assert key[A.LABEL] == "before"
    assert key[A.LABEL] == "before"          # the same call again: a kept answer
    key[A.LABEL] = "after"
    assert key[A.LABEL] == "after"


def test_a_destroyed_object_is_not_answered(module: Module, token: pkcs11.Token,
                                            session: pkcs11.Session) -> None:
    key = session.generate_key(KeyType.AES, 256, label="doomed")
    raw = Raw(module.path)
    slot = next(s.slot_id for s in module.lib.get_slots() if s.get_token().label == token.label)
    h = raw.open_session(slot)
    try:
        assert read_label(raw, h, key.handle) == (CKR.OK, b"doomed")
        key.destroy()
        assert read_label(raw, h, key.handle)[0] == CKR.OBJECT_HANDLE_INVALID
    finally:
        raw.C_CloseSession(h)


def test_a_write_of_another_process_is_seen(module: Module, session: pkcs11.Session,
                                            token: pkcs11.Token) -> None:
    ident = os.urandom(8)
    key = session.generate_key(KeyType.AES, 256, store=True, label="mine", id=ident)
    child = textwrap.dedent(f"""
        import pkcs11
        from pkcs11 import Attribute as A
        tok = pkcs11.lib({module.path!r}).get_token(token_label={token.label!r})
        with tok.open(user_pin={USER_PIN!r}, rw=True) as s:
            (k,) = s.get_objects({{A.ID: {ident!r}}})
            k[A.LABEL] = "theirs"
    """)
    assert key[A.LABEL] == "mine"           # the last call before the other process writes
    subprocess.run([sys.executable, "-c", child], check=True, env={**os.environ, **module.env})
    assert key[A.LABEL] == "theirs"


def test_an_unextractable_key_is_not_wrapped_again(session: pkcs11.Session) -> None:
    kek = session.generate_key(KeyType.AES, 256, template={A.WRAP: True, A.UNWRAP: True})
    target = session.generate_key(KeyType.AES, 256, template={A.EXTRACTABLE: True, A.SENSITIVE: True})
    first = kek.wrap_key(target, mechanism=M.AES_KEY_WRAP)
    assert kek.wrap_key(target, mechanism=M.AES_KEY_WRAP) == first      # RFC 3394 is deterministic
    target[A.EXTRACTABLE] = False
    with pytest.raises(KeyUnextractable):
        kek.wrap_key(target, mechanism=M.AES_KEY_WRAP)


def test_a_randomized_wrap_is_never_repeated(session: pkcs11.Session) -> None:
    pub, _ = session.generate_keypair(KeyType.RSA, 2048)
    target = session.generate_key(KeyType.AES, 256, template={A.EXTRACTABLE: True, A.SENSITIVE: True})
    blobs = {pub.wrap_key(target, mechanism=M.RSA_PKCS) for _ in range(3)}
    assert len(blobs) == 3                   # fresh PKCS#1 v1.5 padding each call


def test_logout_hides_private_objects_at_once(module: Module, token: pkcs11.Token,
                                              session: pkcs11.Session) -> None:
    key = session.generate_key(KeyType.AES, 256, store=True, label="private",
                               template={A.PRIVATE: True})
    raw = Raw(module.path)
    slot = next(s.slot_id for s in module.lib.get_slots() if s.get_token().label == token.label)
    h = raw.open_session(slot)
    try:
        assert read_label(raw, h, key.handle) == (CKR.OK, b"private")
        assert raw.C_Logout(h) == CKR.OK        # the application's login, for every session
        assert read_label(raw, h, key.handle)[0] == CKR.OBJECT_HANDLE_INVALID
    finally:
        assert raw.login(h, CKU.USER, USER_PIN) == CKR.OK     # the file's other tests need it
        raw.C_CloseSession(h)


def test_a_zone_outage_is_seen_at_once(hs: Module, hs_conf: Path) -> None:
    """hspkcs11 only: every zone down (another process, the CLI) between two reads."""
    tok = hs.init_token()
    with tok.open(user_pin=USER_PIN, rw=True) as s:
        key = s.generate_key(KeyType.AES, 256, store=True, label="zoned")
        assert key[A.LABEL] == "zoned"
        zones = load_config(hs_conf).zones
        try:
            for zone in zones:
                cli(hs_conf, "zone", "down", zone)
            with pytest.raises(DeviceError):
                key[A.LABEL]
        finally:
            for zone in zones:
                cli(hs_conf, "zone", "up", zone)
        assert key[A.LABEL] == "zoned"
