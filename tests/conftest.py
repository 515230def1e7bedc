"""Fixtures shared by the test suite.

`module` is parametrised by PKCS#11 module: every behavioural test runs against
hspkcs11 and against SoftHSM2, the reference. A deliberate difference is declared with
`differs("softhsm", "reason")` (or "hspkcs11"), which marks the test a strict xfail for
that module only: it must fail there, and pass on the other.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pkcs11
import pytest

import hspkcs11
from hspkcs11.config import load as load_config
from hspkcs11.hsm.region import Region
from rawp11 import Raw

CKU_SO = 0

ROOT = Path(__file__).resolve().parent.parent
SO_PIN, USER_PIN = "12345678", "1234"
SOFTHSM_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
MASTER_KEY = bytes(range(32))   # the suite's master key; tests that need others make them


def softhsm_path() -> str:
    for path in SOFTHSM_CANDIDATES:
        if os.path.exists(path):
            return path
    raise RuntimeError("SoftHSM2 is not installed: run the README's test command, which installs it")


def util() -> list[str]:
    """hspkcs11-util from the venv running the tests."""
    return [sys.executable, "-m", "hspkcs11.cli"]


@dataclass
class Module:
    name: str
    path: str
    lib: pkcs11.lib
    env: dict[str, str]

    def init_token(self, label: str | None = None, so_pin: str = SO_PIN, pin: str = USER_PIN) -> pkcs11.Token:
        """A new token in the free slot. hspkcs11's is made by `hspkcs11-util` in another
        process; SoftHSM2 does not see tokens other processes create, so its token is
        made here through C_InitToken and C_InitPIN."""
        label = label or f"t-{uuid.uuid4().hex[:12]}"
        if self.name == "softhsm":
            raw = Raw(self.path)
            free = self.lib.get_slots()[-1].slot_id
            assert raw.init_token(free, so_pin, label) == 0
            h = raw.open_session(free)
            assert raw.login(h, CKU_SO, so_pin) == 0
            assert raw.C_InitPIN(h, pin.encode(), len(pin)) == 0
            assert raw.C_CloseSession(h) == 0
        else:
            cmd = util() + ["init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin]
            subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **self.env})
        return self.lib.get_token(token_label=label)


def make_region(base: Path, name: str = "us-south", zones: str = "us-south-1, us-south-2",
                master_key: bytes | None = MASTER_KEY, extra: str = "") -> Path:
    """A configured region with its units; with `master_key`, loaded and activated."""
    conf = base / "hspkcs11.conf"
    conf.write_text(f"data.dir = {base / 'data'}\nregion = {name}\nzones = {zones}\n"
                    f"log.level = INFO\nlog.file = {base / 'hspkcs11.log'}\n{extra}")
    units = Region(load_config(conf)).init()
    if master_key is not None:
        for unit in units:
            unit.registers.load(master_key)
            unit.registers.commit()
            unit.registers.activate()
    return conf


@pytest.fixture(scope="session")
def hs_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's hspkcs11 region, named by HSPKCS11_CONF for this process and its children."""
    conf = make_region(tmp_path_factory.mktemp("hspkcs11"))
    os.environ["HSPKCS11_CONF"] = str(conf)
    return conf


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    template = (ROOT / "softhsm-config" / "softhsm2.conf").read_text()
    conf.write_text(template.replace("@TOKENDIR@", str(base / "tokens")))
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return conf


_LIBS: dict[str, Module] = {}


def load_module(name: str, hs_conf: Path, softhsm_conf: Path) -> Module:
    if name not in _LIBS:
        if name == "hspkcs11":
            path, env = str(hspkcs11.module_path()), {"HSPKCS11_CONF": str(hs_conf)}
        else:
            path, env = softhsm_path(), {"SOFTHSM2_CONF": str(softhsm_conf)}
        _LIBS[name] = Module(name, path, pkcs11.lib(path), env)
    return _LIBS[name]


@pytest.fixture(scope="session", params=["hspkcs11", "softhsm"])
def module(request: pytest.FixtureRequest, hs_conf: Path, softhsm_conf: Path) -> Module:
    return load_module(request.param, hs_conf, softhsm_conf)


@pytest.fixture(scope="session")
def hs(hs_conf: Path, softhsm_conf: Path) -> Module:
    """hspkcs11 alone, for tests of the cloud-HSM model."""
    return load_module("hspkcs11", hs_conf, softhsm_conf)


@pytest.fixture(scope="module")
def token(module: Module) -> pkcs11.Token:
    """A token shared by one test file's tests on one module."""
    return module.init_token()


@pytest.fixture(scope="module")
def logged_in(token: pkcs11.Token) -> Iterator[pkcs11.Session]:
    """A session held open for a whole test file. Login belongs to the application and is
    shared by all its sessions (Base §5.6), so each test's own session needs no PIN
    check (hspkcs11 hashes PINs with scrypt, ~50 ms a login)."""
    with token.open(user_pin=USER_PIN, rw=True) as s:
        yield s


@pytest.fixture
def session(token: pkcs11.Token, logged_in: pkcs11.Session) -> Iterator[pkcs11.Session]:
    """A fresh logged-in R/W session per test."""
    with token.open(rw=True) as s:
        yield s


@pytest.fixture
def differs(request: pytest.FixtureRequest, module: Module) -> Callable[[str, str], None]:
    def mark(on: str, reason: str) -> None:
        if module.name == on:
            request.applymarker(pytest.mark.xfail(strict=True, reason=f"deliberate: {reason}"))
    return mark


def which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not installed: run the README's test command, which installs it")
    return path
