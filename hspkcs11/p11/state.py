"""The library's state in one process: sessions, login state, and caches of the store.

Sessions and session objects live here only (they belong to the process). Token
objects and tokens live in the unit's store; this process keeps a cache of them and
drops entries that another process changed, which it learns from the region's pulse
(two mapped stamps that every write and every administrative change move) and the
store's change log (DESIGN "Cost per call").
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..consts import CKO, CKR, CKS, CKU
from ..errors import P11Error
from ..hsm.replica import RegionService
from ..hsm.store import TokenRow
from .objects import SESSION_HANDLE_BASE, P11Object, from_row


# Token objects a process keeps decoded (about 2.6 KiB each): enough for the keys an
# application works with, while a walk over 100,000 keys stays far below 300 MB (issue 7).
CACHED_OBJECTS = 10_000


class ObjectCache(dict):
    """Token objects by handle; past `limit` entries the oldest entry goes (dicts keep
    insertion order). A dropped object is read from the store again when next used."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, handle: int, obj: P11Object) -> None:
        if handle not in self and len(self) >= self.limit:
            del self[next(iter(self))]
        super().__setitem__(handle, obj)


@dataclass
class ActiveOp:
    """One operation in progress in a session (encrypt, sign, ...)."""
    impl: Any
    key: P11Object | None = None
    pending: tuple[Any, bytes] | None = None   # (call, output) kept for a length query
    started: bool = False                      # an update call was made
    remake: Any = None                         # a fresh impl, for after a one-shot length query


@dataclass
class Session:
    handle: int
    slot_id: int
    serial: str
    rw: bool
    ops: dict[int, ActiveOp] = field(default_factory=dict)
    find: list[int] | None = None


class State:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.hsm = RegionService(config)
        self.store = self.hsm.store
        self.lock = threading.RLock()
        self.sessions: dict[int, Session] = {}
        self.logins: dict[str, int] = {}                 # token serial -> CKU.SO / CKU.USER
        self.session_objects: dict[int, P11Object] = {}
        self.cache: dict[int, P11Object] = ObjectCache(CACHED_OBJECTS)   # token objects by handle
        self._tokens: list[TokenRow] | None = None
        self._slots: tuple[list[TokenRow], dict[int, TokenRow | None]] | None = None
        self.rng_seed = b""                              # C_SeedRandom material (keys.py)
        self.rng_counter = 0
        self._next_session = 1
        self._next_object = SESSION_HANDLE_BASE
        self._pulse: bytes | None = None
        self._seq = self.store.last_change()

    def close(self) -> None:
        self.sessions.clear()
        self.session_objects.clear()
        self.cache.clear()
        self.store.close()

    # ---- seeing other processes' changes ------------------------------------------------

    def sync(self) -> None:
        """Drop what another process changed. The pulse is read before the change log
        and kept only once the log was read, so a failed read is retried next call."""
        pulse = self.hsm.pulse()
        if pulse == self._pulse:
            return
        for seq, _serial, handle, op in self.store.changes_since(self._seq):
            self._seq = seq
            if handle is None:
                self._tokens = None
            else:
                self.cache.pop(handle, None)
        self._pulse = pulse

    def mark_own_write(self) -> None:
        """After our own commit: read the change log now, so that another process's
        change committed just before ours is not taken for ours (the caller then
        caches what it wrote)."""
        self.sync()

    # ---- tokens and slots ----------------------------------------------------------------

    def tokens(self) -> list[TokenRow]:
        self.sync()
        if self._tokens is None:
            self._tokens = self.store.tokens()
        return self._tokens

    def invalidate_tokens(self) -> None:
        self._tokens = None

    def slots(self) -> dict[int, TokenRow | None]:
        """Every initialized token has its slot, plus one free slot (as SoftHSM2); built
        again only when the token list was read again."""
        tokens = self.tokens()
        if self._slots is not None and self._slots[0] is tokens:
            return self._slots[1]
        slots: dict[int, TokenRow | None] = {t.slot_id: t for t in tokens}
        free = 0
        while free in slots:
            free += 1
        slots[free] = None
        self._slots = (tokens, dict(sorted(slots.items())))
        return self._slots[1]

    def slot(self, slot_id: int) -> TokenRow | None:
        slots = self.slots()
        if slot_id not in slots:
            raise P11Error(CKR.SLOT_ID_INVALID, f"no slot {slot_id}")
        return slots[slot_id]

    def token(self, serial: str) -> TokenRow:
        for t in self.tokens():
            if t.serial == serial:
                return t
        raise P11Error(CKR.DEVICE_REMOVED, f"token {serial} was deleted")

    # ---- sessions -------------------------------------------------------------------------

    def session(self, handle: int) -> Session:
        try:
            return self.sessions[handle]
        except KeyError:
            raise P11Error(CKR.SESSION_HANDLE_INVALID, f"no session {handle}") from None

    def new_session_handle(self) -> int:
        handle = self._next_session
        self._next_session += 1
        return handle

    def new_object_handle(self) -> int:
        handle = self._next_object
        self._next_object += 1
        return handle

    def session_state(self, s: Session) -> int:
        who = self.logins.get(s.serial)
        if who == CKU.SO:
            return CKS.RW_SO_FUNCTIONS
        if who == CKU.USER:
            return CKS.RW_USER_FUNCTIONS if s.rw else CKS.RO_USER_FUNCTIONS
        return CKS.RW_PUBLIC_SESSION if s.rw else CKS.RO_PUBLIC_SESSION

    def user_logged_in(self, s: Session) -> bool:
        return self.logins.get(s.serial) == CKU.USER

    # ---- objects --------------------------------------------------------------------------

    def object(self, s: Session, handle: int, rv: CKR = CKR.OBJECT_HANDLE_INVALID) -> P11Object:
        """An object this session may see; `rv` is the code for one it may not."""
        obj = self.session_objects.get(handle)
        if obj is None:
            self.sync()
            obj = self.cache.get(handle)
            if obj is None:
                row = self.store.get_object(handle) if handle < SESSION_HANDLE_BASE else None
                if row is None:
                    raise P11Error(rv, f"no object {handle}")
                obj = self.cache[handle] = from_row(row, self.hsm)
        if obj.serial != s.serial:
            raise P11Error(rv, f"object {handle} is on another token")
        if obj.private and not self.user_logged_in(s):
            raise P11Error(rv, f"object {handle} is private and the user is not logged in")
        return obj

    def key(self, s: Session, handle: int, rv: CKR = CKR.KEY_HANDLE_INVALID) -> P11Object:
        obj = self.object(s, handle, rv)
        if obj.klass not in (CKO.SECRET_KEY, CKO.PUBLIC_KEY, CKO.PRIVATE_KEY):
            raise P11Error(rv, f"object {handle} is not a key")
        return obj

    def drop_session_objects(self, session_handle: int) -> None:
        for handle in [h for h, o in self.session_objects.items() if o.session == session_handle]:
            del self.session_objects[handle]

    def forget_private(self, serial: str) -> None:
        """After logout: end operations on private keys' handles held in cache (Base §5.6)."""
        for s in self.sessions.values():
            if s.serial == serial:
                s.ops.clear()
                s.find = None
