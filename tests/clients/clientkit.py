"""Helpers shared by the client-matrix tests: run a real client program against a module."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from conftest import Module


def run(cmd: list[str], module: Module, *, check: bool = True, env: dict[str, str] | None = None,
        cwd: Path | None = None, timeout: int = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`cmd` with the module's environment (HSPKCS11_CONF or SOFTHSM2_CONF) plus `env`."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, input=input,
                          env={**os.environ, **module.env, **(env or {})})
    if check:
        assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def new_label(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def slot_id_in_a_new_process(module: Module, label: str) -> int:
    """The slot id a client process sees for the token `label`. SoftHSM2 numbers a token's
    slot from its serial when a process starts, so the id differs from the one the test
    process saw when it initialized the token in the free slot."""
    code = ("import sys, pkcs11; lib = pkcs11.lib(sys.argv[1]); "
            "print(next(s.slot_id for s in lib.get_slots() if s.get_token().label == sys.argv[2]))")
    return int(run([sys.executable, "-c", code, module.path, label], module).stdout)
