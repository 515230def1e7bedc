"""The real `pkcs11-tool` (OpenSC, from Debian) against both modules, on a fresh token.

pkcs11-tool is a C host that dlopen()s the module: for hspkcs11 every run starts the
embedded interpreter in a foreign process. Signatures it makes are verified here
independently, with `cryptography`, against the public key it reads back.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from conftest import USER_PIN, Module, which

MESSAGE = b"pkcs11-tool signs this message\n"


@dataclass
class Tool:
    module: Module
    label: str
    workdir: Path

    def run(self, *args: str, login: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [which("pkcs11-tool"), "--module", self.module.path, "--token-label", self.label]
        if login:
            cmd += ["--login", "--pin", USER_PIN]
        proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=300, cwd=self.workdir,
                              env={**os.environ, **self.module.env})
        if check:
            assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def public_key(self, key_id: str) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        out = self.workdir / f"pub-{key_id}.der"
        self.run("--read-object", "--type", "pubkey", "--id", key_id, "--output-file", str(out))
        key = serialization.load_der_public_key(out.read_bytes())
        assert isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey))
        return key

    def sign(self, key_id: str, mechanism: str, data: bytes, *extra: str) -> bytes:
        src, sig = self.workdir / f"in-{uuid.uuid4().hex[:8]}", self.workdir / f"sig-{uuid.uuid4().hex[:8]}"
        src.write_bytes(data)
        self.run("--sign", "--mechanism", mechanism, "--id", key_id, "--input-file", str(src),
                 "--output-file", str(sig), *extra)
        return sig.read_bytes()


@pytest.fixture(scope="module")
def tool(module: Module, tmp_path_factory: pytest.TempPathFactory) -> Tool:
    label = f"tool-{uuid.uuid4().hex[:10]}"
    module.init_token(label)
    return Tool(module, label, tmp_path_factory.mktemp("pkcs11-tool"))


@pytest.fixture(scope="module")
def keypairs(tool: Tool) -> dict[str, str]:
    """An RSA 2048 and a P-256 key pair made by pkcs11-tool; its output per key type."""
    rsa_out = tool.run("--keypairgen", "--key-type", "rsa:2048", "--label", "tool-rsa", "--id", "a1").stdout
    ec_out = tool.run("--keypairgen", "--key-type", "EC:prime256v1", "--label", "tool-ec", "--id", "e1").stdout
    return {"rsa": rsa_out, "ec": ec_out}


def test_list_slots_shows_the_token(tool: Tool) -> None:
    out = tool.run("--list-slots", login=False).stdout
    assert f"token label        : {tool.label}" in out
    assert "token initialized" in out and "PIN initialized" in out


def test_list_mechanisms_names_rsa_ec_and_digests(tool: Tool) -> None:
    out = tool.run("--list-mechanisms", login=False).stdout
    # pkcs11-tool names CKM_EC_KEY_PAIR_GEN by its older alias ECDSA-KEY-PAIR-GEN.
    for name in ("RSA-PKCS-KEY-PAIR-GEN", "RSA-PKCS", "SHA256-RSA-PKCS", "ECDSA-KEY-PAIR-GEN", "ECDSA",
                 "SHA256", "AES-KEY-GEN"):
        assert any(line.split(",")[0].strip() == name for line in out.splitlines()), name


def test_a_fresh_token_lists_no_objects(module: Module, tmp_path: Path) -> None:
    fresh = Tool(module, f"empty-{uuid.uuid4().hex[:10]}", tmp_path)
    module.init_token(fresh.label)
    assert fresh.run("--list-objects").stdout.strip() == ""


def test_keypairgen_rsa_2048(tool: Tool, keypairs: dict[str, str]) -> None:
    assert "Public Key Object; RSA 2048 bits" in keypairs["rsa"]
    assert "label:      tool-rsa" in keypairs["rsa"]
    key = tool.public_key("a1")
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048


def test_keypairgen_ec_prime256v1(tool: Tool, keypairs: dict[str, str]) -> None:
    assert "EC_PARAMS:  06082a8648ce3d030107" in keypairs["ec"]     # DER OID of prime256v1
    key = tool.public_key("e1")
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"


def test_list_objects_shows_both_key_pairs(tool: Tool, keypairs: dict[str, str]) -> None:
    out = tool.run("--list-objects").stdout
    for kind in ("Private Key Object; RSA", "Public Key Object; RSA 2048 bits", "Private Key Object; EC",
                 "Public Key Object; EC"):
        assert kind in out, kind
    assert out.count("label:      tool-rsa") == 2 and out.count("label:      tool-ec") == 2
    assert "sensitive, always sensitive, never extractable, local" in out


def test_sha256_rsa_pkcs_signature_verifies(tool: Tool, keypairs: dict[str, str]) -> None:
    sig = tool.sign("a1", "SHA256-RSA-PKCS", MESSAGE)
    key = tool.public_key("a1")
    assert isinstance(key, rsa.RSAPublicKey)
    assert len(sig) == 256
    key.verify(sig, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


def test_ecdsa_sha256_signature_verifies(tool: Tool, keypairs: dict[str, str],
                                        differs: Callable[[str, str], None]) -> None:
    differs("softhsm", "SoftHSM2 2.6.1 as Debian builds it has no CKM_ECDSA_SHA256 (C_SignInit: "
                       "CKR_MECHANISM_INVALID); Current Mechanisms defines ECDSA with SHA-256 and "
                       "hspkcs11 offers it")
    sig = tool.sign("e1", "ECDSA-SHA256", MESSAGE, "--signature-format", "openssl")   # DER
    key = tool.public_key("e1")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(sig, MESSAGE, ec.ECDSA(hashes.SHA256()))


def test_ecdsa_on_a_hash_verifies(tool: Tool, keypairs: dict[str, str]) -> None:
    digest = hashlib.sha256(MESSAGE).digest()
    sig = tool.sign("e1", "ECDSA", digest)      # raw r || s (PKCS#11 format)
    assert len(sig) == 64
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    key = tool.public_key("e1")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_a_wrong_signature_is_caught_by_the_verifier(tool: Tool, keypairs: dict[str, str]) -> None:
    """The control for the verifications above: they can fail."""
    sig = tool.sign("a1", "SHA256-RSA-PKCS", MESSAGE)
    key = tool.public_key("a1")
    assert isinstance(key, rsa.RSAPublicKey)
    with pytest.raises(InvalidSignature):
        key.verify(sig, MESSAGE + b"x", padding.PKCS1v15(), hashes.SHA256())


def test_pkcs11_tool_self_test_passes(tool: Tool, keypairs: dict[str, str],
                                      differs: Callable[[str, str], None]) -> None:
    differs("softhsm", "pkcs11-tool --test decrypts with RSA-PKCS-OAEP and a label (pSourceData); SoftHSM2 "
                       "refuses the label with CKR_ARGUMENTS_BAD, hspkcs11 supports it (Current Mechanisms, "
                       "CK_RSA_PKCS_OAEP_PARAMS pSourceData)")
    proc = tool.run("--test", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert proc.stdout.rstrip().splitlines()[-1] == "No errors", out
    assert "testing key" in out and "(tool-rsa)" in out, out     # it did test our RSA key
    # pkcs11-tool marks a failed check "ERR" and a failed call "error: ... failed".
    bad = [ln for ln in out.splitlines() if any(w in ln for w in ("ERR", "error:", "failed", "Aborting"))]
    assert not bad, out


def test_pkcs11_tool_fork_test_passes(tool: Tool, differs: Callable[[str, str], None]) -> None:
    """`--test-fork` initializes the module, forks, and the child calls C_Initialize again and
    uses the token. hspkcs11 needs no configuration for it (its state is keyed on the process
    id); SoftHSM2 needs `library.reset_on_fork = true` in its config, which the suite's
    reference config leaves at its default."""
    differs("softhsm", "Base §5.4 (C_Initialize): a child process must call C_Initialize before using the "
                       "module; SoftHSM2 answers CKR_CRYPTOKI_ALREADY_INITIALIZED in the child unless "
                       "library.reset_on_fork is set, hspkcs11 starts the child clean")
    proc = tool.run("--test-fork", login=False, check=False)
    out = proc.stdout + proc.stderr
    assert "Calling C_Initialize in forked child process" in out, out
    assert proc.returncode == 0, out
    bad = [ln for ln in out.splitlines() if any(w in ln for w in ("ERR", "error:", "failed", "Aborting"))]
    assert not bad, out
