"""The crypto unit's master key (hspkcs11 only): registers, parts, MKVP, sealing at rest."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import SO_PIN, USER_PIN, make_region, util
from hspkcs11.config import load as load_config
from hspkcs11.consts import CKR
from hspkcs11.errors import P11Error
from hspkcs11.hsm import masterkey as mk
from hspkcs11.hsm.region import Region
from hspkcs11.hsm.store import ObjectRow, Store, StoreError, row_digest
from hspkcs11.hsm.unit import CryptoUnit

PASSWORD = "correct horse battery"


def cli(conf: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HSPKCS11_CONF": str(conf), "HSPKCS11_KEYPART_PASSWORD": PASSWORD,
           "HSPKCS11_SO_PIN": SO_PIN, "HSPKCS11_PIN": USER_PIN}
    return subprocess.run(util() + list(args), env=env, capture_output=True, text=True, check=check)


def client(conf: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run python-pkcs11 code in a fresh process that loads the module with `conf`."""
    prelude = textwrap.dedent("""
        import pkcs11, hspkcs11
        from pkcs11 import Attribute as A, KeyType, ObjectClass, Mechanism
        lib = pkcs11.lib(str(hspkcs11.module_path()))
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, "HSPKCS11_CONF": str(conf)})


def test_key_use_is_refused_until_a_master_key_is_current(tmp_path: Path) -> None:
    conf = make_region(tmp_path, master_key=None)
    cli(conf, "init-token", "--free", "--label", "mk")
    refused = client(conf, """
        with lib.get_token(token_label="mk").open(user_pin="1234", rw=True) as s:
            try:
                s.generate_key(KeyType.AES, 128)
            except pkcs11.exceptions.DeviceError:
                print("refused")
    """)
    assert refused.stdout.strip() == "refused", refused.stderr
    log = (tmp_path / "hspkcs11.log").read_text()
    assert "no current master key" in log and "masterkey load" in log

    cli(conf, "masterkey", "part-new", str(tmp_path / "p1"))
    cli(conf, "masterkey", "part-new", str(tmp_path / "p2"))
    cli(conf, "masterkey", "load", str(tmp_path / "p1"), str(tmp_path / "p2"))
    cli(conf, "masterkey", "commit")
    cli(conf, "masterkey", "activate")
    works = client(conf, """
        with lib.get_token(token_label="mk").open(user_pin="1234", rw=True) as s:
            k = s.generate_key(KeyType.AES, 128, store=True)
            print(len(k.encrypt(b"0" * 16, mechanism=Mechanism.AES_ECB)))
    """)
    assert works.stdout.strip() == "16", works.stderr


def test_parts_combine_into_the_mkvp_every_unit_shows(tmp_path: Path) -> None:
    conf = make_region(tmp_path, master_key=None)
    for name in ("a", "b", "c"):
        cli(conf, "masterkey", "part-new", str(tmp_path / name))
    cli(conf, "masterkey", "load", *(str(tmp_path / n) for n in "abc"))
    key = mk.combine([mk.part_read(tmp_path / n, PASSWORD) for n in "abc"])
    status = cli(conf, "masterkey", "status").stdout
    assert status.count(f"new full-uncommitted {mk.mkvp(key)}") == 2   # both zones' units
    for unit in Region(load_config(conf)).units():
        assert unit.registers.read().new_mkvp == mk.mkvp(key)


def test_key_part_files_are_private_and_never_hold_the_part(tmp_path: Path) -> None:
    path = tmp_path / "part"
    mk.part_new(path, PASSWORD)
    assert path.stat().st_mode & 0o777 == 0o600
    part = mk.part_read(path, PASSWORD)
    assert part not in path.read_bytes()
    assert part.hex().encode() not in path.read_bytes()


@pytest.mark.parametrize("problem, args, message", [
    ("one part", ("p1",), "2 or 3 key parts"),
    ("same part twice", ("p1", "p1"), "the same key part was given twice"),
])
def test_load_refuses_bad_part_sets(tmp_path: Path, problem: str, args: tuple[str, ...], message: str) -> None:
    conf = make_region(tmp_path, master_key=None)
    cli(conf, "masterkey", "part-new", str(tmp_path / "p1"))
    result = cli(conf, "masterkey", "load", *(str(tmp_path / a) for a in args), check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_part_password_is_a_clear_error(tmp_path: Path) -> None:
    mk.part_new(tmp_path / "p", PASSWORD)
    with pytest.raises(mk.MasterKeyError, match="wrong password"):
        mk.part_read(tmp_path / "p", "not the password")


def test_register_transitions_follow_the_console_steps(tmp_path: Path) -> None:
    regs = mk.RegisterFile(tmp_path)
    with pytest.raises(mk.MasterKeyError, match="nothing to commit"):
        regs.commit()
    key = os.urandom(32)
    regs.load(key)
    with pytest.raises(mk.MasterKeyError, match="not committed"):
        regs.activate()
    with pytest.raises(mk.MasterKeyError, match="clear-new"):
        regs.load(os.urandom(32))
    regs.commit()
    current = regs.activate()
    assert current.current_state is mk.CurrentState.VALID and current.current_mkvp == mk.mkvp(key)
    assert current.new_state is mk.NewState.EMPTY
    assert key not in (tmp_path / "registers.json").read_bytes()


def test_activate_is_refused_while_keys_are_sealed_under_the_current_key(tmp_path: Path) -> None:
    conf = make_region(tmp_path)
    cli(conf, "init-token", "--free", "--label", "busy")
    made = client(conf, """
        with lib.get_token(token_label="busy").open(user_pin="1234", rw=True) as s:
            s.generate_key(KeyType.AES, 128, store=True)
            print("ok")
    """)
    assert made.stdout.strip() == "ok", made.stderr
    for unit in Region(load_config(conf)).units():
        unit.registers.load(os.urandom(32))
        unit.registers.commit()
    result = cli(conf, "masterkey", "activate", check=False)
    assert result.returncode == 1 and "masterkey rotate" in result.stderr


def test_no_plaintext_key_byte_reaches_the_data_directory(tmp_path: Path) -> None:
    conf = make_region(tmp_path)
    cli(conf, "init-token", "--free", "--label", "scan")
    made = client(conf, """
        from pkcs11.util.ec import encode_named_curve_parameters
        secrets = []
        with lib.get_token(token_label="scan").open(user_pin="1234", rw=True) as s:
            plain = {A.SENSITIVE: False, A.EXTRACTABLE: True}
            for kt, bits in ((KeyType.AES, 256), (KeyType.GENERIC_SECRET, 256), (KeyType.DES3, 192)):
                secrets.append(s.generate_key(kt, bits, store=True, template=plain)[A.VALUE])
            pub, priv = s.generate_keypair(KeyType.RSA, 2048, store=True, private_template=plain)
            secrets += [priv[A.PRIVATE_EXPONENT], priv[A.PRIME_1], priv[A.PRIME_2]]
            ecparams = encode_named_curve_parameters("secp256r1")
            pub, priv = s.generate_keypair(KeyType.EC, store=True, public_template={A.EC_PARAMS: ecparams},
                                           private_template=plain)
            secrets.append(priv[A.VALUE])
        print(" ".join(x.hex() for x in secrets))
    """)
    assert made.returncode == 0, made.stderr
    secrets = [bytes.fromhex(h) for h in made.stdout.split()]
    assert len(secrets) == 7 and all(len(x) >= 16 for x in secrets)
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") or p.name == "unit.db" for p in files)
    for path in files:
        content = path.read_bytes()
        for secret in secrets:
            assert secret not in content, f"key bytes found in {path}"
            assert secret.hex().encode() not in content, f"key hex found in {path}"


def test_data_files_are_private(tmp_path: Path) -> None:
    conf = make_region(tmp_path)
    cli(conf, "init-token", "--free", "--label", "perm")
    for path in (tmp_path / "data").rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} has mode {oct(mode)}"


def test_a_sealed_blob_only_opens_for_its_own_object(tmp_path: Path) -> None:
    conf = make_region(tmp_path)
    unit = Region(load_config(conf)).units()[0]
    blob, mkvp = unit.seal(b"A" * 16, b"secret payload")
    assert mkvp == unit.registers.read().current_mkvp
    assert unit.unseal(b"A" * 16, blob) == b"secret payload"
    with pytest.raises(P11Error) as err:
        unit.unseal(b"B" * 16, blob)
    assert err.value.rv == CKR.DEVICE_ERROR and "another object" in err.value.why
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(P11Error, match="integrity"):
        unit.unseal(b"A" * 16, tampered)


def test_a_swapped_blob_in_the_store_is_detected(tmp_path: Path) -> None:
    conf = make_region(tmp_path)
    cli(conf, "init-token", "--free", "--label", "swap")
    made = client(conf, """
        with lib.get_token(token_label="swap").open(user_pin="1234", rw=True) as s:
            for label in ("one", "two"):
                s.generate_key(KeyType.AES, 128, store=True, label=label)
        print("ok")
    """)
    assert made.stdout.strip() == "ok", made.stderr
    # A deliberate swap in every unit, digests recomputed: only the blob's binding can tell.
    for zone in load_config(conf).zones:
        db = sqlite3.connect(load_config(conf).unit_dir(zone) / "unit.db")
        (one,), (two,) = db.execute("SELECT sealed FROM objects ORDER BY handle").fetchall()
        db.execute("UPDATE objects SET sealed = ? WHERE label = ?", (two, b"one"))
        columns = "handle, serial, uid, class, key_type, private, label, ckaid, attrs, sealed, mkvp"
        values = db.execute(f"SELECT {columns} FROM objects WHERE label = ?", (b"one",)).fetchone()
        db.execute("UPDATE objects SET digest = ? WHERE label = ?", (row_digest(ObjectRow(*values)), b"one"))
        db.commit()
        db.close()
    used = client(conf, """
        with lib.get_token(token_label="swap").open(user_pin="1234") as s:
            k = s.get_key(label="one")
            try:
                k.encrypt(b"0" * 16, mechanism=Mechanism.AES_ECB)
            except pkcs11.exceptions.DeviceError:
                print("detected")
    """)
    assert used.stdout.strip() == "detected", used.stderr


def test_a_blob_made_in_another_region_is_refused(tmp_path: Path) -> None:
    south = CryptoUnit(tmp_path / "south", "us-south", "z1", create=True)
    europe = CryptoUnit(tmp_path / "europe", "eu-de", "z1", create=True)
    key = os.urandom(32)
    for unit in (south, europe):           # even under the same master key
        unit.registers.load(key)
        unit.registers.commit()
        unit.registers.activate()
    blob, _ = south.seal(b"U" * 16, b"payload")
    with pytest.raises(P11Error, match="another region"):
        europe.unseal(b"U" * 16, blob)


def test_a_store_of_another_region_is_refused(tmp_path: Path) -> None:
    unit = CryptoUnit(tmp_path / "u", "us-south", "z1", create=True)
    unit.store.close()
    with pytest.raises(StoreError, match="belongs to region 'us-south'"):
        Store(tmp_path / "u" / "unit.db", "eu-de", "z1")
