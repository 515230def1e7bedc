"""EdDSA: RFC 8032 test vectors through the attribute codecs, generation on both curves with
either spelling of CKA_EC_PARAMS, round trips with `cryptography`, and the error codes."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

from hspkcs11.consts import CKA, CKK, CKM, CKO, CKR, MechFlag
from hspkcs11.mechanisms import KEY_TYPES, MECHANISMS
from hspkcs11.mechanisms.params import EddsaParams

from fakekeys_asym import FakeKey, flip, generate, raises_rv, sign, verify

ED25519_OID = bytes.fromhex("06032b6570")
ED448_OID = bytes.fromhex("06032b6571")
ED25519_NAME = b"\x13\x0cedwards25519"
ED448_NAME = b"\x13\x0aedwards448"

# RFC 8032 §7.1 TEST 1-3 (Ed25519) and §7.4 "blank" and "1 octet" (Ed448):
# (curve params, secret key, public key, message, signature)
VECTORS = [
    (ED25519_OID,
     "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
     "1cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    (ED25519_OID,
     "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"
     "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    (ED25519_NAME,
     "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760"
     "984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    (ED448_OID,
     "6c82a562cb808d10d632be89c8513ebf6c929f34ddfa8c9f63c9960ef6e348a3528c8a3fcc2f044e39a3fc5b"
     "94492f8f032e7549a20098f95b",
     "5fd7449b59b461fd2ce787ec616ad46a1da1342485a70e1f8a0ea75d80e96778edf124769b46c7061bd6783d"
     "f1e50f6cd1fa1abeafe8256180", "",
     "533a37f6bbe457251f023c0d88f976ae2dfb504a843e34d2074fd823d41a591f2b233f034f628281f2fd7a22"
     "ddd47d7828c59bd0a21bfd3980ff0d2028d4b18a9df63e006c5d1c2d345b925d8dc00b4104852db99ac5c7cd"
     "da8530a113a0f4dbb61149f05a7363268c71d95808ff2e652600"),
    (ED448_NAME,
     "c4eab05d357007c632f3dbb48489924d552b08fe0c353a0d4a1f00acda2c463afbea67c5e8d2877c5e3bc397"
     "a659949ef8021e954e0a12274e",
     "43ba28f430cdff456ae531545f7ecd0ac834a55d9358c0372bfa0c6c6798c0866aea01eb00742802b8438ea4"
     "cb82169c235160627b4c3a9480", "03",
     "26b8f91727bd62897af15e41eb43c377efb9c610d48f2335cb0bd0087810f4352541b143c4b981b7e18f62de"
     "8ccdf633fc1bf037ab7cd779805e0dbcc0aae1cbcee1afb2e027df36bc04dcecbf154336c19f0af7e0a64729"
     "05e799f1953d2a0ff3348ab21aa4adafd1d234441cf807c03a00"),
]


@pytest.mark.parametrize("params, secret, public, message, signature", VECTORS)
def test_rfc8032_vectors(params, secret, public, message, signature):
    secret, public, message, signature = (bytes.fromhex(v) for v in (secret, public, message,
                                                                     signature))
    priv = FakeKey(CKO.PRIVATE_KEY, CKK.EC_EDWARDS, {CKA.EC_PARAMS: params, CKA.VALUE: secret})
    pub_attrs, priv_attrs = KEY_TYPES[CKK.EC_EDWARDS].from_private(priv.crypto())
    assert pub_attrs[CKA.EC_POINT] == bytes((0x04, len(public))) + public
    assert priv_attrs[CKA.VALUE] == secret
    assert sign(CKM.EDDSA, priv, message) == signature
    pub = FakeKey(CKO.PUBLIC_KEY, CKK.EC_EDWARDS, {CKA.EC_PARAMS: params, CKA.EC_POINT: public})
    verify(CKM.EDDSA, pub, message, signature)
    verify(CKM.EDDSA, pub, message, signature, EddsaParams(False, b""))
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.EDDSA, pub, message + b"!", signature)
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.EDDSA, pub, message, flip(signature, 3))
    with raises_rv(CKR.SIGNATURE_LEN_RANGE):
        verify(CKM.EDDSA, pub, message, signature[:-1])


@pytest.mark.parametrize("params, cls, key_len, bits", [
    (ED25519_OID, ed25519.Ed25519PublicKey, 32, 256),
    (ED25519_NAME, ed25519.Ed25519PublicKey, 32, 256),
    (ED448_OID, ed448.Ed448PublicKey, 57, 456),
    (ED448_NAME, ed448.Ed448PublicKey, 57, 456),
])
def test_generate(params, cls, key_len, bits):
    pub, priv = generate(CKM.EC_EDWARDS_KEY_PAIR_GEN, {CKA.EC_PARAMS: params})
    assert pub.attrs[CKA.EC_PARAMS] == priv.attrs[CKA.EC_PARAMS] == params
    assert pub.attrs[CKA.EC_POINT][:2] == bytes((0x04, key_len))
    assert len(priv.attrs[CKA.VALUE]) == key_len
    assert KEY_TYPES[CKK.EC_EDWARDS].size(pub) == KEY_TYPES[CKK.EC_EDWARDS].size(priv) == bits
    raw = pub.attrs[CKA.EC_POINT][2:]
    data = b"a message of some length" * 10
    sig = sign(CKM.EDDSA, priv, data)
    assert len(sig) == 2 * key_len
    cls.from_public_bytes(raw).verify(sig, data)            # plain cryptography verifies ours
    verify(CKM.EDDSA, pub, data, priv.crypto().sign(data))  # and we verify theirs


@pytest.mark.parametrize("template, rv", [
    ({}, CKR.TEMPLATE_INCOMPLETE),
    ({CKA.EC_PARAMS: bytes.fromhex("06082a8648ce3d030107")}, CKR.CURVE_NOT_SUPPORTED),  # P-256
    ({CKA.EC_PARAMS: b"\x13\x0aedwards999"}, CKR.CURVE_NOT_SUPPORTED),
])
def test_generate_errors(template, rv):
    with raises_rv(rv):
        generate(CKM.EC_EDWARDS_KEY_PAIR_GEN, template)


@pytest.mark.parametrize("param", [EddsaParams(True, b""), EddsaParams(False, b"context"),
                                   b"raw bytes"])
def test_unsupported_variants(param):
    _, priv = generate(CKM.EC_EDWARDS_KEY_PAIR_GEN, {CKA.EC_PARAMS: ED25519_OID})
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        sign(CKM.EDDSA, priv, b"x", param)


def test_key_codecs():
    pub, priv = generate(CKM.EC_EDWARDS_KEY_PAIR_GEN, {CKA.EC_PARAMS: ED448_OID})
    wrapped = FakeKey(CKO.PRIVATE_KEY, CKK.EC_EDWARDS, {
        CKA.EC_PARAMS: ED448_OID, CKA.VALUE: b"\x04\x39" + priv.attrs[CKA.VALUE]})
    assert sign(CKM.EDDSA, wrapped, b"m") == sign(CKM.EDDSA, priv, b"m")
    der = KEY_TYPES[CKK.EC_EDWARDS].to_pkcs8(priv.crypto())
    loaded = serialization.load_der_private_key(der, None)
    assert KEY_TYPES[CKK.EC_EDWARDS].from_private(loaded)[1] == priv.attrs
    for bad in ({CKA.EC_PARAMS: ED448_OID, CKA.EC_POINT: bytes(32)},
                {CKA.EC_PARAMS: ED448_OID, CKA.EC_POINT: b"\x04\x39" + bytes(56)}):
        with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
            FakeKey(CKO.PUBLIC_KEY, CKK.EC_EDWARDS, bad).crypto()


def test_mechanism_info_and_single_part():
    m = MECHANISMS[CKM.EDDSA]
    assert (m.min_key, m.max_key) == (256, 456)
    assert m.flags == MechFlag.SIGN | MechFlag.VERIFY and m.param_optional
    assert MECHANISMS[CKM.EC_EDWARDS_KEY_PAIR_GEN].flags == MechFlag.GENERATE_KEY_PAIR
    pub, priv = generate(CKM.EC_EDWARDS_KEY_PAIR_GEN, {CKA.EC_PARAMS: ED25519_OID})
    assert m.sign(priv, None).multipart is False
    with raises_rv(CKR.KEY_TYPE_INCONSISTENT):
        sign(CKM.EDDSA, pub, b"x")
