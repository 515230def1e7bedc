"""`hspkcs11-util import` (keys and certificates from files) and `import-softhsm`
(migration of a SoftHSM2 token through PKCS#11).

Both are hspkcs11 tools, so these tests use the `hs` fixture; SoftHSM2 appears as the
source of a migration, with its own token directory and SOFTHSM2_CONF in tmp_path,
driven in child processes so this process's SoftHSM2 (the suite's) is not disturbed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, Mechanism, ObjectClass

from conftest import ROOT, SO_PIN, USER_PIN, Module, softhsm_path, util

PEM, DER = serialization.Encoding.PEM, serialization.Encoding.DER
PKCS8, TRAD = serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL


def run(module: Module, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **module.env, "HSPKCS11_PIN": USER_PIN, **(env or {})}
    return subprocess.run(util() + list(args), env=full, capture_output=True, text=True, timeout=300)


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    err = out.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def a_cert(key: rsa.RSAPrivateKey, serial: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "import test")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer CA")])
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))


def tlv(data: bytes, pos: int) -> tuple[int, int]:
    """(start of value, end) of the DER element at `pos`."""
    n = data[pos + 1]
    if n < 0x80:
        return pos + 2, pos + 2 + n
    k = n & 0x7F
    length = int.from_bytes(data[pos + 2:pos + 2 + k], "big")
    return pos + 2 + k, pos + 2 + k + length


def der_serial(cert: x509.Certificate) -> bytes:
    """The serialNumber INTEGER element, cut out of the TBSCertificate (RFC 5280 §4.1)."""
    tbs = cert.tbs_certificate_bytes
    pos, _ = tlv(tbs, 0)                 # inside TBSCertificate
    if tbs[pos] == 0xA0:                 # [0] version
        pos = tlv(tbs, pos)[1]
    return tbs[pos:tlv(tbs, pos)[1]]


KEYS = {
    "rsa": lambda: rsa.generate_private_key(65537, 2048),
    "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
}


def sign_and_verify(token: pkcs11.Token, label: str, key: object) -> None:
    data = b"imported keys sign"
    with token.open(user_pin=USER_PIN) as s:
        priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
        assert priv[Attribute.SENSITIVE] is True and priv[Attribute.EXTRACTABLE] is False
        pub = s.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
        assert pub[Attribute.ID] == priv[Attribute.ID] == b"\xa1\x01"
        if isinstance(key, rsa.RSAPrivateKey):
            sig = priv.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
            key.public_key().verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            sig = priv.sign(data, mechanism=Mechanism.ECDSA_SHA256)
            half = len(sig) // 2
            der = encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))
            key.public_key().verify(der, data, ec.ECDSA(hashes.SHA256()))
        else:
            sig = priv.sign(data, mechanism=Mechanism.EDDSA)
            key.public_key().verify(sig, data)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind,encoding,fmt", [
    ("rsa", PEM, TRAD), ("rsa", DER, PKCS8), ("ec", PEM, PKCS8), ("ec", DER, TRAD), ("ed25519", PEM, PKCS8)])
def test_import_private_key_signs_with_the_original_public_key(hs: Module, tmp_path: Path, kind: str,
                                                               encoding: serialization.Encoding,
                                                               fmt: serialization.PrivateFormat) -> None:
    key = KEYS[kind]()
    path = tmp_path / ("key.pem" if encoding == PEM else "key.der")
    path.write_bytes(key.private_bytes(encoding, fmt, serialization.NoEncryption()))
    token = hs.init_token()
    out = run(hs, "import", str(path), "--token", token.label, "--label", "k", "--id", "a101")
    assert out.returncode == 0, out.stderr
    sign_and_verify(token, "k", key)


def test_import_encrypted_pem_needs_the_right_password(hs: Module, tmp_path: Path) -> None:
    key = KEYS["ec"]()
    path = tmp_path / "enc.pem"
    path.write_bytes(key.private_bytes(PEM, PKCS8, serialization.BestAvailableEncryption(b"s3cret")))
    token = hs.init_token()
    base = ["import", str(path), "--token", token.label, "--label", "k", "--id", "a101"]
    assert "--file-pin" in one_line_error(run(hs, *base, env={"HSPKCS11_FILE_PIN": ""}))
    assert "wrong --file-pin" in one_line_error(run(hs, *base, "--file-pin", "nope"))
    ok = run(hs, *base, env={"HSPKCS11_FILE_PIN": "s3cret"})
    assert ok.returncode == 0, ok.stderr
    sign_and_verify(token, "k", key)


def test_import_bad_input_is_a_one_line_error(hs: Module, tmp_path: Path) -> None:
    token = hs.init_token()
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a key at all\n")
    assert "neither" in one_line_error(run(hs, "import", str(junk), "--token", token.label, "--label", "x"))
    missing = one_line_error(run(hs, "import", str(tmp_path / "nothing"), "--token", token.label, "--label", "x"))
    assert "cannot read" in missing
    good = tmp_path / "k.pem"
    good.write_bytes(KEYS["ec"]().private_bytes(PEM, PKCS8, serialization.NoEncryption()))
    assert "init-token" in one_line_error(run(hs, "import", str(good), "--token", "no-such", "--label", "x"))
    assert "PIN" in one_line_error(run(hs, "import", str(good), "--token", token.label, "--label", "x",
                                       env={"HSPKCS11_PIN": "0000"}))
    with token.open(user_pin=USER_PIN) as s:
        assert list(s.get_objects({Attribute.LABEL: "x"})) == []


@pytest.mark.parametrize("encoding", [PEM, DER])
def test_import_certificate(hs: Module, tmp_path: Path, encoding: serialization.Encoding) -> None:
    cert = a_cert(rsa.generate_private_key(65537, 2048), serial=0x80 << 64 | 12345)
    path = tmp_path / "cert"
    path.write_bytes(cert.public_bytes(encoding))
    token = hs.init_token()
    out = run(hs, "import", str(path), "--token", token.label, "--label", "c", "--id", "0102")
    assert out.returncode == 0, out.stderr
    with token.open(user_pin=USER_PIN) as s:
        (obj,) = s.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: "c"})
        assert obj[Attribute.CERTIFICATE_TYPE] == pkcs11.CertificateType.X_509
        assert obj[Attribute.VALUE] == cert.public_bytes(DER)
        assert obj[Attribute.SUBJECT] == cert.subject.public_bytes()
        assert obj[Attribute.ISSUER] == cert.issuer.public_bytes()
        assert obj[Attribute.SERIAL_NUMBER] == der_serial(cert)
        assert obj[Attribute.ID] == b"\x01\x02" and obj[Attribute.TOKEN] is True


def test_import_raw_aes_key(hs: Module, tmp_path: Path) -> None:
    value = os.urandom(32)
    path = tmp_path / "aes.bin"
    path.write_bytes(value)
    token = hs.init_token()
    out = run(hs, "import", str(path), "--aes", "--token", token.label, "--label", "a")
    assert out.returncode == 0, out.stderr
    iv = bytes(16)
    with token.open(user_pin=USER_PIN) as s:
        key = s.get_key(object_class=ObjectClass.SECRET_KEY, label="a")
        ct = key.encrypt(b"sixteen byte msg", mechanism=Mechanism.AES_CBC, mechanism_param=iv)
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    dec = Cipher(algorithms.AES(value), modes.CBC(iv)).decryptor()
    assert dec.update(ct) + dec.finalize() == b"sixteen byte msg"
    path.write_bytes(value[:7])
    assert "16, 24 or 32" in one_line_error(run(hs, "import", str(path), "--aes", "--token", token.label,
                                                "--label", "b"))


# ---- migration from SoftHSM2 ---------------------------------------------------------------

POPULATE = r'''
import json, sys
import pkcs11
from pkcs11 import Attribute as A, ObjectClass as O, KeyType, Mechanism, CertificateType
from pkcs11.util.ec import encode_named_curve_parameters
from cryptography.hazmat.primitives import serialization
path, label, pin, cert_file, pub_file = sys.argv[1:]
cert = json.load(open(cert_file))
pub = serialization.load_pem_public_key(open(pub_file, "rb").read()).public_numbers()
token = pkcs11.lib(path).get_token(token_label=label)
with token.open(rw=True, user_pin=pin) as s:
    s.create_object({A.CLASS: O.DATA, A.TOKEN: True, A.PRIVATE: False, A.LABEL: "data",
                     A.APPLICATION: "migration test", A.VALUE: b"data object value"})
    s.create_object({A.CLASS: O.CERTIFICATE, A.CERTIFICATE_TYPE: CertificateType.X_509, A.TOKEN: True,
                     A.LABEL: "cert", A.ID: b"\x01", A.SUBJECT: bytes.fromhex(cert["subject"]),
                     A.ISSUER: bytes.fromhex(cert["issuer"]), A.SERIAL_NUMBER: bytes.fromhex(cert["serial"]),
                     A.VALUE: bytes.fromhex(cert["value"])})
    s.create_object({A.CLASS: O.PUBLIC_KEY, A.KEY_TYPE: KeyType.RSA, A.TOKEN: True, A.LABEL: "pub",
                     A.ID: b"\x02", A.MODULUS: pub.n.to_bytes(256, "big"),
                     A.PUBLIC_EXPONENT: pub.e.to_bytes(3, "big"), A.VERIFY: True})
    aes = s.generate_key(KeyType.AES, 256, label="aes", id=b"\x03", store=True,
                         template={A.SENSITIVE: False, A.EXTRACTABLE: True})
    s.generate_keypair(KeyType.RSA, 2048, label="rsa", id=b"\x04", store=True,
                       private_template={A.SENSITIVE: False, A.EXTRACTABLE: True})
    params = s.create_domain_parameters(KeyType.EC, {A.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                                        local=True)
    params.generate_keypair(label="locked", id=b"\x05", store=True,
                            private_template={A.SENSITIVE: True, A.EXTRACTABLE: False})
    iv = bytes(range(16))
    ct = aes.encrypt(b"encrypted by SoftHSM2 before the migration", mechanism=Mechanism.AES_CBC_PAD,
                     mechanism_param=iv)
print(json.dumps({"iv": iv.hex(), "ct": ct.hex()}))
'''

# The "integration suite": it knows the objects by label only, and runs unchanged on
# either module; only the module path differs.
USE = r'''
import hashlib, json, sys
import pkcs11
from pkcs11 import Attribute as A, ObjectClass as O, Mechanism
path, label, pin, iv, ct = sys.argv[1:]
token = pkcs11.lib(path).get_token(token_label=label)
out = {}
with token.open(user_pin=pin) as s:
    (data,) = s.get_objects({A.CLASS: O.DATA, A.LABEL: "data"})
    out["data"] = [data[A.VALUE].hex(), data[A.APPLICATION]]
    (cert,) = s.get_objects({A.CLASS: O.CERTIFICATE, A.LABEL: "cert"})
    out["cert"] = [cert[a].hex() for a in (A.VALUE, A.SUBJECT, A.ISSUER, A.SERIAL_NUMBER, A.ID)]
    pub = s.get_key(object_class=O.PUBLIC_KEY, label="pub")
    out["pub"] = [pub[A.MODULUS].hex(), pub[A.PUBLIC_EXPONENT].hex(), pub[A.ID].hex(), pub[A.VERIFY]]
    aes = s.get_key(object_class=O.SECRET_KEY, label="aes")
    out["aes"] = [hashlib.sha256(aes[A.VALUE]).hexdigest(), aes[A.ID].hex(), aes[A.VALUE_LEN],
                  aes.decrypt(bytes.fromhex(ct), mechanism=Mechanism.AES_CBC_PAD,
                              mechanism_param=bytes.fromhex(iv)).decode()]
    priv = s.get_key(object_class=O.PRIVATE_KEY, label="rsa")
    rsa_pub = s.get_key(object_class=O.PUBLIC_KEY, label="rsa")
    sig = priv.sign(b"same everywhere", mechanism=Mechanism.SHA256_RSA_PKCS)
    out["rsa"] = [hashlib.sha256(priv[A.PRIVATE_EXPONENT]).hexdigest(), priv[A.MODULUS].hex(),
                  priv[A.ID].hex(), sig.hex(),
                  rsa_pub.verify(b"same everywhere", sig, mechanism=Mechanism.SHA256_RSA_PKCS)]
    locked = s.get_key(object_class=O.PUBLIC_KEY, label="locked")
    out["locked-public"] = [locked[A.EC_POINT].hex(), locked[A.EC_PARAMS].hex()]
print(json.dumps(out, sort_keys=True, indent=1))
'''


def softhsm_token(base: Path, label: str) -> dict[str, str]:
    """A SoftHSM2 configuration of its own in `base` and a token made by softhsm2-util."""
    (base / "tokens").mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text((ROOT / "softhsm-config" / "softhsm2.conf").read_text()
                    .replace("@TOKENDIR@", str(base / "tokens")))
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN,
                    "--pin", USER_PIN], env=env, check=True, capture_output=True)
    return env


def script(tmp_path: Path, name: str, text: str, *args: str, env: dict[str, str]) -> str:
    path = tmp_path / name
    path.write_text(text)
    out = subprocess.run([sys.executable, str(path), *args], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_migrate_softhsm_token(hs: Module, tmp_path: Path) -> None:
    label = f"mig-{uuid.uuid4().hex[:8]}"
    env = {**softhsm_token(tmp_path / "softhsm", label), **hs.env}
    cert_key = rsa.generate_private_key(65537, 2048)
    cert = a_cert(cert_key, serial=4242)
    (tmp_path / "cert.json").write_text(json.dumps({
        "subject": cert.subject.public_bytes().hex(), "issuer": cert.issuer.public_bytes().hex(),
        "serial": der_serial(cert).hex(), "value": cert.public_bytes(DER).hex()}))
    (tmp_path / "pub.pem").write_bytes(cert_key.public_key().public_bytes(
        PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    made = json.loads(script(tmp_path, "populate.py", POPULATE, softhsm_path(), label, USER_PIN,
                             str(tmp_path / "cert.json"), str(tmp_path / "pub.pem"), env=env))

    # our token must exist first: the tool says how to make it
    missing = run(hs, "import-softhsm", "--module", softhsm_path(), "--token", label,
                  env={**env, "SOFTHSM2_PIN": USER_PIN})
    assert "init-token --free --label " + label in one_line_error(missing)
    hs.init_token(label)
    out = run(hs, "import-softhsm", "--module", softhsm_path(), "--token", label,
              env={**env, "SOFTHSM2_PIN": USER_PIN})
    assert out.returncode == 0, out.stdout + out.stderr
    not_copied = [ln for ln in out.stdout.splitlines() if ln.startswith("not copied:")]
    assert len(not_copied) == 1, out.stdout
    assert "private key 'locked' id 05" in not_copied[0] and "sensitive" in not_copied[0]
    assert "copied 7 of 8 objects" in out.stdout

    # the attributes arrived, and the AES key decrypts what SoftHSM2 encrypted
    ours = script(tmp_path, "use.py", USE, hs.path, label, USER_PIN, made["iv"], made["ct"], env=env)
    theirs = script(tmp_path, "use.py", USE, softhsm_path(), label, USER_PIN, made["iv"], made["ct"], env=env)
    assert ours == theirs
    result = json.loads(ours)
    assert result["aes"][3] == "encrypted by SoftHSM2 before the migration"
    assert result["cert"][0] == cert.public_bytes(DER).hex() and result["rsa"][4] is True
    assert result["data"] == [b"data object value".hex(), "migration test"]

    # copied keys keep CKA_ID/CKA_LABEL/usage and their secrecy settings; history is ours
    token = hs.lib.get_token(token_label=label)
    with token.open(user_pin=USER_PIN) as s:
        aes = s.get_key(object_class=ObjectClass.SECRET_KEY, label="aes")
        assert aes[Attribute.EXTRACTABLE] is True and aes[Attribute.SENSITIVE] is False
        assert aes[Attribute.LOCAL] is False and aes[Attribute.TOKEN] is True
        assert list(s.get_objects({Attribute.LABEL: "locked", Attribute.CLASS: ObjectClass.PRIVATE_KEY})) == []


def test_migrate_wrong_source_is_a_one_line_error(hs: Module, tmp_path: Path) -> None:
    label = f"mig-{uuid.uuid4().hex[:8]}"
    env = {**softhsm_token(tmp_path / "softhsm", label), **hs.env}
    hs.init_token(label)
    base = ["import-softhsm", "--module", softhsm_path(), "--token"]
    assert "no token labelled 'nope'" in one_line_error(run(hs, *base, "nope", "--to-token", label,
                                                            env={**env, "SOFTHSM2_PIN": USER_PIN}))
    assert "wrong user PIN" in one_line_error(run(hs, *base, label, env={**env, "SOFTHSM2_PIN": "0000"}))
    assert "cannot load" in one_line_error(run(hs, "import-softhsm", "--module", str(tmp_path / "x.so"),
                                               "--token", label, env={**env, "SOFTHSM2_PIN": USER_PIN}))


def test_help_documents_exit_codes() -> None:
    for command in ("import", "import-softhsm"):
        out = subprocess.run(util() + [command, "--help"], capture_output=True, text=True)
        assert out.returncode == 0
        assert "Exit codes:" in out.stdout and "Example:" in out.stdout
