"""Cross-region backup and restore (DESIGN.md "Cross-region backup").

A backup is one directory `<backup root>/<source region>-<UTC timestamp>/` holding

- `unit.db`: a copy of one healthy, caught-up unit's store, made with SQLite's online
  backup API from a read transaction opened under the region's write lock, so it is
  exactly the unit at one region position while writers go on (never a file copy).
  It holds sealed blobs, public attributes, token rows and PIN hashes: no key byte.
- `manifest.json`: id, source region and zones, time, store format, position,
  token/object counts, the MKVP the blobs are sealed under, SHA-256 of `unit.db`.
- `manifest.mac`: HMAC-SHA256 over the exact manifest bytes under a key derived from
  the master key (HKDF-SHA256, info "hspkcs11 backup mac"). The manifest names the
  database's digest, so the MAC covers the whole backup.

The backup root is `backup.dir`, else `DATA/backups/<backup.region>/`.

Restore makes a new instance of a region from a backup: one unit per zone, each a copy
of the backup's store with `meta.region` (and `zone`) rewritten, `meta.origin` kept
(the region whose tag its blobs carry, unit.py), and no master-key registers. The
database's SHA-256 is checked before anything is written; the MAC can only be checked
with the master key, which the restored instance does not have: it is checked when the
operator loads the key parts (`check_restored_key`, called by `masterkey load`), and a
key with another MKVP is refused there.

No CLI code here: callers pass progress callbacks and turn `BackupError` into messages.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..config import Config
from ..errors import P11Error
from . import audit
from .files import bump_epoch, private_dir, private_sqlite, set_head, write_private
from .masterkey import MasterKeyError, mkvp as mkvp_of
from .store import FORMAT

DB_NAME = "unit.db"
MANIFEST = "manifest.json"
MAC_FILE = "manifest.mac"
RESTORED = "restored-from.json"
MANIFEST_FORMAT = "hspkcs11-backup-1"
MAC_INFO = b"hspkcs11 backup mac"
STEP_PAGES = 16               # pages per online-backup step (progress, and writers interleave)
STALE_PARTIAL = timedelta(days=1)

# (pages copied, pages in all)
Progress = Callable[[int, int], None]
# (zone, pages copied, pages in all)
ZoneProgress = Callable[[str, int, int], None]


class BackupError(Exception):
    """A backup or restore that cannot be done, phrased as what is wrong and what to do."""


# ---- where backups live ---------------------------------------------------------------

def backup_root(config: Config) -> Path:
    return config.backup_dir or config.data_dir / "backups" / config.backup_region


@dataclass(frozen=True)
class Backup:
    """One backup directory and its manifest (read, not yet checked)."""
    id: str
    path: Path
    manifest: dict[str, Any]
    manifest_bytes: bytes
    mac: bytes

    @property
    def db(self) -> Path:
        return self.path / DB_NAME

    @property
    def mkvp(self) -> str:
        return str(self.manifest["mkvp"])


def _read_backup(path: Path) -> Backup:
    """A backup's manifest and MAC, or a one-line reason it is not a usable backup."""
    name = path.name
    if not path.is_dir():
        raise BackupError(f"no backup {name!r} in {path.parent}: `hspkcs11-util backup list` shows them")
    try:
        raw = (path / MANIFEST).read_bytes()
    except OSError as exc:
        raise BackupError(f"backup {name} has no readable {MANIFEST} ({exc.strerror}): it is incomplete; "
                          "use another backup") from None
    try:
        manifest = json.loads(raw)
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError("format")
        for key in ("id", "source_region", "zones", "mkvp", "db_sha256", "db_size", "position", "store_format"):
            manifest[key]                               # noqa: B018 (presence check)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BackupError(f"backup {name}: {MANIFEST} is damaged (tampered or truncated); use another backup") \
            from None
    try:
        text = (path / MAC_FILE).read_text().strip()
        algo, _, hexmac = text.partition(":")
        if algo != "hmac-sha256":
            raise ValueError("algorithm")
        mac = bytes.fromhex(hexmac)
        if len(mac) != 32:
            raise ValueError("length")
    except OSError:
        raise BackupError(f"backup {name} has no {MAC_FILE}: it cannot be authenticated; use another backup") \
            from None
    except ValueError:
        raise BackupError(f"backup {name}: {MAC_FILE} is damaged (tampered or truncated); use another backup") \
            from None
    return Backup(name, path, manifest, raw, mac)


def find(config: Config, ref: str) -> Backup:
    """A backup by ID (in the configured backup root) or by the path of its directory."""
    candidate = Path(ref).expanduser()
    if os.sep in ref and candidate.is_dir():
        return _read_backup(candidate)
    return _read_backup(backup_root(config) / ref)


def list_backups(config: Config, region: str | None = None) -> list[Backup | BackupError]:
    """Every backup in the backup root (of `region` only, if given), oldest first; an
    unreadable one appears as its error."""
    root = backup_root(config)
    if not root.is_dir():
        return []
    found: list[Backup | BackupError] = []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not path.is_dir():
            continue
        try:
            b = _read_backup(path)
        except BackupError as exc:
            if region is None or path.name.startswith(f"{region}-"):
                found.append(exc)
            continue
        if region is None or b.manifest["source_region"] == region:
            found.append(b)
    return sorted(found, key=lambda b: (b.manifest["created"], b.id) if isinstance(b, Backup) else ("", ""))


# ---- the MAC --------------------------------------------------------------------------

def mac_key(master_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=MAC_INFO).derive(master_key)


def manifest_mac(master_key: bytes, manifest_bytes: bytes) -> bytes:
    return hmac.new(mac_key(master_key), manifest_bytes, hashlib.sha256).digest()


def check_db(b: Backup) -> bytes:
    """The backup's database bytes, if they are exactly what its manifest names."""
    try:
        data = b.db.read_bytes()
    except OSError as exc:
        raise BackupError(f"backup {b.id}: cannot read {DB_NAME} ({exc.strerror}); use another backup") from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != b.manifest["db_size"] or digest != b.manifest["db_sha256"]:
        what = "truncated" if len(data) < b.manifest["db_size"] else "tampered"
        raise BackupError(f"backup {b.id} is damaged ({what}): {DB_NAME} has {len(data)} bytes with SHA-256 "
                          f"{digest[:16]}…, its manifest says {b.manifest['db_size']} bytes, "
                          f"{str(b.manifest['db_sha256'])[:16]}…; use another backup")
    return data


def check_mac(b: Backup, master_key: bytes) -> None:
    if mkvp_of(master_key) != b.mkvp:
        raise BackupError(f"backup {b.id} is protected under master key {b.mkvp}, not {mkvp_of(master_key)}")
    if not hmac.compare_digest(manifest_mac(master_key, b.manifest_bytes), b.mac):
        raise BackupError(f"backup {b.id} fails its MAC under master key {b.mkvp}: its manifest was altered "
                          "after the backup was made (tampered); use another backup")


@dataclass(frozen=True)
class Verified:
    backup: Backup
    mac_checked_by: str        # the unit whose current master key checked the MAC


def verify(config: Config, ref: str, units: list[Any]) -> Verified:
    """Check a backup's database digest, then its MAC under the master key of one of
    `units` (CryptoUnit) whose current MKVP is the backup's."""
    b = find(config, ref)
    data = check_db(b)
    _check_store(b, data)
    holders = [u for u in units if u.registers.read().current_mkvp == b.mkvp]
    if not holders:
        have = sorted({u.registers.read().current_mkvp or "(none)" for u in units}) or ["(no units)"]
        raise BackupError(f"backup {b.id} is protected under master key {b.mkvp}, but region {config.region}'s "
                          f"current master key is {', '.join(have)}: verify it where master key {b.mkvp} is "
                          "loaded (`hspkcs11-util masterkey load` its parts)")
    unit = holders[0]
    check_mac(b, unit.registers.read().current_key)
    return Verified(b, unit.name)


def _check_store(b: Backup, data: bytes) -> dict[str, str]:
    """The backup's database opened in memory: an intact store of the manifest's region."""
    with _memory_db(data) as db:
        try:
            ok = db.execute("PRAGMA integrity_check").fetchone()[0]
            meta = dict(db.execute("SELECT k, v FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"backup {b.id}: {DB_NAME} is not a readable store ({exc}); use another backup") \
                from None
    if ok != "ok":
        raise BackupError(f"backup {b.id}: {DB_NAME} fails SQLite's integrity check; use another backup")
    if meta.get("region") != b.manifest["source_region"] or meta.get("format") != str(FORMAT):
        raise BackupError(f"backup {b.id}: its store (region {meta.get('region')}, format {meta.get('format')}) "
                          f"does not match its manifest (region {b.manifest['source_region']}, format {FORMAT})")
    return meta


@contextmanager
def _memory_db(data: bytes) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        try:
            db.deserialize(data)
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{DB_NAME} is not an SQLite database ({exc}); use another backup") from None
        yield db
    finally:
        db.close()


# ---- making a backup -----------------------------------------------------------------

def _new_id(root: Path, region: str, now: datetime) -> tuple[str, datetime]:
    while True:
        ident = f"{region}-{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z"
        if not (root / ident).exists() and not (root / f".{ident}.partial").exists():
            return ident, now
        now += timedelta(milliseconds=1)


@dataclass
class Made:
    backup: Backup
    zone: str
    removed: list[str] = field(default_factory=list)


def make_backup(svc: Any, progress: Progress | None = None, step_pages: int = STEP_PAGES) -> Made:
    """Back up the region served by `svc` (a RegionService) into the backup root.

    Under the region's write lock: bring the healthy units up to date, open a read
    transaction on one of them and read its position. Then, lock released, copy that
    snapshot page by page with SQLite's online backup API while writers go on.
    Audit: backup-start, then backup-end with the outcome."""
    config: Config = svc.config
    root = backup_root(config)
    ident, created = _new_id(root, config.region, datetime.now(timezone.utc))
    where = dict(backup=ident, target=str(root))
    try:
        unit, src, position = _snapshot(svc)
    except BaseException as exc:
        svc.record("backup-start", zone=None, outcome="started", **where)
        svc.record("backup-end", zone=None, outcome="failed", error=_why(exc), **where)
        raise
    svc.record("backup-start", zone=unit.zone, position=position, outcome="started", **where)
    try:
        made = _make(svc, unit, src, position, root, ident, created, progress, step_pages)
        made.removed = prune(config, config.region, config.backup_keep)
    except BaseException as exc:
        svc.record("backup-end", zone=unit.zone, outcome="failed", error=_why(exc), **where)
        raise
    m = made.backup.manifest
    svc.record("backup-end", zone=unit.zone, outcome="ok", position=m["position"], tokens=m["tokens"],
               objects=m["objects"], mkvp=m["mkvp"], removed=made.removed, **where)
    return made


def _why(exc: BaseException) -> str:
    if isinstance(exc, P11Error):
        return exc.why or exc.rv.name
    return str(exc) or type(exc).__name__


def _snapshot(svc: Any) -> tuple[Any, sqlite3.Connection, int]:
    """(unit, a connection holding a read transaction on it, its position), the unit
    healthy and holding every change of the region."""
    from .replica import UNIT_FAILURES
    with svc.write_lock():
        units, head = svc.catch_up()
        errors = []
        for unit in units:
            src = None
            try:
                svc.inject(unit, "read")
                src = sqlite3.connect(unit.store.path, timeout=30.0, isolation_level=None, check_same_thread=False)
                src.execute("BEGIN")                        # a read transaction: one snapshot for the copy
                position = src.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]
            except UNIT_FAILURES as exc:
                errors.append(f"{unit.zone}: {exc}")
                if src is not None:
                    src.close()
                continue
            if position != head:               # cannot happen under the lock; never back up a lagging unit
                src.close()
                errors.append(f"{unit.zone}: at position {position}, the region at {head}")
                continue
            return unit, src, position
    raise BackupError(f"region {svc.name}: no healthy, caught-up unit to back up ({'; '.join(errors) or 'none'})")


def _make(svc: Any, unit: Any, src: sqlite3.Connection, position: int, root: Path, ident: str,
          created: datetime, progress: Progress | None, step_pages: int) -> Made:
    partial = root / f".{ident}.partial"
    try:
        def step(done: int, total: int) -> None:
            svc.inject(unit, "read")        # fault injection: a slow or failing unit slows or fails the copy
            if progress:
                progress(done, total)
        return _copy(svc.config, unit, src, position, root, partial, ident, created, step, step_pages)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _copy(config: Config, unit: Any, src: sqlite3.Connection, position: int, root: Path, partial: Path,
          ident: str, created: datetime, progress: Progress, step_pages: int) -> Made:
    try:
        try:
            current_mkvp, master_key = unit.current()
        except P11Error:
            raise BackupError(f"region {config.region} has no current master key: a backup is protected by a MAC "
                              "under it; load it first (`hspkcs11-util masterkey load`, `commit`, `activate`)") \
                from None
        meta = dict(src.execute("SELECT k, v FROM meta").fetchall())
        sealed = dict(src.execute("SELECT mkvp, count(*) FROM objects WHERE sealed IS NOT NULL "
                                  "GROUP BY mkvp").fetchall())
        others = {m: n for m, n in sealed.items() if m != current_mkvp}
        if others:
            listed = ", ".join(f"{n} under {m}" for m, n in sorted(others.items()))
            raise BackupError(f"region {config.region}: keys are sealed under more than the current master key "
                              f"{current_mkvp} ({listed}): a rotation is under way; finish it "
                              "(`hspkcs11-util masterkey rotate`), then back up")
        tokens = src.execute("SELECT count(*) FROM tokens").fetchone()[0]
        objects = src.execute("SELECT count(*) FROM objects").fetchone()[0]
        private_dir(root)
        partial.mkdir(mode=0o700)
        db_path = partial / DB_NAME
        dst = private_sqlite(db_path, isolation_level=None)
        try:
            def step(_status: int, remaining: int, total: int) -> None:
                progress(total - remaining, total)
            src.backup(dst, pages=max(1, step_pages), progress=step)
            dst.execute("PRAGMA journal_mode=DELETE")      # one self-contained file
        finally:
            dst.close()
    finally:
        src.close()                                          # ends the read transaction
    with open(db_path, "rb+") as f:
        os.fsync(f.fileno())
    data = db_path.read_bytes()
    manifest = {
        "format": MANIFEST_FORMAT,
        "id": ident,
        "source_region": config.region,
        "origin": meta.get("origin") or config.region,
        "zones": list(config.zones),
        "unit": unit.zone,
        "backup_region": config.backup_region,
        "created": created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z",
        "store_format": int(meta.get("format", FORMAT)),
        "position": position,
        "tokens": tokens,
        "objects": objects,
        "sealed": sum(sealed.values()),
        "mkvp": current_mkvp,
        "db_sha256": hashlib.sha256(data).hexdigest(),
        "db_size": len(data),
    }
    raw = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    write_private(partial / MANIFEST, raw)
    write_private(partial / MAC_FILE, f"hmac-sha256:{manifest_mac(master_key, raw).hex()}\n".encode())
    final = root / ident
    os.rename(partial, final)
    _fsync_dir(root)
    return Made(Backup(ident, final, manifest, raw, manifest_mac(master_key, raw)), unit.zone)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(config: Config, region: str, keep: int) -> list[str]:
    """Keep the newest `keep` backups of `region`; remove older ones, and partial
    backups left by a run that died more than a day ago."""
    root = backup_root(config)
    mine = [b for b in list_backups(config, region) if isinstance(b, Backup)]
    removed = []
    for b in mine[:max(0, len(mine) - keep)]:
        shutil.rmtree(b.path)
        removed.append(b.id)
    cutoff = time.time() - STALE_PARTIAL.total_seconds()
    for partial in root.glob(f".{region}-*.partial"):
        if partial.stat().st_mtime < cutoff:
            shutil.rmtree(partial, ignore_errors=True)
    return removed


# ---- restore --------------------------------------------------------------------------

@dataclass
class Restored:
    backup: Backup
    config: Config               # the new instance's configuration
    conf_path: Path
    replaced: list[str]          # zones whose live data was replaced (--force)


def target_config(config: Config, b: Backup, region: str, data_dir: Path | None) -> Config:
    """The configuration of the instance a restore creates."""
    if region == config.region:
        zones = tuple(config.zones)
    else:
        zones = tuple(f"{region}-{i}" for i in range(1, len(b.manifest["zones"]) + 1))
    data = (data_dir or config.data_dir).expanduser().absolute()
    # Its own backups go to the configured backup region, or back to the source region
    # when that is where it now lives.
    backup_region = config.backup_region if config.backup_region != region else b.manifest["source_region"]
    return replace(config, data_dir=data, region=region, zones=zones, backup_region=backup_region,
                   backup_dir=None, log_file=(data / "hspkcs11.log") if config.log_file else None, source=None)


def _live(unit_db: Path) -> tuple[int, int] | None:
    """(tokens, objects) of an existing unit database, None if there is none."""
    if not unit_db.exists():
        return None
    try:
        db = sqlite3.connect(unit_db.absolute().as_uri() + "?mode=ro", uri=True, timeout=30.0)
        try:
            return (db.execute("SELECT count(*) FROM tokens").fetchone()[0],
                    db.execute("SELECT count(*) FROM objects").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return (-1, -1)                      # unreadable: treat as data we must not silently replace


def conf_text(cfg: Config) -> str:
    lines = [f"# written by `hspkcs11-util restore` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"data.dir = {cfg.data_dir}", f"region = {cfg.region}", f"zones = {', '.join(cfg.zones)}",
             f"backup.region = {cfg.backup_region}", f"backup.keep = {cfg.backup_keep}",
             f"log.level = {cfg.log_level}"]
    if cfg.log_file:
        lines.append(f"log.file = {cfg.log_file}")
    lines.append(f"pin.max_failures = {cfg.pin_max_failures}")
    return "\n".join(lines) + "\n"


def restore(config: Config, ref: str, region: str, data_dir: Path | None = None, force: bool = False,
            progress: ZoneProgress | None = None) -> Restored:
    """Create an instance of `region` from a backup: the database digest is checked
    first (nothing is written for a damaged backup); a region whose units hold data is
    replaced only with `force`. Audit: restore-start and restore-end in the new region."""
    b = find(config, ref)
    data = check_db(b)
    meta = _check_store(b, data)
    if int(b.manifest["store_format"]) != FORMAT:
        raise BackupError(f"backup {b.id} has store format {b.manifest['store_format']}; this hspkcs11 "
                          f"reads format {FORMAT}")
    new = target_config(config, b, region, data_dir)
    origin = meta.get("origin") or meta["region"]
    live = {z: n for z in new.zones if (n := _live(new.unit_dir(z) / DB_NAME)) is not None and n != (0, 0)}
    detail = dict(backup=b.id, source_region=b.manifest["source_region"], zones=list(new.zones),
                  position=b.manifest["position"], force=force)
    if live and not force:
        what = "; ".join(f"zone {z}: " + ("unreadable" if n[0] < 0 else f"{n[0]} token(s), {n[1]} object(s)")
                         for z, n in live.items())
        audit.record(new.region_dir, "restore-start", region=region, outcome="started", **detail)
        audit.record(new.region_dir, "restore-end", region=region, outcome="refused", reason="live data",
                     **detail)
        raise BackupError(f"region {region} under {new.region_dir} holds live data ({what}); restoring would "
                          "replace it: stop its applications and give --force to restore over live data")
    private_dir(new.region_dir)
    audit.record(new.region_dir, "restore-start", region=region, outcome="started", **detail)
    try:
        with _region_lock(new.region_dir):
            _write_units(new, data, origin, progress)
            set_head(new.region_dir, int(b.manifest["position"]))
            bump_epoch(new.region_dir)
            record = {"backup": b.id, "backup_path": str(b.path), "source_region": b.manifest["source_region"],
                      "region": region, "zones": list(new.zones), "origin": origin,
                      "restored": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "expected_mkvp": b.mkvp, "manifest": b.manifest_bytes.decode(), "mac": b.mac.hex(),
                      "mac_verified": None}
            write_private(new.region_dir / RESTORED, (json.dumps(record, indent=1) + "\n").encode())
            conf_path = _write_conf(new)
    except BaseException as exc:
        audit.record(new.region_dir, "restore-end", region=region, outcome="failed", error=_why(exc), **detail)
        raise
    audit.record(new.region_dir, "restore-end", region=region, outcome="ok", tokens=b.manifest["tokens"],
                 objects=b.manifest["objects"], replaced=sorted(live), conf=str(conf_path), **detail)
    return Restored(b, replace(new, source=conf_path), conf_path, sorted(live))


@contextmanager
def _region_lock(region_dir: Path) -> Iterator[None]:
    """The region's write lock (replica.RegionService.write_lock): no writer of a live
    region runs while its units are replaced."""
    import fcntl
    fd = os.open(region_dir, os.O_RDONLY | os.O_DIRECTORY)     # the lock RegionService takes
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_units(new: Config, data: bytes, origin: str, progress: ZoneProgress | None) -> None:
    with _memory_db(data) as source:
        for zone in new.zones:
            unit_dir = new.unit_dir(zone)
            private_dir(unit_dir)
            tmp = unit_dir / f".{DB_NAME}.restore"
            for leftover in (tmp, Path(f"{tmp}-journal")):
                leftover.unlink(missing_ok=True)
            dst = private_sqlite(tmp, isolation_level=None)
            try:
                def step(_status: int, remaining: int, total: int, zone: str = zone) -> None:
                    if progress:
                        progress(zone, total - remaining, total)
                source.backup(dst, pages=STEP_PAGES, progress=step)
                dst.execute("BEGIN IMMEDIATE")
                dst.executemany("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)",
                                [("region", new.region), ("zone", zone), ("origin", origin)])
                dst.execute("COMMIT")
            finally:
                dst.close()
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            # A stale WAL beside the new database would be replayed into it: remove it first.
            for suffix in ("-wal", "-shm"):
                Path(f"{unit_dir / DB_NAME}{suffix}").unlink(missing_ok=True)
            os.replace(tmp, unit_dir / DB_NAME)
            (unit_dir / "registers.json").unlink(missing_ok=True)      # empty master-key registers
            _fsync_dir(unit_dir)


def _write_conf(new: Config) -> Path:
    """`DATA/hspkcs11.conf`; if that file exists for another instance, `hspkcs11-REGION.conf`."""
    text = conf_text(new)
    path = new.data_dir / "hspkcs11.conf"
    if path.exists() and _conf_body(path.read_text()) != _conf_body(text):
        path = new.data_dir / f"hspkcs11-{new.region}.conf"
    write_private(path, text.encode())
    return path


def _conf_body(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


# ---- the master key of a restored instance --------------------------------------------

def check_restored_key(svc: Any, key: bytes) -> str | None:
    """Before `masterkey load` changes any register of a restored instance that has no
    current master key yet: refuse a key whose MKVP is not the backup's, and check the
    backup's MAC with the right one (a manifest altered to match a tampered database is
    caught here). Returns a line to show, or None when this is no restored instance
    (or it already has its key: later loads are rotations)."""
    path = svc.config.region_dir / RESTORED
    if not path.exists():
        return None
    if any(u.registers.read().current_key is not None for u in svc.units):
        return None
    try:
        doc = json.loads(path.read_text())
        manifest_bytes, mac = doc["manifest"].encode(), bytes.fromhex(doc["mac"])
        expected = json.loads(manifest_bytes)["mkvp"]
    except (OSError, ValueError, KeyError, TypeError):
        raise MasterKeyError(f"{path} is damaged: it names the backup this region was restored from and its MAC; "
                             "restore the region again") from None
    got = mkvp_of(key)
    base = dict(backup=doc.get("backup"), mkvp=got, expected_mkvp=expected)
    if got != expected:
        svc.record("restore-key-check", outcome="refused", reason="wrong master key", **base)
        raise MasterKeyError(f"region {svc.name} was restored from backup {doc.get('backup')}, whose keys are "
                             f"sealed under master key {expected}; these key parts make master key {got}. "
                             f"Load the parts of master key {expected} (nothing was changed)")
    if not hmac.compare_digest(manifest_mac(key, manifest_bytes), mac):
        svc.record("restore-key-check", outcome="refused", reason="backup MAC mismatch", **base)
        raise MasterKeyError(f"backup {doc.get('backup')} fails its MAC under master key {expected}: it was "
                             "altered after it was made (tampered), so this restored region cannot be trusted; "
                             "restore from another backup (nothing was changed)")
    doc["mac_verified"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_private(path, (json.dumps(doc, indent=1) + "\n").encode())
    svc.record("restore-key-check", outcome="ok", **base)
    return f"backup {doc.get('backup')}: MAC verified under master key {expected}"
