"""bench/ scripts run (tiny counts): they check nothing about speed, only that they work."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_failover_bench_runs_and_loses_no_call() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "failover.py"), "--objects", "30", "--calls", "60",
                          "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert figures["failover_sign_failed_calls"] == 0 and figures["failover_find_failed_calls"] == 0
    assert figures["catch_up_objects"] == 30


COMPARED = ("aes_gcm_encrypt_1k", "aes_cbc_pad_encrypt_1k", "hmac_sha256_sign_1k", "sha256_digest_1k",
            "ecdsa_p256_sign", "ecdsa_p256_verify", "rsa2048_sign", "rsa2048_verify", "aes_key_wrap",
            "aes_key_unwrap", "session_aes_keygen", "token_aes_keygen", "get_attribute_label",
            "open_close_session")


def test_compare_bench_runs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "compare.py"), "--quick", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    ops = report["operations"]
    finds = [name for name in ops if name.startswith("find_by_id_")]
    assert finds, ops.keys()
    assert set(ops) == set(COMPARED) | set(finds)
    for section in ("cdriver", "scale", "rotation", "failover"):     # the one command runs them all
        assert report[section], section
    assert report["rotation"]["keys"] == 500 and report["failover"]["catch_up_objects"] == 30
    assert all(r.get("ops_per_s", 0) > 0 for m in report["cdriver"].values() for r in m.values())
    for name, op in ops.items():
        for module in ("hspkcs11", "softhsm"):
            assert op[module]["ops_per_s"] > 0 and op[module]["calls"] >= 3, (name, module, op)
        assert op["ratio"] == round(op["hspkcs11"]["ops_per_s"] / op["softhsm"]["ops_per_s"], 3) > 0, (name, op)


def test_durability_bench_runs() -> None:
    """bench/durability.py works (its figures belong in the README, not in a test)."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(root / "bench" / "durability.py"), "--keys", "3", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert {"full_ms", "normal_ms", "softhsm_ms"} <= set(report) and report["full_ms"] > 0
