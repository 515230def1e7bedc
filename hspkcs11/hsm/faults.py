"""Zone health and injected faults, shared by every process that uses the region.

The state lives in `DATA/regions/REGION/faults.json` so that `hspkcs11-util zone down`
in one shell takes a zone away from every client at once (DESIGN "Fault injection").
A process re-reads the file only when it changed (one stat per check).

Per zone: `down` (the unit is unreachable), `delay_ms` with `delay_ops` (a slow unit),
`error_ops` (those operations fail), `corrupt` (the unit answers with corrupted rows,
which readers must detect and never serve). Operations are `read`, `write` and `seal`.

Changes are read-modify-write under an exclusive lock on `.faults.lock` (a file of its
own: `faults.json` is replaced on every write, so a lock on it would be on a stale
inode), re-read inside the lock, and written atomically; so two `zone` commands at the
same moment both take effect.

A damaged `faults.json` (not JSON, wrong types) never raises from `read()`: every
PKCS#11 process's health check reads it, and an exception there would stop the whole
region over a drill file. `read()` logs one warning and keeps the last good view this
object had, else `{}` (every zone up). That is the safe choice because the file only
ever *removes* service (outages, delays, errors, corrupt answers): keeping the last
view keeps what the operator last deliberately set, and without one, "no injected
faults" is the normal state; a real unit failure is still seen by the operation itself
(and corrupt rows by their checks), and master-key refusals do not live here. Failing
closed (every zone down) would turn a damaged drill file into a region outage. Writers,
unlike readers, refuse a damaged file (`FaultFileError`) rather than overwrite faults
they cannot read; `reset()` (`hspkcs11-util zone reset-faults`) rewrites it as healthy.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from .files import bump_epoch, private_dir, write_private

OPERATIONS = ("read", "write", "seal")
FILE_NAME = "faults.json"
LOCK_NAME = ".faults.lock"
LOCK_WAIT = 5.0          # seconds a writer waits for another writer before giving up
RESET_COMMAND = "hspkcs11-util zone reset-faults"

log = logging.getLogger("hspkcs11")


class FaultFileError(Exception):
    """The fault file cannot be changed now (damaged, or locked too long)."""


@dataclass(frozen=True)
class ZoneFaults:
    down: bool = False
    delay_ms: int = 0
    delay_ops: tuple[str, ...] = ()
    error_ops: tuple[str, ...] = ()
    corrupt: bool = False

    @property
    def healthy(self) -> bool:
        return self == ZoneFaults()

    def describe(self) -> str:
        if self.healthy:
            return "healthy"
        parts = ["down"] if self.down else []
        if self.delay_ms:
            parts.append(f"delay {self.delay_ms} ms on {','.join(self.delay_ops) or 'all'}")
        if self.error_ops:
            parts.append(f"errors on {','.join(self.error_ops)}")
        if self.corrupt:
            parts.append("corrupt answers")
        return "; ".join(parts)


_KINDS = {bool: "true or false", int: "a whole number", list: "a list"}


def _field(f: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = f.get(key, default)
    # bool is an int in Python: `"delay_ms": true` is as wrong as `"down": 1`.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{key} is {json.dumps(value)}, not {_KINDS[kind]}")
    return value


def _ops(f: dict[str, Any], key: str) -> tuple[str, ...]:
    ops = _field(f, key, list, [])
    if any(o not in OPERATIONS for o in ops):
        raise ValueError(f"{key} {ops!r} names operations other than {', '.join(OPERATIONS)}")
    return tuple(ops)


def parse(data: bytes) -> dict[str, ZoneFaults]:
    """The zones of a fault file; ValueError saying what is wrong with a damaged one."""
    try:
        doc = json.loads(data.decode())
    except (ValueError, RecursionError) as exc:      # UnicodeDecodeError, JSONDecodeError, deep nesting
        raise ValueError(f"not JSON ({type(exc).__name__})") from None
    zones = doc.get("zones", {}) if isinstance(doc, dict) else None
    if not isinstance(zones, dict):
        raise ValueError('no "zones" object')
    out = {}
    for zone, f in zones.items():
        if not isinstance(f, dict):
            raise ValueError(f"zone {zone!r} is not an object")
        try:
            delay_ms = _field(f, "delay_ms", int, 0)
            if delay_ms < 0:
                raise ValueError(f"delay_ms is {delay_ms}, below 0")
            out[zone] = ZoneFaults(_field(f, "down", bool, False), delay_ms, _ops(f, "delay_ops"),
                                   _ops(f, "error_ops"), _field(f, "corrupt", bool, False))
        except ValueError as exc:
            raise ValueError(f"zone {zone!r}: {exc}") from None
    return out


@dataclass
class FaultFile:
    region_dir: Path
    _cache: tuple[tuple[int, int, int], dict[str, ZoneFaults]] | None = field(default=None, repr=False)
    _good: dict[str, ZoneFaults] = field(default_factory=dict, repr=False)   # last view that parsed
    damaged: str | None = field(default=None, repr=False)    # why the file as last read is unusable

    @property
    def path(self) -> Path:
        return self.region_dir / FILE_NAME

    def read(self) -> dict[str, ZoneFaults]:
        """The zones' faults; never raises for a damaged file (see the module docstring)."""
        return self._refresh(warn=True)

    def check(self) -> str | None:
        """Why the file is damaged now, or None when it is fine (or absent). Quiet: the
        caller reports it (a CLI command), and a later read() does not warn again."""
        self._cache = None               # the caller wants the file as it is now
        self._refresh(warn=False)
        return self.damaged

    def _refresh(self, warn: bool) -> dict[str, ZoneFaults]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._cache, self.damaged = None, None
            return {}
        except OSError as exc:
            return self._damaged(None, f"cannot be examined ({exc.strerror})", warn)
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if self._cache and self._cache[0] == stamp:
            return self._cache[1]
        try:
            zones = parse(self.path.read_bytes())
        except FileNotFoundError:
            self._cache, self.damaged = None, None
            return {}
        except OSError as exc:
            return self._damaged(stamp, f"cannot be read ({exc.strerror})", warn)
        except ValueError as exc:
            return self._damaged(stamp, str(exc), warn)
        self._cache, self._good, self.damaged = (stamp, zones), zones, None
        return zones

    def _damaged(self, stamp: tuple[int, int, int] | None, why: str, warn: bool) -> dict[str, ZoneFaults]:
        # Cached under the damaged file's stamp: one warning per damage, not per health check.
        self._cache = (stamp, self._good) if stamp else None
        if warn and why != self.damaged:
            log.warning("fault file %s is damaged (%s): using the last good fault view (%s); run `%s` "
                        "to rewrite it with every zone healthy", self.path, why,
                        ", ".join(f"{z}: {f.describe()}" for z, f in self._good.items()) or "every zone healthy",
                        RESET_COMMAND)
        self.damaged = why
        return self._good

    def zone(self, zone: str) -> ZoneFaults:
        return self.read().get(zone, ZoneFaults())

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the writers' lock; wait at most LOCK_WAIT seconds for another writer."""
        private_dir(self.region_dir)
        # Opened fresh each time: flock belongs to the open file, so a shared descriptor
        # would let two threads of one process both "hold" it.
        fd = os.open(self.region_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise
                if time.monotonic() >= deadline:
                    raise FaultFileError(f"fault file {self.path} is locked by another process for more than "
                                         f"{LOCK_WAIT:g} s ({self.region_dir / LOCK_NAME}): retry when the "
                                         "other `zone` command has finished")
                time.sleep(0.01)
            yield
        finally:
            os.close(fd)                 # releases the lock

    def _write(self, zones: dict[str, ZoneFaults]) -> None:
        doc = {"zones": {z: asdict(f) for z, f in sorted(zones.items()) if not f.healthy}}
        write_private(self.path, json.dumps(doc, indent=1).encode())
        bump_epoch(self.region_dir)
        self._cache = None

    def _current(self) -> dict[str, ZoneFaults]:
        """The file as it is now (caller holds the lock); a damaged one is not overwritten."""
        self._cache = None               # another process may have written since our last stat
        zones = dict(self._refresh(warn=False))      # the caller reports the damage itself
        if self.damaged:
            raise FaultFileError(f"fault file {self.path} is damaged ({self.damaged}): run `{RESET_COMMAND}` "
                                 "to rewrite it with every zone healthy, then set the faults again")
        return zones

    def write(self, zones: dict[str, ZoneFaults]) -> None:
        with self.locked():
            self._write(zones)

    def set(self, zone: str, **changes: object) -> ZoneFaults:
        with self.locked():
            zones = self._current()
            zones[zone] = replace(zones.get(zone, ZoneFaults()), **changes)  # type: ignore[arg-type]
            self._write(zones)
        return zones[zone]

    def clear(self, zone: str) -> None:
        with self.locked():
            zones = self._current()
            zones.pop(zone, None)
            self._write(zones)

    def reset(self) -> str | None:
        """Rewrite the file with every zone healthy, damaged or not; returns why it was damaged."""
        with self.locked():
            why = self.check()
            self._write({})
        return why
