"""A Python host that forks while one of its threads is busy in the module (issue 8,
item 5); run by tests/test_fork.py, one run per module:

    python tests/fork_host.py MODULE_PATH TOKEN_LABEL USER_PIN FORKS

The parent logs in with python-pkcs11, makes an EC key pair (token objects with a fresh
CKA_ID), and starts a thread that
signs, verifies and finds by CKA_ID in a loop. Then it forks FORKS times (os.fork) while
that thread works. Each child calls the module through its raw function list
(tests/rawp11.py): first functions that need C_Initialize, with the session and key
handles the parent holds, then C_Initialize, its own session, login, a find and a sign,
and reports every return value as JSON through a pipe. A child that does not finish in
CHILD_SECONDS is killed (a deadlock fails the run instead of hanging it). The parent
verifies each child's signature, checks that its own thread kept working, and prints
one JSON report.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pkcs11  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature  # noqa: E402
from pkcs11 import Attribute as A, KeyType, Mechanism, ObjectClass  # noqa: E402
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters  # noqa: E402

from hspkcs11.consts import CKA, CKM, CKO, CKR, CKU  # noqa: E402
from rawp11 import Raw, ffi, template, ulong  # noqa: E402

CHILD_SECONDS = 30
MESSAGE = b"signed in a forked child"
# CKM_ECDSA over a SHA-256 digest: SoftHSM2 has no CKM_ECDSA_SHA256.
DIGEST = hashlib.sha256(MESSAGE).digest()
CKF_RW_SERIAL = 0x6


def rv_name(rv: int) -> str:
    try:
        return "CKR_" + CKR(rv).name
    except ValueError:
        return hex(rv)


# ---- the child ----------------------------------------------------------------------------

class Child:
    """The child's calls, each return value recorded by name."""

    def __init__(self, path: str, slot: int, session: int, key: int, key_id: bytes) -> None:
        self.raw = Raw(path)      # the library the parent loaded: same function list
        self.slot, self.parent_session, self.parent_key, self.key_id = slot, session, key, key_id
        self.rv: dict[str, str] = {}

    def call(self, name: str, rv: int) -> int:
        self.rv[name] = rv_name(rv)
        return rv

    def before_initialize(self) -> None:
        """Functions that need C_Initialize, some with the parent's handles (none that
        would change a module's state if it answered them: SoftHSM2 does)."""
        r = self.raw
        count = ffi.new("CK_ULONG *")
        h = ffi.new("CK_SESSION_HANDLE *")
        mech = ffi.new("CK_MECHANISM *", {"mechanism": CKM.ECDSA})
        self.call("before.C_GetInfo", r.C_GetInfo(ffi.new("CK_INFO *")))
        self.call("before.C_GetSlotList", r.C_GetSlotList(1, ffi.NULL, count))
        self.call("before.C_OpenSession", r.C_OpenSession(self.slot, CKF_RW_SERIAL, ffi.NULL, ffi.NULL, h))
        self.call("before.C_SignInit(parent's session)", r.C_SignInit(self.parent_session, mech, self.parent_key))

    def work(self, pin: str) -> bytes:
        """Initialise, open a session, log in, find the key by CKA_ID, sign."""
        r = self.raw
        self.call("C_Initialize", r.C_Initialize(ffi.NULL))
        self.call("C_Initialize again", r.C_Initialize(ffi.NULL))
        h = ffi.new("CK_SESSION_HANDLE *")
        self.call("C_OpenSession", r.C_OpenSession(self.slot, CKF_RW_SERIAL, ffi.NULL, ffi.NULL, h))
        self.call("C_Login", r.C_Login(h[0], CKU.USER, pin.encode(), len(pin)))
        tmpl, _keep = template((CKA.CLASS, ulong(CKO.PRIVATE_KEY)), (CKA.ID, self.key_id))
        self.call("C_FindObjectsInit", r.C_FindObjectsInit(h[0], tmpl, 2))
        found, n = ffi.new("CK_OBJECT_HANDLE[4]"), ffi.new("CK_ULONG *")
        self.call("C_FindObjects", r.C_FindObjects(h[0], found, 4, n))
        self.call("C_FindObjectsFinal", r.C_FindObjectsFinal(h[0]))
        self.rv["found"] = str(n[0])
        mech = ffi.new("CK_MECHANISM *", {"mechanism": CKM.ECDSA})
        sig, siglen = ffi.new("CK_BYTE[256]"), ffi.new("CK_ULONG *", 256)
        self.call("C_SignInit", r.C_SignInit(h[0], mech, found[0]))
        self.call("C_Sign", r.C_Sign(h[0], DIGEST, len(DIGEST), sig, siglen))
        self.call("C_CloseSession", r.C_CloseSession(h[0]))
        self.call("C_Finalize", r.C_Finalize(ffi.NULL))
        return bytes(ffi.buffer(sig, siglen[0]))


def child_main(fd: int, path: str, pin: str, slot: int, session: int, key: int, key_id: bytes) -> None:
    signal.alarm(CHILD_SECONDS)          # a deadlocked child dies rather than hanging the run
    report: dict[str, Any] = {}
    try:
        child = Child(path, slot, session, key, key_id)
        child.before_initialize()
        report["signature"] = child.work(pin).hex()
        report["rv"] = child.rv
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        report["error"] = f"{type(exc).__name__}: {exc}"
    os.write(fd, json.dumps(report).encode())
    os._exit(0)


# ---- the parent ------------------------------------------------------------------------

class Busy(threading.Thread):
    """Signs, verifies and finds by CKA_ID in a loop, in its own session."""

    def __init__(self, token: Any, key_id: bytes) -> None:
        super().__init__(daemon=True)
        self.session, self.key_id = token.open(), key_id
        self.done = self.wrong = 0
        self.stop = threading.Event()

    def run(self) -> None:
        s = self.session
        priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, id=self.key_id)
        pub = s.get_key(object_class=ObjectClass.PUBLIC_KEY, id=self.key_id)
        while not self.stop.is_set():
            try:
                sig = priv.sign(DIGEST, mechanism=Mechanism.ECDSA)
                ok = pub.verify(DIGEST, sig, mechanism=Mechanism.ECDSA)
                ok = ok and len(list(s.get_objects({A.ID: self.key_id}))) == 2
            except pkcs11.exceptions.PKCS11Error:
                ok = False
            self.done += 1
            self.wrong += not ok


def wait_child(pid: int, seconds: float) -> str:
    """The child's exit, or `deadlocked` once the watchdog had to kill it."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFSIGNALED(status):
                return "deadlocked" if os.WTERMSIG(status) == signal.SIGALRM else f"signal {os.WTERMSIG(status)}"
            return f"exit {os.WEXITSTATUS(status)}"
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "deadlocked"


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def verifies(public_der: bytes, signature_hex: str) -> bool:
    sig = bytes.fromhex(signature_hex)
    half = len(sig) // 2
    key = serialization.load_der_public_key(public_der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")),
                   DIGEST, ec.ECDSA(Prehashed(hashes.SHA256())))
        return True
    except InvalidSignature:
        return False


def main() -> int:
    path, label, pin, forks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    lib = pkcs11.lib(path)
    token = lib.get_token(token_label=label)
    s = token.open(user_pin=pin, rw=True)
    key_id = os.urandom(8)
    pub, priv = s.generate_keypair(KeyType.EC, store=True, id=key_id, label="fork",
                                   public_template={A.EC_PARAMS: encode_named_curve_parameters("secp256r1")})
    public_der = encode_ec_public_key(pub)
    busy = Busy(token, key_id)
    busy.start()
    children = []
    for _ in range(forks):
        start = busy.done
        while busy.done < start + 2:       # fork while the thread is in the middle of its work
            time.sleep(0.001)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            child_main(w, path, pin, token.slot.slot_id, s.handle, priv.handle, key_id)
        os.close(w)
        status = wait_child(pid, CHILD_SECONDS + 5)
        raw = read_all(r)
        os.close(r)
        child = json.loads(raw) if raw else {}
        child["exit"] = status
        child["verified"] = bool(child.get("signature")) and verifies(public_der, child["signature"])
        children.append(child)
    after_forks = busy.done
    time.sleep(0.3)
    busy.stop.set()
    busy.join(30)
    with token.open() as again:                    # the parent still works after the forks
        key = again.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id)
        parent_after = len(key.sign(DIGEST, mechanism=Mechanism.ECDSA)) == 64
    print(json.dumps({"children": children, "busy_done": busy.done, "busy_after_forks": busy.done - after_forks,
                      "busy_wrong": busy.wrong, "busy_stuck": busy.is_alive(), "parent_after": parent_after}))
    busy.session.close()
    s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
