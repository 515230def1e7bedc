"""hspkcs11 against SoftHSM2 on large tokens: start-up, finds and memory (issue 7).

  .venv/bin/python bench/scale.py [--sizes 1000,5000,10000,100000] [--softhsm-max 10000] [--seconds 1] [--json]
  .venv/bin/python bench/scale.py --quick --json      # tiny counts: checks that it works

One run makes fresh tokens for both modules (`compare.prepare`) and fills each module's
token `objects` through PKCS#11 (C_GenerateKey of AES-256 token keys, CKA_ID `id-%08d`,
CKA_LABEL `k%d`, one key per call), growing it size by size; the fill is timed but is
not part of any figure below. SoftHSM2 fills at ~140 keys/s, so it is filled only up to
`--softhsm-max` keys and marked "not measured" above.

At each size a fresh child process (python-pkcs11 loads one module per process, and a
fresh one is what an application starting up sees) measures:
- start-up: `pkcs11.lib(path)` (dlopen + C_Initialize), then `token.open(user_pin=...)`
  (C_OpenSession + C_Login), then the first successful call (a find by CKA_ID);
- finds of one key by a random CKA_ID, then by a random CKA_LABEL (ops/s, `--seconds`
  each after a short warm-up; every find is checked to return exactly one key);
- VmRSS and VmHWM (/proc/self/status) after all that;
- then one find matching every key (CKA_CLASS = secret key: what listing one's keys does),
  its time, and VmRSS / VmHWM again: the random finds reach only the keys they drew, this
  reaches all of them (the most a process holds for the token).
The same child on the empty token `bench` gives each module's idle figures, for scale.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
USER_PIN = "1234"
MODULES = ("hspkcs11", "softhsm")
NAMES = {"hspkcs11": "hspkcs11", "softhsm": "SoftHSM2"}
DEFAULT_SIZES = (1000, 5000, 10000, 100000)   # 5,000: issue 7's find-by-ID target size
QUICK_SIZES = (20, 50)
FILL_METHOD = "C_GenerateKey (python-pkcs11 generate_key, AES-256, store=True), one key per call"
NOT_MEASURED = "not measured (fill too slow)"

# issue 7's targets: key in report["targets"] -> what it asks
TARGETS = {
    "startup_100k": "C_Initialize + login + first find, 100,000 keys < 0.5 s",
    "find_id_ratio_5k": "find by ID at 5,000 keys >= 100x SoftHSM2",
    "memory_100k": "VmHWM after start-up and random finds, 100,000 keys < 300 MB",
    "memory_all_100k": "VmHWM after also one find matching every key, 100,000 keys < 300 MB",
}
STARTUP_LIMIT_S, FIND_RATIO_MIN, MEMORY_LIMIT_B = 0.5, 100.0, 300_000_000


def key_id(i: int) -> bytes:
    return b"id-%08d" % i


def key_label(i: int) -> str:
    return f"k{i}"


def memory_kib() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB (the kernel's "kB")."""
    wanted = {"VmRSS:": "vm_rss_kib", "VmHWM:": "vm_hwm_kib"}
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, *rest = line.split()
            if name in wanted:
                out[wanted[name]] = int(rest[0])
    return out


# --- the children: one module each, one process per measurement ----------------------------------

def fill_child(module: str, start: int, stop: int) -> dict:
    """Add keys start..stop-1 to the token `objects`."""
    import pkcs11
    from pkcs11 import KeyType

    token = pkcs11.lib(module).get_token(token_label="objects")
    with token.open(user_pin=USER_PIN, rw=True) as s:
        t = time.perf_counter()
        for i in range(start, stop):
            s.generate_key(KeyType.AES, 256, store=True, id=key_id(i), label=key_label(i))
        spent = time.perf_counter() - t
    return {"keys": stop - start, "seconds": round(spent, 3)}


def measure_child(module: str, token_label: str, count: int, seconds: float) -> dict:
    """Start-up, finds and memory of a fresh process on a token of `count` keys."""
    import pkcs11
    import pkcs11._pkcs11  # noqa: F401  (imported by pkcs11.lib on first use: not the module's time)
    from pkcs11 import Attribute as A, ObjectClass

    from compare import measure

    clock = time.perf_counter
    before = memory_kib()
    t0 = clock()
    lib = pkcs11.lib(module)
    t1 = clock()
    session = lib.get_token(token_label=token_label).open(user_pin=USER_PIN)
    t2 = clock()
    probe = key_id(count // 2) if count else b"absent"
    first = list(session.get_objects({A.ID: probe}))
    t3 = clock()
    assert len(first) == (1 if count else 0), (count, first)
    out: dict[str, Any] = {
        "library": f"{lib.library_description} {lib.library_version[0]}.{lib.library_version[1]}",
        "keys": count,
        "initialize_s": round(t1 - t0, 4), "login_s": round(t2 - t1, 4), "first_find_s": round(t3 - t2, 4),
        "startup_s": round(t3 - t0, 4),
        "before_load": before,
    }
    if count:
        rng = random.Random(7)

        def find_one(template: dict) -> None:
            found = sum(1 for _ in session.get_objects(template))
            assert found == 1, (template, found)

        out["find_id"] = measure(lambda: find_one({A.ID: key_id(rng.randrange(count))}), seconds)
        out["find_label"] = measure(lambda: find_one({A.LABEL: key_label(rng.randrange(count))}), seconds)
    out["memory"] = memory_kib()
    if count:
        # The random finds reach only the keys they drew; an application that lists its keys
        # (one find matching all of them) makes the module look at every one.
        t = clock()
        found = session.get_objects({A.CLASS: ObjectClass.SECRET_KEY})
        next(found)
        found.close()   # C_FindObjectsFinal; python-pkcs11 made only the first batch's objects
        out["find_all_s"] = round(clock() - t, 4)
        out["memory_all"] = memory_kib()
    session.close()
    return out


# --- the parent -----------------------------------------------------------------------------------

def run_child(args: list[str], env: dict[str, str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    out = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    return json.loads(out.stdout)


def measure_module(path: str, env: dict[str, str], seconds: float, sizes: list[int]) -> dict:
    """Idle figures, then fill and measure size by size (ascending)."""
    idle = run_child(["--child", "measure", "--module", path, "--token", "bench", "--count", "0"], env)
    fills, at = {}, {}
    made = 0
    for n in sizes:
        fills[str(n)] = run_child(["--child", "fill", "--module", path, "--start", str(made), "--stop", str(n)], env)
        made = n
        at[str(n)] = run_child(["--child", "measure", "--module", path, "--token", "objects", "--count", str(n),
                                "--seconds", str(seconds)], env)
    return {"library": idle["library"], "idle": idle, "fill": fills, "sizes": at}


def fill_rate(fills: dict[str, dict]) -> float | None:
    keys = sum(f["keys"] for f in fills.values())
    spent = sum(f["seconds"] for f in fills.values())
    return round(keys / spent, 1) if spent else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def targets(sizes: dict[str, dict]) -> dict[str, dict]:
    """issue 7's targets, judged where the run measured the size they name."""
    out: dict[str, dict] = {}
    big, mid = sizes.get("100000", {}).get("hspkcs11"), sizes.get("5000")
    if big:
        out["startup_100k"] = {"value_s": round(big["startup_s"], 3), "met": big["startup_s"] < STARTUP_LIMIT_S}
        for name, kind in (("memory_100k", "memory"), ("memory_all_100k", "memory_all")):
            hwm = big[kind]["vm_hwm_kib"] * 1024
            out[name] = {"value_mb": round(hwm / 1e6, 1), "met": hwm < MEMORY_LIMIT_B}
    if mid and mid.get("find_id_ratio") is not None:
        out["find_id_ratio_5k"] = {"value": mid["find_id_ratio"], "met": mid["find_id_ratio"] >= FIND_RATIO_MIN}
    for name in TARGETS:
        out.setdefault(name, {"met": None, "why": "size not in this run"})
    return out


def run(seconds: float, sizes: list[int], softhsm_max: int) -> dict:
    """Fresh tokens, then every module measured in its own children; a JSON-able report."""
    sys.path.insert(0, str(BENCH))
    from compare import prepare

    sizes = sorted(set(sizes))
    base = Path(tempfile.mkdtemp(prefix="hspkcs11-scale-"))
    try:
        modules = prepare(base)
        caps = {"hspkcs11": sizes, "softhsm": [n for n in sizes if n <= softhsm_max]}
        figures = {m: measure_module(*modules[m], seconds, caps[m]) for m in MODULES}   # one after the other
    finally:
        shutil.rmtree(base, ignore_errors=True)

    by_size: dict[str, dict] = {}
    for n in map(str, sizes):
        row: dict[str, Any] = {m: figures[m]["sizes"].get(n, {"skipped": NOT_MEASURED}) for m in MODULES}
        for kind in ("find_id", "find_label"):
            a, b = (row[m].get(kind, {}).get("ops_per_s") for m in MODULES)
            row[f"{kind}_ratio"] = ratio(a, b)
        by_size[n] = row
    return {
        "settings": {"seconds": seconds, "sizes": sizes, "softhsm_max": softhsm_max, "zones": 3,
                     "cpus": os.cpu_count(), "fill_method": FILL_METHOD},
        "modules": {m: {"library": figures[m]["library"], "idle": figures[m]["idle"], "fill": figures[m]["fill"],
                        "fill_keys_per_s": fill_rate(figures[m]["fill"])} for m in MODULES},
        "sizes": by_size,
        "targets": targets(by_size),
    }


# --- the table ----------------------------------------------------------------------------------------

def mib(kib: int) -> str:
    return f"{kib / 1024:,.1f}"


def rss(memory: dict | None) -> str:
    return f"{mib(memory['vm_rss_kib'])} / {mib(memory['vm_hwm_kib'])}" if memory else "-"


def cells(r: dict) -> list[str]:
    """One module's figures at one size, as table cells."""
    if "skipped" in r:
        return [r["skipped"]] + [""] * 6
    rate = [f"{r[k]['ops_per_s']:,.0f}" if k in r else "-" for k in ("find_id", "find_label")]
    find_all = f"{r['find_all_s']:.3f}" if "find_all_s" in r else "-"
    return [f"{r['initialize_s']:.3f} + {r['login_s']:.3f} + {r['first_find_s']:.3f}", f"{r['startup_s']:.3f}",
            *rate, rss(r["memory"]), find_all, rss(r.get("memory_all"))]


def markdown(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(r)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + ("-" if i < 2 else ":") for i, w in enumerate(widths)) + "|")
    return lines


def verdict(t: dict) -> str:
    if t["met"] is None:
        return f"not judged ({t['why']})"
    value = t.get("value_s", t.get("value_mb", t.get("value")))
    unit = " s" if "value_s" in t else " MB (10^6 bytes)" if "value_mb" in t else "x"
    return f"{value}{unit}: {'met' if t['met'] else 'MISSED'}"


def table(report: dict) -> str:
    s, mods = report["settings"], report["modules"]
    rows = [["keys", "module", "init + login + first find (s)", "start-up s", "find ID/s", "find label/s",
             "RSS / HWM MiB", "find all s", "then RSS / HWM MiB"]]
    for m in MODULES:
        rows.append(["0 (idle)", NAMES[m], *cells(mods[m]["idle"])])
    for n, row in report["sizes"].items():
        for m in MODULES:
            rows.append([f"{int(n):,}", NAMES[m], *cells(row[m])])
        ratios = [f"{row[k]:,.1f}x" if row[k] is not None else "-" for k in ("find_id_ratio", "find_label_ratio")]
        rows.append([f"{int(n):,}", "ratio hspkcs11/SoftHSM2", "", "", *ratios, "", "", ""])
    fills = "; ".join(f"{NAMES[m]} {sum(f['keys'] for f in mods[m]['fill'].values()):,} keys in "
                      f"{sum(f['seconds'] for f in mods[m]['fill'].values()):,.1f} s "
                      f"({mods[m]['fill_keys_per_s'] or 0:,.0f} keys/s)" for m in MODULES)
    head = (f"scale: hspkcs11 ({mods['hspkcs11']['library']}, {s['zones']} zones) vs SoftHSM2 "
            f"({mods['softhsm']['library']}), python-pkcs11, fresh process per size, {s['seconds']} s per find kind")
    goals = [f"- {text}: {verdict(report['targets'][name])}" for name, text in TARGETS.items()]
    return "\n".join([head, "", *markdown(rows), "",
                      f"fill of the token (untimed in the figures, {s['fill_method']}): {fills}",
                      f"SoftHSM2 above {s['softhsm_max']:,} keys: {NOT_MEASURED}", "", "issue 7 targets:", *goals])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=None, help="comma list of token sizes (default "
                                                  + ",".join(map(str, DEFAULT_SIZES)) + ")")
    ap.add_argument("--softhsm-max", type=int, default=10_000, help="largest size SoftHSM2 is filled to")
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per find kind (default 1)")
    ap.add_argument("--quick", action="store_true", help="tiny counts: checks that it works, measures nothing")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", choices=("fill", "measure"), help=argparse.SUPPRESS)
    ap.add_argument("--module", help=argparse.SUPPRESS)
    ap.add_argument("--token", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--stop", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "fill":
        print(json.dumps(fill_child(args.module, args.start, args.stop)))
        return
    if args.child == "measure":
        sys.path.insert(0, str(BENCH))
        print(json.dumps(measure_child(args.module, args.token, args.count, args.seconds)))
        return
    sizes = [int(n) for n in args.sizes.split(",") if n] if args.sizes else list(
        QUICK_SIZES if args.quick else DEFAULT_SIZES)
    seconds = min(args.seconds, 0.02) if args.quick else args.seconds
    report = run(seconds, sizes, args.softhsm_max)
    report["command"] = " ".join(["bench/scale.py", *sys.argv[1:]])
    print(json.dumps(report, indent=1) if args.json else table(report))


if __name__ == "__main__":
    main()
