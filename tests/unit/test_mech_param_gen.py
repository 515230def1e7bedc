"""DSA_PARAMETER_GEN and DH_PKCS_PARAMETER_GEN (dh.py), the CKO_DOMAIN_PARAMETERS rules of
the schema, and the DH slow path: a group is checked by `cryptography` once, and key
agreement does not rebuild keys through it."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dh, dsa, utils

from hspkcs11.consts import CKA, CKK, CKM, CKO, CKR, MechFlag
from hspkcs11.mechanisms import KEY_TYPES, MECHANISMS
from hspkcs11.mechanisms import dh as dhmod
from hspkcs11.mechanisms.registry import AttrFlag as F
from hspkcs11.p11 import schema

from fakekeys_asym import FakeKey, generate, raises_rv, sign

pytestmark = pytest.mark.filterwarnings("ignore:Diffie-Hellman over finite fields")


def num(value: bytes) -> int:
    return int.from_bytes(value, "big")


def param_gen(mech: int, template: dict) -> dict:
    return MECHANISMS[mech].generate(template, None)


@pytest.fixture(scope="module")
def dh_params() -> dict:
    return param_gen(CKM.DH_PKCS_PARAMETER_GEN, {CKA.PRIME_BITS: 512})


# --- DSA --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits, q_bits", ((1024, 160), (2048, 256)))
def test_dsa_parameter_gen(bits, q_bits):
    out = param_gen(CKM.DSA_PARAMETER_GEN, {CKA.PRIME_BITS: bits})
    assert (out[CKA.CLASS], out[CKA.KEY_TYPE], out[CKA.PRIME_BITS]) == \
        (CKO.DOMAIN_PARAMETERS, CKK.DSA, bits)
    p, q, g = (num(out[c]) for c in (CKA.PRIME, CKA.SUBPRIME, CKA.BASE))
    assert (p.bit_length(), q.bit_length()) == (bits, q_bits)
    assert (p - 1) % q == 0 and 1 < g < p and pow(g, q, p) == 1    # FIPS 186-4 §4.1
    dsa.DSAParameterNumbers(p, q, g).parameters()                 # cryptography accepts them
    # the parameters make key pairs that sign
    domain = {c: out[c] for c in (CKA.PRIME, CKA.SUBPRIME, CKA.BASE)}
    pub, priv = generate(CKM.DSA_KEY_PAIR_GEN, domain)
    sig = sign(CKM.DSA_SHA256, priv, b"params")
    half = len(sig) // 2
    pub.crypto().verify(utils.encode_dss_signature(num(sig[:half]), num(sig[half:])), b"params",
                        hashes.SHA256())


@pytest.mark.parametrize("bits", (512, 768, 1000, 1536, 8192))
def test_dsa_parameter_gen_refuses_sizes_fips_186_4_has_not(bits):
    with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
        param_gen(CKM.DSA_PARAMETER_GEN, {CKA.PRIME_BITS: bits})


@pytest.mark.parametrize("mech", (CKM.DSA_PARAMETER_GEN, CKM.DH_PKCS_PARAMETER_GEN),
                         ids=lambda m: CKM(m).name)
def test_parameter_gen_needs_prime_bits(mech):
    with raises_rv(CKR.TEMPLATE_INCOMPLETE):
        param_gen(mech, {})


def test_mechanism_infos():
    for mech, kt, rng in ((CKM.DSA_PARAMETER_GEN, CKK.DSA, (1024, 4096)),
                          (CKM.DH_PKCS_PARAMETER_GEN, CKK.DH, (512, 10000))):
        m = MECHANISMS[mech]
        assert (m.flags, m.key_types, (m.min_key, m.max_key)) == (MechFlag.GENERATE, (kt,), rng)


# --- DH ---------------------------------------------------------------------------------------

def test_dh_parameter_gen(dh_params):
    out = dh_params
    assert (out[CKA.CLASS], out[CKA.KEY_TYPE], out[CKA.PRIME_BITS]) == \
        (CKO.DOMAIN_PARAMETERS, CKK.DH, 512)
    assert CKA.SUBPRIME not in out
    p, g = num(out[CKA.PRIME]), num(out[CKA.BASE])
    assert p.bit_length() == 512 and g == 2
    dh.DHParameterNumbers(p, g).parameters()   # cryptography's own check: p and (p-1)/2 prime
    a_pub, a_priv = generate(CKM.DH_PKCS_KEY_PAIR_GEN, {CKA.PRIME: out[CKA.PRIME], CKA.BASE: out[CKA.BASE]})
    b_pub, b_priv = generate(CKM.DH_PKCS_KEY_PAIR_GEN, {CKA.PRIME: out[CKA.PRIME], CKA.BASE: out[CKA.BASE]})
    derive = MECHANISMS[CKM.DH_PKCS_DERIVE].derive
    assert derive(a_priv, b_pub.attrs[CKA.VALUE], {}) == derive(b_priv, a_pub.attrs[CKA.VALUE], {}) \
        == a_priv.crypto().exchange(b_pub.crypto())


@pytest.mark.parametrize("bits", (0, 256, 511, 10001))
def test_dh_parameter_gen_refuses_sizes_outside_the_info(bits):
    with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
        param_gen(CKM.DH_PKCS_PARAMETER_GEN, {CKA.PRIME_BITS: bits})


class NoCrypto(FakeKey):
    """A key whose `cryptography` object must not be needed."""

    def crypto(self):
        raise AssertionError("the key was built through cryptography")


def test_dh_agreement_and_size_need_no_cryptography_key(dh_params):
    domain = {CKA.PRIME: dh_params[CKA.PRIME], CKA.BASE: dh_params[CKA.BASE]}
    a_pub, a_priv = generate(CKM.DH_PKCS_KEY_PAIR_GEN, dict(domain))
    b_pub, _ = generate(CKM.DH_PKCS_KEY_PAIR_GEN, dict(domain))
    bare = NoCrypto(CKO.PRIVATE_KEY, CKK.DH, a_priv.attrs)
    assert KEY_TYPES[CKK.DH].size(bare) == 512
    shared = MECHANISMS[CKM.DH_PKCS_DERIVE].derive(bare, b_pub.attrs[CKA.VALUE], {})
    p = num(domain[CKA.PRIME])
    assert num(shared) == pow(num(b_pub.attrs[CKA.VALUE]), num(a_priv.attrs[CKA.VALUE]), p)
    assert len(shared) == 64


def test_dh_group_is_checked_once(monkeypatch, dh_params):
    """The slow path: `cryptography` checks a group (primality of p and (p-1)/2) each
    time a key is built from numbers; generation and agreement check it once."""
    calls = []

    def counting(p: int, g: int, q: int | None = None) -> dh.DHParameterNumbers:
        calls.append((p, g))
        return dh.DHParameterNumbers(p, g, q)

    monkeypatch.setattr(dhmod, "_GROUPS", {})
    monkeypatch.setattr(dhmod, "dh", SimpleNamespace(**{**vars(dh), "DHParameterNumbers": counting}))
    domain = {CKA.PRIME: dh_params[CKA.PRIME], CKA.BASE: dh_params[CKA.BASE]}
    pairs = [generate(CKM.DH_PKCS_KEY_PAIR_GEN, dict(domain)) for _ in range(3)]
    for (_, priv), (pub, _) in zip(pairs, pairs[1:] + pairs[:1]):
        MECHANISMS[CKM.DH_PKCS_DERIVE].derive(priv, pub.attrs[CKA.VALUE], {})
    assert len(calls) == 1


def test_dh_agreement_refuses_a_group_cryptography_refuses(monkeypatch):
    monkeypatch.setattr(dhmod, "_GROUPS", {})
    composite = (1 << 511) + 1          # divisible by 3: not a prime
    key = FakeKey(CKO.PRIVATE_KEY, CKK.DH, {CKA.PRIME: composite.to_bytes(64, "big"),
                                           CKA.BASE: b"\x02", CKA.VALUE: b"\x05" * 20})
    with raises_rv(CKR.ATTRIBUTE_VALUE_INVALID):
        MECHANISMS[CKM.DH_PKCS_DERIVE].derive(key, b"\x07", {})


def test_dh_agreement_needs_a_private_key(dh_params):
    pub, _ = generate(CKM.DH_PKCS_KEY_PAIR_GEN, {CKA.PRIME: dh_params[CKA.PRIME],
                                                 CKA.BASE: dh_params[CKA.BASE]})
    with raises_rv(CKR.KEY_TYPE_INCONSISTENT):
        MECHANISMS[CKM.DH_PKCS_DERIVE].derive(pub, b"\x07", {})


def test_blinded_modexp_is_modexp(dh_params):
    p = num(dh_params[CKA.PRIME])
    rng = random.Random(7)
    for _ in range(50):
        y, x = rng.randrange(2, p - 1), rng.randrange(1, p - 1)
        assert dhmod._modexp(y, x, p) == pow(y, x, p)


# --- the schema of CKO_DOMAIN_PARAMETERS (Base §4.10) ------------------------------------------

@pytest.mark.parametrize("kt, params", ((CKK.DSA, {CKA.PRIME, CKA.SUBPRIME, CKA.BASE}),
                                        (CKK.DH, {CKA.PRIME, CKA.BASE})), ids=("DSA", "DH"))
def test_domain_parameter_rules(kt, params):
    table = schema.rules(CKO.DOMAIN_PARAMETERS, kt)
    assert set(table) == {CKA.CLASS, CKA.TOKEN, CKA.PRIVATE, CKA.MODIFIABLE, CKA.LABEL,
                          CKA.COPYABLE, CKA.DESTROYABLE, CKA.KEY_TYPE, CKA.LOCAL,
                          CKA.PRIME_BITS} | params
    for cka in params:      # footnotes 1,4
        assert table[cka].flags == F.REQUIRED_CREATE | F.FORBID_GENERATE
    assert table[CKA.PRIME_BITS].flags == F.FORBID_CREATE | F.REQUIRED_GENERATE   # 2,3
    assert table[CKA.LOCAL].flags & F.COMPUTED


def test_domain_parameter_templates():
    dsa_values = {CKA.PRIME: b"\x8f" * 128, CKA.SUBPRIME: b"\x9f" * 20, CKA.BASE: b"\x02"}
    created = schema.new_object(schema.How.CREATE, CKO.DOMAIN_PARAMETERS, CKK.DSA,
                                {CKA.CLASS: CKO.DOMAIN_PARAMETERS, CKA.KEY_TYPE: CKK.DSA, **dsa_values})
    schema.history(schema.How.CREATE, created)
    assert created[CKA.LOCAL] is False and CKA.KEY_GEN_MECHANISM not in created
    with raises_rv(CKR.ATTRIBUTE_READ_ONLY):
        schema.new_object(schema.How.CREATE, CKO.DOMAIN_PARAMETERS, CKK.DSA,
                          {**dsa_values, CKA.PRIME_BITS: 1024})
    with raises_rv(CKR.TEMPLATE_INCOMPLETE):
        schema.new_object(schema.How.CREATE, CKO.DOMAIN_PARAMETERS, CKK.DSA, {CKA.PRIME: b"\x8f"})
    with raises_rv(CKR.TEMPLATE_INCOMPLETE):
        schema.new_object(schema.How.GENERATE, CKO.DOMAIN_PARAMETERS, CKK.DH, {})
    with raises_rv(CKR.TEMPLATE_INCONSISTENT):
        schema.new_object(schema.How.GENERATE, CKO.DOMAIN_PARAMETERS, CKK.DH,
                          {CKA.PRIME_BITS: 512, CKA.PRIME: b"\x8f" * 64})
    with raises_rv(CKR.TEMPLATE_INCONSISTENT):      # an AES key has no domain parameters
        schema.rules(CKO.DOMAIN_PARAMETERS, CKK.AES)
    generated = schema.new_object(schema.How.GENERATE, CKO.DOMAIN_PARAMETERS, CKK.DH,
                                  {CKA.PRIME_BITS: 512})
    generated[CKA.CLASS] = CKO.DOMAIN_PARAMETERS
    schema.history(schema.How.GENERATE, generated, CKM.DH_PKCS_PARAMETER_GEN)
    assert generated[CKA.LOCAL] is True and CKA.KEY_GEN_MECHANISM not in generated
