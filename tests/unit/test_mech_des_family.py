"""Single DES, two-key DES and DES3 CMAC (des3.py): FIPS 81 and SP 800-38B known answers,
`cryptography` cross-checks with the SP 800-67 keying options, key types, key generation,
key type and length errors, derivations."""
from __future__ import annotations

import random

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from hspkcs11.consts import CKA, CKK, CKM, CKO, CKR, MechFlag
from hspkcs11.mechanisms import KEY_TYPES, MECHANISMS
from hspkcs11.mechanisms.params import CbcEncryptData

from fakekeys_sym import FakeSecretKey, chunks, h, load, raises_rv, run_cipher

DES_VECTORS = load("des.json")["vectors"]
CMAC = load("des3_cmac.json")
CMAC_MESSAGE = h(CMAC["message"])
DES_MODES = (CKM.DES_ECB, CKM.DES_CBC, CKM.DES_CBC_PAD)
DES3_MODES = (CKM.DES3_ECB, CKM.DES3_CBC, CKM.DES3_CBC_PAD)
LENS = {CKK.DES: 8, CKK.DES2: 16, CKK.DES3: 24}


def _name(m: int) -> str:
    return CKM(m).name


def _odd(b: int) -> bool:
    return bin(b).count("1") % 2 == 1


def key(value: bytes, key_type: int | None = None) -> FakeSecretKey:
    kt = key_type if key_type is not None else {8: CKK.DES, 16: CKK.DES2, 24: CKK.DES3}[len(value)]
    return FakeSecretKey(value, kt)


def tdea_key(value: bytes) -> bytes:
    """SP 800-67 §3.1 keying options, written out: K1K1K1, K1K2K1, K1K2K3."""
    return {8: value * 3, 16: value + value[:8], 24: value}[len(value)]


def pyca(mech: int, value: bytes, iv: bytes | None, data: bytes) -> bytes:
    if CKM(mech).name.endswith("CBC_PAD"):
        padder = padding.PKCS7(64).padder()
        data = padder.update(data) + padder.finalize()
    mode = modes.ECB() if CKM(mech).name.endswith("ECB") else modes.CBC(iv)
    return Cipher(TripleDES(tdea_key(value)), mode).encryptor().update(data)


# --- registration, key types, generation ---------------------------------------------------

def test_registration():
    enc = MechFlag.ENCRYPT | MechFlag.DECRYPT | MechFlag.WRAP | MechFlag.UNWRAP
    expected = {CKM.DES_KEY_GEN: (MechFlag.GENERATE, ()),
                CKM.DES2_KEY_GEN: (MechFlag.GENERATE, ()),
                CKM.DES_ECB: (enc, (CKK.DES,)), CKM.DES_CBC: (enc, (CKK.DES,)),
                CKM.DES_CBC_PAD: (enc, (CKK.DES,)),
                CKM.DES_ECB_ENCRYPT_DATA: (MechFlag.DERIVE, (CKK.DES,)),
                CKM.DES_CBC_ENCRYPT_DATA: (MechFlag.DERIVE, (CKK.DES,)),
                CKM.DES3_CMAC: (MechFlag.SIGN | MechFlag.VERIFY, (CKK.DES2, CKK.DES3)),
                CKM.DES3_CMAC_GENERAL: (MechFlag.SIGN | MechFlag.VERIFY, (CKK.DES2, CKK.DES3))}
    for mech, (flags, types) in expected.items():
        m = MECHANISMS[mech]
        assert (m.flags, m.key_types) == (flags, types), _name(mech)
        assert (m.min_key, m.max_key) == (0, 0), _name(mech)   # "not used", as SoftHSM2
    # ECB and CBC zero-pad a wrapped key to the block; CBC_PAD pads itself
    assert [MECHANISMS[m].wrap_pad for m in DES_MODES] == [8, 8, 0]


@pytest.mark.parametrize("kt", (CKK.DES, CKK.DES2), ids=lambda k: CKK(k).name)
def test_key_types(kt):
    spec = KEY_TYPES[kt]
    n = LENS[kt]
    assert spec.value_len == n
    assert set(spec.attrs[CKO.SECRET_KEY]) == {CKA.VALUE}   # no CKA_VALUE_LEN, as SoftHSM2
    spec.check_value(bytes(n))                              # parity is not enforced
    assert spec.size(key(bytes(n))) == n
    for bad in {0, 7, 8, 9, 15, 16, 17, 24} - {n}:
        with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
            spec.check_value(bytes(bad))


@pytest.mark.parametrize("mech, kt", ((CKM.DES_KEY_GEN, CKK.DES), (CKM.DES2_KEY_GEN, CKK.DES2)),
                         ids=("DES", "DES2"))
def test_key_gen_sets_odd_parity(mech, kt):
    seen = set()
    for _ in range(50):
        attrs = MECHANISMS[mech].generate({}, None)
        assert attrs[CKA.KEY_TYPE] == kt
        value = attrs[CKA.VALUE]
        assert len(value) == LENS[kt] and all(_odd(b) for b in value)
        seen.add(value)
    assert len(seen) == 50


# --- single DES -----------------------------------------------------------------------------

@pytest.mark.parametrize("v", DES_VECTORS, ids=lambda v: v["mech"])
@pytest.mark.parametrize("chunked", (False, True))
def test_fips81_known_answer(v, chunked):
    rng = random.Random(2) if chunked else None
    k, pt, ct = key(h(v["key"])), h(v["plaintext"]), h(v["ciphertext"])
    iv = h(v["iv"]) if v["iv"] else None
    m = MECHANISMS[CKM[v["mech"]]]
    assert run_cipher(m.encrypt(k, iv), pt, rng) == ct
    assert run_cipher(m.decrypt(k, iv), ct, rng) == pt


KEYED_MODES = [(m, 8) for m in DES_MODES] + [(m, n) for m in DES3_MODES for n in (16, 24)]


@pytest.mark.parametrize("mech, n_key", KEYED_MODES, ids=lambda x: str(x))
def test_matches_pyca_with_the_keying_options(mech, n_key):
    rng = random.Random(mech * 100 + n_key)
    for _ in range(10):
        value = rng.randbytes(n_key)
        iv = None if CKM(mech).name.endswith("ECB") else rng.randbytes(8)
        n = rng.randrange(0, 80)
        if not CKM(mech).name.endswith("PAD"):
            n -= n % 8
        data = rng.randbytes(n)
        ref = pyca(mech, value, iv, data)
        m = MECHANISMS[mech]
        assert run_cipher(m.encrypt(key(value), iv), data, rng) == ref
        assert run_cipher(m.decrypt(key(value), iv), ref, rng) == data


def test_a_des2_key_is_the_des3_key_k1_k2_k1():
    value = random.Random(5).randbytes(16)
    data = bytes(range(32))
    two = MECHANISMS[CKM.DES3_ECB].encrypt(key(value), None).oneshot(data)
    three = MECHANISMS[CKM.DES3_ECB].encrypt(key(value + value[:8]), None).oneshot(data)
    assert two == three


def test_a_des_key_is_single_des():
    """k||k||k collapses to single DES: encrypt-decrypt-encrypt with one key."""
    v = DES_VECTORS[0]
    k = h(v["key"])
    assert MECHANISMS[CKM.DES3_ECB].encrypt(key(k * 3), None).oneshot(h(v["plaintext"])) \
        == h(v["ciphertext"])


@pytest.mark.parametrize("mech, wrong", (
    (CKM.DES_ECB, CKK.DES3), (CKM.DES_CBC_PAD, CKK.DES2), (CKM.DES3_ECB, CKK.DES),
    (CKM.DES3_CMAC, CKK.DES), (CKM.DES_ECB_ENCRYPT_DATA, CKK.DES3)), ids=lambda x: str(x))
def test_key_of_another_type_is_refused(mech, wrong):
    m = MECHANISMS[mech]
    k = key(bytes(LENS[wrong]), wrong)
    with raises_rv(CKR.KEY_TYPE_INCONSISTENT):
        if m.sign is not None:
            m.sign(k, None)
        elif m.derive is not None:
            m.derive(k, bytes(8), {})
        else:
            m.encrypt(k, None if mech == CKM.DES_ECB else bytes(8))


@pytest.mark.parametrize("kt, n", ((CKK.DES, 16), (CKK.DES2, 24), (CKK.DES3, 16), (CKK.DES, 7)))
def test_value_not_of_the_type_length_is_a_key_size_error(kt, n):
    mech = CKM.DES_ECB if kt == CKK.DES else CKM.DES3_ECB
    with raises_rv(CKR.KEY_SIZE_RANGE):
        MECHANISMS[mech].encrypt(key(bytes(n), kt), None)


@pytest.mark.parametrize("n", (1, 7, 9))
def test_des_partial_block_is_a_length_error(n):
    for mech, iv in ((CKM.DES_ECB, None), (CKM.DES_CBC, bytes(8))):
        with raises_rv(CKR.DATA_LEN_RANGE):
            MECHANISMS[mech].encrypt(key(bytes(8)), iv).oneshot(bytes(n))
        with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
            MECHANISMS[mech].decrypt(key(bytes(8)), iv).oneshot(bytes(n))


def test_des_cbc_pad_bad_padding_and_iv():
    value, iv = bytes(range(1, 9)), bytes(8)
    raw = pyca(CKM.DES_CBC, value, iv, b"D" * 7 + b"\x09")
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        MECHANISMS[CKM.DES_CBC_PAD].decrypt(key(value), iv).oneshot(raw)
    for bad in (None, b"", bytes(7), bytes(16)):
        with raises_rv(CKR.MECHANISM_PARAM_INVALID):
            MECHANISMS[CKM.DES_CBC_PAD].encrypt(key(value), bad)


def test_des_encrypt_data_derivations():
    v = DES_VECTORS[0]
    k, pt, ct = key(h(v["key"])), h(v["plaintext"]), h(v["ciphertext"])
    assert MECHANISMS[CKM.DES_ECB_ENCRYPT_DATA].derive(k, pt, {}) == ct
    cbc = DES_VECTORS[1]
    assert MECHANISMS[CKM.DES_CBC_ENCRYPT_DATA].derive(
        k, CbcEncryptData(h(cbc["iv"]), pt), {}) == h(cbc["ciphertext"])
    for bad in (b"", bytes(7), bytes(12)):
        with raises_rv(CKR.MECHANISM_PARAM_INVALID):
            MECHANISMS[CKM.DES_ECB_ENCRYPT_DATA].derive(k, bad, {})
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        MECHANISMS[CKM.DES_CBC_ENCRYPT_DATA].derive(k, CbcEncryptData(bytes(16), pt), {})


def test_des3_derivations_take_a_des2_key():
    value = bytes(range(16))
    data = bytes(range(100, 116))
    assert MECHANISMS[CKM.DES3_ECB_ENCRYPT_DATA].derive(key(value), data, {}) == \
        pyca(CKM.DES3_ECB, value, None, data)


# --- DES3 CMAC (SP 800-38B) -------------------------------------------------------------------

def cmac_key(v: dict) -> FakeSecretKey:
    return key(h(v["key"]), CKK[v["key_type"]])


@pytest.mark.parametrize("v", CMAC["vectors"], ids=lambda v: f"{v['key_type']}-{v['mlen']}")
def test_sp800_38b_tdea_known_answer(v):
    msg, mac = CMAC_MESSAGE[:v["mlen"]], h(v["mac"])
    m = MECHANISMS[CKM.DES3_CMAC]
    assert m.sign(cmac_key(v), None).oneshot(msg) == mac
    op = m.sign(cmac_key(v), None)
    for piece in chunks(msg, random.Random(v["mlen"])):
        op.update(piece)
    assert op.final() == mac
    m.verify(cmac_key(v), None).oneshot(msg, mac)
    with raises_rv(CKR.SIGNATURE_INVALID):
        m.verify(cmac_key(v), None).oneshot(msg, bytes([mac[0] ^ 1]) + mac[1:])
    for n in (4, 7, 9, 16):
        with raises_rv(CKR.SIGNATURE_LEN_RANGE):
            m.verify(cmac_key(v), None).oneshot(msg, mac[:n] + bytes(max(0, n - 8)))


@pytest.mark.parametrize("n", range(1, 9))
def test_cmac_general_is_the_cut_mac(n):
    v = CMAC["vectors"][3]
    msg, mac = CMAC_MESSAGE[:v["mlen"]], h(v["mac"])
    m = MECHANISMS[CKM.DES3_CMAC_GENERAL]
    assert m.sign(cmac_key(v), n).oneshot(msg) == mac[:n]
    m.verify(cmac_key(v), n).oneshot(msg, mac[:n])
    with raises_rv(CKR.SIGNATURE_LEN_RANGE):
        m.verify(cmac_key(v), n).oneshot(msg, mac[:n] + b"\x00")


@pytest.mark.parametrize("param", (None, 0, 9, 16, b"\x08"))
def test_cmac_general_bad_length(param):
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        MECHANISMS[CKM.DES3_CMAC_GENERAL].sign(cmac_key(CMAC["vectors"][0]), param)
