"""python-pkcs11: the README's python examples that load the module run as written, in a
new process, on a region and token ("app", user PIN 1234, as the README makes them)
made by the test. (The rest of the suite uses python-pkcs11 throughout; the pytest
plugin's README example is run by tests/test_pytest_plugin.py.)"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SO_PIN, USER_PIN, Module, make_region, util
from clientkit import run

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_examples() -> list[str]:
    """Every ```python block of README.md that loads the module with pkcs11.lib()."""
    return [b for b in BLOCK.findall((ROOT / "README.md").read_text()) if "pkcs11.lib(" in b]


def test_the_readme_has_a_python_pkcs11_example() -> None:
    assert readme_examples(), "README.md lost its python-pkcs11 example"


@pytest.mark.parametrize("index", range(len(readme_examples())))
def test_readme_python_example_runs_as_written(hs: Module, tmp_path: Path, index: int) -> None:
    (tmp_path / "region").mkdir()
    conf = make_region(tmp_path / "region")
    env = {"HSPKCS11_CONF": str(conf)}
    run(util() + ["init-token", "--free", "--label", "app", "--so-pin", SO_PIN, "--pin", USER_PIN], hs, env=env)
    example = tmp_path / "example.py"
    example.write_text(readme_examples()[index])
    run([sys.executable, str(example)], hs, env=env, cwd=tmp_path)
    # What it stored is on the token, seen from another process.
    check = ("import pkcs11, hspkcs11\n"
             "lib = pkcs11.lib(str(hspkcs11.module_path()))\n"
             "with lib.get_token(token_label='app').open(user_pin='1234') as s:\n"
             "    print(sorted(o[pkcs11.Attribute.LABEL] for o in s.get_objects()))\n")
    out = run([sys.executable, "-c", check], hs, env=env).stdout
    stored = re.findall(r"store=True[^)]*label=\"([^\"]+)\"", readme_examples()[index])
    assert stored, "the example stores no labelled object: update this check"
    for label in stored:
        assert repr(label) in out, out
