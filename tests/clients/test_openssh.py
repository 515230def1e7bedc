"""OpenSSH: `ssh-keygen -D MODULE` lists the public keys of the module's tokens as
authorized_keys lines, on both modules. The expected lines are built independently, by
`cryptography`, from the public key values python-pkcs11 reads from the token."""
from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from conftest import USER_PIN, Module, which
from clientkit import new_label, run


def test_ssh_keygen_lists_the_tokens_rsa_and_ec_public_keys(module: Module) -> None:
    token = module.init_token(new_label("ssh"))
    rsa_label, ec_label = new_label("ssh-rsa"), new_label("ssh-ec")
    with token.open(user_pin=USER_PIN, rw=True) as s:
        s.generate_keypair(KeyType.RSA, 2048, store=True, label=rsa_label, id=b"\x01")
        params = s.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp384r1")}, local=True)
        params.generate_keypair(store=True, label=ec_label, id=b"\x02")
        rsa_pub = s.get_key(object_class=ObjectClass.PUBLIC_KEY, label=rsa_label)
        ec_pub = s.get_key(object_class=ObjectClass.PUBLIC_KEY, label=ec_label)
        expected = {
            rsa_label: serialization.load_der_public_key(encode_rsa_public_key(rsa_pub)),   # PKCS#1 DER
            ec_label: serialization.load_der_public_key(encode_ec_public_key(ec_pub)),
        }
    out = run([which("ssh-keygen"), "-D", module.path], module).stdout
    listed = {line.split()[2]: " ".join(line.split()[:2]) for line in out.splitlines() if len(line.split()) == 3}
    for label, key in expected.items():
        want = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
        assert listed.get(label) == want, f"{label}: {want}\n{out}"
    assert listed[rsa_label].startswith("ssh-rsa ")
    assert listed[ec_label].startswith("ecdsa-sha2-nistp384 ")
