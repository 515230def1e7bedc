"""The call trace and C_Initialize's failure messages (hspkcs11 only)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import make_region, util

CLIENT = """
import pkcs11, hspkcs11
from pkcs11 import KeyType, Mechanism, Attribute as A
lib = pkcs11.lib(str(hspkcs11.module_path()))
with lib.get_token(token_label="trace").open(user_pin="1234", rw=True) as s:
    k = s.generate_key(KeyType.AES, 128, store=True, label="traced", template={A.SENSITIVE: False, A.EXTRACTABLE: True})
    print(k[A.VALUE].hex())
    k.encrypt(b"0" * 16, mechanism=Mechanism.AES_ECB)
"""


def run_client(conf: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, "HSPKCS11_CONF": str(conf)},
                          capture_output=True, text=True)


def test_debug_trace_names_calls_and_codes_but_never_secrets(tmp_path: Path) -> None:
    conf = make_region(tmp_path, extra="")
    conf.write_text(conf.read_text().replace("log.level = INFO", "log.level = DEBUG"))
    env = {**os.environ, "HSPKCS11_CONF": str(conf), "HSPKCS11_SO_PIN": "12345678", "HSPKCS11_PIN": "1234"}
    subprocess.run(util() + ["init-token", "--free", "--label", "trace"], env=env, check=True, capture_output=True)
    out = run_client(conf, CLIENT)
    assert out.returncode == 0, out.stderr
    value = out.stdout.strip()
    trace = (tmp_path / "hspkcs11.log").read_text()
    assert "C_Login(h=" in trace and "user=CKU_USER, pin=***" in trace and "-> CKR_OK (" in trace
    assert "C_GenerateKey(" in trace and "mech=CKM_AES_KEY_GEN" in trace and "CKA_VALUE_LEN" in trace
    assert "C_EncryptInit(" in trace and "mech=CKM_AES_ECB" in trace and "C_Encrypt(" in trace
    assert "data=<16 bytes>" in trace
    assert "1234" not in trace.replace("12345678", "")      # the user PIN, in any form
    assert value not in trace and bytes.fromhex(value).hex().upper() not in trace


def test_failed_initialize_says_why_and_what_to_do(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("zones = only-one\n")
    out = run_client(bad, "import pkcs11, hspkcs11; pkcs11.lib(str(hspkcs11.module_path()))")
    assert out.returncode != 0 and "bad.conf:1" in out.stderr and "2 or 3" in out.stderr

    missing = tmp_path / "none.conf"
    missing.write_text(f"data.dir = {tmp_path / 'nowhere'}\nzones = a, b\nlog.file = {tmp_path / 'none.log'}\n")
    out = run_client(missing, "import pkcs11, hspkcs11; pkcs11.lib(str(hspkcs11.module_path()))")
    assert out.returncode != 0
    assert "region init" in (tmp_path / "none.log").read_text()


def test_a_region_without_master_key_warns_at_initialize(tmp_path: Path) -> None:
    conf = make_region(tmp_path, master_key=None)
    out = run_client(conf, "import pkcs11, hspkcs11; pkcs11.lib(str(hspkcs11.module_path())); print('loaded')")
    assert out.stdout.strip() == "loaded"
    log = (tmp_path / "hspkcs11.log").read_text()
    assert "no current master key" in log and "masterkey load" in log


def test_tracing_every_call_of_a_c_client_changes_no_answer(tmp_path: Path) -> None:
    """A trace that raised once turned errors into a silent CKR_OK (cffi returns 0 from a
    callback that raises): pkcs11-tool's self-test runs under DEBUG and must pass."""
    import hspkcs11
    from conftest import which
    conf = make_region(tmp_path)
    conf.write_text(conf.read_text().replace("log.level = INFO", "log.level = DEBUG"))
    env = {**os.environ, "HSPKCS11_CONF": str(conf), "HSPKCS11_SO_PIN": "12345678", "HSPKCS11_PIN": "1234"}
    subprocess.run(util() + ["init-token", "--free", "--label", "traced"], env=env, check=True, capture_output=True)
    tool = [which("pkcs11-tool"), "--module", str(hspkcs11.module_path()), "--token-label", "traced",
            "--login", "--pin", "1234"]
    subprocess.run(tool + ["--keypairgen", "--key-type", "EC:prime256v1", "--id", "01"], env=env, check=True,
                   capture_output=True)
    out = subprocess.run(tool + ["--test", "-M"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    trace = (tmp_path / "hspkcs11.log").read_text()
    assert "C_GetMechanismInfo(slot=" in trace and "mech=CKM_" in trace
    assert "tracing" not in trace and "Traceback" not in trace
