"""The embedded interpreter: failure to start, unloading inside a Python host, exports.

The module starts Python itself inside a C host (csrc/shim.c); when it cannot, cffi's
callbacks would answer 0, which is CKR_OK, so every entry point is guarded to answer
CKR_GENERAL_ERROR instead. Inside a Python host the module reuses the running
interpreter and must survive being unloaded and loaded again.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

from hspkcs11.consts import CKR

from conftest import Module, make_region, which
from rawp11 import Raw, ffi
from test_c_host import compile_c

TESTS = Path(__file__).resolve().parent
CALL_ALL = TESTS / "c" / "call_all.c"

# The 68 functions of PKCS#11 v2.40, in the order of the specification's function list.
FUNCTIONS = """
C_Initialize C_Finalize C_GetInfo C_GetFunctionList C_GetSlotList C_GetSlotInfo C_GetTokenInfo
C_GetMechanismList C_GetMechanismInfo C_InitToken C_InitPIN C_SetPIN C_OpenSession C_CloseSession
C_CloseAllSessions C_GetSessionInfo C_GetOperationState C_SetOperationState C_Login C_Logout
C_CreateObject C_CopyObject C_DestroyObject C_GetObjectSize C_GetAttributeValue C_SetAttributeValue
C_FindObjectsInit C_FindObjects C_FindObjectsFinal C_EncryptInit C_Encrypt C_EncryptUpdate
C_EncryptFinal C_DecryptInit C_Decrypt C_DecryptUpdate C_DecryptFinal C_DigestInit C_Digest
C_DigestUpdate C_DigestKey C_DigestFinal C_SignInit C_Sign C_SignUpdate C_SignFinal C_SignRecoverInit
C_SignRecover C_VerifyInit C_Verify C_VerifyUpdate C_VerifyFinal C_VerifyRecoverInit C_VerifyRecover
C_DigestEncryptUpdate C_DecryptDigestUpdate C_SignEncryptUpdate C_DecryptVerifyUpdate C_GenerateKey
C_GenerateKeyPair C_WrapKey C_UnwrapKey C_DeriveKey C_SeedRandom C_GenerateRandom C_GetFunctionStatus
C_CancelFunction C_WaitForSlotEvent
""".split()


@pytest.fixture(scope="session")
def call_all(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_c(CALL_ALL, tmp_path_factory.mktemp("c") / "call_all")


def run_call_all(call_all: Path, path: str, env: dict[str, str]) -> tuple[dict[str, int], str]:
    proc = subprocess.run([str(call_all), path], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = {}
    for line in proc.stdout.splitlines():
        name, rv = line.split()
        results[name] = int(rv, 16)
    return results, proc.stderr


def assert_every_call_is_general_error(results: dict[str, int]) -> None:
    assert sorted(results) == sorted(FUNCTIONS)
    assert results.pop("C_GetFunctionList") == CKR.OK     # plain C: it never needs Python
    wrong = {name: hex(rv) for name, rv in results.items() if rv != CKR.GENERAL_ERROR}
    assert not wrong, wrong


def test_without_an_interpreter_every_call_is_general_error(hs: Module, call_all: Path, tmp_path: Path) -> None:
    results, stderr = run_call_all(call_all, hs.path, {**hs.env, "HSPKCS11_PYTHON": str(tmp_path / "no-python")})
    assert_every_call_is_general_error(results)
    assert "no Python interpreter found" in stderr


def test_when_the_engine_cannot_be_imported_every_call_is_general_error(hs: Module, call_all: Path,
                                                                         tmp_path: Path) -> None:
    """An interpreter that starts but lacks cffi and the engine: cffi's init code fails
    and its callbacks would answer 0 (CKR_OK)."""
    venv.EnvBuilder(with_pip=False).create(tmp_path / "empty")
    python = tmp_path / "empty" / "bin" / "python3"
    results, stderr = run_call_all(call_all, hs.path, {**hs.env, "HSPKCS11_PYTHON": str(python)})
    assert_every_call_is_general_error(results)
    assert "engine did not start" in stderr


def test_the_same_calls_succeed_when_python_starts(hs: Module, call_all: Path, tmp_path: Path) -> None:
    """The control for the two tests above: the program can tell a working module apart."""
    conf = make_region(tmp_path)     # a region of its own: call_all initialises slot 0's token
    results, _ = run_call_all(call_all, hs.path, {"HSPKCS11_CONF": str(conf)})
    assert results["C_Initialize"] == CKR.OK
    assert results["C_GetInfo"] == CKR.OK
    assert results["C_Finalize"] == CKR.OK


PYTHON_HOST = textwrap.dedent("""
    import hashlib, sys
    sys.path.insert(0, sys.argv[3])
    from rawp11 import ffi

    path, label = sys.argv[1], sys.argv[2].encode().ljust(32, b" ")

    def use(lib):
        pp = ffi.new("CK_FUNCTION_LIST_PTR *")
        assert lib.C_GetFunctionList(pp) == 0
        fl = pp[0]
        assert fl.C_Initialize(ffi.NULL) == 0
        count = ffi.new("CK_ULONG *")
        assert fl.C_GetSlotList(1, ffi.NULL, count) == 0
        slots = ffi.new("CK_SLOT_ID[]", count[0])
        assert fl.C_GetSlotList(1, slots, count) == 0
        info = ffi.new("CK_TOKEN_INFO *")
        slot = [s for s in slots if fl.C_GetTokenInfo(s, info) == 0 and bytes(info.label) == label]
        assert len(slot) == 1, "token not found"
        h = ffi.new("CK_SESSION_HANDLE *")
        assert fl.C_OpenSession(slot[0], 4, ffi.NULL, ffi.NULL, h) == 0
        mech = ffi.new("CK_MECHANISM *", {"mechanism": 0x250})
        out, n = ffi.new("CK_BYTE[32]"), ffi.new("CK_ULONG *", 32)
        assert fl.C_DigestInit(h[0], mech) == 0
        assert fl.C_Digest(h[0], b"abc", 3, out, n) == 0
        assert bytes(out) == hashlib.sha256(b"abc").digest()
        assert fl.C_CloseSession(h[0]) == 0
        assert fl.C_Finalize(ffi.NULL) == 0

    for i in range(3):
        lib = ffi.dlopen(path)
        use(lib)
        ffi.dlclose(lib)
        print("round", i, "ok", flush=True)
""")


def test_a_python_host_can_unload_and_load_the_module_again(module: Module, tmp_path: Path) -> None:
    label = f"host-{os.getpid()}-{tmp_path.name[-8:]}"
    module.init_token(label)
    script = tmp_path / "host.py"
    script.write_text(PYTHON_HOST)
    proc = subprocess.run([sys.executable, str(script), module.path, label, str(TESTS)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **module.env})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split("\n")[:3] == [f"round {i} ok" for i in range(3)]


def exported_functions(path: str) -> set[str]:
    out = subprocess.run([which("nm"), "-D", "--defined-only", path], capture_output=True, text=True,
                         check=True).stdout
    return {parts[2] for parts in map(str.split, out.splitlines()) if len(parts) == 3 and parts[1] == "T"}


def test_the_module_exports_all_68_functions(module: Module) -> None:
    assert len(FUNCTIONS) == len(set(FUNCTIONS)) == 68
    assert {name for name in exported_functions(module.path) if name.startswith("C_")} == set(FUNCTIONS)


def test_exported_symbols_are_the_function_list_entries(module: Module) -> None:
    """dlsym(name) and the function list's entry are the same function, in the spec's order."""
    lib = ctypes.CDLL(module.path)
    fl = Raw(module.path).fl
    assert (fl.version.major, fl.version.minor) == (2, 40)
    fields = [name for name, _ in ffi.typeof("CK_FUNCTION_LIST").fields][1:]
    assert fields == FUNCTIONS     # our header's table has the spec's order
    for name in FUNCTIONS:
        exported = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        assert exported == int(ffi.cast("uintptr_t", getattr(fl, name))), name


def test_hspkcs11_exports_nothing_but_the_api(hs: Module) -> None:
    """-fvisibility=hidden: no helper of the shim leaks into a host's symbol space."""
    assert exported_functions(hs.path) - set(FUNCTIONS) == {"PyInit__shim"}
