"""DSA and PKCS #3 DH: generation from template domain parameters, DSA signatures (raw and
hash-then-sign) against `cryptography`, DH agreement between generated pairs, the
attribute codecs and the error codes."""
from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dh, dsa, utils

from hspkcs11.consts import CKA, CKK, CKM, CKO, CKR, MechFlag
from hspkcs11.mechanisms import KEY_TYPES, MECHANISMS

from fakekeys_asym import FakeKey, flip, generate, raises_rv, sign, verify

pytestmark = pytest.mark.filterwarnings("ignore:Diffie-Hellman over finite fields")

HASHED = {CKM.DSA_SHA1: hashes.SHA1, CKM.DSA_SHA224: hashes.SHA224,
          CKM.DSA_SHA256: hashes.SHA256, CKM.DSA_SHA384: hashes.SHA384,
          CKM.DSA_SHA512: hashes.SHA512}


def b(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def to_der(sig: bytes) -> bytes:
    half = len(sig) // 2
    return utils.encode_dss_signature(int.from_bytes(sig[:half], "big"),
                                      int.from_bytes(sig[half:], "big"))


# --- DSA -------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=[1024, 2048])
def dsa_domain(request):
    """Template domain parameters (p, q, g) of a 1024/160 and a 2048/256 group."""
    n = dsa.generate_parameters(request.param).parameter_numbers()
    return {CKA.PRIME: b(n.p), CKA.SUBPRIME: b(n.q), CKA.BASE: b(n.g)}


@pytest.fixture(scope="module")
def dsa_pair(dsa_domain):
    return generate(CKM.DSA_KEY_PAIR_GEN, dict(dsa_domain))


def q_len(domain) -> int:
    return len(domain[CKA.SUBPRIME])


def test_dsa_generate(dsa_domain, dsa_pair):
    pub, priv = dsa_pair
    for cka in (CKA.PRIME, CKA.SUBPRIME, CKA.BASE):
        assert pub.attrs[cka] == priv.attrs[cka] == dsa_domain[cka]
    p, g = (int.from_bytes(dsa_domain[c], "big") for c in (CKA.PRIME, CKA.BASE))
    x, y = (int.from_bytes(k.attrs[CKA.VALUE], "big") for k in (priv, pub))
    assert pow(g, x, p) == y
    bits = p.bit_length()
    assert KEY_TYPES[CKK.DSA].size(pub) == KEY_TYPES[CKK.DSA].size(priv) == bits


def test_dsa_raw_round_trip(dsa_domain, dsa_pair):
    pub, priv = dsa_pair
    digest = hashlib.sha256(b"dsa").digest()
    sig = sign(CKM.DSA, priv, digest)
    assert len(sig) == 2 * q_len(dsa_domain)
    pub.crypto().verify(to_der(sig), digest, utils.Prehashed(hashes.SHA256()))
    verify(CKM.DSA, pub, digest, sig)
    r, s = utils.decode_dss_signature(priv.crypto().sign(digest, utils.Prehashed(hashes.SHA256())))
    n = q_len(dsa_domain)
    verify(CKM.DSA, pub, digest, r.to_bytes(n, "big") + s.to_bytes(n, "big"))
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(CKM.DSA, pub, flip(digest, 0), sig)  # (bits past qLen are truncated away)
    for bad in (sig[:-2], sig + b"\0\0", sig[:-1]):   # DSA wants exactly 2*qLen (§2.2.1)
        with raises_rv(CKR.SIGNATURE_LEN_RANGE):
            verify(CKM.DSA, pub, digest, bad)
    assert MECHANISMS[CKM.DSA].sign(priv, None).multipart is False


@pytest.mark.parametrize("mech", list(HASHED))
def test_dsa_hashed(dsa_pair, mech):
    pub, priv = dsa_pair
    data = random.Random(mech).randbytes(300)
    sig = sign(mech, priv, data, rng=random.Random(1))
    pub.crypto().verify(to_der(sig), data, HASHED[mech]())
    verify(mech, pub, data, sig, rng=random.Random(2))
    with raises_rv(CKR.SIGNATURE_INVALID):
        verify(mech, pub, data[1:], sig)


def test_dsa_codecs(dsa_pair):
    pub, priv = dsa_pair
    rebuilt = FakeKey(CKO.PRIVATE_KEY, CKK.DSA, dict(priv.attrs))   # y recomputed from x
    assert rebuilt.crypto().private_numbers() == priv.crypto().private_numbers()
    loaded = serialization.load_der_private_key(KEY_TYPES[CKK.DSA].to_pkcs8(priv.crypto()), None)
    assert KEY_TYPES[CKK.DSA].from_private(loaded) == (pub.attrs, priv.attrs)
    attrs = dict(pub.attrs)
    attrs[CKA.BASE] = b"\x01"
    with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
        FakeKey(CKO.PUBLIC_KEY, CKK.DSA, attrs).crypto()


def test_dsa_generate_errors(dsa_domain):
    incomplete = {k: v for k, v in dsa_domain.items() if k != CKA.SUBPRIME}
    with raises_rv(CKR.TEMPLATE_INCOMPLETE):
        generate(CKM.DSA_KEY_PAIR_GEN, incomplete)
    with raises_rv(CKR.KEY_SIZE_RANGE):
        generate(CKM.DSA_KEY_PAIR_GEN, {**dsa_domain, CKA.PRIME: dsa_domain[CKA.PRIME][1:]})
    with raises_rv(CKR.DOMAIN_PARAMS_INVALID):
        generate(CKM.DSA_KEY_PAIR_GEN, {**dsa_domain, CKA.BASE: b"\x01"})


def test_dsa_mechanism_info():
    for mech in (CKM.DSA_KEY_PAIR_GEN, CKM.DSA, *HASHED):
        assert (MECHANISMS[mech].min_key, MECHANISMS[mech].max_key) == (1024, 4096)
    assert MECHANISMS[CKM.DSA].flags == MechFlag.SIGN | MechFlag.VERIFY


# --- DH --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dh_domain():
    n = dh.generate_parameters(2, 512).parameter_numbers()
    return {CKA.PRIME: b(n.p), CKA.BASE: b(n.g)}


def dh_derive(key, param) -> bytes:
    return MECHANISMS[CKM.DH_PKCS_DERIVE].derive(key, param, {})


def test_dh_agreement(dh_domain):
    a_pub, a_priv = generate(CKM.DH_PKCS_KEY_PAIR_GEN, dict(dh_domain))
    b_pub, b_priv = generate(CKM.DH_PKCS_KEY_PAIR_GEN, dict(dh_domain))
    for key in (a_pub, a_priv):
        assert key.attrs[CKA.PRIME] == dh_domain[CKA.PRIME]
        assert KEY_TYPES[CKK.DH].size(key) == 512
    ab = dh_derive(a_priv, b_pub.attrs[CKA.VALUE])
    ba = dh_derive(b_priv, a_pub.attrs[CKA.VALUE])
    assert ab == ba == a_priv.crypto().exchange(b_pub.crypto())
    assert len(ab) == 64
    p = int.from_bytes(dh_domain[CKA.PRIME], "big")
    x = int.from_bytes(a_priv.attrs[CKA.VALUE], "big")
    y = int.from_bytes(b_pub.attrs[CKA.VALUE], "big")
    assert int.from_bytes(ab, "big") == pow(y, x, p)
    assert a_priv.attrs[CKA.VALUE_BITS] == x.bit_length()


def test_dh_value_bits(dh_domain):
    pub, priv = generate(CKM.DH_PKCS_KEY_PAIR_GEN, dict(dh_domain), {CKA.VALUE_BITS: 160})
    x = int.from_bytes(priv.attrs[CKA.VALUE], "big")
    assert x.bit_length() == 160 == priv.attrs[CKA.VALUE_BITS]
    other_pub, other_priv = generate(CKM.DH_PKCS_KEY_PAIR_GEN, dict(dh_domain))
    assert dh_derive(priv, other_pub.attrs[CKA.VALUE]) == \
        dh_derive(other_priv, pub.attrs[CKA.VALUE])
    with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
        generate(CKM.DH_PKCS_KEY_PAIR_GEN, dict(dh_domain), {CKA.VALUE_BITS: 512})


def test_dh_codecs(dh_domain):
    pub, priv = generate(CKM.DH_PKCS_KEY_PAIR_GEN, dict(dh_domain))
    rebuilt = FakeKey(CKO.PRIVATE_KEY, CKK.DH, {c: priv.attrs[c] for c in (
        CKA.PRIME, CKA.BASE, CKA.VALUE)})
    assert rebuilt.crypto().private_numbers() == priv.crypto().private_numbers()
    loaded = serialization.load_der_private_key(KEY_TYPES[CKK.DH].to_pkcs8(priv.crypto()), None)
    assert KEY_TYPES[CKK.DH].from_private(loaded) == (pub.attrs, priv.attrs)
    with raises_rv(CKR.TEMPLATE_INCOMPLETE):
        FakeKey(CKO.PUBLIC_KEY, CKK.DH, {CKA.PRIME: dh_domain[CKA.PRIME],
                                         CKA.VALUE: pub.attrs[CKA.VALUE]}).crypto()


@pytest.mark.parametrize("make_param", [
    lambda p: None, lambda p: b"", lambda p: b"\x01", lambda p: b"\x00",
    lambda p: p, lambda p: b(int.from_bytes(p, "big") + 7),
])
def test_dh_bad_public_value(dh_domain, make_param):
    _, priv = generate(CKM.DH_PKCS_KEY_PAIR_GEN, dict(dh_domain))
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        dh_derive(priv, make_param(dh_domain[CKA.PRIME]))


def test_dh_generate_errors(dh_domain):
    with raises_rv(CKR.TEMPLATE_INCOMPLETE):
        generate(CKM.DH_PKCS_KEY_PAIR_GEN, {CKA.PRIME: dh_domain[CKA.PRIME]})
    with raises_rv(CKR.KEY_SIZE_RANGE):
        generate(CKM.DH_PKCS_KEY_PAIR_GEN, {CKA.PRIME: dh_domain[CKA.PRIME][:32],
                                            CKA.BASE: b"\x02"})
    with raises_rv(CKR.DOMAIN_PARAMS_INVALID):
        generate(CKM.DH_PKCS_KEY_PAIR_GEN, {CKA.PRIME: dh_domain[CKA.PRIME], CKA.BASE: b"\x01"})


def test_dh_mechanism_info():
    assert MECHANISMS[CKM.DH_PKCS_DERIVE].flags == MechFlag.DERIVE
    assert MECHANISMS[CKM.DH_PKCS_KEY_PAIR_GEN].flags == MechFlag.GENERATE_KEY_PAIR
    assert (MECHANISMS[CKM.DH_PKCS_DERIVE].min_key, MECHANISMS[CKM.DH_PKCS_DERIVE].max_key) == \
        (512, 10000)
