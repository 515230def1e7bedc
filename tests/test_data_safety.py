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
