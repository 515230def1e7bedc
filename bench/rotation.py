"""Master-key rotation rate (issue 5): 100,000 keys in a three-zone region.

  .venv/bin/python bench/rotation.py [--keys 100000] [--json]

The region is filled directly through the stores (sealed exactly as the engine seals
a 32-byte AES key: one unit by a bulk import, the others by catching up from it), then `rotation.rotate()` re-wraps every blob in every unit, as
`hspkcs11-util masterkey rotate` does. Beside it, in the same run: the re-wrap alone
through our C fast path, and through `cryptography`'s RFC 5649 keywrap from Python
(unwrap + wrap per key), the pure-Python way to do the same crypto.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import MASTER_KEY, make_region  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding, aes_key_wrap_with_padding

    from hspkcs11.config import load as load_config
    from hspkcs11.consts import CKA, CKK, CKO
    from hspkcs11.hsm import rotation
    from hspkcs11.hsm.keywrap import kwp_rewrap_batch
    from hspkcs11.hsm.replica import RegionService
    from hspkcs11.hsm.store import Bundle, ObjectRow, TokenRow
    from hspkcs11.hsm.unit import split_blob
    from hspkcs11.p11 import codec

    base = Path(tempfile.mkdtemp(prefix="hspkcs11-bench-"))
    conf = make_region(base, zones="us-south-1, us-south-2, us-south-3", extra="log.level = ERROR\n")
    svc = RegionService(load_config(conf))
    svc.store.put_token(TokenRow("bench0000000000", 0, b"bench".ljust(32), "x", None, 0, 0))

    t = time.perf_counter()
    rows = []
    public = codec.pack_attrs(sorted({CKA.CLASS: CKO.SECRET_KEY, CKA.KEY_TYPE: CKK.AES, CKA.TOKEN: True}.items()))
    for i in range(args.keys):
        uid = os.urandom(16)
        secret = codec.pack_attrs([(CKA.VALUE, os.urandom(32))])
        sealed, mkvp = svc.units[0].seal(uid, secret)
        rows.append(ObjectRow(i + 10, "bench0000000000", uid, CKO.SECRET_KEY, CKK.AES, True, b"", b"", public,
                              sealed, mkvp))
    # One unit gets everything in one import; the others catch up from it, as a unit that
    # was away would (so this also times a catch-up of the whole region).
    first = svc.units[0].store
    first.import_bundle(Bundle(changes=[(2, r.serial, r.handle, "put") for r in rows],
                               objects={r.handle: r for r in rows}))
    svc.set_head(2)
    fill_s = time.perf_counter() - t
    t = time.perf_counter()
    with svc.write_lock():
        svc.catch_up()
    catch_up_s = time.perf_counter() - t

    new_key = os.urandom(32)
    for u in svc.units:
        u.registers.load(new_key)
        u.registers.commit()
    bodies = [split_blob(r.sealed or b"")[1] for r in rows[:20000]]
    t = time.perf_counter()
    kwp_rewrap_batch(MASTER_KEY, new_key, bodies)
    c_rate = len(bodies) / (time.perf_counter() - t)
    t = time.perf_counter()
    for body in bodies:
        aes_key_wrap_with_padding(new_key, aes_key_unwrap_with_padding(MASTER_KEY, body))
    py_rate = len(bodies) / (time.perf_counter() - t)

    t = time.perf_counter()
    rotation.rotate(svc)
    rotate_s = time.perf_counter() - t
    assert all(u.store.sealed_under(u.registers.read().current_mkvp or "") == args.keys for u in svc.units)
    results = {
        "keys": args.keys, "zones": len(svc.units), "fill_one_unit_s": round(fill_s, 2),
        "catch_up_two_units_s": round(catch_up_s, 2),
        "rotate_s": round(rotate_s, 2), "rotate_keys_per_s": round(args.keys / rotate_s),
        "rewrap_c_keys_per_s": round(c_rate), "rewrap_cryptography_keys_per_s": round(py_rate),
        "c_over_cryptography": round(c_rate / py_rate, 1),
    }
    print(json.dumps(results, indent=1) if args.json else
          "\n".join(f"{k:34} {v}" for k, v in results.items()))


if __name__ == "__main__":
    main()
