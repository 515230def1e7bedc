"""Symmetric mechanisms through PKCS#11, against hspkcs11 and SoftHSM2 alike: digests,
C_DigestKey, HMAC, AES (ECB, CBC, CBC_PAD, CTR, GCM, CMAC), DES3, generic secrets and the
random-number functions.

Known answers come from tests/vectors/sym/ (NIST SP 800-38A/B, FIPS 180, RFC 2202/4231,
the GCM paper, SP 800-67); everything else is checked against `cryptography`.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import struct
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute as A, KeyType, Mechanism as M, ObjectClass, Session
from pkcs11.exceptions import (AttributeValueInvalid, DataLenRange, EncryptedDataInvalid,
                               EncryptedDataLenRange, KeySizeRange, KeyTypeInconsistent,
                               MechanismParamInvalid, SignatureInvalid, SignatureLenRange)
from pkcs11.mechanisms import GCMParams

from hspkcs11.consts import CKM, CKR

from conftest import Module
from rawp11 import Raw, ffi

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography < 43
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

Differs = Callable[[str, str], None]
SYM = Path(__file__).resolve().parent / "vectors" / "sym"
RNG = random.Random(20240611)   # fixed: chunk boundaries are reproducible




def vectors(name: str) -> list[dict[str, Any]]:
    return json.loads((SYM / name).read_text())["vectors"]


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def chunks(data: bytes, sizes: Iterable[int] | None = None) -> list[bytes]:
    """`data` cut into uneven pieces (some empty), for multi-part calls."""
    out, i = [], 0
    sizes = iter(sizes) if sizes is not None else None
    while i < len(data):
        n = next(sizes) if sizes is not None else RNG.choice((0, 1, 3, 7, 16, 17, 33))
        out.append(data[i:i + n])
        i += n
    return out or [b""]


def secret_key(session: Session, key_type: KeyType, value: bytes, **attrs: Any) -> Any:
    """A session secret key with a known value, usable for everything its type allows."""
    template = {A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: key_type, A.VALUE: value,
                A.TOKEN: False, A.ENCRYPT: True, A.DECRYPT: True, A.SIGN: True, A.VERIFY: True}
    template.update(attrs)
    return session.create_object(template)


def multipart(fn: Callable[..., Any], data: bytes, **kw: Any) -> bytes:
    """An encrypt/decrypt generator over uneven chunks, joined."""
    return b"".join(fn(chunks(data), **kw))


def ulong(value: int) -> bytes:
    """A CK_ULONG as raw parameter bytes (CK_MAC_GENERAL_PARAMS and friends)."""
    return struct.pack("@L", value)


def ctr_param(counter_bits: int, block: bytes) -> bytes:
    """CK_AES_CTR_PARAMS as raw bytes: ulCounterBits, then the 16-byte counter block."""
    return ulong(counter_bits) + block


class RawGcm:
    """CK_GCM_PARAMS built by hand, for IVs python-pkcs11's GCMParams refuses (> 12 bytes);
    the object keeps the buffers its pointers name alive."""

    def __init__(self, iv: bytes, aad: bytes = b"", tag_bits: int = 128) -> None:
        self._iv = ffi.new("CK_BYTE[]", iv)
        self._aad = ffi.new("CK_BYTE[]", aad) if aad else ffi.NULL
        p = ffi.new("CK_GCM_PARAMS *")
        p.pIv, p.ulIvLen, p.ulIvBits = self._iv, len(iv), len(iv) * 8
        p.pAAD, p.ulAADLen, p.ulTagBits = self._aad, len(aad), tag_bits
        self._p = p
        self.raw = bytes(ffi.buffer(p))


class RawSession:
    """C calls on a python-pkcs11 session, for what python-pkcs11 cannot name (its Mechanism
    enum has no CKM_MD5 or CKM_MD5_HMAC)."""

    def __init__(self, module: Module, session: Session) -> None:
        self.fl, self.h = Raw(module.path), session.handle

    @staticmethod
    def _mech(mech: int) -> Any:
        m = ffi.new("CK_MECHANISM *")
        m.mechanism, m.pParameter, m.ulParameterLen = mech, ffi.NULL, 0
        return m

    def _out(self, fn: Callable[..., int], *args: Any) -> bytes:
        n = ffi.new("CK_ULONG *", 1024)
        buf = ffi.new("CK_BYTE[]", 1024)
        rv = fn(self.h, *args, buf, n)
        assert rv == CKR.OK, CKR(rv).name
        return bytes(buf[0:n[0]])

    def digest(self, mech: int, parts: list[bytes], single: bool) -> bytes:
        assert self.fl.C_DigestInit(self.h, self._mech(mech)) == CKR.OK
        if single:
            return self._out(self.fl.C_Digest, parts[0], len(parts[0]))
        for part in parts:
            assert self.fl.C_DigestUpdate(self.h, part, len(part)) == CKR.OK
        return self._out(self.fl.C_DigestFinal)

    def sign(self, mech: int, key: Any, parts: list[bytes], single: bool) -> bytes:
        assert self.fl.C_SignInit(self.h, self._mech(mech), key.handle) == CKR.OK
        if single:
            return self._out(self.fl.C_Sign, parts[0], len(parts[0]))
        for part in parts:
            assert self.fl.C_SignUpdate(self.h, part, len(part)) == CKR.OK
        return self._out(self.fl.C_SignFinal)

    def verify(self, mech: int, key: Any, data: bytes, signature: bytes) -> int:
        assert self.fl.C_VerifyInit(self.h, self._mech(mech), key.handle) == CKR.OK
        return self.fl.C_Verify(self.h, data, len(data), signature, len(signature))


# --- digests ---------------------------------------------------------------------------------

DIGESTS = {CKM.MD5: "md5", CKM.SHA_1: "sha1", CKM.SHA224: "sha224", CKM.SHA256: "sha256",
           CKM.SHA384: "sha384", CKM.SHA512: "sha512"}


@pytest.mark.parametrize("vec", vectors("digest.json"),
                         ids=lambda v: f"{v['mech']}-{len(v['msg']) * v.get('repeat', 1)}")
def test_digest_known_answers_single_and_multi_part(module: Module, session: Session,
                                                    vec: dict[str, Any]) -> None:
    raw = RawSession(module, session)
    mech = CKM[vec["mech"]]
    msg = vec["msg"].encode() * vec.get("repeat", 1)
    want = h(vec["digest"])
    if len(msg) < 10_000:
        assert raw.digest(mech, [msg], single=True) == want
        assert raw.digest(mech, chunks(msg), single=False) == want
    else:   # a million bytes: 100 updates of 10 000
        assert raw.digest(mech, chunks(msg, [10_000] * 100), single=False) == want


@pytest.mark.parametrize("mech", [M.SHA_1, M.SHA224, M.SHA256, M.SHA384, M.SHA512], ids=lambda m: m.name)
def test_digest_of_random_data_matches_hashlib(session: Session, mech: M) -> None:
    data = os.urandom(1000)
    want = hashlib.new(DIGESTS[CKM(mech)], data).digest()
    assert session.digest(data, mechanism=mech) == want
    assert session.digest(chunks(data), mechanism=mech) == want


@pytest.mark.parametrize("mech", (M.SHA_1, M.SHA256, M.SHA512), ids=lambda m: m.name)
def test_digest_key_feeds_the_key_value(session: Session, mech: M) -> None:
    value = os.urandom(32)
    key = secret_key(session, KeyType.GENERIC_SECRET, value)
    got = session.digest([b"before", key, b"after"], mechanism=mech)
    assert got == hashlib.new(DIGESTS[CKM(mech)], b"before" + value + b"after").digest()


# --- HMAC -----------------------------------------------------------------------------------

HMACS = {M.SHA_1_HMAC: "sha1", M.SHA224_HMAC: "sha224", M.SHA256_HMAC: "sha256",
         M.SHA384_HMAC: "sha384", M.SHA512_HMAC: "sha512"}


@pytest.mark.parametrize("vec", vectors("hmac.json"), ids=lambda v: f"{v['mech']}-{len(v['msg'])}")
def test_hmac_known_answers(module: Module, session: Session, vec: dict[str, Any]) -> None:
    raw = RawSession(module, session)
    key = secret_key(session, KeyType.GENERIC_SECRET, h(vec["key_byte"]) * vec["key_len"])
    mech, msg, mac = CKM[vec["mech"]], vec["msg"].encode(), h(vec["mac"])
    assert raw.sign(mech, key, [msg], single=True) == mac
    assert raw.sign(mech, key, chunks(msg), single=False) == mac
    assert raw.verify(mech, key, msg, mac) == CKR.OK
    assert raw.verify(mech, key, msg, bytes(len(mac))) == CKR.SIGNATURE_INVALID


@pytest.mark.parametrize("mech", HMACS, ids=lambda m: m.name)
def test_hmac_sign_verify_and_error_codes(session: Session, mech: M) -> None:
    key = session.generate_key(KeyType.GENERIC_SECRET, 512, template={A.SIGN: True, A.VERIFY: True,
                                                                     A.SENSITIVE: False,
                                                                     A.EXTRACTABLE: True})
    data = os.urandom(300)
    mac = key.sign(data, mechanism=mech)
    assert mac == hmac.new(key[A.VALUE], data, HMACS[mech]).digest()
    assert key.sign(chunks(data), mechanism=mech) == mac
    key._verify(data, mac, mechanism=mech)
    key._verify_generator(chunks(data), mac, mechanism=mech)
    bad = bytes([mac[0] ^ 1]) + mac[1:]
    with pytest.raises(SignatureInvalid):
        key._verify(data, bad, mechanism=mech)
    with pytest.raises(SignatureInvalid):
        key._verify_generator(chunks(data), bad, mechanism=mech)
    with pytest.raises(SignatureLenRange):
        key._verify(data, mac[:-1], mechanism=mech)
    with pytest.raises(SignatureLenRange):
        key._verify(data, mac + b"\0", mechanism=mech)


def test_hmac_key_shorter_than_the_hash_is_refused(session: Session) -> None:
    key = secret_key(session, KeyType.GENERIC_SECRET, os.urandom(16))
    with pytest.raises(KeySizeRange):
        key.sign(b"data", mechanism=M.SHA256_HMAC)


@pytest.mark.parametrize("mech", (M.SHA_1_HMAC, M.SHA224_HMAC, M.SHA256_HMAC), ids=lambda m: m.name)
def test_hmac_with_an_aes_key(session: Session, differs: Differs, mech: M) -> None:
    differs("softhsm", "project decision (HMAC issue): hspkcs11 accepts CKK_AES keys for "
                       "CKM_*_HMAC; SoftHSM2 answers CKR_KEY_TYPE_INCONSISTENT")
    value = os.urandom(32)
    key = secret_key(session, KeyType.AES, value)
    mac = key.sign(b"message", mechanism=mech)
    assert mac == hmac.new(value, b"message", HMACS[mech]).digest()
    assert key.verify(b"message", mac, mechanism=mech)


def test_hmac_with_a_des3_key_is_refused(session: Session) -> None:
    key = session.generate_key(KeyType.DES3, template={A.SIGN: True})
    with pytest.raises(KeyTypeInconsistent):
        key.sign(b"message", mechanism=M.SHA256_HMAC)


# --- generic secrets and random numbers -------------------------------------------------------

@pytest.mark.parametrize("length", (16, 32, 100))
def test_generic_secret_generation(session: Session, length: int) -> None:
    key = session.generate_key(KeyType.GENERIC_SECRET, length * 8,
                               template={A.SENSITIVE: False, A.EXTRACTABLE: True, A.SIGN: True})
    assert key[A.VALUE_LEN] == length
    assert len(key[A.VALUE]) == length
    assert key[A.LOCAL] is True
    assert key[A.KEY_GEN_MECHANISM] == M.GENERIC_SECRET_KEY_GEN


def test_generate_random(session: Session) -> None:
    a, b = session.generate_random(256), session.generate_random(256)
    assert len(a) == len(b) == 32
    assert a != b
    big = session.generate_random(8 * 4096)
    assert len(big) == 4096
    assert len(set(big)) > 200      # 4096 random bytes take most of the 256 values


def test_seed_random_mixes_in_and_the_output_stays_random(session: Session) -> None:
    """Base §5.15: C_SeedRandom mixes in more seed material. Seeding twice with the same
    material must not make the generator repeat itself."""
    session.seed_random(b"some seed material")
    a = session.generate_random(256)
    session.seed_random(b"some seed material")
    b = session.generate_random(256)
    assert len(a) == len(b) == 32
    assert a != b


# --- AES ------------------------------------------------------------------------------------

AES_FLAGS = {A.SENSITIVE: False, A.EXTRACTABLE: True, A.ENCRYPT: True, A.DECRYPT: True}


@pytest.mark.parametrize("bits", (128, 192, 256))
def test_aes_key_generation(session: Session, bits: int) -> None:
    key = session.generate_key(KeyType.AES, bits, template=AES_FLAGS)
    assert key[A.VALUE_LEN] == bits // 8
    value = key[A.VALUE]
    assert len(value) == bits // 8
    assert key[A.LOCAL] is True
    assert key[A.KEY_GEN_MECHANISM] == M.AES_KEY_GEN
    # the token's key is a real AES key of that value
    block = os.urandom(16)
    ecb = Cipher(algorithms.AES(value), modes.ECB()).encryptor()
    assert key.encrypt(block, mechanism=M.AES_ECB) == ecb.update(block) + ecb.finalize()


@pytest.mark.parametrize("length", (8, 20, 33))
def test_aes_key_generation_of_a_bad_length_is_refused(session: Session, length: int) -> None:
    with pytest.raises(AttributeValueInvalid):
        session.generate_key(KeyType.AES, length * 8)


AES_VECTORS = vectors("aes.json")
AES_PLAIN = h(json.loads((SYM / "aes.json").read_text())["plaintext"])


def _aes_param(vec: dict[str, Any]) -> Any:
    if vec["mech"] == "AES_CBC":
        return h(vec["iv"])
    if vec["mech"] == "AES_CTR":
        return ctr_param(128, h(vec["counter"]))
    return None


@pytest.mark.parametrize("vec", AES_VECTORS, ids=lambda v: f"{v['mech']}-{len(h(v['key'])) * 8}")
def test_aes_known_answers_single_and_multi_part(session: Session, vec: dict[str, Any]) -> None:
    key = secret_key(session, KeyType.AES, h(vec["key"]))
    mech, param, ct = M[vec["mech"]], _aes_param(vec), h(vec["ciphertext"])
    assert key.encrypt(AES_PLAIN, mechanism=mech, mechanism_param=param) == ct
    assert key.decrypt(ct, mechanism=mech, mechanism_param=param) == AES_PLAIN
    assert multipart(key.encrypt, AES_PLAIN, mechanism=mech, mechanism_param=param) == ct
    assert multipart(key.decrypt, ct, mechanism=mech, mechanism_param=param) == AES_PLAIN


@pytest.mark.parametrize("length", (0, 1, 15, 16, 17, 100))
def test_aes_cbc_pad_matches_pkcs7(session: Session, length: int) -> None:
    value, iv, data = os.urandom(32), os.urandom(16), os.urandom(length)
    key = secret_key(session, KeyType.AES, value)
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(value), modes.CBC(iv)).encryptor()
    want = enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
    assert key.encrypt(data, mechanism=M.AES_CBC_PAD, mechanism_param=iv) == want
    assert multipart(key.encrypt, data, mechanism=M.AES_CBC_PAD, mechanism_param=iv) == want
    assert key.decrypt(want, mechanism=M.AES_CBC_PAD, mechanism_param=iv) == data
    assert multipart(key.decrypt, want, mechanism=M.AES_CBC_PAD, mechanism_param=iv) == data


@pytest.mark.parametrize("mech", (M.AES_ECB, M.AES_CBC), ids=lambda m: m.name)
def test_aes_unpadded_modes_refuse_partial_blocks(session: Session, mech: M) -> None:
    key = secret_key(session, KeyType.AES, os.urandom(16))
    iv = os.urandom(16) if mech == M.AES_CBC else None
    with pytest.raises(DataLenRange):
        key.encrypt(os.urandom(17), mechanism=mech, mechanism_param=iv)
    with pytest.raises(DataLenRange):
        multipart(key.encrypt, os.urandom(31), mechanism=mech, mechanism_param=iv)
    with pytest.raises(EncryptedDataLenRange):
        key.decrypt(os.urandom(15), mechanism=mech, mechanism_param=iv)


def test_aes_cbc_pad_decrypt_of_partial_blocks(session: Session) -> None:
    key = secret_key(session, KeyType.AES, os.urandom(16))
    with pytest.raises(EncryptedDataLenRange):
        key.decrypt(os.urandom(17), mechanism=M.AES_CBC_PAD, mechanism_param=os.urandom(16))
    with pytest.raises(EncryptedDataLenRange):
        multipart(key.decrypt, os.urandom(33), mechanism=M.AES_CBC_PAD, mechanism_param=os.urandom(16))


@pytest.mark.parametrize("last", (b"x" * 15 + b"\0", b"x" * 13 + b"\x01\x02\x03", b"x" * 15 + b"\x11"),
                         ids=("zero", "mixed", "over-block"))
def test_aes_cbc_pad_bad_padding(session: Session, differs: Differs, last: bytes) -> None:
    differs("softhsm", "Base §5.9 C_Decrypt: bad padding is CKR_ENCRYPTED_DATA_INVALID; "
                       "SoftHSM2 answers CKR_GENERAL_ERROR")
    value, iv = os.urandom(16), os.urandom(16)
    key = secret_key(session, KeyType.AES, value)
    enc = Cipher(algorithms.AES(value), modes.CBC(iv)).encryptor()
    bad = enc.update(os.urandom(32) + last) + enc.finalize()
    with pytest.raises(EncryptedDataInvalid):
        key.decrypt(bad, mechanism=M.AES_CBC_PAD, mechanism_param=iv)
    with pytest.raises(EncryptedDataInvalid):
        multipart(key.decrypt, bad, mechanism=M.AES_CBC_PAD, mechanism_param=iv)


@pytest.mark.parametrize("mech, iv_len", [(M.AES_CBC, 0), (M.AES_CBC, 8), (M.AES_CBC, 17),
                                          (M.AES_CBC_PAD, 15), (M.DES3_CBC, 16), (M.DES3_CBC_PAD, 7)],
                         ids=lambda v: v.name if isinstance(v, M) else str(v))
def test_cbc_iv_of_a_bad_length_is_refused(session: Session, differs: Differs, mech: M,
                                           iv_len: int) -> None:
    differs("softhsm", "Current Mechanisms, AES-CBC and DES3-CBC: the parameter is a block-sized IV, "
                       "any other is CKR_MECHANISM_PARAM_INVALID; SoftHSM2 answers "
                       "CKR_MECHANISM_INVALID (CKR_ARGUMENTS_BAD without one)")
    kt, n = (KeyType.AES, 16) if mech in (M.AES_CBC, M.AES_CBC_PAD) else (KeyType.DES3, 24)
    key = secret_key(session, kt, os.urandom(n))
    with pytest.raises(MechanismParamInvalid):
        key.encrypt(bytes(32), mechanism=mech, mechanism_param=os.urandom(iv_len) or None)


@pytest.mark.parametrize("counter_bits", (128, 64, 32))
def test_aes_ctr_matches_cryptography(session: Session, counter_bits: int) -> None:
    value, data = os.urandom(16), os.urandom(100)
    block = os.urandom(12) + bytes(4)     # counter far from its own wrap
    key = secret_key(session, KeyType.AES, value)
    enc = Cipher(algorithms.AES(value), modes.CTR(block)).encryptor()
    want = enc.update(data) + enc.finalize()
    param = ctr_param(counter_bits, block)
    assert key.encrypt(data, mechanism=M.AES_CTR, mechanism_param=param) == want
    assert multipart(key.encrypt, data, mechanism=M.AES_CTR, mechanism_param=param) == want
    assert key.decrypt(want, mechanism=M.AES_CTR, mechanism_param=param) == data
    assert multipart(key.decrypt, want, mechanism=M.AES_CTR, mechanism_param=param) == data


def _gcm_param(vec: dict[str, Any], tag_bits: int = 128) -> Any:
    iv, aad = h(vec["iv"]), h(vec["aad"])
    if len(iv) <= 12:
        return GCMParams(iv, aad or None, tag_bits)
    return RawGcm(iv, aad, tag_bits)


@pytest.mark.parametrize("vec", vectors("gcm.json"), ids=lambda v: f"case{v['case']}")
def test_aes_gcm_known_answers(session: Session, vec: dict[str, Any]) -> None:
    key = secret_key(session, KeyType.AES, h(vec["key"]))
    param = _gcm_param(vec)
    raw = param.raw if isinstance(param, RawGcm) else param
    pt, out = h(vec["plaintext"]), h(vec["ciphertext"]) + h(vec["tag"])
    assert key.encrypt(pt, mechanism=M.AES_GCM, mechanism_param=raw) == out
    assert key.decrypt(out, mechanism=M.AES_GCM, mechanism_param=raw) == pt
    assert multipart(key.encrypt, pt, mechanism=M.AES_GCM, mechanism_param=raw) == out
    assert multipart(key.decrypt, out, mechanism=M.AES_GCM, mechanism_param=raw) == pt


@pytest.mark.parametrize("tag_bits", (128, 120, 96, 64, 32))
def test_aes_gcm_tag_lengths_and_aad(session: Session, tag_bits: int) -> None:
    value, iv, aad, data = os.urandom(32), os.urandom(12), os.urandom(20), os.urandom(50)
    key = secret_key(session, KeyType.AES, value)
    full = AESGCM(value).encrypt(iv, data, aad)
    want = full[:len(data)] + full[len(data):len(data) + tag_bits // 8]
    param = GCMParams(iv, aad, tag_bits)
    out = key.encrypt(data, mechanism=M.AES_GCM, mechanism_param=param)
    assert out == want
    assert key.decrypt(out, mechanism=M.AES_GCM, mechanism_param=param) == data
    assert multipart(key.decrypt, out, mechanism=M.AES_GCM, mechanism_param=param) == data


@pytest.mark.parametrize("tamper", ("tag", "ciphertext", "aad"))
def test_aes_gcm_authentication_failure(session: Session, differs: Differs, tamper: str) -> None:
    differs("softhsm", "Current Mechanisms 'AES-GCM' / Base §5.9 C_Decrypt: a tag that "
                       "does not verify is CKR_ENCRYPTED_DATA_INVALID; SoftHSM2 answers "
                       "CKR_GENERAL_ERROR")
    key = secret_key(session, KeyType.AES, os.urandom(16))
    iv = os.urandom(12)
    out = key.encrypt(b"attack at dawn", mechanism=M.AES_GCM, mechanism_param=GCMParams(iv, b"header"))
    aad = b"header"
    if tamper == "tag":
        out = out[:-1] + bytes([out[-1] ^ 1])
    elif tamper == "ciphertext":
        out = bytes([out[0] ^ 1]) + out[1:]
    else:
        aad = b"headeR"
    param = GCMParams(iv, aad)
    with pytest.raises(EncryptedDataInvalid):
        key.decrypt(out, mechanism=M.AES_GCM, mechanism_param=param)
    with pytest.raises(EncryptedDataInvalid):
        multipart(key.decrypt, out, mechanism=M.AES_GCM, mechanism_param=param)


def test_aes_gcm_input_shorter_than_the_tag(session: Session, differs: Differs) -> None:
    differs("softhsm", "Base §5.9 C_Decrypt: input that cannot hold the tag is "
                       "CKR_ENCRYPTED_DATA_LEN_RANGE; SoftHSM2 answers CKR_GENERAL_ERROR")
    key = secret_key(session, KeyType.AES, os.urandom(16))
    with pytest.raises(EncryptedDataLenRange):
        key.decrypt(os.urandom(10), mechanism=M.AES_GCM, mechanism_param=GCMParams(os.urandom(12)))


@pytest.mark.parametrize("tag_bits", (129, 256))
def test_aes_gcm_tag_longer_than_the_block_is_refused(session: Session, differs: Differs,
                                                      tag_bits: int) -> None:
    differs("softhsm", "Current Mechanisms 'AES-GCM': ulTagBits above 128 is a bad mechanism "
                       "parameter, CKR_MECHANISM_PARAM_INVALID; SoftHSM2 answers CKR_ARGUMENTS_BAD")
    key = secret_key(session, KeyType.AES, os.urandom(16))
    with pytest.raises(MechanismParamInvalid):
        key.encrypt(b"data", mechanism=M.AES_GCM, mechanism_param=GCMParams(os.urandom(12), None, tag_bits))


@pytest.mark.parametrize("vec", vectors("cmac.json"), ids=lambda v: f"{len(h(v['key'])) * 8}-{v['mlen']}")
def test_aes_cmac_known_answers(session: Session, vec: dict[str, Any]) -> None:
    msg = h(json.loads((SYM / "cmac.json").read_text())["message"])[:vec["mlen"]]
    key = secret_key(session, KeyType.AES, h(vec["key"]))
    mac = h(vec["mac"])
    assert key.sign(msg, mechanism=M.AES_CMAC) == mac
    assert key.sign(chunks(msg), mechanism=M.AES_CMAC) == mac
    key._verify(msg, mac, mechanism=M.AES_CMAC)
    key._verify_generator(chunks(msg), mac, mechanism=M.AES_CMAC)


def test_aes_cmac_verify_errors(session: Session) -> None:
    key = secret_key(session, KeyType.AES, os.urandom(32))
    mac = key.sign(b"message", mechanism=M.AES_CMAC)
    with pytest.raises(SignatureInvalid):
        key._verify(b"messagf", mac, mechanism=M.AES_CMAC)
    with pytest.raises(SignatureLenRange):
        key._verify(b"message", mac[:8], mechanism=M.AES_CMAC)


@pytest.mark.parametrize("length", (4, 8, 16))
def test_aes_cmac_general_truncates(session: Session, differs: Differs, length: int) -> None:
    differs("softhsm", "hspkcs11 offers more: CKM_AES_CMAC_GENERAL (Current Mechanisms "
                       "'General-length AES-CMAC'); SoftHSM2 2.6 has CKM_AES_CMAC only")
    key = secret_key(session, KeyType.AES, os.urandom(16))
    full = key.sign(b"message", mechanism=M.AES_CMAC)
    mac = key.sign(b"message", mechanism=M.AES_CMAC_GENERAL, mechanism_param=ulong(length))
    assert mac == full[:length]
    key._verify(b"message", mac, mechanism=M.AES_CMAC_GENERAL, mechanism_param=ulong(length))
    with pytest.raises(SignatureInvalid):
        key._verify(b"messagf", mac, mechanism=M.AES_CMAC_GENERAL, mechanism_param=ulong(length))


def test_aes_with_a_generic_secret_is_refused(session: Session) -> None:
    key = secret_key(session, KeyType.GENERIC_SECRET, os.urandom(16))
    with pytest.raises(KeyTypeInconsistent):
        key.encrypt(bytes(16), mechanism=M.AES_ECB)


# --- DES3 -----------------------------------------------------------------------------------

def _odd_parity(value: bytes) -> bool:
    return all(bin(b).count("1") % 2 == 1 for b in value)


def test_des3_key_generation_sets_parity(session: Session) -> None:
    key = session.generate_key(KeyType.DES3, template=AES_FLAGS)
    value = key[A.VALUE]
    assert len(value) == 24
    assert _odd_parity(value)
    assert key[A.KEY_GEN_MECHANISM] == M.DES3_KEY_GEN


@pytest.mark.parametrize("vec", vectors("des3.json"), ids=lambda v: v["mech"])
def test_des3_known_answer(session: Session, vec: dict[str, Any]) -> None:
    key = secret_key(session, KeyType.DES3, h(vec["key"]))
    pt, ct = h(vec["plaintext"]), h(vec["ciphertext"])
    assert key.encrypt(pt, mechanism=M[vec["mech"]]) == ct
    assert key.decrypt(ct, mechanism=M[vec["mech"]]) == pt


@pytest.mark.parametrize("mech", (M.DES3_ECB, M.DES3_CBC, M.DES3_CBC_PAD), ids=lambda m: m.name)
def test_des3_modes_match_cryptography(session: Session, mech: M) -> None:
    value = bytes(b | 1 for b in os.urandom(24))
    key = secret_key(session, KeyType.DES3, value)
    iv = os.urandom(8) if mech != M.DES3_ECB else None
    data = os.urandom(45 if mech == M.DES3_CBC_PAD else 48)
    plain = data
    if mech == M.DES3_CBC_PAD:
        padder = padding.PKCS7(64).padder()
        plain = padder.update(data) + padder.finalize()
    enc = Cipher(TripleDES(value), modes.ECB() if iv is None else modes.CBC(iv)).encryptor()
    want = enc.update(plain) + enc.finalize()
    assert key.encrypt(data, mechanism=mech, mechanism_param=iv) == want
    assert multipart(key.encrypt, data, mechanism=mech, mechanism_param=iv) == want
    assert key.decrypt(want, mechanism=mech, mechanism_param=iv) == data
    assert multipart(key.decrypt, want, mechanism=mech, mechanism_param=iv) == data


def test_des3_errors(session: Session) -> None:
    key = secret_key(session, KeyType.DES3, os.urandom(24))
    with pytest.raises(DataLenRange):
        key.encrypt(os.urandom(12), mechanism=M.DES3_ECB)
    with pytest.raises(EncryptedDataLenRange):
        key.decrypt(os.urandom(12), mechanism=M.DES3_CBC_PAD, mechanism_param=os.urandom(8))

