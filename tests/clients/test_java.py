"""Java through SunPKCS11 (OpenJDK from Debian), both modules.

A SunPKCS11 config (`name`, `library`, `slot`) loads the module; `keytool -list` lists the
token's key entries, and tests/clients/java/SignWithToken.java (compiled here) signs with
SHA256withRSA and SHA256withECDSA. The signatures are verified with `cryptography`
against the public key read from the token. SunPKCS11 shows a private key as a keystore
entry only with a certificate of the same CKA_ID: the test stores one, made in Python for
the token's public key.
"""
from __future__ import annotations

import datetime
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from conftest import USER_PIN, Module, which
from clientkit import new_label, run, slot_id_in_a_new_process

SOURCE = Path(__file__).parent / "java" / "SignWithToken.java"
MESSAGE = b"SunPKCS11 signs this\n"
ALIASES = {"rsa": "java-rsa", "ec": "java-ec"}


@dataclass
class Java:
    module: Module
    config: Path
    classes: Path
    workdir: Path
    public: dict[str, rsa.RSAPublicKey | ec.EllipticCurvePublicKey]

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([which(tool), *args], self.module, check=check, cwd=self.workdir, timeout=120)


def store_certificate(session, label: str, key_id: bytes, public_der: bytes) -> None:  # type: ignore[no-untyped-def]
    """A certificate for the token's public key, issued by a throwaway CA in Python."""
    ca = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)])
    cert = (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client matrix CA")]))
            .public_key(serialization.load_der_public_key(public_der))  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(ca, hashes.SHA256()))
    session.create_object({
        Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
        Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: key_id,
        Attribute.SUBJECT: subject.public_bytes(), Attribute.ISSUER: cert.issuer.public_bytes(),
        Attribute.SERIAL_NUMBER: cert.serial_number.to_bytes(20, "big").lstrip(b"\0"),
        Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
    })


@pytest.fixture(scope="module")
def java(module: Module, tmp_path_factory: pytest.TempPathFactory) -> Java:
    workdir = tmp_path_factory.mktemp("java")
    classes = workdir / "classes"
    run([which("javac"), "-d", str(classes), str(SOURCE)], module, timeout=120)
    label = new_label("java")
    token = module.init_token(label)
    public: dict[str, rsa.RSAPublicKey | ec.EllipticCurvePublicKey] = {}
    with token.open(user_pin=USER_PIN, rw=True) as s:
        rsa_pub, _ = s.generate_keypair(KeyType.RSA, 2048, store=True, label=ALIASES["rsa"], id=b"\x0a")
        params = s.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        ec_pub, _ = params.generate_keypair(store=True, label=ALIASES["ec"], id=b"\x0e")
        for kind, pub, der, key_id in (("rsa", rsa_pub, encode_rsa_public_key(rsa_pub), b"\x0a"),
                                       ("ec", ec_pub, encode_ec_public_key(ec_pub), b"\x0e")):
            key = serialization.load_der_public_key(der)
            assert isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey))
            public[kind] = key
            spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            store_certificate(s, ALIASES[kind], key_id, spki)
    slot = slot_id_in_a_new_process(module, label)
    config = workdir / "sunpkcs11.cfg"
    config.write_text(f"name = matrix-{module.name}\nlibrary = {module.path}\nslot = {slot}\n")
    (workdir / "message").write_bytes(MESSAGE)
    return Java(module, config, classes, workdir, public)


def test_keytool_lists_the_tokens_key_entries(java: Java) -> None:
    out = java.run("keytool", "-list", "-storetype", "PKCS11", "-providerClass", "sun.security.pkcs11.SunPKCS11",
                   "-providerArg", str(java.config), "-storepass", USER_PIN).stdout
    assert "Keystore type: PKCS11" in out, out
    assert f"Keystore provider: SunPKCS11-matrix-{java.module.name}" in out, out
    assert "Your keystore contains 2 entries" in out, out
    for alias in ALIASES.values():
        assert f"{alias}, PrivateKeyEntry, " in out, out


def test_keytool_refuses_a_wrong_pin(java: Java) -> None:
    """The control for the listing above: keytool did log in to the token."""
    proc = java.run("keytool", "-list", "-storetype", "PKCS11", "-providerClass", "sun.security.pkcs11.SunPKCS11",
                    "-providerArg", str(java.config), "-storepass", "9999", check=False)
    assert proc.returncode != 0
    assert "PrivateKeyEntry" not in proc.stdout


@pytest.mark.parametrize("kind,algorithm", [("rsa", "SHA256withRSA"), ("ec", "SHA256withECDSA")])
def test_a_java_program_signs_with_a_token_key(java: Java, kind: str, algorithm: str) -> None:
    sig = java.workdir / f"sig-{kind}"
    out = java.run("java", "-cp", str(java.classes), "SignWithToken", str(java.config), USER_PIN, ALIASES[kind],
                   algorithm, "message", str(sig)).stdout
    assert f"provider: SunPKCS11-matrix-{java.module.name}" in out, out
    assert f"signed with {'RSA' if kind == 'rsa' else 'EC'} key {ALIASES[kind]} using {algorithm}" in out, out
    key = java.public[kind]
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(sig.read_bytes(), MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        with pytest.raises(InvalidSignature):
            key.verify(sig.read_bytes(), MESSAGE + b"x", padding.PKCS1v15(), hashes.SHA256())
    else:
        key.verify(sig.read_bytes(), MESSAGE, ec.ECDSA(hashes.SHA256()))       # Java writes DER
        with pytest.raises(InvalidSignature):
            key.verify(sig.read_bytes(), MESSAGE + b"x", ec.ECDSA(hashes.SHA256()))
