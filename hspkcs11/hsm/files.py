"""Files a unit writes: owner-only (directories 0700, files 0600), replaced atomically."""
from __future__ import annotations

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


EPOCH = ".epoch"


def bump_epoch(region_dir: Path) -> None:
    """Mark that the region's administrative state (faults, registers) changed: engines
    check this one file per call instead of every file it summarises."""
    write_private(region_dir / EPOCH, os.urandom(8))


def epoch(epoch_file: str) -> tuple[int, int]:
    """The stamp of a region's epoch file (its path precomputed: this runs per call)."""
    try:
        st = os.stat(epoch_file)
    except FileNotFoundError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_ino)


def private_sqlite(path: Path | str, **kwargs: object) -> sqlite3.Connection:
    """Open a SQLite database whose files (database, WAL, SHM) are created owner-only."""
    old_umask = os.umask(0o077)
    try:
        return sqlite3.connect(path, **kwargs)  # type: ignore[arg-type]
    finally:
        os.umask(old_umask)
