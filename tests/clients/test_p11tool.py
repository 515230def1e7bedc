"""GnuTLS `p11tool` (Debian gnutls-bin) against both modules, on a token made by the test.

p11tool normally finds modules through p11-kit; `--provider PATH` loads one module
directly. The PIN comes from GNUTLS_PIN. Objects are named by PKCS#11 URIs (RFC 7512).
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import USER_PIN, Module, which
from clientkit import new_label, run

PEM_PUBLIC = re.compile(r"-----BEGIN PUBLIC KEY-----\n.*?-----END PUBLIC KEY-----\n", re.S)


@dataclass
class P11Tool:
    module: Module
    label: str
    workdir: Path

    @property
    def token_uri(self) -> str:
        return f"pkcs11:token={self.label}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([which("p11tool"), "--provider", self.module.path, *args], self.module, check=check,
                   env={"GNUTLS_PIN": USER_PIN}, cwd=self.workdir)


@pytest.fixture(scope="module")
def p11(module: Module, tmp_path_factory: pytest.TempPathFactory) -> P11Tool:
    tool = P11Tool(module, new_label("p11tool"), tmp_path_factory.mktemp("p11tool"))
    module.init_token(tool.label)
    return tool


@pytest.fixture(scope="module")
def generated(p11: P11Tool) -> dict[str, str]:
    """An RSA 2048 and a P-256 key pair made by p11tool; the public key PEM it printed for each."""
    rsa_out = p11.run("--login", "--generate-privkey=rsa", "--bits=2048", "--label=gt-rsa", "--id=a1",
                      p11.token_uri).stdout
    ec_out = p11.run("--login", "--generate-privkey=ecdsa", "--curve=secp256r1", "--label=gt-ec", "--id=e1",
                     p11.token_uri).stdout
    pems = {"rsa": PEM_PUBLIC.search(rsa_out), "ec": PEM_PUBLIC.search(ec_out)}
    assert pems["rsa"] and pems["ec"], (rsa_out, ec_out)
    return {k: m.group(0) for k, m in pems.items() if m}


def test_list_tokens_shows_the_token_and_its_uri(p11: P11Tool) -> None:
    out = p11.run("--list-tokens").stdout
    blocks = [b for b in out.split("Token ") if f"Label: {p11.label}\n" in b]
    assert len(blocks) == 1, out
    uri = re.search(r"URL: (pkcs11:\S+)", blocks[0])
    assert uri and f";token={p11.label}" in uri.group(1), blocks[0]
    assert "Requires login" in blocks[0]


def test_generate_privkey_rsa_and_ecdsa(generated: dict[str, str]) -> None:
    rsa_key = serialization.load_pem_public_key(generated["rsa"].encode())
    ec_key = serialization.load_pem_public_key(generated["ec"].encode())
    assert isinstance(rsa_key, rsa.RSAPublicKey) and rsa_key.key_size == 2048
    assert isinstance(ec_key, ec.EllipticCurvePublicKey) and ec_key.curve.name == "secp256r1"


def test_list_all_with_a_token_uri_shows_both_key_pairs(p11: P11Tool, generated: dict[str, str]) -> None:
    out = p11.run("--login", "--list-all", p11.token_uri).stdout
    types = re.findall(r"Type: (.*)", out)
    assert sorted(types) == sorted(["Public key (RSA-2048)", "Private key (RSA-2048)",
                                    "Public key (EC/ECDSA-SECP256R1)", "Private key (EC/ECDSA-SECP256R1)"]), out
    assert "CKA_SENSITIVE" in out and "CKA_NEVER_EXTRACTABLE" in out


def test_uri_attributes_select_objects(p11: P11Tool, generated: dict[str, str]) -> None:
    """RFC 7512 path attributes object=, id= and type= narrow the listing."""
    only_private = p11.run("--login", "--list-all", f"{p11.token_uri};type=private").stdout
    assert re.findall(r"Type: (\w+)", only_private) == ["Private", "Private"], only_private
    by_label = p11.run("--login", "--list-all", f"{p11.token_uri};object=gt-ec").stdout
    assert re.findall(r"Label: (.*)", by_label) == ["gt-ec", "gt-ec"], by_label
    by_id = p11.run("--login", "--list-all", f"{p11.token_uri};id=%a1;type=public").stdout
    assert re.findall(r"Type: (.*)", by_id) == ["Public key (RSA-2048)"], by_id
    urls = re.findall(r"URL: (pkcs11:\S+)", by_id)
    assert len(urls) == 1 and "id=%a1" in urls[0].lower() and "object=gt-rsa" in urls[0] and "type=public" in urls[0]
    none = p11.run("--login", "--list-all", f"{p11.token_uri};object=no-such-key", check=False)
    assert none.returncode != 0 and "No matching objects found" in none.stderr, none


@pytest.mark.parametrize("key_id,algorithm", [("a1", "RSA-SHA256"), ("e1", "ECDSA-SHA256")])
def test_test_sign_signs_and_verifies(p11: P11Tool, generated: dict[str, str], key_id: str, algorithm: str) -> None:
    proc = p11.run("--login", "--test-sign", f"{p11.token_uri};id=%{key_id};type=private", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"Signing using {algorithm}... ok" in out, out
    assert "Verifying against private key parameters... ok" in out, out
    assert "Verifying against public key in the token... ok" in out, out


@pytest.mark.parametrize("kind,label", [("rsa", "gt-rsa"), ("ec", "gt-ec")])
def test_export_pubkey_matches_the_generated_key(p11: P11Tool, generated: dict[str, str], kind: str,
                                                 label: str) -> None:
    out = p11.workdir / f"{label}.pem"
    p11.run("--login", "--export-pubkey", f"--outfile={out}", f"{p11.token_uri};object={label};type=private")
    assert out.read_text() == generated[kind]
    assert serialization.load_pem_public_key(out.read_bytes()) is not None


def test_a_wrong_pin_is_refused(p11: P11Tool, generated: dict[str, str]) -> None:
    """The control: p11tool does report failures (and the test-sign above really logged in)."""
    proc = run([which("p11tool"), "--provider", p11.module.path, "--login", "--test-sign",
                f"{p11.token_uri};id=%a1;type=private"], p11.module, check=False, env={"GNUTLS_PIN": "9999"})
    assert proc.returncode != 0
    assert "Signing using" not in proc.stdout + proc.stderr
