"""Suites that others wrote for SoftHSM2, run against both modules.

python-pkcs11's own test suite (fetched from PyPI by scripts/setup.sh) runs once
against SoftHSM2 and once against hspkcs11 presented under SoftHSM2's file name, so
that its SoftHSM2-specific tests and expectations apply to us as well. Every test that
passes on SoftHSM2 must pass on hspkcs11.
"""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ROOT, SO_PIN, USER_PIN, Module, load_module

VERSION = importlib.metadata.version("python-pkcs11")
SUITE = ROOT / ".venv" / "external" / f"python-pkcs11-{VERSION}"


def run_suite(module_path: str, label: str, env: dict[str, str], workdir: Path) -> dict[str, str]:
    """Outcome per test id: passed, failed, error or skipped."""
    if not (SUITE / "tests" / "__init__.py").is_file():
        raise RuntimeError(f"{SUITE} is missing: run scripts/test.sh, which fetches it")
    report = workdir / "report.xml"
    full_env = {**os.environ, **env, "PKCS11_MODULE": module_path, "PKCS11_TOKEN_LABEL": label,
                "PKCS11_TOKEN_PIN": USER_PIN, "PKCS11_TOKEN_SO_PIN": SO_PIN}
    run = subprocess.run([sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider",
                          "-W", "ignore::DeprecationWarning", f"--junitxml={report}"],
                         cwd=SUITE, env=full_env, capture_output=True, text=True, timeout=900)
    assert report.is_file(), f"the suite wrote no report (exit {run.returncode}): {run.stdout[-2000:]}{run.stderr[-2000:]}"
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        kinds = {child.tag for child in case}
        outcome = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = outcome
    return outcomes


@pytest.fixture(scope="module")
def outcomes(hs_conf: Path, softhsm_conf: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    results = {}
    for name in ("softhsm", "hspkcs11"):
        module: Module = load_module(name, hs_conf, softhsm_conf)
        label = f"ext-{name}"
        module.init_token(label)
        workdir = tmp_path_factory.mktemp(f"ext-{name}")
        path = module.path
        if name == "hspkcs11":
            alias = workdir / "libsofthsm2.so"        # the suite keys its SoftHSM2 tests on the name
            alias.symlink_to(module.path)
            path = str(alias)
        results[name] = run_suite(path, label, module.env, workdir)
    return results


def test_the_suite_ran_on_both(outcomes: dict[str, dict[str, str]]) -> None:
    for name, result in outcomes.items():
        assert sum(o == "passed" for o in result.values()) > 100, f"{name}: {result}"


def test_whatever_passes_on_softhsm_passes_on_hspkcs11(outcomes: dict[str, dict[str, str]]) -> None:
    reference, ours = outcomes["softhsm"], outcomes["hspkcs11"]
    regressions = sorted(t for t, o in reference.items() if o == "passed" and ours.get(t) != "passed")
    assert regressions == [], f"pass on SoftHSM2, not on hspkcs11: {regressions}"
