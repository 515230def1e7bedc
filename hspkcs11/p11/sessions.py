"""Sessions and login (Base §5.6). Login state belongs to the application (this process)
and is shared by all its sessions with a token; it ends with the last session."""
from __future__ import annotations

from ..consts import CKR, CKU, SessionFlag
from ..errors import P11Error, require
from . import tokens
from .state import Session, State


_SERIAL, _RW = int(SessionFlag.SERIAL_SESSION), int(SessionFlag.RW_SESSION)   # IntFlag maths is slow


def open_session(st: State, slot_id: int, flags: int) -> int:
    require(bool(flags & _SERIAL), CKR.SESSION_PARALLEL_NOT_SUPPORTED, "CKF_SERIAL_SESSION must be set")
    t = st.slot(slot_id)
    if t is None:
        raise P11Error(CKR.TOKEN_NOT_RECOGNIZED, f"the token in slot {slot_id} is not initialized")
    rw = bool(flags & _RW)
    if not rw and st.logins.get(t.serial) == CKU.SO:
        raise P11Error(CKR.SESSION_READ_WRITE_SO_EXISTS, "the SO is logged in: only R/W sessions")
    handle = st.new_session_handle()
    st.sessions[handle] = Session(handle, slot_id, t.serial, rw)
    return handle


def close_session(st: State, handle: int) -> None:
    s = st.session(handle)
    del st.sessions[handle]
    st.drop_session_objects(handle)
    if not any(o.serial == s.serial for o in st.sessions.values()):
        st.logins.pop(s.serial, None)


def close_all_sessions(st: State, slot_id: int) -> None:
    st.slot(slot_id)
    for handle in [h for h, s in st.sessions.items() if s.slot_id == slot_id]:
        close_session(st, handle)


def session_info(st: State, handle: int) -> tuple[int, int, int]:
    s = st.session(handle)
    flags = SessionFlag.SERIAL_SESSION | (SessionFlag.RW_SESSION if s.rw else 0)
    return s.slot_id, st.session_state(s), int(flags)


def login(st: State, handle: int, user: int, pin: bytes) -> None:
    s = st.session(handle)
    if user not in (CKU.SO, CKU.USER, CKU.CONTEXT_SPECIFIC):
        raise P11Error(CKR.USER_TYPE_INVALID, f"user type {user}")
    current = st.logins.get(s.serial)
    t = st.token(s.serial)
    if user == CKU.CONTEXT_SPECIFIC:
        # Re-authentication for an operation; our keys never set CKA_ALWAYS_AUTHENTICATE,
        # so this only verifies the PIN of the user who is logged in. Base §5.6 C_Login:
        # "Improper use of this user type will result in CKR_OPERATION_NOT_INITIALIZED".
        require(current == CKU.USER, CKR.OPERATION_NOT_INITIALIZED, "context-specific login needs a user login")
        tokens.check_pin(st, t, CKU.USER, pin)
        return
    # The order of these checks is SoftHSM2's, so suites written against it see the same code.
    if user == CKU.SO and any(not o.rw for o in st.sessions.values() if o.serial == s.serial):
        raise P11Error(CKR.SESSION_READ_ONLY_EXISTS, "close read-only sessions before the SO logs in")
    if current is not None:
        raise P11Error(CKR.USER_ALREADY_LOGGED_IN if current == user else CKR.USER_ANOTHER_ALREADY_LOGGED_IN,
                       "already logged in")
    if user == CKU.USER and t.user_pin is None:
        raise P11Error(CKR.USER_PIN_NOT_INITIALIZED, "the SO has not set the user PIN (C_InitPIN)")
    tokens.check_pin(st, t, user, pin)
    st.logins[s.serial] = user


def logout(st: State, handle: int) -> None:
    s = st.session(handle)
    if st.logins.pop(s.serial, None) is None:
        raise P11Error(CKR.USER_NOT_LOGGED_IN, "nobody is logged in")
    st.forget_private(s.serial)
