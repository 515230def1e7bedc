"""Triple-DES mechanisms: the SP 800-67 known answer, pyca cross-checks, multi-part
behaviour, padding and length errors, key type, key generation, derivations."""
from __future__ import annotations

import random

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from hspkcs11.consts import CKA, CKK, CKM, CKO, CKR, MechFlag
from hspkcs11.mechanisms import KEY_TYPES, MECHANISMS
from hspkcs11.mechanisms.params import CbcEncryptData

from fakekeys_sym import FakeSecretKey, h, load, raises_rv, run_cipher

VECTORS = load("des3.json")["vectors"]
ENC = (CKM.DES3_ECB, CKM.DES3_CBC, CKM.DES3_CBC_PAD)


def key(value: bytes) -> FakeSecretKey:
    return FakeSecretKey(value, CKK.DES3)


def _name(m: int) -> str:
    return CKM(m).name


def _odd(b: int) -> bool:
    return bin(b).count("1") % 2 == 1


def pyca(mech: int, value: bytes, iv: bytes | None, data: bytes) -> bytes:
    """The reference: pyca TripleDES, PKCS#7-padded for CBC_PAD."""
    if mech == CKM.DES3_CBC_PAD:
        padder = padding.PKCS7(64).padder()
        data = padder.update(data) + padder.finalize()
    mode = modes.ECB() if mech == CKM.DES3_ECB else modes.CBC(iv)
    return Cipher(TripleDES(value), mode).encryptor().update(data)


def test_registration():
    enc = MechFlag.ENCRYPT | MechFlag.DECRYPT | MechFlag.WRAP | MechFlag.UNWRAP
    expected = {CKM.DES3_KEY_GEN: MechFlag.GENERATE, CKM.DES3_ECB: enc, CKM.DES3_CBC: enc,
                CKM.DES3_CBC_PAD: enc, CKM.DES3_ECB_ENCRYPT_DATA: MechFlag.DERIVE,
                CKM.DES3_CBC_ENCRYPT_DATA: MechFlag.DERIVE}
    for mech, flags in expected.items():
        m = MECHANISMS[mech]
        assert m.flags == flags, _name(mech)
        assert (m.min_key, m.max_key) == (0, 0)      # "not used" for DES3, as SoftHSM2
        if mech != CKM.DES3_KEY_GEN:
            assert m.key_types == (CKK.DES2, CKK.DES3)   # DES3 mechanisms take DES2 keys too


def test_key_type():
    spec = KEY_TYPES[CKK.DES3]
    assert spec.value_len == 24
    assert set(spec.attrs[CKO.SECRET_KEY]) == {CKA.VALUE}   # no CKA_VALUE_LEN, as SoftHSM2
    spec.check_value(bytes(24))                             # parity is not enforced
    assert spec.size(key(bytes(24))) == 24
    for n in (0, 8, 16, 23, 25, 32):
        with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
            spec.check_value(bytes(n))


def test_key_gen_sets_odd_parity():
    gen = MECHANISMS[CKM.DES3_KEY_GEN].generate
    seen = set()
    for _ in range(50):
        attrs = gen({}, None)
        assert attrs[CKA.KEY_TYPE] == CKK.DES3
        value = attrs[CKA.VALUE]
        assert len(value) == 24 and all(_odd(b) for b in value)
        seen.add(value)
    assert len(seen) == 50


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["mech"])
@pytest.mark.parametrize("chunked", (False, True))
def test_known_answer(v, chunked):
    rng = random.Random(1) if chunked else None
    k, pt, ct = key(h(v["key"])), h(v["plaintext"]), h(v["ciphertext"])
    m = MECHANISMS[CKM[v["mech"]]]
    assert run_cipher(m.encrypt(k, None), pt, rng) == ct
    assert run_cipher(m.decrypt(k, None), ct, rng) == pt


@pytest.mark.parametrize("mech", ENC, ids=_name)
def test_matches_pyca_single_and_multi_part(mech):
    rng = random.Random(mech)
    for _ in range(20):
        value = rng.randbytes(24)
        iv = None if mech == CKM.DES3_ECB else rng.randbytes(8)
        n = rng.randrange(0, 100)
        if mech != CKM.DES3_CBC_PAD:
            n -= n % 8
        data = rng.randbytes(n)
        ref = pyca(mech, value, iv, data)
        m = MECHANISMS[mech]
        assert run_cipher(m.encrypt(key(value), iv), data) == ref
        assert run_cipher(m.encrypt(key(value), iv), data, rng) == ref
        assert run_cipher(m.decrypt(key(value), iv), ref) == data
        assert run_cipher(m.decrypt(key(value), iv), ref, rng) == data


@pytest.mark.parametrize("mech", (CKM.DES3_ECB, CKM.DES3_CBC), ids=_name)
@pytest.mark.parametrize("n", (1, 7, 9, 17))
def test_partial_block_is_a_length_error(mech, n):
    iv = None if mech == CKM.DES3_ECB else bytes(8)
    m = MECHANISMS[mech]
    with raises_rv(CKR.DATA_LEN_RANGE):
        m.encrypt(key(bytes(24)), iv).oneshot(bytes(n))
    with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
        run_cipher(m.decrypt(key(bytes(24)), iv), bytes(n), random.Random(n))


@pytest.mark.parametrize("n", (0, 7, 9))
def test_cbc_pad_length_errors(n):
    with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
        MECHANISMS[CKM.DES3_CBC_PAD].decrypt(key(bytes(24)), bytes(8)).oneshot(bytes(n))


def test_cbc_pad_bad_padding():
    value, iv = bytes(range(24)), bytes(8)
    raw = Cipher(TripleDES(value), modes.CBC(iv)).encryptor().update(b"D" * 7 + b"\x09")
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        MECHANISMS[CKM.DES3_CBC_PAD].decrypt(key(value), iv).oneshot(raw)


@pytest.mark.parametrize("mech", (CKM.DES3_CBC, CKM.DES3_CBC_PAD), ids=_name)
@pytest.mark.parametrize("iv", (None, b"", bytes(7), bytes(16)))
def test_bad_iv(mech, iv):
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        MECHANISMS[mech].encrypt(key(bytes(24)), iv)


def test_bad_key_length_at_init():
    with raises_rv(CKR.KEY_SIZE_RANGE):
        MECHANISMS[CKM.DES3_ECB].encrypt(key(bytes(16)), None)


def test_encrypt_data_derivations():
    v = VECTORS[0]
    k, pt, ct = key(h(v["key"])), h(v["plaintext"]), h(v["ciphertext"])
    assert MECHANISMS[CKM.DES3_ECB_ENCRYPT_DATA].derive(k, pt, {}) == ct
    iv = bytes(range(8))
    assert MECHANISMS[CKM.DES3_CBC_ENCRYPT_DATA].derive(k, CbcEncryptData(iv, pt), {}) \
        == pyca(CKM.DES3_CBC, h(v["key"]), iv, pt)
    for bad in (b"", bytes(7), bytes(12)):
        with raises_rv(CKR.MECHANISM_PARAM_INVALID):
            MECHANISMS[CKM.DES3_ECB_ENCRYPT_DATA].derive(k, bad, {})
        with raises_rv(CKR.MECHANISM_PARAM_INVALID):
            MECHANISMS[CKM.DES3_CBC_ENCRYPT_DATA].derive(k, CbcEncryptData(iv, bad), {})
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        MECHANISMS[CKM.DES3_CBC_ENCRYPT_DATA].derive(k, CbcEncryptData(bytes(16), pt), {})
