"""C_WrapKey, C_UnwrapKey and C_DeriveKey through PKCS#11, against hspkcs11 and SoftHSM2.

Wrapping: AES_KEY_WRAP (RFC 3394), AES_KEY_WRAP_PAD (RFC 5649), AES_CBC_PAD, the unpadded
block modes, RSA_PKCS_OAEP and RSA_PKCS; secret keys everywhere, RSA and EC private keys
(PKCS#8, Base §5.14) where the mechanism can carry any length. Wrapped bytes are checked
against `cryptography` with the key-encryption key's known value; unwrapped keys are used,
and their CKA_LOCAL / ALWAYS_SENSITIVE / NEVER_EXTRACTABLE checked (Base §4.9/§4.10).
CKA_WRAP_WITH_TRUSTED, CKA_EXTRACTABLE, the usage attributes and CKA_ALLOWED_MECHANISMS
are enforced.

Derivation: AES/DES3 ECB_ENCRYPT_DATA and CBC_ENCRYPT_DATA, ECDH1 (two token keys agree,
and agree with `cryptography`), PKCS #3 Diffie-Hellman on RFC 7919 ffdhe2048.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives import hashes, padding as sympad
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import (aes_key_unwrap_with_padding, aes_key_wrap,
                                                    aes_key_wrap_with_padding)
from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption, PrivateFormat,
                                                          PublicFormat, load_der_private_key)
from pkcs11 import (DEFAULT, MGF, Attribute as A, KDF, KeyType, Mechanism as M, MechanismFlag as MF,
                    ObjectClass, Session, Token)
from pkcs11.exceptions import (KeyNotWrappable, KeySizeRange, KeyUnextractable, MechanismParamInvalid,
                               TemplateInconsistent, WrappedKeyInvalid, WrappedKeyLenRange)
from pkcs11.util.ec import encode_named_curve_parameters

from hspkcs11.consts import CKA, CKK, CKM, CKO, CKR

from conftest import SO_PIN, USER_PIN, Module
from rawp11 import Raw, ffi, template, ulong

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography < 43
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

Differs = Callable[[str, str], None]
VECTORS = Path(__file__).resolve().parent / "vectors" / "p11"




@pytest.fixture(scope="module")
def rsa_pair(logged_in: Session) -> tuple[Any, Any]:
    return logged_in.generate_keypair(
        KeyType.RSA, 2048, capabilities=MF.ENCRYPT | MF.DECRYPT | MF.SIGN | MF.VERIFY | MF.WRAP | MF.UNWRAP,
        private_template={A.EXTRACTABLE: True})


def kek(session: Session, value: bytes | None = None) -> Any:
    """An AES key-encryption key with a known value."""
    return session.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES, A.TOKEN: False,
                                  A.VALUE: value or os.urandom(32), A.WRAP: True, A.UNWRAP: True,
                                  A.ENCRYPT: True, A.DECRYPT: True})


def target(session: Session, key_type: KeyType = KeyType.AES, value: bytes | None = None,
           attrs: dict[Any, Any] | None = None) -> Any:
    """A secret key to wrap: extractable, sensitive, usable to encrypt (AES) or sign."""
    value = value or os.urandom(32)
    template = {A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: key_type, A.TOKEN: False,
                A.VALUE: value, A.EXTRACTABLE: True, A.SENSITIVE: True}
    template[A.ENCRYPT if key_type != KeyType.GENERIC_SECRET else A.SIGN] = True
    template.update(attrs or {})
    return session.create_object(template)


def unwrap_template(value_len: int | None = None) -> dict[Any, Any]:
    t: dict[Any, Any] = {A.SENSITIVE: False, A.EXTRACTABLE: True}
    if value_len is not None:
        t[A.VALUE_LEN] = value_len
    return t


UNAVAILABLE = (1 << 64) - 1     # CK_UNAVAILABLE_INFORMATION


def key_gen_mechanism(module: Module, key: Any) -> int:
    """CKA_KEY_GEN_MECHANISM read through C (python-pkcs11 cannot decode ~0)."""
    attr = ffi.new("CK_ATTRIBUTE[1]")
    value = ffi.new("CK_ULONG *")
    attr[0].type, attr[0].pValue, attr[0].ulValueLen = CKA.KEY_GEN_MECHANISM, value, ffi.sizeof("CK_ULONG")
    assert Raw(module.path).C_GetAttributeValue(key.session.handle, key.handle, attr, 1) == CKR.OK
    return value[0]


def assert_unwrapped_flags(key: Any, module: Module) -> None:
    """Base §4.9: a key that came in wrapped was not generated on the token, and was
    outside it, so it was neither always sensitive nor never extractable; with CKA_LOCAL
    false its CKA_KEY_GEN_MECHANISM is CK_UNAVAILABLE_INFORMATION (§4.7)."""
    assert key[A.LOCAL] is False
    assert key[A.ALWAYS_SENSITIVE] is False
    assert key[A.NEVER_EXTRACTABLE] is False
    assert key_gen_mechanism(module, key) == UNAVAILABLE


def zero_pad(value: bytes, block: int = 16) -> bytes:
    return value + bytes(-len(value) % block)


def pkcs7(data: bytes, block: int = 128) -> bytes:
    padder = sympad.PKCS7(block).padder()
    return padder.update(data) + padder.finalize()


def cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def ecb(key: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


# --- AES key wrap of secret keys -----------------------------------------------------------

# mechanism -> (parameter, what `cryptography` makes of (kek, value))
IV = bytes(range(16))
SECRET_WRAPS: dict[M, tuple[Any, Callable[[bytes, bytes], bytes]]] = {
    M.AES_KEY_WRAP: (None, aes_key_wrap),
    M.AES_KEY_WRAP_PAD: (None, aes_key_wrap_with_padding),
    M.AES_CBC_PAD: (IV, lambda k, v: cbc(k, IV, pkcs7(v))),
    M.AES_CBC: (IV, lambda k, v: cbc(k, IV, zero_pad(v))),
    M.AES_ECB: (None, lambda k, v: ecb(k, zero_pad(v))),
}
# the modes that zero-pad the key (Current Mechanisms AES-ECB/AES-CBC, on wrapping): the
# unwrap template must then say how long the key is
PADDED = (M.AES_CBC, M.AES_ECB)
SOFTHSM_LACKS = {M.AES_CBC_PAD: "AES_CBC_PAD", M.AES_ECB: "AES_ECB",
                 M.AES_CBC: "AES_CBC unwrap (and wraps whole blocks only)"}


@pytest.mark.parametrize("mech", SECRET_WRAPS, ids=lambda m: m.name)
@pytest.mark.parametrize("size", (16, 24, 32))
def test_wrap_and_unwrap_an_aes_key(module: Module, session: Session, differs: Differs, mech: M,
                                    size: int) -> None:
    if mech in SOFTHSM_LACKS:
        differs("softhsm", f"hspkcs11 offers more: Current Mechanisms table 1 lets {mech.name} "
                           f"wrap and unwrap; SoftHSM2 2.6 lacks {SOFTHSM_LACKS[mech]}")
    param, reference = SECRET_WRAPS[mech]
    kek_value, value = os.urandom(32), os.urandom(size)
    wrapping = kek(session, kek_value)
    key = target(session, value=value)
    wrapped = wrapping.wrap_key(key, mechanism=mech, mechanism_param=param)
    assert wrapped == reference(kek_value, value)
    back = wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=mech,
                               mechanism_param=param,
                               template=unwrap_template(size if mech in PADDED else None))
    assert back[A.VALUE] == value
    block = os.urandom(16)
    assert back.encrypt(block, mechanism=M.AES_ECB) == key.encrypt(block, mechanism=M.AES_ECB)
    assert_unwrapped_flags(back, module)


@pytest.mark.parametrize("mech", (M.AES_KEY_WRAP, M.AES_KEY_WRAP_PAD), ids=lambda m: m.name)
def test_an_unwrapped_key_knows_its_length(session: Session, differs: Differs, mech: M) -> None:
    differs("softhsm", "Current Mechanisms 'AES secret key objects': CKA_VALUE_LEN is the "
                       "key's length in bytes; SoftHSM2 leaves it 0 on keys it unwraps")
    wrapping = kek(session)
    wrapped = wrapping.wrap_key(target(session, value=os.urandom(24)), mechanism=mech)
    back = wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=mech,
                               template=unwrap_template())
    assert back[A.VALUE_LEN] == 24


def test_an_unwrap_template_may_give_value_len(session: Session, differs: Differs) -> None:
    differs("softhsm", "Current Mechanisms table 'AES Secret Key Object Attributes': "
                       "CKA_VALUE_LEN has footnotes 2,3 only, so C_UnwrapKey may be given it "
                       "(footnote 6 would forbid it); SoftHSM2 answers CKR_ATTRIBUTE_READ_ONLY")
    value = os.urandom(32)
    wrapping = kek(session)
    wrapped = wrapping.wrap_key(target(session, value=value), mechanism=M.AES_KEY_WRAP)
    back = wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=M.AES_KEY_WRAP,
                               template=unwrap_template(32))
    assert back[A.VALUE] == value


@pytest.mark.parametrize("mech", (M.AES_KEY_WRAP_PAD, M.AES_CBC_PAD), ids=lambda m: m.name)
def test_wrap_a_generic_secret_of_odd_length(session: Session, differs: Differs, mech: M) -> None:
    if mech == M.AES_CBC_PAD:
        differs("softhsm", "hspkcs11 offers more: AES_CBC_PAD wraps keys (Current Mechanisms "
                           "table 1); SoftHSM2 2.6 does not")
    else:
        differs("softhsm", "RFC 5649 (CKM_AES_KEY_WRAP_PAD, Current Mechanisms 'AES Key Wrap') pads by "
                           "itself and keeps the length; SoftHSM2 zero-pads the key to 8 bytes "
                           "first, so a 21-byte key comes back as 24 bytes")
    param, reference = SECRET_WRAPS[mech]
    kek_value, value = os.urandom(16), os.urandom(21)
    wrapping = kek(session, kek_value)
    wrapped = wrapping.wrap_key(target(session, KeyType.GENERIC_SECRET, value), mechanism=mech,
                                mechanism_param=param)
    assert wrapped == reference(kek_value, value)
    back = wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.GENERIC_SECRET, wrapped, mechanism=mech,
                               mechanism_param=param, template=unwrap_template())
    assert back[A.VALUE] == value


def test_aes_key_wrap_zero_pads_a_key_to_whole_blocks(session: Session, differs: Differs) -> None:
    differs("softhsm", "Current Mechanisms 'AES Key Wrap': CKM_AES_KEY_WRAP zero-pads a key that is not "
                       "a multiple of 8 bytes; SoftHSM2 refuses it (CKR_KEY_SIZE_RANGE)")
    kek_value, value = os.urandom(16), os.urandom(21)
    wrapping = kek(session, kek_value)
    wrapped = wrapping.wrap_key(target(session, KeyType.GENERIC_SECRET, value), mechanism=M.AES_KEY_WRAP)
    assert wrapped == aes_key_wrap(kek_value, value + bytes(3))
    back = wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.GENERIC_SECRET, wrapped,
                               mechanism=M.AES_KEY_WRAP,
                               template=unwrap_template(21))
    assert back[A.VALUE] == value


def test_wrap_and_unwrap_a_des3_key(module: Module, session: Session) -> None:
    kek_value = os.urandom(32)
    wrapping = kek(session, kek_value)
    key = session.generate_key(KeyType.DES3, template={A.EXTRACTABLE: True, A.ENCRYPT: True})
    wrapped = wrapping.wrap_key(key, mechanism=M.AES_KEY_WRAP)
    assert len(wrapped) == 32
    back = wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.DES3, wrapped, mechanism=M.AES_KEY_WRAP,
                               template={A.ENCRYPT: True})
    block = os.urandom(8)
    assert back.encrypt(block, mechanism=M.DES3_ECB) == key.encrypt(block, mechanism=M.DES3_ECB)
    assert_unwrapped_flags(back, module)


def test_unwrap_with_the_wrong_kek_or_a_damaged_blob(session: Session, differs: Differs) -> None:
    differs("softhsm", "Base §5.14 C_UnwrapKey: a blob that fails the RFC 3394 integrity check "
                       "is CKR_WRAPPED_KEY_INVALID; SoftHSM2 answers CKR_GENERAL_ERROR")
    wrapping = kek(session)
    wrapped = wrapping.wrap_key(target(session), mechanism=M.AES_KEY_WRAP)
    with pytest.raises(WrappedKeyInvalid):
        kek(session).unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=M.AES_KEY_WRAP)
    with pytest.raises(WrappedKeyInvalid):
        wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, bytes([wrapped[0] ^ 1]) + wrapped[1:],
                            mechanism=M.AES_KEY_WRAP)


@pytest.mark.parametrize("length", (7, 12, 41))
def test_unwrap_of_a_blob_of_impossible_length(session: Session, length: int) -> None:
    with pytest.raises(WrappedKeyLenRange):
        kek(session).unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, os.urandom(length),
                                mechanism=M.AES_KEY_WRAP)


# --- what may be wrapped ----------------------------------------------------------------------

def test_a_non_extractable_key_cannot_be_wrapped(session: Session) -> None:
    key = session.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES, A.TOKEN: False,
                                 A.VALUE: os.urandom(32), A.EXTRACTABLE: False})
    with pytest.raises(KeyUnextractable):
        kek(session).wrap_key(key, mechanism=M.AES_KEY_WRAP)


def raw_key(raw: Raw, h: int, *attrs: tuple[int, bytes]) -> int:
    """A session AES key made through C_CreateObject (python-pkcs11 refuses to call
    C_WrapKey/C_DeriveKey on a key whose attributes forbid it, and cannot encode
    CKA_ALLOWED_MECHANISMS)."""
    base = ((CKA.CLASS, ulong(CKO.SECRET_KEY)), (CKA.KEY_TYPE, ulong(CKK.AES)), (CKA.VALUE, os.urandom(16)),
            (CKA.EXTRACTABLE, b"\1"))
    arr, keep = template(*base, *attrs)
    out = ffi.new("CK_OBJECT_HANDLE *")
    assert raw.C_CreateObject(h, arr, len(base) + len(attrs), out) == CKR.OK
    return out[0]


def mechanism(mech: int, param: bytes = b"") -> tuple[Any, Any]:
    m = ffi.new("CK_MECHANISM *")
    buf = ffi.new("CK_BYTE[]", param) if param else ffi.NULL
    m.mechanism, m.pParameter, m.ulParameterLen = mech, buf, len(param)
    return m, buf


def test_a_key_without_the_usage_attribute_is_refused(module: Module, session: Session) -> None:
    """Base §5.1 CKR_KEY_FUNCTION_NOT_PERMITTED: the key's attributes forbid the use."""
    raw, h = Raw(module.path), session.handle
    # the defaults of these are token-specific (Base §4.2 table 10, footnote 9): say false
    key = raw_key(raw, h, *((cka, b"\0") for cka in (CKA.WRAP, CKA.UNWRAP, CKA.DERIVE, CKA.ENCRYPT)))
    other = raw_key(raw, h)
    kw, _ = mechanism(CKM.AES_KEY_WRAP)
    n = ffi.new("CK_ULONG *", 64)
    buf = ffi.new("CK_BYTE[]", 64)
    assert raw.C_WrapKey(h, kw, key, other, buf, n) == CKR.KEY_FUNCTION_NOT_PERMITTED
    blob = ffi.new("CK_BYTE[]", 24)
    arr, keep = template((CKA.CLASS, ulong(CKO.SECRET_KEY)), (CKA.KEY_TYPE, ulong(CKK.AES)))
    out = ffi.new("CK_OBJECT_HANDLE *")
    assert raw.C_UnwrapKey(h, kw, key, blob, 24, arr, 2, out) == CKR.KEY_FUNCTION_NOT_PERMITTED
    data = ffi.new("CK_KEY_DERIVATION_STRING_DATA *")
    block = ffi.new("CK_BYTE[]", 16)
    data.pData, data.ulLen = block, 16
    dm = ffi.new("CK_MECHANISM *")
    dm.mechanism, dm.pParameter, dm.ulParameterLen = CKM.AES_ECB_ENCRYPT_DATA, data, ffi.sizeof(data[0])
    assert raw.C_DeriveKey(h, dm, key, arr, 2, out) == CKR.KEY_FUNCTION_NOT_PERMITTED
    ecb, _ = mechanism(CKM.AES_ECB)
    assert raw.C_EncryptInit(h, ecb, key) == CKR.KEY_FUNCTION_NOT_PERMITTED


def test_allowed_mechanisms_are_enforced(module: Module, session: Session, differs: Differs) -> None:
    differs("softhsm", "Base §5.1: CKR_KEY_FUNCTION_NOT_PERMITTED is the answer when the key's "
                       "attributes (here CKA_ALLOWED_MECHANISMS) forbid a use, CKR_MECHANISM_INVALID "
                       "is for a mechanism the token cannot use; SoftHSM2 answers the latter")
    raw, h = Raw(module.path), session.handle
    allowed = ulong(CKM.AES_CBC) + ulong(CKM.AES_CBC_PAD)
    key = raw_key(raw, h, (CKA.ENCRYPT, b"\1"), (CKA.ALLOWED_MECHANISMS, allowed))
    cbc_mech, _iv = mechanism(CKM.AES_CBC, bytes(16))
    assert raw.C_EncryptInit(h, cbc_mech, key) == CKR.OK
    n = ffi.new("CK_ULONG *", 16)
    out = ffi.new("CK_BYTE[]", 16)
    assert raw.C_Encrypt(h, bytes(16), 16, out, n) == CKR.OK
    ecb, _ = mechanism(CKM.AES_ECB)
    assert raw.C_EncryptInit(h, ecb, key) == CKR.KEY_FUNCTION_NOT_PERMITTED


@pytest.fixture(scope="module")
def trusted_kek(module: Module) -> tuple[Token, str]:
    """A token whose SO made a CKA_TRUSTED wrapping key (only the SO may set CKA_TRUSTED,
    Base §4.2 table 10, footnote 10); its own token, since the SO cannot log in while this
    file's user is."""
    token = module.init_token()
    with token.open(so_pin=SO_PIN, rw=True) as so:
        so.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES, A.TOKEN: True,
                          A.PRIVATE: False, A.LABEL: "trusted", A.VALUE: os.urandom(32),
                          A.WRAP: True, A.TRUSTED: True})
        so.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES, A.TOKEN: True,
                          A.PRIVATE: False, A.LABEL: "untrusted", A.VALUE: os.urandom(32),
                          A.WRAP: True})
    return token, "trusted"


def test_wrap_with_trusted_needs_a_trusted_wrapping_key(trusted_kek: tuple[Token, str]) -> None:
    token, _ = trusted_kek
    with token.open(user_pin=USER_PIN, rw=True) as s:
        trusted = s.get_key(label="trusted", object_class=ObjectClass.SECRET_KEY)
        untrusted = s.get_key(label="untrusted", object_class=ObjectClass.SECRET_KEY)
        assert trusted[A.TRUSTED] is True
        guarded = target(s, attrs={A.WRAP_WITH_TRUSTED: True})
        with pytest.raises(KeyNotWrappable):
            untrusted.wrap_key(guarded, mechanism=M.AES_KEY_WRAP)
        assert len(trusted.wrap_key(guarded, mechanism=M.AES_KEY_WRAP)) == 40
        plain = target(s)
        assert len(untrusted.wrap_key(plain, mechanism=M.AES_KEY_WRAP)) == 40


# --- private keys (PKCS#8) ---------------------------------------------------------------------

PRIVATE_WRAPS = {M.AES_KEY_WRAP_PAD: None, M.AES_CBC_PAD: IV}
# python-pkcs11 puts every capability in an unwrap template; a private key has no
# CKA_ENCRYPT, CKA_VERIFY or CKA_WRAP (Base §4.9), so leave those out
PRIVATE_TEMPLATE = {A.SIGN: True, A.DECRYPT: True, A.SENSITIVE: True, A.ENCRYPT: DEFAULT,
                    A.VERIFY: DEFAULT, A.WRAP: DEFAULT}


@pytest.mark.parametrize("mech", PRIVATE_WRAPS, ids=lambda m: m.name)
def test_wrap_and_unwrap_an_rsa_private_key(module: Module, session: Session, differs: Differs,
                                            rsa_pair: tuple[Any, Any], mech: M) -> None:
    if mech == M.AES_CBC_PAD:
        differs("softhsm", "hspkcs11 offers more: AES_CBC_PAD wraps keys (Current Mechanisms "
                           "table 1); SoftHSM2 2.6 does not")
    pub, priv = rsa_pair
    kek_value = os.urandom(32)
    wrapping = kek(session, kek_value)
    wrapped = wrapping.wrap_key(priv, mechanism=mech, mechanism_param=PRIVATE_WRAPS[mech])
    back = wrapping.unwrap_key(ObjectClass.PRIVATE_KEY, KeyType.RSA, wrapped, mechanism=mech,
                               mechanism_param=PRIVATE_WRAPS[mech], template=PRIVATE_TEMPLATE)
    assert back[A.MODULUS] == pub[A.MODULUS]
    sig = back.sign(b"data", mechanism=M.SHA256_RSA_PKCS)
    assert pub.verify(b"data", sig, mechanism=M.SHA256_RSA_PKCS)
    assert back.decrypt(pub.encrypt(b"msg", mechanism=M.RSA_PKCS), mechanism=M.RSA_PKCS) == b"msg"
    assert_unwrapped_flags(back, module)


@pytest.mark.parametrize("mech", PRIVATE_WRAPS, ids=lambda m: m.name)
def test_wrap_and_unwrap_an_ec_private_key(module: Module, session: Session, differs: Differs,
                                           mech: M) -> None:
    if mech == M.AES_CBC_PAD:
        differs("softhsm", "hspkcs11 offers more: AES_CBC_PAD wraps keys (Current Mechanisms "
                           "table 1); SoftHSM2 2.6 does not")
    params = session.create_domain_parameters(
        KeyType.EC, {A.EC_PARAMS: encode_named_curve_parameters("1.2.840.10045.3.1.7")}, local=True)
    pub, priv = params.generate_keypair(capabilities=MF.SIGN | MF.VERIFY,
                                        private_template={A.EXTRACTABLE: True})
    kek_value = os.urandom(32)
    wrapping = kek(session, kek_value)
    wrapped = wrapping.wrap_key(priv, mechanism=mech, mechanism_param=PRIVATE_WRAPS[mech])
    back = wrapping.unwrap_key(ObjectClass.PRIVATE_KEY, KeyType.EC, wrapped, mechanism=mech,
                               mechanism_param=PRIVATE_WRAPS[mech], template=PRIVATE_TEMPLATE)
    assert back[A.EC_PARAMS] == pub[A.EC_PARAMS]
    digest = os.urandom(32)
    sig = back.sign(digest, mechanism=M.ECDSA)
    assert pub.verify(digest, sig, mechanism=M.ECDSA)
    assert_unwrapped_flags(back, module)


def imported_rsa_key(session: Session) -> tuple[Any, rsa.RSAPrivateKey, bytes]:
    """An RSA private key made by `cryptography` whose PKCS#8 DER is not a multiple of 8
    bytes long, put on the token (extractable): its wrapped form then shows whether the
    module pads it before RFC 5649 does."""
    while True:
        private = rsa.generate_private_key(65537, 2048)
        der = private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        if len(der) % 8:
            break
    n = private.private_numbers()
    big = lambda v: v.to_bytes((v.bit_length() + 7) // 8, "big")  # noqa: E731
    key = session.create_object({
        A.CLASS: ObjectClass.PRIVATE_KEY, A.KEY_TYPE: KeyType.RSA, A.TOKEN: False, A.SIGN: True,
        A.EXTRACTABLE: True, A.MODULUS: big(n.public_numbers.n), A.PUBLIC_EXPONENT: big(n.public_numbers.e),
        A.PRIVATE_EXPONENT: big(n.d), A.PRIME_1: big(n.p), A.PRIME_2: big(n.q), A.EXPONENT_1: big(n.dmp1),
        A.EXPONENT_2: big(n.dmq1), A.COEFFICIENT: big(n.iqmp)})
    return key, private, der


def test_a_wrapped_private_key_is_exactly_its_pkcs8(session: Session, differs: Differs) -> None:
    differs("softhsm", "Base §5.14: a private key is wrapped as its PKCS#8 PrivateKeyInfo and "
                       "RFC 5649 pads it by itself; SoftHSM2 zero-pads the DER to 8 bytes "
                       "first, so the unwrapped plaintext has trailing zeros")
    key, private, der = imported_rsa_key(session)
    kek_value = os.urandom(32)
    wrapped = kek(session, kek_value).wrap_key(key, mechanism=M.AES_KEY_WRAP_PAD)
    plain = aes_key_unwrap_with_padding(kek_value, wrapped)
    assert len(plain) == len(der)
    assert load_der_private_key(plain, None).private_numbers() == private.private_numbers()


def test_a_pkcs8_wrapped_elsewhere_unwraps_on_the_token(module: Module, session: Session) -> None:
    key, private, der = imported_rsa_key(session)
    kek_value = os.urandom(32)
    wrapping = kek(session, kek_value)
    blob = aes_key_wrap_with_padding(kek_value, der)
    back = wrapping.unwrap_key(ObjectClass.PRIVATE_KEY, KeyType.RSA, blob, mechanism=M.AES_KEY_WRAP_PAD,
                               template=PRIVATE_TEMPLATE)
    sig = back.sign(b"data", mechanism=M.SHA256_RSA_PKCS)
    private.public_key().verify(sig, b"data", padding.PKCS1v15(), hashes.SHA256())
    assert_unwrapped_flags(back, module)


# --- RSA wrapping of secret keys ----------------------------------------------------------------

@pytest.mark.parametrize("mech", (M.RSA_PKCS_OAEP, M.RSA_PKCS), ids=lambda m: m.name)
def test_rsa_wraps_a_secret_key(module: Module, session: Session, rsa_pair: tuple[Any, Any],
                                mech: M) -> None:
    pub, priv = rsa_pair
    param = (M.SHA_1, MGF.SHA1, None) if mech == M.RSA_PKCS_OAEP else None
    value = os.urandom(32)
    key = target(session, value=value)
    wrapped = pub.wrap_key(key, mechanism=mech, mechanism_param=param)
    assert len(wrapped) == 256
    back = priv.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=mech,
                           mechanism_param=param, template=unwrap_template())
    assert back[A.VALUE] == value
    assert_unwrapped_flags(back, module)
    # a key `cryptography` wrapped under the token's public key unwraps on the token
    public = rsa.RSAPublicNumbers(int.from_bytes(pub[A.PUBLIC_EXPONENT], "big"),
                                  int.from_bytes(pub[A.MODULUS], "big")).public_key()
    pad = (padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)
           if mech == M.RSA_PKCS_OAEP else padding.PKCS1v15())
    other = os.urandom(16)
    back = priv.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, public.encrypt(other, pad), mechanism=mech,
                           mechanism_param=param, template=unwrap_template())
    assert back[A.VALUE] == other


def test_rsa_cannot_wrap_a_key_longer_than_it_carries(session: Session, rsa_pair: tuple[Any, Any]) -> None:
    """OAEP with SHA-1 carries k - 42 = 214 bytes of a 2048-bit key: a longer secret is out of
    the range the wrapping mechanism handles (Base §5.14 C_WrapKey: CKR_KEY_SIZE_RANGE)."""
    key = target(session, KeyType.GENERIC_SECRET, os.urandom(215))
    with pytest.raises(KeySizeRange):
        rsa_pair[0].wrap_key(key, mechanism=M.RSA_PKCS_OAEP, mechanism_param=(M.SHA_1, MGF.SHA1, None))
    assert len(rsa_pair[0].wrap_key(target(session, KeyType.GENERIC_SECRET, os.urandom(214)),
                                    mechanism=M.RSA_PKCS_OAEP,
                                    mechanism_param=(M.SHA_1, MGF.SHA1, None))) == 256


def test_rsa_oaep_wrap_with_sha256_and_a_label(session: Session, differs: Differs,
                                                rsa_pair: tuple[Any, Any]) -> None:
    differs("softhsm", "Current Mechanisms 'PKCS #1 RSA OAEP': with SHA-256 and a label; SoftHSM2 2.6 "
                       "takes SHA-1 without label only")
    pub, priv = rsa_pair
    param = (M.SHA256, MGF.SHA256, b"wrapping label")
    key = target(session)
    wrapped = pub.wrap_key(key, mechanism=M.RSA_PKCS_OAEP, mechanism_param=param)
    back = priv.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=M.RSA_PKCS_OAEP,
                           mechanism_param=param, template={A.ENCRYPT: True})
    block = os.urandom(16)
    assert back.encrypt(block, mechanism=M.AES_ECB) == key.encrypt(block, mechanism=M.AES_ECB)
    with pytest.raises(WrappedKeyInvalid):
        priv.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=M.RSA_PKCS_OAEP,
                        mechanism_param=(M.SHA256, MGF.SHA256, b"another label"))


# --- derivation by data encryption -----------------------------------------------------------

def derive_string(data: bytes) -> tuple[bytes, Any]:
    """CK_KEY_DERIVATION_STRING_DATA as raw parameter bytes (and the buffer it points at)."""
    buf = ffi.new("CK_BYTE[]", data)
    p = ffi.new("CK_KEY_DERIVATION_STRING_DATA *")
    p.pData, p.ulLen = buf, len(data)
    return bytes(ffi.buffer(p)), (buf, p)


def des_cbc_data(iv: bytes, data: bytes) -> tuple[bytes, Any]:
    buf = ffi.new("CK_BYTE[]", data)
    p = ffi.new("CK_DES_CBC_ENCRYPT_DATA_PARAMS *")
    ffi.memmove(p.iv, iv, 8)
    p.pData, p.length = buf, len(data)
    return bytes(ffi.buffer(p)), (buf, p)


DERIVED = {A.SENSITIVE: False, A.EXTRACTABLE: True, A.ENCRYPT: True}


def base_key(session: Session, key_type: KeyType, value: bytes) -> Any:
    return session.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: key_type, A.TOKEN: False,
                                  A.VALUE: value, A.DERIVE: True})


@pytest.mark.parametrize("length", (16, 32))
def test_aes_ecb_encrypt_data(module: Module, session: Session, length: int) -> None:
    value, data = os.urandom(32), os.urandom(length)
    derived = base_key(session, KeyType.AES, value).derive_key(
        KeyType.AES, length * 8, mechanism=M.AES_ECB_ENCRYPT_DATA, mechanism_param=data, template=DERIVED)
    assert derived[A.VALUE] == ecb(value, data)
    assert derived[A.LOCAL] is False
    assert key_gen_mechanism(module, derived) == UNAVAILABLE


def test_aes_cbc_encrypt_data(session: Session) -> None:
    value, iv, data = os.urandom(16), os.urandom(16), os.urandom(32)
    derived = base_key(session, KeyType.AES, value).derive_key(
        KeyType.AES, 256, mechanism=M.AES_CBC_ENCRYPT_DATA, mechanism_param=(iv, data), template=DERIVED)
    assert derived[A.VALUE] == cbc(value, iv, data)


def test_derived_key_may_be_shorter_than_the_data(session: Session) -> None:
    value, data = os.urandom(16), os.urandom(32)
    derived = base_key(session, KeyType.AES, value).derive_key(
        KeyType.AES, 128, mechanism=M.AES_ECB_ENCRYPT_DATA, mechanism_param=data, template=DERIVED)
    assert derived[A.VALUE] == ecb(value, data)[:16]


@pytest.mark.parametrize("mech, param", [
    (M.AES_ECB_ENCRYPT_DATA, bytes(15)), (M.AES_ECB_ENCRYPT_DATA, b""),
    (M.AES_CBC_ENCRYPT_DATA, (bytes(16), bytes(17)))], ids=("ecb-15", "ecb-0", "cbc-17"))
def test_encrypt_data_needs_whole_blocks(session: Session, mech: M, param: Any) -> None:
    base = base_key(session, KeyType.AES, os.urandom(16))
    with pytest.raises(MechanismParamInvalid):
        base.derive_key(KeyType.AES, 128, mechanism=mech, mechanism_param=param)


def test_encrypt_data_shorter_than_the_key_asked_for(session: Session, differs: Differs) -> None:
    differs("softhsm", "the data is the parameter, and too little of it for CKA_VALUE_LEN is "
                       "CKR_MECHANISM_PARAM_INVALID; SoftHSM2 answers CKR_FUNCTION_FAILED")
    base = base_key(session, KeyType.AES, os.urandom(16))
    with pytest.raises(MechanismParamInvalid):
        base.derive_key(KeyType.AES, 256, mechanism=M.AES_ECB_ENCRYPT_DATA, mechanism_param=bytes(16))


def no_parity(value: bytes) -> bytes:
    """A DES key without its parity bits, which DES ignores (SoftHSM2 sets them on derived
    DES3 keys, hspkcs11 keeps the encrypted data as it is; both are the same key)."""
    return bytes(b & 0xFE for b in value)


def test_des3_encrypt_data(session: Session) -> None:
    value, iv, data = bytes(b | 1 for b in os.urandom(24)), os.urandom(8), os.urandom(24)
    base = base_key(session, KeyType.DES3, value)
    raw, keep = derive_string(data)
    derived = base.derive_key(KeyType.DES3, 192, mechanism=M.DES3_ECB_ENCRYPT_DATA, mechanism_param=raw,
                              template={**DERIVED, A.VALUE_LEN: DEFAULT})
    enc = Cipher(TripleDES(value), modes.ECB()).encryptor()
    assert no_parity(derived[A.VALUE]) == no_parity(enc.update(data) + enc.finalize())
    raw, keep = des_cbc_data(iv, data)
    derived = base.derive_key(KeyType.DES3, 192, mechanism=M.DES3_CBC_ENCRYPT_DATA, mechanism_param=raw,
                              template={**DERIVED, A.VALUE_LEN: DEFAULT})
    enc = Cipher(TripleDES(value), modes.CBC(iv)).encryptor()
    assert no_parity(derived[A.VALUE]) == no_parity(enc.update(data) + enc.finalize())


def test_sensitivity_history_passes_to_derived_keys(session: Session) -> None:
    """Base §4.9: ALWAYS_SENSITIVE / NEVER_EXTRACTABLE of a derived key follow its base key."""
    kept = session.generate_key(KeyType.AES, 256, template={A.DERIVE: True, A.SENSITIVE: True,
                                                            A.EXTRACTABLE: False})
    assert kept[A.ALWAYS_SENSITIVE] is True and kept[A.NEVER_EXTRACTABLE] is True
    locked = {A.SENSITIVE: True, A.EXTRACTABLE: False}
    child = kept.derive_key(KeyType.AES, 128, mechanism=M.AES_ECB_ENCRYPT_DATA,
                            mechanism_param=os.urandom(16), template=locked)
    assert child[A.ALWAYS_SENSITIVE] is True and child[A.NEVER_EXTRACTABLE] is True
    loose = base_key(session, KeyType.AES, os.urandom(16))     # imported: never "always sensitive"
    child = loose.derive_key(KeyType.AES, 128, mechanism=M.AES_ECB_ENCRYPT_DATA,
                             mechanism_param=os.urandom(16), template=locked)
    assert child[A.ALWAYS_SENSITIVE] is False and child[A.NEVER_EXTRACTABLE] is False


# --- ECDH and DH ---------------------------------------------------------------------------------

CURVES = {"secp256r1": ("1.2.840.10045.3.1.7", ec.SECP256R1), "secp384r1": ("1.3.132.0.34", ec.SECP384R1),
          "secp521r1": ("1.3.132.0.35", ec.SECP521R1)}


def point(pub: Any) -> bytes:
    """CKA_EC_POINT without its DER OCTET STRING header: the raw uncompressed point."""
    value = pub[A.EC_POINT]
    n, i = value[1], 2
    if n & 0x80:
        i = 2 + (n & 0x7F)
    return value[i:]


@pytest.mark.parametrize("curve", CURVES)
def test_ecdh_between_two_token_keys_and_cryptography(session: Session, curve: str) -> None:
    oid, cls = CURVES[curve]
    params = session.create_domain_parameters(KeyType.EC, {A.EC_PARAMS: encode_named_curve_parameters(oid)},
                                              local=True)
    a_pub, a_priv = params.generate_keypair(capabilities=MF.DERIVE)
    b_pub, b_priv = params.generate_keypair(capabilities=MF.DERIVE)
    size = (cls().key_size + 7) // 8

    def derive(priv: Any, peer: bytes) -> bytes:
        key = priv.derive_key(KeyType.GENERIC_SECRET, size * 8, mechanism=M.ECDH1_DERIVE,
                              mechanism_param=(KDF.NULL, None, peer),
                              template={A.SENSITIVE: False, A.EXTRACTABLE: True})
        assert key[A.LOCAL] is False
        return key[A.VALUE]

    ab, ba = derive(a_priv, point(b_pub)), derive(b_priv, point(a_pub))
    assert ab == ba and len(ab) == size
    mine = ec.generate_private_key(cls())
    theirs = mine.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(cls(), point(a_pub)))
    peer = mine.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert derive(a_priv, peer) == theirs


def test_ecdh_accepts_the_peer_point_as_a_der_octet_string(session: Session) -> None:
    params = session.create_domain_parameters(
        KeyType.EC, {A.EC_PARAMS: encode_named_curve_parameters("1.3.132.0.34")}, local=True)
    a_pub, a_priv = params.generate_keypair(capabilities=MF.DERIVE)
    b_pub, _ = params.generate_keypair(capabilities=MF.DERIVE)

    def derive(peer: bytes) -> bytes:
        return a_priv.derive_key(KeyType.GENERIC_SECRET, 384, mechanism=M.ECDH1_DERIVE,
                                 mechanism_param=(KDF.NULL, None, peer),
                                 template={A.SENSITIVE: False, A.EXTRACTABLE: True})[A.VALUE]

    assert derive(b_pub[A.EC_POINT]) == derive(point(b_pub))


@pytest.mark.parametrize("kdf, hash_cls", [(KDF.SHA1, hashes.SHA1), (KDF.SHA256, hashes.SHA256),
                                           (KDF.SHA512, hashes.SHA512)], ids=("SHA1", "SHA256", "SHA512"))
def test_ecdh_with_the_x963_kdf(session: Session, differs: Differs, kdf: KDF, hash_cls: type) -> None:
    differs("softhsm", "hspkcs11 offers more: ECDH1 with the ANSI X9.63 KDFs (CKD_SHA*_KDF, "
                       "Current Mechanisms 'ECDH'); SoftHSM2 2.6 takes CKD_NULL only")
    params = session.create_domain_parameters(
        KeyType.EC, {A.EC_PARAMS: encode_named_curve_parameters("1.2.840.10045.3.1.7")}, local=True)
    a_pub, a_priv = params.generate_keypair(capabilities=MF.DERIVE)
    b_pub, _ = params.generate_keypair(capabilities=MF.DERIVE)
    template = {A.SENSITIVE: False, A.EXTRACTABLE: True}
    z = a_priv.derive_key(KeyType.GENERIC_SECRET, 256, mechanism=M.ECDH1_DERIVE,
                          mechanism_param=(KDF.NULL, None, point(b_pub)), template=template)[A.VALUE]
    got = a_priv.derive_key(KeyType.GENERIC_SECRET, 40 * 8, mechanism=M.ECDH1_DERIVE,
                            mechanism_param=(kdf, b"shared info", point(b_pub)), template=template)[A.VALUE]
    assert got == X963KDF(hash_cls(), 40, b"shared info").derive(z)


@pytest.mark.parametrize("peer", ("off-curve", "truncated"))
def test_ecdh_with_a_bad_peer_point(session: Session, differs: Differs, peer: str) -> None:
    differs("softhsm", "the peer's point is the mechanism parameter (CK_ECDH1_DERIVE_PARAMS."
                       "pPublicData): one not on the curve is CKR_MECHANISM_PARAM_INVALID; "
                       "SoftHSM2 answers CKR_GENERAL_ERROR")
    params = session.create_domain_parameters(
        KeyType.EC, {A.EC_PARAMS: encode_named_curve_parameters("1.2.840.10045.3.1.7")}, local=True)
    _, priv = params.generate_keypair(capabilities=MF.DERIVE)
    bad = b"\x04" + (bytes(31) + b"\x01") * 2 if peer == "off-curve" else b"\x04\x01\x02"
    with pytest.raises(MechanismParamInvalid):
        priv.derive_key(KeyType.GENERIC_SECRET, 256, mechanism=M.ECDH1_DERIVE,
                        mechanism_param=(KDF.NULL, None, bad))


def test_ecdh_null_kdf_cannot_make_a_longer_key(session: Session, differs: Differs) -> None:
    differs("softhsm", "with CKD_NULL the key is the shared x coordinate, 32 bytes on P-256: a "
                       "longer CKA_VALUE_LEN contradicts the mechanism, "
                       "CKR_TEMPLATE_INCONSISTENT; SoftHSM2 answers CKR_FUNCTION_FAILED")
    params = session.create_domain_parameters(
        KeyType.EC, {A.EC_PARAMS: encode_named_curve_parameters("1.2.840.10045.3.1.7")}, local=True)
    _, a_priv = params.generate_keypair(capabilities=MF.DERIVE)
    b_pub, _ = params.generate_keypair(capabilities=MF.DERIVE)
    with pytest.raises(TemplateInconsistent):
        a_priv.derive_key(KeyType.GENERIC_SECRET, 384, mechanism=M.ECDH1_DERIVE,
                          mechanism_param=(KDF.NULL, None, point(b_pub)))


def test_ecdh_derives_an_aes_key_of_value_len(session: Session) -> None:
    params = session.create_domain_parameters(
        KeyType.EC, {A.EC_PARAMS: encode_named_curve_parameters("1.2.840.10045.3.1.7")}, local=True)
    a_pub, a_priv = params.generate_keypair(capabilities=MF.DERIVE)
    b_pub, b_priv = params.generate_keypair(capabilities=MF.DERIVE)
    k1 = a_priv.derive_key(KeyType.AES, 128, mechanism=M.ECDH1_DERIVE,
                           mechanism_param=(KDF.NULL, None, point(b_pub)), template={A.ENCRYPT: True})
    k2 = b_priv.derive_key(KeyType.AES, 128, mechanism=M.ECDH1_DERIVE,
                           mechanism_param=(KDF.NULL, None, point(a_pub)), template={A.ENCRYPT: True})
    assert k1[A.VALUE_LEN] == k2[A.VALUE_LEN] == 16
    block = os.urandom(16)
    assert k1.encrypt(block, mechanism=M.AES_ECB) == k2.encrypt(block, mechanism=M.AES_ECB)


FFDHE = json.loads((VECTORS / "ffdhe2048.json").read_text())


def test_dh_pkcs_derive(session: Session) -> None:
    p, g = int(FFDHE["p"], 16), FFDHE["g"]
    domain = session.create_domain_parameters(
        KeyType.DH, {A.PRIME: p.to_bytes(256, "big"), A.BASE: g.to_bytes(1, "big")}, local=True)
    a_pub, a_priv = domain.generate_keypair(capabilities=MF.DERIVE)
    b_pub, b_priv = domain.generate_keypair(capabilities=MF.DERIVE)
    ya, yb = (int.from_bytes(k[A.VALUE], "big") for k in (a_pub, b_pub))
    assert 2 <= ya <= p - 2 and 2 <= yb <= p - 2

    def derive(priv: Any, peer: int) -> bytes:
        return priv.derive_key(KeyType.GENERIC_SECRET, 2048, mechanism=M.DH_PKCS_DERIVE,
                               mechanism_param=peer.to_bytes(256, "big"),
                               template={A.SENSITIVE: False, A.EXTRACTABLE: True})[A.VALUE]

    ab, ba = derive(a_priv, yb), derive(b_priv, ya)
    assert ab == ba and len(ab) == 256
    # our own exponent x: g^x is the peer value, (y_a)^x is what the token must derive
    x = int.from_bytes(os.urandom(32), "big")
    assert derive(a_priv, pow(g, x, p)) == pow(ya, x, p).to_bytes(256, "big")


@pytest.mark.parametrize("peer", ("0", "1", "p-1", "p", "p+5"))
def test_dh_refuses_a_peer_value_outside_2_to_p_minus_2(session: Session, differs: Differs,
                                                         peer: str) -> None:
    differs("softhsm", "NIST SP 800-56A §5.6.2.3.1: a peer value outside [2, p-2] is refused; "
                       "it is the mechanism parameter, so CKR_MECHANISM_PARAM_INVALID. SoftHSM2 "
                       "answers CKR_GENERAL_ERROR, and accepts values above p")
    p = int(FFDHE["p"], 16)
    domain = session.create_domain_parameters(
        KeyType.DH, {A.PRIME: p.to_bytes(256, "big"), A.BASE: b"\x02"}, local=True)
    _, priv = domain.generate_keypair(capabilities=MF.DERIVE)
    y = {"0": 0, "1": 1, "p-1": p - 1, "p": p, "p+5": p + 5}[peer]
    with pytest.raises(MechanismParamInvalid):
        priv.derive_key(KeyType.GENERIC_SECRET, 2048, mechanism=M.DH_PKCS_DERIVE,
                        mechanism_param=y.to_bytes(max(1, (y.bit_length() + 7) // 8), "big"))
