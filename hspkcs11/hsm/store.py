"""A crypto unit's store: one SQLite database in WAL mode. It knows nothing of crypto.

Secret attributes arrive already sealed (`sealed`, an opaque blob); public attributes
arrive packed by `p11.codec`. A few of them are copied into columns so that finds by
class, label or CKA_ID use an index instead of a scan. Every write carries the
region's sequence number (`seq`, chosen by `hsm.replica`) and appends to `changes`:
other processes read it to refresh their caches, and a unit that missed writes copies
what it lacks from a peer (`export_since` / `import_bundle`). Each object row carries
a digest, checked on every read, so a unit that answers with corrupted data is caught.
The on-disk format is described in docs/store-format.md.
"""
from __future__ import annotations

import hashlib
import sqlite3
import struct
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .files import private_sqlite

FORMAT = 2

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
    handle INTEGER PRIMARY KEY,
    serial TEXT NOT NULL REFERENCES tokens(serial) ON DELETE CASCADE,
    uid BLOB NOT NULL UNIQUE,
    class INTEGER NOT NULL,
    key_type INTEGER,
    private INTEGER NOT NULL,
    label BLOB,
    ckaid BLOB,
    attrs BLOB NOT NULL,
    sealed BLOB,
    mkvp TEXT,
    digest BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_by_id ON objects(serial, ckaid);
CREATE INDEX IF NOT EXISTS objects_by_label ON objects(serial, label);
CREATE INDEX IF NOT EXISTS objects_by_class ON objects(serial, class);
CREATE INDEX IF NOT EXISTS objects_by_mkvp ON objects(mkvp);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER NOT NULL,
    serial TEXT NOT NULL,
    handle INTEGER,
    op TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_seq ON changes(seq);
"""


class StoreError(Exception):
    """The store cannot be used (wrong region, unreadable, not a store)."""


class CorruptRow(StoreError):
    """A row whose digest does not match its content: the unit must not be trusted."""


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
_SQLITE_MIN, _SQLITE_MAX = -2**63, 2**63 - 1     # SQLite integers are signed 64-bit


_DIGEST_HEADER = struct.Struct(">qqqBIIIIII")


def row_digest(r: ObjectRow) -> bytes:
    """A checksum over a row's content (corruption, not tampering: no key involved).
    One packed header (integers, which columns are NULL, every length) then the bytes:
    unambiguous, and the same whether values came from the engine or from SQLite."""
    serial, mkvp = r.serial.encode(), (r.mkvp or "").encode()
    label, ckaid, sealed = r.label or b"", r.ckaid or b"", r.sealed or b""
    nulls = ((r.key_type is None) | (r.label is None) << 1 | (r.ckaid is None) << 2
             | (r.sealed is None) << 3 | (r.mkvp is None) << 4 | bool(r.private) << 5)
    header = _DIGEST_HEADER.pack(r.handle, r.klass, r.key_type or 0, nulls, len(serial), len(r.uid), len(label),
                                 len(ckaid), len(r.attrs), len(sealed))
    return hashlib.sha256(header + serial + r.uid + label + ckaid + r.attrs + sealed + mkvp).digest()[:16]


@dataclass
class Bundle:
    """What a lagging unit needs from a peer: the change rows after its position and the
    current state of every token and object they name (None: it is gone)."""
    changes: list[tuple[int, str, int | None, str]] = field(default_factory=list)
    tokens: dict[str, "TokenRow | None"] = field(default_factory=dict)
    objects: dict[int, "ObjectRow | None"] = field(default_factory=dict)
    drop: list[int] = field(default_factory=list)     # the receiver's orphan changes (export_for)
_TOKEN_COLUMNS = "serial, slot_id, label, so_pin, user_pin, so_failures, user_failures"
_TOKEN_UPDATABLE = {"label", "so_pin", "user_pin", "so_failures", "user_failures"}


class Store:
    """One unit's database. Thread-safe within a process; WAL lets processes share it.

    `corrupt` makes the store answer with damaged rows (fault injection); the digest
    check then refuses them, exactly as it would refuse real damage.
    """

    def __init__(self, path: Path, region: str, zone: str, create: bool = False,
                 origin: str | None = None, synchronous: str = "FULL") -> None:
        self.path = path
        self.corrupt = False
        self.origin = region     # the region whose tag the store's sealed blobs carry (meta `origin`)
        if not create and not path.exists():
            raise StoreError(f"no store at {path}")
        self._db = private_sqlite(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the call answers CKR_OK, so a power cut loses
        # no acknowledged write (bench/durability.py measures the cost; README "Data safety").
        self._db.execute(f"PRAGMA synchronous={'NORMAL' if synchronous == 'NORMAL' else 'FULL'}")
        self._db.execute("PRAGMA foreign_keys=ON")
        if create:
            self._db.executescript(SCHEMA)   # idempotent; executescript commits on its own
        with self.tx():
            self._check_identity(region, zone, create, origin)

    def _check_identity(self, region: str, zone: str, create: bool, origin: str | None) -> None:
        meta = dict(self._db.execute("SELECT k, v FROM meta").fetchall()) if self._has_meta() else {}
        if not meta:
            if not create:
                raise StoreError(f"{self.path} is not an hspkcs11 store")
            self.origin = origin or region
            self._db.executemany("INSERT INTO meta VALUES (?, ?)",
                                 [("format", str(FORMAT)), ("region", region), ("zone", zone),
                                  ("origin", self.origin)])
            return
        # A restored store keeps the region its blobs were sealed in; older stores have no row.
        self.origin = meta.get("origin") or region
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

    def position(self) -> int:
        """The region sequence number of the last change this unit holds."""
        with self._lock:
            return self._db.execute("SELECT max(seq) FROM changes").fetchone()[0] or 0

    def changes_since(self, seq: int) -> list[tuple[int, str, int | None, str]]:
        with self._lock:
            return self._db.execute(
                "SELECT seq, serial, handle, op FROM changes WHERE seq > ? ORDER BY seq", (seq,)).fetchall()

    @staticmethod
    def _log(db: sqlite3.Connection, seq: int, serial: str, handle: int | None, op: str) -> None:
        db.execute("INSERT INTO changes (seq, serial, handle, op) VALUES (?, ?, ?, ?)", (seq, serial, handle, op))

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

    @staticmethod
    def _put_token(db: sqlite3.Connection, t: TokenRow) -> None:
        """Insert a token or update its row in place. Never INSERT OR REPLACE: replacing
        deletes the old row first, and `ON DELETE CASCADE` took every object with it
        (issue 13: C_SetPIN, C_InitPIN and catch-up emptied the token). A new token whose
        slot is taken fails with IntegrityError instead of removing the other token."""
        db.execute(f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES (?,?,?,?,?,?,?) ON CONFLICT(serial) DO UPDATE "
                   "SET slot_id = excluded.slot_id, label = excluded.label, so_pin = excluded.so_pin, "
                   "user_pin = excluded.user_pin, so_failures = excluded.so_failures, "
                   "user_failures = excluded.user_failures",
                   (t.serial, t.slot_id, t.label, t.so_pin, t.user_pin, t.so_failures, t.user_failures))

    def update_token(self, serial: str, seq: int, **columns: object) -> None:
        """Change some columns of a token row in place (a PIN, a label, a counter), so a
        writer never puts back the other columns from a stale copy."""
        bad = set(columns) - _TOKEN_UPDATABLE
        assert not bad, f"not a token column: {bad}"
        with self.tx() as db:
            db.execute(f"UPDATE tokens SET {', '.join(f'{c} = ?' for c in columns)} WHERE serial = ?",
                       (*columns.values(), serial))
            self._log(db, seq, serial, None, "token")

    def put_token(self, t: TokenRow, seq: int) -> None:
        with self.tx() as db:
            self._put_token(db, t)
            self._log(db, seq, t.serial, None, "token")

    def wipe_token(self, serial: str, seq: int) -> None:
        """Destroy every object of a token (re-initialisation by the SO)."""
        with self.tx() as db:
            handles = [h for (h,) in db.execute("SELECT handle FROM objects WHERE serial = ?", (serial,))]
            db.execute("DELETE FROM objects WHERE serial = ?", (serial,))
            for h in handles:
                self._log(db, seq, serial, h, "delete")
            # Every write records at least one change at its sequence number, or this unit's
            # position would stay behind the region's head (an empty token has no handles).
            self._log(db, seq, serial, None, "token")

    def delete_token(self, serial: str, seq: int) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM objects WHERE serial = ?", (serial,))
            db.execute("DELETE FROM tokens WHERE serial = ?", (serial,))
            self._log(db, seq, serial, None, "token")

    # ---- objects -----------------------------------------------------------------------

    @staticmethod
    def _put_object(db: sqlite3.Connection, r: ObjectRow) -> None:
        db.execute(f"INSERT OR REPLACE INTO objects ({_OBJECT_COLUMNS}, digest) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                   (r.handle, r.serial, r.uid, r.klass, r.key_type, int(r.private), r.label, r.ckaid, r.attrs,
                    r.sealed, r.mkvp, row_digest(r)))

    def put_object(self, row: ObjectRow, seq: int) -> None:
        """Insert or replace an object; `row.handle` is chosen by the caller."""
        with self.tx() as db:
            self._put_object(db, row)
            self._log(db, seq, row.serial, row.handle, "put")

    def delete_object(self, serial: str, handle: int, seq: int) -> bool:
        with self.tx() as db:
            gone = db.execute("DELETE FROM objects WHERE handle = ? AND serial = ?",
                              (handle, serial)).rowcount == 1
            self._log(db, seq, serial, handle, "delete")   # even a no-op keeps the position
        return gone

    def _row(self, values: tuple) -> ObjectRow:
        *fields, digest = values
        row = ObjectRow(*fields)
        if self.corrupt:     # fault injection: a unit that answers with damaged data
            row = ObjectRow(*fields[:8], bytes([row.attrs[0] ^ 0xFF]) + row.attrs[1:], *fields[9:])
        if row_digest(row) != digest:
            raise CorruptRow(f"{self.path}: object {row.handle} does not match its digest")
        return row

    def get_object(self, handle: int) -> ObjectRow | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_OBJECT_COLUMNS}, digest FROM objects WHERE handle = ?",
                                   (handle,)).fetchone()
        return self._row(row) if row else None

    def sealed_of(self, uid: bytes) -> bytes | None:
        """The sealed blob of object `uid` in this unit (its row's digest checked)."""
        with self._lock:
            row = self._db.execute(f"SELECT {_OBJECT_COLUMNS}, digest FROM objects WHERE uid = ?",
                                   (uid,)).fetchone()
        return self._row(row).sealed if row else None

    def find(self, serial: str, include_private: bool, klass: int | None = None,
             label: bytes | None = None, ckaid: bytes | None = None,
             key_type: int | None = None) -> list[ObjectRow]:
        """Rows matching the indexed columns given; the caller filters the rest."""
        sql = f"SELECT {_OBJECT_COLUMNS}, digest FROM objects WHERE serial = ?"
        args: list[object] = [serial]
        for column, value in (("class", klass), ("label", label), ("ckaid", ckaid), ("key_type", key_type)):
            if isinstance(value, int) and not _SQLITE_MIN <= value <= _SQLITE_MAX:
                return []       # a CK_ULONG no row can hold
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if not include_private:
            sql += " AND private = 0"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY handle", args).fetchall()
        return [self._row(r) for r in rows]

    def count_objects(self, serial: str | None = None) -> int:
        with self._lock:
            if serial is None:
                return self._db.execute("SELECT count(*) FROM objects").fetchone()[0]
            return self._db.execute("SELECT count(*) FROM objects WHERE serial = ?", (serial,)).fetchone()[0]

    def rows_sealed_under(self, mkvp: str, limit: int) -> list[ObjectRow]:
        """Up to `limit` objects whose blob is wrapped under `mkvp` (a rotation's next batch)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_OBJECT_COLUMNS}, digest FROM objects WHERE mkvp = ? "
                                    "ORDER BY handle LIMIT ?", (mkvp, limit)).fetchall()
        return [self._row(r) for r in rows]

    def reseal(self, rows: list[ObjectRow], seq: int, digests: list[bytes]) -> None:
        """Store re-wrapped blobs in one transaction (a rotation batch). Only `sealed`,
        `mkvp` and `digest` change, so an UPDATE touches one index instead of five."""
        with self.tx() as db:
            db.executemany("UPDATE objects SET sealed = ?, mkvp = ?, digest = ? WHERE handle = ?",
                           [(r.sealed, r.mkvp, d, r.handle) for r, d in zip(rows, digests)])
            db.executemany("INSERT INTO changes (seq, serial, handle, op) VALUES (?, ?, ?, 'put')",
                           [(seq, r.serial, r.handle) for r in rows])

    def sealed_under(self, mkvp: str) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM objects WHERE mkvp = ?", (mkvp,)).fetchone()[0]

    # ---- catch-up between units -----------------------------------------------------------

    def export_since(self, seq: int) -> Bundle:
        bundle = Bundle(changes=self.changes_since(seq))
        for _seq, serial, handle, _op in bundle.changes:
            if handle is None:
                bundle.tokens[serial] = self.token(serial)
            elif handle not in bundle.objects:
                bundle.objects[handle] = self.get_object(handle)
        return bundle

    def has_change(self, seq: int) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM changes WHERE seq = ? LIMIT 1", (seq,)).fetchone() is not None

    def position_before(self, seq: int) -> int:
        with self._lock:
            return self._db.execute("SELECT max(seq) FROM changes WHERE seq < ?", (seq,)).fetchone()[0] or 0

    def export_for(self, peer: "Store", seq: int) -> Bundle:
        """What `peer`, at position `seq`, lacks. A peer whose newest changes this store
        does not hold diverged there: a writer was killed after committing them to that
        unit alone, and the region went on without it (`RegionService.next_seq` never
        hands such a number out again). Those changes were never acknowledged: the bundle
        puts back this store's state of what they touched and drops them."""
        orphans = []
        while seq and not self.has_change(seq):
            orphans.append(seq)
            seq = peer.position_before(seq)
        bundle = self.export_since(seq)
        for _seq, serial, handle, _op in (c for s in orphans for c in peer.changes_at(s)):
            if handle is None:
                bundle.tokens.setdefault(serial, self.token(serial))
            elif handle not in bundle.objects:
                bundle.objects[handle] = self.get_object(handle)
        bundle.drop = orphans
        return bundle

    def changes_at(self, seq: int) -> list[tuple[int, str, int | None, str]]:
        with self._lock:
            return self._db.execute("SELECT seq, serial, handle, op FROM changes WHERE seq = ?", (seq,)).fetchall()

    def import_bundle(self, bundle: Bundle) -> None:
        """Apply a peer's changes in one transaction: all of them, or none."""
        with self.tx() as db:
            db.executemany("DELETE FROM changes WHERE seq = ?", [(s,) for s in bundle.drop])
            for serial, t in bundle.tokens.items():
                if t is None:
                    db.execute("DELETE FROM objects WHERE serial = ?", (serial,))
                    db.execute("DELETE FROM tokens WHERE serial = ?", (serial,))
                else:
                    self._put_token(db, t)
            for handle, r in bundle.objects.items():
                if r is None:
                    db.execute("DELETE FROM objects WHERE handle = ?", (handle,))
                elif self.token_exists(db, r.serial):
                    self._put_object(db, r)
            db.executemany("INSERT INTO changes (seq, serial, handle, op) VALUES (?, ?, ?, ?)", bundle.changes)

    @staticmethod
    def token_exists(db: sqlite3.Connection, serial: str) -> bool:
        return db.execute("SELECT 1 FROM tokens WHERE serial = ?", (serial,)).fetchone() is not None

    def content_digest(self) -> str:
        """One digest of everything the unit holds, to compare units (tests, status)."""
        h = hashlib.sha256()
        with self._lock:
            for row in self._db.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY serial"):
                h.update(repr(row).encode())
            for (digest,) in self._db.execute("SELECT digest FROM objects ORDER BY handle"):
                h.update(digest)
        return h.hexdigest()[:16]
