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
