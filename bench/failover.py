"""Failover and catch-up times of a three-zone region (issue 4's figures for the README).

  .venv/bin/python bench/failover.py [--objects 10000] [--calls 3000] [--json]

Failover: an application signs (ECDSA P-256) and finds objects in a loop; another
process takes the serving zone down in the middle. The figure is the longest gap
between two successful calls around the outage, and how many calls failed (0 is the
promise). Catch-up: a zone is down while N token objects are created; the time is
that of `zone up`, which copies what the unit missed from a peer.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import make_region  # noqa: E402


def util(conf: Path, *args: str) -> str:
    env = {**os.environ, "HSPKCS11_CONF": str(conf), "HSPKCS11_SO_PIN": "12345678", "HSPKCS11_PIN": "1234"}
    out = subprocess.run([sys.executable, "-m", "hspkcs11.cli", *args], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=10000)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="hspkcs11-bench-"))
    conf = make_region(base, zones="us-south-1, us-south-2, us-south-3", extra="log.level = ERROR\n")
    os.environ["HSPKCS11_CONF"] = str(conf)
    util(conf, "init-token", "--free", "--label", "bench")

    import pkcs11
    from pkcs11 import Attribute as A, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    import hspkcs11
    lib = pkcs11.lib(str(hspkcs11.module_path()))
    results: dict[str, float | int] = {}
    with lib.get_token(token_label="bench").open(user_pin="1234", rw=True) as s:
        pub, priv = s.generate_keypair(KeyType.EC, store=True, label="signer",
                                       public_template={A.EC_PARAMS: encode_named_curve_parameters("secp256r1")})
        s.create_object({A.CLASS: ObjectClass.DATA, A.TOKEN: True, A.PRIVATE: False, A.LABEL: "probe"})

        for name, call in (("sign", lambda: priv.sign(b"m", mechanism=Mechanism.ECDSA_SHA256)),
                           ("find", lambda: list(s.get_objects({A.LABEL: "probe"})))):
            stamps: list[float] = []
            failures = 0
            outage: threading.Thread | None = None
            for i in range(args.calls):
                if i == args.calls // 2:   # another process takes the serving zone down
                    outage = threading.Thread(target=util, args=(conf, "zone", "down", "us-south-1"))
                    outage.start()
                try:
                    call()
                    stamps.append(time.perf_counter())
                except pkcs11.exceptions.PKCS11Error:
                    failures += 1
            if outage is not None:
                outage.join()
            util(conf, "zone", "up", "us-south-1")
            gaps = [b - a for a, b in zip(stamps, stamps[1:])]
            results[f"failover_{name}_max_gap_ms"] = round(max(gaps) * 1000, 2)
            results[f"failover_{name}_median_call_ms"] = round(sorted(gaps)[len(gaps) // 2] * 1000, 3)
            results[f"failover_{name}_failed_calls"] = failures

        util(conf, "zone", "down", "us-south-3")
        t = time.perf_counter()
        for i in range(args.objects):
            s.create_object({A.CLASS: ObjectClass.DATA, A.TOKEN: True, A.PRIVATE: False, A.LABEL: f"o{i}",
                             A.VALUE: os.urandom(32)})
        results["create_objects_per_s"] = round(args.objects / (time.perf_counter() - t))
    t = time.perf_counter()
    out = util(conf, "zone", "up", "us-south-3")
    results["catch_up_objects"] = args.objects
    results["catch_up_s"] = round(time.perf_counter() - t, 3)
    assert f"caught up {args.objects} change" in out, out

    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for key, value in results.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
