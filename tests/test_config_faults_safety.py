"""Issue 13 rows 9 and 10: the shared fault file under concurrent and corrupt writes,
and configuration names and directories that must not escape data.dir."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

import hspkcs11.hsm.faults as faults_mod
from conftest import make_region
from hspkcs11.config import Config, ConfigError
from hspkcs11.config import load as load_config
from hspkcs11.hsm import audit
from hspkcs11.hsm.faults import FaultFile, ZoneFaults
from hspkcs11.hsm.files import bump_epoch
from regionkit import Client, cli, env, start_together

ZONES = "us-south-1, us-south-2, us-south-3"

# ---- row 9 (a): concurrent updates -----------------------------------------------------

WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from hspkcs11.hsm.faults import FaultFile
    region, zone, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()                     # every worker starts at the same moment
    ff = FaultFile(region)
    for i in range(1, n + 1):
        ff.set(zone, delay_ms=i)
""")


def test_concurrent_updates_from_many_processes_are_all_kept(tmp_path: Path) -> None:
    region, n, workers = tmp_path / "region", 150, 8
    region.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(region), f"z{i}", str(n)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(workers)]
    start_together(procs)
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert FaultFile(region).read() == {f"z{i}": ZoneFaults(delay_ms=n) for i in range(workers)}


def test_concurrent_zone_commands_keep_every_change(tmp_path: Path) -> None:
    conf = make_region(tmp_path, zones=ZONES)
    commands = [["zone", "fault", z, "--delay-ms", "100"] for z in ("us-south-1", "us-south-2", "us-south-3")]
    commands += [["zone", "fault", z, "--error-ops", "write"] for z in ("us-south-1", "us-south-2", "us-south-3")]
    commands += [["zone", "fault", "us-south-1", "--corrupt"], ["zone", "down", "us-south-2"]]
    ff = FaultFile(load_config(conf).region_dir)
    for _ in range(3):
        procs = [subprocess.Popen([sys.executable, "-m", "hspkcs11.cli", *c], env=env(conf), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        assert ff.read() == {
            "us-south-1": ZoneFaults(delay_ms=100, error_ops=("write",), corrupt=True),
            "us-south-2": ZoneFaults(down=True, delay_ms=100, error_ops=("write",)),
            "us-south-3": ZoneFaults(delay_ms=100, error_ops=("write",)),
        }
        ff.write({})


def test_a_held_lock_gives_a_clear_error_after_a_bounded_wait(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults_mod, "LOCK_WAIT", 0.5)
    ff = FaultFile(tmp_path)
    fd = os.open(tmp_path / ".faults.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        t = time.monotonic()
        with pytest.raises(faults_mod.FaultFileError, match="locked"):
            ff.set("z", down=True)
        assert time.monotonic() - t < 5
    finally:
        os.close(fd)
    assert ff.set("z", down=True) == ZoneFaults(down=True)      # free again


# ---- row 9 (b): a damaged file ---------------------------------------------------------

DAMAGE = [
    os.urandom(200),
    b"\xff\xfe not utf-8",
    b'{"zones": {"z1": {"down": tru',
    b"[1, 2, 3]",
    b'{"zones": []}',
    b'{"zones": {"z1": "down"}}',
    b'{"zones": {"z1": {"delay_ms": "lots"}}}',
    b'{"zones": {"z1": {"down": "yes"}}}',
    b'{"zones": {"z1": {"error_ops": "write"}}}',
    b'{"zones": {"z1": {"error_ops": ["explode"]}}}',
    b"[" * 100000,
]


@pytest.mark.parametrize("garbage", DAMAGE, ids=range(len(DAMAGE)))
def test_a_damaged_file_never_raises_and_keeps_the_last_good_view(tmp_path: Path, garbage: bytes,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    ff = FaultFile(tmp_path)
    ff.set("z2", down=True)
    good = ff.read()
    (tmp_path / "faults.json").write_bytes(garbage)
    with caplog.at_level("WARNING", logger="hspkcs11"):
        assert ff.read() == good                    # the last good view this object had
        assert ff.read() == good
    warnings = [r for r in caplog.records if r.name == "hspkcs11" and r.levelname == "WARNING"]
    assert len(warnings) == 1                       # once, not once a call
    assert "faults.json" in warnings[0].getMessage() and "reset-faults" in warnings[0].getMessage()
    assert ff.check() is not None
    fresh = FaultFile(tmp_path)
    assert fresh.read() == {} and fresh.check() is not None       # nothing seen before: every zone up
    with pytest.raises(faults_mod.FaultFileError, match="reset-faults"):
        ff.set("z1", down=True)                     # never overwrite what it cannot read
    ff.reset()
    assert ff.read() == {} and ff.check() is None


def test_a_corrupt_fault_file_keeps_the_region_serving_and_reset_fixes_it(tmp_path: Path) -> None:
    conf = make_region(tmp_path, zones=ZONES)
    cli(conf, "init-token", "--free", "--label", "app")
    region_dir = load_config(conf).region_dir
    app = Client(conf, "app")
    try:
        assert app.do("sign") == "True"
        (region_dir / "faults.json").write_bytes(os.urandom(300))
        bump_epoch(region_dir)                      # every process's next health check reads it
        assert app.do("sign") == "True"
        assert app.do("genkey while-damaged") == "ok"
        late = Client(conf, "app")                  # a process that never saw a good file
        try:
            assert late.do("find while-damaged") == "while-damaged"
        finally:
            late.close()

        status = cli(conf, "status", "--json", check=False)
        assert status.returncode == 0, status.stderr
        assert len(json.loads(status.stdout)["units"]) == 3

        for args in (["zone", "down", "us-south-2"], ["zone", "fault", "us-south-1", "--delay-ms", "5"],
                     ["zone", "up", "us-south-2"]):
            out = cli(conf, *args, check=False)
            assert out.returncode == 1, (args, out.stdout, out.stderr)
            assert str(region_dir / "faults.json") in out.stderr and "zone reset-faults" in out.stderr
            assert "Traceback" not in out.stderr and out.stderr.strip().count("\n") == 0

        listed = cli(conf, "zone", "list", check=False)
        assert listed.returncode == 1
        for z in ("us-south-1", "us-south-2", "us-south-3"):
            assert f"{z}:" in listed.stdout
        assert "damaged" in listed.stdout + listed.stderr and "reset-faults" in listed.stderr

        reset = cli(conf, "zone", "reset-faults", check=False)
        assert reset.returncode == 0, reset.stderr
        assert json.loads((region_dir / "faults.json").read_text()) == {"zones": {}}
        assert cli(conf, "zone", "list").stdout.count("healthy") == 3
        events = [e for e in audit.read(region_dir) if e["event"] == "zone-reset-faults"]
        assert len(events) == 1 and events[0]["damaged"]
        assert cli(conf, "zone", "down", "us-south-2").returncode == 0
        assert app.do("sign") == "True"
    finally:
        app.close()
    log = (tmp_path / "hspkcs11.log").read_text()
    assert str(region_dir / "faults.json") in log and "reset-faults" in log


# ---- row 10: names and directories -----------------------------------------------------

def _conf(tmp_path: Path, **over: str) -> Path:
    keys = {"data.dir": str(tmp_path / "data"), "region": "us-south", "zones": "us-south-1, us-south-2"}
    keys.update({k.replace("_", "."): v for k, v in over.items()})
    conf = tmp_path / "hspkcs11.conf"
    conf.write_text("".join(f"{k} = {v}\n" for k, v in keys.items()))
    return conf


BAD = [
    ("region", "../../evil", "lowercase"),
    ("region", "a/b", "lowercase"),
    ("region", "US-South", "lowercase"),
    ("region", "", "lowercase"),
    ("region", "us--south", "lowercase"),
    ("region", "x" * 64, "63"),
    ("zones", "us-south-1, ../../../escape", "lowercase"),
    ("zones", "us-south-1, a/b", "lowercase"),
    ("zones", "us-south-1, Us-South-2", "lowercase"),
    ("backup_region", "../evil", "lowercase"),
    ("data_dir", "relative/data", "absolute"),
    ("data_dir", "", "absolute"),
    ("backup_dir", "backups", "absolute"),
]


@pytest.mark.parametrize("key,value,why", BAD, ids=[f"{k}={v[:12]!r}" for k, v, _ in BAD])
def test_bad_names_and_directories_are_refused_with_the_line(tmp_path: Path, key: str, value: str,
                                                             why: str) -> None:
    conf = _conf(tmp_path, **{key: value})
    line = next(i for i, text in enumerate(conf.read_text().splitlines(), 1)
                if text.startswith(key.replace("_", ".") + " "))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = sorted(tmp_path.rglob("*"))
    out = subprocess.run([sys.executable, "-m", "hspkcs11.cli", "region", "init"], env=env(conf), cwd=cwd,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout
    assert f"hspkcs11.conf:{line}: {key.replace('_', '.')} = {value!r}" in out.stderr
    assert why in out.stderr and "Traceback" not in out.stderr
    assert sorted(tmp_path.rglob("*")) == before                     # nothing created anywhere
    assert not (tmp_path.parent / "evil").exists() and not (tmp_path / "escape").exists()
    with pytest.raises(ConfigError):
        load_config(conf)


def test_good_names_and_home_relative_dirs_are_taken(tmp_path: Path) -> None:
    conf = _conf(tmp_path, region="eu-de", zones="eu-de-1, eu-de-2", backup_region="us-east",
                 backup_dir="~/backups")
    cfg = load_config(conf)
    assert cfg.region == "eu-de" and cfg.zones == ("eu-de-1", "eu-de-2")
    assert cfg.backup_dir == Path("~/backups").expanduser() and cfg.backup_dir.is_absolute()


@pytest.mark.parametrize("change", [dict(region="../x"), dict(backup_region="a/b"),
                                    dict(zones=("us-south-1", "..")), dict(region="")])
def test_configs_built_in_code_are_checked_too(change: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="lowercase"):
        replace(Config(), **change)  # type: ignore[arg-type]


def test_restore_refuses_a_region_name_that_is_a_path(tmp_path: Path) -> None:
    conf = make_region(tmp_path, master_key=None)
    before = sorted(p for p in tmp_path.rglob("*") if p.name != "hspkcs11.log")
    out = cli(conf, "restore", "--from", "us-south-20260101T031700.000Z", "--region", "../../../evil",
              check=False)
    assert out.returncode != 0
    assert "--region" in out.stderr and "lowercase" in out.stderr
    assert sorted(p for p in tmp_path.rglob("*") if p.name != "hspkcs11.log") == before
    assert not (tmp_path.parent / "evil").exists()
