"""Files a unit writes: owner-only (directories 0700, files 0600), replaced atomically,
except the region's stamps, which are changed in place (`Stamp`)."""
from __future__ import annotations

import mmap
import os
import sqlite3
import tempfile
from pathlib import Path


def private_dir(path: Path) -> None:
    """Create `path` and any missing parents with mode 0700 (mkdir's `mode` covers only
    the last level)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, atomically (temp file + rename)."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


EPOCH = ".epoch"       # moves when the region's administrative state (faults, registers) changes
HEAD = "head"          # the region's newest change sequence number (8 bytes, big-endian)
ALLOC = "alloc"        # the newest sequence number a writer took, before any unit held it


class Stamp:
    """An 8-byte file under the region that writers change in place and every engine
    maps into memory: noticing another process's change then costs one memory read per
    call, not a stat or a query (issue 7). Such a file is never replaced or truncated:
    a mapping of a replaced file would go stale, one of a truncated file would fault."""

    SIZE = 8

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < self.SIZE:     # extends with zeros; never shortens
                os.ftruncate(fd, self.SIZE)
            self._map: mmap.mmap | None = mmap.mmap(fd, self.SIZE, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)

    @property
    def map(self) -> mmap.mmap:
        assert self._map is not None, "stamp closed"
        return self._map

    def read(self) -> bytes:
        assert self._map is not None, "stamp closed"
        return self._map[:self.SIZE]

    def value(self) -> int:
        return int.from_bytes(self.read(), "big")

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    @classmethod
    def write(cls, path: Path, value: bytes) -> None:
        """Change the stamp in place (every mapping sees it at once: one page cache)."""
        assert len(value) == cls.SIZE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, value, 0)
        finally:
            os.close(fd)


def bump_epoch(region_dir: Path) -> None:
    """Mark that the region's administrative state (faults, registers) changed: engines
    check this one stamp per call instead of every file it summarises."""
    private_dir(region_dir)
    Stamp.write(region_dir / EPOCH, os.urandom(Stamp.SIZE))


def set_head(region_dir: Path, seq: int) -> None:
    Stamp.write(region_dir / HEAD, seq.to_bytes(Stamp.SIZE, "big"))


def private_sqlite(path: Path | str, **kwargs: object) -> sqlite3.Connection:
    """Open a SQLite database whose files (database, WAL, SHM) are created owner-only."""
    old_umask = os.umask(0o077)
    try:
        return sqlite3.connect(path, **kwargs)  # type: ignore[arg-type]
    finally:
        os.umask(old_umask)
