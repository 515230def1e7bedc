"""bench/cdriver.c (issue 7's C driver) builds and runs every operation against both
modules (tiny counts: it checks that it works, never how fast)."""
from __future__ import annotations

import sys
from pathlib import Path

from conftest import ROOT, USER_PIN

sys.path.insert(0, str(ROOT / "bench"))
import cdriver  # noqa: E402
from compare import prepare  # noqa: E402


def test_cdriver_runs_every_operation_on_both_modules(tmp_path: Path) -> None:
    modules = prepare(tmp_path)
    binary = cdriver.build(tmp_path)
    for module, (path, env) in modules.items():
        results = cdriver.run(binary, path, env, "bench", USER_PIN, 0.02)
        assert set(results) == set(cdriver.OPERATIONS), (module, results)
        for name, r in results.items():
            assert "error" not in r, (module, name, r)
            assert r["ops_per_s"] > 0 and r["calls"] > 0 and r["seconds"] > 0, (module, name, r)
