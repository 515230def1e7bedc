"""Key management (Base §5.13–5.14): generate, generate a pair, wrap, unwrap, derive;
and random numbers (§5.15)."""
from __future__ import annotations

import hashlib
import os
from typing import Any

from cryptography.hazmat.primitives.serialization import load_der_private_key

from ..consts import CKA, CKK, CKO, CKR, CKU
from ..errors import P11Error, require
from ..mechanisms import lookup
from ..mechanisms.params import Param
from ..mechanisms.registry import KEY_TYPES, MechFlag, key_type as key_type_spec
from . import schema
from .crypto import check_key
from .manage import destroy_object, finish_secret_key, store_new
from .state import Session, State

How = schema.How
_WRAP, _UNWRAP = int(MechFlag.WRAP), int(MechFlag.UNWRAP)   # IntFlag maths costs a microsecond


def _is_so(st: State, s: Session) -> bool:
    return st.logins.get(s.serial) == CKU.SO


def _implied(template: dict[int, Any], cka: int, value: int) -> None:
    """A template may repeat what the mechanism implies, but not contradict it."""
    if cka in template and template[cka] != value:
        raise P11Error(CKR.TEMPLATE_INCONSISTENT, f"CKA_{CKA(cka).name} contradicts the mechanism")


def generate_key(st: State, s: Session, mech_type: int, param: Param, template: dict[int, Any]) -> int:
    mech = lookup(mech_type)
    if mech.generate is None:
        raise P11Error(CKR.MECHANISM_INVALID, f"mechanism 0x{mech_type:x} does not generate keys")
    st.hsm.require_master_key()
    generated = dict(mech.generate(template, param))
    # A secret key, unless the mechanism says otherwise (PARAMETER_GEN mechanisms make
    # CKO_DOMAIN_PARAMETERS objects, Base §4.10).
    klass = generated.pop(CKA.CLASS, CKO.SECRET_KEY)
    _implied(template, CKA.CLASS, klass)
    kt = generated[CKA.KEY_TYPE]
    _implied(template, CKA.KEY_TYPE, kt)
    attrs = schema.new_object(How.GENERATE, klass, kt, template, _is_so(st, s))
    attrs.update(generated)
    attrs[CKA.CLASS] = klass
    finish_secret_key(attrs)
    schema.history(How.GENERATE, attrs, mech_type)
    return store_new(st, s, attrs)


def generate_key_pair(st: State, s: Session, mech_type: int, param: Param,
                      pub_t: dict[int, Any], priv_t: dict[int, Any]) -> tuple[int, int]:
    mech = lookup(mech_type)
    if mech.generate_pair is None:
        raise P11Error(CKR.MECHANISM_INVALID, f"mechanism 0x{mech_type:x} does not generate key pairs")
    _implied(pub_t, CKA.CLASS, CKO.PUBLIC_KEY)
    _implied(priv_t, CKA.CLASS, CKO.PRIVATE_KEY)
    st.hsm.require_master_key()
    # Check the templates before the (slow) generation; the key type is the mechanism's.
    kt = mech.key_types[0] if mech.key_types else pub_t.get(CKA.KEY_TYPE)
    is_so = _is_so(st, s)
    schema.new_object(How.GENERATE, CKO.PUBLIC_KEY, kt, pub_t, is_so)
    schema.new_object(How.GENERATE, CKO.PRIVATE_KEY, kt, priv_t, is_so)
    pub_gen, priv_gen = mech.generate_pair(pub_t, priv_t, param)
    handles = []
    for klass, template, generated in ((CKO.PUBLIC_KEY, pub_t, pub_gen), (CKO.PRIVATE_KEY, priv_t, priv_gen)):
        kt = generated[CKA.KEY_TYPE]
        _implied(template, CKA.KEY_TYPE, kt)
        attrs = schema.new_object(How.GENERATE, klass, kt, template, is_so)
        attrs.update(generated)
        attrs[CKA.CLASS] = klass
        schema.history(How.GENERATE, attrs, mech_type)
        handles.append(attrs)
    # Both objects or neither: a private key whose public half failed would be an orphan.
    pub_handle = store_new(st, s, handles[0])
    try:
        priv_handle = store_new(st, s, handles[1])
    except BaseException:
        destroy_object(st, s, pub_handle)
        raise
    return pub_handle, priv_handle


# ---- wrap and unwrap ---------------------------------------------------------------------

def _wrap_encoding(key: Any) -> bytes:
    """What a wrapped key's plaintext is (Base §5.13): the value of a secret key, the
    PKCS#8 PrivateKeyInfo of a private key."""
    if key.klass == CKO.SECRET_KEY:
        return key.secret()
    if key.klass == CKO.PRIVATE_KEY:
        spec = KEY_TYPES[key.key_type]
        if spec.to_pkcs8 is None:
            raise P11Error(CKR.KEY_NOT_WRAPPABLE, "this key type cannot be wrapped")
        return spec.to_pkcs8(key.crypto())
    raise P11Error(CKR.KEY_NOT_WRAPPABLE, "only secret and private keys can be wrapped")


def wrap_key(st: State, s: Session, mech_type: int, param: Param, wrapping: int, handle: int) -> bytes:
    mech = lookup(mech_type)
    if mech.encrypt is None or not mech.flags & _WRAP:
        raise P11Error(CKR.MECHANISM_INVALID, f"mechanism 0x{mech_type:x} cannot wrap")
    wkey = st.key(s, wrapping, CKR.WRAPPING_KEY_HANDLE_INVALID)
    key = st.key(s, handle)
    check_key(mech, wkey, CKA.WRAP, (CKO.SECRET_KEY, CKO.PUBLIC_KEY), CKR.WRAPPING_KEY_TYPE_INCONSISTENT)
    st.hsm.require_master_key()
    require(key.attrs.get(CKA.EXTRACTABLE, False), CKR.KEY_UNEXTRACTABLE, "the key has CKA_EXTRACTABLE false")
    if key.attrs.get(CKA.WRAP_WITH_TRUSTED) and not wkey.attrs.get(CKA.TRUSTED):
        raise P11Error(CKR.KEY_NOT_WRAPPABLE, "CKA_WRAP_WITH_TRUSTED needs a CKA_TRUSTED wrapping key")
    plain = _wrap_encoding(key)
    if mech.wrap_pad and key.klass == CKO.SECRET_KEY and len(plain) % mech.wrap_pad:
        plain += bytes(mech.wrap_pad - len(plain) % mech.wrap_pad)
    try:
        return mech.encrypt(wkey, param).oneshot(plain)
    except P11Error as exc:
        if exc.rv == CKR.DATA_LEN_RANGE:
            raise P11Error(CKR.KEY_SIZE_RANGE, "the key's length does not suit the wrapping mechanism") from None
        raise


_UNWRAP_ERRORS = {CKR.ENCRYPTED_DATA_INVALID: CKR.WRAPPED_KEY_INVALID,
                  CKR.ENCRYPTED_DATA_LEN_RANGE: CKR.WRAPPED_KEY_LEN_RANGE,
                  CKR.DATA_LEN_RANGE: CKR.WRAPPED_KEY_LEN_RANGE}


def unwrap_key(st: State, s: Session, mech_type: int, param: Param, unwrapping: int, wrapped: bytes,
               template: dict[int, Any]) -> int:
    mech = lookup(mech_type)
    if mech.decrypt is None or not mech.flags & _UNWRAP:
        raise P11Error(CKR.MECHANISM_INVALID, f"mechanism 0x{mech_type:x} cannot unwrap")
    ukey = st.key(s, unwrapping, CKR.UNWRAPPING_KEY_HANDLE_INVALID)
    check_key(mech, ukey, CKA.UNWRAP, (CKO.SECRET_KEY, CKO.PRIVATE_KEY), CKR.UNWRAPPING_KEY_TYPE_INCONSISTENT)
    klass, kt = template.get(CKA.CLASS), template.get(CKA.KEY_TYPE)
    if klass is None or kt is None:
        raise P11Error(CKR.TEMPLATE_INCOMPLETE, "unwrapping needs CKA_CLASS and CKA_KEY_TYPE")
    require(klass in (CKO.SECRET_KEY, CKO.PRIVATE_KEY), CKR.TEMPLATE_INCONSISTENT,
            "only secret and private keys can be unwrapped")
    attrs = schema.new_object(How.UNWRAP, klass, kt, template, _is_so(st, s))
    st.hsm.require_master_key()
    try:
        plain = mech.decrypt(ukey, param).oneshot(wrapped)
    except P11Error as exc:
        if exc.rv in _UNWRAP_ERRORS:
            raise P11Error(_UNWRAP_ERRORS[exc.rv], exc.why) from None
        raise
    if klass == CKO.SECRET_KEY:
        length = template.get(CKA.VALUE_LEN, key_type_spec(kt).value_len)
        if length is not None:
            require(length <= len(plain), CKR.WRAPPED_KEY_INVALID, "shorter than CKA_VALUE_LEN")
            plain = plain[:length]   # CBC/ECB-wrapped keys carry zero padding to the block size
        attrs[CKA.VALUE] = plain
        finish_secret_key(attrs)
    else:
        attrs.update(_private_from_pkcs8(kt, plain))
    attrs[CKA.CLASS] = klass
    schema.history(How.UNWRAP, attrs)
    return store_new(st, s, attrs)


def _private_from_pkcs8(kt: int, der: bytes) -> dict[int, Any]:
    spec = key_type_spec(kt)
    try:
        private = load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise P11Error(CKR.WRAPPED_KEY_INVALID, "the unwrapped data is not a PKCS#8 private key") from None
    if spec.from_private is None:
        raise P11Error(CKR.TEMPLATE_INCONSISTENT, "this key type cannot be unwrapped")
    try:
        _, priv = spec.from_private(private)
    except P11Error:
        raise
    except Exception:
        raise P11Error(CKR.TEMPLATE_INCONSISTENT, "the wrapped key is not of CKA_KEY_TYPE") from None
    if priv.get(CKA.KEY_TYPE, kt) != kt:
        raise P11Error(CKR.TEMPLATE_INCONSISTENT, "the wrapped key is not of CKA_KEY_TYPE")
    return priv


# ---- derive ---------------------------------------------------------------------------

def derive_key(st: State, s: Session, mech_type: int, param: Param, base: int,
               template: dict[int, Any]) -> int:
    mech = lookup(mech_type)
    if mech.derive is None:
        raise P11Error(CKR.MECHANISM_INVALID, f"mechanism 0x{mech_type:x} does not derive keys")
    base_key = st.key(s, base)
    check_key(mech, base_key, CKA.DERIVE, (CKO.SECRET_KEY, CKO.PRIVATE_KEY))
    _implied(template, CKA.CLASS, CKO.SECRET_KEY)
    kt = template.get(CKA.KEY_TYPE, CKK.GENERIC_SECRET)
    attrs = schema.new_object(How.DERIVE, CKO.SECRET_KEY, kt, template, _is_so(st, s))
    st.hsm.require_master_key()
    secret = mech.derive(base_key, param, template)
    length = template.get(CKA.VALUE_LEN, key_type_spec(kt).value_len) or len(secret)
    require(length <= len(secret), CKR.TEMPLATE_INCONSISTENT,
            f"CKA_VALUE_LEN {length} exceeds the {len(secret)} bytes the mechanism derives")
    attrs.update({CKA.CLASS: CKO.SECRET_KEY, CKA.KEY_TYPE: kt, CKA.VALUE: secret[:length]})
    finish_secret_key(attrs)
    schema.history(How.DERIVE, attrs, base=base_key.attrs)
    return store_new(st, s, attrs)


# ---- random ---------------------------------------------------------------------------

def random_bytes(st: State, s: Session, n: int) -> bytes:
    """The OS CSPRNG's output; once seeded, XORed with a SHAKE-256 stream of the seed
    state. XOR with an independent stream keeps the output as strong as the OS's own,
    and makes C_SeedRandom's material count, as Base §5.15 asks."""
    out = os.urandom(n)
    if st.rng_seed and n:
        st.rng_counter += 1
        mask = hashlib.shake_256(st.rng_seed + st.rng_counter.to_bytes(8, "big")).digest(n)
        out = (int.from_bytes(out, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return out


def seed_random(st: State, s: Session, seed: bytes) -> None:
    st.rng_seed = hashlib.sha256(st.rng_seed + seed).digest()
