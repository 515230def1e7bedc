"""p11-kit: a module file registers the module, and `p11-kit list-modules` (and GnuTLS, which
finds modules through p11-kit) then see it and its token. Both modules.

The module file goes in the user's p11-kit config ($XDG_CONFIG_HOME/pkcs11/modules/, here
in tmp_path). p11-kit ignores user config in a process running as root; as root the
clients run in a user namespace (`unshare --user`) under a non-root uid, which changes
nothing else (files are still reached with the caller's rights).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from conftest import Module, which
from clientkit import new_label, run


def as_user(cmd: list[str]) -> list[str]:
    if os.getuid() != 0:
        return cmd
    return [which("unshare"), "--user", "--map-user=1000", "--map-group=1000", *cmd]


def registered(module: Module, tmp_path: Path) -> tuple[str, dict[str, str]]:
    name = f"matrix-{module.name}"
    modules = tmp_path / "config" / "pkcs11" / "modules"
    modules.mkdir(parents=True)
    (modules / f"{name}.module").write_text(f"# registered by tests/clients/test_p11kit.py\nmodule: {module.path}\n")
    return name, {"XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)}


def sections(listing: str) -> dict[str, str]:
    """`p11-kit list-modules` output, per module name (a line `NAME: PATH`, then indented lines)."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^(\S+): .*\n(?:[ \t].*\n?)*", listing, re.M)}


def test_list_modules_shows_the_registered_module_and_its_token(module: Module, tmp_path: Path) -> None:
    label = new_label("p11kit")
    module.init_token(label)
    name, env = registered(module, tmp_path)
    out = run(as_user([which("p11-kit"), "list-modules"]), module, env=env).stdout
    found = sections(out)
    assert name in found, out
    assert found[name].splitlines()[0] == f"{name}: {module.path}"
    tokens = re.findall(r"^    token: (.*)$", found[name], re.M)
    assert label in tokens, found[name]
    assert "token-initialized" in found[name] and "user-pin-initialized" in found[name]


def test_without_the_module_file_it_is_not_listed(module: Module, tmp_path: Path) -> None:
    """The control: the module is listed because of our file, not because it was there anyway."""
    name, env = registered(module, tmp_path)
    (tmp_path / "config" / "pkcs11" / "modules" / f"{name}.module").unlink()
    out = run(as_user([which("p11-kit"), "list-modules"]), module, env=env).stdout
    assert name not in sections(out)


def test_gnutls_finds_the_registered_module_without_provider(module: Module, tmp_path: Path) -> None:
    label = new_label("p11kit")
    module.init_token(label)
    _, env = registered(module, tmp_path)
    out = run(as_user([which("p11tool"), "--list-tokens"]), module, env=env).stdout
    block = [b for b in out.split("Token ") if f"Label: {label}\n" in b]
    assert len(block) == 1, out
    assert f"Module: {module.path}\n" in block[0], block[0]      # p11tool names the module by its path
