"""PIN failure counting and lock-out (hspkcs11: `pin.max_failures` in hspkcs11.conf)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import make_region, util

CLIENT = textwrap.dedent("""
    import pkcs11, hspkcs11
    from pkcs11 import TokenFlag as F
    lib = pkcs11.lib(str(hspkcs11.module_path()))

    def flags():
        f = lib.get_token(token_label="pin").flags
        return ",".join(n for n in ("USER_PIN_COUNT_LOW", "USER_PIN_FINAL_TRY", "USER_PIN_LOCKED")
                        if f & getattr(F, n)) or "-"

    def attempt(pin):
        try:
            lib.get_token(token_label="pin").open(user_pin=pin, rw=True).close()   # R/W: a failed open leaks its session
            return "ok"
        except pkcs11.exceptions.PKCS11Error as exc:
            return type(exc).__name__

    print(attempt("0000"), flags())
    print(attempt("0000"), flags())
    print(attempt("0000"), flags())
    print(attempt("1234"), flags())          # the right PIN no longer helps
    with lib.get_token(token_label="pin").open(so_pin="12345678", rw=True) as so:
        so.init_pin("5678")                  # the SO unlocks by setting a new PIN
    print(attempt("5678"), flags())
""")


def test_user_pin_locks_after_the_configured_failures_and_the_so_unlocks(tmp_path: Path) -> None:
    conf = make_region(tmp_path, extra="pin.max_failures = 3\n")
    env = {**os.environ, "HSPKCS11_CONF": str(conf), "HSPKCS11_SO_PIN": "12345678", "HSPKCS11_PIN": "1234"}
    subprocess.run(util() + ["init-token", "--free", "--label", "pin"], env=env, check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", CLIENT], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "PinIncorrect USER_PIN_COUNT_LOW",
        "PinIncorrect USER_PIN_COUNT_LOW,USER_PIN_FINAL_TRY",
        "PinIncorrect USER_PIN_LOCKED",
        "PinLocked USER_PIN_LOCKED",
        "ok -",
    ]
