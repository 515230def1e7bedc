"""bench/scale.py runs (tiny token sizes): it checks nothing about speed, only that it works."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

MEASURED = ("initialize_s", "login_s", "first_find_s", "startup_s")


def test_scale_bench_runs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "scale.py"), "--quick", "--softhsm-max", "20",
                          "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["settings"]["sizes"] == [20, 50]
    for module in ("hspkcs11", "softhsm"):
        figures = report["modules"][module]
        assert figures["idle"]["keys"] == 0 and figures["idle"]["memory"]["vm_rss_kib"] > 0
        assert figures["fill_keys_per_s"] > 0
    measured = [(n, m) for n in ("20", "50") for m in ("hspkcs11", "softhsm")
                if (n, m) != ("50", "softhsm")]
    for n, m in measured:
        r = report["sizes"][n][m]
        assert r["keys"] == int(n) and all(r[k] > 0 for k in MEASURED), (n, m, r)
        for kind in ("find_id", "find_label"):
            assert r[kind]["ops_per_s"] > 0 and r[kind]["calls"] >= 3, (n, m, kind, r)
        assert r["find_all_s"] >= 0
        for memory in (r["memory"], r["memory_all"]):
            assert memory["vm_hwm_kib"] >= memory["vm_rss_kib"] > 0
    # Above --softhsm-max SoftHSM2 is not filled, and says so.
    assert report["sizes"]["50"]["softhsm"] == {"skipped": "not measured (fill too slow)"}
    assert report["sizes"]["50"]["find_id_ratio"] is None
    assert report["sizes"]["20"]["find_id_ratio"] > 0
    assert set(report["targets"]) == {"startup_100k", "find_id_ratio_5k", "memory_100k", "memory_all_100k"}
    assert all(t["met"] is None for t in report["targets"].values())   # no such size in a quick run
