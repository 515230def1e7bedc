"""CKM_AES_KEY_WRAP and CKM_AES_KEY_WRAP_PAD as registered mechanisms: registry entry,
RFC known answers through the op objects, parameter rules and error codes
(PKCS#11 v2.40 Current Mechanisms §2.14)."""
from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import keywrap as pyca

import hspkcs11.mechanisms  # noqa: F401  (registers every family)
from hspkcs11.consts import CKK, CKM, CKR, MechFlag
from hspkcs11.errors import P11Error
from hspkcs11.mechanisms.params import GcmParams, ParamKind
from hspkcs11.mechanisms.registry import lookup
from tests.unit.fakekeys_wrap import FakeAesKey
from tests.vectors.loader import load, vectors

KW, KWP = CKM.AES_KEY_WRAP, CKM.AES_KEY_WRAP_PAD
RFC = {KW: load(vectors("keywrap", "RFC3394_KW.txt")),
       KWP: load(vectors("keywrap", "RFC5649_KWP.txt"))}


def encrypt(mech: int, key: bytes, data: bytes, param=None) -> bytes:
    return lookup(mech).encrypt(FakeAesKey(key), param).oneshot(data)


def decrypt(mech: int, key: bytes, data: bytes, param=None) -> bytes:
    return lookup(mech).decrypt(FakeAesKey(key), param).oneshot(data)


def rv_of(call, *args, **kwargs) -> CKR:
    with pytest.raises(P11Error) as err:
        call(*args, **kwargs)
    return err.value.rv


@pytest.mark.parametrize("mech", [KW, KWP])
def test_registry_entry(mech: int) -> None:
    m = lookup(mech)
    assert m.key_types == (CKK.AES,)
    assert (m.min_key, m.max_key) == (16, 32)
    assert m.param is ParamKind.RAW and m.param_optional
    want = MechFlag.ENCRYPT | MechFlag.DECRYPT | MechFlag.WRAP | MechFlag.UNWRAP
    assert m.flags == want
    assert m.sign is m.verify is m.digest is m.generate is m.derive is None


@pytest.mark.parametrize("mech", [KW, KWP])
def test_ops_are_single_part(mech: int) -> None:
    key = FakeAesKey(os.urandom(16))
    assert lookup(mech).encrypt(key, None).multipart is False
    assert lookup(mech).decrypt(key, None).multipart is False


@pytest.mark.parametrize("mech", [KW, KWP])
@pytest.mark.parametrize("param", [None, b""])
def test_rfc_examples(mech: int, param) -> None:
    for rec in RFC[mech]:
        k, p, c = rec.hex("K"), rec.hex("P"), rec.hex("C")
        assert encrypt(mech, k, p, param) == c, rec.id
        assert decrypt(mech, k, c, param) == p, rec.id


@pytest.mark.parametrize("mech,wrap", [(KW, pyca.aes_key_wrap), (KWP, pyca.aes_key_wrap_with_padding)])
def test_update_final_gathers_the_data(mech: int, wrap) -> None:
    key, data = os.urandom(32), os.urandom(40)
    op = lookup(mech).encrypt(FakeAesKey(key), None)
    assert op.update(data[:3]) == b"" and op.update(data[3:]) == b""
    blob = op.final()
    assert blob == wrap(key, data)
    op = lookup(mech).decrypt(FakeAesKey(key), None)
    assert op.update(blob[:17]) == b""
    assert op.update(blob[17:]) + op.final() == data


def test_kw_iv_parameter() -> None:
    key, data, iv = os.urandom(24), os.urandom(32), os.urandom(8)
    blob = encrypt(KW, key, data, iv)
    assert blob != encrypt(KW, key, data)
    assert decrypt(KW, key, blob, iv) == data
    assert decrypt(KW, key, encrypt(KW, key, data, b"\xa6" * 8)) == data
    assert rv_of(decrypt, KW, key, blob) == CKR.ENCRYPTED_DATA_INVALID
    assert rv_of(decrypt, KW, key, blob, bytes(8)) == CKR.ENCRYPTED_DATA_INVALID


@pytest.mark.parametrize("mech,param", [
    (KW, bytes(4)), (KW, bytes(7)), (KW, bytes(9)), (KW, bytes(16)), (KW, 8),
    (KW, GcmParams(bytes(12), b"", 128)),
    (KWP, bytes(4)), (KWP, b"\xa6\x59\x59\xa6"), (KWP, bytes(8)), (KWP, 0),
])
def test_bad_parameters(mech: int, param) -> None:
    key = FakeAesKey(os.urandom(16))
    for factory in (lookup(mech).encrypt, lookup(mech).decrypt):
        assert rv_of(factory, key, param) == CKR.MECHANISM_PARAM_INVALID


@pytest.mark.parametrize("mech", [KW, KWP])
@pytest.mark.parametrize("size", [0, 8, 15, 20, 33, 64])
def test_key_size_range(mech: int, size: int) -> None:
    key = FakeAesKey(os.urandom(size))
    assert rv_of(lookup(mech).encrypt, key, None) == CKR.KEY_SIZE_RANGE
    assert rv_of(lookup(mech).decrypt, key, None) == CKR.KEY_SIZE_RANGE


@pytest.mark.parametrize("length", [0, 1, 8, 12, 15, 17, 36])
def test_kw_encrypt_data_len_range(length: int) -> None:
    assert rv_of(encrypt, KW, os.urandom(16), os.urandom(length)) == CKR.DATA_LEN_RANGE


def test_kwp_encrypt_any_nonempty_length() -> None:
    key = os.urandom(16)
    for n in (1, 7, 8, 9, 15, 16, 17, 100):
        data = os.urandom(n)
        assert decrypt(KWP, key, encrypt(KWP, key, data)) == data
    assert rv_of(encrypt, KWP, key, b"") == CKR.DATA_LEN_RANGE


@pytest.mark.parametrize("mech,length", [
    (KW, 0), (KW, 8), (KW, 16), (KW, 23), (KW, 25),
    (KWP, 0), (KWP, 8), (KWP, 15), (KWP, 17), (KWP, 31),
])
def test_decrypt_encrypted_data_len_range(mech: int, length: int) -> None:
    assert rv_of(decrypt, mech, os.urandom(16), os.urandom(length)) == CKR.ENCRYPTED_DATA_LEN_RANGE


@pytest.mark.parametrize("mech", [KW, KWP])
def test_tampered_or_wrong_key_is_encrypted_data_invalid(mech: int) -> None:
    key, data = os.urandom(32), os.urandom(32)
    blob = bytearray(encrypt(mech, key, data))
    assert rv_of(decrypt, mech, os.urandom(32), bytes(blob)) == CKR.ENCRYPTED_DATA_INVALID
    blob[9] ^= 0x10
    assert rv_of(decrypt, mech, key, bytes(blob)) == CKR.ENCRYPTED_DATA_INVALID


def test_op_can_be_reused_for_oneshot() -> None:
    # The token layer may call oneshot on a fresh op only, but a second call must not
    # see data gathered by the first.
    key = os.urandom(16)
    op = lookup(KWP).encrypt(FakeAesKey(key), None)
    a, b = op.oneshot(b"abc"), op.oneshot(b"defgh")
    assert decrypt(KWP, key, a) == b"abc" and decrypt(KWP, key, b) == b"defgh"
