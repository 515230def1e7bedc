"""Concurrency on one token while zones flap (issue 8, item 3; hspkcs11 only: zones are
the cloud-HSM model).

`tests/stress.py` runs 4 processes x 4 threads of mixed work for HSPKCS11_STRESS_SECONDS
(20 s by default, to fit CI); for a longer run by hand:

    HSPKCS11_STRESS_SECONDS=600 .venv/bin/python -m pytest tests/test_stress.py -q -s -k flap
    .venv/bin/python tests/stress.py --seconds 600          # the same, the report on stdout

The checker's own tests below damage one unit in each way it must catch, so a checker
that sees nothing cannot pass them.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest

import stress
from hspkcs11.config import load as load_config
from hspkcs11.hsm.region import Region
from hspkcs11.hsm.store import ObjectRow, row_digest
from regionkit import env

SECONDS = float(os.environ.get("HSPKCS11_STRESS_SECONDS", "20"))


def test_mixed_work_on_one_token_while_zones_flap_is_clean(tmp_path: Path) -> None:
    conf = stress.make_stress_region(tmp_path)
    report = stress.run(conf, tmp_path, processes=4, threads=4, seconds=SECONDS)
    print(json.dumps(report, indent=1))          # the figures (pytest -s shows them)
    detail = json.dumps({k: report[k] for k in ("unexpected_errors", "wrong", "flapper_failures")}
                        | {"problems": report["check"]["problems"][:20]}, indent=1)
    assert report["clean"], detail
    assert set(report["ops"]) == set(stress.PROFILES["mixed"]), report["ops"]      # every kind of work ran
    assert report["flaps"].get("down", 0) >= 2 and report["flaps"].get("up", 0) >= 1, report["flaps"]
    assert all(report["finds"].get(k, 0) > 0 for k in ("own", "destroyed", "foreign")), report["finds"]
    checked = report["check"]
    assert checked["units"] == 3 and checked["live"] > 0 and checked["destroyed"] > 0
    assert checked["checks"]["live_present"] == 3 * checked["live"]
    assert checked["checks"]["destroyed_absent"] == 3 * checked["destroyed"]


# ---- the checker catches what it is for ---------------------------------------------------

@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A region where one writer made, changed and destroyed objects: (conf, journal)."""
    base = tmp_path_factory.mktemp("checked")
    conf = stress.make_stress_region(base)
    journal = base / "journal.jsonl"
    out = subprocess.run(stress.worker_command(conf, journal, "w", 1, profile="writes", wait=False, limit=60),
                         env=env(conf), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return conf, journal


@pytest.fixture
def region(written: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the written region (each test damages its own)."""
    conf, journal = written
    cfg = load_config(conf)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(cfg.data_dir), str(copy)], check=True)
    new_conf = tmp_path / "hspkcs11.conf"
    new_conf.write_text(conf.read_text().replace(str(cfg.data_dir), str(copy)))
    new_journal = tmp_path / "journal.jsonl"
    new_journal.write_bytes(journal.read_bytes())
    return new_conf, new_journal


def unit_db(conf: Path, zone: str) -> sqlite3.Connection:
    return sqlite3.connect(load_config(conf).unit_dir(zone) / "unit.db", isolation_level=None)


def live_row(conf: Path, journal: Path, zone: str = "us-south-2") -> ObjectRow:
    expected = stress.replay(stress.read_journal(journal))
    unit = next(u for u in Region(load_config(conf)).units() if u.zone == zone)
    serial = unit.store.tokens()[0].serial
    live = [e for e in expected.values() if e.state == "live" and not e.pinned]
    return next(r for r in unit.store.find(serial, True) if r.ckaid == live[0].ckaid)


def put_row(conf: Path, zone: str, row: ObjectRow, digest: bytes | None = None) -> None:
    db = unit_db(conf, zone)
    db.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
               (row.handle, row.serial, row.uid, row.klass, row.key_type, int(row.private), row.label, row.ckaid,
                row.attrs, row.sealed, row.mkvp, digest or row_digest(row)))
    db.close()


def lose_a_row(conf: Path, journal: Path) -> None:
    unit_db(conf, "us-south-2").execute("DELETE FROM objects WHERE handle = ?", (live_row(conf, journal).handle,))


def destroyed_comes_back(conf: Path, journal: Path) -> None:
    """The journal says an object was destroyed (acknowledged) that every unit still holds."""
    ckaid = live_row(conf, journal).ckaid.hex()
    with journal.open("a") as f:
        f.write(json.dumps({"op": "destroy", "at": "begin", "id": ckaid}) + "\n")
        f.write(json.dumps({"op": "destroy", "at": "ok", "id": ckaid}) + "\n")


def phantom(conf: Path, journal: Path) -> None:
    row = live_row(conf, journal, "us-south-3")
    put_row(conf, "us-south-3", replace(row, handle=10**6, uid=os.urandom(16), ckaid=os.urandom(12)))


def stale_label(conf: Path, journal: Path) -> None:
    put_row(conf, "us-south-1", replace(live_row(conf, journal, "us-south-1"), label=b"not acknowledged"))


def corrupt_row(conf: Path, journal: Path) -> None:
    row = live_row(conf, journal, "us-south-1")
    put_row(conf, "us-south-1", replace(row, attrs=bytes([row.attrs[0] ^ 1]) + row.attrs[1:]), row_digest(row))


def unit_behind(conf: Path, journal: Path) -> None:
    db = unit_db(conf, "us-south-3")
    db.execute("DELETE FROM changes WHERE seq = (SELECT max(seq) FROM changes)")
    db.close()


def call_never_returned(conf: Path, journal: Path) -> None:
    with journal.open("a") as f:
        f.write(json.dumps({"op": "create", "at": "begin", "id": os.urandom(12).hex(), "label": "x"}) + "\n")


DAMAGE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "an acknowledged object missing in one unit": (lose_a_row, "us-south-2: object id .* acknowledged"),
    "a destroyed object present": (destroyed_comes_back, "destroyed .* but present"),
    "an object no journal names": (phantom, "us-south-3: object 1000000 .* is in no journal"),
    "a label that was never acknowledged": (stale_label, "us-south-1: .* label"),
    "a row that fails its digest": (corrupt_row, "us-south-1: .*does not match its digest"),
    "a unit behind the region's head": (unit_behind, "us-south-3: at position"),
    "a call that never returned": (call_never_returned, "never returned"),
}


def test_the_checker_passes_the_undamaged_region(region: tuple[Path, Path]) -> None:
    conf, journal = region
    report = stress.check(conf, [journal])
    assert report["problems"] == [] and report["live"] > 0 and report["destroyed"] > 0, report


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda d: d.replace(" ", "-"))
def test_the_checker_catches(region: tuple[Path, Path], damage: str) -> None:
    import re
    do, pattern = DAMAGE[damage]
    conf, journal = region
    do(conf, journal)
    problems: list[Any] = stress.check(conf, [journal])["problems"]
    assert any(re.search(pattern, p) for p in problems), problems
