"""OpenSSL 3 through libp11's pkcs11 engine (Debian libengine-pkcs11-openssl), both modules.

The engine is configured in an openssl.cnf written in tmp_path (`MODULE_PATH`), named by
OPENSSL_CONF for the engine runs only. Keys are made on the token by python-pkcs11; every
signature the engine makes is verified by plain `openssl` (no engine, no config) against
the public key the engine exported.
"""
from __future__ import annotations

import hashlib
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from pkcs11 import Attribute, KeyType
from pkcs11.util.ec import encode_named_curve_parameters

from conftest import USER_PIN, Module, which
from clientkit import new_label, run

ENGINE = Path(f"/usr/lib/{platform.machine()}-linux-gnu/engines-3/pkcs11.so")
MESSAGE = b"the openssl pkcs11 engine signs this\n"


@dataclass
class Engine:
    module: Module
    label: str
    workdir: Path
    conf: Path

    def uri(self, obj: str, kind: str, pin: bool = True) -> str:
        return f"pkcs11:token={self.label};object={obj};type={kind}" + (f";pin-value={USER_PIN}" if pin else "")

    def openssl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """openssl with the engine's config."""
        return run([which("openssl"), *args], self.module, check=check, cwd=self.workdir,
                   env={"OPENSSL_CONF": str(self.conf)})

    def plain(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """openssl without the engine: the independent verifier."""
        return run([which("openssl"), *args], self.module, check=check, cwd=self.workdir,
                   env={"OPENSSL_CONF": "/dev/null"})

    def export_public(self, obj: str) -> Path:
        out = self.workdir / f"{obj}.pub.pem"
        self.openssl("pkey", "-engine", "pkcs11", "-inform", "engine", "-pubin",
                     "-in", self.uri(obj, "public", pin=False), "-pubout", "-out", str(out))
        assert out.read_text().startswith("-----BEGIN PUBLIC KEY-----")
        return out


@pytest.fixture(scope="module")
def engine(module: Module, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if not ENGINE.exists():
        raise RuntimeError(f"{ENGINE} is missing: run the README's test command, which installs it")
    workdir = tmp_path_factory.mktemp("openssl-engine")
    conf = workdir / "openssl.cnf"
    conf.write_text(f"""openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = {ENGINE}
MODULE_PATH = {module.path}
init = 0
""")
    label = new_label("ossl")
    token = module.init_token(label)
    with token.open(user_pin=USER_PIN, rw=True) as s:
        s.generate_keypair(KeyType.RSA, 2048, store=True, label="ossl-rsa", id=b"\xa1")
        params = s.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        params.generate_keypair(store=True, label="ossl-ec", id=b"\xe1")
    (workdir / "msg").write_bytes(MESSAGE)
    (workdir / "msg.sha256").write_bytes(hashlib.sha256(MESSAGE).digest())
    return Engine(module, label, workdir, conf)


SCHEMES = {
    "rsa-pkcs1": ("ossl-rsa", ["-pkeyopt", "digest:sha256"]),
    "rsa-pss": ("ossl-rsa", ["-pkeyopt", "digest:sha256", "-pkeyopt", "rsa_padding_mode:pss",
                             "-pkeyopt", "rsa_pss_saltlen:32"]),
    "ecdsa": ("ossl-ec", []),
}


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_pkeyutl_sign_verifies_with_plain_openssl(engine: Engine, scheme: str) -> None:
    obj, opts = SCHEMES[scheme]
    sig = engine.workdir / f"sig-{scheme}"
    engine.openssl("pkeyutl", "-engine", "pkcs11", "-keyform", "engine", "-inkey", engine.uri(obj, "private"),
                   "-sign", "-in", "msg.sha256", "-out", str(sig), *opts)
    pub = engine.export_public(obj)
    ok = engine.plain("pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-in", "msg.sha256",
                      "-sigfile", str(sig), *opts)
    assert "Signature Verified Successfully" in ok.stdout
    # The control: the same signature over another message is refused.
    (engine.workdir / "other.sha256").write_bytes(hashlib.sha256(MESSAGE + b"x").digest())
    bad = engine.plain("pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-in", "other.sha256",
                       "-sigfile", str(sig), *opts, check=False)
    assert bad.returncode != 0 and "Signature Verified Successfully" not in bad.stdout


@pytest.mark.parametrize("obj", ["ossl-rsa", "ossl-ec"])
def test_req_x509_self_signed_certificate_verifies(engine: Engine, obj: str) -> None:
    cert = engine.workdir / f"{obj}.crt"
    engine.openssl("req", "-x509", "-new", "-engine", "pkcs11", "-keyform", "engine",
                   "-key", engine.uri(obj, "private"), "-subj", f"/CN={obj}", "-days", "1", "-sha256",
                   "-out", str(cert))
    ok = engine.plain("verify", "-CAfile", str(cert), str(cert))
    assert ok.stdout.strip() == f"{cert}: OK"
    cert_pub = engine.plain("x509", "-in", str(cert), "-noout", "-pubkey").stdout
    assert cert_pub == engine.export_public(obj).read_text()
