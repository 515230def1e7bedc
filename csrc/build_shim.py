"""cffi build of libhspkcs11.so, the PKCS#11 module (embedding mode).

`C_*` entry points are plain C (csrc/shim.c); each crosses into Python through one
`extern "Python"` callback below, defined by hspkcs11/abi/bridge.py. The same header
text feeds both the C compiler and cdef, and the CKR/CKF values come from
hspkcs11/consts.py, so nothing is written twice.
"""
from __future__ import annotations

import importlib.util
import re
import sys
import sysconfig
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
GENERATED = HERE / "build"

CALLBACKS = """
extern "Python" int py_Ready(void);
extern "Python" CK_RV py_Initialize(CK_FLAGS);
extern "Python" CK_RV py_Finalize(void);
extern "Python" CK_RV py_GetInfo(CK_INFO *);
extern "Python" CK_RV py_GetSlotList(CK_BBOOL, hs_out *);
extern "Python" CK_RV py_GetSlotInfo(CK_SLOT_ID, CK_SLOT_INFO *);
extern "Python" CK_RV py_GetTokenInfo(CK_SLOT_ID, CK_TOKEN_INFO *);
extern "Python" CK_RV py_GetMechanismList(CK_SLOT_ID, hs_out *);
extern "Python" CK_RV py_GetMechanismInfo(CK_SLOT_ID, CK_MECHANISM_TYPE, CK_MECHANISM_INFO *);
extern "Python" CK_RV py_InitToken(CK_SLOT_ID, CK_UTF8CHAR_PTR, CK_ULONG, CK_UTF8CHAR_PTR);
extern "Python" CK_RV py_InitPIN(CK_SESSION_HANDLE, CK_UTF8CHAR_PTR, CK_ULONG);
extern "Python" CK_RV py_SetPIN(CK_SESSION_HANDLE, CK_UTF8CHAR_PTR, CK_ULONG, CK_UTF8CHAR_PTR, CK_ULONG);
extern "Python" CK_RV py_OpenSession(CK_SLOT_ID, CK_FLAGS, CK_SESSION_HANDLE_PTR);
extern "Python" CK_RV py_CloseSession(CK_SESSION_HANDLE);
extern "Python" CK_RV py_CloseAllSessions(CK_SLOT_ID);
extern "Python" CK_RV py_GetSessionInfo(CK_SESSION_HANDLE, CK_SESSION_INFO *);
extern "Python" CK_RV py_Login(CK_SESSION_HANDLE, CK_USER_TYPE, CK_UTF8CHAR_PTR, CK_ULONG);
extern "Python" CK_RV py_Logout(CK_SESSION_HANDLE);
extern "Python" CK_RV py_CreateObject(CK_SESSION_HANDLE, const CK_BYTE *, CK_ULONG, CK_OBJECT_HANDLE_PTR);
extern "Python" CK_RV py_CopyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, const CK_BYTE *, CK_ULONG,
                                    CK_OBJECT_HANDLE_PTR);
extern "Python" CK_RV py_DestroyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
extern "Python" CK_RV py_GetObjectSize(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ULONG_PTR);
extern "Python" CK_RV py_GetAttributeValue(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, const CK_ULONG *, CK_ULONG,
                                           hs_attr_out *, hs_out *);
extern "Python" CK_RV py_SetAttributeValue(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, const CK_BYTE *, CK_ULONG);
extern "Python" CK_RV py_FindObjectsInit(CK_SESSION_HANDLE, const CK_BYTE *, CK_ULONG);
extern "Python" CK_RV py_FindObjects(CK_SESSION_HANDLE, CK_OBJECT_HANDLE_PTR, CK_ULONG, CK_ULONG_PTR);
extern "Python" CK_RV py_FindObjectsFinal(CK_SESSION_HANDLE);
extern "Python" CK_RV py_OpInit(int, CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
extern "Python" CK_RV py_OpData(int, int, CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_ULONG, hs_out *);
extern "Python" CK_RV py_OpFeed(int, CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG);
extern "Python" CK_RV py_Verify(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, int);
extern "Python" CK_RV py_DigestKey(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
extern "Python" CK_RV py_GenerateKey(CK_SESSION_HANDLE, CK_MECHANISM_PTR, const CK_BYTE *, CK_ULONG,
                                     CK_OBJECT_HANDLE_PTR);
extern "Python" CK_RV py_GenerateKeyPair(CK_SESSION_HANDLE, CK_MECHANISM_PTR, const CK_BYTE *, CK_ULONG,
                                         const CK_BYTE *, CK_ULONG, CK_OBJECT_HANDLE_PTR, CK_OBJECT_HANDLE_PTR);
extern "Python" CK_RV py_WrapKey(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE,
                                 hs_out *, int *);
extern "Python" CK_RV py_UnwrapKey(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_BYTE_PTR, CK_ULONG,
                                   const CK_BYTE *, CK_ULONG, CK_OBJECT_HANDLE_PTR);
extern "Python" CK_RV py_DeriveKey(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, const CK_BYTE *,
                                   CK_ULONG, CK_OBJECT_HANDLE_PTR);
extern "Python" CK_RV py_SeedRandom(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG);
extern "Python" CK_RV py_GenerateRandom(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG);
extern "Python" CK_RV py_Unsupported(CK_SESSION_HANDLE);
extern "Python" CK_RV py_Legacy(CK_SESSION_HANDLE);
"""

# Runs once in the interpreter cffi (or we) started: everything else lives in the package.
INIT_CODE = """
from hspkcs11._shim import ffi, lib
from hspkcs11.abi.bridge import bind
bind(ffi, lib)
"""


def _cdef_text(header: Path) -> str:
    """A header as cdef accepts it: no preprocessor lines, constants valued by the compiler."""
    text = "\n".join(ln for ln in header.read_text().splitlines() if not ln.lstrip().startswith("#"))
    return re.sub(r"(static const \w+ \w+)\s*=[^;]*;", r"\1;", text)


def _write_consts_header() -> None:
    spec = importlib.util.spec_from_file_location("_hs_consts", HERE.parent / "hspkcs11" / "consts.py")
    consts = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(consts)
    GENERATED.mkdir(exist_ok=True)
    target = GENERATED / "hs_consts.h"
    text = consts.c_header()
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


_write_consts_header()
_libdir = sysconfig.get_config_var("LIBDIR")
_pylib = "python" + sysconfig.get_config_var("LDVERSION")
_prototypes = CALLBACKS.replace('extern "Python"', "static")

ffibuilder = FFI()
ffibuilder.cdef(_cdef_text(HERE / "pkcs11.h") + _cdef_text(HERE / "shim.h") + CALLBACKS)
ffibuilder.embedding_init_code(INIT_CODE)
ffibuilder.set_source(
    "hspkcs11._shim",
    '#include "pkcs11.h"\n#include "shim.h"\n#include "hs_consts.h"\n'
    + _prototypes + '\n#include "shim.c"\n',
    include_dirs=[str(HERE), str(GENERATED)],
    define_macros=[("HS_BUILD_PYTHON", '"%s"' % sys.executable.replace("\\", "\\\\"))],
    libraries=[_pylib, "dl", "pthread"],
    library_dirs=[_libdir],
    extra_compile_args=["-fvisibility=hidden", "-Wall", "-Wno-unused-function"],
    extra_link_args=[f"-Wl,-rpath,{_libdir}"],
    depends=[str(HERE / n) for n in ("pkcs11.h", "shim.h", "shim.c")],
    py_limited_api=False,
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(GENERATED), verbose=True)
