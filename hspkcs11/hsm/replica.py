"""The region as one highly available service: replication and failover across units.

Writes go to every healthy unit before the call returns, each in one transaction, in
an order fixed by a region-wide lock (`flock` on a file under the region): the writer
takes the next region sequence number, first brings any healthy unit that missed
writes up to date from a peer, then applies the change everywhere. Reads go to the
first healthy unit that holds every change. A unit is healthy when its zone is not
down, it answers, and its current master key is the region's (DESIGN "Zone
replication"). Nothing of one process's memory is needed by another: health, faults,
registers and positions all live on disk.
"""
from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from ..config import Config
from ..consts import CKR
from ..errors import P11Error
from . import audit
from .faults import FaultFile, ZoneFaults
from .files import ALLOC, EPOCH, HEAD, Stamp, set_head
from .masterkey import MasterKeyError
from .store import CorruptRow, ObjectRow, StoreError, TokenRow
from .unit import CryptoUnit, UnitKeyMissing

log = logging.getLogger("hspkcs11")
T = TypeVar("T")


class UnitFault(Exception):
    """An injected error on one unit's operation."""


class StaleSeal(Exception):
    """A row sealed under a master key the units no longer hold (a rotation finished
    between sealing and storing): the caller seals again and retries."""


LOCK_FILE = ".write.lock"     # holds the pid of the write lock's holder (the lock is on the directory)
LOCK_WAIT = 5.0               # seconds a writer waits for the region's lock before answering CKR_DEVICE_ERROR


def note_holder(region_dir: Path) -> None:
    fd = os.open(region_dir / LOCK_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, f"{os.getpid():<12}".encode(), 0)
    finally:
        os.close(fd)


def lock_holder(region_dir: Path) -> str:
    """The pid the write lock's holder recorded (or '?')."""
    try:
        text = (region_dir / LOCK_FILE).read_bytes()[:12].decode(errors="replace").strip()
    except OSError:
        return "?"
    return text if text.isdigit() else "?"


# What makes a unit fail an operation (and the caller move to the next unit); a
# MasterKeyError is a register file that no longer opens (damaged or tampered), and
# UnitKeyMissing one that no longer holds the key (emptied or deleted).
UNIT_FAILURES = (sqlite3.Error, CorruptRow, UnitFault, OSError, MasterKeyError, UnitKeyMissing)


class RegionService:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.name = config.region
        self.faults = FaultFile(config.region_dir)
        self.units: list[CryptoUnit] = []
        self.broken: dict[str, str] = {}      # zone -> why its unit did not open (status shows it)
        for zone in config.zones:
            if (config.unit_dir(zone) / "unit.db").exists():
                # Each unit opens on its own: a damaged or unreadable one is left out and
                # named, and the others serve (issue 13, row 5).
                try:
                    self.units.append(CryptoUnit(config.unit_dir(zone), config.region, zone,
                                                 synchronous=config.store_synchronous))
                except (StoreError, sqlite3.Error, OSError, MasterKeyError) as exc:
                    self.broken[zone] = f"{type(exc).__name__}: {exc}"
                    log.error("unit %s/%s does not open and is left out of service: %s; the other zones "
                              "serve. Restore its directory, or take the zone down (`hspkcs11-util zone down "
                              "%s`)", config.region, zone, exc, zone)
        if not self.units:
            why = "; ".join(f"{z}: {r}" for z, r in self.broken.items())
            raise P11Error(CKR.GENERAL_ERROR,
                           f"region {config.region} has no crypto unit that opens under {config.region_dir}"
                           + (f" ({why})" if why else ": run `hspkcs11-util region init`"))
        self.store = ReplicatedStore(self)
        self._lock_fd: int | None = None
        self._thread_lock = threading.Lock()
        self._lock_owner: int | None = None
        # Entered while waiting for the region's lock: the bridge lends one that lets
        # go of its process-wide lock, so a waiting writer never freezes other threads.
        self.unlocked: Callable[[], AbstractContextManager[None]] = nullcontext
        self._refused: dict[str, str] = {}
        self._health: tuple[tuple[int, int], list[CryptoUnit]] | None = None
        self._fault_view: dict[str, ZoneFaults] = {}
        self._key_ok = False
        self._epoch = Stamp(config.region_dir / EPOCH)
        self._head = Stamp(config.region_dir / HEAD)
        self._alloc = Stamp(config.region_dir / ALLOC)
        self._readers: tuple[bytes, list[CryptoUnit]] | None = None

    def close(self) -> None:
        for unit in self.units:
            unit.store.close()
        self._epoch.close()
        self._head.close()
        self._alloc.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- health --------------------------------------------------------------------------

    def reference_mkvp(self, units: list[CryptoUnit]) -> str | None:
        """The region's master key: the current MKVP most units hold (zone order breaks ties)."""
        mkvps = [u.registers.read().current_mkvp for u in units]
        if not mkvps:
            return None
        counts = Counter(mkvps)
        return max(mkvps, key=lambda m: (counts[m], -mkvps.index(m)))

    def healthy(self) -> list[CryptoUnit]:
        """Units that may serve, in zone order; recomputed only when the region's
        administrative state changed (one read of the mapped epoch stamp per call)."""
        stamp = self._epoch.read()
        if self._health is not None and self._health[0] == stamp:
            return self._health[1]
        serving = self._compute_health()
        self._health = (stamp, serving)
        return serving

    def _compute_health(self) -> list[CryptoUnit]:
        faults = self._fault_view = self.faults.read()
        up = self._readable([u for u in self.units if not faults.get(u.zone, _NO_FAULT).down])
        for u in up:
            u.store.corrupt = faults.get(u.zone, _NO_FAULT).corrupt
        reference = self.reference_mkvp(up)
        serving = []
        for u in up:
            mkvp = u.registers.read().current_mkvp
            if mkvp == reference:
                self._refused.pop(u.zone, None)
                serving.append(u)
            elif self._refused.get(u.zone) != mkvp:
                self._refused[u.zone] = mkvp or "empty"
                log.warning("unit %s refused: its master key %s differs from the region's %s; load the "
                            "region's key parts into it (`hspkcs11-util masterkey load`)",
                            u.name, mkvp or "(none)", reference or "(none)")
        self._key_ok = bool(serving) and serving[0].registers.read().current_key is not None
        return serving

    def _readable(self, units: list[CryptoUnit]) -> list[CryptoUnit]:
        """The units whose master-key registers open: a damaged or tampered register file
        takes its unit out of service (logged once), never the whole region."""
        readable = []
        for u in units:
            try:
                u.registers.read()
            except MasterKeyError as exc:
                if self._refused.get(u.zone) != "damaged":
                    self._refused[u.zone] = "damaged"
                    log.warning("unit %s refused: %s", u.name, exc)
                continue
            readable.append(u)
        return readable

    def refusal(self, unit: CryptoUnit) -> str | None:
        """Why a unit that is up does not serve, if it does not."""
        faults = self.faults.read()
        up = self._readable([u for u in self.units if not faults.get(u.zone, _NO_FAULT).down])
        if unit not in up and not faults.get(unit.zone, _NO_FAULT).down:
            return "its master-key registers do not open (damaged or tampered)"
        reference, mine = self.reference_mkvp(up), unit.registers.read().current_mkvp
        if unit in up and mine != reference:
            return f"master key {mine or '(none)'} differs from the region's {reference or '(none)'}"
        return None

    def inject(self, unit: CryptoUnit, op: str) -> None:
        """Apply the faults configured for this unit and operation (fault injection)."""
        self.healthy()                      # refreshes the fault view when the epoch moved
        f = self._fault_view.get(unit.zone, _NO_FAULT)
        if f.healthy:
            return
        if f.down:
            raise UnitFault(f"zone {unit.zone} is down")
        if f.delay_ms and (not f.delay_ops or op in f.delay_ops):
            time.sleep(f.delay_ms / 1000)
        if op in f.error_ops:
            raise UnitFault(f"injected error on {op} in zone {unit.zone}")

    def _none_left(self, what: str, errors: list[str]) -> P11Error:
        why = "; ".join(errors) if errors else "every zone is down or refused"
        return P11Error(CKR.DEVICE_ERROR, f"region {self.name}: no crypto unit can {what} ({why})")

    def each(self, op: str, what: str, fn: Callable[[CryptoUnit], T], units: list[CryptoUnit] | None = None) -> T:
        """Run `fn` on the first unit that succeeds: failover in one place."""
        errors = []
        for unit in self.healthy() if units is None else units:
            try:
                self.inject(unit, op)
                return fn(unit)
            except UNIT_FAILURES as exc:
                errors.append(f"{unit.zone}: {exc}")
                self._readers = None        # look at every unit's position again next time
                self._health = None         # and at its registers: a unit that lost them is refused
                log.warning("unit %s failed to %s (%s); failing over", unit.name, what, exc)
        raise self._none_left(what, errors)

    # ---- catch-up and the write lock --------------------------------------------------------

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """The region's writers in turn: a thread lock (flock is per open file, so it
        does not keep this process's threads apart), then `flock` on `.write.lock`.
        Both waits are bounded (LOCK_WAIT), then the call answers CKR_DEVICE_ERROR
        naming the holder's pid; `unlocked` lets the caller's other threads run while
        this one waits. Re-entrant within a thread."""
        me = threading.get_ident()
        if self._lock_owner == me:
            yield
            return
        deadline = time.monotonic() + LOCK_WAIT
        with self.unlocked():
            if not self._thread_lock.acquire(timeout=LOCK_WAIT):
                raise P11Error(CKR.DEVICE_ERROR, f"region {self.name}: another thread of this process has held "
                               f"the region's write lock for over {LOCK_WAIT:.0f} s")
            try:
                self._take_flock(deadline)
            except BaseException:
                self._thread_lock.release()
                raise
        self._lock_owner = me
        try:
            yield
        finally:
            self._lock_owner = None
            assert self._lock_fd is not None
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._thread_lock.release()

    def _take_flock(self, deadline: float) -> None:
        """Lock the region, polling until `deadline`. The lock is taken on the region's
        directory, not on a file in it: deleting or replacing a lock file (a "stale lock"
        clean-up) would let a second writer in while the first is still inside (issue
        13, row 3). `.write.lock` only records the holder's pid, for the log."""
        while True:
            if self._lock_fd is None:
                self._lock_fd = os.open(self.config.region_dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = lock_holder(self.config.region_dir)
                    log.error("region %s: its write lock has been held by pid %s for over %.0f s; key creation "
                              "and other writes are refused until it lets go (a stopped or hung process: "
                              "resume or end it)", self.name, holder, LOCK_WAIT)
                    raise P11Error(CKR.DEVICE_ERROR, f"region {self.name}: write lock held by pid {holder} "
                                   f"for over {LOCK_WAIT:.0f} s") from None
                time.sleep(0.002)
                continue
            mine, there = os.fstat(self._lock_fd), os.stat(self.config.region_dir)
            if (there.st_ino, there.st_dev) == (mine.st_ino, mine.st_dev):
                note_holder(self.config.region_dir)
                return
            os.close(self._lock_fd)          # the region directory was replaced: lock the one at the path
            self._lock_fd = None

    def positions(self, units: list[CryptoUnit]) -> dict[str, int]:
        out = {}
        for u in units:
            try:
                out[u.zone] = u.store.position()
            except UNIT_FAILURES:
                continue
        return out

    def head(self) -> int:
        """The region's newest change, recorded by every writer: a unit that was away
        cannot tell by itself what it missed."""
        return self._head.value()

    def set_head(self, seq: int) -> None:
        set_head(self.config.region_dir, seq)

    def next_seq(self, head: int) -> int:
        """The sequence number of the next write (caller holds the write lock), recorded
        before any unit holds it. A writer killed after committing its change to some
        units only, which were then lost, leaves a number no later write reuses: when such
        a unit returns, its change is told apart from the region's (Store.export_for)."""
        seq = max(head, self._alloc.value()) + 1
        Stamp.write(self.config.region_dir / ALLOC, seq.to_bytes(Stamp.SIZE, "big"))
        return seq

    def pulse_maps(self) -> tuple[Any, Any]:
        """The memory maps behind `pulse` (lent to the shim, csrc/shim.c)."""
        return self._head.map, self._epoch.map

    def pulse(self) -> bytes:
        """Moves whenever anything another process could see changes: a write anywhere in
        the region (the head) or its administrative state (the epoch). Two memory reads."""
        return self._head.read() + self._epoch.read()

    def catch_up(self, progress: Callable[[str, int], None] | None = None) -> tuple[list[CryptoUnit], int]:
        """Bring every healthy unit to the newest position (caller holds the write lock).
        Returns the units that hold everything, and that position. If no healthy unit
        holds the newest changes, nothing may serve: stale data is never answered."""
        units = self.healthy()
        pos = self.positions(units)
        if not pos:
            raise self._none_left("serve", [])
        head = max(pos.values())
        if head < self.head():
            raise self._none_left("serve", [f"the units holding changes up to {self.head()} are down; "
                                             f"the others stop at {head}"])
        source = next(u for u in units if pos.get(u.zone) == head)
        current = [source]
        for unit in units:
            if unit is source or unit.zone not in pos:
                continue
            if pos[unit.zone] < head:
                try:
                    self.inject(unit, "write")
                    bundle = source.store.export_for(unit.store, pos[unit.zone])
                    unit.store.import_bundle(bundle)
                except UNIT_FAILURES as exc:
                    log.warning("unit %s could not catch up from %s: %s", unit.name, source.name, exc)
                    continue
                log.info("unit %s caught up %d changes from %s", unit.name, len(bundle.changes), source.name)
                if progress:
                    progress(unit.zone, len(bundle.changes))
            current.append(unit)
        if head > self.head():
            # A writer killed after its units committed, before it moved the head: its
            # change is served from now on, so it is the region's (a unit without it lags).
            self.set_head(head)
        return sorted(current, key=self.units.index), head

    def readers(self) -> list[CryptoUnit]:
        """Healthy units that hold every change; one that lags is caught up first.
        Units that held every change still do while the pulse has not moved."""
        pulse = self.pulse()
        if self._readers is not None and self._readers[0] == pulse:
            return self._readers[1]
        readers = self._current_readers()
        self._readers = (pulse, readers)
        return readers

    def _current_readers(self) -> list[CryptoUnit]:
        units = self.healthy()
        pos = self.positions(units)
        # Units that differ, or that all stand apart from the head (behind it: missing
        # changes; ahead of it: a writer killed after its commits, before it moved the
        # head), go through catch_up, which settles the head as well.
        if pos and (len(set(pos.values())) > 1 or max(pos.values()) != self.head()):
            with self.write_lock():
                units, _ = self.catch_up()
            return units
        return [u for u in units if u.zone in pos]

    # ---- sealing (every unit holds the same master key) -------------------------------------

    def key_ready(self) -> bool:
        """A serving unit holds a current master key (keys can be used)."""
        return bool(self.healthy()) and self._key_ok

    def require_master_key(self) -> None:
        """Key use needs a serving unit with a current master key. Answered from the
        health view (registers changes move the epoch), so it costs one memory read."""
        units = self.healthy()
        if not units:
            raise self._none_left("use keys", [])
        if not self._key_ok:
            units[0].current()          # raises the error that names the command to run

    def seal(self, uid: bytes, payload: bytes) -> tuple[bytes, str]:
        return self.each("seal", "seal a key", lambda u: u.seal(uid, payload))

    def unseal(self, uid: bytes, blob: bytes) -> bytes:
        try:
            return self.each("seal", "unseal a key", lambda u: u.unseal(uid, blob))
        except P11Error as bad:
            # The blob came from one unit's row. A row altered with its (keyless) digest
            # recomputed passes the digest check but not the key wrap's: another unit's
            # copy of the object may still be intact.
            for unit in self.healthy():
                try:
                    other = unit.store.sealed_of(uid)
                    if other is None or other == blob:
                        continue
                    plain = unit.unseal(uid, other)
                except (P11Error, *UNIT_FAILURES):
                    continue
                log.warning("a sealed blob failed to open (%s); unit %s's copy of the object was used",
                            bad.why, unit.name)
                return plain
            raise

    def record(self, event: str, **detail: Any) -> None:
        audit.record(self.config.region_dir, event, region=self.name, **detail)


class ReplicatedStore:
    """The `Store` interface, served by the region: reads fail over, writes replicate."""

    def __init__(self, service: RegionService) -> None:
        self.s = service

    def close(self) -> None:
        self.s.close()

    def _read(self, what: str, fn: Callable[[Any], T]) -> T:
        return self.s.each("read", what, lambda unit: fn(unit.store), self.s.readers())

    def _write(self, what: str, fn: Callable[[Any, int], None], sealed_under: str | None = None,
               precondition: Callable[[Any], bool] | None = None) -> int | None:
        """Apply `fn` to every healthy unit under the region's lock. `precondition` reads
        the caught-up units' own state under that lock (never a cached copy) and may
        decline the write: then nothing is written and the answer is None."""
        errors = []
        with self.s.write_lock():
            units, head = self.s.catch_up()
            if sealed_under is not None and any(sealed_under not in u.loaded_mkvps() for u in units):
                raise StaleSeal(sealed_under)
            if precondition is not None and not self.s.each("read", what, lambda u: precondition(u.store), units):
                return None
            seq = self.s.next_seq(head)
            done = 0
            for unit in units:
                try:
                    self.s.inject(unit, "write")
                    fn(unit.store, seq)
                    done += 1
                except UNIT_FAILURES as exc:
                    errors.append(f"{unit.zone}: {exc}")
                    log.warning("unit %s missed a write (%s); it catches up when it can", unit.name, exc)
            if not done:
                raise self.s._none_left(what, errors)
            self.s.set_head(seq)
        return seq

    # reads
    def last_change(self) -> int:
        return self._read("read", lambda st: st.position())

    def changes_since(self, seq: int) -> list[tuple[int, str, int | None, str]]:
        return self._read("read", lambda st: st.changes_since(seq))

    def tokens(self) -> list[TokenRow]:
        return self._read("read tokens", lambda st: st.tokens())

    def token(self, serial: str) -> TokenRow | None:
        return self._read("read a token", lambda st: st.token(serial))

    def get_object(self, handle: int) -> ObjectRow | None:
        return self._read("read an object", lambda st: st.get_object(handle))

    def find(self, serial: str, include_private: bool, **index: Any) -> list[ObjectRow]:
        return self._read("find objects", lambda st: st.find(serial, include_private, **index))

    def count_objects(self, serial: str | None = None) -> int:
        return self._read("count objects", lambda st: st.count_objects(serial))

    def sealed_under(self, mkvp: str) -> int:
        return self._read("count keys", lambda st: st.sealed_under(mkvp))

    # writes
    def put_token(self, t: TokenRow) -> None:
        self._write("write a token", lambda st, seq: st.put_token(t, seq))

    def update_token(self, serial: str, **columns: object) -> None:
        self._write("write a token", lambda st, seq: st.update_token(serial, seq, **columns))

    def count_pin_attempt(self, serial: str, column: str, limit: int) -> TokenRow | None:
        """Count one PIN attempt before it is verified (the lockout of Base §5.6 holds for
        parallel processes): under the region's lock, read the failure count from the
        units themselves, and add one unless it reached `limit`. Returns the token as it
        was before this attempt, or None when the PIN is locked (nothing written). When
        no unit records the attempt the call fails (CKR_DEVICE_ERROR): an attempt that
        is not counted is never verified."""
        seen: list[TokenRow] = []

        def below_limit(st: Any) -> bool:
            t = st.token(serial)
            if t is None:
                raise P11Error(CKR.DEVICE_REMOVED, f"token {serial} was deleted")
            seen[:] = [t]
            return bool(getattr(t, column) < limit)

        def count(st: Any, seq: int) -> None:
            st.update_token(serial, seq, **{column: getattr(seen[0], column) + 1})

        if self._write("count a PIN attempt", count, precondition=below_limit) is None:
            return None
        return seen[0]

    def wipe_token(self, serial: str) -> None:
        self._write("wipe a token", lambda st, seq: st.wipe_token(serial, seq))

    def delete_token(self, serial: str) -> None:
        self._write("delete a token", lambda st, seq: st.delete_token(serial, seq))

    def insert_object(self, row: ObjectRow) -> int:
        """A new object; its handle is the region sequence number of its creation, the
        same in every unit and never reused."""
        return self._write("store an object", lambda st, seq: st.put_object(replace(row, handle=seq), seq),
                           row.mkvp)

    def update_object(self, row: ObjectRow) -> None:
        self._write("update an object", lambda st, seq: st.put_object(row, seq), row.mkvp)

    def delete_object(self, serial: str, handle: int) -> bool:
        gone = []
        self._write("destroy an object", lambda st, seq: gone.append(st.delete_object(serial, handle, seq)))
        return any(gone)


_NO_FAULT = ZoneFaults()
