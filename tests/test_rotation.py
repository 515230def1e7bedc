"""Master-key rotation while applications run; crash-safe and resumable (hspkcs11 only)."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MASTER_KEY, make_region, util
from hspkcs11.config import load as load_config
from hspkcs11.hsm import audit
from hspkcs11.hsm import masterkey as mk
from hspkcs11.hsm.region import Region
from regionkit import PASSWORD, cli, env

ZONES = "us-south-1, us-south-2, us-south-3"

MAKE_KEYS = """
import sys, pkcs11, hspkcs11
from pkcs11 import KeyType
lib = pkcs11.lib(str(hspkcs11.module_path()))
with lib.get_token(token_label="app").open(user_pin="1234", rw=True) as s:
    for i in range(int(sys.argv[1])):
        s.generate_key(KeyType.AES, 128, store=True, label=f"k{i}")
"""

USE_EVERY_KEY = """
import pkcs11, hspkcs11
from pkcs11 import Attribute as A, Mechanism, ObjectClass
lib = pkcs11.lib(str(hspkcs11.module_path()))
with lib.get_token(token_label="app").open(user_pin="1234") as s:
    keys = list(s.get_objects({A.CLASS: ObjectClass.SECRET_KEY}))
    ok = sum(len(k.encrypt(b"0" * 16, mechanism=Mechanism.AES_ECB)) == 16 for k in keys)
print(ok, len(keys))
"""

# Works until told to stop, counting failures: sign, encrypt with an old key, store a new key.
WORKER = """
import sys, pkcs11, hspkcs11
from pkcs11 import Attribute as A, KeyType, Mechanism
lib = pkcs11.lib(str(hspkcs11.module_path()))
import select
with lib.get_token(token_label="app").open(user_pin="1234", rw=True) as s:
    old = s.get_key(label="k0")
    calls = failures = 0
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0)[0]:
        for step in (lambda: old.encrypt(b"0" * 16, mechanism=Mechanism.AES_ECB),
                     lambda: s.generate_key(KeyType.AES, 128, store=True, label=f"w{calls}")):
            calls += 1
            try:
                step()
            except pkcs11.exceptions.PKCS11Error as exc:
                failures += 1
                print("failure", type(exc).__name__, file=sys.stderr, flush=True)
print(calls, failures, flush=True)
"""


def new_parts(conf: Path, tmp: Path) -> str:
    for name in ("n1", "n2"):
        cli(conf, "masterkey", "part-new", str(tmp / name))
    cli(conf, "masterkey", "load", str(tmp / "n1"), str(tmp / "n2"))
    cli(conf, "masterkey", "commit")
    return mk.mkvp(mk.combine([mk.part_read(tmp / n, PASSWORD) for n in ("n1", "n2")]))


def python(conf: Path, code: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env(conf), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def every_blob_under(conf: Path, mkvp: str) -> None:
    for unit in Region(load_config(conf)).units():
        regs = unit.registers.read()
        assert regs.current_mkvp == mkvp and regs.new_state is mk.NewState.EMPTY and not regs.rotating
        assert unit.store.sealed_under(mk.mkvp(MASTER_KEY)) == 0
        assert unit.store.sealed_under(mkvp) == unit.store.count_objects()


@pytest.fixture
def region(tmp_path: Path) -> Path:
    conf = make_region(tmp_path, zones=ZONES)
    cli(conf, "init-token", "--free", "--label", "app")
    return conf


def test_rotation_while_another_process_works(region: Path, tmp_path: Path) -> None:
    python(region, MAKE_KEYS, "400")
    worker = subprocess.Popen([sys.executable, "-c", WORKER], env=env(region), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    new = new_parts(region, tmp_path)
    out = cli(region, "masterkey", "rotate", "--batch", "25")
    assert f"current master key is now {new}" in out.stdout
    worker.stdin.write("stop\n")   # type: ignore[union-attr]
    worker.stdin.flush()           # type: ignore[union-attr]
    stdout, stderr = worker.communicate(timeout=120)
    calls, failures = map(int, stdout.split())
    assert calls > 10 and failures == 0, stderr
    every_blob_under(region, new)
    ok, total = map(int, python(region, USE_EVERY_KEY).split())
    assert ok == total == 400 + calls // 2
    log = audit.read(load_config(region).region_dir)
    events = [e["event"] for e in log]
    assert "rotation-start" in events and events[-1] == "rotation-end" and "rotation-progress" in events
    assert all(e["user"] and e["outcome"] == "ok" for e in log if e["event"].startswith("rotation"))
    loads = [e for e in log if e["event"] == "masterkey-load"]
    assert {e["zone"] for e in loads} == {"us-south-1", "us-south-2", "us-south-3"}


def test_rotation_killed_at_random_points_resumes_with_nothing_lost(region: Path, tmp_path: Path) -> None:
    python(region, MAKE_KEYS, "3000")
    new = new_parts(region, tmp_path)
    # A slow zone (an injected 15 ms per write) stretches each batch, so that the kills
    # below land in the middle of the re-wrap rather than after it.
    cli(region, "zone", "fault", "us-south-2", "--delay-ms", "15", "--delay-ops", "write")
    rng = random.Random(2026)
    kills = partial = 0
    for _ in range(5):
        proc = subprocess.Popen(util() + ["masterkey", "rotate", "--batch", "25"], env=env(region),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.4, 1.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        # After each kill: every blob is under a key the units still hold.
        for unit in Region(load_config(region)).units():
            held = unit.loaded_mkvps()
            assert unit.store.sealed_under(mk.mkvp(MASTER_KEY)) + unit.store.sealed_under(new) \
                == unit.store.count_objects()
            assert new in held
        moved = Region(load_config(region)).units()[0].store.sealed_under(new)
        partial += 0 < moved < 3000
    assert kills >= 2 and partial >= 2          # the kills did land in the middle of re-wrapping
    cli(region, "zone", "clear", "us-south-2")
    finish = cli(region, "masterkey", "rotate", check=False)
    assert finish.returncode in (0, 1), finish.stderr
    if finish.returncode == 1:                      # the last kill fell after the final step
        assert "nothing to rotate" in finish.stderr
    every_blob_under(region, new)
    ok, total = map(int, python(region, USE_EVERY_KEY).split())
    assert ok == total == 3000


def test_rotate_needs_a_committed_new_key(region: Path, tmp_path: Path) -> None:
    out = cli(region, "masterkey", "rotate", check=False)
    assert out.returncode == 1 and "masterkey load" in out.stderr
    for name in ("n1", "n2"):
        cli(region, "masterkey", "part-new", str(tmp_path / name))
    cli(region, "masterkey", "load", str(tmp_path / "n1"), str(tmp_path / "n2"))
    out = cli(region, "masterkey", "rotate", check=False)
    assert out.returncode == 1 and "masterkey commit" in out.stderr


def test_clear_new_is_refused_while_rotating(tmp_path: Path) -> None:
    regs = mk.RegisterFile(tmp_path)
    regs.load(MASTER_KEY)
    regs.commit()
    regs.activate()
    regs.load(bytes(32))
    regs.commit()
    regs.start_rotation()
    with pytest.raises(mk.MasterKeyError, match="masterkey rotate"):
        regs.clear_new()
