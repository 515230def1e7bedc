"""A crypto unit's store: one SQLite database in WAL mode. It knows nothing of crypto.

Secret attributes arrive already sealed (`sealed`, an opaque blob); public attributes
arrive packed by `p11.codec`. A few of them are copied into columns so that finds by
class, label or CKA_ID use an index instead of a scan. Every change appends to
`changes`, which other processes read to refresh their caches (and, later, which
replication reads). The on-disk format is described in docs/store-format.md.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

FORMAT = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    serial TEXT PRIMARY KEY,
    slot_id INTEGER NOT NULL UNIQUE,
    label BLOB NOT NULL,
    so_pin TEXT NOT NULL,
    user_pin TEXT,
    so_failures INTEGER NOT NULL DEFAULT 0,
    user_failures INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS objects (
    handle INTEGER PRIMARY KEY AUTOINCREMENT,
    serial TEXT NOT NULL REFERENCES tokens(serial) ON DELETE CASCADE,
    uid BLOB NOT NULL UNIQUE,
    class INTEGER NOT NULL,
    key_type INTEGER,
    private INTEGER NOT NULL,
    label BLOB,
    ckaid BLOB,
    attrs BLOB NOT NULL,
    sealed BLOB,
    mkvp TEXT
);
CREATE INDEX IF NOT EXISTS objects_by_id ON objects(serial, ckaid);
CREATE INDEX IF NOT EXISTS objects_by_label ON objects(serial, label);
CREATE INDEX IF NOT EXISTS objects_by_class ON objects(serial, class);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    serial TEXT NOT NULL,
    handle INTEGER,
    op TEXT NOT NULL
);
"""


class StoreError(Exception):
    """The store cannot be used (wrong region, unreadable, not a store)."""


@dataclass(frozen=True)
class ObjectRow:
    handle: int
    serial: str
    uid: bytes
    klass: int
    key_type: int | None
    private: bool
    label: bytes | None
    ckaid: bytes | None
    attrs: bytes
    sealed: bytes | None
    mkvp: str | None


@dataclass(frozen=True)
class TokenRow:
    serial: str
    slot_id: int
    label: bytes
    so_pin: str
    user_pin: str | None
    so_failures: int
    user_failures: int


_OBJECT_COLUMNS = "handle, serial, uid, class, key_type, private, label, ckaid, attrs, sealed, mkvp"
_TOKEN_COLUMNS = "serial, slot_id, label, so_pin, user_pin, so_failures, user_failures"


class Store:
    """One unit's database. Thread-safe within a process; WAL lets processes share it."""

    def __init__(self, path: Path, region: str, zone: str, create: bool = False) -> None:
        self.path = path
        if not create and not path.exists():
            raise StoreError(f"no store at {path}")
        old_umask = os.umask(0o077)   # database, WAL and SHM files: owner only
        try:
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None,
                                       check_same_thread=False)
        finally:
            os.umask(old_umask)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")   # durable at checkpoints; WAL keeps it consistent
        self._db.execute("PRAGMA foreign_keys=ON")
        if create:
            self._db.executescript(SCHEMA)   # idempotent; executescript commits on its own
        with self.tx():
            self._check_identity(region, zone, create)

    def _check_identity(self, region: str, zone: str, create: bool) -> None:
        meta = dict(self._db.execute("SELECT k, v FROM meta").fetchall()) if self._has_meta() else {}
        if not meta:
            if not create:
                raise StoreError(f"{self.path} is not an hspkcs11 store")
            self._db.executemany("INSERT INTO meta VALUES (?, ?)",
                                 [("format", str(FORMAT)), ("region", region), ("zone", zone)])
            return
        if meta.get("region") != region:
            # Region confinement (DESIGN.md): a store never serves another region.
            raise StoreError(f"{self.path} belongs to region {meta.get('region')!r}, not {region!r}; "
                             "a region's data moves only through backup and restore")
        if int(meta.get("format", 0)) != FORMAT:
            raise StoreError(f"{self.path} has store format {meta.get('format')}, expected {FORMAT}")

    def _has_meta(self) -> bool:
        return self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers queue instead of failing late)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def data_version(self) -> int:
        """Changes when another connection commits (SQLite PRAGMA data_version)."""
        with self._lock:
            return self._db.execute("PRAGMA data_version").fetchone()[0]

    def last_change(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT max(seq) FROM changes").fetchone()
            return row[0] or 0

    def changes_since(self, seq: int) -> list[tuple[int, str, int | None, str]]:
        with self._lock:
            return self._db.execute(
                "SELECT seq, serial, handle, op FROM changes WHERE seq > ? ORDER BY seq", (seq,)).fetchall()

    # ---- tokens ----------------------------------------------------------------------

    def tokens(self) -> list[TokenRow]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY slot_id").fetchall()
        return [TokenRow(*r) for r in rows]

    def token(self, serial: str) -> TokenRow | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE serial = ?",
                                   (serial,)).fetchone()
        return TokenRow(*row) if row else None

    def put_token(self, t: TokenRow) -> None:
        with self.tx() as db:
            db.execute(f"INSERT OR REPLACE INTO tokens ({_TOKEN_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                       (t.serial, t.slot_id, t.label, t.so_pin, t.user_pin, t.so_failures,
                        t.user_failures))
            db.execute("INSERT INTO changes (serial, handle, op) VALUES (?, NULL, 'token')", (t.serial,))

    def set_failures(self, serial: str, so: int | None = None, user: int | None = None) -> None:
        with self.tx() as db:
            if so is not None:
                db.execute("UPDATE tokens SET so_failures = ? WHERE serial = ?", (so, serial))
            if user is not None:
                db.execute("UPDATE tokens SET user_failures = ? WHERE serial = ?", (user, serial))
            db.execute("INSERT INTO changes (serial, handle, op) VALUES (?, NULL, 'token')", (serial,))

    def wipe_token(self, serial: str) -> None:
        """Destroy every object of a token (re-initialisation by the SO)."""
        with self.tx() as db:
            handles = [h for (h,) in db.execute("SELECT handle FROM objects WHERE serial = ?", (serial,))]
            db.execute("DELETE FROM objects WHERE serial = ?", (serial,))
            db.executemany("INSERT INTO changes (serial, handle, op) VALUES (?, ?, 'delete')",
                           [(serial, h) for h in handles])

    def delete_token(self, serial: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM objects WHERE serial = ?", (serial,))
            db.execute("DELETE FROM tokens WHERE serial = ?", (serial,))
            db.execute("INSERT INTO changes (serial, handle, op) VALUES (?, NULL, 'token')", (serial,))

    # ---- objects -----------------------------------------------------------------------

    def insert_object(self, row: ObjectRow) -> int:
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO objects (serial, uid, class, key_type, private, label, ckaid, attrs, sealed,"
                " mkvp) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (row.serial, row.uid, row.klass, row.key_type, int(row.private), row.label, row.ckaid,
                 row.attrs, row.sealed, row.mkvp))
            handle = cur.lastrowid
            db.execute("INSERT INTO changes (serial, handle, op) VALUES (?, ?, 'put')", (row.serial, handle))
        assert handle is not None
        return handle

    def update_object(self, row: ObjectRow) -> None:
        with self.tx() as db:
            cur = db.execute(
                "UPDATE objects SET private = ?, label = ?, ckaid = ?, attrs = ?, sealed = ?, mkvp = ?"
                " WHERE handle = ?",
                (int(row.private), row.label, row.ckaid, row.attrs, row.sealed, row.mkvp, row.handle))
            if cur.rowcount != 1:
                raise KeyError(row.handle)
            db.execute("INSERT INTO changes (serial, handle, op) VALUES (?, ?, 'put')",
                       (row.serial, row.handle))

    def delete_object(self, serial: str, handle: int) -> bool:
        with self.tx() as db:
            gone = db.execute("DELETE FROM objects WHERE handle = ? AND serial = ?",
                              (handle, serial)).rowcount == 1
            if gone:
                db.execute("INSERT INTO changes (serial, handle, op) VALUES (?, ?, 'delete')",
                           (serial, handle))
        return gone

    def get_object(self, handle: int) -> ObjectRow | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE handle = ?",
                                   (handle,)).fetchone()
        return ObjectRow(*row) if row else None

    def find(self, serial: str, include_private: bool, klass: int | None = None,
             label: bytes | None = None, ckaid: bytes | None = None,
             key_type: int | None = None) -> list[ObjectRow]:
        """Rows matching the indexed columns given; the caller filters the rest."""
        sql = f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE serial = ?"
        args: list[object] = [serial]
        for column, value in (("class", klass), ("label", label), ("ckaid", ckaid), ("key_type", key_type)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if not include_private:
            sql += " AND private = 0"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY handle", args).fetchall()
        return [ObjectRow(*r) for r in rows]

    def count_objects(self, serial: str | None = None) -> int:
        with self._lock:
            if serial is None:
                return self._db.execute("SELECT count(*) FROM objects").fetchone()[0]
            return self._db.execute("SELECT count(*) FROM objects WHERE serial = ?", (serial,)).fetchone()[0]

    def sealed_under(self, mkvp: str) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM objects WHERE mkvp = ?", (mkvp,)).fetchone()[0]
