"""What a durable write costs: token key generation with `store.synchronous = full`
(each commit on disk before CKR_OK) against `normal`, beside SoftHSM2, in one run.

  .venv/bin/python bench/durability.py [--keys 200] [--dir /var/tmp] [--json]

Each module runs in its own process, on a real disk (--dir; not a tmpfs, where fsync
costs nothing), through python-pkcs11: AES-256 token keys, one C_GenerateKey each.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import SO_PIN, USER_PIN, make_region, softhsm_path  # noqa: E402

TIMED = textwrap.dedent("""
    import sys, time, pkcs11
    lib = pkcs11.lib(sys.argv[1])
    tok = lib.get_token(token_label="bench")
    with tok.open(user_pin=sys.argv[2], rw=True) as s:
        s.generate_key(pkcs11.KeyType.AES, 256, store=True, label="warm")
        n = int(sys.argv[4])
        t0 = time.perf_counter()
        for i in range(n):
            s.generate_key(pkcs11.KeyType.AES, 256, store=True, label=f"k{i}")
        print((time.perf_counter() - t0) / n)
""")


def timed(module: str, env: dict[str, str], keys: int) -> float:
    out = subprocess.run([sys.executable, "-c", TIMED, module, USER_PIN, SO_PIN, str(keys)],
                         env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return float(out.stdout)


def hspkcs11_run(base: Path, synchronous: str, keys: int) -> float:
    import hspkcs11
    conf = make_region(base, zones="us-south-1, us-south-2, us-south-3", extra=f"store.synchronous = {synchronous}\n")
    env = {"HSPKCS11_CONF": str(conf)}
    subprocess.run([sys.executable, "-m", "hspkcs11.cli", "init-token", "--free", "--label", "bench",
                    "--so-pin", SO_PIN, "--pin", USER_PIN], env={**os.environ, **env}, check=True,
                   capture_output=True)
    return timed(str(hspkcs11.module_path()), env, keys)


def softhsm_run(base: Path, keys: int) -> float:
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text((ROOT / "softhsm-config" / "softhsm2.conf").read_text().replace("@TOKENDIR@", str(base / "tokens")))
    env = {"SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", SO_PIN,
                    "--pin", USER_PIN], env={**os.environ, **env}, check=True, capture_output=True)
    return timed(softhsm_path(), env, keys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        for name in ("full", "normal", "softhsm"):
            (base / name).mkdir()
        report = {"full_ms": hspkcs11_run(base / "full", "full", args.keys) * 1e3,
                  "normal_ms": hspkcs11_run(base / "normal", "normal", args.keys) * 1e3,
                  "softhsm_ms": softhsm_run(base / "softhsm", args.keys) * 1e3}
    report["full_over_normal"] = report["full_ms"] / report["normal_ms"]
    report["softhsm_over_full"] = report["softhsm_ms"] / report["full_ms"]
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"token key generation, 3 zones: synchronous=full {report['full_ms']:.2f} ms, "
          f"normal {report['normal_ms']:.2f} ms (full costs {report['full_over_normal']:.2f}x); "
          f"SoftHSM2 {report['softhsm_ms']:.2f} ms ({report['softhsm_over_full']:.1f}x slower than full)")


if __name__ == "__main__":
    main()
