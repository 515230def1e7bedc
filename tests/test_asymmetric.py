"""Asymmetric mechanisms through PKCS#11, against hspkcs11 and SoftHSM2 alike: RSA (PKCS#1
v1.5, OAEP, PSS, X.509 raw, hash-and-sign), EC (ECDSA on P-256/384/521 and secp256k1),
EdDSA (Ed25519, Ed448) and DSA.

Each signature the token makes is verified by `cryptography` with the public key read back
from the token (CKA_MODULUS/CKA_PUBLIC_EXPONENT, CKA_EC_POINT, CKA_VALUE...), and each
ciphertext `cryptography` makes is decrypted by the token. The 2048-bit RSA pair is made
once per module.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from pkcs11 import MGF, Attribute as A, KeyType, Mechanism as M, MechanismFlag as MF, Session
from pkcs11.exceptions import (DataLenRange, EncryptedDataInvalid, EncryptedDataLenRange,
                               KeyIndigestible, KeyTypeInconsistent, MechanismParamInvalid,
                               SignatureInvalid, SignatureLenRange)
from pkcs11.util.ec import encode_named_curve_parameters

from hspkcs11.consts import CKA, CKM, CKR

from conftest import Module
from rawp11 import Raw, ffi, template

Differs = Callable[[str, str], None]
VECTORS = Path(__file__).resolve().parent / "vectors" / "p11"
ALL = MF.ENCRYPT | MF.DECRYPT | MF.SIGN | MF.VERIFY | MF.WRAP | MF.UNWRAP




# --- reading public keys back from the token ------------------------------------------------

def der_octets(value: bytes) -> bytes:
    """The content of a DER OCTET STRING (CKA_EC_POINT), or `value` if it is not one."""
    if len(value) > 2 and value[0] == 0x04:
        n, i = value[1], 2
        if n & 0x80:
            i = 2 + (n & 0x7F)
            n = int.from_bytes(value[2:i], "big")
        if i + n == len(value):
            return value[i:]
    return value


def rsa_public(pub: Any) -> rsa.RSAPublicKey:
    n = int.from_bytes(pub[A.MODULUS], "big")
    e = int.from_bytes(pub[A.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


def dss(signature: bytes) -> bytes:
    """PKCS#11's r || s (two equal halves) as the DER SEQUENCE `cryptography` verifies."""
    half = len(signature) // 2
    return encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                int.from_bytes(signature[half:], "big"))


# --- RSA ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rsa_pair(logged_in: Session) -> tuple[Any, Any]:
    return logged_in.generate_keypair(KeyType.RSA, 2048, capabilities=ALL)


HASHES = {M.SHA_1: hashes.SHA1, M.SHA224: hashes.SHA224, M.SHA256: hashes.SHA256,
          M.SHA384: hashes.SHA384, M.SHA512: hashes.SHA512}
MGFS = {M.SHA_1: MGF.SHA1, M.SHA224: MGF.SHA224, M.SHA256: MGF.SHA256, M.SHA384: MGF.SHA384,
        M.SHA512: MGF.SHA512}
HASH_AND_SIGN = {M.SHA1_RSA_PKCS: M.SHA_1, M.SHA224_RSA_PKCS: M.SHA224, M.SHA256_RSA_PKCS: M.SHA256,
                 M.SHA384_RSA_PKCS: M.SHA384, M.SHA512_RSA_PKCS: M.SHA512}
HASH_AND_PSS = {M.SHA1_RSA_PKCS_PSS: M.SHA_1, M.SHA224_RSA_PKCS_PSS: M.SHA224,
                M.SHA256_RSA_PKCS_PSS: M.SHA256, M.SHA384_RSA_PKCS_PSS: M.SHA384,
                M.SHA512_RSA_PKCS_PSS: M.SHA512}


@pytest.mark.parametrize("bits", (1024, 4096))
def test_rsa_key_pair_generation(session: Session, bits: int) -> None:
    pub, priv = session.generate_keypair(KeyType.RSA, bits, capabilities=ALL)
    assert pub[A.MODULUS_BITS] == bits
    assert len(pub[A.MODULUS]) == bits // 8
    assert pub[A.PUBLIC_EXPONENT].lstrip(b"\0") == b"\x01\x00\x01"
    assert priv[A.LOCAL] is True and pub[A.LOCAL] is True
    assert priv[A.KEY_GEN_MECHANISM] == M.RSA_PKCS_KEY_PAIR_GEN
    assert priv[A.MODULUS] == pub[A.MODULUS]
    data = os.urandom(32)
    rsa_public(pub).verify(priv.sign(data, mechanism=M.SHA256_RSA_PKCS), data, padding.PKCS1v15(),
                           hashes.SHA256())


def test_rsa_pkcs_encryption_both_ways(rsa_pair: tuple[Any, Any]) -> None:
    pub, priv = rsa_pair
    data = os.urandom(100)
    ct = pub.encrypt(data, mechanism=M.RSA_PKCS)
    assert len(ct) == 256
    assert priv.decrypt(ct, mechanism=M.RSA_PKCS) == data
    theirs = rsa_public(pub).encrypt(data, padding.PKCS1v15())
    assert priv.decrypt(theirs, mechanism=M.RSA_PKCS) == data
    assert pub.encrypt(data, mechanism=M.RSA_PKCS) != ct      # random padding


def test_rsa_pkcs_carries_k_minus_11_bytes(rsa_pair: tuple[Any, Any]) -> None:
    pub, priv = rsa_pair
    assert priv.decrypt(pub.encrypt(bytes(245), mechanism=M.RSA_PKCS), mechanism=M.RSA_PKCS) == bytes(245)


@pytest.mark.parametrize("mech, limit", [(M.RSA_PKCS, 245), (M.RSA_PKCS_OAEP, 256 - 2 * 20 - 2)],
                         ids=("PKCS", "OAEP"))
def test_rsa_encryption_of_too_much_data(differs: Differs, rsa_pair: tuple[Any, Any], mech: M,
                                         limit: int) -> None:
    differs("softhsm", "Current Mechanisms 'PKCS #1 v1.5' and 'OAEP': more than k-11 (k-2hLen-2) bytes is "
                       "CKR_DATA_LEN_RANGE; SoftHSM2 answers CKR_GENERAL_ERROR")
    pub, priv = rsa_pair
    assert priv.decrypt(pub.encrypt(bytes(limit), mechanism=mech), mechanism=mech) == bytes(limit)
    with pytest.raises(DataLenRange):
        pub.encrypt(bytes(limit + 1), mechanism=mech)


@pytest.mark.parametrize("mech", (M.RSA_PKCS, M.RSA_X_509, M.RSA_PKCS_OAEP), ids=lambda m: m.name)
def test_rsa_decrypt_of_a_ciphertext_not_k_bytes_long(differs: Differs, rsa_pair: tuple[Any, Any],
                                                      mech: M) -> None:
    differs("softhsm", "Base §5.9 C_Decrypt / Current Mechanisms 'RSA': the ciphertext is k bytes, "
                       "else CKR_ENCRYPTED_DATA_LEN_RANGE; SoftHSM2 answers CKR_GENERAL_ERROR")
    with pytest.raises(EncryptedDataLenRange):
        rsa_pair[1].decrypt(os.urandom(255), mechanism=mech)


def test_rsa_pkcs_decrypt_of_bad_padding(differs: Differs, rsa_pair: tuple[Any, Any]) -> None:
    differs("softhsm", "Base §5.9 C_Decrypt: a ciphertext that is not PKCS#1 v1.5 padding is "
                       "CKR_ENCRYPTED_DATA_INVALID; SoftHSM2 answers CKR_GENERAL_ERROR")
    pub, priv = rsa_pair
    bogus = pub.encrypt(b"\x01" * 256, mechanism=M.RSA_X_509)   # m = 0x0101..: no 00 02 header
    with pytest.raises(EncryptedDataInvalid):
        priv.decrypt(bogus, mechanism=M.RSA_PKCS)


def test_rsa_pkcs_signature_over_a_digest_info(rsa_pair: tuple[Any, Any]) -> None:
    pub, priv = rsa_pair
    data = b"message to sign"
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(data).digest()
    sig = priv.sign(digest_info, mechanism=M.RSA_PKCS)
    rsa_public(pub).verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    assert pub.verify(digest_info, sig, mechanism=M.RSA_PKCS)
    # any data up to k - 11 bytes may be signed; `cryptography` recovers it
    sig = priv.sign(b"raw bytes", mechanism=M.RSA_PKCS)
    assert rsa_public(pub).recover_data_from_signature(sig, padding.PKCS1v15(), None) == b"raw bytes"


@pytest.mark.parametrize("mech", HASH_AND_SIGN, ids=lambda m: m.name)
def test_rsa_hash_and_sign_pkcs1(rsa_pair: tuple[Any, Any], mech: M) -> None:
    pub, priv = rsa_pair
    data = os.urandom(500)
    sig = priv.sign(data, mechanism=mech)
    assert priv.sign([data[:100], data[100:]], mechanism=mech) == sig    # deterministic
    rsa_public(pub).verify(sig, data, padding.PKCS1v15(), HASHES[HASH_AND_SIGN[mech]]())
    pub._verify(data, sig, mechanism=mech)
    pub._verify_generator([data[:7], data[7:]], sig, mechanism=mech)
    with pytest.raises(SignatureInvalid):
        pub._verify(data + b"!", sig, mechanism=mech)
    with pytest.raises(SignatureLenRange):
        pub._verify(data, sig[:-1], mechanism=mech)


@pytest.mark.parametrize("mech", HASH_AND_PSS, ids=lambda m: m.name)
def test_rsa_hash_and_sign_pss(rsa_pair: tuple[Any, Any], mech: M) -> None:
    pub, priv = rsa_pair
    h = HASH_AND_PSS[mech]
    salt = HASHES[h].digest_size
    param = (h, MGFS[h], salt)
    data = os.urandom(300)
    sig = priv.sign(data, mechanism=mech, mechanism_param=param)
    rsa_public(pub).verify(sig, data, padding.PSS(padding.MGF1(HASHES[h]()), salt), HASHES[h]())
    sig2 = priv.sign([data[:10], data[10:]], mechanism=mech, mechanism_param=param)
    assert sig2 != sig                                              # random salt
    pub._verify(data, sig2, mechanism=mech, mechanism_param=param)
    with pytest.raises(SignatureInvalid):
        pub._verify(data[1:], sig, mechanism=mech, mechanism_param=param)


@pytest.mark.parametrize("salt", (0, 20, 32))
def test_rsa_pss_over_a_hash(rsa_pair: tuple[Any, Any], salt: int) -> None:
    pub, priv = rsa_pair
    digest = hashlib.sha256(b"data").digest()
    param = (M.SHA256, MGF.SHA256, salt)
    sig = priv.sign(digest, mechanism=M.RSA_PKCS_PSS, mechanism_param=param)
    rsa_public(pub).verify(sig, digest, padding.PSS(padding.MGF1(hashes.SHA256()), salt),
                           Prehashed(hashes.SHA256()))
    pub._verify(digest, sig, mechanism=M.RSA_PKCS_PSS, mechanism_param=param)
    with pytest.raises(SignatureInvalid):
        pub._verify(hashlib.sha256(b"other").digest(), sig, mechanism=M.RSA_PKCS_PSS, mechanism_param=param)


@pytest.mark.parametrize("case", ("hash-mismatch", "salt-too-long", "raw-not-a-hash"))
def test_rsa_pss_bad_parameters(differs: Differs, rsa_pair: tuple[Any, Any], case: str) -> None:
    differs("softhsm", "Current Mechanisms 'PKCS #1 RSA PSS': hashAlg must be the mechanism's "
                       "hash and the salt must fit (else CKR_MECHANISM_PARAM_INVALID), the raw "
                       "mechanism signs a hash of hashAlg's length (else CKR_DATA_LEN_RANGE); "
                       "SoftHSM2 answers CKR_ARGUMENTS_BAD or CKR_GENERAL_ERROR")
    priv = rsa_pair[1]
    if case == "hash-mismatch":
        with pytest.raises(MechanismParamInvalid):
            priv.sign(b"data", mechanism=M.SHA256_RSA_PKCS_PSS, mechanism_param=(M.SHA_1, MGF.SHA1, 20))
    elif case == "salt-too-long":          # emLen = 256: at most 256 - 32 - 2 = 222 bytes of salt
        with pytest.raises(MechanismParamInvalid):
            priv.sign(bytes(32), mechanism=M.RSA_PKCS_PSS, mechanism_param=(M.SHA256, MGF.SHA256, 223))
    else:
        with pytest.raises(DataLenRange):
            priv.sign(b"not 32 bytes", mechanism=M.RSA_PKCS_PSS, mechanism_param=(M.SHA256, MGF.SHA256, 32))


@pytest.mark.parametrize("hash_mech", (M.SHA_1, M.SHA256), ids=lambda m: m.name)
@pytest.mark.parametrize("label", (None, b"a label"), ids=("no-label", "label"))
def test_rsa_oaep(differs: Differs, rsa_pair: tuple[Any, Any], hash_mech: M, label: bytes | None) -> None:
    if hash_mech != M.SHA_1 or label:
        differs("softhsm", "Current Mechanisms 'PKCS #1 RSA OAEP' takes any of the SHA hashes and a "
                           "label (CKZ_DATA_SPECIFIED); SoftHSM2 2.6 takes SHA-1 without label only")
    pub, priv = rsa_pair
    param = (hash_mech, MGFS[hash_mech], label)
    oaep = padding.OAEP(padding.MGF1(HASHES[hash_mech]()), HASHES[hash_mech](), label)
    data = os.urandom(32)
    theirs = rsa_public(pub).encrypt(data, oaep)
    assert priv.decrypt(theirs, mechanism=M.RSA_PKCS_OAEP, mechanism_param=param) == data
    ours = pub.encrypt(data, mechanism=M.RSA_PKCS_OAEP, mechanism_param=param)
    assert priv.decrypt(ours, mechanism=M.RSA_PKCS_OAEP, mechanism_param=param) == data


def test_rsa_oaep_with_the_wrong_label(differs: Differs, rsa_pair: tuple[Any, Any]) -> None:
    differs("softhsm", "Current Mechanisms 'PKCS #1 RSA OAEP': with a label; SoftHSM2 2.6 refuses "
                       "labels (CKR_ARGUMENTS_BAD)")
    pub, priv = rsa_pair
    ct = pub.encrypt(b"secret", mechanism=M.RSA_PKCS_OAEP, mechanism_param=(M.SHA_1, MGF.SHA1, b"one"))
    with pytest.raises(EncryptedDataInvalid):
        priv.decrypt(ct, mechanism=M.RSA_PKCS_OAEP, mechanism_param=(M.SHA_1, MGF.SHA1, b"two"))


def test_rsa_x509_raw(rsa_pair: tuple[Any, Any]) -> None:
    pub, priv = rsa_pair
    nums = rsa_public(pub).public_numbers()
    m = int.from_bytes(os.urandom(255), "big")
    block = m.to_bytes(256, "big")
    ct = pub.encrypt(block, mechanism=M.RSA_X_509)
    assert ct == pow(m, nums.e, nums.n).to_bytes(256, "big")
    assert priv.decrypt(ct, mechanism=M.RSA_X_509) == block
    sig = priv.sign(block, mechanism=M.RSA_X_509)
    assert pow(int.from_bytes(sig, "big"), nums.e, nums.n) == m
    assert pub.verify(block, sig, mechanism=M.RSA_X_509)


def test_rsa_signature_errors(rsa_pair: tuple[Any, Any]) -> None:
    pub, priv = rsa_pair
    sig = priv.sign(b"data", mechanism=M.SHA256_RSA_PKCS)
    with pytest.raises(SignatureInvalid):
        pub._verify(b"data", bytes([sig[0] ^ 1]) + sig[1:], mechanism=M.SHA256_RSA_PKCS)
    with pytest.raises(SignatureLenRange):
        pub._verify(b"data", sig + b"\0", mechanism=M.SHA256_RSA_PKCS)


def test_an_rsa_key_for_ecdsa_is_key_type_inconsistent(differs: Differs, rsa_pair: tuple[Any, Any]) -> None:
    differs("softhsm", "Base §5.11 C_SignInit: a key of the wrong type is "
                       "CKR_KEY_TYPE_INCONSISTENT; SoftHSM2 accepts the init and fails C_Sign "
                       "with CKR_GENERAL_ERROR")
    with pytest.raises(KeyTypeInconsistent):
        rsa_pair[1].sign(hashlib.sha256(b"data").digest(), mechanism=M.ECDSA)


def test_digest_key_of_a_private_key_is_refused(session: Session, rsa_pair: tuple[Any, Any]) -> None:
    with pytest.raises(KeyIndigestible):
        session.digest([b"x", rsa_pair[1]], mechanism=M.SHA256)


# --- EC -------------------------------------------------------------------------------------

CURVES = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1, "secp521r1": ec.SECP521R1,
          "secp256k1": ec.SECP256K1}
CURVE_OIDS = {"secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34",
              "secp521r1": "1.3.132.0.35", "secp256k1": "1.3.132.0.10"}
ECDSA_HASH = {M.ECDSA_SHA1: hashes.SHA1, M.ECDSA_SHA224: hashes.SHA224, M.ECDSA_SHA256: hashes.SHA256,
              M.ECDSA_SHA384: hashes.SHA384, M.ECDSA_SHA512: hashes.SHA512}


def ec_pair(session: Session, curve: str) -> tuple[Any, Any]:
    params = session.create_domain_parameters(
        KeyType.EC, {A.EC_PARAMS: encode_named_curve_parameters(CURVE_OIDS[curve])}, local=True)
    return params.generate_keypair(capabilities=MF.SIGN | MF.VERIFY | MF.DERIVE)


def ec_public(pub: Any, curve: str) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(CURVES[curve](), der_octets(pub[A.EC_POINT]))


@pytest.mark.parametrize("curve", CURVES)
def test_ec_generation_and_raw_ecdsa(session: Session, curve: str) -> None:
    pub, priv = ec_pair(session, curve)
    public = ec_public(pub, curve)
    assert priv[A.EC_PARAMS] == pub[A.EC_PARAMS]
    assert priv[A.KEY_GEN_MECHANISM] == M.EC_KEY_PAIR_GEN
    size = (public.curve.key_size + 7) // 8
    digest = hashlib.sha256(b"message").digest()
    sig = priv.sign(digest, mechanism=M.ECDSA)
    assert len(sig) == 2 * size
    public.verify(dss(sig), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    pub._verify(digest, sig, mechanism=M.ECDSA)
    with pytest.raises(SignatureInvalid):
        pub._verify(hashlib.sha256(b"other").digest(), sig, mechanism=M.ECDSA)
    with pytest.raises(SignatureLenRange):
        pub._verify(digest, sig[:-1], mechanism=M.ECDSA)


def test_raw_ecdsa_truncates_a_hash_longer_than_the_order(session: Session) -> None:
    """FIPS 186-4 §6.4 (Current Mechanisms 'ECDSA'): the leftmost bits of a long input are
    signed, so a SHA-512 hash signed with P-256 verifies as a prehashed SHA-512."""
    pub, priv = ec_pair(session, "secp256r1")
    digest = hashlib.sha512(b"message").digest()
    sig = priv.sign(digest, mechanism=M.ECDSA)
    ec_public(pub, "secp256r1").verify(dss(sig), digest, ec.ECDSA(Prehashed(hashes.SHA512())))
    pub._verify(digest, sig, mechanism=M.ECDSA)


@pytest.mark.parametrize("mech", ECDSA_HASH, ids=lambda m: m.name)
def test_ecdsa_with_hashing(session: Session, differs: Differs, mech: M) -> None:
    differs("softhsm", "hspkcs11 offers more: CKM_ECDSA_SHA* (Current Mechanisms 'ECDSA with hashing'); "
                       "SoftHSM2 2.6 has raw CKM_ECDSA only")
    pub, priv = ec_pair(session, "secp384r1")
    data = os.urandom(200)
    sig = priv.sign(data, mechanism=mech)
    ec_public(pub, "secp384r1").verify(dss(sig), data, ec.ECDSA(ECDSA_HASH[mech]()))
    sig = priv.sign([data[:50], data[50:]], mechanism=mech)
    pub._verify_generator([data[:3], data[3:]], sig, mechanism=mech)
    with pytest.raises(SignatureInvalid):
        pub._verify(data[:-1], sig, mechanism=mech)


def test_an_unknown_curve_is_not_supported(module: Module, session: Session, differs: Differs) -> None:
    differs("softhsm", "Base §5.1: CKR_CURVE_NOT_SUPPORTED is the answer for a curve the token "
                       "does not support; SoftHSM2 answers CKR_GENERAL_ERROR")
    raw = Raw(module.path)
    params = encode_named_curve_parameters("1.2.3.4.5")
    pub_t, keep1 = template((CKA.EC_PARAMS, params), (CKA.VERIFY, b"\1"))
    priv_t, keep2 = template((CKA.SIGN, b"\1"))
    mech = ffi.new("CK_MECHANISM *")
    mech.mechanism = CKM.EC_KEY_PAIR_GEN
    handles = ffi.new("CK_OBJECT_HANDLE[2]")
    rv = raw.C_GenerateKeyPair(session.handle, mech, pub_t, 2, priv_t, 1, handles, handles + 1)
    assert rv == CKR.CURVE_NOT_SUPPORTED, CKR(rv).name


# --- EdDSA ----------------------------------------------------------------------------------

EDWARDS = {"ed25519": ("1.3.101.112", ed25519.Ed25519PublicKey, 64),
           "ed448": ("1.3.101.113", ed448.Ed448PublicKey, 114)}


@pytest.mark.parametrize("curve", EDWARDS)
def test_eddsa(session: Session, curve: str) -> None:
    oid, cls, sig_len = EDWARDS[curve]
    params = session.create_domain_parameters(KeyType.EC_EDWARDS,
                                              {A.EC_PARAMS: encode_named_curve_parameters(oid)}, local=True)
    pub, priv = params.generate_keypair(mechanism=M.EC_EDWARDS_KEY_PAIR_GEN,
                                        capabilities=MF.SIGN | MF.VERIFY)
    public = cls.from_public_bytes(der_octets(pub[A.EC_POINT]))
    data = os.urandom(100)
    sig = priv.sign(data, mechanism=M.EDDSA)
    assert len(sig) == sig_len
    public.verify(sig, data)
    assert priv.sign(data, mechanism=M.EDDSA) == sig          # deterministic (RFC 8032)
    pub._verify(data, sig, mechanism=M.EDDSA)
    with pytest.raises(SignatureInvalid):
        pub._verify(data + b"x", sig, mechanism=M.EDDSA)
    with pytest.raises(InvalidSignature):
        public.verify(sig, data + b"x")


# --- DSA ------------------------------------------------------------------------------------

DSA_PARAMS = {p["bits"]: p for p in json.loads((VECTORS / "dsa.json").read_text())["params"]}
DSA_HASH = {M.DSA_SHA1: hashes.SHA1, M.DSA_SHA224: hashes.SHA224, M.DSA_SHA256: hashes.SHA256,
            M.DSA_SHA384: hashes.SHA384, M.DSA_SHA512: hashes.SHA512}


def dsa_pair(session: Session, bits: int) -> tuple[Any, Any, dsa.DSAPublicKey]:
    p = DSA_PARAMS[bits]
    domain = {A.PRIME: bytes.fromhex(p["p"]), A.SUBPRIME: bytes.fromhex(p["q"]),
              A.BASE: bytes.fromhex(p["g"])}
    pub, priv = session.create_domain_parameters(KeyType.DSA, domain, local=True).generate_keypair(
        capabilities=MF.SIGN | MF.VERIFY)
    numbers = dsa.DSAParameterNumbers(int(p["p"], 16), int(p["q"], 16), int(p["g"], 16))
    public = dsa.DSAPublicNumbers(int.from_bytes(pub[A.VALUE], "big"), numbers).public_key()
    return pub, priv, public


@pytest.mark.parametrize("bits", (1024, 2048))
def test_dsa_raw(session: Session, bits: int) -> None:
    pub, priv, public = dsa_pair(session, bits)
    q_len = len(bytes.fromhex(DSA_PARAMS[bits]["q"]))
    digest = hashlib.sha256(b"message").digest()[:q_len]
    sig = priv.sign(digest, mechanism=M.DSA)
    assert len(sig) == 2 * q_len
    # the token signs the q-byte value as given: for `cryptography` it is a prehashed digest
    public.verify(dss(sig), digest, Prehashed(hashes.SHA1() if q_len == 20 else hashes.SHA256()))
    pub._verify(digest, sig, mechanism=M.DSA)
    with pytest.raises(SignatureInvalid):
        pub._verify(bytes(q_len), sig, mechanism=M.DSA)


@pytest.mark.parametrize("mech", DSA_HASH, ids=lambda m: m.name)
def test_dsa_with_hashing(session: Session, mech: M) -> None:
    pub, priv, public = dsa_pair(session, 1024)
    data = os.urandom(300)
    sig = priv.sign(data, mechanism=mech)
    public.verify(dss(sig), data, DSA_HASH[mech]())
    pub._verify_generator([data[:100], data[100:]], sig, mechanism=mech)
    with pytest.raises(SignatureInvalid):
        pub._verify(data[1:], sig, mechanism=mech)
