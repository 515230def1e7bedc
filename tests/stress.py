"""Concurrency stress on one token (issue 8, item 3), runnable and importable.

N worker processes x M threads do mixed PKCS#11 work through python-pkcs11, each thread
in its own session: token and session key generation, C_CreateObject, ECDSA and HMAC
signatures, AES-GCM, finds by CKA_ID, destroys of its own objects, CKA_LABEL changes.
Meanwhile a flapper takes a random zone down and up with `hspkcs11-util zone` (never the
last zone that is up). Every object-changing call is journaled (one line before the
call, one after it returned: `Journal`); afterwards every zone is brought up, one engine
read lets the units catch up, and `check` opens every unit's store directly and compares
it with the journals. The run is clean when no call failed with a code outside
`ALLOWED_ERRORS`, no answer was wrong, and every unit holds exactly what was acknowledged.

By hand (prints the JSON report, exits 1 when it is not clean):

    .venv/bin/python tests/stress.py --processes 4 --threads 4 --seconds 300 [--keep DIR]

`tests/test_stress.py` runs it bounded (4 x 4, 20 s; HSPKCS11_STRESS_SECONDS for longer).
`tests/test_crash.py` reuses the worker as its killed writer, and the journal and checker.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

TOKEN = "stress"
CERT_SIZE = 64 * 1024
ZONES = "us-south-1, us-south-2, us-south-3"

# Error codes the run tolerates, with why: none. Every call works on the thread's own
# objects and session, on a region that always has a zone up that holds every change.
ALLOWED_ERRORS: dict[str, str] = {}
# Codes that would be right only under conditions this run never creates (so here they
# fail it), and what those conditions are.
ALLOWED_ONLY_IF: dict[str, str] = {
    "CKR_DEVICE_ERROR": "every zone down, or no zone up holding the newest change; the flapper always leaves "
                        "one zone up, and `zone up` catches a zone up before the next goes down",
    "CKR_OBJECT_HANDLE_INVALID": "an object destroyed by someone else; each thread touches only its own objects",
    "CKR_KEY_HANDLE_INVALID": "a key destroyed by someone else; each thread uses only its own keys",
    "CKR_SESSION_HANDLE_INVALID": "a session closed by someone else; each thread has its own session",
    "CKR_USER_NOT_LOGGED_IN": "the application's last session closed; the worker's main session stays open",
}

# Operation mixes: name -> weight.
PROFILES: dict[str, dict[str, int]] = {
    "mixed": {"keygen_token": 3, "create_object": 1, "keygen_session": 1, "sign_ecdsa": 2, "sign_hmac": 2,
              "encrypt_gcm": 2, "find": 3, "destroy": 3, "set_label": 2},
    # The killed writer of tests/test_crash.py: object-changing calls only.
    "writes": {"keygen_token": 5, "create_object": 3, "destroy": 2, "set_label": 1},
    # Large objects (64 KiB certificates): a catch-up of a few of them is a long transaction.
    "bulk": {"create_cert": 1},
}


# ---- the journal ----------------------------------------------------------------------

class Journal:
    """Append-only JSON lines, one `os.write` each: a line written after a call returned
    is in the kernel before the next call starts, so a kill -9 cannot lose it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()

    def write(self, **record: Any) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        os.close(self._fd)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Complete lines only (a line cut by a kill has no newline yet)."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


@dataclass
class Expected:
    """What the journal says about one object (a key pair is one entry: same CKA_ID)."""
    ckaid: bytes
    state: str = "creating"           # creating | live | destroying | gone
    handles: tuple[int, ...] = ()
    labels: set[bytes] = field(default_factory=set)     # more than one: a change in flight
    pinned: bool = False

    @property
    def in_flight(self) -> bool:
        return self.state in ("creating", "destroying") or len(self.labels) > 1


# What each journaled step makes of an object's state (a failed call has no effect).
STATE_AFTER: dict[tuple[str, str], str] = {
    ("create", "ok"): "live", ("create", "fail"): "gone",
    ("destroy", "begin"): "destroying", ("destroy", "ok"): "gone", ("destroy", "fail"): "live",
}


def replay(records: Iterable[dict[str, Any]]) -> dict[bytes, Expected]:
    """Each object's expected state after the journal's calls. A call with `begin` and no
    `ok` or `fail` was cut off (by a kill): its object may be either way."""
    objects: dict[bytes, Expected] = {}
    for r in records:
        ckaid = bytes.fromhex(r["id"])
        e = objects.setdefault(ckaid, Expected(ckaid))
        step, label = (r["op"], r["at"]), r.get("label", "").encode()
        e.state = STATE_AFTER.get(step, e.state)
        if step == ("create", "ok"):
            e.handles = tuple(r["h"])
        elif step == ("create", "begin"):
            e.labels, e.pinned = {label}, bool(r.get("pin"))
        elif r["op"] == "label":            # begin: either label; ok: the new one; fail: the old one
            e.labels = {"begin": e.labels | {label}, "ok": {label}, "fail": e.labels - {label}}[r["at"]]
    return objects


# ---- the worker process ---------------------------------------------------------------

def ckr_name(exc: BaseException) -> str:
    """python-pkcs11 names its exceptions after the CKR (DeviceError: CKR_DEVICE_ERROR)."""
    from hspkcs11.consts import CKR
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).upper()
    return f"CKR_{snake}" if snake in CKR.__members__ else type(exc).__name__


@dataclass
class Owned:
    """An object a thread made: its CKA_ID, handles and python-pkcs11 objects."""
    ckaid: bytes
    kind: str                     # aes | ec | hmac | cert
    objs: list[Any]
    label: str

    @property
    def handles(self) -> list[int]:
        return [o.handle for o in self.objs]


class Worker:
    """One thread's work: its session, its objects, its counters."""

    def __init__(self, token: Any, journal: Journal, rng: random.Random, tag: str, profile: str,
                 foreign: "ForeignPins") -> None:
        self.s = token.open(rw=True)
        self.journal, self.rng, self.tag, self.foreign = journal, rng, tag, foreign
        self.ops: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.wrong: list[str] = []
        self.finds: Counter[str] = Counter()        # own, destroyed, foreign (another process's key)
        self.live: list[Owned] = []
        self.gone: list[bytes] = []
        self.weights = PROFILES[profile]
        self.table: dict[str, Callable[[], None]] = {name: getattr(self, name) for name in self.weights}
        self.n = 0
        # The thread's own keys, never destroyed (other processes look them up too).
        self.ec = self.make("ec", pinned=True)
        self.hmac = self.make("hmac", pinned=True)
        self.aes = self.make("aes", pinned=True)

    # -- objects

    def label(self) -> str:
        self.n += 1
        return f"{self.tag}-{self.n}"

    def make(self, kind: str, pinned: bool = False, created: bool = False) -> Owned:
        """Create a token object, journaled around the call."""
        from pkcs11 import Attribute as A, CertificateType, KeyType, ObjectClass
        from pkcs11.util.ec import encode_named_curve_parameters
        ckaid, label = os.urandom(12), self.label()
        self.journal.write(op="create", at="begin", id=ckaid.hex(), label=label, pin=pinned)
        try:
            if kind == "ec":
                pub, priv = self.s.generate_keypair(
                    KeyType.EC, store=True, id=ckaid, label=label,
                    public_template={A.EC_PARAMS: encode_named_curve_parameters("secp256r1")})
                objs = [pub, priv]
            elif kind == "hmac":
                objs = [self.s.generate_key(KeyType.GENERIC_SECRET, 256, store=True, id=ckaid, label=label,
                                            template={A.SIGN: True, A.VERIFY: True})]
            elif kind == "cert":
                objs = [self.s.create_object({A.CLASS: ObjectClass.CERTIFICATE, A.TOKEN: True,
                                              A.CERTIFICATE_TYPE: CertificateType.X_509, A.SUBJECT: b"0\x00",
                                              A.VALUE: os.urandom(CERT_SIZE), A.ID: ckaid, A.LABEL: label})]
            elif created:        # C_CreateObject with a value
                objs = [self.s.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES,
                                              A.VALUE: os.urandom(32), A.TOKEN: True, A.ID: ckaid, A.LABEL: label,
                                              A.ENCRYPT: True, A.DECRYPT: True, A.PRIVATE: True,
                                              A.SENSITIVE: True})]
            else:
                objs = [self.s.generate_key(KeyType.AES, 256, store=True, id=ckaid, label=label)]
        except BaseException as exc:
            self.journal.write(op="create", at="fail", id=ckaid.hex(), err=ckr_name(exc))
            raise
        owned = Owned(ckaid, kind, objs, label)
        self.journal.write(op="create", at="ok", id=ckaid.hex(), h=owned.handles)
        return owned

    def pick(self, kinds: tuple[str, ...] = ("aes", "ec", "hmac", "cert")) -> Owned | None:
        choices = [o for o in self.live if o.kind in kinds]
        return self.rng.choice(choices) if choices else None

    # -- operations (one call each of the names in PROFILES)

    def keygen_token(self) -> None:
        kind = "ec" if self.rng.random() < 0.25 else "aes"
        self.live.append(self.make(kind))

    def create_object(self) -> None:
        self.live.append(self.make("aes", created=True))

    def create_cert(self) -> None:
        self.live.append(self.make("cert"))

    def keygen_session(self) -> None:
        from pkcs11 import KeyType
        key = self.s.generate_key(KeyType.AES, 128, store=False)
        self.gcm_roundtrip(key)
        key.destroy()

    def sign_ecdsa(self) -> None:
        from pkcs11 import Mechanism
        pub, priv = self.ec.objs
        data = os.urandom(40)
        sig = priv.sign(data, mechanism=Mechanism.ECDSA_SHA256)
        self.expect(pub.verify(data, sig, mechanism=Mechanism.ECDSA_SHA256), "ECDSA signature does not verify")

    def sign_hmac(self) -> None:
        from pkcs11 import Mechanism
        key, data = self.hmac.objs[0], os.urandom(40)
        mac = key.sign(data, mechanism=Mechanism.SHA256_HMAC)
        self.expect(len(mac) == 32 and key.verify(data, mac, mechanism=Mechanism.SHA256_HMAC),
                    "HMAC does not verify")

    def encrypt_gcm(self) -> None:
        owned = self.pick(("aes",)) if self.rng.random() < 0.5 else None
        self.gcm_roundtrip((owned or self.aes).objs[0])

    def gcm_roundtrip(self, key: Any) -> None:
        from pkcs11 import Mechanism
        from pkcs11.mechanisms import GCMParams
        data, param = os.urandom(64), GCMParams(os.urandom(12), b"aad")
        out = key.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=param)
        self.expect(len(out) == 80 and key.decrypt(out, mechanism=Mechanism.AES_GCM, mechanism_param=param) == data,
                    "AES-GCM does not round-trip")

    def find(self) -> None:
        """By CKA_ID: an own live object (exactly its handles), an own destroyed one
        (nothing), or another process's pinned key (exactly its handles)."""
        roll = self.rng.random()
        if roll < 0.2 and self.gone:
            kind, ckaid, want = "destroyed", self.rng.choice(self.gone), []
        elif roll < 0.5 and (pin := self.foreign.pick(self.rng)) is not None:
            kind, (ckaid, want) = "foreign", pin
        else:
            owned = self.pick() or self.aes
            kind, ckaid, want = "own", owned.ckaid, owned.handles
        self.finds[kind] += 1
        from pkcs11 import Attribute as A
        got = sorted(o.handle for o in self.s.get_objects({A.ID: ckaid}))
        self.expect(got == sorted(want), f"find by id {ckaid.hex()}: handles {got}, expected {sorted(want)}")

    def destroy(self) -> None:
        owned = self.pick()
        assert owned is not None
        self.live.remove(owned)
        self.journal.write(op="destroy", at="begin", id=owned.ckaid.hex())
        try:
            for obj in reversed(owned.objs):          # private half first
                obj.destroy()
        except BaseException as exc:
            self.journal.write(op="destroy", at="fail", id=owned.ckaid.hex(), err=ckr_name(exc))
            raise
        self.journal.write(op="destroy", at="ok", id=owned.ckaid.hex())
        self.gone = (self.gone + [owned.ckaid])[-64:]

    def set_label(self) -> None:
        from pkcs11 import Attribute as A
        owned = self.pick()
        assert owned is not None
        label = self.label()
        self.journal.write(op="label", at="begin", id=owned.ckaid.hex(), label=label)
        try:
            for obj in owned.objs:
                obj[A.LABEL] = label
        except BaseException as exc:
            self.journal.write(op="label", at="fail", id=owned.ckaid.hex(), label=label, err=ckr_name(exc))
            raise
        self.journal.write(op="label", at="ok", id=owned.ckaid.hex(), label=label)
        owned.label = label

    # -- the loop

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.wrong.append(f"{self.tag}: {what}")

    def step(self) -> None:
        import pkcs11
        name = self.rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
        if name in ("destroy", "set_label") and not self.live:
            name = "keygen_token"          # nothing of its own to change yet
        try:
            self.table[name]()
            self.ops[name] += 1
        except pkcs11.exceptions.PKCS11Error as exc:
            self.errors[f"{name}: {ckr_name(exc)}"] += 1
        except Exception as exc:  # noqa: BLE001 - anything else is a wrong answer, reported
            self.wrong.append(f"{self.tag}: {name} raised {type(exc).__name__}: {exc}")

    def close(self) -> None:
        self.s.close()


class ForeignPins:
    """Pinned keys other processes acknowledged (read from their journals now and then):
    a find by their CKA_ID must return exactly their handles."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.pins: list[tuple[bytes, list[int]]] = []
        self._next = 0.0
        self._lock = threading.Lock()

    def pick(self, rng: random.Random) -> tuple[bytes, list[int]] | None:
        with self._lock:
            if time.monotonic() >= self._next:
                self._next = time.monotonic() + 1.0
                exp = replay(r for p in self.paths for r in read_journal(p))
                self.pins = [(e.ckaid, sorted(e.handles)) for e in exp.values() if e.pinned and e.state == "live"]
            return rng.choice(self.pins) if self.pins else None


def worker_main(args: argparse.Namespace) -> int:
    """One worker process: `ready` once every thread has its keys, then work from `go`
    until `stop` (or --seconds, or being killed); prints its counters as JSON."""
    import pkcs11
    import hspkcs11
    from conftest import USER_PIN
    lib = pkcs11.lib(str(hspkcs11.module_path()))
    token = lib.get_token(token_label=args.token)
    login = token.open(user_pin=USER_PIN, rw=True)      # login belongs to the application (Base §5.6)
    journal = Journal(Path(args.journal))
    foreign = ForeignPins([Path(p) for p in args.foreign])
    workers = [Worker(token, journal, random.Random(f"{args.seed}-{i}"), f"{args.tag}.{i}", args.profile, foreign)
               for i in range(args.threads)]
    print("ready", flush=True)
    stop = threading.Event()
    if args.wait:                 # `go` starts the run; the next line (`stop`) ends it
        sys.stdin.readline()
        threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    deadline = time.monotonic() + args.seconds

    def loop(w: Worker) -> None:
        while not stop.is_set() and time.monotonic() < deadline and sum(w.ops.values()) < args.limit:
            w.step()

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ops: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    finds: Counter[str] = Counter()
    for w in workers:
        ops.update(w.ops)
        errors.update(w.errors)
        finds.update(w.finds)
        w.close()
    login.close()
    journal.close()
    print(json.dumps({"ops": ops, "errors": errors, "finds": finds, "wrong": sum((w.wrong for w in workers), [])}),
          flush=True)
    return 0


def worker_command(conf: Path, journal: Path, tag: str, threads: int, profile: str = "mixed",
                   seconds: float = 3600, seed: int = 0, wait: bool = True, foreign: Iterable[Path] = (),
                   limit: int = 10**9) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker", "--journal", str(journal), "--tag", tag,
           "--threads", str(threads), "--profile", profile, "--seconds", str(seconds), "--seed", str(seed),
           "--token", TOKEN, "--limit", str(limit)]
    cmd += ["--wait"] if wait else []
    for p in foreign:
        cmd += ["--foreign", str(p)]
    return cmd


# ---- the region, the flapper, the checker ---------------------------------------------

def make_stress_region(base: Path) -> Path:
    """A three-zone region with a master key and the token `stress`."""
    from conftest import make_region
    from regionkit import cli
    conf = make_region(base, zones=ZONES)
    cli(conf, "init-token", "--free", "--label", TOKEN)
    return conf


class Flapper(threading.Thread):
    """Takes a random zone down or up with the CLI every 0.1-0.5 s; never the last zone up."""

    def __init__(self, conf: Path, seed: int) -> None:
        super().__init__(daemon=True)
        from hspkcs11.config import load as load_config
        self.conf, self.zones = conf, list(load_config(conf).zones)
        self.rng = random.Random(seed)
        self.down: set[str] = set()
        self.flaps: Counter[str] = Counter()
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        from regionkit import cli
        while not self.halt.wait(self.rng.uniform(0.1, 0.5)):
            zone = self.rng.choice(self.zones)
            if zone not in self.down and len(self.down) + 1 >= len(self.zones):
                zone = self.rng.choice(sorted(self.down))       # the last zone up stays up
            verb = "up" if zone in self.down else "down"
            out = cli(self.conf, "zone", verb, zone, check=False)
            if out.returncode != 0:
                self.failures.append(f"zone {verb} {zone}: {out.stderr.strip()}")
                continue
            self.down.symmetric_difference_update({zone})
            self.flaps[verb] += 1


def settle(conf: Path) -> None:
    """Every zone up (`zone up`, which catches it up), then one engine read (which would
    catch up any unit still behind). Finer faults (delays) stay."""
    from hspkcs11.config import load as load_config
    from hspkcs11.hsm.faults import FaultFile
    from hspkcs11.hsm.replica import RegionService
    from regionkit import cli
    cfg = load_config(conf)
    for zone, fault in FaultFile(cfg.region_dir).read().items():
        if fault.down:
            cli(conf, "zone", "up", zone)
    svc = RegionService(cfg)
    try:
        svc.readers()
    finally:
        svc.close()


def _integrity(path: Path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def check(conf: Path, journals: Iterable[Path], token: str = TOKEN, in_flight_ok: bool = False) -> dict[str, Any]:
    """Open every unit's store and compare it with the journals: every acknowledged object
    present in every unit (same handles, same row digest, the last acknowledged label),
    every destroyed one absent, nothing that no journal names, every row's digest good,
    every unit at the region's head. Returns the figures and a list of problems."""
    from hspkcs11.config import load as load_config
    from hspkcs11.hsm.files import HEAD, Stamp
    from hspkcs11.hsm.region import Region
    from hspkcs11.hsm.store import StoreError, row_digest
    cfg = load_config(conf)
    expected = replay(r for p in journals for r in read_journal(Path(p)))
    problems: list[str] = []
    head = int.from_bytes((cfg.region_dir / HEAD).read_bytes()[:Stamp.SIZE], "big")
    units = Region(cfg).units()                      # every store opens (identity checked)
    views: dict[str, dict[int, Any]] = {}
    for unit in units:
        if (ok := _integrity(unit.store.path)) != "ok":
            problems.append(f"{unit.zone}: integrity_check: {ok}")
        serial = next((t.serial for t in unit.store.tokens() if t.label.rstrip(b" ") == token.encode()), None)
        if serial is None:
            problems.append(f"{unit.zone}: no token {token!r}")
            continue
        try:
            views[unit.zone] = {r.handle: r for r in unit.store.find(serial, True)}   # digests checked
        except StoreError as exc:
            problems.append(f"{unit.zone}: {exc}")
            continue
        if unit.store.position() != head:
            problems.append(f"{unit.zone}: at position {unit.store.position()}, the region's head is {head}")
    figures = Counter[str]()
    for zone, rows in views.items():
        by_id: dict[bytes, list[Any]] = {}
        for r in rows.values():
            by_id.setdefault(r.ckaid or b"", []).append(r)
        for ckaid, e in expected.items():
            found = by_id.pop(ckaid, [])
            problems += _compare(zone, e, found, in_flight_ok, figures)
        problems += [f"{zone}: object {r.handle} (id {r.ckaid.hex() if r.ckaid else '-'}) is in no journal"
                     for rs in by_id.values() for r in rs]
    digests = {zone: {h: row_digest(r) for h, r in rows.items()} for zone, rows in views.items()}
    if any(d != next(iter(digests.values())) for d in digests.values()):
        problems.append("units differ: " + ", ".join(f"{z}: {len(d)} objects" for z, d in digests.items()))
    return {"units": len(units), "head": head, "journaled_objects": len(expected),
            "live": sum(e.state == "live" for e in expected.values()),
            "destroyed": sum(e.state == "gone" for e in expected.values()),
            "in_flight": sum(e.in_flight for e in expected.values()),
            "checks": dict(figures), "problems": problems}


def _compare(zone: str, e: Expected, found: list[Any], in_flight_ok: bool, figures: Counter[str]) -> list[str]:
    """One object in one unit against its journal entry."""
    name = f"{zone}: object id {e.ckaid.hex()}"
    if e.in_flight and not in_flight_ok:
        return [f"{name}: a call on it never returned"]
    if e.state == "gone":
        figures["destroyed_absent"] += 1
        return [f"{name}: destroyed (or failed to create) but present as {[r.handle for r in found]}"] if found else []
    if e.state == "creating":
        figures["in_flight_create"] += 1
        return []
    handles = sorted(r.handle for r in found)
    if e.state == "live" and handles != sorted(e.handles):
        return [f"{name}: acknowledged with handles {sorted(e.handles)}, unit holds {handles}"]
    if e.state == "destroying" and not set(handles) <= set(e.handles):
        return [f"{name}: being destroyed, unit holds handles {handles} not {sorted(e.handles)}"]
    figures["live_present" if e.state == "live" else "in_flight_destroy"] += 1
    bad = [r.handle for r in found if (r.label or b"") not in e.labels]
    figures["labels_checked"] += len(found)
    return [f"{name}: label of {bad} is not the acknowledged {sorted(e.labels)}"] if bad else []


# ---- the run ----------------------------------------------------------------------------

def run(conf: Path, work: Path, processes: int = 4, threads: int = 4, seconds: float = 20.0,
        seed: int = 1) -> dict[str, Any]:
    """Workers and flapper for `seconds`, then the check; returns the report."""
    from regionkit import env
    journals = [work / f"journal-{p}.jsonl" for p in range(processes)]
    procs = [subprocess.Popen(worker_command(conf, journals[p], f"p{p}", threads, seed=seed * 100 + p,
                                             foreign=[j for j in journals if j != journals[p]]),
                              env=env(conf), text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for p in range(processes)]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a worker did not start: {line} {p.stderr.read() if p.stderr else ''}")
        flapper = Flapper(conf, seed)
        started = time.monotonic()
        for p in procs:
            p.stdin.write("go\n")          # type: ignore[union-attr]
            p.stdin.flush()                # type: ignore[union-attr]
        flapper.start()
        time.sleep(seconds)
        flapper.halt.set()
        flapper.join()
        for p in procs:
            p.stdin.write("stop\n")        # type: ignore[union-attr]
            p.stdin.flush()                # type: ignore[union-attr]
        outs = [p.communicate(timeout=300) for p in procs]
        elapsed = time.monotonic() - started
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    ops: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    finds: Counter[str] = Counter()
    wrong: list[str] = []
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0 or not out.strip():
            wrong.append(f"worker exited {p.returncode}: {err.strip()[-2000:]}")
            continue
        result = json.loads(out.strip().splitlines()[-1])
        ops.update(result["ops"])
        errors.update(result["errors"])
        finds.update(result["finds"])
        wrong += result["wrong"]
    settle(conf)
    checked = check(conf, journals)
    unexpected = {k: n for k, n in errors.items() if k.split(": ")[-1] not in ALLOWED_ERRORS}
    clean = not unexpected and not wrong and not checked["problems"] and not flapper.failures \
        and sum(ops.values()) > 0
    return {"processes": processes, "threads": threads, "seconds": round(elapsed, 1),
            "ops": dict(sorted(ops.items())), "ops_total": sum(ops.values()), "finds": dict(finds),
            "errors": dict(errors), "unexpected_errors": unexpected, "allowed_errors": ALLOWED_ERRORS,
            "wrong": wrong[:50], "flaps": dict(flapper.flaps), "flapper_failures": flapper.failures,
            "check": checked, "clean": clean}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    w = sub.add_parser("worker", help="one worker process (started by the run)")
    w.add_argument("--journal", required=True)
    w.add_argument("--tag", required=True)
    w.add_argument("--threads", type=int, default=4)
    w.add_argument("--profile", choices=sorted(PROFILES), default="mixed")
    w.add_argument("--seconds", type=float, default=3600)
    w.add_argument("--limit", type=int, default=10**9, help="operations per thread")
    w.add_argument("--seed", default="0")
    w.add_argument("--token", default=TOKEN)
    w.add_argument("--wait", action="store_true", help="wait for `go` on stdin; `stop` ends the run")
    w.add_argument("--foreign", action="append", default=[], help="other workers' journals")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("HSPKCS11_STRESS_SECONDS", 20)))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="make the scratch region here and keep it")
    args = parser.parse_args(argv)
    if args.command == "worker":
        return worker_main(args)
    base = args.keep or Path(tempfile.mkdtemp(prefix="hspkcs11-stress-"))
    base.mkdir(parents=True, exist_ok=True)
    conf = make_stress_region(base)
    report = run(conf, base, args.processes, args.threads, args.seconds, args.seed)
    print(json.dumps(report, indent=1))
    if not args.keep:
        import shutil
        shutil.rmtree(base, ignore_errors=True)
    return 0 if report["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
