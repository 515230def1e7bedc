"""Security, end to end (issue 8): one file that shows the whole list; docs/security.md
cites each test.

1. No plaintext key byte anywhere. A fresh region (two zones, `log.level = DEBUG` to a
   log file, backups in their own directory) gets extractable keys of every kind through
   PKCS#11: generated, imported (C_CreateObject), unwrapped, derived, copied, a session
   key, RSA, EC and Ed25519 private keys, sensitive ones read out by wrapping them. Then
   two backups, a master-key rotation, a restore into another region. Every file under
   the data, backup, log and key-part directories is scanned twice (while a client
   holds the stores open, so the SQLite WAL and SHM files exist, and after every process
   ended) for every key's bytes, the master keys, the key parts, their passwords and the
   PINs, raw, as hex (both cases) and as base64 (all three alignments).
2. Files 0600, directories 0700: every process of (1) runs with umask 000, so a file
   created with a default mode would show as 0666.
3. The user PIN locks after `pin.max_failures` wrong PINs; the SO unlocks by C_InitPIN.
4. The SO sees no private object; sensitive attributes are never returned.
5. A tampered store (one unit, every unit, a register file) and a tampered backup are
   detected: failover to an intact unit, or a clean CKR, never wrong key material.
6. Key parts are written only encrypted; their password comes from the environment or a
   hidden prompt, and a password flag is taken only with a warning.

The figures for the README (keys, secrets, files scanned, bytes found) are printed by
`.venv/bin/python -m pytest tests/test_security.py -q -s -k plaintext`.
"""
from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pkcs11
import pytest
from pkcs11 import Attribute as A, KeyType, ObjectClass, TokenFlag

from conftest import SO_PIN, USER_PIN, Module, make_region, util
from hspkcs11.config import load as load_config
from hspkcs11.consts import CKA, CKM, CKR
from hspkcs11.hsm import masterkey as mk
from hspkcs11.hsm.store import ObjectRow, row_digest
from rawp11 import Raw, ffi, template

Differs = Callable[[str, str], None]

CKU_SO, CKU_USER = 0, 1
UNAVAILABLE = int(ffi.cast("CK_ULONG", -1))           # CK_UNAVAILABLE_INFORMATION
ZONES = "us-south-1, us-south-2"
# Distinctive secrets, so that finding one in a file cannot be chance.
PASSWORDS = ("kp-first-7c41e09b5d", "kp-second-2f8ad3361e")     # key-part passwords, old and new key
PINS = {"user PIN": "upin-5b17e2c94d", "SO PIN": "sopin-0a6f3d82c1", "changed user PIN": "upin2-e83b5a0f7c",
        "wrong user PIN": "wrong-4c9e1d7a20"}
ENV_PASSWORD = "HSPKCS11_KEYPART_PASSWORD"


# ---- processes: the CLI and PKCS#11 clients, all with umask 000 -------------------------------

def env_for(conf: Path, password: str = PASSWORDS[0]) -> dict[str, str]:
    return {**os.environ, "HSPKCS11_CONF": str(conf), ENV_PASSWORD: password,
            "HSPKCS11_SO_PIN": PINS["SO PIN"], "HSPKCS11_PIN": PINS["user PIN"]}


def run_cli(conf: Path, *args: str, password: str = PASSWORDS[0], check: bool = True,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**env_for(conf, password), **(extra_env or {})}
    out = subprocess.run(util() + list(args), env=env, capture_output=True, text=True, umask=0,
                         stdin=subprocess.DEVNULL)
    if check:
        assert out.returncode == 0, f"{args}: {out.stdout}{out.stderr}"
    return out


def python(conf: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], env=env_for(conf), capture_output=True, text=True,
                          umask=0)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# ---- the client that makes every kind of extractable key ------------------------------------

MAKER = textwrap.dedent(r'''
    import json, os, sys
    import pkcs11, hspkcs11
    from pkcs11 import Attribute as A, KeyType as K, Mechanism as M, ObjectClass as O
    from pkcs11.util.ec import encode_named_curve_parameters
    from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding, aes_key_wrap_with_padding
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    PIN, NEW_PIN, WRONG_PIN = sys.argv[2:5]
    lib = pkcs11.lib(str(hspkcs11.module_path()))
    token = lib.get_token(token_label=sys.argv[1])
    try:
        token.open(user_pin=WRONG_PIN, rw=True)          # a failed login, traced too
    except pkcs11.exceptions.PinIncorrect:
        pass
    s = token.open(user_pin=PIN, rw=True)
    s.set_pin(PIN, NEW_PIN)                               # C_SetPIN, there and back
    s.set_pin(NEW_PIN, PIN)
    PLAIN = {A.SENSITIVE: False, A.EXTRACTABLE: True}
    GUARDED = {A.SENSITIVE: True, A.EXTRACTABLE: True}
    secrets, labels = {}, []       # what to scan for; secret keys whose CKA_VALUE a later process reads

    def keep(name, value):
        secrets[name] = value.hex()

    def big(v):
        return v.to_bytes((v.bit_length() + 7) // 8, "big")

    kek_value = os.urandom(32)
    kek = s.create_object({A.CLASS: O.SECRET_KEY, A.KEY_TYPE: K.AES, A.TOKEN: True, A.LABEL: "kek",
                           A.VALUE: kek_value, A.WRAP: True, A.UNWRAP: True, A.ENCRYPT: True, **PLAIN})
    keep("AES-256 imported by C_CreateObject", kek_value)
    labels.append("kek")

    def wrapped_out(key):
        """A sensitive, extractable key's bytes as the client that wraps it out gets them."""
        return aes_key_unwrap_with_padding(kek_value, kek.wrap_key(key, mechanism=M.AES_KEY_WRAP_PAD))

    def private_numbers(name, der):
        keep(f"{name}: PKCS#8 (wrapped out)", der)
        n = load_der_private_key(der, None).private_numbers()
        if hasattr(n, "d"):
            for part in ("d", "p", "q", "dmp1", "dmq1", "iqmp"):
                keep(f"{name}: {part}", big(getattr(n, part)))
        else:
            keep(f"{name}: private value", big(n.private_value))

    for kt, bits in ((K.AES, 128), (K.AES, 192), (K.AES, 256), (K.GENERIC_SECRET, 256), (K.DES3, 192)):
        label = f"{kt.name}-{bits}"
        keep(f"generated {label}", s.generate_key(kt, bits, store=True, label=label, template=PLAIN)[A.VALUE])
        labels.append(label)
    keep("generated AES-256, sensitive", wrapped_out(
        s.generate_key(K.AES, 256, store=True, label="aes-guarded", template=GUARDED)))
    flipped = s.generate_key(K.AES, 256, store=True, label="flipped", template=PLAIN)
    keep("generated AES-256, then made sensitive", flipped[A.VALUE])
    flipped[A.SENSITIVE] = True                           # C_SetAttributeValue re-seals it
    base = s.generate_key(K.AES, 256, store=True, label="derive-base", template={**PLAIN, A.DERIVE: True})
    keep("generated AES-256 derivation base", base[A.VALUE])
    labels.append("derive-base")
    keep("AES-256 derived by C_DeriveKey", base.derive_key(
        K.AES, 256, store=True, label="derived", mechanism=M.AES_ECB_ENCRYPT_DATA, mechanism_param=os.urandom(32),
        template={**PLAIN, A.ENCRYPT: True})[A.VALUE])
    labels.append("derived")
    value = os.urandom(32)
    kek.unwrap_key(O.SECRET_KEY, K.AES, aes_key_wrap_with_padding(kek_value, value), label="unwrapped",
                   mechanism=M.AES_KEY_WRAP_PAD, store=True, template=PLAIN)
    keep("AES-256 unwrapped by C_UnwrapKey", value)
    labels.append("unwrapped")
    s.get_key(label="AES-256", object_class=O.SECRET_KEY).copy({A.LABEL: "copied"})
    labels.append("copied")
    session_key = s.generate_key(K.AES, 256, template=PLAIN)          # a session object: never stored
    keep("AES-256 session key", session_key[A.VALUE])
    session_key.encrypt(bytes(16), mechanism=M.AES_ECB)

    pub, priv = s.generate_keypair(K.RSA, 2048, store=True, label="rsa", private_template=PLAIN)
    for a in (A.PRIVATE_EXPONENT, A.PRIME_1, A.PRIME_2, A.EXPONENT_1, A.EXPONENT_2, A.COEFFICIENT):
        keep(f"RSA-2048 {a.name}", priv[a])
    pub, priv = s.generate_keypair(K.RSA, 2048, store=True, label="rsa-guarded", private_template=GUARDED)
    private_numbers("RSA-2048, sensitive", wrapped_out(priv))
    for curve, tmpl in (("secp256r1", PLAIN), ("secp384r1", GUARDED)):
        pub, priv = s.generate_keypair(K.EC, store=True, label=curve, private_template=tmpl,
                                       public_template={A.EC_PARAMS: encode_named_curve_parameters(curve)})
        if tmpl is PLAIN:
            keep(f"EC {curve} CKA_VALUE", priv[A.VALUE])
        else:
            private_numbers(f"EC {curve}, sensitive", wrapped_out(priv))
        priv.sign(os.urandom(32), mechanism=M.ECDSA)
    pub, priv = s.generate_keypair(K.EC_EDWARDS, store=True, label="ed25519", mechanism=M.EC_EDWARDS_KEY_PAIR_GEN,
                                   public_template={A.EC_PARAMS: encode_named_curve_parameters("1.3.101.112")},
                                   private_template=PLAIN)
    keep("Ed25519 CKA_VALUE", priv[A.VALUE])
    priv.sign(b"message", mechanism=M.EDDSA)

    print(json.dumps({"secrets": secrets, "labels": labels}), flush=True)
    for line in sys.stdin:                 # hold the stores open until told to quit
        if line.strip() == "quit":
            break
''')

READER = textwrap.dedent('''
    import json, os, sys
    import pkcs11, hspkcs11
    from pkcs11 import Attribute as A, ObjectClass as O
    lib = pkcs11.lib(str(hspkcs11.module_path()))
    with lib.get_token(token_label=sys.argv[1]).open(user_pin=os.environ["HSPKCS11_PIN"]) as s:
        print(json.dumps({label: s.get_key(label=label, object_class=O.SECRET_KEY)[A.VALUE].hex()
                          for label in json.loads(sys.argv[2])}))
''')


# ---- scanning ---------------------------------------------------------------------------------

def encodings(secret: bytes) -> dict[str, bytes]:
    """The forms a leaked secret could take in a file. Base64 depends on where the secret
    starts in the encoded data: for each of the three alignments, the run of whole groups."""
    forms = {"raw": secret, "hex": secret.hex().encode(), "HEX": secret.hex().upper().encode()}
    for skip in range(3):
        whole = secret[skip:][:(len(secret) - skip) // 3 * 3]
        forms[f"base64+{skip}"] = base64.b64encode(whole)
    return forms


@dataclass
class Scan:
    label: str
    files: list[Path] = field(default_factory=list)
    bytes_scanned: int = 0
    found: list[str] = field(default_factory=list)


def scan(label: str, roots: list[Path], secrets: dict[str, bytes]) -> Scan:
    result = Scan(label)
    needles = [(name, form, needle) for name, secret in secrets.items() for form, needle in encodings(secret).items()]
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            result.files.append(path)
            result.bytes_scanned += len(data)
            result.found += [f"{name} ({form}) in {path}" for name, form, needle in needles if needle in data]
    return result


def modes(roots: list[Path]) -> list[str]:
    """Every path under the roots whose mode is not 0700 (directory) or 0600 (file)."""
    wrong = []
    for root in roots:
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode != (0o700 if path.is_dir() else 0o600):
                wrong.append(f"{path}: {oct(mode)}")
    return wrong


# ---- the region of (1) and (2) ------------------------------------------------------------

@dataclass
class World:
    base: Path
    conf: Path
    roots: list[Path]
    keys: dict[str, bytes]             # key material made through PKCS#11
    others: dict[str, bytes]           # master keys, parts, passwords, PINs
    scans: list[Scan]
    wrong_modes: list[str]
    backups: list[str]
    read_back: dict[str, str]          # label -> CKA_VALUE hex read after the rotation


def backup_now(conf: Path) -> str:
    out = run_cli(conf, "backup", "now").stdout
    found = re.search(r"^backup (\S+) of region", out, re.M)
    assert found, out
    return found.group(1)


def master_key(parts: list[Path], password: str) -> bytes:
    return mk.combine([mk.part_read(p, password) for p in parts])


def load_new_master_key(conf: Path, parts: list[Path], password: str) -> None:
    for part in parts:
        run_cli(conf, "masterkey", "part-new", str(part), password=password)
    run_cli(conf, "masterkey", "load", *map(str, parts), password=password)
    run_cli(conf, "masterkey", "commit")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("security")
    data, vault, logs, keyparts, restored = (base / n for n in ("data", "vault", "logs", "parts", "restored"))
    with umask(0):
        conf = make_region(base, zones=ZONES, master_key=None,
                           extra=f"log.level = DEBUG\nlog.file = {logs / 'hspkcs11.log'}\nbackup.dir = {vault}\n")
    first, second = [keyparts / "first-1", keyparts / "first-2"], [keyparts / "second-1", keyparts / "second-2"]
    load_new_master_key(conf, first, PASSWORDS[0])
    run_cli(conf, "masterkey", "activate")
    run_cli(conf, "init-token", "--free", "--label", "sec")

    maker = subprocess.Popen([sys.executable, "-c", MAKER, "sec", PINS["user PIN"], PINS["changed user PIN"],
                              PINS["wrong user PIN"]], env=env_for(conf), text=True, umask=0,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert maker.stdout is not None and maker.stdin is not None
        line = maker.stdout.readline()
        assert line, maker.communicate()[1]
        made = json.loads(line)
        backups = [backup_now(conf)]
        load_new_master_key(conf, second, PASSWORDS[1])
        run_cli(conf, "masterkey", "rotate")
        read = python(conf, READER, "sec", json.dumps(made["labels"]))
        assert read.returncode == 0, read.stderr
        backups.append(backup_now(conf))
        run_cli(conf, "backup", "verify", backups[-1])
        run_cli(conf, "restore", "--from", backups[-1], "--region", "eu-de", "--data-dir", str(restored))
        keys = {name: bytes.fromhex(h) for name, h in made["secrets"].items()}
        others = {"master key (first)": master_key(first, PASSWORDS[0]),
                  "master key (second)": master_key(second, PASSWORDS[1]),
                  **{f"key part {p.name}": mk.part_read(p, PASSWORDS[0]) for p in first},
                  **{f"key part {p.name}": mk.part_read(p, PASSWORDS[1]) for p in second},
                  **{f"key-part password {i}": pw.encode() for i, pw in enumerate(PASSWORDS, 1)},
                  **{name: pin.encode() for name, pin in PINS.items()}}
        roots = [data, vault, logs, keyparts, restored]
        scans = [scan("while a client holds the stores open", roots, {**keys, **others})]
        maker.stdin.write("quit\n")
        maker.stdin.flush()
        assert maker.wait(timeout=60) == 0, maker.stderr.read() if maker.stderr else ""
    finally:
        if maker.poll() is None:
            maker.kill()
            maker.wait()
    scans.append(scan("after every process ended", roots, {**keys, **others}))
    return World(base, conf, roots, keys, others, scans, modes(roots), backups, json.loads(read.stdout))


# ---- 1. no plaintext key byte anywhere ----------------------------------------------------------

def test_no_plaintext_key_byte_is_in_any_data_backup_log_or_key_part_file(world: World) -> None:
    kinds = {"AES-256 imported by C_CreateObject", "generated DES3-192", "generated AES-256, sensitive",
             "generated AES-256, then made sensitive", "AES-256 derived by C_DeriveKey",
             "AES-256 unwrapped by C_UnwrapKey", "AES-256 session key", "RSA-2048 PRIVATE_EXPONENT",
             "RSA-2048, sensitive: PKCS#8 (wrapped out)", "RSA-2048, sensitive: q", "EC secp256r1 CKA_VALUE",
             "EC secp384r1, sensitive: private value", "Ed25519 CKA_VALUE"}
    assert kinds <= set(world.keys) and all(len(v) >= 16 for v in world.keys.values())
    open_scan, closed_scan = world.scans
    names = {p.name for p in open_scan.files}
    assert {"unit.db", "unit.db-wal", "unit.db-shm", "audit.jsonl", "hspkcs11.log", "manifest.json",
            "manifest.mac", "registers.json", "device.key", "restored-from.json"} <= names, names
    log = (world.base / "logs" / "hspkcs11.log").read_text()
    for call in ("C_CreateObject(", "C_UnwrapKey(", "C_DeriveKey(", "C_WrapKey(", "C_SetPIN(", "C_CopyObject(",
                 "C_GetAttributeValue(", "CKR_PIN_INCORRECT"):
        assert call in log, f"the DEBUG trace has no {call}"
    for result in world.scans:
        assert result.found == [], f"{result.label}: " + "; ".join(result.found[:10])
    # The rotation moved every key, and each still opens to its own value.
    assert world.read_back == {label: world.keys[name].hex() for label, name in (
        ("kek", "AES-256 imported by C_CreateObject"), ("AES-128", "generated AES-128"),
        ("AES-192", "generated AES-192"), ("AES-256", "generated AES-256"),
        ("GENERIC_SECRET-256", "generated GENERIC_SECRET-256"), ("DES3-192", "generated DES3-192"),
        ("derive-base", "generated AES-256 derivation base"), ("derived", "AES-256 derived by C_DeriveKey"),
        ("unwrapped", "AES-256 unwrapped by C_UnwrapKey"), ("copied", "generated AES-256"))}
    print(f"\nplaintext scan: {len(world.keys)} pieces of key material made through PKCS#11 "
          f"+ {len(world.others)} other secrets (master keys, key parts, passwords, PINs), "
          f"{len(open_scan.files)} files / {open_scan.bytes_scanned} bytes while open, "
          f"{len(closed_scan.files)} files / {closed_scan.bytes_scanned} bytes after; "
          f"found {sum(len(s.found) for s in world.scans)}")


def test_the_scan_finds_each_form_of_a_leak(tmp_path: Path) -> None:
    secret = os.urandom(32)
    leaks = {form: b"x" * pad + needle for pad, (form, needle) in enumerate(encodings(secret).items())}
    leaks["base64 inside a longer text"] = base64.b64encode(b"ab" + secret + b"cd")
    for i, data in enumerate(leaks.values()):
        (tmp_path / f"f{i}").write_bytes(data)
    found = scan("self-check", [tmp_path], {"k": secret}).found
    assert len({f.rsplit(" in ", 1)[1] for f in found}) == len(leaks)


# ---- 2. file modes ----------------------------------------------------------------------------

def test_every_file_is_0600_and_every_directory_0700_even_under_umask_000(world: World) -> None:
    assert world.wrong_modes == []
    assert (world.base / "restored" / "hspkcs11.conf").is_file()      # the config restore writes is checked too
    for path in world.roots:            # and the checks saw something in each
        assert any(p.is_file() for p in path.rglob("*")), path


# ---- 3. PIN lock-out ---------------------------------------------------------------------------

def token_flags(module: Module, label: str) -> int:
    return int(module.lib.get_token(token_label=label).flags)


def test_the_user_pin_locks_after_the_configured_failures_and_the_so_unlocks_it(
        module: Module, hs_conf: Path, differs: Differs) -> None:
    differs("softhsm", "Base §3.2 (CKF_USER_PIN_LOCKED) and §5.1 (CKR_PIN_LOCKED) allow a lock-out after failures; "
                       "SoftHSM2 2.6.1 counts none: the right PIN still logs in")
    limit = load_config(hs_conf).pin_max_failures
    token = module.init_token()
    raw = Raw(module.path)
    h = raw.open_session(token.slot.slot_id)
    try:
        codes = [raw.login(h, CKU_USER, "000000") for _ in range(limit)]
        assert codes == [CKR.PIN_INCORRECT] * limit
        assert raw.login(h, CKU_USER, USER_PIN) == CKR.PIN_LOCKED
        assert token_flags(module, token.label) & TokenFlag.USER_PIN_LOCKED
        assert raw.login(h, CKU_SO, SO_PIN) == CKR.OK
        assert raw.C_InitPIN(h, b"5678", 4) == CKR.OK
        assert raw.C_Logout(h) == CKR.OK
        assert not token_flags(module, token.label) & TokenFlag.USER_PIN_LOCKED
        assert raw.login(h, CKU_USER, "5678") == CKR.OK
        assert raw.C_Logout(h) == CKR.OK
    finally:
        raw.C_CloseSession(h)


# ---- 4. the SO and private objects; sensitive attributes -----------------------------------------

def get_attribute(raw: Raw, h: int, obj: int, cka: int, size: int) -> tuple[int, int, bytes]:
    """C_GetAttributeValue of one attribute: (rv, ulValueLen, the buffer after the call);
    size 0 asks for the length (NULL pValue)."""
    tmpl, keep = template((cka, bytes(size)))
    rv = raw.C_GetAttributeValue(h, obj, tmpl, 1)
    return rv, int(tmpl[0].ulValueLen), bytes(ffi.buffer(keep[0], size)) if size else b""


def private_objects(module: Module) -> tuple[pkcs11.Token, dict[str, int]]:
    """A fresh token where the user made a private key, a private and a public data
    object, then closed the last session (so logged out, Base §5.6)."""
    token = module.init_token()
    with token.open(user_pin=USER_PIN, rw=True) as s:
        key = s.generate_key(KeyType.AES, 128, store=True, label="private-key",
                             template={A.PRIVATE: True, A.SENSITIVE: False, A.EXTRACTABLE: True})
        data = s.create_object({A.CLASS: ObjectClass.DATA, A.TOKEN: True, A.PRIVATE: True,
                                A.LABEL: "private-data", A.VALUE: b"the user's secret data"})
        s.create_object({A.CLASS: ObjectClass.DATA, A.TOKEN: True, A.PRIVATE: False, A.LABEL: "public-data",
                         A.VALUE: b"anyone may read this"})
        return token, {"private-key": key.handle, "private-data": data.handle}


def test_the_so_never_sees_private_objects(module: Module) -> None:
    token, hidden = private_objects(module)
    raw = Raw(module.path)
    with token.open(so_pin=SO_PIN, rw=True) as so:
        assert sorted(o[A.LABEL] for o in so.get_objects()) == ["public-data"]
        assert list(so.get_objects({A.PRIVATE: True})) == []
        h = raw.open_session(token.slot.slot_id)
        try:
            for name, handle in hidden.items():
                for cka in (CKA.VALUE, CKA.LABEL):
                    rv, _, buf = get_attribute(raw, h, handle, cka, 64)
                    assert (CKR(rv), buf) == (CKR.OBJECT_HANDLE_INVALID, bytes(64)), (name, cka)
                assert raw.C_DestroyObject(h, handle) == CKR.OBJECT_HANDLE_INVALID, name
        finally:
            raw.C_CloseSession(h)
    with token.open(user_pin=USER_PIN) as s:             # still there for the user
        assert sorted(o[A.LABEL] for o in s.get_objects()) == ["private-data", "private-key", "public-data"]


def test_the_so_cannot_use_a_private_key(module: Module, differs: Differs) -> None:
    differs("softhsm", "C_EncryptInit names CKR_KEY_HANDLE_INVALID for a key the session cannot see "
                       "(Base §5.8 C_EncryptInit, §5.1); SoftHSM2 answers CKR_OBJECT_HANDLE_INVALID")
    token, hidden = private_objects(module)
    raw = Raw(module.path)
    with token.open(so_pin=SO_PIN, rw=True):
        h = raw.open_session(token.slot.slot_id)
        try:
            mech = ffi.new("CK_MECHANISM *")
            mech.mechanism = CKM.AES_ECB
            assert CKR(raw.C_EncryptInit(h, mech, hidden["private-key"])) == CKR.KEY_HANDLE_INVALID
        finally:
            raw.C_CloseSession(h)


SENSITIVE_KINDS: dict[str, tuple[Callable[[pkcs11.Session], Any], tuple[A, ...]]] = {
    "AES, sensitive": (lambda s: s.generate_key(KeyType.AES, 256, template={A.SENSITIVE: True, A.EXTRACTABLE: True}),
                       (A.VALUE,)),
    "generic secret, unextractable": (
        lambda s: s.generate_key(KeyType.GENERIC_SECRET, 256, template={A.SENSITIVE: False, A.EXTRACTABLE: False}),
        (A.VALUE,)),
    "RSA private, sensitive": (
        lambda s: s.generate_keypair(KeyType.RSA, 1024, private_template={A.SENSITIVE: True})[1],
        (A.PRIVATE_EXPONENT, A.PRIME_1, A.PRIME_2, A.EXPONENT_1, A.EXPONENT_2, A.COEFFICIENT)),
    "EC private, sensitive": (
        lambda s: s.generate_keypair(KeyType.EC, private_template={A.SENSITIVE: True}, public_template={
            A.EC_PARAMS: bytes.fromhex("06082a8648ce3d030107")})[1],      # P-256
        (A.VALUE,)),
}


@pytest.mark.parametrize("kind", SENSITIVE_KINDS)
def test_sensitive_attributes_are_never_returned(module: Module, token: pkcs11.Token, session: pkcs11.Session,
                                                 kind: str) -> None:
    make, attrs = SENSITIVE_KINDS[kind]
    key = make(session)
    raw = Raw(module.path)
    h = raw.open_session(token.slot.slot_id)
    try:
        for cka in attrs:
            assert get_attribute(raw, h, key.handle, cka, 0)[:2] == (CKR.ATTRIBUTE_SENSITIVE, UNAVAILABLE), cka.name
            rv, length, buf = get_attribute(raw, h, key.handle, cka, 4096)
            assert (rv, length, buf) == (CKR.ATTRIBUTE_SENSITIVE, UNAVAILABLE, bytes(4096)), cka.name
            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                key[cka]
    finally:
        raw.C_CloseSession(h)


def test_a_key_made_sensitive_is_never_read_again(token: pkcs11.Token, session: pkcs11.Session) -> None:
    key = session.generate_key(KeyType.AES, 256, template={A.SENSITIVE: False, A.EXTRACTABLE: True})
    assert len(key[A.VALUE]) == 32                 # an answer the shim may keep (issue 7)
    key[A.SENSITIVE] = True
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        key[A.VALUE]
    with token.open(rw=True) as other:             # another session of the same application
        again = next(other.get_objects({A.CLASS: ObjectClass.SECRET_KEY, A.SENSITIVE: True}))
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            again[A.VALUE]
    with pytest.raises(pkcs11.exceptions.AttributeReadOnly):
        key[A.SENSITIVE] = False                   # only ever to true (Base §4.2 table 10, footnote 11)


# ---- 5. tampering -------------------------------------------------------------------------------

COLUMNS = "handle, serial, uid, class, key_type, private, label, ckaid, attrs, sealed, mkvp"

USE = textwrap.dedent('''
    import os, sys, pkcs11, hspkcs11
    from pkcs11 import Attribute as A, KeyType, Mechanism, ObjectClass
    def attempt(fn):
        try:
            return fn()
        except pkcs11.exceptions.PKCS11Error as exc:
            return type(exc).__name__
    lib = attempt(lambda: pkcs11.lib(str(hspkcs11.module_path())))
    if isinstance(lib, str):
        print(lib, lib)
        sys.exit()
    with lib.get_token(token_label="t").open(user_pin=os.environ["HSPKCS11_PIN"], rw=True) as s:
        if sys.argv[1] == "make":
            s.generate_key(KeyType.AES, 256, store=True, label="victim",
                           template={A.SENSITIVE: False, A.EXTRACTABLE: True})
        key = attempt(lambda: s.get_key(label="victim", object_class=ObjectClass.SECRET_KEY))
        if isinstance(key, str):
            print(key, key)
        else:
            print(attempt(lambda: key[A.VALUE].hex()),
                  attempt(lambda: key.encrypt(bytes(16), mechanism=Mechanism.AES_ECB).hex()))
''')


def flip_sealed(unit_db: Path, recompute_digest: bool, bit: int) -> None:
    """Flip one bit near the end of the victim's sealed blob. With `recompute_digest`,
    also write the matching row digest: it takes no key, so whoever can write the file
    can do it; only the AES key wrap's integrity check remains."""
    db = sqlite3.connect(unit_db)
    try:
        values = list(db.execute(f"SELECT {COLUMNS} FROM objects WHERE label = ?", (b"victim",)).fetchone())
        sealed = values[9]
        middle = len(sealed) - 12
        values[9] = sealed[:middle] + bytes([sealed[middle] ^ bit]) + sealed[middle + 1:]
        db.execute("UPDATE objects SET sealed = ? WHERE label = ?", (values[9], b"victim"))
        if recompute_digest:
            db.execute("UPDATE objects SET digest = ? WHERE label = ?", (row_digest(ObjectRow(*values)), b"victim"))
        db.commit()
    finally:
        db.close()


def damage_registers(unit_dir: Path) -> None:
    path = unit_dir / "registers.json"
    doc = json.loads(path.read_text())
    wrapped = bytearray(base64.b64decode(doc["current_key"]))
    wrapped[8] ^= 0x01
    doc["current_key"] = base64.b64encode(bytes(wrapped)).decode()
    path.write_text(json.dumps(doc))


def test_a_tampered_store_is_detected_and_never_yields_wrong_key_material(tmp_path: Path) -> None:
    conf = make_region(tmp_path, zones=ZONES)
    run_cli(conf, "init-token", "--free", "--label", "t")
    cfg = load_config(conf)
    db = {zone: cfg.unit_dir(zone) / "unit.db" for zone in cfg.zones}

    def use(step: str = "use") -> str:
        out = python(conf, USE, step)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    good = use("make")
    value, ciphertext = good.split()
    assert len(value) == 64 and len(ciphertext) == 32
    refused = "DeviceError DeviceError"
    log = tmp_path / "hspkcs11.log"

    flip_sealed(db["us-south-1"], recompute_digest=False, bit=0x10)    # one unit: its row's digest tells
    assert use() == good
    assert "does not match its digest" in log.read_text()
    flip_sealed(db["us-south-1"], recompute_digest=True, bit=0x20)     # digest made to match: the key wrap tells
    assert use() == good
    assert "failed its integrity check" in log.read_text() and "copy of the object was used" in log.read_text()
    flip_sealed(db["us-south-2"], recompute_digest=True, bit=0x10)     # every unit: no intact copy is left
    assert use() == refused                                            # the key is found, never opened
    flip_sealed(db["us-south-2"], recompute_digest=False, bit=0x20)
    assert use() == refused                                            # the find itself is refused
    assert value not in log.read_text()


def test_a_damaged_register_file_takes_its_unit_out_not_the_region(tmp_path: Path) -> None:
    conf = make_region(tmp_path, zones=ZONES)
    run_cli(conf, "init-token", "--free", "--label", "t")
    cfg = load_config(conf)
    out = python(conf, USE, "make")
    good = out.stdout.strip()
    assert len(good.split()) == 2 and "Error" not in good, out.stderr
    damage_registers(cfg.unit_dir("us-south-1"))
    assert python(conf, USE, "use").stdout.strip() == good
    status = json.loads(run_cli(conf, "status", "--json").stdout)["units"]
    assert [(u["zone"], bool(u["refused"])) for u in status] == [("us-south-1", True), ("us-south-2", False)]
    assert "do not open" in status[0]["refused"]
    damage_registers(cfg.unit_dir("us-south-2"))
    assert python(conf, USE, "use").stdout.strip() == "DeviceError DeviceError"


def test_a_tampered_backup_is_refused_by_verify_and_restore(world: World) -> None:
    ident = world.backups[-1]
    db = world.base / "vault" / ident / "unit.db"
    original = db.read_bytes()
    rows = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        blob = rows.execute("SELECT sealed FROM objects WHERE label = ? AND sealed IS NOT NULL",
                            (b"rsa-guarded",)).fetchone()[0]
    finally:
        rows.close()
    at = original.index(blob) + len(blob) // 2
    db.write_bytes(original[:at] + bytes([original[at] ^ 0x01]) + original[at + 1:])
    try:
        verify = run_cli(world.conf, "backup", "verify", ident, check=False)
        assert verify.returncode == 1 and "tampered" in verify.stderr, verify.stderr
        target = world.base / "restored-tampered"
        restore = run_cli(world.conf, "restore", "--from", ident, "--region", "eu-es", "--data-dir", str(target),
                          check=False)
        assert restore.returncode == 1 and "tampered" in restore.stderr, restore.stderr
        assert not target.exists()
    finally:
        db.write_bytes(original)
    assert "MAC ok" in run_cli(world.conf, "backup", "verify", ident).stdout


# ---- 6. key parts -----------------------------------------------------------------------------

def test_key_parts_are_written_encrypted_and_their_password_never_needs_argv(tmp_path: Path) -> None:
    conf = make_region(tmp_path, master_key=None)
    part = tmp_path / "custodian" / "part-1"
    made = run_cli(conf, "masterkey", "part-new", str(part))           # password from the environment
    assert "key part written" in made.stdout and made.stderr == ""
    assert stat.S_IMODE(part.stat().st_mode) == 0o600 and stat.S_IMODE(part.parent.stat().st_mode) == 0o700
    content = part.read_bytes()
    value = mk.part_read(part, PASSWORDS[0])
    for name, secret in (("key part", value), ("password", PASSWORDS[0].encode())):
        for form, needle in encodings(secret).items():
            assert needle not in content, f"{name} ({form}) in the key-part file"

    nothing = run_cli(conf, "masterkey", "part-new", str(tmp_path / "part-2"), check=False,
                      extra_env={ENV_PASSWORD: ""})                    # no terminal to ask, no variable
    assert nothing.returncode == 1 and ENV_PASSWORD in nothing.stderr and "Traceback" not in nothing.stderr
    assert not (tmp_path / "part-2").exists()

    flagged = run_cli(conf, "masterkey", "part-new", str(tmp_path / "part-3"), "--password", PASSWORDS[1],
                      extra_env={ENV_PASSWORD: ""})
    assert "warning" in flagged.stderr and ENV_PASSWORD in flagged.stderr and "ps" in flagged.stderr
    assert PASSWORDS[1] not in flagged.stdout + flagged.stderr
    for command in ("part-new", "load"):
        assert ENV_PASSWORD in run_cli(conf, "masterkey", command, "--help").stdout
