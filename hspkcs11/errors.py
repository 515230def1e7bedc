"""The one error type of the engine: a PKCS#11 return value with an optional reason.

Everything below `abi` raises `P11Error`; `abi` turns it into the CK_RV integer.
Foreign exceptions are mapped in one table (`abi.dispatch.FOREIGN`), never here.
"""
from __future__ import annotations

from .consts import CKR


class P11Error(Exception):
    """A PKCS#11 failure. `why` is for the log, never for the caller."""

    def __init__(self, rv: CKR, why: str = "") -> None:
        super().__init__(f"{CKR(rv).name}: {why}" if why else CKR(rv).name)
        self.rv = CKR(rv)
        self.why = why


def require(condition: bool, rv: CKR, why: str = "") -> None:
    """Raise `P11Error(rv)` unless `condition` holds: keeps guard clauses one line long."""
    if not condition:
        raise P11Error(rv, why)
