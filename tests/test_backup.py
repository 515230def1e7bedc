"""Cross-region backup and restore (hspkcs11 only): consistent online backups while
writers run, integrity (SHA-256 and a MAC under the master key), retention, the daily
schedule, and a restore in another region that needs the same master key."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from conftest import USER_PIN, make_region
from hspkcs11.config import load as load_config
from hspkcs11.hsm import audit
from hspkcs11.hsm import backup as bk
from hspkcs11.hsm import masterkey as mk
from hspkcs11.hsm.region import Region
from hspkcs11.hsm.unit import CryptoUnit
from regionkit import PASSWORD, cli, env

ZONES = "us-south-1, us-south-2"


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Two master keys as key-part files: the region's ("right") and another ("wrong")."""
    base = tmp_path_factory.mktemp("parts")
    out = {}
    for which in ("right", "wrong"):
        out[which] = []
        for i in (1, 2):
            path = base / f"{which}{i}.json"
            mk.part_new(path, PASSWORD)
            out[which].append(str(path))
    return out


def key_of(files: list[str]) -> bytes:
    return mk.combine([mk.part_read(Path(f), PASSWORD) for f in files])


def source(base: Path, parts: dict[str, list[str]], extra: str = "") -> Path:
    """Region us-south (two zones) under the "right" master key, with token "app"."""
    conf = make_region(base, zones=ZONES, master_key=key_of(parts["right"]), extra=extra)
    cli(conf, "init-token", "--free", "--label", "app")
    return conf


def client(conf: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """python-pkcs11 in a fresh process using the region of `conf`, logged in to "app"."""
    prelude = textwrap.dedent(f"""
        import sys, pkcs11, hspkcs11
        from pkcs11 import Attribute as A, KeyType, ObjectClass, Mechanism
        lib = pkcs11.lib(str(hspkcs11.module_path()))
        s = lib.get_token(token_label="app").open(user_pin="{USER_PIN}", rw=True)
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *args], capture_output=True,
                          text=True, env=env(conf))


def backup_now(conf: Path, *flags: str) -> dict:
    """`backup now`, and the manifest of the backup it made."""
    out = cli(conf, "backup", "now", *flags).stdout
    ident = re.search(r"^backup (\S+) of region", out, re.M)
    assert ident, out
    manifests = json.loads(cli(conf, "backup", "list", "--json").stdout)
    return next(m for m in manifests if m["id"] == ident.group(1))


def backup_path(conf: Path, ident: str) -> Path:
    return bk.backup_root(load_config(conf)) / ident


def events(region_dir: Path) -> list[dict]:
    return audit.read(region_dir)


def restore(conf: Path, ident: str, region: str, data_dir: Path | None = None, *flags: str,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    args = ["restore", "--from", ident, "--region", region, *flags]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    return cli(conf, *args, check=check)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def db_rows(path: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# ---- backup while writers run ---------------------------------------------------------------

WRITER = """
import os, sys, pkcs11, hspkcs11
from pkcs11 import KeyType
tag, stop, ready = sys.argv[1:4]
lib = pkcs11.lib(str(hspkcs11.module_path()))
n = 0
with lib.get_token(token_label="app").open(user_pin="1234", rw=True) as s:
    while not os.path.exists(stop) and n < 5000:
        s.generate_key(KeyType.AES, 128, store=True, label=f"{tag}-{n}")
        n += 1
        if n == 15:
            open(ready, "w").close()
print(n)
"""


def test_a_backup_taken_while_two_writers_run_is_one_consistent_position(tmp_path: Path,
                                                                        parts: dict[str, list[str]]) -> None:
    conf = source(tmp_path, parts)
    stop = tmp_path / "stop"
    ready = [tmp_path / "ready-a", tmp_path / "ready-b"]
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, tag, str(stop), str(r)], env=env(conf), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for tag, r in zip("ab", ready)]
    try:
        deadline = time.monotonic() + 60
        while not all(r.exists() for r in ready):
            assert all(w.poll() is None for w in writers), [w.communicate() for w in writers]
            assert time.monotonic() < deadline, "writers never started"
            time.sleep(0.01)
        # One page per step, and a slow unit (injected delay on reads): writers commit
        # between the steps of the copy.
        cli(conf, "zone", "fault", "us-south-1", "--delay-ms", "3", "--delay-ops", "read")
        during = backup_now(conf, "--step-pages", "1")
        cli(conf, "zone", "clear", "us-south-1")
    finally:
        stop.touch()
        outs = [w.communicate(timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), outs
    written = sum(int(out.strip()) for out, _err in outs)

    path = backup_path(conf, during["id"])
    db = path / "unit.db"
    position = during["position"]
    # The copy is the region at exactly its position: every change up to it, none after,
    # and one object per object-creating change.
    (last,), = db_rows(db, "SELECT max(seq) FROM changes")
    assert last == position
    handles = {h for (h,) in db_rows(db, "SELECT handle FROM objects")}
    created = {h for (h,) in db_rows(db, "SELECT handle FROM changes WHERE op = 'put'")}
    assert handles == created and len(handles) == during["objects"]
    assert db_rows(db, "SELECT count(*) FROM changes WHERE op = 'delete'") == [(0,)]
    # ... and the live region agrees: the objects it held at that position are the backup's.
    live_db = load_config(conf).unit_dir("us-south-1") / "unit.db"
    live = {h for (h,) in db_rows(live_db, f"SELECT handle FROM objects WHERE handle <= {position}")}
    assert live == handles
    # The writers were running on both sides of the backup.
    assert 30 <= during["objects"] < written
    assert db_rows(live_db, "SELECT count(*) FROM objects") == [(written,)]
    assert db_rows(db, "PRAGMA journal_mode") == [("delete",)]        # one self-contained file
    assert not list(path.glob("unit.db-*"))

    assert "SHA-256 ok, MAC ok" in cli(conf, "backup", "verify", during["id"]).stdout
    restore(conf, during["id"], "eu-de", tmp_path / "dr")
    units = json.loads(cli(tmp_path / "dr" / "hspkcs11.conf", "status", "--json").stdout)["units"]
    assert [u["zone"] for u in units] == ["eu-de-1", "eu-de-2"]
    assert {(u["objects"], u["tokens"], u["position"], u["lag"]) for u in units} == {(during["objects"], 1,
                                                                                      position, 0)}
    ends = [e for e in events(load_config(conf).region_dir) if e["event"] == "backup-end"]
    assert ends[-1]["outcome"] == "ok" and ends[-1]["position"] == position and ends[-1]["zone"] == "us-south-1"


# ---- integrity ----------------------------------------------------------------------------------

def test_a_tampered_or_truncated_backup_is_refused_by_verify_and_restore(tmp_path: Path,
                                                                       parts: dict[str, list[str]]) -> None:
    conf = source(tmp_path, parts)
    made = client(conf, 's.generate_key(KeyType.AES, 256, store=True, label="k"); print("ok")')
    assert made.stdout.strip() == "ok", made.stderr
    m = backup_now(conf)
    path = backup_path(conf, m["id"])
    db, manifest, mac = path / "unit.db", path / "manifest.json", path / "manifest.mac"
    originals = {p: p.read_bytes() for p in (db, manifest, mac)}
    middle = len(originals[db]) // 2

    def flipped(data: bytes, at: int) -> bytes:
        return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]

    def other_mac(text: bytes) -> bytes:
        at = len(b"hmac-sha256:")
        return text[:at] + (b"0" if text[at:at + 1] != b"0" else b"1") + text[at + 1:]

    altered = json.loads(originals[manifest])
    altered["objects"] += 1
    damages = {   # what is done, the words the refusal uses, whether restore can tell without the key
        "db byte flipped": (db, flipped(originals[db], middle), "tampered", True),
        "db truncated": (db, originals[db][:middle], "truncated", True),
        "manifest truncated": (manifest, originals[manifest][:40], "damaged", True),
        "manifest edited": (manifest, json.dumps(altered, indent=1, sort_keys=True).encode() + b"\n", "MAC",
                            False),
        "mac changed": (mac, other_mac(originals[mac]), "MAC", False),
    }
    target = tmp_path / "dr"
    for name, (victim, data, words, restore_refuses) in damages.items():
        victim.write_bytes(data)
        refused = one_line_error(cli(conf, "backup", "verify", m["id"], check=False))
        assert words in refused and m["id"] in refused, (name, refused)
        if restore_refuses:
            again = one_line_error(restore(conf, m["id"], "eu-de", target, check=False))
            assert words in again, (name, again)
            assert not target.exists(), f"{name}: restore wrote something"
        victim.write_bytes(originals[victim])
    assert "MAC ok" in cli(conf, "backup", "verify", m["id"]).stdout
    verdicts = [e["outcome"] for e in events(load_config(conf).region_dir) if e["event"] == "backup-verify"]
    assert verdicts == ["refused"] * len(damages) + ["ok"]


def test_a_manifest_altered_to_match_a_tampered_db_is_caught_when_the_key_is_loaded(
        tmp_path: Path, parts: dict[str, list[str]]) -> None:
    conf = source(tmp_path, parts)
    m = backup_now(conf)
    path = backup_path(conf, m["id"])
    # The attacker changes the store and fixes the manifest's digest; only the MAC, under
    # a key they do not have, can tell.
    db = sqlite3.connect(path / "unit.db")
    db.execute("UPDATE tokens SET label = ?", (b"evil".ljust(32),))
    db.commit()
    db.close()
    manifest = json.loads((path / "manifest.json").read_bytes())
    data = (path / "unit.db").read_bytes()
    manifest.update(db_sha256=hashlib.sha256(data).hexdigest(), db_size=len(data))
    (path / "manifest.json").write_bytes(json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n")

    assert "MAC" in one_line_error(cli(conf, "backup", "verify", m["id"], check=False))
    restore(conf, m["id"], "eu-de", tmp_path / "dr")                # its digest matches: restore cannot tell
    dr = tmp_path / "dr" / "hspkcs11.conf"
    refused = one_line_error(cli(dr, "masterkey", "load", *parts["right"], check=False))
    assert "fails its MAC" in refused and "tampered" in refused and m["mkvp"] in refused
    assert not list((tmp_path / "dr").rglob("registers.json"))     # nothing loaded
    checks = [e for e in events(load_config(dr).region_dir) if e["event"] == "restore-key-check"]
    assert [(e["outcome"], e["reason"]) for e in checks] == [("refused", "backup MAC mismatch")]


# ---- restore and the master key ----------------------------------------------------------------

BEFORE = """
from pkcs11.util.ec import encode_named_curve_parameters, encode_ec_public_key
from pkcs11.util.rsa import encode_rsa_public_key
aes = s.generate_key(KeyType.AES, 256, store=True, label="aes")
iv = bytes(16)
ct = aes.encrypt(b"made before the backup", mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv)
rpub, rpriv = s.generate_keypair(KeyType.RSA, 2048, store=True, label="rsa")
rct = rpub.encrypt(b"rsa secret", mechanism=Mechanism.RSA_PKCS_OAEP)
epub, epriv = s.generate_keypair(KeyType.EC, store=True, label="ec",
                                 public_template={A.EC_PARAMS: encode_named_curve_parameters("secp256r1")})
plain = s.generate_key(KeyType.AES, 256, store=True, label="plain",
                       template={A.SENSITIVE: False, A.EXTRACTABLE: True})
print(ct.hex(), rct.hex(), encode_rsa_public_key(rpub).hex(), encode_ec_public_key(epub).hex(),
      plain[A.VALUE].hex())
"""

AFTER = """
import json
from pkcs11.util.ec import encode_ecdsa_signature
ct, rct = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
objects = len(list(s.get_objects()))
try:
    rsa = s.get_key(label="rsa", object_class=ObjectClass.PRIVATE_KEY)
    out = {"aes": s.get_key(label="aes").decrypt(ct, mechanism=Mechanism.AES_CBC_PAD,
                                                 mechanism_param=bytes(16)).decode(),
           "rsa": rsa.decrypt(rct, mechanism=Mechanism.RSA_PKCS_OAEP).decode(),
           "rsa_sig": rsa.sign(b"after", mechanism=Mechanism.SHA256_RSA_PKCS).hex(),
           "ec_sig": encode_ecdsa_signature(s.get_key(label="ec", object_class=ObjectClass.PRIVATE_KEY).sign(
               b"after", mechanism=Mechanism.ECDSA_SHA256)).hex()}
    used = 0                     # every secret and private key of the token, used once
    for k in s.get_objects({A.CLASS: ObjectClass.SECRET_KEY}):
        assert k.decrypt(k.encrypt(bytes(16), mechanism=Mechanism.AES_ECB), mechanism=Mechanism.AES_ECB) == bytes(16)
        used += 1
    for k in s.get_objects({A.CLASS: ObjectClass.PRIVATE_KEY}):
        k.sign(b"x", mechanism=Mechanism.ECDSA_SHA256 if k.key_type == KeyType.EC else Mechanism.SHA256_RSA_PKCS)
        used += 1
    out["used"] = used
except pkcs11.exceptions.DeviceError:
    out = {"error": "DeviceError"}
out.update(tokens=[t.label for t in lib.get_tokens() if t.label], objects=objects)
print(json.dumps(out))
"""


def test_restore_in_another_region_needs_the_same_master_key(tmp_path: Path, parts: dict[str, list[str]]) -> None:
    conf = source(tmp_path, parts)
    before = client(conf, BEFORE)
    assert before.returncode == 0, before.stderr
    ct, rct, rsa_der, ec_der, plain = before.stdout.split()
    m = backup_now(conf)
    right, wrong = mk.mkvp(key_of(parts["right"])), mk.mkvp(key_of(parts["wrong"]))
    assert m["mkvp"] == right and m["objects"] == 6 and m["tokens"] == 1

    out = restore(conf, m["id"], "eu-de", tmp_path / "dr").stdout
    dr = tmp_path / "dr" / "hspkcs11.conf"
    assert f"export HSPKCS11_CONF={dr}" in out and right in out and "masterkey load" in out
    new = load_config(dr)
    assert (new.region, new.zones, new.data_dir) == ("eu-de", ("eu-de-1", "eu-de-2"), tmp_path / "dr")
    for zone in new.zones:
        meta = dict(db_rows(new.unit_dir(zone) / "unit.db", "SELECT k, v FROM meta"))
        assert meta == {"format": "2", "region": "eu-de", "zone": zone, "origin": "us-south"}
        assert not (new.unit_dir(zone) / "registers.json").exists()
    recorded = json.loads((new.region_dir / "restored-from.json").read_text())
    assert recorded["manifest"].encode() == (backup_path(conf, m["id"]) / "manifest.json").read_bytes()
    assert recorded["mac"] in (backup_path(conf, m["id"]) / "manifest.mac").read_text()

    # No master key: the token and its objects are there, every key use is refused.
    refused_use = client(dr, AFTER, ct, rct)
    assert json.loads(refused_use.stdout) == {"error": "DeviceError", "tokens": ["app"], "objects": 6}, \
        refused_use.stderr
    log = (tmp_path / "dr" / "hspkcs11.log").read_text()
    assert f"sealed under master key {right}, which is not loaded" in log and "masterkey load" in log

    # The wrong master key: refused, named, nothing changed.
    refused = one_line_error(cli(dr, "masterkey", "load", *parts["wrong"], check=False))
    assert f"sealed under master key {right}" in refused and wrong in refused and "nothing was changed" in refused
    assert not list((tmp_path / "dr").rglob("registers.json"))
    assert cli(dr, "masterkey", "status").stdout.count("current empty -; new empty -") == 2

    # The right one: the MAC checks out and every key made before the backup works.
    loaded = cli(dr, "masterkey", "load", *parts["right"]).stdout
    assert f"MAC verified under master key {right}" in loaded
    cli(dr, "masterkey", "commit")
    cli(dr, "masterkey", "activate")
    after = client(dr, AFTER, ct, rct)
    assert after.returncode == 0, after.stderr
    got = json.loads(after.stdout)
    assert (got["aes"], got["rsa"], got["used"], got["objects"]) == ("made before the backup", "rsa secret", 4, 6)
    # Signatures by the restored private keys verify under the public keys read before the backup.
    serialization.load_der_public_key(bytes.fromhex(rsa_der)).verify(
        bytes.fromhex(got["rsa_sig"]), b"after", padding.PKCS1v15(), hashes.SHA256())
    serialization.load_der_public_key(bytes.fromhex(ec_der)).verify(
        bytes.fromhex(got["ec_sig"]), b"after", ec.ECDSA(hashes.SHA256()))
    # New keys in the restored region work in another process too (same blob binding).
    made = client(dr, 's.generate_key(KeyType.AES, 128, store=True, label="new"); print("ok")')
    assert made.stdout.strip() == "ok", made.stderr
    use = client(dr, 'k = s.get_key(label="new"); print(len(k.encrypt(bytes(16), mechanism=Mechanism.AES_ECB)))')
    assert use.stdout.strip() == "16", use.stderr

    # No plaintext key byte in the backup or the restored units.
    secret = bytes.fromhex(plain)
    for path in [*backup_path(conf, m["id"]).iterdir(), *(tmp_path / "dr").rglob("*")]:
        if path.is_file():
            assert secret not in path.read_bytes() and plain.encode() not in path.read_bytes(), path
    steps = [(e["event"], e.get("outcome")) for e in events(new.region_dir)]
    assert steps[:4] == [("restore-start", "started"), ("restore-end", "ok"), ("restore-key-check", "refused"),
                         ("restore-key-check", "ok")]
    assert ("masterkey-activate", "ok") in steps


def test_restore_over_live_data_is_refused_unless_forced(tmp_path: Path, parts: dict[str, list[str]]) -> None:
    conf = source(tmp_path, parts)
    made = client(conf, 's.generate_key(KeyType.AES, 128, store=True, label="old"); print("ok")')
    assert made.stdout.strip() == "ok", made.stderr
    m = backup_now(conf)
    late = client(conf, 's.generate_key(KeyType.AES, 128, store=True, label="late"); print("ok")')
    assert late.stdout.strip() == "ok", late.stderr
    cfg = load_config(conf)

    def digests() -> list[str]:
        return [u.store.content_digest() for u in Region(cfg).units()]

    live = digests()
    refused = one_line_error(restore(conf, m["id"], "us-south", check=False))
    assert "live data" in refused and "--force" in refused and "1 token(s), 2 object(s)" in refused
    assert digests() == live
    assert all((cfg.unit_dir(z) / "registers.json").exists() for z in cfg.zones)
    assert not (cfg.region_dir / "restored-from.json").exists()

    forced = restore(conf, m["id"], "us-south", None, "--force", "--yes").stdout
    assert "replaced the live data of us-south-1, us-south-2" in forced
    assert digests() != live
    units = json.loads(cli(conf, "status", "--json").stdout)["units"]
    assert {(u["objects"], u["current_state"], u["position"], u["lag"]) for u in units} == \
        {(m["objects"], "empty", m["position"], 0)}
    for step in (["load", *parts["right"]], ["commit"], ["activate"]):
        cli(conf, "masterkey", *step)
    used = client(conf, """
        print(len(s.get_key(label="old").encrypt(bytes(16), mechanism=Mechanism.AES_ECB)),
              len(list(s.get_objects({A.LABEL: "late"}))))
        s.generate_key(KeyType.AES, 128, store=True, label="after")
        print(len(list(s.get_objects({A.CLASS: ObjectClass.SECRET_KEY}))))
    """)
    assert used.stdout.split() == ["16", "0", "2"], used.stderr
    outcomes = [(e["event"], e["outcome"]) for e in events(cfg.region_dir) if e["event"].startswith("restore-")]
    assert outcomes[:4] == [("restore-start", "started"), ("restore-end", "refused"),
                            ("restore-start", "started"), ("restore-end", "ok")]

    # Units that exist but hold nothing (a region just initialised) are no live data.
    (tmp_path / "eu").mkdir()
    empty = make_region(tmp_path / "eu", name="eu-de", zones="eu-de-1, eu-de-2", master_key=None)
    restore(conf, m["id"], "eu-de", load_config(empty).data_dir)
    assert json.loads(cli(empty, "status", "--json").stdout)["units"][0]["objects"] == m["objects"]


# ---- retention, listing, audit, schedule ----------------------------------------------------------

def test_retention_keeps_the_last_n_backups_of_the_region(tmp_path: Path, parts: dict[str, list[str]]) -> None:
    vault = tmp_path / "vault"
    (tmp_path / "south").mkdir()
    (tmp_path / "east").mkdir()
    conf = source(tmp_path / "south", parts, extra=f"backup.keep = 2\nbackup.dir = {vault}\n")
    east = make_region(tmp_path / "east", name="us-east", zones="us-east-1, us-east-2",
                       extra=f"backup.keep = 1\nbackup.dir = {vault}\n")
    other = backup_now(east)
    made = [backup_now(conf) for _ in range(3)]
    listed = json.loads(cli(conf, "backup", "list", "--json").stdout)
    assert [b["id"] for b in listed] == [made[1]["id"], made[2]["id"]]
    assert sorted(p.name for p in vault.iterdir()) == sorted([other["id"], made[1]["id"], made[2]["id"]])
    fourth = cli(conf, "backup", "now").stdout
    assert f"removed {made[1]['id']} (backup.keep = 2)" in fourth
    text = cli(conf, "backup", "list").stdout
    assert made[2]["id"] in text and "keep 2" in text and made[1]["id"] not in text and other["id"] not in text
    assert other["id"] in cli(conf, "backup", "list", "--all").stdout
    assert len([p for p in vault.iterdir()]) == 3
    for path in [vault, *vault.rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path
    ends = [e for e in events(load_config(conf).region_dir) if e["event"] == "backup-end"]
    assert [e["removed"] for e in ends] == [[], [], [made[0]["id"]], [made[1]["id"]]]


def test_backup_steps_and_refusals_are_audited(tmp_path: Path) -> None:
    conf = make_region(tmp_path, zones=ZONES, master_key=None)
    cfg = load_config(conf)
    no_key = one_line_error(cli(conf, "backup", "now", check=False))
    assert "no current master key" in no_key and "masterkey load" in no_key
    root = bk.backup_root(cfg)
    assert not root.exists() or not any(root.iterdir())
    for unit in Region(cfg).units():
        unit.registers.load(bytes(range(32)))
        unit.registers.commit()
        unit.registers.activate()
    for zone in cfg.zones:
        cli(conf, "zone", "down", zone)
    down = one_line_error(cli(conf, "backup", "now", check=False))
    assert "no crypto unit" in down or "no healthy" in down
    cli(conf, "zone", "up", "us-south-2")
    m = backup_now(conf)
    log = [e for e in events(cfg.region_dir) if e["event"].startswith("backup-")]
    assert [(e["event"], e["outcome"]) for e in log] == [("backup-start", "started"), ("backup-end", "failed")] * 2 \
        + [("backup-start", "started"), ("backup-end", "ok")]
    assert "no current master key" in log[1]["error"] and "down" in log[3]["error"]
    assert log[-1]["zone"] == "us-south-2" and log[-1]["backup"] == m["id"]
    assert all(e["user"] and e["time"] and e["region"] == "us-south" for e in log)
    assert [p.name for p in root.iterdir()] == [m["id"]]          # no partial backup left


def test_backup_schedule_prints_a_cron_line_and_a_systemd_timer_that_work(tmp_path: Path,
                                                                          parts: dict[str, list[str]]) -> None:
    conf = source(tmp_path, parts)
    out = cli(conf, "backup", "schedule", "--at", "02:30").stdout
    cron = re.search(r"^30 2 \* \* \* HSPKCS11_CONF=(\S+) (\S+) backup now --quiet$", out, re.M)
    assert cron, out
    assert cron.group(1) == str(conf) and os.path.isabs(cron.group(2)) and os.access(cron.group(2), os.X_OK)
    assert cron.group(2).endswith("hspkcs11-util")
    service = re.search(r'^Environment="HSPKCS11_CONF=(.+)"$', out, re.M)
    exec_start = re.search(r"^ExecStart=(.+)$", out, re.M)
    assert service and service.group(1) == str(conf) and exec_start
    assert "OnCalendar=*-*-* 02:30:00" in out and "WantedBy=timers.target" in out and "Type=oneshot" in out

    # What the timer runs makes a backup.
    ran = subprocess.run(shlex.split(exec_start.group(1)), capture_output=True, text=True,
                         env={**os.environ, "HSPKCS11_CONF": service.group(1)})
    assert ran.returncode == 0, ran.stderr
    assert len(json.loads(cli(conf, "backup", "list", "--json").stdout)) == 1

    xdg = tmp_path / "xdg"
    installed = subprocess.run([sys.executable, "-m", "hspkcs11.cli", "backup", "schedule", "--install"],
                               capture_output=True, text=True, env={**env(conf), "XDG_CONFIG_HOME": str(xdg)})
    assert installed.returncode == 0, installed.stderr
    units = xdg / "systemd" / "user"
    assert sorted(p.name for p in units.iterdir()) == ["hspkcs11-backup-us-south.service",
                                                       "hspkcs11-backup-us-south.timer"]
    assert f"ExecStart={exec_start.group(1)}" in (units / "hspkcs11-backup-us-south.service").read_text()
    assert "systemctl --user enable --now hspkcs11-backup-us-south.timer" in installed.stdout


# ---- the origin row: blobs stay usable after restore, confinement unchanged ---------------------

def test_a_store_keeps_the_origin_of_its_blobs(tmp_path: Path, parts: dict[str, list[str]]) -> None:
    key = key_of(parts["right"])
    unit = CryptoUnit(tmp_path / "u", "us-south", "z1", create=True)
    for step in (lambda: unit.registers.load(key), unit.registers.commit, unit.registers.activate):
        step()
    blob, _ = unit.seal(b"U" * 16, b"payload")
    assert dict(db_rows(tmp_path / "u" / "unit.db", "SELECT k, v FROM meta"))["origin"] == "us-south"
    # A store from before the origin row: its region is its origin.
    unit.store.close()
    db = sqlite3.connect(tmp_path / "u" / "unit.db")
    db.execute("DELETE FROM meta WHERE k = 'origin'")
    db.commit()
    db.close()
    again = CryptoUnit(tmp_path / "u", "us-south", "z1")
    assert again.store.origin == "us-south" and again.unseal(b"U" * 16, blob) == b"payload"


def test_a_unit_added_to_a_restored_region_takes_its_origin(tmp_path: Path, parts: dict[str, list[str]]) -> None:
    conf = source(tmp_path, parts)
    m = backup_now(conf)
    restored = bk.restore(load_config(conf), m["id"], "eu-de", tmp_path / "dr")
    grown = restored.conf_path.read_text().replace("zones = eu-de-1, eu-de-2", "zones = eu-de-1, eu-de-2, eu-de-3")
    restored.conf_path.write_text(grown)
    units = Region(load_config(restored.conf_path)).init()
    assert [(u.zone, u.store.origin) for u in units] == [("eu-de-1", "us-south"), ("eu-de-2", "us-south"),
                                                         ("eu-de-3", "us-south")]


def test_a_backup_is_refused_while_keys_are_sealed_under_two_master_keys(tmp_path: Path,
                                                                         parts: dict[str, list[str]]) -> None:
    """Mid-rotation a restore would need both keys: the backup waits for the rotation."""
    from hspkcs11.hsm.replica import RegionService

    conf = source(tmp_path, parts)
    made = client(conf, 's.generate_key(KeyType.AES, 128, store=True, label="k"); print("ok")')
    assert made.stdout.strip() == "ok", made.stderr
    cfg = load_config(conf)
    other = mk.mkvp(key_of(parts["wrong"]))
    for zone in cfg.zones:       # what a half-done re-wrap leaves: one blob under the other key
        db = sqlite3.connect(cfg.unit_dir(zone) / "unit.db")
        db.execute("UPDATE objects SET mkvp = ? WHERE sealed IS NOT NULL", (other,))
        db.commit()
        db.close()
    with pytest.raises(bk.BackupError, match=f"1 under {other}.*masterkey rotate"):
        bk.make_backup(RegionService(cfg))
    root = bk.backup_root(cfg)
    assert not root.exists() or not any(root.iterdir())
    end = [e for e in events(cfg.region_dir) if e["event"] == "backup-end"][-1]
    assert end["outcome"] == "failed" and "rotation" in end["error"]
