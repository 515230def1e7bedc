"""Fuzzing (issue 8): tests/fuzz/fuzz_calls.py turns atheris (libFuzzer) inputs into random
PKCS#11 call sequences (sessions, logins with random PINs, objects from random templates,
key generation, every operation's init/update/final with random mechanisms and parameter
bytes, find, attributes, wrap/unwrap/derive, destroy; handles live and random) against
hspkcs11 on a throwaway region. A finding is a signal, a hang, a return code the spec does
not list for the function (tests/fuzz/allowed.py), or a warning or error in the module's
log, where the bridge logs every exception it had to map to CKR_GENERAL_ERROR.

hspkcs11 only: the harness is white-box (it reads the engine's mechanism registry and the
module's log) and hunts hspkcs11's own crashes; SoftHSM2's return codes are another matter.

CI fuzzes for HSPKCS11_FUZZ_SECONDS (default 35) seconds from the seed corpus. By hand,
longer, keeping the corpus and findings in a directory of your choice:
    HSPKCS11_FUZZ_SECONDS=600 .venv/bin/python -m pytest tests/test_fuzz.py -q
    .venv/bin/python tests/fuzz/fuzz_calls.py --seconds 600 --workdir /tmp/hs-fuzz
    .venv/bin/python tests/fuzz/fuzz_calls.py --replay FILE     # one input, each call shown
FILE: WORKDIR/current-input after a signal, WORKDIR/timeout-* after a hang, or an input of
WORKDIR/findings.jsonl (hex). CI gives the fuzzer a random libFuzzer seed; it prints it
("INFO: Seed:"), and -seed=N repeats a run's mutations.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "fuzz" / "fuzz_calls.py"
SECONDS = float(os.environ.get("HSPKCS11_FUZZ_SECONDS", "35"))
SEED_LINE = re.compile(r"^SEED (\w+): (ok|FAILED)", re.M)


def run(workdir: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HSPKCS11_CONF", "HSPKCS11_FUZZ_CONF")}
    return subprocess.run([sys.executable, str(SCRIPT), "--workdir", str(workdir), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def findings(workdir: Path) -> list[dict[str, object]]:
    path = workdir / "findings.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_every_seed_sequence_reaches_the_calls_it_is_written_for(tmp_path: Path) -> None:
    """The seed corpus gets deep (an AES-GCM round trip, RSA/EC/EdDSA signatures, ECDH,
    wrap/unwrap, PIN changes, C_InitToken...): a harness that decodes its input wrongly
    would fuzz only the argument checks."""
    proc = run(tmp_path, "--seeds", timeout=300)
    seeds = SEED_LINE.findall(proc.stdout)
    assert proc.returncode == 0 and len(seeds) >= 12 and all(ok == "ok" for _, ok in seeds), \
        proc.stdout[-6000:] + proc.stderr[-3000:]
    assert findings(tmp_path) == []


def test_an_exception_escaping_the_engine_is_reported(tmp_path: Path) -> None:
    """The detection end to end: with an engine fault injected (C_DigestKey raises), the
    harness reports the CKR_GENERAL_ERROR the bridge answers and the traceback it logs."""
    proc = run(tmp_path, "--seeds", "--inject-fault", timeout=300)
    found = {f["what"] for f in findings(tmp_path)}
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "C_DigestKey -> CKR_GENERAL_ERROR" in found, found
    assert any(str(w).startswith("ERROR py_DigestKey") for w in found), found


def test_fuzzing_finds_no_crash_hang_unlisted_code_or_logged_error(tmp_path: Path) -> None:
    proc = run(tmp_path, "--seconds", str(SECONDS), timeout=SECONDS + 600)
    stats = json.loads((tmp_path / "stats.json").read_text())
    report = "\n".join(f"{f['what']}\n  input {f['input']}\n  " + "\n  ".join(f["trace"][-12:])  # type: ignore
                       for f in findings(tmp_path))
    assert proc.returncode == 0 and stats["findings"] == 0, \
        f"{stats['distinct_findings']}\n{report}\n--- output ---\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    # Mutated inputs ran, not only the seed corpus, and they reached most of the API.
    print(f"fuzz: {stats['sequences']} sequences, {stats['calls']} calls ({stats['ok_calls']} CKR_OK), "
          f"{stats['functions_called']} functions, 0 findings in {stats['seconds']} s")
    assert stats["sequences"] > 13 and stats["functions_called"] >= 45, stats
