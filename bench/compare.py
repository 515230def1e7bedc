"""hspkcs11 against SoftHSM2, side by side, in one command (issue 7).

  .venv/bin/python bench/compare.py [--seconds 1] [--objects 1000[,5000]] [--skip SECTION,..] [--json]
  .venv/bin/python bench/compare.py --only OP,..        # some python-pkcs11 operations alone
  .venv/bin/python bench/compare.py --quick --json      # tiny counts: checks that it works

One run makes fresh tokens for both modules in a temporary directory: a three-zone
hspkcs11 region (master key loaded, `log.level = ERROR`, tokens by `hspkcs11-util
init-token`) and a SoftHSM2 token directory (tokens by `softhsm2-util`). Each module is
driven from its own child process (python-pkcs11 loads one module configuration per
process); the children run one after the other, never at the same time, and hand their
figures back as JSON. The parent prints ops/s for each module and the ratio
hspkcs11/SoftHSM2, then the other sections:
- cdriver: the same kinds of call through bench/cdriver.c, a C program with no client
  in between (bench/cdriver.py);
- scale: C_Initialize + login, find by ID and by label, and resident memory at 1,000 to
  100,000 keys, each size in a fresh process (bench/scale.py; SoftHSM2 up to 10,000);
- rotation: master-key rotation of 100,000 keys in three zones (bench/rotation.py);
- failover: the longest gap while a zone goes down, and catch-up of 10,000 objects
  (bench/failover.py).

Every operation is checked once for a correct result, warmed up (about a tenth of the
time, at least two calls), then timed for `--seconds` (and at least 3 calls). Only the
calls themselves are timed: objects an operation creates (unwrapped and generated keys)
are destroyed between timed batches, outside the clock. Keys used by the crypto
operations are token objects, as an application keeps them. Wrap and attribute reads
take 64 keys in turn, so that no call repeats the one before (the shim answers a
repeated call from its kept answer). `find_by_id_N` runs on a second token that holds
exactly N AES keys with distinct CKA_ID (filled once, untimed in the rates; the fill time
is reported beside them).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
SO_PIN, USER_PIN = "12345678", "1234"
MODULES = ("hspkcs11", "softhsm")
NAMES = {"hspkcs11": "hspkcs11", "softhsm": "SoftHSM2"}
KIB = 1024

# name -> what it measures (the order is the order of the table)
OPERATIONS: dict[str, str] = {
    "aes_gcm_encrypt_1k": "AES-256-GCM encrypt, 1 KiB (fresh 12-byte IV each call)",
    "aes_cbc_pad_encrypt_1k": "AES-256-CBC-PAD encrypt, 1 KiB",
    "hmac_sha256_sign_1k": "HMAC-SHA256 sign, 1 KiB (256-bit generic secret)",
    "sha256_digest_1k": "SHA-256 digest, 1 KiB",
    "ecdsa_p256_sign": "ECDSA P-256 sign (CKM_ECDSA of a SHA-256 hash)",
    "ecdsa_p256_verify": "ECDSA P-256 verify (CKM_ECDSA of a SHA-256 hash)",
    "rsa2048_sign": "RSA-2048 sign (CKM_SHA256_RSA_PKCS, 1 KiB)",
    "rsa2048_verify": "RSA-2048 verify (CKM_SHA256_RSA_PKCS, 1 KiB)",
    "aes_key_wrap": "AES key wrap of a 32-byte AES key (CKM_AES_KEY_WRAP), 64 keys in turn",
    "aes_key_unwrap": "AES key unwrap to a session AES key (CKM_AES_KEY_WRAP)",
    "session_aes_keygen": "AES-256 key generation, session object",
    "token_aes_keygen": "AES-256 key generation, token object",
    "get_attribute_label": "C_GetAttributeValue(CKA_LABEL) of a token key, 64 keys in turn",
    "open_close_session": "C_OpenSession + C_CloseSession (user already logged in)",
}
FIND = "find_by_id_{}"
ROTATION = 64      # keys that wrap and attribute reads take in turn
FIND_TEXT = "find one key by CKA_ID, token of {:,} keys"


# --- the child: one module, one process --------------------------------------------------------

def measure(call: Callable[[], Any], seconds: float, after: Callable[[list], None] | None = None) -> dict:
    """Warm up, then time `call` for `seconds` (at least 3 calls). `after` gets what a batch
    of calls returned, outside the clock (to destroy objects they made)."""
    clock = time.perf_counter
    made: list = []
    t0, warm = clock(), 0
    while warm < 2 or clock() - t0 < seconds / 10:
        made.append(call())
        warm += 1
    warm_rate = warm / (clock() - t0)
    if after:
        after(made)
    batch = max(1, min(500, int(warm_rate * seconds / 20)))
    calls, spent = 0, 0.0
    while spent < seconds or calls < 3:
        made = []
        if after:
            t = clock()
            for _ in range(batch):
                made.append(call())
            spent += clock() - t
            after(made)
        else:
            t = clock()
            for _ in range(batch):
                call()
            spent += clock() - t
        calls += batch
    return {"ops_per_s": calls / spent, "calls": calls, "seconds": round(spent, 3)}


def child(args: argparse.Namespace) -> None:
    import pkcs11
    from cryptography.hazmat.primitives import hashes, hmac as chmac
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from pkcs11 import Attribute as A, KeyType, Mechanism as M, ObjectClass
    from pkcs11.mechanisms import GCMParams
    from pkcs11.util.ec import encode_named_curve_parameters

    lib = pkcs11.lib(args.module)
    info = {"library": f"{lib.library_description} {lib.library_version[0]}.{lib.library_version[1]}",
            "manufacturer": lib.manufacturer_id}
    token = lib.get_token(token_label="bench")
    wanted = set(args.only.split(",")) if args.only else None
    results: dict[str, dict] = {}
    fill: dict[str, float] = {}

    def destroy(objs: list) -> None:
        for obj in objs:
            obj.destroy()

    with token.open(user_pin=USER_PIN, rw=True) as s:
        data = message = os.urandom(KIB)
        ref = hashes.Hash(hashes.SHA256())
        ref.update(data)
        digest = ref.finalize()   # CKM_ECDSA signs a hash: SoftHSM2 2.6.1 has no CKM_ECDSA_SHA256

        def setup_aes_gcm():
            value = os.urandom(32)
            key = s.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES, A.TOKEN: True,
                                   A.PRIVATE: True, A.SENSITIVE: True, A.LABEL: "gcm", A.VALUE: value,
                                   A.ENCRYPT: True, A.DECRYPT: True})
            iv = os.urandom(12)
            out = key.encrypt(data, mechanism=M.AES_GCM, mechanism_param=GCMParams(iv))
            assert out == AESGCM(value).encrypt(iv, data, None)
            return lambda: key.encrypt(data, mechanism=M.AES_GCM, mechanism_param=GCMParams(os.urandom(12))), None

        def setup_aes_cbc_pad():
            key = s.generate_key(KeyType.AES, 256, store=True, label="cbc")
            iv = os.urandom(16)
            out = key.encrypt(data, mechanism=M.AES_CBC_PAD, mechanism_param=iv)
            assert len(out) == KIB + 16 and key.decrypt(out, mechanism=M.AES_CBC_PAD, mechanism_param=iv) == data
            return lambda: key.encrypt(data, mechanism=M.AES_CBC_PAD, mechanism_param=iv), None

        def setup_hmac():
            value = os.urandom(32)
            key = s.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.GENERIC_SECRET,
                                   A.TOKEN: True, A.PRIVATE: True, A.SENSITIVE: True, A.LABEL: "hmac",
                                   A.VALUE: value, A.SIGN: True, A.VERIFY: True})
            ref = chmac.HMAC(value, hashes.SHA256())
            ref.update(data)
            assert key.sign(data, mechanism=M.SHA256_HMAC) == ref.finalize()
            return lambda: key.sign(data, mechanism=M.SHA256_HMAC), None

        def setup_digest():
            assert s.digest(data, mechanism=M.SHA256) == digest
            return lambda: s.digest(data, mechanism=M.SHA256), None

        keypairs: dict[str, tuple] = {}

        def ec_pair():
            if "ec" not in keypairs:
                keypairs["ec"] = s.generate_keypair(
                    KeyType.EC, store=True, label="ec",
                    public_template={A.EC_PARAMS: encode_named_curve_parameters("secp256r1")})
            return keypairs["ec"]

        def rsa_pair():
            if "rsa" not in keypairs:
                keypairs["rsa"] = s.generate_keypair(KeyType.RSA, 2048, store=True, label="rsa")
            return keypairs["rsa"]

        def setup_sign(pair: Callable, mech: M, verify: bool):
            def setup():
                pub, priv = pair()
                data = digest if mech == M.ECDSA else message
                sig = priv.sign(data, mechanism=mech)
                assert pub.verify(data, sig, mechanism=mech)
                assert not pub.verify(data[:-1] + bytes([data[-1] ^ 1]), sig, mechanism=mech)
                if verify:
                    return lambda: pub.verify(data, sig, mechanism=mech), None
                return lambda: priv.sign(data, mechanism=mech), None
            return setup

        def kek():
            return s.generate_key(KeyType.AES, 256, store=True, label="kek",
                                  template={A.WRAP: True, A.UNWRAP: True})

        def setup_wrap():
            wrapping = kek()
            # A different key each call: a repeated identical call is answered from the
            # shim's kept answer (csrc/shim.c), which would measure that cache alone.
            targets = itertools.cycle([s.generate_key(KeyType.AES, 256, store=False, label="target",
                                                      template={A.EXTRACTABLE: True, A.SENSITIVE: True})
                                       for _ in range(ROTATION)])
            assert len(wrapping.wrap_key(next(targets), mechanism=M.AES_KEY_WRAP)) == 40
            return lambda: wrapping.wrap_key(next(targets), mechanism=M.AES_KEY_WRAP), None

        def setup_unwrap():
            wrapping = kek()
            target = s.generate_key(KeyType.AES, 256, store=False, label="target",
                                    template={A.EXTRACTABLE: True, A.SENSITIVE: True})
            blob = wrapping.wrap_key(target, mechanism=M.AES_KEY_WRAP)
            iv = os.urandom(16)
            probe = wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, blob, mechanism=M.AES_KEY_WRAP)
            same = target.encrypt(data, mechanism=M.AES_CBC_PAD, mechanism_param=iv)
            assert probe.encrypt(data, mechanism=M.AES_CBC_PAD, mechanism_param=iv) == same
            probe.destroy()
            return (lambda: wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, blob, label="unwrapped",
                                                mechanism=M.AES_KEY_WRAP)), destroy

        def setup_keygen(store: bool):
            def setup():
                key = s.generate_key(KeyType.AES, 256, store=store, label="gen")
                assert key[A.TOKEN] is store and key[A.VALUE_LEN] == 32
                key.destroy()
                return lambda: s.generate_key(KeyType.AES, 256, store=store, label="gen"), destroy
            return setup

        def setup_label():
            keys = [s.generate_key(KeyType.AES, 256, store=True, label=f"label-{i}") for i in range(ROTATION)]
            assert keys[7][A.LABEL] == "label-7"
            cycle = itertools.cycle(keys)       # another key each call, as for wrap
            return lambda: next(cycle)[A.LABEL], None

        def setup_open_close():
            def call():
                token.open(rw=True).close()
            s.generate_key(KeyType.AES, 256, store=True, label="open-probe")   # private: CKA_PRIVATE true
            with token.open(rw=True) as probe:   # logged in already: login belongs to the application
                assert probe.get_key(label="open-probe")[A.PRIVATE] is True
            return call, None

        setups: dict[str, Callable] = {
            "aes_gcm_encrypt_1k": setup_aes_gcm, "aes_cbc_pad_encrypt_1k": setup_aes_cbc_pad,
            "hmac_sha256_sign_1k": setup_hmac, "sha256_digest_1k": setup_digest,
            "ecdsa_p256_sign": setup_sign(ec_pair, M.ECDSA, False),
            "ecdsa_p256_verify": setup_sign(ec_pair, M.ECDSA, True),
            "rsa2048_sign": setup_sign(rsa_pair, M.SHA256_RSA_PKCS, False),
            "rsa2048_verify": setup_sign(rsa_pair, M.SHA256_RSA_PKCS, True),
            "aes_key_wrap": setup_wrap, "aes_key_unwrap": setup_unwrap,
            "session_aes_keygen": setup_keygen(False), "token_aes_keygen": setup_keygen(True),
            "get_attribute_label": setup_label, "open_close_session": setup_open_close,
        }
        for name in OPERATIONS:
            if wanted is not None and name not in wanted:
                continue
            try:
                call, after = setups[name]()
                results[name] = measure(call, args.seconds, after)
            except Exception as exc:   # reported, and the run fails at the end
                results[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}

        counts = sorted(int(n) for n in args.objects.split(",") if n)
        names = [FIND.format(n) for n in counts]
        if wanted is None or wanted & set(names):
            with lib.get_token(token_label="objects").open(user_pin=USER_PIN, rw=True) as objs:
                made = 0
                rng = random.Random(7)
                for n in counts:
                    name = FIND.format(n)
                    try:
                        t = time.perf_counter()
                        for i in range(made, n):
                            objs.generate_key(KeyType.AES, 256, store=True, id=b"id-%08d" % i, label=f"k{i}")
                        made = n
                        fill[name] = round(time.perf_counter() - t, 2)
                        if wanted is not None and name not in wanted:
                            continue
                        ids = [b"id-%08d" % i for i in range(n)]
                        found = list(objs.get_objects({A.ID: ids[n // 2]}))
                        assert len(found) == 1 and found[0][A.ID] == ids[n // 2]
                        assert list(objs.get_objects({A.ID: b"absent"})) == []

                        def find(ids: list = ids) -> None:
                            for _ in objs.get_objects({A.ID: rng.choice(ids)}):
                                pass
                        results[name] = measure(find, args.seconds)
                    except Exception as exc:
                        results[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    print(json.dumps({**info, "results": results, "fill_s": fill}))


# --- the parent: fresh tokens, two children, one table ------------------------------------------

def run(cmd: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    return out.stdout


def prepare(base: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Fresh tokens `bench` and `objects` in each module; its path and environment."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_region, softhsm_path  # noqa: E402

    import hspkcs11

    (base / "hspkcs11").mkdir()
    conf = make_region(base / "hspkcs11", zones="us-south-1, us-south-2, us-south-3", extra="log.level = ERROR\n")
    hs_env = {"HSPKCS11_CONF": str(conf)}
    (base / "softhsm" / "tokens").mkdir(parents=True)
    sconf = base / "softhsm" / "softhsm2.conf"
    sconf.write_text((ROOT / "softhsm-config" / "softhsm2.conf").read_text()
                     .replace("@TOKENDIR@", str(base / "softhsm" / "tokens")))
    sh_env = {"SOFTHSM2_CONF": str(sconf)}
    for label in ("bench", "objects"):
        run([sys.executable, "-m", "hspkcs11.cli", "init-token", "--free", "--label", label,
             "--so-pin", SO_PIN, "--pin", USER_PIN], hs_env)
        run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN],
            sh_env)
    return {"hspkcs11": (str(hspkcs11.module_path()), hs_env), "softhsm": (softhsm_path(), sh_env)}


def table(report: dict) -> str:
    rows = [("operation", "hspkcs11 ops/s", "SoftHSM2 ops/s", "ratio")]
    for name, op in report["operations"].items():
        cells = []
        for m in MODULES:
            r = op[m]
            cells.append(f"{r['ops_per_s']:,.0f}" if "ops_per_s" in r else "error")
        ratio = f"{op['ratio']:.2f}" if op.get("ratio") is not None else "-"
        rows.append((op["text"], *cells, ratio))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|")
    fills = ", ".join(f"{NAMES[m]} up to {int(name.rsplit('_', 1)[1]):,} keys {s} s"
                      for m in MODULES for name, s in report["modules"][m]["fill_s"].items())
    s = report["settings"]
    head = (f"hspkcs11 ({report['modules']['hspkcs11']['library']}, {s['zones']} zones) vs "
            f"SoftHSM2 ({report['modules']['softhsm']['library']}), python-pkcs11, "
            f"{s['seconds']} s per operation")
    return "\n".join([head, "", *lines, "", f"fill of the find tokens (untimed in the rates): {fills or '-'}"])


SECTIONS = ("cdriver", "scale", "rotation", "failover")


def c_driver(modules: dict[str, tuple[str, dict[str, str]]], base: Path, seconds: float) -> dict:
    """The same kinds of operation through bench/cdriver.c: the module's own cost, no client."""
    import cdriver
    binary = cdriver.build(base)
    return {m: cdriver.run(binary, path, env, "bench", USER_PIN, seconds) for m, (path, env) in modules.items()}


def hspkcs11_only(script: str, *args: str) -> dict:
    """bench/rotation.py or bench/failover.py (a region's own figures, no SoftHSM2 side)."""
    return json.loads(run([sys.executable, str(ROOT / "bench" / script), *args, "--json"], {}))


def full_table(report: dict) -> str:
    """Every section the run measured, one after the other."""
    import cdriver
    import scale
    parts = [table(report)]
    if "cdriver" in report:
        parts.append("through bench/cdriver.c (no client: pre-sized buffers, no length queries)\n\n"
                     + cdriver.table(report["cdriver"]))
    if "scale" in report:
        parts.append(scale.table(report["scale"]))
    for name in ("rotation", "failover"):
        if name in report:
            parts.append(f"{name} (hspkcs11 only, bench/{name}.py)\n\n"
                         + "\n".join(f"- {k}: {v:,}" if isinstance(v, int) else f"- {k}: {v}"
                                      for k, v in report[name].items()))
    return "\n\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per operation (default 1)")
    ap.add_argument("--objects", default=None, help="comma list of token sizes for find by CKA_ID "
                                                    "(default 1000; e.g. 1000,5000,10000)")
    ap.add_argument("--only", default=None, help="comma list of operation names (find_by_id_N for find); "
                                                 "implies --skip of every other section")
    ap.add_argument("--skip", default="", help=f"comma list of sections to leave out: {','.join(SECTIONS)}")
    ap.add_argument("--quick", action="store_true", help="tiny counts: checks that it works, measures nothing")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--child", choices=MODULES, help=argparse.SUPPRESS)
    ap.add_argument("--module", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.objects is None:
        args.objects = "20" if args.quick else "1000"
    if args.quick:
        args.seconds = min(args.seconds, 0.02)
    known = set(OPERATIONS) | {FIND.format(int(n)) for n in args.objects.split(",") if n}
    if args.only and not set(args.only.split(",")) <= known:
        ap.error(f"--only: unknown {sorted(set(args.only.split(',')) - known)}; known: {', '.join(known)}")
    skip = set(SECTIONS) if args.only else {x for x in args.skip.split(",") if x}
    if not skip <= set(SECTIONS):
        ap.error(f"--skip: unknown {sorted(skip - set(SECTIONS))}; known: {', '.join(SECTIONS)}")
    if args.child:
        child(args)
        return

    base = Path(tempfile.mkdtemp(prefix="hspkcs11-compare-"))
    sections: dict[str, Any] = {}
    try:
        modules = prepare(base)
        children: dict[str, dict] = {}
        for m in MODULES:   # one after the other: never two modules on the CPUs at once
            path, env = modules[m]
            cmd = [sys.executable, __file__, "--child", m, "--module", path, "--seconds", str(args.seconds),
                   "--objects", args.objects] + (["--only", args.only] if args.only else [])
            children[m] = json.loads(run(cmd, env))
        if "cdriver" not in skip:
            sections["cdriver"] = c_driver(modules, base, args.seconds)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if "scale" not in skip:
        import scale
        sizes = list(scale.QUICK_SIZES if args.quick else scale.DEFAULT_SIZES)
        sections["scale"] = scale.run(args.seconds, sizes, max(sizes) if args.quick else 10_000)
    if "rotation" not in skip:
        sections["rotation"] = hspkcs11_only("rotation.py", "--keys", "500" if args.quick else "100000")
    if "failover" not in skip:
        sections["failover"] = hspkcs11_only("failover.py", *(("--objects", "30", "--calls", "60") if args.quick
                                                               else ("--objects", "10000", "--calls", "3000")))

    names = [n for n in OPERATIONS] + [FIND.format(n) for n in sorted(int(x) for x in args.objects.split(",") if x)]
    operations: dict[str, dict] = {}
    errors = []
    for name in names:
        if not all(name in children[m]["results"] for m in MODULES):
            continue
        op: dict[str, Any] = {"text": OPERATIONS.get(name) or FIND_TEXT.format(int(name.rsplit("_", 1)[1]))}
        for m in MODULES:
            r = dict(children[m]["results"][name])
            if "ops_per_s" in r:
                r["ops_per_s"] = round(r["ops_per_s"], 1)
            else:
                errors.append(f"{m} {name}: {r.pop('trace', '')}")
            op[m] = r
        a, b = op["hspkcs11"].get("ops_per_s"), op["softhsm"].get("ops_per_s")
        op["ratio"] = round(a / b, 3) if a and b else None
        operations[name] = op
    report = {
        "command": " ".join(["bench/compare.py", *sys.argv[1:]]),
        "settings": {"seconds": args.seconds, "objects": args.objects, "quick": args.quick, "zones": 3,
                     "cpus": os.cpu_count()},
        "modules": {m: {k: children[m][k] for k in ("library", "manufacturer", "fill_s")} for m in MODULES},
        "operations": operations,
        **sections,
    }
    print(json.dumps(report, indent=1) if args.json else full_table(report))
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
