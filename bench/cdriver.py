"""The C driver of issue 7's benchmark: bench/cdriver.c calls a module directly, as a C
client does, so that the module's own cost is visible without python-pkcs11.

  .venv/bin/python bench/cdriver.py [--seconds 1] [--json]   # fresh tokens, both modules, one table

bench/compare.py imports `build` and `run`. `get_info` (C_GetInfo) is the floor: the fixed
cost of one call into the module.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SOURCE = BENCH / "cdriver.c"

# name -> what it measures (the order of the table; the C program runs them in its own order)
OPERATIONS: dict[str, str] = {
    "get_info": "C_GetInfo (floor: one call into the module)",
    "aes_gcm_encrypt_1k": "AES-256-GCM encrypt, 1 KiB",
    "aes_cbc_pad_encrypt_1k": "AES-256-CBC-PAD encrypt, 1 KiB",
    "hmac_sha256_sign_1k": "HMAC-SHA256 sign, 1 KiB",
    "sha256_digest_1k": "SHA-256 digest, 1 KiB",
    "ecdsa_p256_sign": "ECDSA P-256 sign (CKM_ECDSA of a hash)",
    "ecdsa_p256_verify": "ECDSA P-256 verify (CKM_ECDSA of a hash)",
    "aes_key_wrap": "AES key wrap of a 32-byte key, 64 keys in turn",
    "aes_key_unwrap": "AES key unwrap to a session AES key",
    "session_aes_keygen": "AES-256 key generation, session object",
    "get_attribute_label": "C_GetAttributeValue(CKA_LABEL), 64 session keys in turn",
    "open_close_session": "C_OpenSession + C_CloseSession",
}


def build(out_dir: Path) -> Path:
    """Compile bench/cdriver.c into `out_dir`; the binary's path."""
    binary = Path(out_dir) / "cdriver"
    cmd = [shutil.which("gcc") or "gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2",
           "-o", str(binary), str(SOURCE), "-ldl"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return binary


def parse(stdout: str) -> tuple[str, dict[str, dict]]:
    """The driver's lines -> (library description, {op: figures or {"error": ...}})."""
    library, results = "", {}
    for line in stdout.splitlines():
        name, _, rest = line.partition(" ")
        if name == "library":
            library = rest.strip()
        elif rest.startswith("error "):
            results[name] = {"error": rest[len("error "):]}
        elif rest:
            rate, calls, seconds = rest.split()
            results[name] = {"ops_per_s": float(rate), "calls": int(calls), "seconds": float(seconds)}
    return library, results


def run(binary: Path, module_path: str, env: dict[str, str], token_label: str, pin: str,
        seconds: float) -> dict[str, dict]:
    """Run the driver against one module (its own process); {op: {"ops_per_s", "calls",
    "seconds"}} or {op: {"error": ...}}. Raises RuntimeError when it cannot start."""
    limit = 120 + 3 * seconds * len(OPERATIONS)   # warm-up, setup and key generation on top
    out = subprocess.run([str(binary), module_path, token_label, pin, repr(float(seconds))],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=limit)
    _, results = parse(out.stdout)
    if out.returncode != 0:
        raise RuntimeError(f"cdriver on {module_path} exited {out.returncode}:\n{out.stdout}{out.stderr}")
    for name in OPERATIONS:   # a driver that died part-way leaves the rest unreported
        results.setdefault(name, {"error": f"not reported (driver stderr: {out.stderr.strip()[-300:]})"})
    return results


def table(figures: dict[str, dict[str, dict]]) -> str:
    """Markdown table: ops/s of both modules, ratio hspkcs11/SoftHSM2, µs per call."""
    head = ("operation", "hspkcs11 ops/s", "SoftHSM2 ops/s", "ratio", "hspkcs11 µs", "SoftHSM2 µs")
    rows = [head]
    for name, text in OPERATIONS.items():
        a, b = figures["hspkcs11"][name], figures["softhsm"][name]
        rate = [r.get("ops_per_s") for r in (a, b)]
        cells = [f"{x:,.0f}" if x else "error" for x in rate]
        ratio = f"{rate[0] / rate[1]:.3f}" if all(rate) else "-"
        micros = [f"{1e6 / x:,.1f}" if x else "-" for x in rate]
        rows.append((f"{name}: {text}", *cells, ratio, *micros))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per operation (default 1)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    sys.path.insert(0, str(BENCH))
    from compare import NAMES, USER_PIN, prepare  # noqa: E402  (compare imports this module too)

    base = Path(tempfile.mkdtemp(prefix="hspkcs11-cdriver-"))
    try:
        modules = prepare(base)
        binary = build(base)
        figures = {m: run(binary, path, env, "bench", USER_PIN, args.seconds)   # one after the other
                   for m, (path, env) in modules.items()}
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print(f"hspkcs11 vs SoftHSM2 through bench/cdriver.c (no client library), {args.seconds} s per operation\n")
        print(table(figures))
    errors = [f"{NAMES[m]} {name}: {r['error']}" for m, ops in figures.items() for name, r in ops.items()
              if "error" in r]
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
