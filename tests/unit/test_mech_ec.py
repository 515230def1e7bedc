"""EC mechanisms: key generation on every curve, CKA_EC_PARAMS / CKA_EC_POINT encodings,
ECDSA (raw and hash-then-sign) against `cryptography` and RFC 6979 / NIST CAVS known
answers, ECDH1 with and without the X9.63 KDF, and the error codes."""
from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from hspkcs11.consts import CKA, CKD, CKK, CKM, CKO, CKR, MechFlag
from hspkcs11.mechanisms import KEY_TYPES, MECHANISMS
from hspkcs11.mechanisms.ec import der_oid
from hspkcs11.mechanisms.params import Ecdh1Params

from fakekeys_asym import FakeKey, flip, generate, raises_rv, sign, verify

P256 = bytes.fromhex("06082a8648ce3d030107")   # DER OID 1.2.840.10045.3.1.7
P384 = bytes.fromhex("06052b81040022")         # 1.3.132.0.34
P521 = bytes.fromhex("06052b81040023")         # 1.3.132.0.35
K256 = bytes.fromhex("06052b8104000a")         # 1.3.132.0.10 (secp256k1)
CURVES = {P256: ec.SECP256R1, P384: ec.SECP384R1, P521: ec.SECP521R1, K256: ec.SECP256K1,
          der_oid("1.2.840.10045.3.1.1"): ec.SECP192R1, der_oid("1.3.132.0.33"): ec.SECP224R1,
          der_oid("1.3.36.3.3.2.8.1.1.7"): ec.BrainpoolP256R1,
          der_oid("1.3.36.3.3.2.8.1.1.11"): ec.BrainpoolP384R1,
          der_oid("1.3.36.3.3.2.8.1.1.13"): ec.BrainpoolP512R1}
HASHED = {CKM.ECDSA_SHA1: hashes.SHA1, CKM.ECDSA_SHA224: hashes.SHA224,
          CKM.ECDSA_SHA256: hashes.SHA256, CKM.ECDSA_SHA384: hashes.SHA384,
          CKM.ECDSA_SHA512: hashes.SHA512}


def to_der(sig: bytes) -> bytes:
    half = len(sig) // 2
    return utils.encode_dss_signature(int.from_bytes(sig[:half], "big"),
                                      int.from_bytes(sig[half:], "big"))


def to_rs(der: bytes, n_len: int) -> bytes:
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(n_len, "big") + s.to_bytes(n_len, "big")


@pytest.fixture(scope="module")
def pairs():
    """One generated pair per curve."""
    return {params: generate(CKM.EC_KEY_PAIR_GEN, {CKA.EC_PARAMS: params}) for params in CURVES}


# --- key type and generation -----------------------------------------------------------------

@pytest.mark.parametrize("params", list(CURVES), ids=[c.name for c in CURVES.values()])
def test_generate_every_curve(pairs, params):
    pub, priv = pairs[params]
    curve = CURVES[params]()
    n_len = (curve.key_size + 7) // 8
    assert pub.attrs[CKA.EC_PARAMS] == priv.attrs[CKA.EC_PARAMS] == params
    point = pub.attrs[CKA.EC_POINT]
    # DER OCTET STRING around 04 || x || y (long-form length for P-521's 133 bytes)
    inner = point[2:] if len(point) < 130 else point[3:]
    assert point[0] == 0x04 and inner[0] == 0x04 and len(inner) == 1 + 2 * n_len
    assert len(priv.attrs[CKA.VALUE]) == n_len
    assert KEY_TYPES[CKK.EC].size(pub) == KEY_TYPES[CKK.EC].size(priv) == curve.key_size
    assert pub.crypto().public_numbers() == priv.crypto().public_key().public_numbers()
    digest = hashlib.sha256(b"hello").digest()
    sig = sign(CKM.ECDSA, priv, digest)
    assert len(sig) == 2 * n_len
    pub.crypto().verify(to_der(sig), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    verify(CKM.ECDSA, pub, digest, sig)


def test_p521_point_uses_long_form_length(pairs):
    point = pairs[P521][0].attrs[CKA.EC_POINT]
    assert point[:3] == bytes((0x04, 0x81, 133))


@pytest.mark.parametrize("params, rv", [
    (None, CKR.TEMPLATE_INCOMPLETE),
    (der_oid("1.3.132.0.1"), CKR.CURVE_NOT_SUPPORTED),        # sect163k1, a binary curve
    (der_oid("1.3.101.112"), CKR.CURVE_NOT_SUPPORTED),        # Ed25519 is CKK_EC_EDWARDS
    (bytes.fromhex("3003020101"), CKR.CURVE_NOT_SUPPORTED),   # explicit parameters
    (b"prime256v1", CKR.ATTRIBUTE_VALUE_INVALID),
])
def test_generate_bad_params(params, rv):
    template = {} if params is None else {CKA.EC_PARAMS: params}
    with raises_rv(rv):
        generate(CKM.EC_KEY_PAIR_GEN, template)


def test_point_encodings_accepted(pairs):
    pub = pairs[P256][0]
    der = pub.attrs[CKA.EC_POINT]
    bare = der[2:]
    compressed = pub.crypto().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.CompressedPoint)
    for point in (der, bare, compressed, bytes((0x04, len(compressed))) + compressed):
        key = FakeKey(CKO.PUBLIC_KEY, CKK.EC, {CKA.EC_PARAMS: P256, CKA.EC_POINT: point})
        assert key.crypto().public_numbers() == pub.crypto().public_numbers()


@pytest.mark.parametrize("point", [
    b"", b"\x04\x41" + bytes(65), bytes(65), b"\x04" + bytes(64), b"\x04\x40" + bytes(64),
])
def test_bad_points(point):
    key = FakeKey(CKO.PUBLIC_KEY, CKK.EC, {CKA.EC_PARAMS: P256, CKA.EC_POINT: point})
    with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
        key.crypto()


def test_private_key_codec(pairs):
    pub, priv = pairs[P384]
    rebuilt = FakeKey(CKO.PRIVATE_KEY, CKK.EC, dict(priv.attrs))
    assert rebuilt.crypto().private_numbers() == priv.crypto().private_numbers()
    der = KEY_TYPES[CKK.EC].to_pkcs8(priv.crypto())
    loaded = serialization.load_der_private_key(der, None)
    assert KEY_TYPES[CKK.EC].from_private(loaded) == (
        {c: pub.attrs[c] for c in (CKA.EC_PARAMS, CKA.EC_POINT)}, priv.attrs)
    for bad in (bytes(48), b"\xff" * 48):   # 0 and >= n are no private values
        with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
            FakeKey(CKO.PRIVATE_KEY, CKK.EC, {CKA.EC_PARAMS: P384, CKA.VALUE: bad}).crypto()
    with raises_rv(CKR.TEMPLATE_INCOMPLETE):
        FakeKey(CKO.PRIVATE_KEY, CKK.EC, {CKA.EC_PARAMS: P384}).crypto()


def test_mechanism_info():
    for mech in (CKM.EC_KEY_PAIR_GEN, CKM.ECDSA, CKM.ECDH1_DERIVE):
        m = MECHANISMS[mech]
        assert (m.min_key, m.max_key) == (192, 521)
        assert m.flags & MechFlag.EC_F_P and m.flags & MechFlag.EC_NAMEDCURVE
        assert m.flags & MechFlag.EC_UNCOMPRESS
    assert MECHANISMS[CKM.ECDSA].flags & (MechFlag.SIGN | MechFlag.VERIFY)
    assert MECHANISMS[CKM.ECDH1_DERIVE].flags & MechFlag.DERIVE


# --- ECDSA -----------------------------------------------------------------------------------

def test_rfc6979_known_answer():
    """RFC 6979 A.2.5, P-256, SHA-256, message "sample": the public key we derive from the
    private value, and the published signature verifying (raw and hash-then-sign)."""
    x = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
    ux = "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
    uy = "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"
    sig = bytes.fromhex("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
                        "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8")
    priv = FakeKey(CKO.PRIVATE_KEY, CKK.EC, {CKA.EC_PARAMS: P256, CKA.VALUE: x})
    pub_attrs, _ = KEY_TYPES[CKK.EC].from_private(priv.crypto())
    assert pub_attrs[CKA.EC_POINT] == bytes.fromhex("044104" + ux + uy)
    pub = FakeKey(CKO.PUBLIC_KEY, CKK.EC, pub_attrs)
    verify(CKM.ECDSA_SHA256, pub, b"sample", sig)
    verify(CKM.ECDSA, pub, hashlib.sha256(b"sample").digest(), sig)
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.ECDSA_SHA256, pub, b"samplE", sig)


def test_cryptography_signature_verifies(pairs):
    pub, priv = pairs[P256]
    digest = hashlib.sha256(b"theirs").digest()
    der = priv.crypto().sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    verify(CKM.ECDSA, pub, digest, to_rs(der, 32))


def test_raw_input_lengths(pairs):
    """Raw ECDSA takes any length (§2.3.6): shorter input is the same integer as its
    zero-padded form, longer input is truncated to the order's bit length."""
    pub, priv = pairs[P256]
    short = b"seventeen bytes!!"
    sig = sign(CKM.ECDSA, priv, short)
    verify(CKM.ECDSA, pub, short.rjust(32, b"\0"), sig)
    long = hashlib.sha512(b"long").digest()
    sig = sign(CKM.ECDSA, priv, long)
    pub.crypto().verify(to_der(sig), long, ec.ECDSA(utils.Prehashed(hashes.SHA512())))
    verify(CKM.ECDSA, pub, long[:32], sig)
    pub521, priv521 = pairs[P521]
    data = random.Random(7).randbytes(100)
    verify(CKM.ECDSA, pub521, data, sign(CKM.ECDSA, priv521, data))


def test_ecdsa_signature_lengths(pairs):
    pub, priv = pairs[P256]
    digest = bytes(range(32))
    sig = sign(CKM.ECDSA, priv, digest)
    for bad in (sig[:-1], sig + b"\0\0", b""):
        with raises_rv(CKR.SIGNATURE_LEN_RANGE):
            verify(CKM.ECDSA, pub, digest, bad)
    # §2.3.1: a shorter even-length signature is well formed, here simply wrong
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.ECDSA, pub, digest, sig[1:32] + sig[33:])
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.ECDSA, pub, digest, flip(sig))
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.ECDSA, pub, flip(digest, 0), sig)


def test_raw_ecdsa_single_part(pairs):
    assert MECHANISMS[CKM.ECDSA].sign(pairs[P256][1], None).multipart is False
    assert MECHANISMS[CKM.ECDSA_SHA256].sign(pairs[P256][1], None).multipart is True


@pytest.mark.parametrize("mech", list(HASHED))
@pytest.mark.parametrize("params", [P256, P384, P521, K256])
def test_hashed_ecdsa(pairs, mech, params):
    pub, priv = pairs[params]
    data = random.Random(mech).randbytes(500)
    sig = sign(mech, priv, data, rng=random.Random(1))
    pub.crypto().verify(to_der(sig), data, ec.ECDSA(HASHED[mech]()))
    verify(mech, pub, data, sig, rng=random.Random(2))
    n_len = (CURVES[params].key_size + 7) // 8
    theirs = to_rs(priv.crypto().sign(data, ec.ECDSA(HASHED[mech]())), n_len)
    verify(mech, pub, data, theirs)
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(mech, pub, data + b"x", sig)


def test_key_class_checked(pairs):
    pub, priv = pairs[P256]
    with raises_rv(CKR.KEY_TYPE_INCONSISTENT):
        sign(CKM.ECDSA, pub, bytes(32))
    with raises_rv(CKR.KEY_TYPE_INCONSISTENT):
        verify(CKM.ECDSA, priv, bytes(32), bytes(64))


# --- ECDH1 -----------------------------------------------------------------------------------

def derive(key, param, template=None) -> bytes:
    return MECHANISMS[CKM.ECDH1_DERIVE].derive(key, param, template or {})


def test_ecdh_cavs_known_answer():
    """NIST CAVS ECC CDH primitive, P-256, COUNT 0."""
    d = bytes.fromhex("7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534")
    peer = bytes.fromhex("04700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287"
                         "db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac")
    z = bytes.fromhex("46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b")
    priv = FakeKey(CKO.PRIVATE_KEY, CKK.EC, {CKA.EC_PARAMS: P256, CKA.VALUE: d})
    assert derive(priv, Ecdh1Params(CKD.NULL, b"", peer)) == z


@pytest.mark.parametrize("params", [P256, P521, K256])
def test_ecdh_agreement(pairs, params):
    a_pub, a_priv = pairs[params]
    b_pub, b_priv = generate(CKM.EC_KEY_PAIR_GEN, {CKA.EC_PARAMS: params})
    ab = derive(a_priv, Ecdh1Params(CKD.NULL, b"", b_pub.attrs[CKA.EC_POINT]))
    ba = derive(b_priv, Ecdh1Params(CKD.NULL, b"", a_pub.attrs[CKA.EC_POINT][2:]
                                    if params != P521 else a_pub.attrs[CKA.EC_POINT][3:]))
    assert ab == ba == a_priv.crypto().exchange(ec.ECDH(), b_pub.crypto())
    assert len(ab) == (CURVES[params].key_size + 7) // 8


@pytest.mark.parametrize("kdf, cls", [(CKD.SHA1_KDF, hashes.SHA1), (CKD.SHA256_KDF, hashes.SHA256),
                                      (CKD.SHA512_KDF, hashes.SHA512)])
def test_ecdh_x963_kdf(pairs, kdf, cls):
    a_pub, a_priv = pairs[P256]
    b_pub, b_priv = generate(CKM.EC_KEY_PAIR_GEN, {CKA.EC_PARAMS: P256})
    z = a_priv.crypto().exchange(ec.ECDH(), b_pub.crypto())
    shared = b"shared info"
    out = derive(a_priv, Ecdh1Params(kdf, shared, b_pub.attrs[CKA.EC_POINT]),
                 {CKA.VALUE_LEN: 48})
    assert out == X963KDF(cls(), 48, shared).derive(z)
    other = derive(b_priv, Ecdh1Params(kdf, shared, a_pub.attrs[CKA.EC_POINT]),
                   {CKA.VALUE_LEN: 48})
    assert other == out
    no_len = derive(a_priv, Ecdh1Params(kdf, b"", b_pub.attrs[CKA.EC_POINT]))
    assert no_len == X963KDF(cls(), 32, None).derive(z)


@pytest.mark.parametrize("make_param", [
    lambda pt: None,
    lambda pt: pt,
    lambda pt: Ecdh1Params(CKD.NULL, b"not allowed", pt),
    lambda pt: Ecdh1Params(0x99, b"", pt),
    lambda pt: Ecdh1Params(CKD.NULL, b"", b""),
    lambda pt: Ecdh1Params(CKD.NULL, b"", flip(pt)),             # off the curve
    lambda pt: Ecdh1Params(CKD.SHA256_KDF, b"", pt[:-1]),
])
def test_ecdh_bad_params(pairs, make_param):
    point = pairs[P256][0].attrs[CKA.EC_POINT]
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        derive(pairs[P256][1], make_param(point))


def test_ecdh_point_of_other_curve(pairs):
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        derive(pairs[P256][1], Ecdh1Params(CKD.NULL, b"", pairs[P384][0].attrs[CKA.EC_POINT]))
