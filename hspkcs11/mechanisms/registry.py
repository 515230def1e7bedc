"""The mechanism and key-type registry: what a family module adds, what `p11` looks up.

Each family module (`aes.py`, `rsa.py`, ...) calls `register()` for every mechanism it
implements and `register_key_type()` for every key type it owns. Nothing above this
layer branches on a CKM_* or CKK_* value: it asks the registry.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import IntFlag
from functools import cached_property
from typing import Any, Callable, Mapping, Protocol

from ..consts import CKR, MechFlag
from ..errors import P11Error
from .params import Param, ParamKind


class KeyView(Protocol):
    """What a mechanism sees of a key object (implemented by `p11.objects`)."""

    klass: int
    key_type: int

    def attr(self, cka: int, default: Any = None) -> Any:
        """A decoded attribute: bool, int, bytes, or a tuple of ints (mechanism lists)."""

    def secret(self) -> bytes:
        """CKA_VALUE of a secret key, unsealed."""

    def crypto(self) -> Any:
        """The `cryptography` key object of an asymmetric key, built once and cached."""


# --- operations ------------------------------------------------------------------------

class CipherOp(ABC):
    """One encrypt or decrypt operation (also used for wrap and unwrap)."""

    multipart: bool = True

    @abstractmethod
    def update(self, data: bytes) -> bytes: ...

    @abstractmethod
    def final(self) -> bytes: ...

    def oneshot(self, data: bytes) -> bytes:
        return self.update(data) + self.final()


class SignOp(ABC):
    """Sign, or MAC generation."""

    multipart: bool = True

    @abstractmethod
    def update(self, data: bytes) -> None: ...

    @abstractmethod
    def final(self) -> bytes: ...

    def oneshot(self, data: bytes) -> bytes:
        self.update(data)
        return self.final()


class VerifyOp(ABC):
    """Verify: `final` raises P11Error(SIGNATURE_INVALID or SIGNATURE_LEN_RANGE)."""

    multipart: bool = True

    @abstractmethod
    def update(self, data: bytes) -> None: ...

    @abstractmethod
    def final(self, signature: bytes) -> None: ...

    def oneshot(self, data: bytes, signature: bytes) -> None:
        self.update(data)
        self.final(signature)


class DigestOp(ABC):
    multipart: bool = True

    @abstractmethod
    def update(self, data: bytes) -> None: ...

    @abstractmethod
    def final(self) -> bytes: ...

    def oneshot(self, data: bytes) -> bytes:
        self.update(data)
        return self.final()


class VerifyBySigning(VerifyOp):
    """Verify for MACs: recompute and compare in constant time (PKCS#11 2.40 §4.x MACs)."""

    def __init__(self, signer: SignOp, sig_len: int | None = None) -> None:
        self._signer = signer
        self._len = sig_len

    def update(self, data: bytes) -> None:
        self._signer.update(data)

    def final(self, signature: bytes) -> None:
        import hmac
        expected = self._signer.final()
        if len(signature) != len(expected):
            raise P11Error(CKR.SIGNATURE_LEN_RANGE)
        if not hmac.compare_digest(expected, signature):
            raise P11Error(CKR.SIGNATURE_INVALID)


Template = Mapping[int, Any]          # CKA -> decoded value
Attrs = dict[int, Any]


@dataclass(frozen=True)
class Mechanism:
    """One CKM_* entry. Each operation is a factory, or None when not supported.

    CK_MECHANISM_INFO flags are derived from which factories exist, plus `extra_flags`
    (WRAP/UNWRAP for ciphers that may carry keys, EC curve flags...).
    Key sizes are in the unit the spec gives for the mechanism (bytes for AES, bits
    for RSA and EC).
    """

    mech: int
    key_types: tuple[int, ...] = ()
    min_key: int = 0
    max_key: int = 0
    param: ParamKind = ParamKind.NONE
    param_optional: bool = False
    encrypt: Callable[[KeyView, Param], CipherOp] | None = None
    decrypt: Callable[[KeyView, Param], CipherOp] | None = None
    sign: Callable[[KeyView, Param], SignOp] | None = None
    verify: Callable[[KeyView, Param], VerifyOp] | None = None
    digest: Callable[[Param], DigestOp] | None = None
    # generate(template) -> attributes of the new object: CKA_KEY_TYPE and the values the
    # mechanism made; CKA_CLASS too when it is not a secret key (domain parameters)
    generate: Callable[[Template, Param], Attrs] | None = None
    # generate_pair(public template, private template) -> (public attrs, private attrs)
    generate_pair: Callable[[Template, Template, Param], tuple[Attrs, Attrs]] | None = None
    # derive(base key, param, template) -> the derived secret bytes (p11 cuts to VALUE_LEN)
    derive: Callable[[KeyView, Param, Template], bytes] | None = None
    extra_flags: int = 0
    # Block size to which C_WrapKey zero-pads a secret key's value (ECB, CBC, RFC 3394
    # wrap: Current Mechanisms §2.x "wrapping"); 0 for mechanisms that pad themselves.
    wrap_pad: int = 0
    # Encryption pads with fresh random bytes (RSA PKCS#1 v1.5, OAEP): the same call never
    # gives the same answer, so the shim does not keep one (csrc/shim.c "answers kept").
    randomized: bool = False

    @cached_property
    def flags(self) -> int:
        flags = self.extra_flags
        for factory, flag in ((self.encrypt, MechFlag.ENCRYPT), (self.decrypt, MechFlag.DECRYPT),
                              (self.sign, MechFlag.SIGN), (self.verify, MechFlag.VERIFY),
                              (self.digest, MechFlag.DIGEST), (self.generate, MechFlag.GENERATE),
                              (self.generate_pair, MechFlag.GENERATE_KEY_PAIR),
                              (self.derive, MechFlag.DERIVE)):
            if factory is not None:
                flags |= flag
        return int(flags)


# --- key types and their attribute rules ---------------------------------------------

class AttrFlag(IntFlag):
    """Attribute rules of PKCS#11 v2.40 §4.2 table 10 footnotes, as flags."""

    REQUIRED_CREATE = 0x01     # fn 1: must be given to C_CreateObject (and C_UnwrapKey)
    FORBID_CREATE = 0x02       # fn 3: must not be given to C_CreateObject
    REQUIRED_GENERATE = 0x04   # fn 4: must be given to C_GenerateKey(Pair)
    FORBID_GENERATE = 0x08     # fn 6: must not be given to C_GenerateKey(Pair)
    FORBID_UNWRAP = 0x10       # fn 8: must not be given to C_UnwrapKey
    SENSITIVE = 0x20           # fn 7: unreadable if SENSITIVE or not EXTRACTABLE
    MODIFIABLE = 0x40          # fn 8: may change by C_SetAttributeValue / C_CopyObject
    ONLY_TO_TRUE = 0x80        # fn 11: once true, stays true (CKA_SENSITIVE)
    ONLY_TO_FALSE = 0x100      # fn 12: once false, stays false (CKA_EXTRACTABLE)
    SO_ONLY = 0x200            # may be set to true only by the SO (CKA_TRUSTED)
    SEALED = 0x400             # secret material: stored only wrapped under the master key
    REQUIRED_DERIVE = 0x800    # must be given to C_DeriveKey (DH/EC derive: none yet)
    COMPUTED = 0x1000          # set by the token only (CKA_LOCAL...): CKR_ATTRIBUTE_READ_ONLY


@dataclass(frozen=True)
class Attr:
    flags: AttrFlag = AttrFlag(0)
    default: Any = None        # None: no default (absent unless given)


@dataclass(frozen=True)
class KeyTypeSpec:
    """Everything the token layer needs to know about one CKK_* value.

    `attrs` maps an object class (CKO_*) to the key-type-specific attributes of that
    class. `size` returns the key size in the mechanism-info unit, for range checks.
    For asymmetric types, `to_crypto(klass, attr)` builds the `cryptography` key from
    attributes, and `from_private(key)` / `from_public(key)` give the attributes of a
    `cryptography` key (used by key-pair generation, unwrap of PKCS#8 and C_CreateObject
    consistency checks). For secret types, `check_value(value)` raises
    CKR_ATTRIBUTE_VALUE_INVALID for a bad length and `value_len` is the fixed length
    (None: variable, taken from CKA_VALUE_LEN).
    """

    key_type: int
    attrs: Mapping[int, Mapping[int, Attr]]
    size: Callable[[KeyView], int]
    to_crypto: Callable[[int, Callable[[int], Any]], Any] | None = None
    from_private: Callable[[Any], tuple[Attrs, Attrs]] | None = None
    from_public: Callable[[Any], Attrs] | None = None
    check_value: Callable[[bytes], None] | None = None
    value_len: int | None = None
    # wrap encoding of private keys: PKCS#8 DER (RFC 5208), per PKCS#11 §5.12
    to_pkcs8: Callable[[Any], bytes] | None = None


MECHANISMS: dict[int, Mechanism] = {}
KEY_TYPES: dict[int, KeyTypeSpec] = {}


def register(*mechs: Mechanism) -> None:
    for m in mechs:
        if m.mech in MECHANISMS:
            raise RuntimeError(f"mechanism 0x{m.mech:x} registered twice")
        MECHANISMS[m.mech] = m


def register_key_type(spec: KeyTypeSpec) -> None:
    if spec.key_type in KEY_TYPES:
        raise RuntimeError(f"key type 0x{spec.key_type:x} registered twice")
    KEY_TYPES[spec.key_type] = spec


def lookup(mech: int) -> Mechanism:
    try:
        return MECHANISMS[mech]
    except KeyError:
        raise P11Error(CKR.MECHANISM_INVALID, f"mechanism 0x{mech:x} is not supported") from None


def key_type(ckk: int) -> KeyTypeSpec:
    try:
        return KEY_TYPES[ckk]
    except KeyError:
        raise P11Error(CKR.TEMPLATE_INCONSISTENT, f"key type 0x{ckk:x} is not supported") from None


def require_param(param: Param, kind: type, rv: CKR = CKR.MECHANISM_PARAM_INVALID) -> Any:
    """The parameter, checked to be of the expected decoded type."""
    if not isinstance(param, kind):
        raise P11Error(rv, f"expected {kind.__name__} parameter, got {type(param).__name__}")
    return param
