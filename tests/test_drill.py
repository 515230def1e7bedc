"""The disaster-recovery drill runs the whole runbook and reports its figures."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import util


def test_the_drill_passes_and_reports_recovery_point_and_time(tmp_path: Path) -> None:
    out = subprocess.run(util() + ["drill", "--dir", str(tmp_path / "drill"), "--json"], capture_output=True,
                         text=True, timeout=600, env={**os.environ})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["passed"] is True
    assert [s["name"] for s in report["steps"]] == [
        "build a region", "lose a zone, keep working", "back up", "keep writing", "lose the region",
        "restore elsewhere", "reload the master key", "use every key"]
    assert all(s["ok"] for s in report["steps"])
    # 20 AES keys + 5 made during the outage + one RSA and one EC private key
    assert report["keys_verified"] == 27
    assert report["lost_objects"] == 7 and report["newest_position"] > report["backup_position"]
    assert report["recovery_time_s"] > 0
    assert "drill-east-1" in next(s["detail"] for s in report["steps"] if s["name"] == "restore elsewhere")


def test_the_drill_refuses_a_used_directory(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    out = subprocess.run(util() + ["drill", "--dir", str(tmp_path / "busy")], capture_output=True, text=True)
    assert out.returncode == 1 and "not empty" in out.stderr
