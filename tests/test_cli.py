"""hspkcs11-util: commands, one-line errors, exit codes, and the demo."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import make_region, util
from hspkcs11.config import load as load_config
from hspkcs11.hsm import audit
import hspkcs11


def run(conf: Path | None, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    if conf is not None:
        full["HSPKCS11_CONF"] = str(conf)
    return subprocess.run(util() + list(args), env=full, capture_output=True, text=True, timeout=300)


def test_module_path_is_the_built_module() -> None:
    out = run(None, "module-path")
    assert out.returncode == 0
    assert Path(out.stdout.strip()) == hspkcs11.module_path()
    assert hspkcs11.module_path().is_file()
    again = subprocess.run([util()[0], "-m", "hspkcs11"], capture_output=True, text=True)
    assert again.stdout.strip() == out.stdout.strip()


def test_init_token_show_and_delete(tmp_path: Path) -> None:
    conf = make_region(tmp_path)
    made = run(conf, "init-token", "--free", "--label", "ops", env={"HSPKCS11_SO_PIN": "12345678",
                                                                   "HSPKCS11_PIN": "1234"})
    assert made.returncode == 0, made.stderr
    slots = run(conf, "show-slots").stdout
    assert "token 'ops'" in slots and "free" in slots
    gone = run(conf, "delete-token", "--token", "ops", "--yes")
    assert gone.returncode == 0
    events = [e["event"] for e in audit.read(load_config(conf).region_dir)]
    assert events[-2:] == ["token-init", "token-delete"] or events[-1] == "token-delete"
    assert "token-init" in events
    assert "token 'ops'" not in run(conf, "show-slots").stdout


def test_errors_are_one_line_with_what_to_do(tmp_path: Path) -> None:
    conf = make_region(tmp_path)
    missing = run(conf, "delete-token", "--token", "nope", "--yes")
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0
    assert "show-slots" in missing.stderr and "Traceback" not in missing.stderr
    no_secret = run(conf, "init-token", "--free", "--label", "x",
                    env={"HSPKCS11_SO_PIN": "", "HSPKCS11_PIN": ""})
    assert no_secret.returncode == 1 and "HSPKCS11_SO_PIN" in no_secret.stderr


def test_bad_configuration_names_the_line(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("region = us-south\nzones = only-one\n")
    out = run(conf, "region", "init")
    assert out.returncode == 1
    assert "bad.conf:2" in out.stderr and "2 or 3" in out.stderr


def test_region_without_units_says_to_run_region_init(tmp_path: Path) -> None:
    conf = tmp_path / "hspkcs11.conf"
    conf.write_text(f"data.dir = {tmp_path / 'data'}\nzones = a, b\n")
    out = run(conf, "masterkey", "status")
    assert out.returncode == 1 and "region init" in out.stderr


def test_demo_runs_the_story(tmp_path: Path) -> None:
    out = run(None, "demo", "--dir", str(tmp_path / "demo"))
    assert out.returncode == 0, out.stderr
    assert "verifies: True" in out.stdout
    assert "not found" in out.stdout          # the plaintext scan
    assert out.stdout.count("current master key MKVP") == 3
    assert "signing goes on" in out.stdout
    assert "caught up 1 change" in out.stdout and "same content: True" in out.stdout
    assert "none failed" in out.stdout and "keys sealed under the old key now: 0" in out.stdout
    assert "key use is refused: CKR_DEVICE_ERROR" in out.stdout and "another key is refused" in out.stdout
    assert "MAC verified" in out.stdout and "4 keys used in eu-de" in out.stdout


def test_every_command_has_help_with_an_example() -> None:
    import click

    from hspkcs11.cli import cli

    missing = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, path + [name])
        elif "Example" not in (cmd.help or ""):
            missing.append(" ".join(path))

    walk(cli, [])
    assert missing == []
    assert len(cli.commands) >= 15


def test_destructive_commands_ask_or_take_yes(tmp_path: Path) -> None:
    conf = make_region(tmp_path)
    pins = {"HSPKCS11_SO_PIN": "12345678", "HSPKCS11_PIN": "1234"}
    assert run(conf, "init-token", "--free", "--label", "keep", env=pins).returncode == 0
    again = run(conf, "init-token", "--slot", "0", "--label", "keep", env=pins)     # no terminal, no --yes
    assert again.returncode == 1 and "Every object on it is destroyed" in again.stderr and "--yes" in again.stderr
    assert run(conf, "init-token", "--slot", "0", "--label", "keep", "--yes", env=pins).returncode == 0
    gone = run(conf, "delete-token", "--token", "keep")
    assert gone.returncode == 1 and "--yes" in gone.stderr
    assert "token 'keep'" in run(conf, "show-slots").stdout
    clear = run(conf, "masterkey", "clear-new")
    assert clear.returncode == 1 and "--yes" in clear.stderr
