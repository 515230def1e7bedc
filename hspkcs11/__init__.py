"""hspkcs11: a PKCS#11 module that emulates a regional cloud HSM on one machine."""
from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"
MODULE_NAME = "libhspkcs11.so"


def module_path() -> Path:
    """Where the PKCS#11 module that clients load by path lives."""
    return Path(__file__).resolve().parent / MODULE_NAME
