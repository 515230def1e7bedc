"""Helpers for region tests: the CLI, and a long-lived PKCS#11 client process.

`Client` runs python-pkcs11 in its own process (as an application would) and takes
one command per line on stdin, answering one line: so a test can flip zones from
another process between two calls of an application that keeps its sessions open.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import SO_PIN, USER_PIN, util

PASSWORD = "correct horse battery"

DRIVER = textwrap.dedent("""
    import sys, pkcs11, hspkcs11
    from pkcs11 import Attribute as A, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters
    lib = pkcs11.lib(str(hspkcs11.module_path()))
    s = lib.get_token(token_label=sys.argv[1]).open(user_pin="1234", rw=True)
    pub, priv = s.generate_keypair(KeyType.EC, store=True, label="signer",
                                   public_template={A.EC_PARAMS: encode_named_curve_parameters("secp256r1")})

    def do(cmd, arg):
        if cmd == "sign":
            return str(pub.verify(b"m", priv.sign(b"m", mechanism=Mechanism.ECDSA_SHA256),
                                  mechanism=Mechanism.ECDSA_SHA256))
        if cmd == "genkey":
            s.generate_key(KeyType.AES, 128, store=True, label=arg)
            return "ok"
        if cmd == "count":
            return str(len(list(s.get_objects({A.CLASS: ObjectClass.SECRET_KEY}))))
        if cmd == "find":
            return ",".join(sorted(o[A.LABEL] for o in s.get_objects({A.LABEL: arg})))
        return "unknown command"

    print("ready", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "quit":
            break
        try:
            print(do(cmd, arg), flush=True)
        except pkcs11.exceptions.PKCS11Error as exc:
            print(type(exc).__name__, flush=True)
""")


def env(conf: Path) -> dict[str, str]:
    return {**os.environ, "HSPKCS11_CONF": str(conf), "HSPKCS11_KEYPART_PASSWORD": PASSWORD,
            "HSPKCS11_SO_PIN": SO_PIN, "HSPKCS11_PIN": USER_PIN}


def cli(conf: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(util() + list(args), env=env(conf), capture_output=True, text=True, check=check)


class Client:
    def __init__(self, conf: Path, token: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER, token], env=env(conf), text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.readline() == "ready", self.proc.stderr.read() if self.proc.stderr else ""

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def do(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.readline()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


def start_together(procs: list[subprocess.Popen[str]]) -> None:
    """Wait until every worker printed "ready", then tell them all "go": the workers'
    real work overlaps instead of following their start-up times."""
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
