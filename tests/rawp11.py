"""A raw PKCS#11 client for tests: the module's function list through cffi's ABI mode.

python-pkcs11 hides the C conventions (length queries, per-attribute results); this
client calls the functions exactly as a C program would. Loading a module that
python-pkcs11 already loaded returns the same library, so both see the same state.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cffi import FFI

HEADER = Path(__file__).resolve().parent.parent / "csrc" / "pkcs11.h"

ffi = FFI()
ffi.cdef("\n".join(ln for ln in HEADER.read_text().splitlines() if not ln.lstrip().startswith("#"))
         + "\nCK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR *);\n")


class Raw:
    def __init__(self, path: str) -> None:
        self._lib = ffi.dlopen(path)
        pp = ffi.new("CK_FUNCTION_LIST_PTR *")
        rv = self._lib.C_GetFunctionList(pp)
        assert rv == 0, rv
        self.fl = pp[0]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fl, name)

    def init_token(self, slot: int, so_pin: str, label: str) -> int:
        pin = so_pin.encode()
        return self.fl.C_InitToken(slot, pin, len(pin), label.encode().ljust(32, b" "))

    def open_session(self, slot: int, rw: bool = True) -> int:
        h = ffi.new("CK_SESSION_HANDLE *")
        rv = self.fl.C_OpenSession(slot, 4 | (2 if rw else 0), ffi.NULL, ffi.NULL, h)
        assert rv == 0, hex(rv)
        return h[0]

    def login(self, h: int, user: int, pin: str) -> int:
        return self.fl.C_Login(h, user, pin.encode(), len(pin))


def template(*attrs: tuple[int, bytes]) -> tuple[Any, list[Any]]:
    """A CK_ATTRIBUTE array and the buffers that keep its values alive."""
    arr = ffi.new("CK_ATTRIBUTE[]", len(attrs))
    keep = []
    for i, (cka, value) in enumerate(attrs):
        buf = ffi.new("CK_BYTE[]", value) if value else ffi.NULL
        keep.append(buf)
        arr[i].type, arr[i].pValue, arr[i].ulValueLen = cka, buf, len(value)
    return arr, keep


def ulong(value: int) -> bytes:
    return value.to_bytes(8, "little")
