"""kill -9 at random points of every kind of writer (issue 8, item 4; hspkcs11 only).

Each test kills one kind of process again and again, then checks what a restart finds:
every store opens and passes SQLite's integrity check, every row its digest; every
object a writer acknowledged (journaled after its call returned, tests/stress.py
`Journal`) is intact in every unit once they caught up; nothing appears that no journal
names except the one call a kill cut off; administrative work resumes or rolls back
(the command run again succeeds, no partial backup is listed, a restore rerun with
--force gives the backup's content).

Kill points (20 here; `CRASH_POINTS` counts them for the report):
- token-object writes: python-pkcs11 writers (C_GenerateKey, C_GenerateKeyPair,
  C_CreateObject, C_DestroyObject, C_SetAttributeValue) killed at random moments, one
  zone slowed so that kills land between two units' commits; and the two exact points
  where a write reached one unit only (rolled forward; or that unit lost, rolled back);
- a catch-up (`zone up` of a zone that missed writes), killed while it writes the unit;
- `backup now`, killed while it copies; `restore`, killed while it writes the units.
Master-key rotation killed at random points: tests/test_rotation.py
(test_rotation_killed_at_random_points_resumes_with_nothing_lost, 5 more points).
"""
from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import pytest

import stress
from hspkcs11.config import load as load_config
from hspkcs11.hsm.files import HEAD, Stamp
from hspkcs11.hsm.region import Region
from regionkit import cli, env
from conftest import util

WRITER_KILLS, CATCH_UP_KILLS, BACKUP_KILLS, RESTORE_KILLS = 6, 4, 4, 4
CRASH_POINTS = WRITER_KILLS + 2 + CATCH_UP_KILLS + BACKUP_KILLS + RESTORE_KILLS


@pytest.fixture
def region(tmp_path: Path) -> Path:
    return stress.make_stress_region(tmp_path)


def writer(conf: Path, journal: Path, seed: int, limit: int = 10**9) -> subprocess.Popen[str]:
    """A python-pkcs11 writer (tests/stress.py worker, write-only mix), started and ready."""
    proc = subprocess.Popen(stress.worker_command(conf, journal, f"w{seed}", 1, profile="writes", wait=False,
                                                  seed=seed, limit=limit),
                            env=env(conf), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr
    return proc


def kill(proc: subprocess.Popen[str]) -> bool:
    """SIGKILL; whether the process was still running (the kill landed)."""
    running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return running


def kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], delay: float, timeout: float = 60) -> bool:
    """Kill `proc` `delay` seconds after `ready()` first holds (polled tightly)."""
    end = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.0002)
    time.sleep(delay)
    return kill(proc)


def positions(conf: Path) -> dict[str, int]:
    return {u.zone: u.store.position() for u in Region(load_config(conf)).units()}


def head(conf: Path) -> int:
    return int.from_bytes((load_config(conf).region_dir / HEAD).read_bytes()[:Stamp.SIZE], "big")


def stores_open_and_check(conf: Path) -> None:
    """Right after a kill, before anything catches up: every store opens, passes SQLite's
    integrity check, and every row matches its digest."""
    for unit in Region(load_config(conf)).units():
        db = sqlite3.connect(f"file:{unit.store.path}?mode=ro", uri=True)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", unit.zone
        db.close()
        for token in unit.store.tokens():
            unit.store.find(token.serial, True)          # raises CorruptRow on a bad digest


def settled_and_checked(conf: Path, journals: list[Path], in_flight: int) -> dict:
    """Catch up, then compare every unit with the journals; at most `in_flight` calls
    were cut off (one per killed writer)."""
    stress.settle(conf)
    report = stress.check(conf, journals, in_flight_ok=True)
    assert report["problems"] == [], report["problems"][:20]
    assert report["in_flight"] <= in_flight, report
    return report


# ---- token-object writes ------------------------------------------------------------------

def test_writers_killed_at_random_moments_lose_no_acknowledged_object(region: Path, tmp_path: Path) -> None:
    # A slow unit (3 ms per write) keeps each write half-replicated for a while.
    cli(region, "zone", "fault", "us-south-2", "--delay-ms", "3", "--delay-ops", "write")
    journal = tmp_path / "writes.jsonl"
    rng = random.Random(4)
    landed: Counter[str] = Counter()
    for k in range(WRITER_KILLS):
        proc = writer(region, journal, seed=k)
        time.sleep(rng.uniform(0.02, 0.4))
        assert kill(proc), "the writer ended before it was killed"
        pos = positions(region)
        landed["between two units" if len(set(pos.values())) > 1 else
               "after the units, before the head" if max(pos.values()) > head(region) else "between calls"] += 1
        stores_open_and_check(region)
        report = settled_and_checked(region, [journal], in_flight=k + 1)
    print(json.dumps({"kills": WRITER_KILLS, "landed": landed, "check": report}))
    assert report["live"] > 0 and report["destroyed"] > 0


def cut_between_units(conf: Path, journal: Path) -> None:
    """A writer killed after its write committed in us-south-1 and before us-south-2:
    us-south-2 answers writes 3 s late, and the kill comes once us-south-1 is ahead."""
    proc = writer(conf, journal, seed=99)
    cli(conf, "zone", "fault", "us-south-2", "--delay-ms", "3000", "--delay-ops", "write")
    assert kill_when(proc, lambda: len(set(positions(conf).values())) > 1, 0.0)
    pos = positions(conf)
    assert pos["us-south-1"] == pos["us-south-2"] + 1 == pos["us-south-3"] + 1 == head(conf) + 1, pos
    cli(conf, "zone", "clear", "us-south-2")


def test_a_write_that_reached_one_unit_is_rolled_forward(region: Path, tmp_path: Path) -> None:
    journal = tmp_path / "w.jsonl"
    cut_between_units(region, journal)
    settled_and_checked(region, [journal], in_flight=1)
    cut = [e for e in stress.replay(stress.read_journal(journal)).values() if e.state == "creating"]
    assert len(cut) <= 1 and len({p for p in positions(region).values()}) == 1
    ids = {u.zone: {r.ckaid for t in u.store.tokens() for r in u.store.find(t.serial, True)}
           for u in Region(load_config(region)).units()}
    for e in cut:                      # the unacknowledged object is now in every unit, or in none
        assert len({e.ckaid in held for held in ids.values()}) == 1


def test_a_write_that_reached_one_unit_then_lost_with_it_is_never_confused_with_a_later_one(
        region: Path, tmp_path: Path) -> None:
    """us-south-1 holds a change no other unit has and goes down; the region writes on.
    When it returns, its change must not pass for the later write that took the next
    number (a sequence number is never handed out twice; Store.export_for drops it)."""
    first, later = tmp_path / "w.jsonl", tmp_path / "later.jsonl"
    cut_between_units(region, first)
    cli(region, "zone", "down", "us-south-1")
    out = subprocess.run(stress.worker_command(region, later, "later", 1, profile="writes", wait=False, limit=8),
                         env=env(region), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    cli(region, "zone", "up", "us-south-1")
    settled_and_checked(region, [first, later], in_flight=1)
    assert len(set(positions(region).values())) == 1


# ---- a catch-up ----------------------------------------------------------------------------

def wal_size(conf: Path, zone: str) -> int:
    wal = load_config(conf).unit_dir(zone) / "unit.db-wal"
    return wal.stat().st_size if wal.exists() else 0


def test_a_catch_up_killed_while_it_writes_resumes_later(region: Path, tmp_path: Path) -> None:
    journal = tmp_path / "w.jsonl"
    rng = random.Random(5)
    landed: Counter[str] = Counter()
    for k in range(CATCH_UP_KILLS):
        cli(region, "zone", "down", "us-south-3")
        # ~4 MiB of certificates: more than SQLite's page cache, so the catch-up's
        # transaction spills to the WAL long before it commits.
        out = subprocess.run(stress.worker_command(region, journal, f"w{k}", 1, profile="bulk", wait=False,
                                                   seed=k, limit=60), env=env(region), capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        before = positions(region)["us-south-3"]
        db = sqlite3.connect(load_config(region).unit_dir("us-south-3") / "unit.db")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")      # so the catch-up's first frame shows
        db.close()
        proc = subprocess.Popen(util() + ["zone", "up", "us-south-3"], env=env(region), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert kill_when(proc, lambda: wal_size(region, "us-south-3") > 0, rng.uniform(0, 0.012)), \
            "the catch-up finished before it was killed"
        after = positions(region)
        assert after["us-south-3"] in (before, after["us-south-1"]), after          # all of it or none
        landed["rolled back" if after["us-south-3"] == before else "committed"] += 1
        stores_open_and_check(region)
    assert landed["rolled back"] >= 1, landed         # kills did land inside the transaction
    report = settled_and_checked(region, [journal], in_flight=0)
    print(json.dumps({"kills": CATCH_UP_KILLS, "landed": landed, "check": report}))


# ---- backup and restore ------------------------------------------------------------------------

def listed(conf: Path) -> list[dict]:
    return json.loads(cli(conf, "backup", "list", "--json").stdout)


def test_backup_killed_while_it_copies_leaves_no_partial_backup(region: Path, tmp_path: Path) -> None:
    journal = tmp_path / "w.jsonl"
    subprocess.run(stress.worker_command(region, journal, "w", 1, profile="writes", wait=False, limit=400),
                   env=env(region), check=True, capture_output=True, timeout=300)
    for zone in load_config(region).zones:          # 20 ms per 16 pages copied: a kill lands in the copy
        cli(region, "zone", "fault", zone, "--delay-ms", "20", "--delay-ops", "read")
    root = load_config(region).data_dir / "backups"
    rng = random.Random(6)
    landed: Counter[str] = Counter()
    for _ in range(BACKUP_KILLS):
        proc = subprocess.Popen(util() + ["backup", "now"], env=env(region), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert kill_when(proc, lambda: any(root.glob("*/.*.partial")), rng.uniform(0, 0.1))
        landed["in the copy" if any(root.glob("*/.*.partial")) else "after the copy"] += 1
        for m in listed(region):                    # whatever is listed is complete and checks
            assert cli(region, "backup", "verify", m["id"], check=False).returncode == 0, m["id"]
        stores_open_and_check(region)
    assert landed["in the copy"] >= 1, landed
    done = len(listed(region))
    out = cli(region, "backup", "now")                 # run again: it succeeds
    assert "backup" in out.stdout and len(listed(region)) == done + 1
    newest = listed(region)[-1]
    assert cli(region, "backup", "verify", newest["id"]).returncode == 0
    report = settled_and_checked(region, [journal], in_flight=0)
    assert newest["objects"] == sum(len(e.handles) for e in stress.replay(stress.read_journal(journal)).values()
                                    if e.state == "live")
    print(json.dumps({"kills": BACKUP_KILLS, "landed": landed, "check": report}))


def test_restore_killed_while_it_writes_the_units_is_rerun_with_force(region: Path, tmp_path: Path) -> None:
    journal = tmp_path / "w.jsonl"
    subprocess.run(stress.worker_command(region, journal, "w", 1, profile="writes", wait=False, limit=400),
                   env=env(region), check=True, capture_output=True, timeout=300)
    cli(region, "backup", "now")
    ident = listed(region)[-1]["id"]
    target = tmp_path / "dr"
    units_dir = target / "regions" / "eu-de"
    rng = random.Random(7)
    cut = 0
    for _ in range(RESTORE_KILLS):
        ends = _restore_ends(units_dir)
        proc = subprocess.Popen(util() + ["restore", "--from", ident, "--region", "eu-de", "--data-dir", str(target),
                                          "--force", "--yes"], env=env(region), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert kill_when(proc, lambda: any(units_dir.glob("*/.unit.db.restore")), rng.uniform(0, 0.02))
        cut += _restore_ends(units_dir) == ends
        for db_path in units_dir.glob("*/unit.db"):     # every unit written so far is a whole store
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert dict(db.execute("SELECT k, v FROM meta").fetchall())["region"] == "eu-de"
            db.close()
    assert cut >= 1, "no kill landed inside a restore"
    again = cli(region, "restore", "--from", ident, "--region", "eu-de", "--data-dir", str(target), "--force",
                "--yes")
    assert "restored backup" in again.stdout
    report = stress.check(target / "hspkcs11.conf", [journal])   # the backup's objects, in every unit
    assert report["problems"] == [] and report["live"] > 0, report["problems"][:20]
    print(json.dumps({"kills": RESTORE_KILLS, "cut_inside": cut, "check": report}))


def _restore_ends(units_dir: Path) -> int:
    log = units_dir / "audit.jsonl"
    return sum(json.loads(line)["event"] == "restore-end" for line in log.read_text().splitlines()) \
        if log.exists() else 0
