"""C_GetMechanismList and C_GetMechanismInfo, against hspkcs11 and SoftHSM2 alike.

The flags a module reports are checked against PKCS#11 v2.40 Current Mechanisms, table
"Mechanisms vs. Functions" (v3.0 for EdDSA): a module may offer fewer functions than the
spec allows for a mechanism, never others. Key sizes are checked in the unit each
mechanism's section names (bytes for AES, bits for RSA and EC). Where SoftHSM2 reports less,
or other than the spec, the test is a deliberate difference.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from pkcs11 import KeyType, Mechanism as M, Session, Token
from pkcs11.exceptions import KeySizeRange

from hspkcs11.consts import CKM, CKR, MechFlag as F
from hspkcs11.mechanisms import MECHANISMS

from conftest import Module, load_module
from rawp11 import Raw, ffi

Differs = Callable[[str, str], None]
Infos = dict[int, tuple[int, int, int]]     # mechanism -> (ulMinKeySize, ulMaxKeySize, flags)

E = F.ENCRYPT | F.DECRYPT
S = F.SIGN | F.VERIFY
SR = F.SIGN_RECOVER | F.VERIFY_RECOVER
W = F.WRAP | F.UNWRAP
G, GKP, D, DV = F.GENERATE, F.GENERATE_KEY_PAIR, F.DIGEST, F.DERIVE
FUNCTIONS = E | S | SR | W | G | GKP | D | DV
EC_FLAGS = F.EC_F_P | F.EC_NAMEDCURVE | F.EC_UNCOMPRESS

# Single DES (SoftHSM2 lists it), which neither python-pkcs11 nor consts.py names.
DES = {0x120: "DES_KEY_GEN", 0x121: "DES_ECB", 0x122: "DES_CBC", 0x125: "DES_CBC_PAD"}

# Current Mechanisms v2.40 table 1 (and v3.0 table 1 for the Edwards curves): the functions
# each mechanism may serve. Single-part-only marks (footnote 2) do not matter here.
SPEC: dict[int, int] = {
    M.RSA_PKCS_KEY_PAIR_GEN: GKP, M.RSA_PKCS: E | S | SR | W, M.RSA_X_509: E | S | SR | W,
    M.RSA_PKCS_OAEP: E | W, M.RSA_PKCS_PSS: S,
    M.MD5_RSA_PKCS: S, M.SHA1_RSA_PKCS: S, M.SHA224_RSA_PKCS: S, M.SHA256_RSA_PKCS: S,
    M.SHA384_RSA_PKCS: S, M.SHA512_RSA_PKCS: S,
    M.SHA1_RSA_PKCS_PSS: S, M.SHA224_RSA_PKCS_PSS: S, M.SHA256_RSA_PKCS_PSS: S,
    M.SHA384_RSA_PKCS_PSS: S, M.SHA512_RSA_PKCS_PSS: S,
    M.DSA_KEY_PAIR_GEN: GKP, M.DSA_PARAMETER_GEN: G, M.DSA: S, M.DSA_SHA1: S, M.DSA_SHA224: S,
    M.DSA_SHA256: S, M.DSA_SHA384: S, M.DSA_SHA512: S,
    M.DH_PKCS_KEY_PAIR_GEN: GKP, M.DH_PKCS_PARAMETER_GEN: G, M.DH_PKCS_DERIVE: DV,
    M.EC_KEY_PAIR_GEN: GKP, M.ECDSA: S, M.ECDSA_SHA1: S, M.ECDSA_SHA224: S, M.ECDSA_SHA256: S,
    M.ECDSA_SHA384: S, M.ECDSA_SHA512: S, M.ECDH1_DERIVE: DV,
    M.EC_EDWARDS_KEY_PAIR_GEN: GKP, M.EDDSA: S,
    0x120: G, M.DES2_KEY_GEN: G, M.DES3_KEY_GEN: G, 0x121: E | W, 0x122: E | W, 0x125: E | W,
    M.DES3_ECB: E | W, M.DES3_CBC: E | W, M.DES3_CBC_PAD: E | W, M.DES3_CMAC: S,
    M.DES3_CMAC_GENERAL: S,
    M.DES_ECB_ENCRYPT_DATA: DV, M.DES_CBC_ENCRYPT_DATA: DV,
    M.DES3_ECB_ENCRYPT_DATA: DV, M.DES3_CBC_ENCRYPT_DATA: DV,
    M.AES_KEY_GEN: G, M.AES_ECB: E | W, M.AES_CBC: E | W, M.AES_CBC_PAD: E | W,
    M.AES_CTR: E | W, M.AES_GCM: E | W, M.AES_CMAC: S, M.AES_CMAC_GENERAL: S,
    M.AES_MAC: S, M.AES_MAC_GENERAL: S,
    M.AES_ECB_ENCRYPT_DATA: DV, M.AES_CBC_ENCRYPT_DATA: DV,
    M.AES_KEY_WRAP: E | W, M.AES_KEY_WRAP_PAD: E | W,
    CKM.MD5: D, M.SHA_1: D, M.SHA224: D, M.SHA256: D, M.SHA384: D, M.SHA512: D,
    CKM.MD5_HMAC: S, M.SHA_1_HMAC: S, M.SHA224_HMAC: S, M.SHA256_HMAC: S, M.SHA384_HMAC: S,
    M.SHA512_HMAC: S,
    M.GENERIC_SECRET_KEY_GEN: G,
}


def name(mech: int) -> str:
    for enum in (CKM, M):
        try:
            return enum(mech).name
        except ValueError:
            pass
    return DES.get(mech, hex(mech))


@pytest.fixture(scope="module")
def raw_slot(module: Module, token: Token) -> tuple[Raw, int]:
    return Raw(module.path), token.slot.slot_id


def mechanism_list(raw: Raw, slot: int) -> list[int]:
    n = ffi.new("CK_ULONG *")
    assert raw.C_GetMechanismList(slot, ffi.NULL, n) == CKR.OK
    arr = ffi.new("CK_MECHANISM_TYPE[]", n[0])
    assert raw.C_GetMechanismList(slot, arr, n) == CKR.OK
    return list(arr[0:n[0]])


def mechanism_info(raw: Raw, slot: int, mech: int, fill: int = 0) -> tuple[int, int, int]:
    """(ulMinKeySize, ulMaxKeySize, flags); `fill` pre-sets every byte of the caller's struct."""
    info = ffi.new("CK_MECHANISM_INFO *")
    ffi.memmove(info, bytes([fill]) * ffi.sizeof("CK_MECHANISM_INFO"), ffi.sizeof("CK_MECHANISM_INFO"))
    rv = raw.C_GetMechanismInfo(slot, mech, info)
    assert rv == CKR.OK, f"{name(mech)}: {CKR(rv).name}"
    return info.ulMinKeySize, info.ulMaxKeySize, info.flags


@pytest.fixture(scope="module")
def infos(raw_slot: tuple[Raw, int]) -> Infos:
    raw, slot = raw_slot
    return {m: mechanism_info(raw, slot, m) for m in mechanism_list(raw, slot)}


# --- hspkcs11 lists exactly what its families register ----------------------------------------

def test_hspkcs11_lists_every_registered_mechanism(hs: Module) -> None:
    token = hs.init_token()
    raw = Raw(hs.path)
    listed = mechanism_list(raw, token.slot.slot_id)
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(MECHANISMS)


def test_hspkcs11_info_is_the_registry_entry(hs: Module) -> None:
    token = hs.init_token()
    raw = Raw(hs.path)
    for mech, entry in MECHANISMS.items():
        want = (entry.min_key, entry.max_key, entry.flags)
        assert mechanism_info(raw, token.slot.slot_id, mech) == want, name(mech)


# --- both modules ------------------------------------------------------------------------------

def test_the_list_has_no_duplicates_and_every_entry_has_info(infos: Infos) -> None:
    assert len(infos) > 30
    for mech, (lo, hi, flags) in infos.items():
        assert flags & FUNCTIONS, f"{name(mech)} serves no function"
        assert lo <= hi or hi == 0, f"{name(mech)}: {lo} > {hi}"


def test_an_unknown_mechanism_is_invalid(raw_slot: tuple[Raw, int]) -> None:
    raw, slot = raw_slot
    info = ffi.new("CK_MECHANISM_INFO *")
    assert raw.C_GetMechanismInfo(slot, 0x7FFF0001, info) == CKR.MECHANISM_INVALID
    assert raw.C_GetMechanismInfo(slot, 0x80000001, info) == CKR.MECHANISM_INVALID  # vendor range


def test_every_listed_mechanism_is_in_the_spec_table(infos: Infos) -> None:
    assert [name(m) for m in infos if m not in SPEC] == []


def test_flags_name_only_functions_the_spec_allows(infos: Infos) -> None:
    wrong = {name(m): F(flags & FUNCTIONS & ~SPEC[m]) for m, (_, _, flags) in infos.items()
             if m in SPEC and flags & FUNCTIONS & ~SPEC[m]}
    assert wrong == {}


def test_info_does_not_depend_on_the_callers_buffer(module: Module, differs: Differs,
                                                     raw_slot: tuple[Raw, int],
                                                     infos: Infos) -> None:
    differs("softhsm", "Base §5.5 C_GetMechanismInfo fills *pInfo; SoftHSM2 ORs some flags into "
                       "whatever the caller's struct held (python-pkcs11, which does not zero "
                       "it, sees DIGEST|SIGN|GENERATE... on AES_GCM)")
    raw, slot = raw_slot
    dirty = {m: mechanism_info(raw, slot, m, fill=0xFF) for m in infos}
    assert {name(m): v for m, v in dirty.items() if v != infos[m]} == {}


# the modes the spec lets wrap and unwrap keys
BLOCK_MODES = (M.AES_ECB, M.AES_CBC, M.AES_CBC_PAD, M.DES3_ECB, M.DES3_CBC, M.DES3_CBC_PAD)


@pytest.mark.parametrize("mech", BLOCK_MODES, ids=lambda m: m.name)
def test_block_modes_wrap_and_unwrap(differs: Differs, infos: Infos,
                                     mech: M) -> None:
    differs("softhsm", "hspkcs11 offers more: Current Mechanisms table 1 lists Wrap&Unwrap for "
                       "the ECB, CBC and CBC_PAD modes; SoftHSM2 2.6 wraps with CBC only and "
                       "unwraps with none of them")
    assert infos[mech][2] & W == W
    assert infos[mech][2] & E == E


@pytest.mark.parametrize("mech", (M.AES_KEY_WRAP, M.AES_KEY_WRAP_PAD), ids=lambda m: m.name)
def test_aes_key_wrap_also_encrypts(differs: Differs, infos: Infos,
                                    mech: M) -> None:
    differs("softhsm", "hspkcs11 offers more: Current Mechanisms 'AES Key Wrap' supports "
                       "single-part C_Encrypt/C_Decrypt besides wrapping; SoftHSM2 wraps only")
    assert infos[mech][2] & (E | W) == E | W


AES_FAMILY = (M.AES_ECB, M.AES_CBC, M.AES_CBC_PAD, M.AES_CTR, M.AES_GCM, M.AES_CMAC, M.AES_KEY_GEN)


@pytest.mark.parametrize("mech", AES_FAMILY, ids=lambda m: m.name)
def test_aes_key_sizes_are_in_bytes(infos: Infos, mech: M) -> None:
    assert infos[mech][:2] == (16, 32)


@pytest.mark.parametrize("mech", (M.AES_KEY_WRAP, M.AES_KEY_WRAP_PAD), ids=lambda m: m.name)
def test_aes_key_wrap_sizes_are_those_of_the_aes_key(differs: Differs,
                                                     infos: Infos,
                                                     mech: M) -> None:
    differs("softhsm", "Current Mechanisms 'AES Key Wrap': the wrapping key is an AES key, 16..32 bytes; "
                       "SoftHSM2 reports 16 (1 for KWP) .. 0x80000000")
    assert infos[mech][:2] == (16, 32)


@pytest.mark.parametrize("mech", (M.RSA_PKCS_KEY_PAIR_GEN, M.RSA_PKCS, M.RSA_PKCS_PSS, M.RSA_PKCS_OAEP,
                                  M.SHA256_RSA_PKCS), ids=lambda m: m.name)
def test_rsa_key_sizes_are_modulus_bits(infos: Infos, mech: M) -> None:
    lo, hi, _ = infos[mech]
    assert 512 <= lo <= 2048
    assert 4096 <= hi <= 16384


@pytest.mark.parametrize("mech", (M.EC_KEY_PAIR_GEN, M.ECDSA, M.ECDH1_DERIVE), ids=lambda m: m.name)
def test_ec_key_sizes_are_field_bits(infos: Infos, mech: M) -> None:
    lo, hi, _ = infos[mech]
    assert lo <= 256          # P-256 and secp256k1 are in range
    assert hi == 521          # P-521 is the largest curve either offers


@pytest.mark.parametrize("mech", (M.EC_KEY_PAIR_GEN, M.ECDSA, M.ECDH1_DERIVE), ids=lambda m: m.name)
def test_ec_mechanisms_describe_their_curves(differs: Differs, infos: Infos,
                                             mech: M) -> None:
    if mech == M.ECDH1_DERIVE:
        differs("softhsm", "Current Mechanisms 'Elliptic Curve': "
                           "CKF_EC_F_P/NAMEDCURVE/UNCOMPRESS describe EC mechanisms; SoftHSM2 "
                           "sets them on key-pair generation and ECDSA, not on ECDH1_DERIVE")
    assert infos[mech][2] & EC_FLAGS == EC_FLAGS


def test_the_smallest_rsa_modulus_advertised_can_be_generated(
        infos: Infos, session: Session) -> None:
    lo = infos[M.RSA_PKCS_KEY_PAIR_GEN][0]
    pub, _ = session.generate_keypair(KeyType.RSA, lo)
    assert pub.key_length == lo


@pytest.mark.parametrize("where", ("below", "above"))
def test_an_rsa_modulus_outside_the_advertised_range_is_key_size_range(
        differs: Differs, infos: Infos, session: Session, where: str) -> None:
    differs("softhsm", "the size is checked against the advertised range (Base §5.1 "
                       "CKR_KEY_SIZE_RANGE); SoftHSM2 passes it to OpenSSL and answers "
                       "CKR_GENERAL_ERROR")
    lo, hi, _ = infos[M.RSA_PKCS_KEY_PAIR_GEN]
    with pytest.raises(KeySizeRange):
        session.generate_keypair(KeyType.RSA, lo - 8 if where == "below" else hi + 8)



# --- hspkcs11 against SoftHSM2, mechanism by mechanism -----------------------------------------

# Where the two report different infos for a mechanism hspkcs11 registers, and why. Every
# other registered mechanism must have the same (min, max, flags) in both.
MORE = "hspkcs11 offers more: "
DIFFERENCES: dict[int, str] = {
    M.RSA_PKCS_KEY_PAIR_GEN: "hspkcs11 generates moduli from 1024 bits (`cryptography`'s floor; "
                             "NIST SP 800-131A retired smaller ones), SoftHSM2 from 512",
    **{m: MORE + "FIPS 186-4 DSA sizes L = 1024..3072 (and 4096); SoftHSM2 reports 512..1024, "
                 "though it signs with 2048-bit keys too (test_asymmetric)"
       for m in (M.DSA_KEY_PAIR_GEN, M.DSA_PARAMETER_GEN, M.DSA, M.DSA_SHA1, M.DSA_SHA224,
                 M.DSA_SHA256, M.DSA_SHA384, M.DSA_SHA512)},
    **{m: "the smallest curve: hspkcs11 has P-192 up, SoftHSM2 (OpenSSL) reports 112-bit curves"
       for m in (M.EC_KEY_PAIR_GEN, M.ECDSA)},
    M.ECDH1_DERIVE: "smallest curve 192 vs 112 bits, and the EC capability flags "
                    "(test_ec_mechanisms_describe_their_curves)",
    **{m: MORE + "ECDSA with hashing; SoftHSM2 2.6 lacks it"
       for m in (M.ECDSA_SHA1, M.ECDSA_SHA224, M.ECDSA_SHA256, M.ECDSA_SHA384, M.ECDSA_SHA512)},
    M.AES_CMAC_GENERAL: MORE + "SoftHSM2 2.6 lacks CKM_AES_CMAC_GENERAL",
    **{m: MORE + "wrap and unwrap with the block modes (test_block_modes_wrap_and_unwrap)"
       for m in BLOCK_MODES},
    **{m: MORE + "unwrap with the single-DES modes too; SoftHSM2 2.6 wraps only"
       for m in DES if m != 0x120},
    M.DES3_CMAC_GENERAL: MORE + "SoftHSM2 2.6 lacks CKM_DES3_CMAC_GENERAL",
    **{m: "hspkcs11 reports the base key's AES sizes (16..32 bytes, the unit of the AES "
          "sections); SoftHSM2 reports 0..0" for m in (M.AES_ECB_ENCRYPT_DATA, M.AES_CBC_ENCRYPT_DATA)},
    **{m: "AES key-wrap key sizes and C_Encrypt support (test_aes_key_wrap_*)"
       for m in (M.AES_KEY_WRAP, M.AES_KEY_WRAP_PAD)},
}


@pytest.fixture(scope="module")
def both_infos(hs_conf: Path, softhsm_conf: Path) -> dict[str, Infos]:
    out = {}
    for which in ("hspkcs11", "softhsm"):
        module = load_module(which, hs_conf, softhsm_conf)
        raw, slot = Raw(module.path), module.init_token().slot.slot_id
        out[which] = {m: mechanism_info(raw, slot, m) for m in mechanism_list(raw, slot)}
    return out


def _deliberate(mech: int) -> list[pytest.MarkDecorator]:
    if mech not in DIFFERENCES:
        return []
    return [pytest.mark.xfail(strict=True, reason=f"deliberate: {DIFFERENCES[mech]}")]


@pytest.mark.parametrize("mech", [pytest.param(m, id=name(m), marks=_deliberate(m)) for m in sorted(MECHANISMS)])
def test_mechanism_info_is_the_same_as_softhsm(both_infos: dict[str, Infos],
                                               mech: int) -> None:
    assert both_infos["softhsm"].get(mech) == both_infos["hspkcs11"][mech]
