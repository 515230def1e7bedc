"""Slots, tokens, PINs, sessions and login, against hspkcs11 and SoftHSM2 alike."""
from __future__ import annotations

import os
import subprocess
from typing import Callable

import pytest
from pkcs11 import Attribute as A, ObjectClass, TokenFlag
from pkcs11.exceptions import PinIncorrect, PinLenRange, SessionReadOnly, SessionReadWriteSOExists

from hspkcs11.consts import CKR, CKS, CKU

from conftest import SO_PIN, USER_PIN, Module, util
from rawp11 import Raw, ffi


def test_a_new_token_gets_its_own_slot_and_a_free_slot_remains(module: Module) -> None:
    before = module.lib.get_slots()
    tok = module.init_token()
    after = module.lib.get_slots()
    assert len(after) == len(before) + 1
    assert tok.label in {s.get_token().label for s in after}
    uninitialized = [s for s in after if not s.get_token().flags & TokenFlag.TOKEN_INITIALIZED]
    assert len(uninitialized) == 1


def test_token_info_reports_initialized_flags(module: Module) -> None:
    tok = module.init_token()
    assert tok.flags & TokenFlag.TOKEN_INITIALIZED
    assert tok.flags & TokenFlag.USER_PIN_INITIALIZED
    assert tok.flags & TokenFlag.LOGIN_REQUIRED
    assert tok.flags & TokenFlag.RNG
    assert len(tok.serial) == 16


def test_login_logout_and_session_states(module: Module) -> None:
    raw = Raw(module.path)
    tok = module.init_token()
    slot = next(s.slot_id for s in module.lib.get_slots() if s.get_token().label == tok.label)
    h = raw.open_session(slot, rw=False)
    info = ffi.new("CK_SESSION_INFO *")

    def state() -> int:
        assert raw.C_GetSessionInfo(h, info) == 0
        return info.state

    assert state() == CKS.RO_PUBLIC_SESSION
    assert raw.login(h, CKU.USER, USER_PIN) == CKR.OK
    assert state() == CKS.RO_USER_FUNCTIONS
    assert raw.login(h, CKU.USER, USER_PIN) == CKR.USER_ALREADY_LOGGED_IN
    assert raw.login(h, CKU.SO, SO_PIN) == CKR.SESSION_READ_ONLY_EXISTS
    assert raw.C_Logout(h) == CKR.OK
    assert raw.login(h, 7, USER_PIN) == CKR.USER_TYPE_INVALID
    assert raw.C_CloseSession(h) == CKR.OK
    assert raw.C_CloseSession(h) == CKR.SESSION_HANDLE_INVALID
    h = raw.open_session(slot, rw=True)
    assert raw.login(h, CKU.SO, SO_PIN) == CKR.OK
    assert state() == CKS.RW_SO_FUNCTIONS
    assert raw.C_CloseAllSessions(slot) == CKR.OK
    assert raw.C_GetSessionInfo(h, info) == CKR.SESSION_HANDLE_INVALID


def test_logout_without_login_is_refused(module: Module, differs: Callable[[str, str], None]) -> None:
    differs("softhsm", "SoftHSM2 answers CKR_OK; Base §5.6 C_Logout names CKR_USER_NOT_LOGGED_IN")
    raw = Raw(module.path)
    tok = module.init_token()
    slot = next(s.slot_id for s in module.lib.get_slots() if s.get_token().label == tok.label)
    h = raw.open_session(slot)
    try:
        assert raw.C_Logout(h) == CKR.USER_NOT_LOGGED_IN
    finally:
        raw.C_CloseSession(h)


def test_wrong_pin_is_counted_and_shown_in_flags(module: Module) -> None:
    tok = module.init_token()
    with pytest.raises(PinIncorrect):
        tok.open(user_pin="9999")
    assert module.lib.get_token(token_label=tok.label).flags & TokenFlag.USER_PIN_COUNT_LOW
    with tok.open(user_pin=USER_PIN):
        pass
    assert not module.lib.get_token(token_label=tok.label).flags & TokenFlag.USER_PIN_COUNT_LOW


def test_set_pin_changes_the_user_pin(module: Module) -> None:
    tok = module.init_token()
    with tok.open(user_pin=USER_PIN, rw=True) as s:
        s.set_pin(USER_PIN, "4321")
    with pytest.raises(PinIncorrect):
        tok.open(user_pin=USER_PIN)
    with tok.open(user_pin="4321"):
        pass


def test_set_pin_in_a_read_only_session_is_refused(module: Module) -> None:
    tok = module.init_token()
    with tok.open(user_pin=USER_PIN) as s:
        with pytest.raises(SessionReadOnly):
            s.set_pin(USER_PIN, "4321")


def test_init_pin_by_the_so_resets_the_user_pin(module: Module) -> None:
    tok = module.init_token()
    with tok.open(so_pin=SO_PIN, rw=True) as s:
        s.init_pin("5678")
    with tok.open(user_pin="5678"):
        pass


def test_pin_length_is_checked(module: Module) -> None:
    tok = module.init_token()
    with tok.open(so_pin=SO_PIN, rw=True) as s:
        with pytest.raises(PinLenRange):
            s.init_pin("12")


def test_so_cannot_open_read_only_sessions(module: Module) -> None:
    tok = module.init_token()
    with tok.open(so_pin=SO_PIN, rw=True):
        with pytest.raises(SessionReadWriteSOExists):
            tok.open()


def test_read_only_session_cannot_create_token_objects(module: Module) -> None:
    tok = module.init_token()
    with tok.open(user_pin=USER_PIN) as s:
        with pytest.raises(SessionReadOnly):
            s.create_object({A.CLASS: ObjectClass.DATA, A.TOKEN: True, A.VALUE: b"x"})


def test_login_state_is_shared_by_the_applications_sessions(module: Module) -> None:
    tok = module.init_token()
    with tok.open(user_pin=USER_PIN, rw=True) as s1:
        s1.create_object({A.CLASS: ObjectClass.DATA, A.TOKEN: True, A.PRIVATE: True, A.LABEL: "p",
                          A.VALUE: b"secret"})
        with tok.open() as s2:   # no PIN given: already logged in through s1
            assert [o[A.LABEL] for o in s2.get_objects({A.LABEL: "p"})] == ["p"]


def test_private_objects_are_invisible_without_login(module: Module) -> None:
    tok = module.init_token()
    with tok.open(user_pin=USER_PIN, rw=True) as s:
        s.create_object({A.CLASS: ObjectClass.DATA, A.TOKEN: True, A.PRIVATE: True, A.LABEL: "hidden",
                         A.VALUE: b"x"})
        s.create_object({A.CLASS: ObjectClass.DATA, A.TOKEN: True, A.PRIVATE: False, A.LABEL: "shown",
                         A.VALUE: b"y"})
    with tok.open() as s:
        labels = sorted(o[A.LABEL] for o in s.get_objects({A.CLASS: ObjectClass.DATA}))
    assert labels == ["shown"]


def test_session_objects_go_away_with_their_session(module: Module) -> None:
    tok = module.init_token()
    with tok.open(user_pin=USER_PIN, rw=True) as keeper:
        with tok.open(rw=True) as s:
            s.create_object({A.CLASS: ObjectClass.DATA, A.TOKEN: False, A.PRIVATE: False, A.LABEL: "eph",
                             A.VALUE: b"x"})
            assert len(list(keeper.get_objects({A.LABEL: "eph"}))) == 1
        assert list(keeper.get_objects({A.LABEL: "eph"})) == []


def test_a_token_made_by_another_process_is_visible_without_restart(
        module: Module, differs: Callable[[str, str], None]) -> None:
    differs("softhsm", "SoftHSM2 reads its token directory once, at C_Initialize")
    label = f"late-{module.name}"
    if module.name == "softhsm":
        cmd = ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN]
    else:
        cmd = util() + ["init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **module.env})
    assert module.lib.get_token(token_label=label).label == label


def test_reinit_by_the_so_wipes_the_token(module: Module) -> None:
    tok = module.init_token()
    with tok.open(user_pin=USER_PIN, rw=True) as s:
        s.create_object({A.CLASS: ObjectClass.DATA, A.TOKEN: True, A.PRIVATE: False, A.LABEL: "gone",
                         A.VALUE: b"x"})
    slot = next(s for s in module.lib.get_slots() if s.get_token().label == tok.label)
    _reinit(module, slot.slot_id, SO_PIN, tok.label)
    tok = module.lib.get_token(token_label=tok.label)
    assert not tok.flags & TokenFlag.USER_PIN_INITIALIZED
    with tok.open() as s:
        assert list(s.get_objects({A.LABEL: "gone"})) == []


def _reinit(module: Module, slot_id: int, so_pin: str, label: str) -> None:
    """C_InitToken on an initialized token, through the raw C interface."""
    assert Raw(module.path).init_token(slot_id, so_pin, label) == 0
