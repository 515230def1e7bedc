"""The Python ends of the shim's `extern "Python"` callbacks, one per C_* function.

Here C values become Python values (bytes, ints, templates) and the engine's answers
become C results. Every exception turns into a CK_RV in `_guard`, the one place that
does so; nothing Python crosses into C. The engine state is per process id: a child
after fork() is not initialised until it calls C_Initialize (Base §5.4).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import struct
import threading
import time
from typing import Any, Callable, Iterator

from ..config import Config, ConfigError, load as load_config
from ..consts import CK_UNAVAILABLE_INFORMATION, CKR, SlotFlag
from ..errors import P11Error
from ..hsm.masterkey import MasterKeyError
from ..hsm.store import StoreError
from ..p11 import crypto, keys, manage, sessions, tokens
from ..p11.pins import MAX_LEN, MIN_LEN
from ..p11.state import State
from ..p11 import codec, schema
from . import params
from .log import configure_logging, log
from .trace import Tracer

ffi: Any = None          # the shim's FFI, set by bind()
_lib: Any = None          # the shim's lib (hs_set_pulse)
_state: State | None = None
_pulse: tuple[Any, Any] | None = None      # cdata over the stamps' maps, lent to the shim
_lock = threading.RLock()
_keep = threading.local()   # results C copies after the callback returns


def _after_fork_in_child() -> None:
    """A fork() taken while another thread held `_lock` (it may lose the GIL inside a
    call) leaves the child's copy locked by a thread the child does not have: give the
    child a fresh lock, or its own C_Initialize deadlocks (tests/c/abi_check.c, fork)."""
    global _lock, _state
    _lock = threading.RLock()
    _state = None       # the child is not initialised until it calls C_Initialize (Base §5.4)


os.register_at_fork(after_in_child=_after_fork_in_child)

# Foreign exceptions -> CKR (DESIGN "One error type"); anything else is GENERAL_ERROR.
FOREIGN: dict[type[BaseException], CKR] = {
    MemoryError: CKR.HOST_MEMORY,
    sqlite3.Error: CKR.DEVICE_ERROR,
    OSError: CKR.DEVICE_ERROR,
    MasterKeyError: CKR.DEVICE_ERROR,
    StoreError: CKR.GENERAL_ERROR,
    ConfigError: CKR.GENERAL_ERROR,
}


def _rv_for(exc: BaseException) -> CKR:
    for kind, rv in FOREIGN.items():
        if isinstance(exc, kind):
            return rv
    return CKR.GENERAL_ERROR


def _guard(fn: Callable[..., int]) -> Callable[..., int]:
    """The one place where Python meets C: exceptions become CK_RVs, and with log.level
    DEBUG each call is traced (abi/trace.py keeps secrets out of the trace)."""
    tracer = Tracer(fn, ffi)

    def entry(*args: Any) -> int:
        debug = log.isEnabledFor(logging.DEBUG)
        start = time.perf_counter() if debug else 0.0
        failure = None
        try:
            with _lock:
                rv = fn(*args)
        except P11Error as exc:
            rv, failure = exc.rv, exc.why
        except BaseException as exc:  # noqa: BLE001 - nothing may cross into C
            rv = _rv_for(exc)
            failure = f"{type(exc).__name__}: {exc}"
            log.error("%s -> CKR_%s: %s", fn.__name__, rv.name, exc, exc_info=rv == CKR.GENERAL_ERROR)
        try:
            if failure and log.isEnabledFor(logging.INFO):
                log.info("%s -> CKR_%s: %s", tracer.call(args)[0], CKR(rv).name, failure)
            if debug:
                name, shown = tracer.call(args)
                log.debug("%s(%s) -> %s (%.1f us)", name, shown, _rv_name(rv), (time.perf_counter() - start) * 1e6)
        except Exception:  # noqa: BLE001 - a trace that fails must not change the answer
            log.exception("tracing %s failed", fn.__name__)
        return int(rv)
    entry.__name__ = fn.__name__
    return entry


def _rv_name(rv: int) -> str:
    try:
        return "CKR_" + CKR(rv).name
    except ValueError:
        return hex(rv)


def engine() -> State:
    if _state is None:      # reset in a forked child by _after_fork_in_child
        raise P11Error(CKR.CRYPTOKI_NOT_INITIALIZED)
    return _state


def _session(h: int) -> tuple[State, Any]:
    st = engine()
    return st, st.session(h)


# ---- C values -> Python values -----------------------------------------------------------

def _bytes(ptr: Any, n: int) -> bytes | None:
    """The bytes at ptr; None for a NULL pointer that claims a length."""
    if n == 0:
        return b""
    if ptr == ffi.NULL:
        return None
    return ffi.buffer(ffi.cast("CK_BYTE *", ptr), n)[:]


def _pin(ptr: Any, n: int) -> bytes:
    value = _bytes(ptr, n)
    if value is None:
        raise P11Error(CKR.ARGUMENTS_BAD, "NULL PIN with a length")
    return value


_RECORD = struct.Struct("@LL")     # one flattened attribute's type and length (csrc/shim.h)
_NULL_VALUE = (1 << 64) - 1        # HS_NULL_VALUE: a NULL value that claims a length


# Decoded templates by their flattened bytes. Clients send the same template call after
# call (python-pkcs11 builds one per unwrap or key generation), and decoding a dozen
# attributes costs more than the rest of the bridge. Templates that carry key material
# are never kept; values are immutable, so a shallow copy hands out a private dict.
_KEPT_TEMPLATES: dict[bytes, dict[int, Any]] = {}
_KEPT_TEMPLATES_MAX, _KEPT_TEMPLATE_SIZE = 256, 1024


def _template(flat: Any, size: int) -> dict[int, Any]:
    """A template the shim flattened (csrc/shim.c hs_flatten) as {CKA: value}; bad
    entries get the spec's codes."""
    data = ffi.buffer(flat, size)[:] if size else b""
    kept = _KEPT_TEMPLATES.get(data)
    if kept is not None:
        return dict(kept)
    out: dict[int, Any] = {}
    off = 0
    while off < size:
        cka, n = _RECORD.unpack_from(data, off)
        off += 16
        if n == _NULL_VALUE:
            raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"attribute 0x{cka:x}: NULL value with a length")
        if cka in out:
            raise P11Error(CKR.TEMPLATE_INCONSISTENT, f"attribute 0x{cka:x} appears twice")
        out[cka] = codec.decode(cka, data[off:off + n])
        off += (n + 7) & ~7
    if size <= _KEPT_TEMPLATE_SIZE and out.keys().isdisjoint(schema.key_material_types()):
        if len(_KEPT_TEMPLATES) >= _KEPT_TEMPLATES_MAX:
            _KEPT_TEMPLATES.clear()
        _KEPT_TEMPLATES[data] = out
        return dict(out)
    return out


def template_types(flat: Any, size: int) -> list[int]:
    """The attribute types of a flattened template, in order (the call trace)."""
    data = ffi.buffer(flat, size)[:] if size else b""
    types, off = [], 0
    while off < size:
        cka, n = _RECORD.unpack_from(data, off)
        types.append(cka)
        off += 16 + (0 if n == _NULL_VALUE else (n + 7) & ~7)
    return types


def _find_template(ptr: Any, n: int) -> dict[int, Any] | None:
    """A find template; None when no object can match (an unknown type or a bad value)."""
    try:
        return _template(ptr, n)
    except P11Error as exc:
        if exc.rv == CKR.TEMPLATE_INCONSISTENT:
            return None
        if exc.rv in (CKR.ATTRIBUTE_TYPE_INVALID, CKR.ATTRIBUTE_VALUE_INVALID):
            return None
        raise


def _out(out: Any, data: bytes) -> None:
    """Hand `data` to C through an hs_out; it stays alive until this thread's next call."""
    buf = ffi.from_buffer(data)
    _keep.value = (data, buf)
    out.ptr = buf
    out.len = len(data)


def _ulongs(values: list[int]) -> bytes:
    arr = ffi.new("CK_ULONG[]", values) if values else ffi.new("CK_ULONG[1]")
    return ffi.buffer(arr, ffi.sizeof("CK_ULONG") * len(values))[:]


def _text(value: str | bytes, size: int) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return raw[:size].ljust(size, b" ")


def _struct(dst: Any, ctype: str, **fields: Any) -> None:
    """Fill a fixed struct in one memmove of a prepared image (DESIGN "The shim": setting
    fields one by one costs microseconds); images are kept per distinct content."""
    image = _image(ctype, tuple(fields.items()))
    ffi.memmove(dst, image, len(image))


@functools.lru_cache(maxsize=256)
def _image(ctype: str, fields: tuple[tuple[str, Any], ...]) -> bytes:
    image = ffi.new(ctype + " *")
    for name, value in fields:
        if isinstance(value, (bytes, bytearray)):
            ffi.memmove(getattr(image, name), value, len(value))
        elif isinstance(value, tuple):
            setattr(image, name, {"major": value[0], "minor": value[1]})
        else:
            setattr(image, name, value)
    return ffi.buffer(image)[:]


# ---- general purpose ------------------------------------------------------------------------

def py_Ready() -> int:
    return 1


def py_Initialize(flags: int) -> int:
    global _state
    if _state is not None:
        return CKR.CRYPTOKI_ALREADY_INITIALIZED
    config = _load_config()
    try:
        try:
            state = State(config)
        except (sqlite3.Error, OSError) as exc:
            raise P11Error(CKR.GENERAL_ERROR,
                           f"cannot open the crypto units of region {config.region} under {config.region_dir}: "
                           f"{exc}; check that data.dir ({config.data_dir}) exists and this user may read and "
                           "write it, or run `hspkcs11-util region init`") from None
    except P11Error as exc:
        # A start-up failure is an operator's problem: logged whatever log.level says.
        log.error("C_Initialize -> CKR_%s: %s", exc.rv.name, exc.why)
        raise
    if not state.hsm.key_ready():
        log.warning("region %s has no current master key: tokens are visible but key use is refused until "
                    "`hspkcs11-util masterkey load PART PART`, `masterkey commit` and `masterkey activate`",
                    config.region)
    state.hsm.unlocked = _unlocked
    _state = state
    _lend_pulse(state)
    return CKR.OK


@contextlib.contextmanager
def _unlocked() -> Iterator[None]:
    """Let go of the process-wide lock while this thread waits for the region's write
    lock, so the application's other threads keep working (issue 13, row 4). The
    waiting call has not changed any state yet; it takes the lock back before it does."""
    lock = _lock
    if not lock._is_owned():          # type: ignore[attr-defined]  # called outside a bridged call
        yield
        return
    saved = lock._release_save()      # type: ignore[attr-defined]  # every level this thread holds
    try:
        yield
    finally:
        lock._acquire_restore(saved)  # type: ignore[attr-defined]


def _load_config() -> Config:
    try:
        config = load_config()
    except ConfigError as exc:
        log.error("C_Initialize: %s", exc)
        raise
    configure_logging(config)
    return config


def py_Finalize() -> int:
    global _state
    st = engine()
    _lend_pulse(None)
    st.close()
    _state = None
    return CKR.OK


def _lend_pulse(state: State | None) -> None:
    """Lend the shim this engine's maps of the region's stamps (or take them back before
    they close): the shim checks its kept answers against them (csrc/shim.c)."""
    global _pulse
    if _pulse is not None:
        _lib.hs_set_pulse(ffi.NULL, ffi.NULL)
        for buf in _pulse:
            ffi.release(buf)
        _pulse = None
    if state is not None:
        _pulse = tuple(ffi.from_buffer(m) for m in state.hsm.pulse_maps())
        _lib.hs_set_pulse(*_pulse)


def py_GetInfo(info: Any) -> int:
    engine()
    manufacturer, description = tokens.library_description()
    _struct(info, "CK_INFO", cryptokiVersion=(2, 40), manufacturerID=_text(manufacturer, 32), flags=0,
            libraryDescription=_text(description, 32), libraryVersion=(0, 1))
    return CKR.OK


def py_GetSlotList(present: int, out: Any) -> int:
    _out(out, _ulongs(tokens.slot_list(engine(), bool(present))))
    return CKR.OK


def py_GetSlotInfo(slot: int, info: Any) -> int:
    _struct(info, "CK_SLOT_INFO", slotDescription=_text(tokens.slot_description(engine(), slot), 64),
            manufacturerID=_text(tokens.MANUFACTURER, 32), flags=int(SlotFlag.TOKEN_PRESENT),
            hardwareVersion=(0, 1), firmwareVersion=(0, 1))
    return CKR.OK


def py_GetTokenInfo(slot: int, info: Any) -> int:
    t = tokens.token_info(engine(), slot)
    _struct(info, "CK_TOKEN_INFO", label=_text(t.label, 32), manufacturerID=_text(tokens.MANUFACTURER, 32),
            model=_text(tokens.MODEL, 16), serialNumber=_text(t.serial, 16), flags=t.flags,
            ulMaxSessionCount=0, ulSessionCount=t.session_count, ulMaxRwSessionCount=0,
            ulRwSessionCount=t.rw_session_count, ulMaxPinLen=MAX_LEN, ulMinPinLen=MIN_LEN,
            ulTotalPublicMemory=CK_UNAVAILABLE_INFORMATION, ulFreePublicMemory=CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory=CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory=CK_UNAVAILABLE_INFORMATION, hardwareVersion=(0, 1),
            firmwareVersion=(0, 1), utcTime=t.utc_time)
    return CKR.OK


def py_GetMechanismList(slot: int, out: Any) -> int:
    _out(out, _ulongs(tokens.mechanism_list(engine(), slot)))
    return CKR.OK


def py_GetMechanismInfo(slot: int, mech: int, info: Any) -> int:
    lo, hi, flags = tokens.mechanism_info(engine(), slot, mech)
    _struct(info, "CK_MECHANISM_INFO", ulMinKeySize=lo, ulMaxKeySize=hi, flags=flags)
    return CKR.OK


def py_InitToken(slot: int, pin: Any, pin_len: int, label: Any) -> int:
    tokens.init_token(engine(), slot, _pin(pin, pin_len), ffi.buffer(ffi.cast("CK_BYTE *", label), 32)[:])
    return CKR.OK


def py_InitPIN(h: int, pin: Any, n: int) -> int:
    st, s = _session(h)
    tokens.init_pin(st, s, _pin(pin, n))
    return CKR.OK


def py_SetPIN(h: int, old: Any, old_n: int, new: Any, new_n: int) -> int:
    st, s = _session(h)
    tokens.set_pin(st, s, _pin(old, old_n), _pin(new, new_n))
    return CKR.OK


# ---- sessions ----------------------------------------------------------------------------

def py_OpenSession(slot: int, flags: int, out: Any) -> int:
    out[0] = sessions.open_session(engine(), slot, flags)
    return CKR.OK


def py_CloseSession(h: int) -> int:
    sessions.close_session(engine(), h)
    return CKR.OK


def py_CloseAllSessions(slot: int) -> int:
    sessions.close_all_sessions(engine(), slot)
    return CKR.OK


def py_GetSessionInfo(h: int, info: Any) -> int:
    slot, state, flags = sessions.session_info(engine(), h)
    _struct(info, "CK_SESSION_INFO", slotID=slot, state=state, flags=flags, ulDeviceError=0)
    return CKR.OK


def py_Login(h: int, user: int, pin: Any, n: int) -> int:
    sessions.login(engine(), h, user, _pin(pin, n))
    return CKR.OK


def py_Logout(h: int) -> int:
    sessions.logout(engine(), h)
    return CKR.OK


# ---- objects ---------------------------------------------------------------------------------

def py_CreateObject(h: int, tmpl: Any, n: int, out: Any) -> int:
    st, s = _session(h)
    out[0] = manage.create_object(st, s, _template(tmpl, n))
    return CKR.OK


def py_CopyObject(h: int, obj: int, tmpl: Any, n: int, out: Any) -> int:
    st, s = _session(h)
    out[0] = manage.copy_object(st, s, obj, _template(tmpl, n))
    return CKR.OK


def py_DestroyObject(h: int, obj: int) -> int:
    st, s = _session(h)
    manage.destroy_object(st, s, obj)
    return CKR.OK


def py_GetObjectSize(h: int, obj: int, out: Any) -> int:
    st, s = _session(h)
    out[0] = manage.object_size(st, s, obj)
    return CKR.OK


def py_GetAttributeValue(h: int, obj: int, types: Any, n: int, out: Any, values: Any) -> int:
    st, s = _session(h)
    results = manage.get_attributes(st, s, obj, ffi.unpack(types, n))
    table, offset = [], 0
    for status, value in results:
        table += (status, offset, len(value))
        offset += len(value)
    image = struct.pack(f"@{len(table)}L", *table)     # hs_attr_out[n] in one memmove
    ffi.memmove(out, image, len(image))
    _out(values, b"".join(value for _, value in results))
    return CKR.OK


def py_SetAttributeValue(h: int, obj: int, tmpl: Any, n: int) -> int:
    st, s = _session(h)
    manage.set_attributes(st, s, obj, _template(tmpl, n))
    return CKR.OK


def py_FindObjectsInit(h: int, tmpl: Any, n: int) -> int:
    st, s = _session(h)
    manage.find_init(st, s, _find_template(tmpl, n))
    return CKR.OK


def py_FindObjects(h: int, out: Any, max_count: int, count: Any) -> int:
    st, s = _session(h)
    found = manage.find(st, s, max_count)
    for i, handle in enumerate(found):
        out[i] = handle
    count[0] = len(found)
    return CKR.OK


def py_FindObjectsFinal(h: int) -> int:
    st, s = _session(h)
    manage.find_final(st, s)
    return CKR.OK


# ---- cryptographic operations -------------------------------------------------------

def py_OpInit(op: int, h: int, mech: Any, key: int) -> int:
    st, s = _session(h)
    mech_type, param = params.decode(ffi, mech)
    crypto.init(st, s, op, mech_type, param, key)   # kinds stay ints on the hot path
    return CKR.OK


def py_OpData(op: int, step: int, h: int, data: Any, n: int, cap: int, out: Any) -> int:
    st, s = _session(h)
    _out(out, crypto.data(st, s, op, step, _bytes(data, n), cap))
    return CKR.OK


def py_OpFeed(op: int, h: int, part: Any, n: int) -> int:
    st, s = _session(h)
    crypto.feed(st, s, op, _bytes(part, n))
    return CKR.OK


def py_Verify(h: int, data: Any, n: int, sig: Any, sig_n: int, step: int) -> int:
    st, s = _session(h)
    crypto.verify(st, s, _bytes(data, n), _bytes(sig, sig_n), step)
    return CKR.OK


def py_DigestKey(h: int, key: int) -> int:
    st, s = _session(h)
    crypto.digest_key(st, s, key)
    return CKR.OK


# ---- keys --------------------------------------------------------------------------------

def py_GenerateKey(h: int, mech: Any, tmpl: Any, n: int, out: Any) -> int:
    st, s = _session(h)
    mech_type, param = params.decode(ffi, mech)
    out[0] = keys.generate_key(st, s, mech_type, param, _template(tmpl, n))
    return CKR.OK


def py_GenerateKeyPair(h: int, mech: Any, pub: Any, pub_n: int, priv: Any, priv_n: int,
                       pub_out: Any, priv_out: Any) -> int:
    st, s = _session(h)
    mech_type, param = params.decode(ffi, mech)
    pub_out[0], priv_out[0] = keys.generate_key_pair(st, s, mech_type, param, _template(pub, pub_n),
                                                     _template(priv, priv_n))
    return CKR.OK


def py_WrapKey(h: int, mech: Any, wrapping: int, key: int, out: Any, repeatable: Any) -> int:
    st, s = _session(h)
    mech_type, param = params.decode(ffi, mech)
    _out(out, keys.wrap_key(st, s, mech_type, param, wrapping, key))
    repeatable[0] = params.repeatable(mech_type)
    return CKR.OK


def py_UnwrapKey(h: int, mech: Any, unwrapping: int, wrapped: Any, n: int, tmpl: Any, tn: int,
                 out: Any) -> int:
    st, s = _session(h)
    mech_type, param = params.decode(ffi, mech)
    data = _bytes(wrapped, n)
    assert data is not None     # C checked the pointer
    out[0] = keys.unwrap_key(st, s, mech_type, param, unwrapping, data, _template(tmpl, tn))
    return CKR.OK


def py_DeriveKey(h: int, mech: Any, base: int, tmpl: Any, n: int, out: Any) -> int:
    st, s = _session(h)
    mech_type, param = params.decode(ffi, mech)
    out[0] = keys.derive_key(st, s, mech_type, param, base, _template(tmpl, n))
    return CKR.OK


def py_SeedRandom(h: int, seed: Any, n: int) -> int:
    st, s = _session(h)
    keys.seed_random(st, s, _bytes(seed, n) or b"")
    return CKR.OK


def py_GenerateRandom(h: int, buf: Any, n: int) -> int:
    st, s = _session(h)
    if n:
        ffi.memmove(buf, keys.random_bytes(st, s, n), n)
    return CKR.OK


def py_Unsupported(h: int) -> int:
    engine()
    return CKR.FUNCTION_NOT_SUPPORTED


def py_Legacy(h: int) -> int:
    _session(h)
    return CKR.FUNCTION_NOT_PARALLEL   # Base §5.16: legacy functions


ENTRIES = {name: fn for name, fn in globals().items() if name.startswith("py_")}


def bind(shim_ffi: Any, lib: Any) -> None:
    """Attach every callback to the shim's `extern "Python"` declarations."""
    global ffi, _lib
    ffi, _lib = shim_ffi, lib
    for name, fn in ENTRIES.items():
        if name == "py_Ready":
            shim_ffi.def_extern(name=name)(fn)     # 0, "not ready", if it ever raised
        else:
            # If anything escaped the guard, cffi would answer 0, which is CKR_OK:
            # make that impossible (DESIGN "If Python fails to start...").
            shim_ffi.def_extern(name=name, error=int(CKR.GENERAL_ERROR))(_guard(fn))
