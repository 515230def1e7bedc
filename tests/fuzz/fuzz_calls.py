#!/usr/bin/env python3
"""Coverage-guided fuzzing of hspkcs11 through its C ABI (issue 8).

Each fuzz input is decoded into a sequence of PKCS#11 calls made through the module's
function list as a C host makes them (cffi ABI mode, tests/rawp11.py): sessions, logins
with random PINs, objects from random templates (unknown types, bad lengths, duplicate
attributes, NULL values), key generation, the init/update/final calls of every operation
kind with random mechanisms and parameter bytes, find, get/set attributes, wrap, unwrap,
derive and destroy, with handles drawn from the live ones and from random values.
atheris (libFuzzer for Python) mutates the inputs, guided by the engine's coverage.

A finding is
  - the process dying on a signal (the Python stack is printed, the input is left in
    WORKDIR/current-input),
  - a hang (libFuzzer's -timeout; the by-hand default is 120 s for one input),
  - a return code the specification does not list for the function (tests/fuzz/allowed.py),
    CKR_GENERAL_ERROR and CKR_DEVICE_ERROR among them: in this healthy region they mean
    an exception escaped the engine's own error handling,
  - a WARNING or worse in the module's log (abi/bridge.py logs every unmapped exception
    there with its traceback).
Each distinct finding is written once to findings.jsonl in the work directory, with the
input in hex and the calls that led to it, and the run goes on (exit status 3 at the end);
--stop-on-finding raises instead, so that libFuzzer saves the input as crash-*.

Each input runs between C_Initialize and C_Finalize on one token of a throwaway region
(made here with tests/conftest.make_region and `hspkcs11-util init-token`). Afterwards
the harness puts the PINs back and destroys the token objects the input made, so that
inputs stay independent. The sizes whose generation takes seconds (RSA above 2048 bits,
DSA/DH domain parameters above 1024/512 bits, generic secrets above 4 KiB) are replaced
with sizes no mechanism accepts: the fuzzer would otherwise learn them from the engine's
own range checks and spend its time in key generation. C_InitToken never gets the free
slot (each input would add a token), and a mechanism parameter is never bytes of another
structure's size whose "pointers" are wild: the module can only refuse NULL pointers.

  .venv/bin/python tests/fuzz/fuzz_calls.py --seconds 600 [--corpus DIR] [--workdir DIR] [libFuzzer flags]
  .venv/bin/python tests/fuzz/fuzz_calls.py --replay FILE...   # inputs once each, every call printed
                                        # (a findings.jsonl: each finding's input)
  .venv/bin/python tests/fuzz/fuzz_calls.py --seeds            # the seed corpus, checked
tests/test_fuzz.py runs it in CI for HSPKCS11_FUZZ_SECONDS (default 35) seconds.
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(HERE)]

from hspkcs11.consts import CKA, CKA_VENDOR_DEFINED, CKK, CKM, CKO, CKR, CKU  # noqa: E402  (constants only)

SO_PIN, USER_PIN = b"12345678", b"1234"
SESSION_FLAGS = 0x6                  # CKF_SERIAL_SESSION | CKF_RW_SESSION
SESSION_OBJECT_BASE = 0x40000000     # hspkcs11's session-object handles start here
MAX_CALLS = 80                       # calls of one input (its length bounds them too)
LEFTOVERS_BEFORE_WIPE = 64           # undestroyable token objects tolerated before C_InitToken

# Interesting CK_ULONG values; a tag byte past the table reads 8 raw bytes instead.
NUMBERS = [0, 1, 2, 3, 4, 7, 8, 12, 15, 16, 17, 20, 24, 28, 31, 32, 33, 48, 63, 64, 65, 96, 127, 128, 129,
           255, 256, 511, 512, 1023, 1024, 2048, 4096, 65537, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32,
           (1 << 63) - 1, 1 << 63, (1 << 64) - 2, (1 << 64) - 1, SESSION_OBJECT_BASE, SESSION_OBJECT_BASE + 1,
           CKA_VENDOR_DEFINED + 1]
RAW_NUMBER = 255

INVALID_SIZE = 1 << 40
# attribute -> the largest value generated as asked (see the docstring); (mechanism, attribute) first.
COSTLY = {CKA.MODULUS_BITS: 2048, CKA.PRIME_BITS: 1024, CKA.VALUE_LEN: 4096}
COSTLY_FOR = {(CKM.DH_PKCS_PARAMETER_GEN, CKA.PRIME_BITS): 512}

CURVES = [bytes.fromhex(h) for h in (
    "06082a8648ce3d030107", "06052b81040022", "06052b81040023", "06032b6570", "06032b6571",
    "130c656477617264733235353139", "06052b8104000a", "06082a8648ce3d030101", "0500", "06")]
DATES = [b"20240101", b"", b"2024010", b"abcdefgh", b"99991231"]
HASHES = [CKM.SHA256, CKM.SHA_1, CKM.SHA224, CKM.SHA384, CKM.SHA512, CKM.MD5, None]
UNKNOWN_MECHANISMS = [0x80000001, 0x1234, 0x1071, 0x2B0]       # vendor, unassigned, AES-XTS, SHA3-256
UNKNOWN_ATTRIBUTES = [0x7FFFFF00, CKA_VENDOR_DEFINED + 1, 0x40000211]

# The calls without a place of their own (not supported, or legacy)
UNSUPPORTED = ["C_GetOperationState", "C_SetOperationState", "C_SignRecoverInit", "C_SignRecover",
               "C_VerifyRecoverInit", "C_VerifyRecover", "C_DigestEncryptUpdate", "C_DecryptDigestUpdate",
               "C_SignEncryptUpdate", "C_DecryptVerifyUpdate", "C_GetFunctionStatus", "C_CancelFunction",
               "C_WaitForSlotEvent"]


def ulong(value: int) -> bytes:
    return (value & ((1 << 64) - 1)).to_bytes(8, "little")


# ---- the input ---------------------------------------------------------------------------

class Source:
    """A fuzz input read by a few primitives; past its end every read gives zeros."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    @property
    def left(self) -> bool:
        return self.pos < len(self.data)

    def byte(self) -> int:
        b = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk.ljust(n, b"\0")

    def number(self) -> int:
        tag = self.byte()
        return NUMBERS[tag] if tag < len(NUMBERS) else int.from_bytes(self.take(8), "little")

    def choose(self, options: Sequence[Any]) -> Any:
        """One of `options`; None in the table means any CK_ULONG."""
        value = options[self.byte() % len(options)]
        return self.number() if value is None else value

    def size(self, limit: int) -> int:
        return int.from_bytes(self.take(2), "little") % (limit + 1)

    def blob(self, limit: int) -> bytes:
        return self.take(self.size(limit))


class Writer:
    """Writes what Source reads: how the seed inputs are written."""

    def __init__(self) -> None:
        self.out = bytearray()

    def byte(self, *values: int) -> "Writer":
        self.out += bytes(values)
        return self

    def number(self, value: int) -> "Writer":
        if value in NUMBERS:
            return self.byte(NUMBERS.index(value))
        self.out += bytes([RAW_NUMBER]) + ulong(value)
        return self

    def size(self, n: int) -> "Writer":
        self.out += n.to_bytes(2, "little")
        return self

    def blob(self, data: bytes) -> "Writer":
        self.size(len(data))
        self.out += data
        return self


# ---- the harness ----------------------------------------------------------------------------

@dataclass
class Stats:
    sequences: int = 0
    calls: int = 0
    findings: int = 0
    by_function: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    distinct: dict[str, int] = field(default_factory=dict)
    slowest: tuple[float, str] = (0.0, "")
    started: float = field(default_factory=time.monotonic)

    def as_json(self) -> dict[str, Any]:
        ok = sum(c.get("CKR_OK", 0) for c in self.by_function.values())
        return {"sequences": self.sequences, "calls": self.calls, "ok_calls": ok, "findings": self.findings,
                "distinct_findings": self.distinct, "seconds": round(time.monotonic() - self.started, 1),
                "slowest_call": [round(self.slowest[0], 3), self.slowest[1]],
                "functions_called": len(self.by_function),
                "by_function": {fn: dict(c) for fn, c in sorted(self.by_function.items())}}


class Finding(Exception):
    pass


@dataclass
class Run:
    """What one input has made and knows: handles, the last output, the login."""
    sessions: list[int] = field(default_factory=list)     # every handle opened, closed ones too
    live: set[int] = field(default_factory=set)
    objects: list[int] = field(default_factory=list)
    made: list[int] = field(default_factory=list)         # objects this input created
    last: bytes = b""
    login: int | None = None
    initialized: bool = True
    trace: list[str] = field(default_factory=list)


def rv_name(rv: int) -> str:
    try:
        return "CKR_" + CKR(rv).name
    except ValueError:
        return hex(rv)


class Harness:
    def __init__(self, conf: Path, workdir: Path, stop_on_finding: bool) -> None:
        import hspkcs11
        from hspkcs11.mechanisms import MECHANISMS
        from hspkcs11.mechanisms.params import ParamKind
        from hspkcs11.p11 import codec
        from rawp11 import Raw, ffi
        from allowed import SPEC, allowed

        self.ffi, self.ParamKind, self.codec = ffi, ParamKind, codec
        self.raw = Raw(str(hspkcs11.module_path()))
        self.allowed = {name: allowed(name) for name in SPEC}
        self.conf, self.workdir, self.stop = conf, workdir, stop_on_finding
        self.log = workdir / "hspkcs11.log"
        self.log_pos = self.log.stat().st_size if self.log.exists() else 0
        self.findings_file = workdir / "findings.jsonl"
        self.stats = Stats()
        self.so_pin, self.user_pin = SO_PIN, USER_PIN
        self.leftovers = 0
        self.param_kinds = {m.mech: m.param for m in MECHANISMS.values()}
        self.run = Run()
        self.data = b""
        self.verbose = False
        rv = self.raw.C_Initialize(ffi.NULL)
        assert rv == CKR.OK, rv_name(rv)
        self.mechs = self._mechanism_list() + UNKNOWN_MECHANISMS
        self.slot, self.free_slot = self._slots()
        self.attr_types = [int(c) for c in CKA] + UNKNOWN_ATTRIBUTES
        self.good = self._good_values()
        self._checked("C_Finalize", ffi.NULL)
        self.ops: list[Callable[[Source], None]] = [getattr(self, "op_" + name) for name in OPS]

    # ---- set-up ---------------------------------------------------------------------------

    def _mechanism_list(self) -> list[int]:
        n = self.ffi.new("CK_ULONG *")
        assert self.raw.C_GetMechanismList(0, self.ffi.NULL, n) == CKR.OK
        arr = self.ffi.new("CK_MECHANISM_TYPE[]", n[0])
        assert self.raw.C_GetMechanismList(0, arr, n) == CKR.OK
        return sorted(arr[i] for i in range(n[0]))

    def _slots(self) -> tuple[int, int]:
        """The fuzzed token's slot (the only initialized one) and the free slot."""
        ffi = self.ffi
        n = ffi.new("CK_ULONG *")
        assert self.raw.C_GetSlotList(1, ffi.NULL, n) == CKR.OK
        arr = ffi.new("CK_SLOT_ID[]", n[0])
        assert self.raw.C_GetSlotList(1, arr, n) == CKR.OK
        info = ffi.new("CK_TOKEN_INFO *")
        token, free = [], []
        for slot in (arr[i] for i in range(n[0])):
            assert self.raw.C_GetTokenInfo(slot, info) == CKR.OK
            (token if info.flags & 0x400 else free).append(slot)     # CKF_TOKEN_INITIALIZED
        assert len(token) == 1 and len(free) == 1, (token, free)
        return token[0], free[0]

    def _good_values(self) -> dict[int, list[bytes]]:
        """Values that make sense for an attribute, so that templates often get far."""
        kinds = self.codec.KINDS
        good: dict[int, list[bytes]] = {}
        for cka, kind in kinds.items():
            good[int(cka)] = {self.codec.Kind.BOOL: [b"\x01", b"\x00"]}.get(kind, [])
        good.update({
            CKA.CLASS: [ulong(c) for c in CKO] + [ulong(0x7FFFFFFF)],
            CKA.KEY_TYPE: [ulong(k) for k in CKK] + [ulong(0x7FFFFFFF)],
            CKA.CERTIFICATE_TYPE: [ulong(0), ulong(1), ulong(3)],
            CKA.VALUE_LEN: [ulong(n) for n in (16, 32, 24, 0, 1, 20, 48, 64, 8, 4097)],
            CKA.MODULUS_BITS: [ulong(n) for n in (1024, 512, 2048, 0, 1, 768, 1023)],
            CKA.PRIME_BITS: [ulong(n) for n in (512, 1024, 0, 160, 513, 2048)],
            CKA.SUBPRIME_BITS: [ulong(n) for n in (160, 224, 256, 0)],
            CKA.PUBLIC_EXPONENT: [b"\x01\x00\x01", b"\x03", b"\x00", b"\x01", b"", b"\x02", b"\x00\x01\x00\x01"],
            CKA.EC_PARAMS: CURVES,
            CKA.START_DATE: DATES, CKA.END_DATE: DATES,
        })
        return good

    # ---- calls ------------------------------------------------------------------------------

    def call(self, name: str, *args: Any) -> int:
        """One C call, timed, counted and checked against the codes the spec lists."""
        start = time.monotonic()
        rv = getattr(self.raw.fl, name)(*args)
        took = time.monotonic() - start
        self.stats.calls += 1
        self.stats.by_function[name][rv_name(rv)] += 1
        if took > self.stats.slowest[0]:
            self.stats.slowest = (took, name)
        self.run.trace.append(f"{name} -> {rv_name(rv)}")
        if self.verbose:
            print(f"  {name} -> {rv_name(rv)} ({took * 1000:.1f} ms)")
        if rv not in self.allowed[name]:
            self.finding("code", f"{name} -> {rv_name(rv)}")
        return rv

    def _checked(self, name: str, *args: Any) -> None:
        """A call of the harness's own set-up or clean-up: it must succeed."""
        rv = getattr(self.raw.fl, name)(*args)
        if rv != CKR.OK:
            self.finding("cleanup", f"{name} -> {rv_name(rv)}")
            raise RuntimeError(f"harness clean-up: {name} -> {rv_name(rv)}; trace: {self.run.trace[-20:]}")

    def finding(self, kind: str, what: str, detail: str = "") -> None:
        self.stats.findings += 1
        key = f"{kind}: {what}"
        first = key not in self.stats.distinct
        self.stats.distinct[key] = self.stats.distinct.get(key, 0) + 1
        if first:
            record = {"kind": kind, "what": what, "detail": detail, "input": self.data.hex(),
                      "trace": self.run.trace[-40:]}
            with self.findings_file.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"FINDING {key}", file=sys.stderr, flush=True)
        if self.stop:
            raise Finding(f"{key}\n{detail}\ntrace: " + "\n  ".join(self.run.trace[-40:]))

    def check_log(self) -> None:
        """WARNING and worse in the module's log are findings (the bridge logs tracebacks)."""
        if not self.log.exists():
            return
        with self.log.open("rb") as f:
            f.seek(self.log_pos)
            text = f.read().decode(errors="replace")
            self.log_pos = f.tell()
        lines = text.splitlines()
        for i, line in enumerate(lines):
            for level in (" WARNING ", " ERROR ", " CRITICAL "):
                if level in line:
                    message = line.split(level, 1)[1]
                    head = message.split(":", 1)[0][:80]
                    self.finding("log", f"{level.strip()} {head}", "\n".join(lines[i:i + 40]))

    # ---- one input ------------------------------------------------------------------------

    def one(self, data: bytes) -> None:
        self.data, self.run = data, Run()
        self.stats.sequences += 1
        self._checked("C_Initialize", self.ffi.NULL)
        self.run.trace.append("C_Initialize -> CKR_OK")
        src = Source(data)
        for _ in range(MAX_CALLS):
            if not src.left:
                break
            self.ops[src.byte() % len(self.ops)](src)
        self.cleanup()
        self.check_log()

    def cleanup(self) -> None:
        """Back to the state every input starts from: no session, the suite's PINs, no
        token object this input made; then C_Finalize."""
        ffi, run = self.ffi, self.run
        if not run.initialized:
            self._checked("C_Initialize", ffi.NULL)
        self._checked("C_CloseAllSessions", self.slot)
        token_objects = [h for h in run.made if h < SESSION_OBJECT_BASE]
        if self.so_pin != SO_PIN or self.user_pin != USER_PIN:
            h = self._open()
            self._checked("C_Login", h, CKU.SO, self.so_pin, len(self.so_pin))
            if self.so_pin != SO_PIN:
                self._checked("C_SetPIN", h, self.so_pin, len(self.so_pin), SO_PIN, len(SO_PIN))
                self.so_pin = SO_PIN
            self._checked("C_InitPIN", h, USER_PIN, len(USER_PIN))
            self.user_pin = USER_PIN
            self._checked("C_CloseSession", h)
        if token_objects:
            h = self._open()
            self._checked("C_Login", h, CKU.USER, USER_PIN, len(USER_PIN))
            for handle in token_objects:
                rv = self.raw.C_DestroyObject(h, handle)
                self.leftovers += rv == CKR.ACTION_PROHIBITED       # CKA_DESTROYABLE false
            self._checked("C_CloseSession", h)
        if self.leftovers > LEFTOVERS_BEFORE_WIPE:
            self._wipe_token()
        self._checked("C_Finalize", ffi.NULL)

    def _open(self) -> int:
        h = self.ffi.new("CK_SESSION_HANDLE *")
        self._checked("C_OpenSession", self.slot, SESSION_FLAGS, self.ffi.NULL, self.ffi.NULL, h)
        return h[0]

    def _wipe_token(self) -> None:
        label = b"fuzz".ljust(32, b" ")
        self._checked("C_InitToken", self.slot, SO_PIN, len(SO_PIN), label)
        h = self._open()
        self._checked("C_Login", h, CKU.SO, SO_PIN, len(SO_PIN))
        self._checked("C_InitPIN", h, USER_PIN, len(USER_PIN))
        self._checked("C_CloseSession", h)
        self.leftovers = 0

    # ---- arguments --------------------------------------------------------------------------

    def session(self, src: Source) -> int:
        b = src.byte()
        if b < 200 and self.run.sessions:
            return self.run.sessions[-1 - b % len(self.run.sessions)]
        return src.number()

    def obj(self, src: Source) -> int:
        b = src.byte()
        if b < 200 and self.run.objects:
            return self.run.objects[-1 - b % len(self.run.objects)]
        return src.number()

    def slot_id(self, src: Source) -> int:
        slot = [self.slot, self.slot, self.free_slot, None][src.byte() % 4]
        return src.number() if slot is None else slot

    def out_handle(self, src: Source, keep: list[Any]) -> Any:
        """Where a new handle goes: NULL now and then."""
        if src.byte() == 255:
            return self.ffi.NULL
        keep.append(self.ffi.new("CK_ULONG *"))
        return keep[-1]

    def buf(self, value: bytes, keep: list[Any]) -> Any:
        keep.append(self.ffi.new("CK_BYTE[]", max(len(value), 1)))
        if value:
            self.ffi.memmove(keep[-1], value, len(value))
        return keep[-1]

    def inner(self, src: Source, keep: list[Any], sizes: Sequence[int] = ()) -> tuple[Any, int]:
        """A (pointer, length) inside a mechanism parameter."""
        mode = src.byte() % 6
        if mode == 0:
            value = src.take(sizes[src.byte() % len(sizes)]) if sizes else src.blob(64)
        elif mode == 1:
            value = self.run.last
        elif mode == 2:
            value = src.blob(300)
        elif mode == 3:
            return self.ffi.NULL, src.size(64) + 1
        elif mode == 4:
            return self.ffi.NULL, 0
        else:
            value = b""
        return self.buf(value, keep), len(value)

    def data_in(self, src: Source, keep: list[Any]) -> tuple[Any, int]:
        """Input data: random, the last output (a ciphertext, a signature), NULL, or large."""
        mode = src.byte() % 6
        if mode in (0, 2):
            value = src.blob(256)
        elif mode == 1:
            value = self.run.last
        elif mode == 3:
            return self.ffi.NULL, src.size(1000) + 1
        elif mode == 4:
            return self.ffi.NULL, 0
        else:
            value = bytes([src.byte()]) * src.size(65536)
        return self.buf(value, keep), len(value)

    def data_out(self, src: Source, keep: list[Any]) -> tuple[Any, Any]:
        """An output buffer and its length: ample, a length query, small, or no length pointer."""
        ffi = self.ffi
        mode = src.byte() % 4
        if mode == 3:
            return ffi.NULL, ffi.NULL
        cap = src.size(64) if mode == 2 else 8192
        n = ffi.new("CK_ULONG *", cap)
        keep.append(n)
        if mode == 1:
            return ffi.NULL, n
        return self.buf(bytes(cap), keep), n

    def keep_output(self, rv: int, out: Any, n: Any) -> None:
        if rv != CKR.OK or out == self.ffi.NULL or n == self.ffi.NULL:
            return
        if n[0] > self.ffi.sizeof(out):
            self.finding("length", f"{self.run.trace[-1]} with {n[0]} bytes in a {self.ffi.sizeof(out)}-byte buffer")
            return
        self.run.last = bytes(self.ffi.buffer(out, n[0]))

    def pin(self, src: Source, keep: list[Any]) -> tuple[Any, int]:
        mode = src.byte() % 6
        if mode in (0, 5):
            value = self.user_pin or USER_PIN
        elif mode == 1:
            value = self.so_pin
        elif mode == 2:
            value = src.blob(300)
        elif mode == 3:
            return self.ffi.NULL, src.size(64) + 1
        else:
            value = b""
        return self.buf(value, keep), len(value)

    def attr_type(self, src: Source) -> int:
        b = src.byte()
        return self.attr_types[b % len(self.attr_types)] if b < 240 else src.number()

    def attr_value(self, src: Source, cka: int, mech: int | None, keep: list[Any]) -> tuple[Any, int]:
        mode = src.byte() % 8
        if mode == 5:
            return self.ffi.NULL, src.number()
        if mode == 6:
            return self.ffi.NULL, 0
        value = src.blob(300) if mode in (0, 4) else self.good_value(src, cka)
        if mode == 7:       # a good value with a bad length
            value = value[:-1] if value and src.byte() & 1 else value + b"\0"
        value = affordable(mech, cka, value)
        return self.buf(value, keep), len(value)

    def good_value(self, src: Source, cka: int) -> bytes:
        options = self.good.get(cka)
        if options:
            return options[src.byte() % len(options)]
        if cka == CKA.VALUE:
            return src.take([16, 32, 24, 8, 0, 64, 1, 20][src.byte() % 8])
        if cka == CKA.ALLOWED_MECHANISMS:
            return b"".join(ulong(self.mechs[src.byte() % len(self.mechs)]) for _ in range(src.byte() % 4))
        kind = self.codec.KINDS.get(cka)
        if kind is self.codec.Kind.ULONG:
            return ulong(src.number())
        return src.blob(64)

    def template(self, src: Source, keep: list[Any], mech: int | None = None) -> tuple[Any, int]:
        b = src.byte()
        if b == 255:
            return self.ffi.NULL, src.number()
        n = b % 13
        arr = self.ffi.new("CK_ATTRIBUTE[]", max(n, 1))
        keep.append(arr)
        for i in range(n):
            cka = self.attr_type(src)
            arr[i].type = cka
            arr[i].pValue, arr[i].ulValueLen = self.attr_value(src, cka, mech, keep)
        return arr, n

    def mechanism(self, src: Source, keep: list[Any]) -> tuple[Any, int | None]:
        b = src.byte()
        if b == 255:
            return self.ffi.NULL, None
        mech = self.mechs[b % len(self.mechs)] if b < 240 else src.number()
        m = self.ffi.new("CK_MECHANISM *")
        keep.append(m)
        m.mechanism = mech
        m.pParameter, m.ulParameterLen = self.param(src, mech, keep)
        return m, mech

    def param(self, src: Source, mech: int, keep: list[Any]) -> tuple[Any, int]:
        """A mechanism parameter: well formed for the mechanism (with fuzzed fields), of
        another kind, cut short or too long, raw bytes, or NULL."""
        ffi = self.ffi
        mode = src.byte() % 8
        expected = kind = self.param_kinds.get(mech, self.ParamKind.RAW)
        if mode == 2:
            return ffi.NULL, 0
        if mode == 4:
            return ffi.NULL, src.number()
        if mode == 3:
            value = src.blob(64)
            ptr, n = self.buf(value, keep), len(value)
            kind = self.ParamKind.RAW
        else:
            if mode == 1:
                kind = list(self.ParamKind)[src.byte() % len(self.ParamKind)]
            ptr, n = self.struct(src, kind, keep)
            if mode == 7 and ptr != ffi.NULL:     # the struct with a wrong length (never past the buffer)
                wider = self.buf(bytes(ffi.buffer(ptr, n)) + bytes(16), keep)
                return wider, max(0, n + [-8, -1, 1, 8][src.byte() % 4])
        # Bytes of the size of a structure that holds pointers are read as that structure:
        # unless they are one, their "pointers" are wild, the caller's memory error (the
        # module can only refuse NULL). Such bytes go one short, which the module refuses.
        if kind is not expected and expected.name in POINTER_STRUCTS and n == ffi.sizeof(STRUCTS[expected.name]):
            n -= 1
        return ptr, n

    def struct(self, src: Source, kind: Any, keep: list[Any]) -> tuple[Any, int]:
        ffi, K = self.ffi, self.ParamKind
        ctype = STRUCTS.get(kind.name)
        if ctype is None:
            if kind is K.RAW:
                return self.inner(src, keep, (16, 8, 0, 12, 32, 1, 64, 24))
            return ffi.NULL, 0                                  # K.NONE
        p = ffi.new(ctype + " *")
        keep.append(p)
        if kind is K.ULONG:
            p[0] = src.choose([16, 8, 4, 0, 17, 32, None])
        elif kind is K.GCM:
            p.pIv, p.ulIvLen = self.inner(src, keep, (12, 16, 0, 1, 128))
            p.ulIvBits = p.ulIvLen * 8
            p.pAAD, p.ulAADLen = self.inner(src, keep)
            p.ulTagBits = src.choose([128, 96, 64, 120, 0, 8, 129, None])
        elif kind is K.CTR:
            p.ulCounterBits = src.choose([128, 64, 32, 0, 1, 129, None])
            ffi.memmove(p.cb, src.take(16), 16)
        elif kind is K.OAEP:
            p.hashAlg, p.mgf = src.choose(HASHES), src.choose([1, 2, 3, 4, 5, 0, None])
            p.source = src.choose([1, 0, None])
            p.pSourceData, p.ulSourceDataLen = self.inner(src, keep)
        elif kind is K.PSS:
            p.hashAlg, p.mgf = src.choose(HASHES), src.choose([2, 1, 3, 4, 5, 0, None])
            p.sLen = src.choose([32, 20, 0, 64, 48, 28, 1 << 32, None])
        elif kind is K.ECDH1:
            p.kdf = src.choose([1, 2, 3, 4, 5, 6, 0, None])
            p.pSharedData, p.ulSharedDataLen = self.inner(src, keep)
            p.pPublicData, p.ulPublicDataLen = self.inner(src, keep)
        elif kind is K.DERIVATION_STRING:
            p.pData, p.ulLen = self.inner(src, keep, (16, 32, 8, 0, 24, 1))
        elif kind in (K.AES_CBC_DATA, K.DES_CBC_DATA):
            ffi.memmove(p.iv, src.take(len(p.iv)), len(p.iv))
            p.pData, p.length = self.inner(src, keep, (16, 32, 8, 0, 24, 1))
        elif kind is K.EDDSA:
            p.phFlag = src.byte() % 3
            p.pContextData, p.ulContextDataLen = self.inner(src, keep)
        return p, ffi.sizeof(ctype)

    # ---- bookkeeping of what calls made -------------------------------------------------------

    def made(self, rv: int, *handles: Any) -> None:
        if rv == CKR.OK:
            for h in handles:
                if h != self.ffi.NULL:
                    self.run.objects.append(h[0])
                    self.run.made.append(h[0])

    def sessions_ended(self) -> None:
        self.run.live.clear()
        self.run.login = None

    # ---- operations (OPS names them in a fixed order: an input's bytes choose) ----------------

    def op_open_session(self, src: Source) -> None:
        keep: list[Any] = []
        slot, flags = self.slot_id(src), src.choose([SESSION_FLAGS, 0x4, 0x2, 0, None])
        out = self.out_handle(src, keep)
        rv = self.call("C_OpenSession", slot, flags, self.ffi.NULL, self.ffi.NULL, out)
        if rv == CKR.OK:
            self.run.sessions.append(out[0])
            self.run.live.add(out[0])

    def op_close_session(self, src: Source) -> None:
        h = self.session(src)
        if self.call("C_CloseSession", h) == CKR.OK:
            self.run.live.discard(h)
            if not self.run.live:
                self.run.login = None

    def op_close_all(self, src: Source) -> None:
        slot = self.slot_id(src)
        if self.call("C_CloseAllSessions", slot) == CKR.OK and slot == self.slot:
            self.sessions_ended()

    def op_session_info(self, src: Source) -> None:
        h = self.session(src)
        info = self.ffi.NULL if src.byte() == 255 else self.ffi.new("CK_SESSION_INFO *")
        self.call("C_GetSessionInfo", h, info)

    def op_login(self, src: Source) -> None:
        keep: list[Any] = []
        h, user = self.session(src), src.choose([CKU.USER, CKU.SO, CKU.CONTEXT_SPECIFIC, None])
        pin, n = self.pin(src, keep)
        if self.call("C_Login", h, user, pin, n) == CKR.OK and user in (CKU.SO, CKU.USER):
            self.run.login = user

    def op_logout(self, src: Source) -> None:
        if self.call("C_Logout", self.session(src)) == CKR.OK:
            self.run.login = None

    def op_init_pin(self, src: Source) -> None:
        keep: list[Any] = []
        h = self.session(src)
        pin, n = self.pin(src, keep)
        if self.call("C_InitPIN", h, pin, n) == CKR.OK:
            self.user_pin = bytes(self.ffi.buffer(pin, n))

    def op_set_pin(self, src: Source) -> None:
        keep: list[Any] = []
        h = self.session(src)
        old, old_n = self.pin(src, keep)
        new, new_n = self.pin(src, keep)
        if self.call("C_SetPIN", h, old, old_n, new, new_n) == CKR.OK:
            value = bytes(self.ffi.buffer(new, new_n))
            if self.run.login == CKU.SO:
                self.so_pin = value
            else:
                self.user_pin = value

    def op_init_token(self, src: Source) -> None:
        keep: list[Any] = []
        slot = self.slot_id(src)
        if slot == self.free_slot:
            slot = self.slot        # a token in the free slot would be a new token per input
        pin, n = self.pin(src, keep)
        label = self.ffi.NULL if src.byte() == 255 else self.buf(src.take(32), keep)
        if self.call("C_InitToken", slot, pin, n, label) == CKR.OK:
            self.so_pin, self.user_pin = bytes(self.ffi.buffer(pin, n)), None
            self.run.made = [h for h in self.run.made if h >= SESSION_OBJECT_BASE]
            self.leftovers = 0

    def op_info(self, src: Source) -> None:
        ffi = self.ffi
        which, slot = src.byte() % 3, self.slot_id(src)
        null = src.byte() == 255
        if which == 0:
            self.call("C_GetInfo", ffi.NULL if null else ffi.new("CK_INFO *"))
        elif which == 1:
            self.call("C_GetSlotInfo", slot, ffi.NULL if null else ffi.new("CK_SLOT_INFO *"))
        else:
            self.call("C_GetTokenInfo", slot, ffi.NULL if null else ffi.new("CK_TOKEN_INFO *"))

    def op_list(self, src: Source) -> None:
        """C_GetSlotList or C_GetMechanismList: query, short list, long list, NULL count."""
        ffi = self.ffi
        slots = src.byte() & 1
        arg = src.byte() & 1 if slots else self.slot_id(src)
        mode = src.byte() % 4
        n = ffi.NULL if mode == 3 else ffi.new("CK_ULONG *", src.size(8) if mode == 2 else 256 * (mode == 1))
        arr = ffi.NULL if mode in (0, 3) else ffi.new("CK_ULONG[]", max(n[0], 1))
        self.call("C_GetSlotList" if slots else "C_GetMechanismList", arg, arr, n)

    def op_mech_info(self, src: Source) -> None:
        slot, b = self.slot_id(src), src.byte()
        mech = self.mechs[b % len(self.mechs)] if b < 240 else src.number()
        info = self.ffi.NULL if src.byte() == 255 else self.ffi.new("CK_MECHANISM_INFO *")
        self.call("C_GetMechanismInfo", slot, mech, info)

    def op_create(self, src: Source) -> None:
        keep: list[Any] = []
        h = self.session(src)
        tmpl, n = self.template(src, keep)
        out = self.out_handle(src, keep)
        self.made(self.call("C_CreateObject", h, tmpl, n, out), out)

    def op_copy(self, src: Source) -> None:
        keep: list[Any] = []
        h, o = self.session(src), self.obj(src)
        tmpl, n = self.template(src, keep)
        out = self.out_handle(src, keep)
        self.made(self.call("C_CopyObject", h, o, tmpl, n, out), out)

    def op_destroy(self, src: Source) -> None:
        self.call("C_DestroyObject", self.session(src), self.obj(src))

    def op_object_size(self, src: Source) -> None:
        h, o = self.session(src), self.obj(src)
        self.call("C_GetObjectSize", h, o, self.ffi.NULL if src.byte() == 255 else self.ffi.new("CK_ULONG *"))

    def op_get_attrs(self, src: Source) -> None:
        ffi, keep = self.ffi, []
        h, o = self.session(src), self.obj(src)
        b = src.byte()
        if b == 255:
            self.call("C_GetAttributeValue", h, o, ffi.NULL, src.number())
            return
        n = b % 9
        arr = ffi.new("CK_ATTRIBUTE[]", max(n, 1))
        for i in range(n):
            arr[i].type = self.attr_type(src)
            mode = src.byte() % 3
            cap = src.size(64) if mode == 2 else 2048
            if mode == 1:
                arr[i].pValue, arr[i].ulValueLen = ffi.NULL, src.number()   # a length query
            else:
                arr[i].pValue, arr[i].ulValueLen = self.buf(bytes(cap), keep), cap
        rv = self.call("C_GetAttributeValue", h, o, arr, n)
        if rv == CKR.OK and n == 1 and arr[0].pValue != ffi.NULL and arr[0].ulValueLen <= ffi.sizeof(keep[-1]):
            self.run.last = bytes(ffi.buffer(arr[0].pValue, arr[0].ulValueLen))

    def op_set_attrs(self, src: Source) -> None:
        keep: list[Any] = []
        h, o = self.session(src), self.obj(src)
        tmpl, n = self.template(src, keep)
        self.call("C_SetAttributeValue", h, o, tmpl, n)

    def op_find_init(self, src: Source) -> None:
        keep: list[Any] = []
        h = self.session(src)
        tmpl, n = self.template(src, keep)
        self.call("C_FindObjectsInit", h, tmpl, n)

    def op_find(self, src: Source) -> None:
        ffi = self.ffi
        h, mode = self.session(src), src.byte() % 3
        count = ffi.NULL if mode == 2 else ffi.new("CK_ULONG *")
        if mode == 1:
            rv = self.call("C_FindObjects", h, ffi.NULL, src.number(), count)
            return
        cap = src.size(16)
        out = ffi.new("CK_OBJECT_HANDLE[]", max(cap, 1))
        rv = self.call("C_FindObjects", h, out, cap, count)
        if rv == CKR.OK and count != ffi.NULL:
            if count[0] > cap:
                self.finding("length", f"C_FindObjects wrote {count[0]} handles, {cap} asked")
            self.run.objects += [out[i] for i in range(min(count[0], cap))]

    def op_find_final(self, src: Source) -> None:
        self.call("C_FindObjectsFinal", self.session(src))

    def op_crypt_init(self, src: Source) -> None:
        keep: list[Any] = []
        name = ["C_EncryptInit", "C_DecryptInit", "C_SignInit", "C_VerifyInit"][src.byte() % 4]
        h = self.session(src)
        mech, _ = self.mechanism(src, keep)
        self.call(name, h, mech, self.obj(src))

    def op_digest_init(self, src: Source) -> None:
        keep: list[Any] = []
        h = self.session(src)
        mech, _ = self.mechanism(src, keep)
        self.call("C_DigestInit", h, mech)

    def op_one_shot(self, src: Source) -> None:
        keep: list[Any] = []
        name = ["C_Encrypt", "C_Decrypt", "C_Digest", "C_Sign", "C_EncryptUpdate", "C_DecryptUpdate"][src.byte() % 6]
        h = self.session(src)
        data, n = self.data_in(src, keep)
        out, out_n = self.data_out(src, keep)
        self.keep_output(self.call(name, h, data, n, out, out_n), out, out_n)

    def op_feed(self, src: Source) -> None:
        keep: list[Any] = []
        name = ["C_DigestUpdate", "C_SignUpdate", "C_VerifyUpdate"][src.byte() % 3]
        h = self.session(src)
        data, n = self.data_in(src, keep)
        self.call(name, h, data, n)

    def op_final(self, src: Source) -> None:
        keep: list[Any] = []
        name = ["C_EncryptFinal", "C_DecryptFinal", "C_DigestFinal", "C_SignFinal"][src.byte() % 4]
        h = self.session(src)
        out, out_n = self.data_out(src, keep)
        self.keep_output(self.call(name, h, out, out_n), out, out_n)

    def op_verify(self, src: Source) -> None:
        keep: list[Any] = []
        final = src.byte() & 1
        h = self.session(src)
        if final:
            sig, sig_n = self.data_in(src, keep)
            self.call("C_VerifyFinal", h, sig, sig_n)
            return
        data, n = self.data_in(src, keep)
        sig, sig_n = self.data_in(src, keep)
        self.call("C_Verify", h, data, n, sig, sig_n)

    def op_digest_key(self, src: Source) -> None:
        self.call("C_DigestKey", self.session(src), self.obj(src))

    def op_generate_key(self, src: Source) -> None:
        keep: list[Any] = []
        h = self.session(src)
        mech, kind = self.mechanism(src, keep)
        tmpl, n = self.template(src, keep, kind)
        out = self.out_handle(src, keep)
        self.made(self.call("C_GenerateKey", h, mech, tmpl, n, out), out)

    def op_generate_pair(self, src: Source) -> None:
        keep: list[Any] = []
        h = self.session(src)
        mech, kind = self.mechanism(src, keep)
        pub, pub_n = self.template(src, keep, kind)
        priv, priv_n = self.template(src, keep, kind)
        out_pub, out_priv = self.out_handle(src, keep), self.out_handle(src, keep)
        rv = self.call("C_GenerateKeyPair", h, mech, pub, pub_n, priv, priv_n, out_pub, out_priv)
        self.made(rv, out_pub, out_priv)

    def op_wrap(self, src: Source) -> None:
        keep: list[Any] = []
        h = self.session(src)
        mech, _ = self.mechanism(src, keep)
        wrapping, key = self.obj(src), self.obj(src)
        out, out_n = self.data_out(src, keep)
        self.keep_output(self.call("C_WrapKey", h, mech, wrapping, key, out, out_n), out, out_n)

    def op_unwrap(self, src: Source) -> None:
        keep: list[Any] = []
        h = self.session(src)
        mech, _ = self.mechanism(src, keep)
        unwrapping = self.obj(src)
        data, n = self.data_in(src, keep)
        tmpl, tn = self.template(src, keep)
        out = self.out_handle(src, keep)
        self.made(self.call("C_UnwrapKey", h, mech, unwrapping, data, n, tmpl, tn, out), out)

    def op_derive(self, src: Source) -> None:
        keep: list[Any] = []
        h = self.session(src)
        mech, _ = self.mechanism(src, keep)
        base = self.obj(src)
        tmpl, n = self.template(src, keep)
        out = self.out_handle(src, keep)
        self.made(self.call("C_DeriveKey", h, mech, base, tmpl, n, out), out)

    def op_random(self, src: Source) -> None:
        keep: list[Any] = []
        seed, h = src.byte() & 1, self.session(src)
        if seed:
            data, n = self.data_in(src, keep)
            self.call("C_SeedRandom", h, data, n)
        elif src.byte() == 255:
            self.call("C_GenerateRandom", h, self.ffi.NULL, src.number())
        else:
            n = src.size(4096)
            self.call("C_GenerateRandom", h, self.buf(bytes(n), keep), n)

    def op_unsupported(self, src: Source) -> None:
        """The functions hspkcs11 answers with a fixed code, called with NULL pointers."""
        ffi = self.ffi
        name, h = UNSUPPORTED[src.byte() % len(UNSUPPORTED)], self.session(src)
        args = {"C_GetOperationState": (h, ffi.NULL, ffi.NULL), "C_SetOperationState": (h, ffi.NULL, 0, 0, 0),
                "C_SignRecoverInit": (h, ffi.NULL, 0), "C_VerifyRecoverInit": (h, ffi.NULL, 0),
                "C_GetFunctionStatus": (h,), "C_CancelFunction": (h,),
                "C_WaitForSlotEvent": (1, ffi.NULL, ffi.NULL)}.get(name, (h, ffi.NULL, 0, ffi.NULL, ffi.NULL))
        self.call(name, *args)

    def op_reinit(self, src: Source) -> None:
        """C_Finalize and C_Initialize, with their arguments good and bad."""
        ffi, mode = self.ffi, src.byte() % 4
        if mode == 3:
            args = ffi.new("CK_C_INITIALIZE_ARGS *")
            args.pReserved = args
            self.call("C_Initialize", args)
            return
        reserved = ffi.new("CK_ULONG *") if mode == 2 else ffi.NULL
        if self.call("C_Finalize", reserved) == CKR.OK:
            self.run.initialized = False
            self.sessions_ended()
        args = ffi.new("CK_C_INITIALIZE_ARGS *", {"flags": 2}) if mode == 1 else ffi.NULL
        if self.call("C_Initialize", args) == CKR.OK:
            self.run.initialized = True


STRUCTS = {"GCM": "CK_GCM_PARAMS", "CTR": "CK_AES_CTR_PARAMS", "OAEP": "CK_RSA_PKCS_OAEP_PARAMS",
           "PSS": "CK_RSA_PKCS_PSS_PARAMS", "ECDH1": "CK_ECDH1_DERIVE_PARAMS",
           "DERIVATION_STRING": "CK_KEY_DERIVATION_STRING_DATA", "AES_CBC_DATA": "CK_AES_CBC_ENCRYPT_DATA_PARAMS",
           "DES_CBC_DATA": "CK_DES_CBC_ENCRYPT_DATA_PARAMS", "EDDSA": "CK_EDDSA_PARAMS", "ULONG": "CK_ULONG"}

POINTER_STRUCTS = {"GCM", "OAEP", "ECDH1", "DERIVATION_STRING", "AES_CBC_DATA", "DES_CBC_DATA", "EDDSA"}

OPS = ["open_session", "close_session", "close_all", "session_info", "login", "logout", "init_pin", "set_pin",
       "init_token", "info", "list", "mech_info", "create", "copy", "destroy", "object_size", "get_attrs",
       "set_attrs", "find_init", "find", "find_final", "crypt_init", "digest_init", "one_shot", "feed", "final",
       "verify", "digest_key", "generate_key", "generate_pair", "wrap", "unwrap", "derive", "random",
       "unsupported", "reinit"]


def affordable(mech: int | None, cka: int, value: bytes) -> bytes:
    """A size that takes seconds to generate becomes one no mechanism accepts (docstring)."""
    cap = COSTLY_FOR.get((mech, cka), COSTLY.get(cka)) if mech is not None else COSTLY.get(cka)
    if cap is None or len(value) != 8 or int.from_bytes(value, "little") <= cap:
        return value
    return ulong(INVALID_SIZE)


# ---- the seed corpus ---------------------------------------------------------------------------

T, F = b"\x01", b"\x00"


class Seed(Writer):
    """A seed input written call by call, in the terms the harness reads."""

    def __init__(self, h: Harness) -> None:
        super().__init__()
        self.h = h

    def op(self, name: str, *selector: int) -> "Seed":
        self.byte(OPS.index(name), *selector)
        return self

    def mech(self, ckm: int, *param: int | bytes) -> "Seed":
        """The mechanism, a well-formed parameter (mode 0), then the parameter's fields."""
        self.byte(self.h.mechs.index(ckm), 0)
        for item in param:
            if isinstance(item, bytes):
                self.byte(2).blob(item)         # an inner buffer given in full
            else:
                self.byte(item)
        return self

    def template(self, *attrs: tuple[int, bytes]) -> "Seed":
        self.byte(len(attrs))
        for cka, value in attrs:
            self.byte(self.h.attr_types.index(cka), 0).blob(value)
        return self

    def data(self, value: bytes) -> "Seed":
        return self.byte(0).blob(value)

    def session_login(self, user: int = CKU.USER) -> "Seed":
        pin = 1 if user == CKU.SO else 0
        return self.op("open_session").byte(0, 0, 0).op("login").byte(0, [CKU.USER, CKU.SO].index(user), pin)


LAST, OUT, QUERY = 1, 0, 1          # data mode "the last output"; output modes


def seeds(h: Harness) -> dict[str, tuple[bytes, list[str]]]:
    """Sequences that reach deep states (and the calls that must succeed on the way):
    the fuzzer mutates from there."""
    S, out = Seed, {}
    aes = [(CKA.VALUE_LEN, ulong(32)), (CKA.ENCRYPT, T), (CKA.DECRYPT, T), (CKA.WRAP, T), (CKA.UNWRAP, T),
           (CKA.EXTRACTABLE, T)]
    iv = bytes(range(16))

    s = S(h).session_login().op("generate_key").byte(0).mech(CKM.AES_KEY_GEN).template(*aes).byte(0)
    s.op("crypt_init", 0, 0).mech(CKM.AES_CBC_PAD, iv).byte(0)
    s.op("one_shot", 0, 0).data(b"attack at dawn").byte(QUERY).op("one_shot", 0, 0).data(b"attack at dawn").byte(OUT)
    s.op("crypt_init", 1, 0).mech(CKM.AES_CBC_PAD, iv).byte(0).op("one_shot", 1, 0).byte(LAST).byte(OUT)
    out["aes_cbc_pad"] = (bytes(s.out), ["C_GenerateKey", "C_EncryptInit", "C_Encrypt", "C_DecryptInit",
                                         "C_Decrypt"])

    gcm = (b"\x00" * 12, b"header", 0)        # IV, AAD, tag bits 128
    s = S(h).session_login().op("generate_key").byte(0).mech(CKM.AES_KEY_GEN).template(*aes).byte(0)
    s.op("crypt_init", 0, 0).mech(CKM.AES_GCM, *gcm).byte(0)
    s.op("one_shot", 4, 0).data(b"part one").byte(OUT).op("final", 0, 0).byte(OUT)
    s.op("crypt_init", 0, 0).mech(CKM.AES_GCM, *gcm).byte(0).op("one_shot", 0, 0).data(b"whole").byte(OUT)
    s.op("crypt_init", 1, 0).mech(CKM.AES_GCM, *gcm).byte(0).op("one_shot", 1, 0).byte(LAST).byte(OUT)
    out["aes_gcm"] = (bytes(s.out), ["C_EncryptUpdate", "C_EncryptFinal", "C_Encrypt", "C_Decrypt"])

    s = S(h).session_login().op("generate_key").byte(0).mech(CKM.GENERIC_SECRET_KEY_GEN)
    s.template((CKA.VALUE_LEN, ulong(32)), (CKA.SIGN, T), (CKA.VERIFY, T)).byte(0)
    s.op("crypt_init", 2, 0).mech(CKM.SHA256_HMAC).byte(0).op("one_shot", 3, 0).data(b"message").byte(OUT)
    s.op("crypt_init", 3, 0).mech(CKM.SHA256_HMAC).byte(0).op("verify", 0, 0).data(b"message").byte(LAST)
    s.op("crypt_init", 2, 0).mech(CKM.SHA256_HMAC).byte(0).op("feed", 1, 0).data(b"mess")
    s.op("final", 3, 0).byte(OUT)
    out["hmac"] = (bytes(s.out), ["C_GenerateKey", "C_Sign", "C_Verify", "C_SignUpdate", "C_SignFinal"])

    s = S(h).session_login().op("generate_pair").byte(0).mech(CKM.RSA_PKCS_KEY_PAIR_GEN)
    s.template((CKA.MODULUS_BITS, ulong(1024)), (CKA.PUBLIC_EXPONENT, b"\x01\x00\x01"), (CKA.VERIFY, T),
               (CKA.ENCRYPT, T))
    s.template((CKA.SIGN, T), (CKA.DECRYPT, T)).byte(0, 0)
    s.op("crypt_init", 2, 0).mech(CKM.SHA256_RSA_PKCS).byte(0).op("one_shot", 3, 0).data(b"signed").byte(OUT)
    s.op("crypt_init", 3, 0).mech(CKM.SHA256_RSA_PKCS).byte(1).op("verify", 0, 0).data(b"signed").byte(LAST)
    s.op("crypt_init", 0, 0).mech(CKM.RSA_PKCS_OAEP, 0, 1, 0, 4).byte(1)     # SHA-256, MGF1-SHA256, no label
    s.op("one_shot", 0, 0).data(b"secret").byte(OUT)
    s.op("crypt_init", 1, 0).mech(CKM.RSA_PKCS_OAEP, 0, 1, 0, 4).byte(0).op("one_shot", 1, 0).byte(LAST).byte(OUT)
    out["rsa"] = (bytes(s.out), ["C_GenerateKeyPair", "C_Sign", "C_Verify", "C_Encrypt", "C_Decrypt"])

    s = S(h).session_login().op("generate_pair").byte(0).mech(CKM.EC_KEY_PAIR_GEN)
    s.template((CKA.EC_PARAMS, CURVES[0]), (CKA.VERIFY, T)).template((CKA.SIGN, T), (CKA.DERIVE, T)).byte(0, 0)
    s.op("crypt_init", 2, 0).mech(CKM.ECDSA_SHA256).byte(0).op("one_shot", 3, 0).data(b"ec").byte(OUT)
    s.op("crypt_init", 3, 0).mech(CKM.ECDSA_SHA256).byte(1).op("verify", 0, 0).data(b"ec").byte(LAST)
    s.op("get_attrs").byte(0, 1, 1, h.attr_types.index(CKA.EC_POINT), 0)
    s.op("derive").byte(0).mech(CKM.ECDH1_DERIVE, 0, 4, LAST).byte(0)             # CKD_NULL, no shared data
    s.template((CKA.CLASS, ulong(CKO.SECRET_KEY)), (CKA.KEY_TYPE, ulong(CKK.AES)), (CKA.VALUE_LEN, ulong(16)))
    s.byte(0)
    out["ec"] = (bytes(s.out), ["C_GenerateKeyPair", "C_Sign", "C_Verify", "C_GetAttributeValue", "C_DeriveKey"])

    s = S(h).session_login().op("generate_pair").byte(0).mech(CKM.EC_EDWARDS_KEY_PAIR_GEN)
    s.template((CKA.EC_PARAMS, CURVES[5])).template().byte(0, 0)
    s.op("crypt_init", 2, 0).mech(CKM.EDDSA, 0, 4).byte(0).op("one_shot", 3, 0).data(b"ed").byte(OUT)
    out["eddsa"] = (bytes(s.out), ["C_GenerateKeyPair", "C_Sign"])

    s = S(h).session_login()
    s.op("generate_key").byte(0).mech(CKM.AES_KEY_GEN).template(*aes).byte(0)                 # wrapping key
    s.op("generate_key").byte(0).mech(CKM.AES_KEY_GEN).template(*aes, (CKA.LABEL, b"wrapped")).byte(0)
    s.op("wrap").byte(0).mech(CKM.AES_KEY_WRAP_PAD, 4).byte(1, 0).byte(OUT)               # NULL IV
    s.op("unwrap").byte(0).mech(CKM.AES_KEY_WRAP_PAD, 4).byte(1).byte(LAST)
    s.template((CKA.CLASS, ulong(CKO.SECRET_KEY)), (CKA.KEY_TYPE, ulong(CKK.AES)), (CKA.ENCRYPT, T)).byte(0)
    out["wrap"] = (bytes(s.out), ["C_GenerateKey", "C_WrapKey", "C_UnwrapKey"])

    s = S(h).session_login()
    s.op("create").byte(0).template((CKA.CLASS, ulong(CKO.DATA)), (CKA.TOKEN, T), (CKA.LABEL, b"d"),
                                    (CKA.VALUE, b"v" * 40), (CKA.LABEL, b"twice")).byte(0)   # a duplicate
    s.op("create").byte(0).template((CKA.CLASS, ulong(CKO.DATA)), (CKA.TOKEN, T), (CKA.LABEL, b"d"),
                                    (CKA.VALUE, b"v" * 40)).byte(0)
    s.op("get_attrs").byte(0, 0, 2, h.attr_types.index(CKA.LABEL), 0, h.attr_types.index(CKA.VALUE), 1, 0)
    s.op("set_attrs").byte(0, 0).template((CKA.LABEL, b"renamed"))
    s.op("copy").byte(0, 0).template((CKA.TOKEN, F)).byte(0)
    s.op("object_size").byte(0, 0, 0)
    s.op("find_init").byte(0).template((CKA.CLASS, ulong(CKO.DATA)))
    s.op("find").byte(0, 0).size(8).op("find_final").byte(0)
    s.op("destroy").byte(0, 0)
    s.op("create").byte(0).template((CKA.CLASS, ulong(CKO.SECRET_KEY)), (CKA.KEY_TYPE, ulong(CKK.AES)),
                                    (CKA.VALUE, bytes(16)), (CKA.ENCRYPT, T)).byte(0)
    s.op("crypt_init", 0, 0).mech(CKM.AES_ECB).byte(0).op("one_shot", 0, 0).data(bytes(32)).byte(OUT)
    out["objects"] = (bytes(s.out), ["C_CreateObject", "C_SetAttributeValue", "C_CopyObject", "C_GetObjectSize",
                                     "C_FindObjectsInit", "C_FindObjects", "C_FindObjectsFinal", "C_DestroyObject",
                                     "C_Encrypt"])

    s = S(h).session_login()
    s.op("generate_key").byte(0).mech(CKM.AES_KEY_GEN).template(*aes).byte(0)
    s.op("digest_init").byte(0).mech(CKM.SHA256).op("feed", 0, 0).data(b"abc").op("digest_key").byte(0, 0)
    s.op("final", 2, 0).byte(QUERY).op("final", 2, 0).byte(OUT)
    s.op("digest_init").byte(0).mech(CKM.SHA512).op("one_shot", 2, 0).data(b"abc").byte(OUT)
    s.op("random", 1, 0).data(b"seed").op("random", 0, 0).byte(0).size(64)
    out["digest"] = (bytes(s.out), ["C_DigestUpdate", "C_DigestKey", "C_DigestFinal", "C_Digest", "C_SeedRandom",
                                    "C_GenerateRandom"])

    s = S(h).session_login(CKU.SO).op("init_pin").byte(0, 2).blob(b"new user pin").op("logout").byte(0)
    s.op("login").byte(0, 0, 0).op("set_pin").byte(0, 0, 2).blob(b"another pin").op("logout").byte(0)
    s.op("login").byte(0, 0, 0).op("info", 2, 0, 0).op("session_info").byte(0, 0)
    s.op("close_session").byte(0).op("close_all").byte(0)
    out["pins"] = (bytes(s.out), ["C_Login", "C_InitPIN", "C_Logout", "C_SetPIN", "C_GetTokenInfo",
                                  "C_GetSessionInfo", "C_CloseSession", "C_CloseAllSessions"])

    s = S(h).op("init_token").byte(0, 1, 0)
    s.out += b"relabelled".ljust(32, b" ")
    s.session_login(CKU.SO).op("init_pin").byte(0, 0).op("logout").byte(0).op("login").byte(0, 0, 0)
    out["init_token"] = (bytes(s.out), ["C_InitToken", "C_InitPIN", "C_Login"])

    s = S(h).session_login().op("generate_key").byte(0).mech(CKM.DES3_KEY_GEN).template((CKA.ENCRYPT, T)).byte(0)
    s.op("crypt_init", 0, 0).mech(CKM.DES3_CBC_PAD, bytes(8)).byte(0).op("one_shot", 0, 0).data(b"des").byte(OUT)
    s.op("generate_key").byte(0).mech(CKM.DSA_PARAMETER_GEN).template((CKA.PRIME_BITS, ulong(1024))).byte(0)
    s.op("generate_key").byte(0).mech(CKM.DH_PKCS_PARAMETER_GEN).template((CKA.PRIME_BITS, ulong(512))).byte(0)
    out["des3_domain"] = (bytes(s.out), ["C_GenerateKey", "C_Encrypt"])

    s = S(h).session_login().op("list", 1, 1, 0).op("list", 0, 0, 1).op("mech_info").byte(0, 0, 0)
    s.op("info", 0, 0, 0).op("info", 1, 0, 0).op("reinit", 0).op("session_info").byte(0, 0)
    s.op("unsupported", 0, 0)
    out["general"] = (bytes(s.out), ["C_GetSlotList", "C_GetMechanismList", "C_GetMechanismInfo", "C_GetInfo",
                                     "C_GetSlotInfo", "C_Finalize", "C_Initialize"])
    return out


# ---- set-up and drivers -------------------------------------------------------------------------

def prepare(workdir: Path) -> Path:
    """A throwaway region with one token, or the one HSPKCS11_FUZZ_CONF names."""
    given = os.environ.get("HSPKCS11_FUZZ_CONF")
    if given:
        return Path(given)
    from conftest import make_region, util
    conf = make_region(workdir, extra="log.level = WARNING\npin.max_failures = 1000000\n")
    env = {**os.environ, "HSPKCS11_CONF": str(conf)}
    subprocess.run(util() + ["init-token", "--free", "--label", "fuzz", "--so-pin", SO_PIN.decode(),
                             "--pin", USER_PIN.decode()], check=True, capture_output=True, env=env)
    return conf


def load_engine(instrument: bool) -> None:
    """Import the engine before the module loads it: under atheris, instrumented for coverage."""
    modules = ("hspkcs11.abi.bridge", "hspkcs11.mechanisms", "hspkcs11.p11.codec", "hspkcs11.hsm.region",
               "hspkcs11.config")
    if not instrument:
        return
    import importlib

    import atheris
    with atheris.instrument_imports(include=["hspkcs11"]):
        for name in modules:
            importlib.import_module(name)


def inject_fault() -> None:
    """An exception escapes the engine's error handling in C_DigestKey: what the harness
    must report (tests/test_fuzz.py checks that it does)."""
    from hspkcs11.p11 import crypto

    def broken(*args: Any) -> None:
        raise ZeroDivisionError("fault injected by --inject-fault")
    crypto.digest_key = broken


def write_stats(h: Harness, path: Path) -> None:
    path.write_text(json.dumps(h.stats.as_json(), indent=1))


def check_seeds(h: Harness) -> int:
    """Run every seed once; each must reach its calls and find nothing."""
    failures = 0
    for name, (data, goals) in seeds(h).items():
        before = {fn: c.get("CKR_OK", 0) for fn, c in h.stats.by_function.items()}
        findings = h.stats.findings
        h.one(data)
        missed = [fn for fn in goals if h.stats.by_function[fn].get("CKR_OK", 0) <= before.get(fn, 0)]
        ok = not missed and h.stats.findings == findings
        failures += not ok
        print(f"SEED {name}: {'ok' if ok else 'FAILED'} ({len(h.run.trace)} calls)"
              + (f"; no CKR_OK from {missed}" if missed else "")
              + (f"; trace: {h.run.trace}" if not ok else ""), flush=True)
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("HSPKCS11_FUZZ_SECONDS", 60)))
    ap.add_argument("--workdir", type=Path, help="region, log, findings and stats (default: a new temp dir)")
    ap.add_argument("--corpus", type=Path, help="libFuzzer's corpus directory (default: WORKDIR/corpus)")
    ap.add_argument("--replay", type=Path, nargs="+", help="run these inputs once, printing every call")
    ap.add_argument("--seeds", action="store_true", help="run the seed corpus once and check its goals")
    ap.add_argument("--stop-on-finding", action="store_true", help="raise at the first finding (libFuzzer saves it)")
    ap.add_argument("--inject-fault", action="store_true", help="C_DigestKey raises inside the engine (self-test)")
    # libFuzzer's own flags look like -name=value: they pass through untouched
    libfuzzer_args = [a for a in sys.argv[1:] if a.startswith("-") and not a.startswith("--") and "=" in a]
    args = ap.parse_args([a for a in sys.argv[1:] if a not in libfuzzer_args])
    faulthandler.enable()      # a signal shows the Python stack too

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hspkcs11-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    fuzzing = not (args.replay or args.seeds)
    load_engine(instrument=fuzzing)
    conf = prepare(workdir)
    if args.inject_fault:
        inject_fault()
    os.environ["HSPKCS11_CONF"] = str(conf)
    h = Harness(conf, workdir, args.stop_on_finding)
    stats_file = workdir / "stats.json"
    print(f"fuzz: work directory {workdir}", flush=True)

    if args.seeds:
        failures = check_seeds(h)
        write_stats(h, stats_file)
        return 1 if failures or h.stats.findings else 0
    if args.replay:
        h.verbose = True
        for path in args.replay:
            inputs = ([bytes.fromhex(json.loads(line)["input"]) for line in path.read_text().splitlines()]
                      if path.suffix == ".jsonl" else [path.read_bytes()])
            for data in inputs:
                print(f"REPLAY {path} ({len(data)} bytes)")
                h.one(data)
        write_stats(h, stats_file)
        return 3 if h.stats.findings else 0

    import atheris
    corpus = args.corpus or workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in seeds(h).items():
        (corpus / f"seed-{name}").write_bytes(data)
    deadline = time.monotonic() + args.seconds
    last_write = [0.0]
    current = workdir / "current-input"

    def one_input(data: bytes) -> None:
        now = time.monotonic()
        if now >= deadline:
            finish()
        if h.stats.sequences == 0:      # over libFuzzer's handlers: a signal shows the Python stack
            faulthandler.disable()
            faulthandler.enable()
        current.write_bytes(data)       # what a signal leaves behind for --replay
        h.one(data)
        if now - last_write[0] > 1.0:
            write_stats(h, stats_file)
            last_write[0] = now

    def finish() -> None:
        write_stats(h, stats_file)
        s = h.stats
        print(f"fuzz: {s.sequences} sequences, {s.calls} calls, {len(s.by_function)} functions, "
              f"{s.findings} findings ({len(s.distinct)} distinct) in {time.monotonic() - s.started:.0f} s; "
              f"stats in {stats_file}", flush=True)
        for key, count in s.distinct.items():
            print(f"  {count:6d}  {key}", flush=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(3 if s.findings else 0)

    flags = [f"-max_total_time={int(args.seconds) + 60}", "-timeout=120", "-max_len=8192", "-len_control=0",
             f"-artifact_prefix={workdir}/", *libfuzzer_args]
    atheris.Setup([sys.argv[0], *flags, str(corpus)], one_input)
    atheris.Fuzz()
    finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
