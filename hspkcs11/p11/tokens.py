"""Slots and tokens (Base §5.5 slot and token management, §5.6 PIN functions)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ..consts import CKR, CKU, TokenFlag
from ..errors import P11Error, require
from ..hsm.store import TokenRow
from ..mechanisms import MECHANISMS, lookup
from . import pins
from .state import Session, State

MANUFACTURER = "hspkcs11"
MODEL = "cloud-hsm-emu"


@dataclass(frozen=True)
class TokenInfo:
    label: bytes
    serial: str
    flags: int
    session_count: int
    rw_session_count: int
    utc_time: bytes


def slot_list(st: State, present_only: bool) -> list[int]:
    """Every slot has a token present (the free slot's is uninitialized), as in SoftHSM2,
    so `present_only` changes nothing."""
    return list(st.slots())


def slot_description(st: State, slot_id: int) -> str:
    """Every slot holds a token (the free slot's is uninitialized), as in SoftHSM2."""
    st.slot(slot_id)
    return f"{st.hsm.name} slot {slot_id}"


def token_flags(st: State, t: TokenRow | None) -> int:
    flags = (TokenFlag.RNG | TokenFlag.LOGIN_REQUIRED | TokenFlag.RESTORE_KEY_NOT_NEEDED
             | TokenFlag.CLOCK_ON_TOKEN)
    if t is None:
        return int(flags)
    flags |= TokenFlag.TOKEN_INITIALIZED
    if t.user_pin is not None:
        flags |= TokenFlag.USER_PIN_INITIALIZED
    limit = st.config.pin_max_failures
    for failures, low, final, locked in (
            (t.user_failures, TokenFlag.USER_PIN_COUNT_LOW, TokenFlag.USER_PIN_FINAL_TRY,
             TokenFlag.USER_PIN_LOCKED),
            (t.so_failures, TokenFlag.SO_PIN_COUNT_LOW, TokenFlag.SO_PIN_FINAL_TRY,
             TokenFlag.SO_PIN_LOCKED)):
        if failures >= limit:
            flags |= locked
        elif failures == limit - 1:
            flags |= final | low
        elif failures > 0:
            flags |= low
    return int(flags)


def token_info(st: State, slot_id: int) -> TokenInfo:
    t = st.slot(slot_id)
    mine = [s for s in st.sessions.values() if s.slot_id == slot_id]
    utc = time.strftime("%Y%m%d%H%M%S00", time.gmtime()).encode()
    if t is None:
        return TokenInfo(b"", "", token_flags(st, None), 0, 0, utc)
    return TokenInfo(t.label, t.serial, token_flags(st, t), len(mine), sum(s.rw for s in mine), utc)


def mechanism_list(st: State, slot_id: int) -> list[int]:
    st.slot(slot_id)
    return sorted(MECHANISMS)


def mechanism_info(st: State, slot_id: int, mech: int) -> tuple[int, int, int]:
    st.slot(slot_id)
    m = lookup(mech)
    return m.min_key, m.max_key, m.flags


# ---- token initialisation and PINs ----------------------------------------------------

def init_token(st: State, slot_id: int, so_pin: bytes, label: bytes) -> None:
    t = st.slot(slot_id)
    if any(s.slot_id == slot_id for s in st.sessions.values()):
        raise P11Error(CKR.SESSION_EXISTS, "close every session on the slot before C_InitToken")
    pins.check_length(so_pin)
    if t is None:
        serial = os.urandom(8).hex()
        st.store.put_token(TokenRow(serial, slot_id, label, pins.hash_pin(so_pin), None, 0, 0))
    else:
        # Re-initialisation by the SO wipes every object and the user PIN (Base §5.6 C_InitToken).
        check_pin(st, t, CKU.SO, so_pin)
        st.store.wipe_token(t.serial)
        st.store.update_token(t.serial, label=label, user_pin=None, user_failures=0, so_failures=0)
        st.cache.clear()
    st.hsm.record("token-init", slot=slot_id, label=label.decode(errors="replace").rstrip(),
                  reinit=t is not None)
    st.invalidate_tokens()
    st.mark_own_write()


def init_pin(st: State, s: Session, pin: bytes) -> None:
    if st.logins.get(s.serial) != CKU.SO or not s.rw:
        raise P11Error(CKR.USER_NOT_LOGGED_IN, "C_InitPIN needs an R/W session of the SO")
    pins.check_length(pin)
    st.store.update_token(s.serial, user_pin=pins.hash_pin(pin), user_failures=0)
    st.invalidate_tokens()
    st.mark_own_write()


def set_pin(st: State, s: Session, old: bytes, new: bytes) -> None:
    require(s.rw, CKR.SESSION_READ_ONLY, "C_SetPIN needs an R/W session")
    who = CKU.SO if st.logins.get(s.serial) == CKU.SO else CKU.USER
    t = st.token(s.serial)
    if who == CKU.USER and t.user_pin is None:
        # No old PIN can match; CKR_USER_PIN_NOT_INITIALIZED "can only be returned by
        # C_Login" (Base §5.1.6), and C_SetPIN's list has CKR_PIN_INCORRECT.
        raise P11Error(CKR.PIN_INCORRECT, "the user PIN is not set")
    check_pin(st, t, who, old)
    pins.check_length(new)
    field = "so_pin" if who == CKU.SO else "user_pin"
    st.store.update_token(s.serial, **{field: pins.hash_pin(new)})
    st.invalidate_tokens()
    st.mark_own_write()


def check_pin(st: State, t: TokenRow, who: int, pin: bytes) -> None:
    """Verify a PIN and keep the failure count (CKF_*_PIN_COUNT_LOW/FINAL_TRY/LOCKED).
    The attempt is counted in the units before the PIN is verified (store
    `count_pin_attempt`), so parallel guessers never get past `pin.max_failures`, and
    a region that cannot record it refuses to verify (fail closed). A right PIN then
    clears the count."""
    is_so = who == CKU.SO
    column = "so_failures" if is_so else "user_failures"
    fresh = st.store.count_pin_attempt(t.serial, column, st.config.pin_max_failures)
    st.invalidate_tokens()
    st.mark_own_write()
    if fresh is None:
        raise P11Error(CKR.PIN_LOCKED, f"the {'SO' if is_so else 'user'} PIN is locked")
    stored = fresh.so_pin if is_so else fresh.user_pin
    if stored is None:
        raise P11Error(CKR.USER_PIN_NOT_INITIALIZED, "the user PIN is not set")
    if not pins.verify_pin(pin, stored):
        raise P11Error(CKR.PIN_INCORRECT, f"wrong PIN ({getattr(fresh, column) + 1} failure(s) in a row)")
    st.store.update_token(t.serial, **{column: 0})
    st.invalidate_tokens()
    st.mark_own_write()


def library_description() -> tuple[str, str]:
    return MANUFACTURER, "hspkcs11 cloud HSM emulator"
