"""The mechanisms SoftHSM2 2.6.1 offers that hspkcs11 once lacked, through PKCS#11 on both
modules: single DES (DES_KEY_GEN, DES_ECB, DES_CBC, DES_CBC_PAD, DES_{ECB,CBC}_ENCRYPT_DATA),
two-key DES (DES2_KEY_GEN; DES2 keys in the DES3 mechanisms), DES3_CMAC, and the domain
parameter generators DSA_PARAMETER_GEN and DH_PKCS_PARAMETER_GEN with the
CKO_DOMAIN_PARAMETERS objects they make (Base §4.10: attributes, find, copy, destroy).

Known answers: FIPS 81 (DES ECB/CBC) and SP 800-38B D.4/D.5 (TDEA CMAC), from
tests/vectors/sym/; everything else is checked against `cryptography` with the key's value.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import dh, dsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from pkcs11 import (DEFAULT, Attribute as A, DomainParameters, KeyType, Mechanism as M,
                    MechanismFlag as MF, ObjectClass, Session, Token)
from pkcs11.exceptions import (AttributeReadOnly, AttributeTypeInvalid, AttributeValueInvalid,
                               DataLenRange, KeyTypeInconsistent,
                               MechanismParamInvalid, SignatureInvalid, SignatureLenRange,
                               TemplateIncomplete)
from pkcs11.util.dh import encode_dh_domain_parameters
from pkcs11.util.dsa import encode_dsa_domain_parameters

from hspkcs11.consts import CKA, CKK, CKM, CKO, CKR

from rawp11 import Raw, ffi, template, ulong

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography < 43
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

pytestmark = pytest.mark.filterwarnings("ignore:Diffie-Hellman over finite fields")

Differs = Callable[[str, str], None]
SYM = Path(__file__).resolve().parent / "vectors" / "sym"
DES_VECTORS = json.loads((SYM / "des.json").read_text())["vectors"]
CMAC = json.loads((SYM / "des3_cmac.json").read_text())
DES, DES2, DES3 = KeyType(CKK.DES), KeyType.DES2, KeyType.DES3
DES_ECB, DES_CBC, DES_CBC_PAD = M(CKM.DES_ECB), M(CKM.DES_CBC), M(CKM.DES_CBC_PAD)
ALL_USES = {A.ENCRYPT: True, A.DECRYPT: True, A.SIGN: True, A.VERIFY: True, A.WRAP: True,
            A.UNWRAP: True, A.DERIVE: True}
READABLE = {A.EXTRACTABLE: True, A.SENSITIVE: False}
# SoftHSM2 2.6.1 here is built on OpenSSL 3, whose default provider has no single DES: it
# lists the DES mechanisms but refuses every single-DES cipher operation.
NO_SINGLE_DES = ("SoftHSM2 lists DES-ECB, DES-CBC, DES-CBC-PAD and DES-*-ENCRYPT-DATA, but "
                 "answers CKR_MECHANISM_INVALID to any single-DES operation (OpenSSL 3 keeps "
                 "single DES in its legacy provider)")


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def secret(session: Session, key_type: KeyType, value: bytes) -> Any:
    """A session secret key of a known value, usable for everything."""
    return session.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: key_type,
                                  A.VALUE: value, A.TOKEN: False, **ALL_USES, **READABLE})


def tdea(value: bytes) -> TripleDES:
    """SP 800-67 §3.1 keying options: DES k -> k k k, DES2 k1 k2 -> k1 k2 k1, DES3 as is."""
    return TripleDES({8: value * 3, 16: value + value[:8], 24: value}[len(value)])


def reference(value: bytes, iv: bytes | None, data: bytes, pad: bool = False) -> bytes:
    if pad:
        padder = padding.PKCS7(64).padder()
        data = padder.update(data) + padder.finalize()
    enc = Cipher(tdea(value), modes.CBC(iv) if iv else modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def odd_parity(value: bytes) -> bool:
    return all(bin(b).count("1") % 2 for b in value)


def no_parity(value: bytes) -> bytes:
    """Without the parity bits, which DES ignores (SoftHSM2 sets them on derived keys)."""
    return bytes(b & 0xFE for b in value)


def num(value: bytes) -> int:
    return int.from_bytes(value, "big")


# --- mechanism list ---------------------------------------------------------------------------

NEEDS = {CKM.DES_KEY_GEN: MF.GENERATE, CKM.DES2_KEY_GEN: MF.GENERATE,
         CKM.DES_ECB: MF.ENCRYPT | MF.DECRYPT, CKM.DES_CBC: MF.ENCRYPT | MF.DECRYPT,
         CKM.DES_CBC_PAD: MF.ENCRYPT | MF.DECRYPT, CKM.DES_ECB_ENCRYPT_DATA: MF.DERIVE,
         CKM.DES_CBC_ENCRYPT_DATA: MF.DERIVE, CKM.DES3_CMAC: MF.SIGN | MF.VERIFY,
         CKM.DSA_PARAMETER_GEN: MF.GENERATE, CKM.DH_PKCS_PARAMETER_GEN: MF.GENERATE}


def test_the_mechanisms_are_listed_with_their_functions(token: Token) -> None:
    listed = set(token.slot.get_mechanisms())
    for mech, flags in NEEDS.items():
        assert M(mech) in listed, CKM(mech).name
        info = token.slot.get_mechanism_info(M(mech))
        assert info.flags & flags == flags, CKM(mech).name
    for mech in (CKM.DES_ECB, CKM.DES_KEY_GEN, CKM.DES3_CMAC):   # sizes "not used" for DES
        info = token.slot.get_mechanism_info(M(mech))
        assert (info.min_key_length, info.max_key_length) == (0, 0)
    info = token.slot.get_mechanism_info(M.DH_PKCS_PARAMETER_GEN)
    assert (info.min_key_length, info.max_key_length) == (512, 10000)


# --- single DES -------------------------------------------------------------------------------

@pytest.mark.parametrize("vec", DES_VECTORS, ids=lambda v: v["mech"])
def test_des_fips81_known_answer(session: Session, differs: Differs, vec: dict[str, Any]) -> None:
    differs("softhsm", NO_SINGLE_DES)
    key = secret(session, DES, h(vec["key"]))
    mech, iv = M(CKM[vec["mech"]]), h(vec["iv"]) if vec["iv"] else None
    pt, ct = h(vec["plaintext"]), h(vec["ciphertext"])
    assert key.encrypt(pt, mechanism=mech, mechanism_param=iv) == ct
    assert key.decrypt(ct, mechanism=mech, mechanism_param=iv) == pt
    # multi-part, in pieces that are not whole blocks
    assert b"".join(key.encrypt([pt[:5], pt[5:19], pt[19:]], mechanism=mech, mechanism_param=iv)) == ct


@pytest.mark.parametrize("n", (0, 1, 7, 8, 9, 31))
def test_des_cbc_pad_matches_cryptography(session: Session, differs: Differs, n: int) -> None:
    differs("softhsm", NO_SINGLE_DES)
    value, iv, data = os.urandom(8), os.urandom(8), os.urandom(n)
    key = secret(session, DES, value)
    ct = key.encrypt(data, mechanism=DES_CBC_PAD, mechanism_param=iv)
    assert ct == reference(value, iv, data, pad=True)
    assert key.decrypt(ct, mechanism=DES_CBC_PAD, mechanism_param=iv) == data


@pytest.mark.parametrize("key_type, mech, length", (
    (DES, CKM.DES_KEY_GEN, 8), (DES2, CKM.DES2_KEY_GEN, 16)), ids=("DES", "DES2"))
def test_des_key_generation(session: Session, key_type: KeyType, mech: int, length: int) -> None:
    key = session.generate_key(key_type, length * 8, mechanism=M(mech),
                               capabilities=MF.ENCRYPT | MF.DECRYPT,
                               template={A.VALUE_LEN: DEFAULT, **READABLE})
    value = key[A.VALUE]
    assert len(value) == length and odd_parity(value)   # generation sets the parity bits
    assert (key[A.CLASS], key[A.KEY_TYPE]) == (ObjectClass.SECRET_KEY, key_type)
    assert key[A.LOCAL] and key[A.KEY_GEN_MECHANISM] == M(mech)
    other = session.generate_key(key_type, length * 8, mechanism=M(mech),
                                 capabilities=MF.ENCRYPT, template={A.VALUE_LEN: DEFAULT, **READABLE})
    assert other[A.VALUE] != value


def test_generated_des2_key_encrypts_as_k1_k2_k1(session: Session) -> None:
    key = session.generate_key(DES2, capabilities=MF.ENCRYPT, template=READABLE)
    block = os.urandom(16)
    assert key.encrypt(block, mechanism=M.DES3_ECB) == reference(key[A.VALUE], None, block)


def test_generated_des_key_encrypts(session: Session, differs: Differs) -> None:
    differs("softhsm", NO_SINGLE_DES)
    key = session.generate_key(DES, 64, mechanism=M(CKM.DES_KEY_GEN), capabilities=MF.ENCRYPT,
                               template={A.VALUE_LEN: DEFAULT, **READABLE})
    block = os.urandom(16)
    assert key.encrypt(block, mechanism=DES_ECB) == reference(key[A.VALUE], None, block)


def test_des_key_has_no_value_len(session: Session) -> None:
    key = secret(session, DES, os.urandom(8))
    with pytest.raises(AttributeTypeInvalid):
        key[A.VALUE_LEN]


def test_des_ecb_partial_block_is_a_length_error(session: Session, differs: Differs) -> None:
    differs("softhsm", NO_SINGLE_DES)
    key = secret(session, DES, os.urandom(8))
    with pytest.raises(DataLenRange):
        key.encrypt(bytes(7), mechanism=DES_ECB)


@pytest.mark.parametrize("iv", (bytes(7), bytes(16)), ids=("7", "16"))
def test_des_cbc_iv_of_the_wrong_length(session: Session, differs: Differs, iv: bytes) -> None:
    differs("softhsm", NO_SINGLE_DES)
    key = secret(session, DES, os.urandom(8))
    with pytest.raises(MechanismParamInvalid):
        key.encrypt(bytes(8), mechanism=DES_CBC, mechanism_param=iv)


@pytest.mark.parametrize("key_type, mech", (
    (DES, M.DES3_ECB), (DES, M.DES3_CMAC), (DES3, DES_ECB), (DES2, DES_CBC_PAD)),
    ids=("DES-in-DES3_ECB", "DES-in-DES3_CMAC", "DES3-in-DES_ECB", "DES2-in-DES_CBC_PAD"))
def test_des_and_des3_keys_are_not_interchangeable(session: Session, key_type: KeyType,
                                                   mech: M) -> None:
    key = secret(session, key_type, os.urandom({DES: 8, DES2: 16, DES3: 24}[key_type]))
    with pytest.raises(KeyTypeInconsistent):
        if mech == M.DES3_CMAC:
            key.sign(b"data", mechanism=mech)
        else:
            key.encrypt(bytes(8), mechanism=mech, mechanism_param=bytes(8) if mech == DES_CBC_PAD else None)


def des_string(data: bytes) -> tuple[bytes, Any]:
    """CK_KEY_DERIVATION_STRING_DATA as parameter bytes, and the buffers they point at."""
    buf = ffi.new("CK_BYTE[]", data)
    p = ffi.new("CK_KEY_DERIVATION_STRING_DATA *")
    p.pData, p.ulLen = buf, len(data)
    return bytes(ffi.buffer(p)), (buf, p)


def des_cbc_string(iv: bytes, data: bytes) -> tuple[bytes, Any]:
    buf = ffi.new("CK_BYTE[]", data)
    p = ffi.new("CK_DES_CBC_ENCRYPT_DATA_PARAMS *")
    ffi.memmove(p.iv, iv, 8)
    p.pData, p.length = buf, len(data)
    return bytes(ffi.buffer(p)), (buf, p)


def test_des_encrypt_data_derivation(session: Session, differs: Differs) -> None:
    differs("softhsm", NO_SINGLE_DES)
    value, iv, data = os.urandom(8), os.urandom(8), os.urandom(16)
    base = secret(session, DES, value)
    param, keep = des_string(data[:8])
    derived = base.derive_key(DES, 64, mechanism=M.DES_ECB_ENCRYPT_DATA, mechanism_param=param,
                              capabilities=MF.ENCRYPT, template={A.VALUE_LEN: DEFAULT, **READABLE})
    assert derived[A.KEY_TYPE] == DES
    assert no_parity(derived[A.VALUE]) == no_parity(reference(value, None, data[:8]))
    param, keep = des_cbc_string(iv, data)
    derived = base.derive_key(DES2, 128, mechanism=M.DES_CBC_ENCRYPT_DATA, mechanism_param=param,
                              capabilities=MF.ENCRYPT, template={A.VALUE_LEN: DEFAULT, **READABLE})
    assert no_parity(derived[A.VALUE]) == no_parity(reference(value, iv, data))


def test_wrap_and_unwrap_with_des(session: Session, differs: Differs) -> None:
    differs("softhsm", NO_SINGLE_DES)
    kek_value, iv = os.urandom(8), os.urandom(8)
    kek = secret(session, DES, kek_value)
    target = secret(session, KeyType.AES, os.urandom(16))
    wrapped = kek.wrap_key(target, mechanism=DES_CBC_PAD, mechanism_param=iv)
    assert wrapped == reference(kek_value, iv, target[A.VALUE], pad=True)
    back = kek.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=DES_CBC_PAD,
                          mechanism_param=iv, template={**READABLE, A.TOKEN: False})
    assert back[A.VALUE] == target[A.VALUE]
    assert kek.wrap_key(target, mechanism=DES_ECB) == reference(kek_value, None, target[A.VALUE])


# --- two-key DES ------------------------------------------------------------------------------

@pytest.mark.parametrize("mech", (M.DES3_ECB, M.DES3_CBC, M.DES3_CBC_PAD), ids=lambda m: m.name)
def test_des2_keys_work_in_the_des3_mechanisms(session: Session, mech: M) -> None:
    value, iv = os.urandom(16), os.urandom(8)
    pad = mech == M.DES3_CBC_PAD
    data = os.urandom(21 if pad else 24)
    key = secret(session, DES2, value)
    param = None if mech == M.DES3_ECB else iv
    ct = key.encrypt(data, mechanism=mech, mechanism_param=param)
    assert ct == reference(value, param, data, pad=pad)     # k1 k2 k1
    assert key.decrypt(ct, mechanism=mech, mechanism_param=param) == data


# --- DES3 CMAC (SP 800-38B) ---------------------------------------------------------------------

@pytest.mark.parametrize("vec", CMAC["vectors"], ids=lambda v: f"{v['key_type']}-{v['mlen']}")
def test_des3_cmac_sp800_38b(session: Session, vec: dict[str, Any]) -> None:
    key = secret(session, KeyType[vec["key_type"]], h(vec["key"]))
    msg, mac = h(CMAC["message"])[:vec["mlen"]], h(vec["mac"])
    assert key.sign(msg, mechanism=M.DES3_CMAC) == mac
    if msg:
        assert key.sign([msg[:3], msg[3:]], mechanism=M.DES3_CMAC) == mac
    key._verify(msg, mac, mechanism=M.DES3_CMAC)
    with pytest.raises(SignatureInvalid):
        key._verify(msg, bytes([mac[0] ^ 0x80]) + mac[1:], mechanism=M.DES3_CMAC)
    for bad in (mac[:4], mac + b"\x00"):
        with pytest.raises(SignatureLenRange):
            key._verify(msg, bad, mechanism=M.DES3_CMAC)


@pytest.mark.parametrize("length", (1, 4, 8))
def test_des3_cmac_general(session: Session, differs: Differs, length: int) -> None:
    differs("softhsm", "hspkcs11 offers more: CKM_DES3_CMAC_GENERAL (Current Mechanisms, "
                       "general-length DES3 CMAC), as it offers AES_CMAC_GENERAL; SoftHSM2 2.6.1 "
                       "has CKM_DES3_CMAC only")
    key = secret(session, DES3, os.urandom(24))
    full = key.sign(b"message", mechanism=M.DES3_CMAC)
    mac = key.sign(b"message", mechanism=M.DES3_CMAC_GENERAL, mechanism_param=ulong(length))
    assert mac == full[:length]
    key._verify(b"message", mac, mechanism=M.DES3_CMAC_GENERAL, mechanism_param=ulong(length))
    # A changed MAC, not a changed message: a 1-byte MAC of another message matches 1 time in 256.
    bad = bytes([mac[0] ^ 1]) + mac[1:]
    with pytest.raises(SignatureInvalid):
        key._verify(b"message", bad, mechanism=M.DES3_CMAC_GENERAL, mechanism_param=ulong(length))


# --- domain parameters ------------------------------------------------------------------------

def test_dsa_parameter_generation(session: Session) -> None:
    params = session.generate_domain_parameters(KeyType.DSA, 1024)
    assert isinstance(params, DomainParameters)
    assert (params[A.CLASS], params[A.KEY_TYPE]) == (ObjectClass.DOMAIN_PARAMETERS, KeyType.DSA)
    assert params[A.PRIME_BITS] == 1024 and params[A.LOCAL] and not params[A.TOKEN]
    p, q, g = (num(params[a]) for a in (A.PRIME, A.SUBPRIME, A.BASE))
    assert (p.bit_length(), q.bit_length()) == (1024, 160)
    assert (p - 1) % q == 0 and 1 < g < p and pow(g, q, p) == 1     # FIPS 186-4 §4.1
    dsa.DSAParameterNumbers(p, q, g).parameters()
    encode_dsa_domain_parameters(params)
    public, private = params.generate_keypair()
    assert (public[A.PRIME], private[A.SUBPRIME]) == (params[A.PRIME], params[A.SUBPRIME])
    sig = private.sign(b"parameters", mechanism=M.DSA_SHA256)
    assert public.verify(b"parameters", sig, mechanism=M.DSA_SHA256)
    y = num(public[A.VALUE])
    key = dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()
    key.verify(utils.encode_dss_signature(num(sig[:20]), num(sig[20:])), b"parameters",
               hashes.SHA256())


def test_dsa_key_pair_of_a_size_goes_through_parameter_generation(session: Session) -> None:
    public, private = session.generate_keypair(KeyType.DSA, 1024)   # PARAMETER_GEN, then the pair
    assert num(public[A.PRIME]).bit_length() == 1024
    assert public.verify(b"x", private.sign(b"x", mechanism=M.DSA_SHA1), mechanism=M.DSA_SHA1)


def test_dsa_parameter_sizes_outside_fips_186_4(session: Session, differs: Differs) -> None:
    differs("softhsm", "hspkcs11 makes the FIPS 186-4 sizes (L = 1024, 2048, 3072) and 4096, "
                       "which `cryptography` generates, and answers CKR_ATTRIBUTE_VALUE_INVALID "
                       "to others; SoftHSM2 also makes 512..1000-bit primes")
    with pytest.raises(AttributeValueInvalid):
        session.generate_domain_parameters(KeyType.DSA, 768)


def test_dh_parameter_generation(session: Session) -> None:
    params = session.generate_domain_parameters(KeyType.DH, 512)
    assert (params[A.CLASS], params[A.KEY_TYPE]) == (ObjectClass.DOMAIN_PARAMETERS, KeyType.DH)
    assert params[A.PRIME_BITS] == 512 and params[A.LOCAL]
    with pytest.raises(AttributeTypeInvalid):
        params[A.SUBPRIME]
    p, g = num(params[A.PRIME]), num(params[A.BASE])
    assert p.bit_length() == 512 and 1 < g < p - 1
    dh.DHParameterNumbers(p, g).parameters()     # cryptography's check: a safe prime
    encode_dh_domain_parameters(params)
    (a_pub, a_priv), (b_pub, b_priv) = (params.generate_keypair(capabilities=MF.DERIVE)
                                        for _ in range(2))

    def agree(priv: Any, peer: bytes) -> bytes:
        return priv.derive_key(KeyType.GENERIC_SECRET, 512, mechanism=M.DH_PKCS_DERIVE,
                               mechanism_param=peer, template=READABLE)[A.VALUE]

    shared = agree(a_priv, b_pub[A.VALUE])
    assert shared == agree(b_priv, a_pub[A.VALUE]) and len(shared) == 64
    # with an exponent of our own, x: g^x is the peer value, y_a^x what the token must derive
    x = num(os.urandom(32))
    assert agree(a_priv, pow(g, x, p).to_bytes(64, "big")) == \
        pow(num(a_pub[A.VALUE]), x, p).to_bytes(64, "big")


def test_dh_parameter_size_below_the_info(session: Session, differs: Differs) -> None:
    differs("softhsm", "a CKA_PRIME_BITS below the mechanism's 512 is a bad template value, "
                       "CKR_ATTRIBUTE_VALUE_INVALID; SoftHSM2 answers CKR_GENERAL_ERROR")
    with pytest.raises(AttributeValueInvalid):
        session.generate_domain_parameters(KeyType.DH, 256)


@pytest.mark.parametrize("mech", (CKM.DSA_PARAMETER_GEN, CKM.DH_PKCS_PARAMETER_GEN),
                         ids=lambda m: CKM(m).name)
def test_parameter_generation_template_errors(module: Any, session: Session, mech: int) -> None:
    raw, h_ = Raw(module.path), session.handle
    m = ffi.new("CK_MECHANISM *")
    m.mechanism = mech
    handle = ffi.new("CK_OBJECT_HANDLE *")
    cases = (((CKA.CLASS, ulong(CKO.DOMAIN_PARAMETERS)),), CKR.TEMPLATE_INCOMPLETE), \
        (((CKA.CLASS, ulong(CKO.SECRET_KEY)), (CKA.PRIME_BITS, ulong(1024))), CKR.TEMPLATE_INCONSISTENT), \
        (((CKA.KEY_TYPE, ulong(CKK.AES)), (CKA.PRIME_BITS, ulong(1024))), CKR.TEMPLATE_INCONSISTENT)
    for attrs, want in cases:
        arr, keep = template(*attrs)
        assert raw.C_GenerateKey(h_, m, arr, len(attrs), handle) == want, attrs


def test_domain_parameter_objects(session: Session) -> None:
    label = f"dp-{os.urandom(4).hex()}"
    params = session.generate_domain_parameters(KeyType.DSA, 1024, store=True,
                                                template={A.LABEL: label})
    assert params[A.TOKEN] and params[A.LABEL] == label
    with pytest.raises(AttributeTypeInvalid):
        params[A.VALUE]
    with pytest.raises(AttributeTypeInvalid):
        params[A.KEY_GEN_MECHANISM]           # a key attribute: not of this class
    found = list(session.get_objects({A.CLASS: ObjectClass.DOMAIN_PARAMETERS,
                                      A.KEY_TYPE: KeyType.DSA, A.LABEL: label}))
    assert [o.handle for o in found] == [params.handle]
    copy = params.copy({A.LABEL: label + "-copy", A.TOKEN: False})
    assert copy.handle != params.handle
    assert (copy[A.PRIME], copy[A.SUBPRIME], copy[A.BASE], copy[A.PRIME_BITS]) == \
        (params[A.PRIME], params[A.SUBPRIME], params[A.BASE], 1024)
    assert copy[A.LABEL] == label + "-copy" and not copy[A.TOKEN]
    params[A.LABEL] = label + "-renamed"
    assert params[A.LABEL] == label + "-renamed"
    with pytest.raises(AttributeReadOnly):
        params[A.PRIME_BITS] = 2048
    params.destroy()
    copy.destroy()
    assert list(session.get_objects({A.CLASS: ObjectClass.DOMAIN_PARAMETERS,
                                     A.LABEL: label + "-renamed"})) == []


def test_create_domain_parameters(session: Session) -> None:
    made = session.generate_domain_parameters(KeyType.DH, 512)
    values = {A.PRIME: made[A.PRIME], A.BASE: made[A.BASE]}
    created = session.create_domain_parameters(KeyType.DH, values, local=False)
    assert created[A.PRIME_BITS] == 512               # footnote 2: the token computes it
    assert not created[A.LOCAL]
    with pytest.raises(AttributeReadOnly):
        session.create_domain_parameters(KeyType.DH, {**values, A.PRIME_BITS: 512}, local=False)
    with pytest.raises(TemplateIncomplete):
        session.create_domain_parameters(KeyType.DH, {A.PRIME: made[A.PRIME]}, local=False)


@pytest.mark.parametrize("init", ("C_SignInit", "C_EncryptInit"))
def test_domain_parameters_are_not_keys(module: Any, session: Session, differs: Differs,
                                        init: str) -> None:
    differs("softhsm", "a handle of an object that is not a key is CKR_KEY_HANDLE_INVALID "
                       "(Base §5.1, CKR_KEY_HANDLE_INVALID); SoftHSM2 answers "
                       "CKR_KEY_FUNCTION_NOT_PERMITTED")
    params = session.generate_domain_parameters(KeyType.DSA, 1024)
    m = ffi.new("CK_MECHANISM *")
    m.mechanism = CKM.DSA_SHA1 if init == "C_SignInit" else CKM.AES_ECB
    assert getattr(Raw(module.path), init)(session.handle, m, params.handle) == CKR.KEY_HANDLE_INVALID

