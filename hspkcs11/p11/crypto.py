"""Cryptographic operations in a session (Base §5.8–5.12): one typed slot per kind.

"Operation active", "not initialized" and "an error ends the operation" are written
once here for every kind. A result computed for a length query is kept with the call
that produced it, so the repeated call returns it without running the cipher again
(Base §5.2: the operation stays active after CKR_BUFFER_TOO_SMALL).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..consts import CKA, CKO, CKR, fast_members
from ..errors import P11Error, require
from ..mechanisms import lookup
from ..mechanisms.params import Param
from ..mechanisms.registry import KEY_TYPES, Mechanism
from .state import ActiveOp, Session, State


class Op(IntEnum):          # same numbers as `enum hs_op` in csrc/shim.h
    ENCRYPT = 0
    DECRYPT = 1
    DIGEST = 2
    SIGN = 3
    VERIFY = 4


class Step(IntEnum):        # `enum hs_step`
    ONESHOT = 0
    UPDATE = 1
    FINAL = 2


Op = fast_members(Op)  # type: ignore[misc]  # consts.py: plain attribute lookup
Step = fast_members(Step)  # type: ignore[misc]


CAP_QUERY = (1 << 64) - 1   # HS_CAP_QUERY: NULL output buffer
CAP_BAD = (1 << 64) - 2     # HS_CAP_BAD: NULL length pointer


@dataclass(frozen=True)
class Kind:
    factory: str            # the Mechanism field that makes the operation
    usage: int | None       # the key attribute that must be true
    classes: tuple[int, ...]


KINDS = {
    Op.ENCRYPT: Kind("encrypt", CKA.ENCRYPT, (CKO.SECRET_KEY, CKO.PUBLIC_KEY)),
    Op.DECRYPT: Kind("decrypt", CKA.DECRYPT, (CKO.SECRET_KEY, CKO.PRIVATE_KEY)),
    Op.DIGEST: Kind("digest", None, ()),
    Op.SIGN: Kind("sign", CKA.SIGN, (CKO.SECRET_KEY, CKO.PRIVATE_KEY)),
    Op.VERIFY: Kind("verify", CKA.VERIFY, (CKO.SECRET_KEY, CKO.PUBLIC_KEY)),
}


def check_key(mech: Mechanism, key: Any, usage: int | None, classes: tuple[int, ...],
              type_rv: CKR = CKR.KEY_TYPE_INCONSISTENT) -> None:
    """The checks every key use shares: class, type, size, permission, allowed list."""
    if key.klass not in classes or (mech.key_types and key.key_type not in mech.key_types):
        raise P11Error(type_rv, f"mechanism 0x{mech.mech:x} cannot use this key")
    if usage is not None and not key.attrs.get(usage, False):
        raise P11Error(CKR.KEY_FUNCTION_NOT_PERMITTED, f"the key's {CKA(usage).name} is false")
    allowed = key.attrs.get(CKA.ALLOWED_MECHANISMS, ())
    if allowed and mech.mech not in allowed:
        raise P11Error(CKR.KEY_FUNCTION_NOT_PERMITTED, "mechanism not in CKA_ALLOWED_MECHANISMS")
    if mech.max_key:
        size = KEY_TYPES[key.key_type].size(key)
        if not mech.min_key <= size <= mech.max_key:
            raise P11Error(CKR.KEY_SIZE_RANGE, f"key size {size} outside {mech.min_key}..{mech.max_key}")


def init(st: State, s: Session, op: Op, mech_type: int, param: Param, key_handle: int) -> None:
    if op in s.ops:
        raise P11Error(CKR.OPERATION_ACTIVE, f"a {Op(op).name.lower()} operation is active")
    kind = KINDS[op]
    mech = lookup(mech_type)
    factory = getattr(mech, kind.factory)
    if factory is None:
        raise P11Error(CKR.MECHANISM_INVALID, f"mechanism 0x{mech_type:x} cannot {kind.factory}")
    if op == Op.DIGEST:
        s.ops[op] = ActiveOp(factory(param), remake=lambda: factory(param))
        return
    key = st.key(s, key_handle)
    check_key(mech, key, kind.usage, kind.classes)
    st.hsm.require_master_key()
    s.ops[op] = ActiveOp(factory(key, param), key, remake=lambda: factory(key, param))


def _active(s: Session, op: Op) -> ActiveOp:
    active = s.ops.get(op)
    if active is None:
        raise P11Error(CKR.OPERATION_NOT_INITIALIZED, f"no {Op(op).name.lower()} operation is active")
    return active


def _unspend(s: Session, op: Op, active: ActiveOp) -> None:
    """Before a call that is not the repeat of a length query: a one-shot query ran the
    whole operation on its impl, yet the operation is still as C_*Init left it (Base §5.2),
    so it goes on with a fresh impl. After a final's query nothing more can be fed: the
    call is out of sequence and ends the operation."""
    if active.pending is None:
        return
    step, active.pending = active.pending[0][0], None
    if step == Step.ONESHOT:
        active.impl = active.remake()
    elif step == Step.FINAL:
        s.ops.pop(op, None)
        raise P11Error(CKR.OPERATION_ACTIVE, "the operation was being finished (C_*Final length query)")


def _run(s: Session, op: Op, fn: Any, *args: Any) -> Any:
    """Run one step; any error ends the operation (Base §5.8: C_Encrypt etc.)."""
    try:
        return fn(*args)
    except BaseException:
        s.ops.pop(op, None)
        raise


def data(st: State, s: Session, op: Op, step: Step, data_in: bytes | None, cap: int) -> bytes:
    """C_Encrypt/C_EncryptUpdate/C_EncryptFinal and the decrypt, digest, sign kinds."""
    active = _active(s, op)
    if cap == CAP_BAD or data_in is None:
        s.ops.pop(op, None)
        raise P11Error(CKR.ARGUMENTS_BAD, "NULL pointer for data or length")
    call = (step, data_in)
    if active.pending is not None and active.pending[0] == call:
        out = active.pending[1]
    else:
        _unspend(s, op, active)
        impl = active.impl
        if step == Step.UPDATE:
            if not impl.multipart:
                s.ops.pop(op, None)
                raise P11Error(CKR.MECHANISM_INVALID, "this mechanism is single-part only")
            active.started = True
            out = _run(s, op, impl.update, data_in)
            out = b"" if out is None else out
        elif step == Step.FINAL:
            out = _run(s, op, impl.final)
        else:
            if active.started:
                s.ops.pop(op, None)
                raise P11Error(CKR.OPERATION_ACTIVE, "a multi-part operation is under way")
            out = _run(s, op, impl.oneshot, data_in)
    if cap == CAP_QUERY or cap < len(out):
        active.pending = (call, out)     # C reports the length; the operation stays
    elif step == Step.UPDATE:
        active.pending = None
    else:
        del s.ops[op]
    return out


def feed(st: State, s: Session, op: Op, part: bytes | None) -> None:
    """C_DigestUpdate, C_SignUpdate, C_VerifyUpdate."""
    active = _active(s, op)
    if part is None:
        s.ops.pop(op, None)
        raise P11Error(CKR.ARGUMENTS_BAD, "NULL part with a length")
    if not active.impl.multipart:
        s.ops.pop(op, None)
        raise P11Error(CKR.MECHANISM_INVALID, "this mechanism is single-part only")
    _unspend(s, op, active)
    active.started = True
    _run(s, op, active.impl.update, part)


def verify(st: State, s: Session, data_in: bytes | None, signature: bytes | None, step: Step) -> None:
    active = _active(s, Op.VERIFY)
    del s.ops[Op.VERIFY]        # C_Verify and C_VerifyFinal always end the operation
    if signature is None or (step == Step.ONESHOT and data_in is None):
        raise P11Error(CKR.ARGUMENTS_BAD, "NULL pointer with a length")
    if step == Step.FINAL:
        active.impl.final(signature)
    else:
        require(not active.started, CKR.OPERATION_ACTIVE, "a multi-part verify is under way")
        active.impl.oneshot(data_in, signature)


def digest_key(st: State, s: Session, key_handle: int) -> None:
    active = _active(s, Op.DIGEST)
    key = st.key(s, key_handle)
    if key.klass != CKO.SECRET_KEY:
        s.ops.pop(Op.DIGEST, None)
        raise P11Error(CKR.KEY_INDIGESTIBLE, "only secret keys can be digested")
    _unspend(s, Op.DIGEST, active)
    active.started = True
    _run(s, Op.DIGEST, active.impl.update, key.secret())
