"""Bad input through the C ABI: tests/c/badinput.c calls each of the 68 functions with
bad inputs and checks the code PKCS#11 v2.40 names, against both modules, and under
valgrind memcheck against hspkcs11.

badinput prints one line per case, "ok|FAIL FUNCTION CASE got=0x.. want=0x..". hspkcs11
must pass every case. SoftHSM2 answers some cases differently from the spec: those are
SOFTHSM_DIFFERS, each with its reason, and its run must fail exactly those (so the list
cannot rot). The cases that crash SoftHSM2 (SOFTHSM_CRASHES) are left out of its full
run, and each is run alone on both modules.

The valgrind run (--error-exitcode=99, tests/c/valgrind.supp for CPython's own
uninitialised-value reports, PYTHONMALLOC=malloc so that valgrind sees each Python
allocation) runs every case, about 15-20 s here. A canary case, a caller whose value
length is longer than its buffer, makes the shim read past the caller's block: valgrind
must report it, which shows the run would see an invalid read made by the module.
"""
from __future__ import annotations

import os
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pytest

from conftest import ROOT, SO_PIN, USER_PIN, Module, which
from hspkcs11.consts import CKR
from test_c_host import compile_c

SOURCE = Path(__file__).resolve().parent / "c" / "badinput.c"
SUPPRESSIONS = Path(__file__).resolve().parent / "c" / "valgrind.supp"
LINE = re.compile(r"^(ok|FAIL) (C_\w+) (\w+) got=0x([0-9a-f]+) want=0x([0-9a-f]+)$")
SKIPPED = re.compile(r"^skip (C_\w+) (\w+)$")
CRASH = re.compile(r"^CRASH (\S+) (\S+) signal=(\d+)$")
SUMMARY = re.compile(r"^badinput: (\d+) cases, (\d+) ok, (\d+) FAIL$")
SETUP_FAILED = 0x80000000      # badinput: a step a case needed before its bad call failed
CANARY = "C_CreateObject.canary_value_longer_than_its_buffer"

# ---- where SoftHSM2 2.6 answers differently from the spec: reason -> cases ----------------

_KEY_HANDLE = ("the spec names CKR_KEY_HANDLE_INVALID for a bad key handle at C_EncryptInit, C_DecryptInit, "
               "C_SignInit, C_VerifyInit and C_DeriveKey, and Base §5.6 C_Logout makes a private key's handle "
               "invalid; SoftHSM2 answers CKR_OBJECT_HANDLE_INVALID, which these functions do not list")
_STUB = ("an unsupported function's stub 'should simply return CKR_FUNCTION_NOT_SUPPORTED' (Base §5.1, "
         "CKR_FUNCTION_NOT_SUPPORTED); SoftHSM2 checks the session first and answers "
         "CKR_SESSION_HANDLE_INVALID")
_DUPLICATE = ("Base §4 (objects, attributes and templates): a template that names an attribute twice may be "
              "refused (the text says CKR_TEMPLATE_INVALID, a code pkcs11t.h never defined; hspkcs11 answers "
              "CKR_TEMPLATE_INCONSISTENT) or one of its values used; SoftHSM2 uses one and answers CKR_OK")
_PARAM = ("an absent, short, NULL-with-a-length or out-of-range mechanism parameter (an AES-CBC IV of 0 or 15 "
          "bytes, a CK_GCM_PARAMS or CK_AES_CTR_PARAMS of the wrong size, a 129-bit GCM tag) is "
          "CKR_MECHANISM_PARAM_INVALID, 'invalid parameters were supplied to the mechanism'; SoftHSM2 answers "
          "CKR_ARGUMENTS_BAD or CKR_MECHANISM_INVALID")
_PARAM_IGNORED = ("a parameter given to a mechanism that has none (AES-ECB, SHA-256, SHA256-HMAC, AES key "
                  "generation: 'does not have a parameter'), or a GCM IV of 0 bytes (the IV has at least one), "
                  "is CKR_MECHANISM_PARAM_INVALID; SoftHSM2 ignores it and answers CKR_OK")
_NOT_A_KEY = ("CKR_KEY_HANDLE_INVALID covers 'a valid handle for an object which is not a key' (Base §5.1); "
              "given a data object as a key, SoftHSM2 answers CKR_KEY_FUNCTION_NOT_PERMITTED or "
              "CKR_KEY_UNEXTRACTABLE, or digests it (C_DigestKey, CKR_OK)")
_CONTRADICTS = ("a CKA_CLASS the mechanism contradicts (a data object from AES key generation or derivation, a "
                "secret key as either half of an EC pair) is inconsistent with the values the function "
                "contributes, CKR_TEMPLATE_INCONSISTENT (Base §4.1.1, creating objects, rule 5); SoftHSM2 "
                "answers CKR_ATTRIBUTE_VALUE_INVALID")
_SHORT_ULONG = ("a CK_ULONG attribute (CKA_CLASS) given in 4 bytes is an invalid value for a valid attribute, "
                "CKR_ATTRIBUTE_VALUE_INVALID (Base §4.1.1, rule 2); SoftHSM2 ignores the attribute and answers "
                "CKR_TEMPLATE_INCOMPLETE")

DIFFERENCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("a new token's SO PIN of 3 bytes is outside ulMinPinLen..ulMaxPinLen: CKR_PIN_LEN_RANGE, 'the specified "
     "PIN is too long or too short', for functions that set a PIN (Base §5.1), as C_InitToken does on a new "
     "token; SoftHSM2 answers CKR_PIN_INCORRECT, a PIN that does not match", ("C_InitToken.short_pin",)),
    ("hspkcs11 has no slot events (README 'Not supported'): C_WaitForSlotEvent is a stub answering "
     "CKR_FUNCTION_NOT_SUPPORTED; SoftHSM2 implements CKF_DONT_BLOCK and answers CKR_NO_EVENT, even to a NULL "
     "pSlot or a non-NULL pReserved",
     ("C_WaitForSlotEvent.dont_block", "C_WaitForSlotEvent.null_slot", "C_WaitForSlotEvent.reserved_not_null")),
    ("Base §5.6 C_Logout lists CKR_USER_NOT_LOGGED_IN for a logout with nobody logged in; SoftHSM2 answers "
     "CKR_OK", ("C_Logout.not_logged_in",)),
    (_SHORT_ULONG, ("C_CreateObject.class_of_four_bytes", "C_UnwrapKey.class_of_four_bytes")),
    (_DUPLICATE, ("C_CreateObject.duplicated_attribute", "C_CopyObject.duplicated_attribute",
                  "C_SetAttributeValue.duplicated_attribute", "C_GenerateKey.duplicated_attribute",
                  "C_GenerateKeyPair.duplicated_attribute_in_public",
                  "C_GenerateKeyPair.duplicated_attribute_in_private", "C_UnwrapKey.duplicated_attribute",
                  "C_DeriveKey.duplicated_attribute")),
    ("an AES key's CKA_VALUE has 16, 24 or 32 bytes (Current Mechanisms, AES secret key objects): 15 bytes is "
     "CKR_ATTRIBUTE_VALUE_INVALID; SoftHSM2 creates the key", ("C_CreateObject.aes_value_of_15_bytes",)),
    (_PARAM, ("C_EncryptInit.cbc_without_iv", "C_EncryptInit.cbc_iv_of_15_bytes",
              "C_EncryptInit.cbc_null_iv_with_length", "C_EncryptInit.gcm_parameter_length_wrong",
              "C_EncryptInit.gcm_tag_of_129_bits", "C_EncryptInit.ctr_parameter_length_wrong",
              "C_DecryptInit.cbc_iv_of_15_bytes", "C_WrapKey.cbc_iv_of_15_bytes")),
    (_PARAM_IGNORED, ("C_EncryptInit.ecb_with_parameter", "C_EncryptInit.gcm_iv_of_zero_bytes",
                      "C_DigestInit.sha256_with_parameter", "C_SignInit.hmac_with_parameter",
                      "C_GenerateKey.keygen_with_parameter")),
    (_NOT_A_KEY, ("C_EncryptInit.data_object_as_key", "C_SignInit.data_object_as_key",
                  "C_DigestKey.data_object_as_key", "C_WrapKey.data_object_as_key")),
    ("C_DigestKey digests 'the value of a secret key'; for a private key the spec names "
     "CKR_KEY_INDIGESTIBLE ('perhaps the key isn't a secret key'); SoftHSM2 answers CKR_OK",
     ("C_DigestKey.private_key",)),
    ("ECDSA cannot use an AES key: CKR_KEY_TYPE_INCONSISTENT at C_SignInit/C_VerifyInit; SoftHSM2 answers "
     "CKR_OK and fails only at the signature", ("C_SignInit.aes_key_for_ecdsa", "C_VerifyInit.aes_key_for_ecdsa")),
    (_CONTRADICTS, ("C_GenerateKey.class_contradicts_mechanism", "C_GenerateKeyPair.public_class_contradicts",
                    "C_GenerateKeyPair.private_class_contradicts", "C_DeriveKey.class_contradicts_mechanism")),
    ("24 bytes that fail AES key wrap's integrity check are CKR_WRAPPED_KEY_INVALID; SoftHSM2 answers "
     "CKR_GENERAL_ERROR", ("C_UnwrapKey.wrapped_garbage",)),
    (_STUB, tuple(f"{fn}.session_{kind}" for fn in (
        "C_GetOperationState", "C_SetOperationState", "C_SignRecoverInit", "C_SignRecover", "C_VerifyRecoverInit",
        "C_VerifyRecover", "C_DigestEncryptUpdate", "C_DecryptDigestUpdate", "C_SignEncryptUpdate",
        "C_DecryptVerifyUpdate") for kind in ("invalid", "zero", "stale"))),
    (_KEY_HANDLE, tuple(f"{fn}.{tag}_{kind}" for fn, tag in (
        ("C_EncryptInit", "key"), ("C_DecryptInit", "key"), ("C_SignInit", "key"), ("C_VerifyInit", "key"),
        ("C_DeriveKey", "base_key")) for kind in ("invalid", "zero", "stale")) + (
        "C_EncryptInit.private_key_after_logout",)),
)
SOFTHSM_DIFFERS: dict[str, str] = {case: reason for reason, cases in DIFFERENCES for case in cases}

_GCM_NULL = ("SoftHSM2 dereferences the NULL pIv or pAAD of a CK_GCM_PARAMS that claims a length and dies of "
             "SIGSEGV; the spec names CKR_MECHANISM_PARAM_INVALID, which hspkcs11 answers")
SOFTHSM_CRASHES: dict[str, str] = {
    "C_EncryptInit.gcm_null_iv_with_length": _GCM_NULL,
    "C_EncryptInit.gcm_null_aad_with_length": _GCM_NULL,
}


# ---- running badinput --------------------------------------------------------------------

@dataclass
class Run:
    rc: int
    output: str
    results: dict[str, tuple[bool, int, int]]     # "C_Fn.case" -> (ok, got, want)
    skipped: set[str]
    crashed: list[str]
    summary: tuple[int, int, int] | None          # cases, ok, FAIL

    def failures(self) -> dict[str, tuple[int, int]]:
        return {case: (got, want) for case, (ok, got, want) in self.results.items() if not ok}


def parse(rc: int, output: str) -> Run:
    run = Run(rc, output, {}, set(), [], None)
    for line in output.splitlines():
        if m := LINE.match(line):
            case = f"{m[2]}.{m[3]}"
            assert case not in run.results, f"case {case} reported twice"
            run.results[case] = (m[1] == "ok", int(m[4], 16), int(m[5], 16))
        elif m := SKIPPED.match(line):
            run.skipped.add(f"{m[1]}.{m[2]}")
        elif m := CRASH.match(line):
            run.crashed.append(f"{m[1]}.{m[2]}")
        elif m := SUMMARY.match(line):
            run.summary = (int(m[1]), int(m[2]), int(m[3]))
    return run


def badinput(binary: Path, module: Module, *options: str, wrapper: Iterable[str] = (),
             env: dict[str, str] | None = None) -> Run:
    label = f"bi-{uuid.uuid4().hex[:12]}"
    proc = subprocess.run([*wrapper, str(binary), module.path, label, SO_PIN, USER_PIN, *options],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, **module.env, **(env or {})})
    return parse(proc.returncode, proc.stdout + proc.stderr)


def rv_name(rv: int) -> str:
    if rv & SETUP_FAILED:
        return f"(a step before the call failed: {rv_name(rv & ~SETUP_FAILED)})"
    try:
        return "CKR_" + CKR(rv).name
    except ValueError:
        return hex(rv)


def describe(failures: dict[str, tuple[int, int]]) -> str:
    return "\n".join(f"  {case}: got {rv_name(got)}, want {rv_name(want)}" for case, (got, want) in failures.items())


@pytest.fixture(scope="session")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_c(SOURCE, tmp_path_factory.mktemp("badinput") / "badinput")


_RUNS: dict[str, Run] = {}


def full_run(module: Module, binary: Path) -> Run:
    """The full run on one module (SoftHSM2 without the cases that crash it), once."""
    if module.name not in _RUNS:
        skips = [arg for case in SOFTHSM_CRASHES for arg in ("--skip", case)] if module.name == "softhsm" else []
        _RUNS[module.name] = badinput(binary, module, *skips)
    return _RUNS[module.name]


@pytest.fixture
def run(module: Module, binary: Path) -> Run:
    return full_run(module, binary)


# ---- the tests -------------------------------------------------------------------------------

def all_functions() -> set[str]:
    """The 68 names of CK_FUNCTION_LIST, read from csrc/pkcs11.h."""
    return set(re.findall(r"CK_RV \(\*(C_\w+)\)", (ROOT / "csrc" / "pkcs11.h").read_text()))


def test_the_process_survives_every_case_and_all_68_functions_are_called(run: Run) -> None:
    assert not run.crashed, f"crashed in {run.crashed}\n{run.output[-3000:]}"
    assert run.rc in (0, 1), f"exit status {run.rc}\n{run.output[-3000:]}"
    functions = all_functions()
    assert len(functions) == 68
    called = {case.split(".")[0] for case in run.results}
    assert called == functions, f"not called: {sorted(functions - called)}"
    failures = len(run.failures())
    assert run.summary == (len(run.results), len(run.results) - failures, failures)
    assert len(run.results) >= 500          # "a few hundred cases": no phase was cut short
    assert (run.rc == 1) == (failures > 0)


def test_every_case_returns_the_code_the_spec_names(run: Run, module: Module) -> None:
    expected = set(SOFTHSM_DIFFERS) if module.name == "softhsm" else set()
    failures = run.failures()
    unexpected = {case: f for case, f in failures.items() if case not in expected}
    stale = sorted(expected - set(failures))
    assert not unexpected and not stale, (
        f"{module.name} differs from the spec on cases not listed:\n{describe(unexpected)}\n"
        f"listed in SOFTHSM_DIFFERS but answered as the spec says: {stale}")
    assert not expected - set(run.results), "a listed case did not run"


def test_the_skipped_cases_are_exactly_those_that_crash_softhsm(run: Run, module: Module) -> None:
    assert run.skipped == (set(SOFTHSM_CRASHES) if module.name == "softhsm" else set())


@pytest.mark.parametrize("case", sorted(SOFTHSM_CRASHES))
def test_a_case_that_crashes_softhsm_is_answered_alone(module: Module, binary: Path, case: str,
                                                      differs: Callable[[str, str], None]) -> None:
    differs("softhsm", SOFTHSM_CRASHES[case])
    alone = badinput(binary, module, "--only", case)
    assert not alone.crashed and alone.rc == 0, f"exit status {alone.rc}\n{alone.output[-2000:]}"
    assert list(alone.results) == [case] and alone.results[case][0], alone.output[-2000:]


def unsupported_in_readme() -> dict[str, int]:
    """C_* function -> the CKR its README "Not supported" section says it returns."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Not supported", 1)[1].split("\n## ", 1)[0]
    answers: dict[str, int] = {}
    for sentence in re.split(r"\.\s", section):
        codes = re.findall(r"`CKR_(\w+)`", sentence)
        for fn in re.findall(r"`(C_\w+)`", sentence):
            answers[fn] = CKR[codes[0]]
    return answers


def test_unsupported_and_legacy_functions_answer_as_the_readme_says(hs: Module, binary: Path) -> None:
    run = full_run(hs, binary)
    answers = unsupported_in_readme()
    assert len(answers) == 13, answers      # 11 not supported, 2 legacy
    for fn, code in answers.items():
        rows = {case: r for case, r in run.results.items() if case.startswith(fn + ".") and r[2] == code}
        assert rows and all(ok for ok, _, _ in rows.values()), (fn, rv_name(code), rows)


# ---- valgrind memcheck ----------------------------------------------------------------------

def memcheck(log: Path) -> list[str]:
    return [
        which("valgrind"), "--tool=memcheck", "--error-exitcode=99", "--errors-for-leak-kinds=none",
        "--leak-check=no", "--track-origins=no", f"--suppressions={SUPPRESSIONS}", f"--log-file={log}",
    ]


def test_no_invalid_read_or_write_under_valgrind(hs: Module, binary: Path, tmp_path: Path) -> None:
    log = tmp_path / "memcheck.log"
    run = badinput(binary, hs, wrapper=memcheck(log), env={"PYTHONMALLOC": "malloc"})
    report = log.read_text()
    invalid = re.findall(r"^==\d+== (Invalid (?:read|write|free).*)$", report, re.M)
    assert not invalid, f"{len(invalid)} invalid accesses:\n{report[-6000:]}"
    assert run.rc == 0, f"exit status {run.rc} (99: valgrind found errors)\n{report[-6000:]}\n{run.output[-2000:]}"
    assert re.search(r"ERROR SUMMARY: 0 errors", report), report[-3000:]
    assert run.summary is not None and run.summary[2] == 0 and run.summary[0] >= 500, run.output[-3000:]


def test_valgrind_sees_an_invalid_read_made_by_the_shim(hs: Module, binary: Path, tmp_path: Path) -> None:
    """The canary: the caller claims 64 bytes in an 8-byte block; the shim's copy of the
    template reads past it. The run above is only worth something if this is seen."""
    log = tmp_path / "memcheck.log"
    run = badinput(binary, hs, "--only", CANARY, wrapper=memcheck(log), env={"PYTHONMALLOC": "malloc"})
    report = log.read_text()
    assert run.rc == 99, f"exit status {run.rc}\n{report[-3000:]}"
    first = report.split("Invalid read", 1)
    assert len(first) == 2, report[-3000:]
    stack = first[1].split("\n==", 1)[1].split("Address", 1)[0]
    assert "hs_flatten" in stack or "libhspkcs11" in stack, stack
