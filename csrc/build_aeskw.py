"""cffi (API mode) build of `hspkcs11._aeskw`: the AES key-wrap fast path in csrc/aeskw.c.

setup.py uses `cffi_modules=["csrc/build_aeskw.py:ffibuilder"]`. Run directly, it
builds the extension in place (hspkcs11/_aeskw*.so) for development and tests:
    python csrc/build_aeskw.py
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADER = HERE / "aeskw.h"

# The prototypes between the cdef markers of aeskw.h, so they are written once; the
# error codes are parenthesised negatives, which cdef cannot parse: let the compiler
# give their values (`...`).
_protos = re.search(r"/\* cdef-begin \*/(.*)/\* cdef-end \*/", HEADER.read_text(), re.S)
_codes = re.findall(r"^#define (HS_KW_\w+)\s", HEADER.read_text(), re.M)

ffibuilder = FFI()
ffibuilder.cdef("".join(f"#define {c} ...\n" for c in _codes) + _protos.group(1))


def _rel(path: Path) -> str:
    # setuptools wants sources relative to the project (the cwd of a build); the
    # in-place build below compiles from its tmpdir, so it takes absolute paths.
    return str(path) if __name__ == "__main__" else os.path.relpath(path, os.getcwd())


ffibuilder.set_source(
    "hspkcs11._aeskw",
    '#include "aeskw.h"',
    sources=[_rel(HERE / "aeskw.c")],
    include_dirs=[_rel(HERE)],
    libraries=["crypto"],
    extra_compile_args=["-O2", "-std=c99", "-Wall"],
)

if __name__ == "__main__":
    built = ffibuilder.compile(tmpdir=str(ROOT / "build" / "cffi-aeskw"), verbose=True)
    target = ROOT / "hspkcs11" / Path(built).name
    shutil.copy2(built, target)
    print(f"installed {target}")
