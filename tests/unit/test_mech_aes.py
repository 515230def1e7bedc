"""AES mechanisms: SP 800-38A/38B and GCM-spec known answers, multi-part behaviour,
padding, length and tag errors, key generation and the encrypt-data derivations."""
from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hspkcs11.consts import CKA, CKK, CKM, CKO, CKR, MechFlag
from hspkcs11.mechanisms import KEY_TYPES, MECHANISMS
from hspkcs11.mechanisms.params import CbcEncryptData, CtrParams, GcmParams
from hspkcs11.mechanisms.registry import AttrFlag

from fakekeys_sym import FakeSecretKey, chunks, h, load, raises_rv, run_cipher

AES_VECTORS = load("aes.json")
CMAC_VECTORS = load("cmac.json")
GCM_VECTORS = load("gcm.json")["vectors"]
PLAIN = h(AES_VECTORS["plaintext"])
ENC = (CKM.AES_ECB, CKM.AES_CBC, CKM.AES_CBC_PAD, CKM.AES_CTR, CKM.AES_GCM)


def key(value: bytes) -> FakeSecretKey:
    return FakeSecretKey(value, CKK.AES)


def param_for(mech: int, rng: random.Random):
    """A valid random parameter for each encryption mechanism."""
    return {CKM.AES_ECB: None,
            CKM.AES_CBC: rng.randbytes(16),
            CKM.AES_CBC_PAD: rng.randbytes(16),
            CKM.AES_CTR: CtrParams(128, rng.randbytes(16)),
            CKM.AES_GCM: GcmParams(rng.randbytes(12), rng.randbytes(20), 128)}[mech]


def encrypt(mech: int, k: FakeSecretKey, param, data: bytes, rng=None) -> bytes:
    return run_cipher(MECHANISMS[mech].encrypt(k, param), data, rng)


def decrypt(mech: int, k: FakeSecretKey, param, data: bytes, rng=None) -> bytes:
    return run_cipher(MECHANISMS[mech].decrypt(k, param), data, rng)


def _name(m: int) -> str:
    return CKM(m).name


# --- registration, key type, key generation ------------------------------------------

def test_registration():
    wrap = MechFlag.WRAP | MechFlag.UNWRAP
    enc = MechFlag.ENCRYPT | MechFlag.DECRYPT
    expected = {CKM.AES_KEY_GEN: MechFlag.GENERATE,
                CKM.AES_ECB: enc | wrap, CKM.AES_CBC: enc | wrap, CKM.AES_CBC_PAD: enc | wrap,
                CKM.AES_CTR: enc, CKM.AES_GCM: enc,
                CKM.AES_CMAC: MechFlag.SIGN | MechFlag.VERIFY,
                CKM.AES_CMAC_GENERAL: MechFlag.SIGN | MechFlag.VERIFY,
                CKM.AES_ECB_ENCRYPT_DATA: MechFlag.DERIVE,
                CKM.AES_CBC_ENCRYPT_DATA: MechFlag.DERIVE}
    for mech, flags in expected.items():
        m = MECHANISMS[mech]
        assert m.flags == flags, _name(mech)
        assert (m.min_key, m.max_key) == (16, 32)
        if mech != CKM.AES_KEY_GEN:
            assert m.key_types == (CKK.AES,)


def test_key_type():
    spec = KEY_TYPES[CKK.AES]
    for n in (16, 24, 32):
        spec.check_value(bytes(n))
        assert spec.size(key(bytes(n))) == n
    for n in (0, 8, 15, 17, 20, 33, 64):
        with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
            spec.check_value(bytes(n))
    rules = spec.attrs[CKO.SECRET_KEY]
    assert AttrFlag.SEALED in rules[CKA.VALUE].flags
    assert AttrFlag.FORBID_CREATE in rules[CKA.VALUE_LEN].flags
    assert spec.value_len is None


def test_key_gen():
    gen = MECHANISMS[CKM.AES_KEY_GEN].generate
    for n in (16, 24, 32):
        attrs = gen({CKA.VALUE_LEN: n}, None)
        assert attrs[CKA.KEY_TYPE] == CKK.AES and len(attrs[CKA.VALUE]) == n
    assert gen({CKA.VALUE_LEN: 16}, None)[CKA.VALUE] != gen({CKA.VALUE_LEN: 16}, None)[CKA.VALUE]
    with raises_rv(CKR.TEMPLATE_INCOMPLETE):
        gen({}, None)
    for n in (0, 8, 20, 64):
        with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
            gen({CKA.VALUE_LEN: n}, None)


@pytest.mark.parametrize("mech", ENC + (CKM.AES_CMAC,), ids=_name)
def test_bad_key_length_at_init(mech):
    rng = random.Random(1)
    m = MECHANISMS[mech]
    factories = (m.sign, m.verify) if mech == CKM.AES_CMAC else (m.encrypt, m.decrypt)
    for factory in factories:
        with raises_rv(CKR.KEY_SIZE_RANGE):
            factory(key(bytes(20)), param_for(mech, rng) if mech != CKM.AES_CMAC else None)


# --- SP 800-38A known answers --------------------------------------------------------

def _vector_param(v: dict):
    if v["mech"] == "AES_ECB":
        return None
    if v["mech"] == "AES_CBC":
        return h(v["iv"])
    return CtrParams(128, h(v["counter"]))


@pytest.mark.parametrize("v", AES_VECTORS["vectors"],
                         ids=lambda v: f"{v['mech']}-{len(v['key']) * 4}")
@pytest.mark.parametrize("chunked", (False, True))
def test_sp800_38a(v, chunked):
    rng = random.Random(v["ciphertext"]) if chunked else None
    mech, k, ct = CKM[v["mech"]], key(h(v["key"])), h(v["ciphertext"])
    assert encrypt(mech, k, _vector_param(v), PLAIN, rng) == ct
    assert decrypt(mech, k, _vector_param(v), ct, rng) == PLAIN


@pytest.mark.parametrize("bits", (32, 64, 96, 128))
def test_ctr_counter_bits_do_not_change_the_stream(bits):
    v = next(v for v in AES_VECTORS["vectors"] if v["mech"] == "AES_CTR")
    p = CtrParams(bits, h(v["counter"]))   # counter block ...fcfdfeff: no wrap for 4 blocks
    assert encrypt(CKM.AES_CTR, key(h(v["key"])), p, PLAIN) == h(v["ciphertext"])


# --- multi-part equals single-part, for every cipher ---------------------------------

@pytest.mark.parametrize("mech", ENC, ids=_name)
def test_multipart_equals_single_part(mech):
    rng = random.Random(mech)
    for _ in range(20):
        k = key(rng.randbytes(rng.choice((16, 24, 32))))
        n = rng.randrange(0, 200)
        if mech in (CKM.AES_ECB, CKM.AES_CBC):
            n -= n % 16
        data, param = rng.randbytes(n), param_for(mech, rng)
        whole = encrypt(mech, k, param, data)
        assert encrypt(mech, k, param, data, rng) == whole
        assert decrypt(mech, k, param, whole) == data
        assert decrypt(mech, k, param, whole, rng) == data


@pytest.mark.parametrize("mech", (CKM.AES_ECB, CKM.AES_CBC), ids=_name)
def test_block_modes_match_pyca_and_stream_whole_blocks(mech):
    rng = random.Random(7)
    value, iv = rng.randbytes(32), rng.randbytes(16)
    mode = modes.ECB() if mech == CKM.AES_ECB else modes.CBC(iv)
    data = rng.randbytes(64)
    ref = Cipher(algorithms.AES(value), mode).encryptor().update(data)
    op = MECHANISMS[mech].encrypt(key(value), None if mech == CKM.AES_ECB else iv)
    assert op.update(data[:20]) == ref[:16]        # whole blocks only, the rest is kept
    assert op.update(data[20:30]) == b""
    assert op.update(data[30:]) == ref[16:]
    assert op.final() == b""


# --- length errors of the unpadded block modes ---------------------------------------

@pytest.mark.parametrize("mech", (CKM.AES_ECB, CKM.AES_CBC), ids=_name)
@pytest.mark.parametrize("n", (1, 15, 17, 33))
def test_partial_block_is_a_length_error(mech, n):
    k, iv = key(bytes(16)), None if mech == CKM.AES_ECB else bytes(16)
    m = MECHANISMS[mech]
    with raises_rv(CKR.DATA_LEN_RANGE):
        m.encrypt(k, iv).oneshot(bytes(n))
    with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
        m.decrypt(k, iv).oneshot(bytes(n))
    op = m.encrypt(k, iv)
    op.update(bytes(n))
    with raises_rv(CKR.DATA_LEN_RANGE):
        op.final()
    op = m.decrypt(k, iv)
    op.update(bytes(n))
    with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
        op.final()


@pytest.mark.parametrize("mech", (CKM.AES_ECB, CKM.AES_CBC), ids=_name)
def test_empty_input_is_empty_output(mech):
    iv = None if mech == CKM.AES_ECB else bytes(16)
    assert encrypt(mech, key(bytes(16)), iv, b"") == b""
    assert decrypt(mech, key(bytes(16)), iv, b"") == b""


@pytest.mark.parametrize("mech", (CKM.AES_CBC, CKM.AES_CBC_PAD), ids=_name)
@pytest.mark.parametrize("iv", (None, b"", bytes(8), bytes(15), bytes(17), 5))
def test_bad_iv(mech, iv):
    for factory in (MECHANISMS[mech].encrypt, MECHANISMS[mech].decrypt):
        with raises_rv(CKR.MECHANISM_PARAM_INVALID):
            factory(key(bytes(16)), iv)


# --- CBC with PKCS#7 padding ---------------------------------------------------------

def test_cbc_pad_matches_pyca():
    rng = random.Random(3)
    value, iv = rng.randbytes(16), rng.randbytes(16)
    for n in range(0, 50):
        data = rng.randbytes(n)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        ref = Cipher(algorithms.AES(value), modes.CBC(iv)).encryptor().update(padded)
        assert len(ref) == (n // 16 + 1) * 16
        assert encrypt(CKM.AES_CBC_PAD, key(value), iv, data) == ref
        assert decrypt(CKM.AES_CBC_PAD, key(value), iv, ref, rng) == data


def test_cbc_pad_decrypt_holds_back_the_last_block():
    k, iv = key(bytes(16)), bytes(16)
    ct = encrypt(CKM.AES_CBC_PAD, k, iv, b"A" * 20)            # two blocks
    op = MECHANISMS[CKM.AES_CBC_PAD].decrypt(k, iv)
    assert op.update(ct[:16]) == b""
    assert op.update(ct[16:]) == b"A" * 16
    assert op.final() == b"A" * 4


def _cbc_encrypt_raw(value: bytes, iv: bytes, blocks: bytes) -> bytes:
    return Cipher(algorithms.AES(value), modes.CBC(iv)).encryptor().update(blocks)


@pytest.mark.parametrize("last", (bytes(16), b"A" * 15 + b"\x11", b"A" * 14 + b"\x01\x02",
                                  b"A" * 13 + b"\x03\x02\x03", b"A" * 16),
                         ids=("zero", "17", "1-then-2", "mixed-3", "no-pad"))
def test_cbc_pad_bad_padding(last):
    value, iv = bytes(range(16)), bytes(16)
    ct = _cbc_encrypt_raw(value, iv, b"B" * 16 + last)
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        decrypt(CKM.AES_CBC_PAD, key(value), iv, ct)
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        decrypt(CKM.AES_CBC_PAD, key(value), iv, ct, random.Random(0))


def test_cbc_pad_full_block_of_padding_is_valid():
    value, iv = bytes(range(16)), bytes(16)
    ct = _cbc_encrypt_raw(value, iv, b"C" * 16 + b"\x10" * 16)
    assert decrypt(CKM.AES_CBC_PAD, key(value), iv, ct) == b"C" * 16


@pytest.mark.parametrize("n", (0, 1, 15, 17, 31))
def test_cbc_pad_decrypt_length_errors(n):
    with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
        decrypt(CKM.AES_CBC_PAD, key(bytes(16)), bytes(16), bytes(n))
    with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
        decrypt(CKM.AES_CBC_PAD, key(bytes(16)), bytes(16), bytes(n), random.Random(n))


# --- CTR counter handling ------------------------------------------------------------

@pytest.mark.parametrize("direction,rv", (("encrypt", CKR.DATA_LEN_RANGE),
                                          ("decrypt", CKR.ENCRYPTED_DATA_LEN_RANGE)))
def test_ctr_refuses_a_counter_that_would_wrap(direction, rv):
    cb = bytes(15) + b"\xfe"                 # 8-bit counter at 0xfe: two blocks are left
    factory = getattr(MECHANISMS[CKM.AES_CTR], direction)
    assert len(factory(key(bytes(16)), CtrParams(8, cb)).oneshot(bytes(32))) == 32
    with raises_rv(rv):
        factory(key(bytes(16)), CtrParams(8, cb)).oneshot(bytes(33))
    op = factory(key(bytes(16)), CtrParams(8, cb))
    assert len(op.update(bytes(20))) == 20
    assert len(op.update(bytes(12))) == 12
    with raises_rv(rv):
        op.update(b"x")


def test_ctr_counter_bits_bound_the_counter_not_the_block():
    # the counter is the low 8 bits only: 0x01fe has two blocks left, not 0xffff - 0x1fe
    cb = bytes(14) + b"\x01\xfe"
    with raises_rv(CKR.DATA_LEN_RANGE):
        encrypt(CKM.AES_CTR, key(bytes(16)), CtrParams(8, cb), bytes(33))
    assert len(encrypt(CKM.AES_CTR, key(bytes(16)), CtrParams(16, cb), bytes(33))) == 33


def test_ctr_full_128_bit_counter_wraps_modulo_2_128():
    k = key(bytes(range(16)))
    ct = encrypt(CKM.AES_CTR, k, CtrParams(128, b"\xff" * 16), bytes(32))
    ecb = Cipher(algorithms.AES(bytes(range(16))), modes.ECB()).encryptor()
    assert ct == ecb.update(b"\xff" * 16 + bytes(16))


@pytest.mark.parametrize("param", (CtrParams(0, bytes(16)), CtrParams(129, bytes(16)),
                                   CtrParams(32, bytes(15)), CtrParams(32, bytes(17)),
                                   None, bytes(16)))
def test_ctr_bad_params(param):
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        MECHANISMS[CKM.AES_CTR].encrypt(key(bytes(16)), param)


# --- GCM -----------------------------------------------------------------------------

def _gcm(v: dict, tag_bits: int = 128) -> GcmParams:
    return GcmParams(h(v["iv"]), h(v["aad"]), tag_bits)


@pytest.mark.parametrize("v", GCM_VECTORS, ids=lambda v: f"case{v['case']}")
@pytest.mark.parametrize("chunked", (False, True))
def test_gcm_known_answer(v, chunked):
    rng = random.Random(v["case"]) if chunked else None
    k, expected = key(h(v["key"])), h(v["ciphertext"]) + h(v["tag"])
    assert encrypt(CKM.AES_GCM, k, _gcm(v), h(v["plaintext"]), rng) == expected
    assert decrypt(CKM.AES_GCM, k, _gcm(v), expected, rng) == h(v["plaintext"])


@pytest.mark.parametrize("tag_bits", range(0, 129, 8))
def test_gcm_tag_lengths(tag_bits):
    v = GCM_VECTORS[3]                                       # case 4: with AAD
    k, n = key(h(v["key"])), tag_bits // 8
    expected = h(v["ciphertext"]) + h(v["tag"])[:n]          # the tag's leftmost bits
    assert encrypt(CKM.AES_GCM, k, _gcm(v, tag_bits), h(v["plaintext"])) == expected
    assert encrypt(CKM.AES_GCM, k, _gcm(v, tag_bits), h(v["plaintext"]),
                   random.Random(n)) == expected
    assert decrypt(CKM.AES_GCM, k, _gcm(v, tag_bits), expected) == h(v["plaintext"])
    if n:
        bad = expected[:-1] + bytes([expected[-1] ^ 0x80])
        with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
            decrypt(CKM.AES_GCM, k, _gcm(v, tag_bits), bad)


def test_gcm_tampering_is_detected():
    v = GCM_VECTORS[3]
    k, good = key(h(v["key"])), h(v["ciphertext"]) + h(v["tag"])
    flipped_ct = bytes([good[0] ^ 1]) + good[1:]
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        decrypt(CKM.AES_GCM, k, _gcm(v), flipped_ct)
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        decrypt(CKM.AES_GCM, k, GcmParams(h(v["iv"]), h(v["aad"])[:-1], 128), good)
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        decrypt(CKM.AES_GCM, key(bytes(16)), _gcm(v), good)
    # the 2-byte tag path (below what pyca verifies) detects a changed ciphertext too
    short = h(v["ciphertext"]) + h(v["tag"])[:2]
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        decrypt(CKM.AES_GCM, k, _gcm(v, 16), bytes([short[0] ^ 1]) + short[1:])


def test_gcm_decrypt_releases_nothing_before_final():
    v = GCM_VECTORS[2]
    data = h(v["ciphertext"]) + h(v["tag"])
    op = MECHANISMS[CKM.AES_GCM].decrypt(key(h(v["key"])), _gcm(v))
    assert op.update(data[:30]) == b""
    assert op.update(data[30:]) == b""
    assert op.final() == h(v["plaintext"])
    op = MECHANISMS[CKM.AES_GCM].decrypt(key(h(v["key"])), _gcm(v))
    op.update(data[:-1] + bytes([data[-1] ^ 1]))
    with raises_rv(CKR.ENCRYPTED_DATA_INVALID):
        op.final()


@pytest.mark.parametrize("n", (0, 1, 15))
def test_gcm_data_shorter_than_the_tag(n):
    with raises_rv(CKR.ENCRYPTED_DATA_LEN_RANGE):
        decrypt(CKM.AES_GCM, key(bytes(16)), GcmParams(bytes(12), b"", 128), bytes(n))


@pytest.mark.parametrize("param", (GcmParams(bytes(12), b"", 7), GcmParams(bytes(12), b"", 136),
                                   GcmParams(bytes(12), b"", 100), GcmParams(b"", b"", 128),
                                   GcmParams(bytes(7), b"", 128), GcmParams(bytes(129), b"", 128),
                                   None, bytes(12)),
                         ids=("tag7", "tag136", "tag100", "iv0", "iv7", "iv129", "none", "raw"))
def test_gcm_bad_params(param):
    for factory in (MECHANISMS[CKM.AES_GCM].encrypt, MECHANISMS[CKM.AES_GCM].decrypt):
        with raises_rv(CKR.MECHANISM_PARAM_INVALID):
            factory(key(bytes(16)), param)


def test_gcm_empty_multipart_encrypt_is_just_the_tag():
    v = GCM_VECTORS[0]
    op = MECHANISMS[CKM.AES_GCM].encrypt(key(h(v["key"])), _gcm(v))
    assert op.final() == h(v["tag"])


# --- CMAC ----------------------------------------------------------------------------

@pytest.mark.parametrize("v", CMAC_VECTORS["vectors"],
                         ids=lambda v: f"aes{len(v['key']) * 4}-{v['mlen']}")
def test_cmac_known_answer(v):
    k, msg, mac = key(h(v["key"])), h(CMAC_VECTORS["message"])[:v["mlen"]], h(v["mac"])
    m = MECHANISMS[CKM.AES_CMAC]
    assert m.sign(k, None).oneshot(msg) == mac
    op = m.sign(k, None)
    for piece in chunks(msg, random.Random(v["mac"])):
        op.update(piece)
    assert op.final() == mac
    m.verify(k, None).oneshot(msg, mac)
    g = MECHANISMS[CKM.AES_CMAC_GENERAL]
    for n in (1, 4, 8, 15, 16):
        assert g.sign(k, n).oneshot(msg) == mac[:n]
        g.verify(k, n).oneshot(msg, mac[:n])


def test_cmac_verify_failures():
    k = key(bytes(16))
    mac = MECHANISMS[CKM.AES_CMAC].sign(k, None).oneshot(b"msg")
    with raises_rv(CKR.SIGNATURE_INVALID):
        MECHANISMS[CKM.AES_CMAC].verify(k, None).oneshot(b"msG", mac)
    with raises_rv(CKR.SIGNATURE_LEN_RANGE):
        MECHANISMS[CKM.AES_CMAC].verify(k, None).oneshot(b"msg", mac[:8])
    with raises_rv(CKR.SIGNATURE_LEN_RANGE):
        MECHANISMS[CKM.AES_CMAC_GENERAL].verify(k, 8).oneshot(b"msg", mac)
    with raises_rv(CKR.SIGNATURE_INVALID):
        MECHANISMS[CKM.AES_CMAC_GENERAL].verify(k, 8).oneshot(b"msg", bytes(8))


@pytest.mark.parametrize("param", (0, 17, 1 << 40, None, b"\x08"))
def test_cmac_general_bad_length(param):
    for factory in (MECHANISMS[CKM.AES_CMAC_GENERAL].sign, MECHANISMS[CKM.AES_CMAC_GENERAL].verify):
        with raises_rv(CKR.MECHANISM_PARAM_INVALID):
            factory(key(bytes(16)), param)


# --- encrypt-data derivations --------------------------------------------------------

def test_ecb_and_cbc_encrypt_data_derive():
    ecb = next(v for v in AES_VECTORS["vectors"] if v["mech"] == "AES_ECB")
    cbc = next(v for v in AES_VECTORS["vectors"] if v["mech"] == "AES_CBC")
    derive_ecb = MECHANISMS[CKM.AES_ECB_ENCRYPT_DATA].derive
    derive_cbc = MECHANISMS[CKM.AES_CBC_ENCRYPT_DATA].derive
    assert derive_ecb(key(h(ecb["key"])), PLAIN[:32], {}) == h(ecb["ciphertext"])[:32]
    assert derive_cbc(key(h(cbc["key"])), CbcEncryptData(h(cbc["iv"]), PLAIN), {}) \
        == h(cbc["ciphertext"])


@pytest.mark.parametrize("data", (b"", bytes(15), bytes(17)))
def test_encrypt_data_derive_needs_whole_blocks(data):
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        MECHANISMS[CKM.AES_ECB_ENCRYPT_DATA].derive(key(bytes(16)), data, {})
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        MECHANISMS[CKM.AES_CBC_ENCRYPT_DATA].derive(key(bytes(16)), CbcEncryptData(bytes(16), data),
                                                    {})


def test_cbc_encrypt_data_bad_iv_or_param():
    derive = MECHANISMS[CKM.AES_CBC_ENCRYPT_DATA].derive
    for param in (CbcEncryptData(bytes(8), bytes(16)), CbcEncryptData(bytes(17), bytes(16)),
                  bytes(16), None):
        with raises_rv(CKR.MECHANISM_PARAM_INVALID):
            derive(key(bytes(16)), param, {})
    with raises_rv(CKR.MECHANISM_PARAM_INVALID):
        MECHANISMS[CKM.AES_ECB_ENCRYPT_DATA].derive(key(bytes(16)), None, {})
