"""HMAC mechanisms (RFC 2202 / RFC 4231 known answers) and generic secret keys."""
from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as pyca_hmac

from hspkcs11.consts import CKA, CKK, CKM, CKO, CKR, MechFlag
from hspkcs11.mechanisms import KEY_TYPES, MECHANISMS
from hspkcs11.mechanisms.digest import DIGESTS
from hspkcs11.mechanisms.hmac import HMACS
from hspkcs11.mechanisms.registry import AttrFlag

from fakekeys_sym import FakeSecretKey, chunks, h, load, raises_rv

VECTORS = load("hmac.json")["vectors"]
MIN_KEY = {CKM.MD5_HMAC: 16, CKM.SHA_1_HMAC: 20, CKM.SHA224_HMAC: 28, CKM.SHA256_HMAC: 32,
           CKM.SHA384_HMAC: 48, CKM.SHA512_HMAC: 64}   # SoftHSM2's values, in bytes


def _key(value: bytes, key_type: int = CKK.GENERIC_SECRET) -> FakeSecretKey:
    return FakeSecretKey(value, key_type)


def _vector_key(v: dict) -> FakeSecretKey:
    return _key(h(v["key_byte"]) * v["key_len"])


def _name(m: int) -> str:
    return CKM(m).name


def test_registration():
    assert set(HMACS) == set(MIN_KEY)
    for mech, min_key in MIN_KEY.items():
        m = MECHANISMS[mech]
        assert (m.min_key, m.max_key) == (min_key, 512)
        assert m.flags == MechFlag.SIGN | MechFlag.VERIFY
        assert m.key_types == (CKK.GENERIC_SECRET, CKK.AES)
        assert DIGESTS[HMACS[mech]].digest_size == min_key


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: f"{v['mech']}-{len(v['msg'])}")
def test_known_answer(v):
    m = MECHANISMS[CKM[v["mech"]]]
    msg = v["msg"].encode()
    assert m.sign(_vector_key(v), None).oneshot(msg).hex() == v["mac"]
    m.verify(_vector_key(v), None).oneshot(msg, h(v["mac"]))
    rng = random.Random(v["mac"])
    op = m.sign(_vector_key(v), None)
    for piece in chunks(msg, rng):
        op.update(piece)
    assert op.final().hex() == v["mac"]
    op = m.verify(_vector_key(v), None)
    for piece in chunks(msg, rng):
        op.update(piece)
    op.final(h(v["mac"]))


@pytest.mark.parametrize("mech", list(HMACS), ids=_name)
def test_matches_pyca_for_random_keys_and_data(mech):
    rng = random.Random(mech)
    for key_len in (MIN_KEY[mech], 100, 512):
        key, data = rng.randbytes(key_len), rng.randbytes(rng.randrange(300))
        ref = pyca_hmac.HMAC(key, DIGESTS[HMACS[mech]]())
        ref.update(data)
        assert MECHANISMS[mech].sign(_key(key), None).oneshot(data) == ref.finalize()


@pytest.mark.parametrize("mech", list(HMACS), ids=_name)
def test_key_size_range(mech):
    m = MECHANISMS[mech]
    for bad in (0, MIN_KEY[mech] - 1, 513):
        with raises_rv(CKR.KEY_SIZE_RANGE):
            m.sign(_key(b"k" * bad), None)
        with raises_rv(CKR.KEY_SIZE_RANGE):
            m.verify(_key(b"k" * bad), None)


def test_aes_key_is_accepted():
    key = bytes(range(32))
    ref = pyca_hmac.HMAC(key, hashes.SHA256())
    ref.update(b"data")
    assert MECHANISMS[CKM.SHA256_HMAC].sign(_key(key, CKK.AES), None).oneshot(b"data") \
        == ref.finalize()


@pytest.mark.parametrize("mech", list(HMACS), ids=_name)
def test_verify_failures(mech):
    m, key = MECHANISMS[mech], _key(b"K" * 64)
    mac = m.sign(key, None).oneshot(b"message")
    m.verify(key, None).oneshot(b"message", mac)
    with raises_rv(CKR.SIGNATURE_INVALID):
        m.verify(key, None).oneshot(b"messagE", mac)
    with raises_rv(CKR.SIGNATURE_INVALID):
        m.verify(key, None).oneshot(b"message", mac[:-1] + bytes([mac[-1] ^ 1]))
    for wrong_len in (mac[:-1], mac + b"\0", b""):
        with raises_rv(CKR.SIGNATURE_LEN_RANGE):
            m.verify(key, None).oneshot(b"message", wrong_len)


# --- generic secret keys ---------------------------------------------------------------

def test_generic_secret_key_type():
    spec = KEY_TYPES[CKK.GENERIC_SECRET]
    value_rule = spec.attrs[CKO.SECRET_KEY][CKA.VALUE].flags
    for flag in (AttrFlag.REQUIRED_CREATE, AttrFlag.FORBID_GENERATE, AttrFlag.FORBID_UNWRAP,
                 AttrFlag.SENSITIVE, AttrFlag.SEALED):
        assert flag in value_rule
    len_rule = spec.attrs[CKO.SECRET_KEY][CKA.VALUE_LEN].flags
    assert AttrFlag.FORBID_CREATE in len_rule and AttrFlag.REQUIRED_GENERATE in len_rule
    assert spec.value_len is None
    assert spec.size(_key(b"x" * 40)) == 40


def test_generic_secret_key_gen():
    m = MECHANISMS[CKM.GENERIC_SECRET_KEY_GEN]
    assert m.flags == MechFlag.GENERATE
    assert (m.min_key, m.max_key) == (1, 0x80000000)   # bits, as the spec and SoftHSM2 say
    a = m.generate({CKA.VALUE_LEN: 48}, None)
    b = m.generate({CKA.VALUE_LEN: 48}, None)
    assert a[CKA.KEY_TYPE] == CKK.GENERIC_SECRET
    assert len(a[CKA.VALUE]) == 48 and a[CKA.VALUE] != b[CKA.VALUE]
    assert len(m.generate({CKA.VALUE_LEN: 1}, None)[CKA.VALUE]) == 1
    with raises_rv(CKR.TEMPLATE_INCOMPLETE):
        m.generate({}, None)
    with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
        m.generate({CKA.VALUE_LEN: 0}, None)
    with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
        m.generate({CKA.VALUE_LEN: 0x80000000 // 8 + 1}, None)
