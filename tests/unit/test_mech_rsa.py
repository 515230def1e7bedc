"""RSA mechanisms: round trips against plain `cryptography` both ways, deterministic PKCS#1
v1.5 signatures compared byte for byte, raw X.509 arithmetic, OAEP labels, PSS salts, key
generation and the attribute codecs, and the PKCS#11 error codes for bad input."""
from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from hspkcs11.consts import CKA, CKG, CKK, CKM, CKO, CKR, CKZ_DATA_SPECIFIED, MechFlag
from hspkcs11.mechanisms import KEY_TYPES, MECHANISMS
from hspkcs11.mechanisms.params import OaepParams, PssParams
from hspkcs11.mechanisms.registry import AttrFlag

from fakekeys_asym import (FakeKey, decrypt, encrypt, flip, generate, pair_from_crypto,
                           raises_rv, sign, verify)

SHA256_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
HASHED = {CKM.MD5_RSA_PKCS: hashes.MD5, CKM.SHA1_RSA_PKCS: hashes.SHA1,
          CKM.SHA224_RSA_PKCS: hashes.SHA224, CKM.SHA256_RSA_PKCS: hashes.SHA256,
          CKM.SHA384_RSA_PKCS: hashes.SHA384, CKM.SHA512_RSA_PKCS: hashes.SHA512}
PSS_HASHED = {CKM.SHA1_RSA_PKCS_PSS: (CKM.SHA_1, CKG.MGF1_SHA1, hashes.SHA1),
              CKM.SHA224_RSA_PKCS_PSS: (CKM.SHA224, CKG.MGF1_SHA224, hashes.SHA224),
              CKM.SHA256_RSA_PKCS_PSS: (CKM.SHA256, CKG.MGF1_SHA256, hashes.SHA256),
              CKM.SHA384_RSA_PKCS_PSS: (CKM.SHA384, CKG.MGF1_SHA384, hashes.SHA384),
              CKM.SHA512_RSA_PKCS_PSS: (CKM.SHA512, CKG.MGF1_SHA512, hashes.SHA512)}


@pytest.fixture(scope="module")
def ref() -> rsa.RSAPrivateKey:
    """A key made by plain `cryptography`, loaded into FakeKeys through from_private."""
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="module")
def keys(ref):
    return pair_from_crypto(ref, CKK.RSA)


@pytest.fixture(scope="module")
def gen_keys():
    """A pair made by CKM_RSA_PKCS_KEY_PAIR_GEN."""
    return generate(CKM.RSA_PKCS_KEY_PAIR_GEN, {CKA.MODULUS_BITS: 2048})


def raw_public(ref: rsa.RSAPrivateKey, data: bytes) -> bytes:
    n = ref.public_key().public_numbers()
    return pow(int.from_bytes(data, "big"), n.e, n.n).to_bytes(256, "big")


# --- key type and generation -----------------------------------------------------------------

def test_generated_pair_attributes(gen_keys):
    pub, priv = gen_keys
    assert pub.attrs[CKA.MODULUS_BITS] == 2048
    assert pub.attrs[CKA.PUBLIC_EXPONENT] == b"\x01\x00\x01"
    assert pub.attrs[CKA.MODULUS] == priv.attrs[CKA.MODULUS]
    assert len(pub.attrs[CKA.MODULUS]) == 256
    n = int.from_bytes(priv.attrs[CKA.MODULUS], "big")
    p, q = (int.from_bytes(priv.attrs[c], "big") for c in (CKA.PRIME_1, CKA.PRIME_2))
    assert p * q == n
    assert priv.crypto().private_numbers().public_numbers == pub.crypto().public_numbers()
    assert KEY_TYPES[CKK.RSA].size(pub) == KEY_TYPES[CKK.RSA].size(priv) == 2048


def test_generate_exponent_3():
    pub, _ = generate(CKM.RSA_PKCS_KEY_PAIR_GEN, {CKA.MODULUS_BITS: 1024,
                                                  CKA.PUBLIC_EXPONENT: b"\x03"})
    assert pub.crypto().public_numbers().e == 3


def test_generate_4096():
    pub, priv = generate(CKM.RSA_PKCS_KEY_PAIR_GEN, {CKA.MODULUS_BITS: 4096,
                                                     CKA.PUBLIC_EXPONENT: b"\x01\x00\x01"})
    assert pub.crypto().key_size == 4096
    sig = sign(CKM.SHA256_RSA_PKCS, priv, b"big")
    pub.crypto().verify(sig, b"big", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("template, rv", [
    ({}, CKR.TEMPLATE_INCOMPLETE),
    ({CKA.MODULUS_BITS: 512}, CKR.KEY_SIZE_RANGE),
    ({CKA.MODULUS_BITS: 16385}, CKR.KEY_SIZE_RANGE),
    ({CKA.MODULUS_BITS: 1024, CKA.PUBLIC_EXPONENT: b"\x11"}, CKR.ATTRIBUTE_VALUE_INVALID),
])
def test_generate_errors(template, rv):
    with raises_rv(rv):
        generate(CKM.RSA_PKCS_KEY_PAIR_GEN, template)


def test_attribute_rules():
    attrs = KEY_TYPES[CKK.RSA].attrs
    assert attrs[CKO.PUBLIC_KEY][CKA.MODULUS_BITS].flags == \
        AttrFlag.REQUIRED_GENERATE | AttrFlag.FORBID_CREATE
    assert attrs[CKO.PUBLIC_KEY][CKA.MODULUS].flags & AttrFlag.REQUIRED_CREATE
    for cka in (CKA.PRIVATE_EXPONENT, CKA.PRIME_1, CKA.PRIME_2, CKA.EXPONENT_1,
                CKA.EXPONENT_2, CKA.COEFFICIENT):
        flags = attrs[CKO.PRIVATE_KEY][cka].flags
        assert flags & AttrFlag.SENSITIVE and flags & AttrFlag.SEALED
        assert flags & AttrFlag.FORBID_GENERATE and flags & AttrFlag.FORBID_UNWRAP
    assert attrs[CKO.PRIVATE_KEY][CKA.PRIVATE_EXPONENT].flags & AttrFlag.REQUIRED_CREATE
    assert not attrs[CKO.PRIVATE_KEY][CKA.MODULUS].flags & AttrFlag.SENSITIVE


def test_private_key_from_modulus_and_exponents_only(ref, keys):
    """§2.1.3 requires only n and d: the primes are recovered (e given), or e (primes given)."""
    _, priv = keys
    full = priv.attrs
    partial = FakeKey(CKO.PRIVATE_KEY, CKK.RSA, {c: full[c] for c in (
        CKA.MODULUS, CKA.PUBLIC_EXPONENT, CKA.PRIVATE_EXPONENT)})
    assert partial.crypto().private_numbers() == ref.private_numbers()
    no_e = FakeKey(CKO.PRIVATE_KEY, CKK.RSA, {c: full[c] for c in (
        CKA.MODULUS, CKA.PRIVATE_EXPONENT, CKA.PRIME_1, CKA.PRIME_2)})
    assert no_e.crypto().private_numbers().public_numbers.e == 65537


@pytest.mark.parametrize("drop, rv", [
    ((CKA.PUBLIC_EXPONENT, CKA.PRIME_1), CKR.TEMPLATE_INCOMPLETE),
    ((CKA.PRIVATE_EXPONENT,), CKR.TEMPLATE_INCOMPLETE),
    ((CKA.MODULUS,), CKR.TEMPLATE_INCOMPLETE),
])
def test_private_key_incomplete(keys, drop, rv):
    attrs = {c: v for c, v in keys[1].attrs.items() if c not in drop}
    with raises_rv(rv):
        FakeKey(CKO.PRIVATE_KEY, CKK.RSA, attrs).crypto()


def test_private_key_inconsistent(keys):
    attrs = dict(keys[1].attrs)
    attrs[CKA.PRIME_1] = flip(attrs[CKA.PRIME_1])
    with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
        FakeKey(CKO.PRIVATE_KEY, CKK.RSA, attrs).crypto()


def test_public_key_from_attributes(ref, keys):
    pub = FakeKey(CKO.PUBLIC_KEY, CKK.RSA, {c: keys[0].attrs[c] for c in (
        CKA.MODULUS, CKA.PUBLIC_EXPONENT)})
    assert pub.crypto().public_numbers() == ref.public_key().public_numbers()
    with raises_rv(CKR.TEMPLATE_INCOMPLETE):
        FakeKey(CKO.PUBLIC_KEY, CKK.RSA, {CKA.MODULUS: keys[0].attrs[CKA.MODULUS]}).crypto()


def test_pkcs8(ref, keys):
    der = KEY_TYPES[CKK.RSA].to_pkcs8(keys[1].crypto())
    loaded = serialization.load_der_private_key(der, None)
    assert loaded.private_numbers() == ref.private_numbers()
    pub_attrs, priv_attrs = KEY_TYPES[CKK.RSA].from_private(loaded)
    assert priv_attrs == {c: v for c, v in keys[1].attrs.items()}


def test_mechanism_info():
    m = MECHANISMS[CKM.RSA_PKCS]
    want = (MechFlag.ENCRYPT | MechFlag.DECRYPT | MechFlag.SIGN | MechFlag.VERIFY
            | MechFlag.WRAP | MechFlag.UNWRAP)
    assert m.flags == want and (m.min_key, m.max_key) == (512, 16384)
    assert MECHANISMS[CKM.RSA_PKCS_OAEP].flags & MechFlag.UNWRAP
    assert not MECHANISMS[CKM.RSA_X_509].flags & MechFlag.WRAP
    assert MECHANISMS[CKM.RSA_PKCS_KEY_PAIR_GEN].flags == MechFlag.GENERATE_KEY_PAIR


def test_key_class_checked(keys):
    pub, priv = keys
    with raises_rv(CKR.KEY_TYPE_INCONSISTENT):
        sign(CKM.SHA256_RSA_PKCS, pub, b"x")
    with raises_rv(CKR.KEY_TYPE_INCONSISTENT):
        encrypt(CKM.RSA_PKCS, priv, b"x")


# --- CKM_RSA_PKCS ----------------------------------------------------------------------------

@pytest.mark.parametrize("length", [0, 1, 100, 256 - 11])
def test_pkcs_encrypt_round_trip(ref, keys, length):
    data = random.Random(length).randbytes(length)
    ct = encrypt(CKM.RSA_PKCS, keys[0], data)
    assert len(ct) == 256
    assert ref.decrypt(ct, padding.PKCS1v15()) == data
    assert decrypt(CKM.RSA_PKCS, keys[1], ct) == data
    theirs = ref.public_key().encrypt(data, padding.PKCS1v15())
    assert decrypt(CKM.RSA_PKCS, keys[1], theirs) == data


def test_pkcs_encrypt_errors(ref, keys):
    pub, priv = keys
    with raises_rv(CKR.DATA_LEN_RANGE):
        encrypt(CKM.RSA_PKCS, pub, bytes(256 - 10))
    ct = ref.public_key().encrypt(b"secret", padding.PKCS1v15())
    with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
        decrypt(CKM.RSA_PKCS, priv, ct[1:])
    with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
        decrypt(CKM.RSA_PKCS, priv, ct + b"\0")
    # a block that is not 00 02 PS 00 M: raw RSA of a 00 01 block
    bad = raw_public(ref, b"\0\x01" + b"\xff" * 200 + b"\0" + bytes(53))
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        decrypt(CKM.RSA_PKCS, priv, bad)
    short_ps = raw_public(ref, b"\0\x02" + b"\x05" * 7 + b"\0" + bytes(246))
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        decrypt(CKM.RSA_PKCS, priv, short_ps)
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):  # not less than the modulus
        decrypt(CKM.RSA_PKCS, priv, b"\xff" * 256)


def test_pkcs_single_part(keys):
    assert MECHANISMS[CKM.RSA_PKCS].encrypt(keys[0], None).multipart is False
    assert MECHANISMS[CKM.RSA_PKCS].sign(keys[1], None).multipart is False


def test_pkcs_sign_digest_info_matches_cryptography(ref, keys):
    """PKCS#1 v1.5 signatures are deterministic: ours equal cryptography's byte for byte."""
    digest = hashlib.sha256(b"message").digest()
    sig = sign(CKM.RSA_PKCS, keys[1], SHA256_INFO + digest)
    assert sig == ref.sign(b"message", padding.PKCS1v15(), hashes.SHA256())
    verify(CKM.RSA_PKCS, keys[0], SHA256_INFO + digest, sig)


def test_pkcs_sign_arbitrary_data(ref, keys):
    """TLS 1.0 style MD5||SHA1 (no DigestInfo): the raw RSA path; matches X.509 raw on
    the hand-made EMSA block and verifies with cryptography's recover."""
    data = hashlib.md5(b"m").digest() + hashlib.sha1(b"m").digest()
    sig = sign(CKM.RSA_PKCS, keys[1], data)
    assert ref.public_key().recover_data_from_signature(sig, padding.PKCS1v15(), None) == data
    block = b"\0\x01" + b"\xff" * (256 - 3 - len(data)) + b"\0" + data
    assert sign(CKM.RSA_X_509, keys[1], block) == sig
    verify(CKM.RSA_PKCS, keys[0], data, sig)
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.RSA_PKCS, keys[0], flip(data), sig)


def test_pkcs_sign_errors(keys):
    pub, priv = keys
    with raises_rv(CKR.DATA_LEN_RANGE):
        sign(CKM.RSA_PKCS, priv, bytes(256 - 10))
    sig = sign(CKM.RSA_PKCS, priv, b"abc")
    verify(CKM.RSA_PKCS, pub, b"abc", sig)
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.RSA_PKCS, pub, b"abc", flip(sig))
    with raises_rv(CKR.SIGNATURE_LEN_RANGE):
        verify(CKM.RSA_PKCS, pub, b"abc", sig[:-1])
    with raises_rv(CKR.DATA_LEN_RANGE):
        verify(CKM.RSA_PKCS, pub, bytes(256 - 10), sig)


# --- CKM_RSA_X_509 ---------------------------------------------------------------------------

def test_x509_encrypt_is_raw_rsa(ref, keys):
    data = b"\x00\x00short message"
    ct = encrypt(CKM.RSA_X_509, keys[0], data)
    assert ct == raw_public(ref, data)
    # decryption gives exactly k bytes: the input zero-padded on the left (§2.1.8)
    assert decrypt(CKM.RSA_X_509, keys[1], ct) == data.rjust(256, b"\0")


def test_x509_sign_verify(ref, keys):
    data = b"to be signed raw"
    sig = sign(CKM.RSA_X_509, keys[1], data)
    assert raw_public(ref, sig) == data.rjust(256, b"\0")
    verify(CKM.RSA_X_509, keys[0], data, sig)
    verify(CKM.RSA_X_509, keys[0], data.rjust(256, b"\0"), sig)
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.RSA_X_509, keys[0], flip(data), sig)
    with raises_rv(CKR.SIGNATURE_LEN_RANGE):
        verify(CKM.RSA_X_509, keys[0], data, sig[1:])


def test_x509_errors(keys):
    pub, priv = keys
    n = pub.attrs[CKA.MODULUS]
    with raises_rv(CKR.DATA_LEN_RANGE):
        encrypt(CKM.RSA_X_509, pub, bytes(257))
    with raises_rv(CKR.DATA_INVALID):
        encrypt(CKM.RSA_X_509, pub, n)
    with raises_rv(CKR.DATA_INVALID):
        sign(CKM.RSA_X_509, priv, n)
    with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
        decrypt(CKM.RSA_X_509, priv, bytes(255))
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        decrypt(CKM.RSA_X_509, priv, n)


# --- OAEP ------------------------------------------------------------------------------------

@pytest.mark.parametrize("hash_alg, mgf, label", [
    (CKM.SHA_1, CKG.MGF1_SHA1, b""),
    (CKM.SHA256, CKG.MGF1_SHA256, b"a label"),
    (CKM.SHA384, CKG.MGF1_SHA1, b"mixed hashes"),
    (CKM.SHA512, CKG.MGF1_SHA224, b""),
])
def test_oaep_round_trip(ref, keys, hash_alg, mgf, label):
    classes = {CKM.SHA_1: hashes.SHA1, CKM.SHA256: hashes.SHA256, CKM.SHA384: hashes.SHA384,
               CKM.SHA512: hashes.SHA512, CKG.MGF1_SHA1: hashes.SHA1,
               CKG.MGF1_SHA256: hashes.SHA256, CKG.MGF1_SHA224: hashes.SHA224}
    theirs = padding.OAEP(padding.MGF1(classes[mgf]()), classes[hash_alg](), label or None)
    param = OaepParams(hash_alg, mgf, CKZ_DATA_SPECIFIED if label else 0, label)
    data = b"a wrapped key value"
    ct = encrypt(CKM.RSA_PKCS_OAEP, keys[0], data, param)
    assert ref.decrypt(ct, theirs) == data
    assert decrypt(CKM.RSA_PKCS_OAEP, keys[1], ref.public_key().encrypt(data, theirs),
                   param) == data


def test_oaep_label_must_match(keys):
    data = b"payload"
    ct = encrypt(CKM.RSA_PKCS_OAEP, keys[0], data,
                 OaepParams(CKM.SHA256, CKG.MGF1_SHA256, CKZ_DATA_SPECIFIED, b"one"))
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        decrypt(CKM.RSA_PKCS_OAEP, keys[1], ct,
                OaepParams(CKM.SHA256, CKG.MGF1_SHA256, CKZ_DATA_SPECIFIED, b"two"))
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        decrypt(CKM.RSA_PKCS_OAEP, keys[1], flip(ct, 100),
                OaepParams(CKM.SHA256, CKG.MGF1_SHA256, CKZ_DATA_SPECIFIED, b"one"))


def test_oaep_lengths(keys):
    param = OaepParams(CKM.SHA256, CKG.MGF1_SHA256, CKZ_DATA_SPECIFIED, b"")
    most = 256 - 2 * 32 - 2
    ct = encrypt(CKM.RSA_PKCS_OAEP, keys[0], bytes(most), param)
    assert decrypt(CKM.RSA_PKCS_OAEP, keys[1], ct, param) == bytes(most)
    with raises_rv(CKR.DATA_LEN_RANGE):
        encrypt(CKM.RSA_PKCS_OAEP, keys[0], bytes(most + 1), param)
    with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
        decrypt(CKM.RSA_PKCS_OAEP, keys[1], ct[:-1], param)


@pytest.mark.parametrize("param", [
    None,
    b"not a struct",
    OaepParams(CKM.MD5, CKG.MGF1_SHA1, 0, b""),
    OaepParams(CKM.SHA256, 0x99, 0, b""),
    OaepParams(CKM.SHA256, CKG.MGF1_SHA256, 0, b"label without source"),
    OaepParams(CKM.SHA256, CKG.MGF1_SHA256, 7, b""),
])
def test_oaep_bad_params(keys, param):
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        encrypt(CKM.RSA_PKCS_OAEP, keys[0], b"x", param)


# --- PSS -------------------------------------------------------------------------------------

@pytest.mark.parametrize("salt", [0, 20, 32, 256 - 32 - 2])
def test_pss_raw_hash(ref, keys, salt):
    digest = hashlib.sha256(b"pss message").digest()
    param = PssParams(CKM.SHA256, CKG.MGF1_SHA256, salt)
    theirs = padding.PSS(padding.MGF1(hashes.SHA256()), salt)
    sig = sign(CKM.RSA_PKCS_PSS, keys[1], digest, param)
    ref.public_key().verify(sig, b"pss message", theirs, hashes.SHA256())
    other = ref.sign(digest, theirs, utils.Prehashed(hashes.SHA256()))
    verify(CKM.RSA_PKCS_PSS, keys[0], digest, other, param)
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.RSA_PKCS_PSS, keys[0], flip(digest), other, param)


def test_pss_salt_length_is_checked(ref, keys):
    digest = hashlib.sha256(b"m").digest()
    sig = sign(CKM.RSA_PKCS_PSS, keys[1], digest, PssParams(CKM.SHA256, CKG.MGF1_SHA256, 20))
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.RSA_PKCS_PSS, keys[0], digest, sig, PssParams(CKM.SHA256, CKG.MGF1_SHA256, 32))


def test_pss_errors(keys):
    pub, priv = keys
    good = PssParams(CKM.SHA256, CKG.MGF1_SHA256, 32)
    with raises_rv(CKR.DATA_LEN_RANGE):
        sign(CKM.RSA_PKCS_PSS, priv, bytes(20), good)
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):  # salt does not fit: emLen < hLen+sLen+2
        sign(CKM.RSA_PKCS_PSS, priv, bytes(32), PssParams(CKM.SHA256, CKG.MGF1_SHA256, 256 - 33))
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        sign(CKM.RSA_PKCS_PSS, priv, bytes(32), PssParams(CKM.SHA256, 0x99, 32))
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        sign(CKM.RSA_PKCS_PSS, priv, bytes(32), None)
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):  # SHA256_RSA_PKCS_PSS naming another hash
        sign(CKM.SHA256_RSA_PKCS_PSS, priv, b"m", PssParams(CKM.SHA_1, CKG.MGF1_SHA1, 20))
    sig = sign(CKM.RSA_PKCS_PSS, priv, bytes(32), good)
    with raises_rv(CKR.SIGNATURE_LEN_RANGE):
        verify(CKM.RSA_PKCS_PSS, pub, bytes(32), sig + b"\0", good)


@pytest.mark.parametrize("mech", list(PSS_HASHED))
def test_pss_hashed_multipart(ref, keys, mech):
    hash_alg, mgf, cls = PSS_HASHED[mech]
    data = random.Random(1).randbytes(1000)
    param = PssParams(hash_alg, mgf, cls.digest_size)
    sig = sign(mech, keys[1], data, param, rng=random.Random(2))
    ref.public_key().verify(sig, data, padding.PSS(padding.MGF1(cls()), cls.digest_size), cls())
    verify(mech, keys[0], data, sig, param, rng=random.Random(3))
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(mech, keys[0], data + b"!", sig, param)


# --- hash-then-sign PKCS#1 v1.5 --------------------------------------------------------------

@pytest.mark.parametrize("mech", list(HASHED))
def test_hashed_pkcs_matches_cryptography(ref, gen_keys, mech):
    pub, priv = gen_keys
    data = random.Random(mech).randbytes(777)
    sig = sign(mech, priv, data, rng=random.Random(4))
    assert sig == priv.crypto().sign(data, padding.PKCS1v15(), HASHED[mech]())
    assert sign(mech, priv, data) == sig
    verify(mech, pub, data, sig, rng=random.Random(5))
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(mech, pub, data[:-1], sig)
    with raises_rv(CKR.SIGNATURE_LEN_RANGE):
        verify(mech, pub, data, sig[:-1])


# A 512-bit key made by `openssl genrsa 512`: SoftHSM2's minimum, below what we generate.
KEY_512 = bytes.fromhex(
    "3082013a020100024100e68838e89359c630252c3a6bd8a6417270f58e56169742f4b8c961662e2ae162"
    "b3429038818d02319fb3ff99262975e9e1a7f0fff5f1e3cac844e38e827c75ef020301000102401c2b39"
    "08f2385e0734039b7fe2112e9e153f6c0d08e5a2c0d47386fb3d58f0012c16f4e1bb387da40477ef9686"
    "0e6cbb0d46cda1cf514a3b705bcdb5cd178241022100f58ffaadb0720924951fcab749a767997300b4ad"
    "a3889c2c63e98e76686a3945022100f054b1e86a7b1aebba261b5b6a49b3fd404de34d8f6f5e3a91a5d0"
    "d2b4a073a3022100a12e7d634e82bb7f98a6827fe6478c97cb45b6529719cf30cfeff8c3bdeba3650220"
    "2b4955f1e29be1b16b89c98ba18d3cd9f46712f5b94bf9d0dac2dee5d49ac1b902200df405f8485efff9"
    "9ede0a6f865935b3ca4e5de0f53259d0ca39dbb1bfbe8bea")


def test_512_bit_key_usable():
    pub, priv = pair_from_crypto(serialization.load_der_private_key(KEY_512, None), CKK.RSA)
    assert KEY_TYPES[CKK.RSA].size(priv) == 512
    sig = sign(CKM.SHA1_RSA_PKCS, priv, b"small")
    verify(CKM.SHA1_RSA_PKCS, pub, b"small", sig)
    assert decrypt(CKM.RSA_PKCS, priv, encrypt(CKM.RSA_PKCS, pub, b"tiny")) == b"tiny"
