"""What the fuzzer (tests/test_fuzz.py) found in hspkcs11, kept as behavioural tests on
both modules: each was an exception escaping the engine (CKR_GENERAL_ERROR) or a return
code the function's list in Base §5 does not name."""
from __future__ import annotations

import hashlib
import uuid

import pkcs11
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from conftest import SO_PIN, Module
from hspkcs11.consts import CKA, CKK, CKM, CKO, CKR, CKU
from rawp11 import Raw, ffi, template, ulong

RW = 0x6            # CKF_SERIAL_SESSION | CKF_RW_SESSION
KEY = bytes(range(16))


def _session(module: Module, token: pkcs11.Token) -> tuple[Raw, int]:
    raw = Raw(module.path)
    slot = next(s.slot_id for s in module.lib.get_slots() if s.get_token().label == token.label)
    return raw, raw.open_session(slot)


def _call_out(fn, h: int, data: bytes, out: bytes | None) -> tuple[int, bytes]:
    n = ffi.new("CK_ULONG *", len(out) if out is not None else 0)
    buf = ffi.new("CK_BYTE[]", out) if out is not None else ffi.NULL
    rv = fn(h, data, len(data), buf, n)
    return rv, bytes(ffi.buffer(buf, n[0])) if out is not None and rv == CKR.OK else b""


def test_encrypt_after_a_length_query_encrypts_the_data_it_is_given(module: Module, token: pkcs11.Token) -> None:
    """Base §5.2: after a successful length query the operation is still active. The query
    had run the cipher to its end; the next C_Encrypt, with other data, raised
    AlreadyFinalized inside the engine (CKR_GENERAL_ERROR)."""
    raw, h = _session(module, token)
    try:
        tmpl, _keep = template((CKA.CLASS, ulong(CKO.SECRET_KEY)), (CKA.KEY_TYPE, ulong(CKK.AES)),
                               (CKA.VALUE, KEY), (CKA.PRIVATE, b"\x00"), (CKA.ENCRYPT, b"\x01"))
        key = ffi.new("CK_OBJECT_HANDLE *")
        assert raw.C_CreateObject(h, tmpl, 5, key) == CKR.OK
        mech = ffi.new("CK_MECHANISM *", {"mechanism": CKM.AES_ECB})
        assert raw.C_EncryptInit(h, mech, key[0]) == CKR.OK
        assert _call_out(raw.C_Encrypt, h, b"A" * 16, None)[0] == CKR.OK
        rv, ciphertext = _call_out(raw.C_Encrypt, h, b"B" * 16, bytes(16))
        expected = Cipher(algorithms.AES(KEY), modes.ECB()).encryptor().update(b"B" * 16)
        assert (rv, ciphertext) == (CKR.OK, expected)
    finally:
        raw.C_CloseSession(h)


def test_digest_update_after_a_digest_length_query_goes_on_with_the_operation(
        module: Module, token: pkcs11.Token) -> None:
    """The same for C_DigestUpdate and C_DigestKey after C_Digest's length query: they fed
    a finished hash (CKR_GENERAL_ERROR). The query processes nothing (Base §5.2)."""
    raw, h = _session(module, token)
    try:
        assert raw.C_DigestInit(h, ffi.new("CK_MECHANISM *", {"mechanism": CKM.SHA256})) == CKR.OK
        assert _call_out(raw.C_Digest, h, b"abc", None)[0] == CKR.OK
        assert raw.C_DigestUpdate(h, b"xyz", 3) == CKR.OK
        n = ffi.new("CK_ULONG *", 32)
        out = ffi.new("CK_BYTE[]", 32)
        assert raw.C_DigestFinal(h, out, n) == CKR.OK
        assert bytes(ffi.buffer(out, n[0])) == hashlib.sha256(b"xyz").digest()
    finally:
        raw.C_CloseSession(h)


def test_context_specific_login_without_a_user_login_is_operation_not_initialized(
        module: Module, token: pkcs11.Token) -> None:
    """Base §5.6 C_Login: "Improper use of this user type will result in a return value
    CKR_OPERATION_NOT_INITIALIZED"; hspkcs11 answered CKR_USER_NOT_LOGGED_IN, which
    C_Login's list does not name."""
    raw, h = _session(module, token)
    try:
        assert raw.login(h, CKU.CONTEXT_SPECIFIC, "1234") == CKR.OPERATION_NOT_INITIALIZED
    finally:
        raw.C_CloseSession(h)


def test_set_pin_before_the_user_pin_is_set_is_pin_incorrect(module: Module) -> None:
    """No old PIN matches a PIN never set. hspkcs11 answered CKR_USER_PIN_NOT_INITIALIZED,
    which "can only be returned by C_Login" (Base §5.1.6); C_SetPIN's list has
    CKR_PIN_INCORRECT."""
    raw = Raw(module.path)
    free = module.lib.get_slots()[-1].slot_id
    assert raw.init_token(free, SO_PIN, f"nopin-{uuid.uuid4().hex[:8]}") == CKR.OK
    h = raw.open_session(free)
    try:
        assert raw.C_SetPIN(h, b"1234", 4, b"5678", 4) == CKR.PIN_INCORRECT
    finally:
        raw.C_CloseSession(h)


def test_a_find_for_a_class_or_key_type_above_2_to_63_finds_nothing(module: Module, token: pkcs11.Token) -> None:
    """A CK_ULONG template value above SQLite's signed 64-bit range reached the store's
    index query, which raised OverflowError (CKR_GENERAL_ERROR). No object can hold such
    a class or key type, so the find succeeds and finds nothing (Base §5.7)."""
    raw, h = _session(module, token)
    try:
        for cka in (CKA.CLASS, CKA.KEY_TYPE):
            for value in (2**63, 2**64 - 1):
                tmpl, _keep = template((cka, ulong(value)))
                assert raw.C_FindObjectsInit(h, tmpl, 1) == CKR.OK, (cka, value)
                found, count = ffi.new("CK_OBJECT_HANDLE[4]"), ffi.new("CK_ULONG *")
                assert raw.C_FindObjects(h, found, 4, count) == CKR.OK and count[0] == 0
                assert raw.C_FindObjectsFinal(h) == CKR.OK
    finally:
        raw.C_CloseSession(h)
