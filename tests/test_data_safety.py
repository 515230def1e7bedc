"""No acknowledged key is ever lost (issue 13): PIN changes, catch-up and the lockout.

Each check counts what a second, fresh process sees after the call, because a return
code alone passed the bug where C_SetPIN deleted every object of the token.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from conftest import SO_PIN, USER_PIN, Module, make_region
from hspkcs11.config import load as load_config
from hspkcs11.hsm.region import Region
from regionkit import cli, env

CKU_SO, CKU_USER = 0, 1

# A fresh process's view of one token: every object label it holds, and the token flags.
VIEW = textwrap.dedent("""
    import json, sys, pkcs11
    lib = pkcs11.lib(sys.argv[1])
    tok = lib.get_token(token_label=sys.argv[2])
    with tok.open(user_pin=sys.argv[3]) as s:
        labels = sorted(o[pkcs11.Attribute.LABEL] for o in s.get_objects())
    print(json.dumps({"labels": labels, "flags": int(tok.flags)}))
""")


def fresh_view(module: Module, label: str, pin: str) -> dict:
    out = subprocess.run([sys.executable, "-c", VIEW, module.path, label, pin], capture_output=True,
                         text=True, env={**os.environ, **module.env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def fill(token: pkcs11.Token) -> list[str]:
    with token.open(user_pin=USER_PIN, rw=True) as s:
        for i in range(3):
            s.generate_key(KeyType.AES, 256, store=True, label=f"aes{i}")
        s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.LABEL: "data",
                         Attribute.VALUE: b"kept"})
    return ["aes0", "aes1", "aes2", "data"]


def test_set_pin_keeps_every_object(module: Module) -> None:
    token = module.init_token()
    labels = fill(token)
    with token.open(user_pin=USER_PIN, rw=True) as s:
        s.set_pin(USER_PIN, "4321")
    assert fresh_view(module, token.label, "4321")["labels"] == labels


def test_so_set_pin_keeps_every_object(module: Module) -> None:
    token = module.init_token()
    labels = fill(token)
    with token.open(so_pin=SO_PIN, rw=True) as s:
        s.set_pin(SO_PIN, "87654321")
    assert fresh_view(module, token.label, USER_PIN)["labels"] == labels


def test_init_pin_keeps_every_object(module: Module) -> None:
    token = module.init_token()
    labels = fill(token)
    with token.open(so_pin=SO_PIN, rw=True) as s:
        s.init_pin("5678")
    assert fresh_view(module, token.label, "5678")["labels"] == labels


def test_a_unit_that_missed_a_pin_change_keeps_its_objects(tmp_path: Path) -> None:
    """Catch-up copies the changed token row; it never drops the token's objects."""
    conf = make_region(tmp_path, zones="us-south-1, us-south-2, us-south-3")
    cli(conf, "init-token", "--free", "--label", "app")
    script = textwrap.dedent("""
        import sys, pkcs11, hspkcs11
        lib = pkcs11.lib(str(hspkcs11.module_path()))
        tok = lib.get_token(token_label="app")
        if sys.argv[1] == "fill":
            with tok.open(user_pin="1234", rw=True) as s:
                for i in range(4):
                    s.generate_key(pkcs11.KeyType.AES, 128, store=True, label=f"k{i}")
        else:
            try:
                tok.open(user_pin="9999")
            except pkcs11.exceptions.PinIncorrect:
                print("refused")
    """)
    def run(arg: str) -> str:
        out = subprocess.run([sys.executable, "-c", script, arg], env=env(conf), capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()
    run("fill")
    cli(conf, "zone", "down", "us-south-3")
    assert run("wrong") == "refused"            # one counted failure: a token change us-south-3 misses
    cli(conf, "zone", "up", "us-south-3")
    counts = {u.zone: u.store.count_objects() for u in Region(load_config(conf)).units()}
    assert counts == {"us-south-1": 4, "us-south-2": 4, "us-south-3": 4}
    digests = {u.store.content_digest() for u in Region(load_config(conf)).units()}
    assert len(digests) == 1


GUESSER = textwrap.dedent("""
    import sys, pkcs11, hspkcs11
    lib = pkcs11.lib(str(hspkcs11.module_path()))
    tok = lib.get_token(token_label="app")
    verified = locked = other = 0
    for _ in range(int(sys.argv[1])):
        try:
            tok.open(user_pin="0000").close()
        except pkcs11.exceptions.PinIncorrect:
            verified += 1
        except pkcs11.exceptions.PinLocked:
            locked += 1
        except pkcs11.exceptions.PKCS11Error:
            other += 1
    print(verified, locked, other)
""")


def test_parallel_guessers_cannot_pass_the_lockout(tmp_path: Path) -> None:
    """Row 1: every attempt is counted, under the region's lock, before it is verified."""
    conf = make_region(tmp_path, extra="pin.max_failures = 5\n")
    cli(conf, "init-token", "--free", "--label", "app")
    procs = [subprocess.Popen([sys.executable, "-c", GUESSER, "4"], env=env(conf), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(6)]
    verified = 0
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        verified += int(out.split()[0])
    assert verified <= 5          # at most pin.max_failures wrong guesses ever reach the PIN check
    assert fresh_flags_locked(conf)


def fresh_flags_locked(conf: Path) -> bool:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import pkcs11, hspkcs11
        tok = pkcs11.lib(str(hspkcs11.module_path())).get_token(token_label="app")
        print(bool(tok.flags & pkcs11.TokenFlag.USER_PIN_LOCKED))
        try:
            tok.open(user_pin="1234")
            print("opened")
        except pkcs11.exceptions.PinLocked:
            print("locked")
    """)], env=env(conf), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split() == ["True", "locked"]


def test_an_attempt_that_cannot_be_counted_is_not_verified(tmp_path: Path) -> None:
    """Row 2: with no unit accepting writes, neither a wrong nor the right PIN is checked
    (fail closed): otherwise guesses would go uncounted."""
    conf = make_region(tmp_path)
    cli(conf, "init-token", "--free", "--label", "app")
    for zone in ("us-south-1", "us-south-2"):
        cli(conf, "zone", "fault", zone, "--error-ops", "write")
    script = textwrap.dedent("""
        import pkcs11, hspkcs11
        tok = pkcs11.lib(str(hspkcs11.module_path())).get_token(token_label="app")
        for pin in ("0000", "1234"):
            try:
                tok.open(user_pin=pin).close()
                print("ok")
            except pkcs11.exceptions.PKCS11Error as exc:
                print(type(exc).__name__)
    """)
    out = subprocess.run([sys.executable, "-c", script], env=env(conf), capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["DeviceError", "DeviceError"], out.stderr
    for zone in ("us-south-1", "us-south-2"):
        cli(conf, "zone", "clear", zone)
    out = subprocess.run([sys.executable, "-c", script], env=env(conf), capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["PinIncorrect", "ok"], out.stderr


WRITER = textwrap.dedent("""
    import sys, pkcs11, hspkcs11
    tok = pkcs11.lib(str(hspkcs11.module_path())).get_token(token_label="app")
    with tok.open(user_pin="1234", rw=True) as s:
        for i in range(int(sys.argv[2])):
            s.generate_key(pkcs11.KeyType.AES, 128, store=True, label=f"{sys.argv[1]}-{i}")
    print("done")
""")


def test_deleting_the_lock_file_never_lets_two_writers_in(tmp_path: Path) -> None:
    """Row 3: a "stale lock" clean-up while writers run; every key keeps its own handle
    and every unit ends with the same content."""
    conf = make_region(tmp_path, zones="us-south-1, us-south-2, us-south-3")
    cli(conf, "init-token", "--free", "--label", "app")
    lock = load_config(conf).region_dir / ".write.lock"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, f"w{n}", "60"], env=env(conf), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in range(3)]
    while any(w.poll() is None for w in writers):
        lock.unlink(missing_ok=True)
    for w in writers:
        out, err = w.communicate(timeout=300)
        assert out.strip() == "done", err
    units = Region(load_config(conf)).units()
    assert {u.store.count_objects() for u in units} == {180}
    assert len({u.store.content_digest() for u in units}) == 1
    labels = {bytes(r.label or b"") for r in units[0].store.find(units[0].store.tokens()[0].serial, True)}
    assert len(labels) == 180


STOPPED_HOLDER = textwrap.dedent("""
    import os, signal
    from hspkcs11.config import load
    from hspkcs11.hsm.replica import RegionService
    svc = RegionService(load())
    with svc.write_lock():
        print(os.getpid(), flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)      # a writer paused inside the lock
""")

BUSY_APP = textwrap.dedent("""
    import threading, time, pkcs11, hspkcs11
    tok = pkcs11.lib(str(hspkcs11.module_path())).get_token(token_label="app")
    s = tok.open(user_pin="1234", rw=True)
    key = s.generate_key(pkcs11.KeyType.AES, 128)           # a session key: no region write
    print("ready", flush=True)
    input()
    done = []
    def encrypt():
        while not done:
            key.encrypt(b"x" * 16, mechanism=pkcs11.Mechanism.AES_ECB)
            done_count[0] += 1
    done_count = [0]
    t = threading.Thread(target=encrypt)
    t.start()
    start = time.monotonic()
    try:
        s.generate_key(pkcs11.KeyType.AES, 128, store=True, label="blocked")
        outcome = "ok"
    except pkcs11.exceptions.PKCS11Error as exc:
        outcome = type(exc).__name__
    waited = time.monotonic() - start
    done.append(1)
    t.join()
    print(outcome, round(waited, 1), done_count[0], flush=True)
""")


def test_a_stopped_writer_blocks_nobody_for_ever(tmp_path: Path) -> None:
    """Row 4: a process stopped inside the region's lock. Another application's write is
    refused within the bounded wait, naming the holder; its other threads keep working
    meanwhile; once the holder goes on, writes work again."""
    import signal
    conf = make_region(tmp_path)
    cli(conf, "init-token", "--free", "--label", "app")
    app = subprocess.Popen([sys.executable, "-c", BUSY_APP], env=env(conf), text=True, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert app.stdout is not None and app.stdin is not None
    assert app.stdout.readline().strip() == "ready"
    holder = subprocess.Popen([sys.executable, "-c", STOPPED_HOLDER], env=env(conf), text=True,
                              stdout=subprocess.PIPE)
    assert holder.stdout is not None
    pid = int(holder.stdout.readline())
    try:
        app.stdin.write("\n")
        app.stdin.flush()
        out, err = app.communicate(timeout=60)
        outcome, waited, encrypted = out.split()
        assert outcome == "DeviceError", err
        assert 4 <= float(waited) <= 15
        assert int(encrypted) > 100          # the other thread ran while this one waited
        assert f"held by pid {pid}" in (tmp_path / "hspkcs11.log").read_text()
    finally:
        os.kill(pid, signal.SIGCONT)
        holder.wait(timeout=30)
    out = subprocess.run([sys.executable, "-c", WRITER, "after", "1"], env=env(conf), capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == "done", out.stderr


def test_a_damaged_unit_is_left_out_and_the_others_serve(tmp_path: Path) -> None:
    """Row 5: random bytes in one unit's database. New processes start and work, status
    names the unit, and the operator can take its zone down with the tool."""
    conf = make_region(tmp_path, zones="us-south-1, us-south-2, us-south-3")
    cli(conf, "init-token", "--free", "--label", "app")
    (load_config(conf).unit_dir("us-south-2") / "unit.db").write_bytes(os.urandom(8192))
    for suffix in ("-wal", "-shm"):
        (load_config(conf).unit_dir("us-south-2") / f"unit.db{suffix}").unlink(missing_ok=True)
    out = subprocess.run([sys.executable, "-c", WRITER, "k", "2"], env=env(conf), capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == "done", out.stderr
    doc = json.loads(cli(conf, "status", "--json").stdout)
    by_zone = {u["zone"]: u for u in doc["units"]}
    assert list(by_zone) == ["us-south-1", "us-south-2", "us-south-3"]
    assert by_zone["us-south-2"]["health"] == "does not open" and by_zone["us-south-2"]["refused"]
    assert by_zone["us-south-1"]["objects"] == by_zone["us-south-3"]["objects"] == 2
    assert cli(conf, "zone", "down", "us-south-2", check=False).returncode == 0
    assert "does not open" in (tmp_path / "hspkcs11.log").read_text()


def test_a_unit_that_loses_its_registers_is_failed_over(tmp_path: Path) -> None:
    """Row 7: a running application keeps creating keys when one unit's registers vanish."""
    from regionkit import Client
    conf = make_region(tmp_path, zones="us-south-1, us-south-2, us-south-3")
    cli(conf, "init-token", "--free", "--label", "app")
    app = Client(conf, "app")
    try:
        assert app.do("genkey before") == "ok"
        (load_config(conf).unit_dir("us-south-1") / "registers.json").unlink()
        assert app.do("genkey after") == "ok"
        assert app.do("sign") == "True"
        assert app.do("find after") == "after"
    finally:
        app.close()
    doc = json.loads(cli(conf, "status", "--json").stdout)
    assert {u["zone"]: bool(u["refused"]) for u in doc["units"]} == {
        "us-south-1": True, "us-south-2": False, "us-south-3": False}
