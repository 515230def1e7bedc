"""Attribute rules as data, and the one function that applies them.

Common attributes per object class come from PKCS#11 v2.40 Base §4 (tables 18–57);
key-type attributes come from the family modules through the registry. `apply()` is
used by create, generate, unwrap, derive, copy and set alike, so every path gives the
same CKR codes. Defaults follow SoftHSM2 where the spec leaves them to the token
(found by probing it: PRIVATE true, SENSITIVE false, EXTRACTABLE false, usage true).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, auto
from functools import lru_cache
from typing import Any, Mapping

from ..consts import CKA, CKO, CKR, CK_UNAVAILABLE_INFORMATION, fast_members
from ..errors import P11Error
from ..mechanisms.registry import KEY_TYPES, Attr, AttrFlag as F

RO = F.COMPUTED                      # set by the token only
MOD = F.MODIFIABLE

_STORAGE = {
    CKA.CLASS: Attr(F.REQUIRED_CREATE),
    CKA.TOKEN: Attr(F(0), False),
    CKA.PRIVATE: Attr(F(0), True),
    CKA.MODIFIABLE: Attr(F(0), True),
    CKA.LABEL: Attr(MOD, b""),
    CKA.COPYABLE: Attr(MOD | F.ONLY_TO_FALSE, True),
    CKA.DESTROYABLE: Attr(MOD, True),
}
_DATA = {CKA.APPLICATION: Attr(MOD, b""), CKA.OBJECT_ID: Attr(MOD, b""), CKA.VALUE: Attr(MOD, b"")}
_CERT = {
    CKA.PRIVATE: Attr(F(0), False),
    CKA.CERTIFICATE_TYPE: Attr(F.REQUIRED_CREATE),
    CKA.TRUSTED: Attr(F.SO_ONLY, False),
    CKA.CERTIFICATE_CATEGORY: Attr(F(0), 0),
    CKA.CHECK_VALUE: Attr(F(0)),
    CKA.START_DATE: Attr(MOD, b""),
    CKA.END_DATE: Attr(MOD, b""),
    CKA.PUBLIC_KEY_INFO: Attr(F(0), b""),
    # X.509 public-key certificates (§4.6.3)
    CKA.SUBJECT: Attr(F.REQUIRED_CREATE),
    CKA.ID: Attr(MOD, b""),
    CKA.ISSUER: Attr(MOD, b""),
    CKA.SERIAL_NUMBER: Attr(MOD, b""),
    CKA.VALUE: Attr(F.REQUIRED_CREATE),
    CKA.URL: Attr(F(0), b""),
    CKA.HASH_OF_SUBJECT_PUBLIC_KEY: Attr(F(0), b""),
    CKA.HASH_OF_ISSUER_PUBLIC_KEY: Attr(F(0), b""),
    CKA.JAVA_MIDP_SECURITY_DOMAIN: Attr(F(0), 0),
    CKA.NAME_HASH_ALGORITHM: Attr(F(0)),
}
_KEY = {
    CKA.KEY_TYPE: Attr(F.REQUIRED_CREATE),
    CKA.ID: Attr(MOD, b""),
    CKA.START_DATE: Attr(MOD, b""),
    CKA.END_DATE: Attr(MOD, b""),
    CKA.DERIVE: Attr(MOD, False),
    CKA.LOCAL: Attr(RO),
    CKA.KEY_GEN_MECHANISM: Attr(RO),
    CKA.ALLOWED_MECHANISMS: Attr(F(0), ()),
}
_PUBLIC = {
    CKA.PRIVATE: Attr(F(0), False),
    CKA.SUBJECT: Attr(MOD, b""),
    CKA.ENCRYPT: Attr(MOD, True),
    CKA.VERIFY: Attr(MOD, True),
    CKA.VERIFY_RECOVER: Attr(MOD, True),
    CKA.WRAP: Attr(MOD, True),
    CKA.TRUSTED: Attr(F.SO_ONLY, False),
    CKA.PUBLIC_KEY_INFO: Attr(F(0), b""),
}
_SECRECY = {
    CKA.SENSITIVE: Attr(MOD | F.ONLY_TO_TRUE, False),
    CKA.EXTRACTABLE: Attr(MOD | F.ONLY_TO_FALSE, False),
    CKA.ALWAYS_SENSITIVE: Attr(RO),
    CKA.NEVER_EXTRACTABLE: Attr(RO),
    CKA.WRAP_WITH_TRUSTED: Attr(MOD | F.ONLY_TO_TRUE, False),
    CKA.DECRYPT: Attr(MOD, True),
    CKA.SIGN: Attr(MOD, True),
    CKA.UNWRAP: Attr(MOD, True),
}
_PRIVATE = {
    CKA.SUBJECT: Attr(MOD, b""),
    CKA.SIGN_RECOVER: Attr(MOD, True),
    CKA.ALWAYS_AUTHENTICATE: Attr(F(0), False),
    CKA.PUBLIC_KEY_INFO: Attr(F(0), b""),
}
# Common domain parameter attributes (Base §4.10.2): the parameters themselves come from
# the key type (registry `KeyTypeSpec.attrs[CKO_DOMAIN_PARAMETERS]`).
_DOMAIN = {
    CKA.KEY_TYPE: Attr(F.REQUIRED_CREATE),
    CKA.LOCAL: Attr(RO),
}
_SECRET = {
    CKA.ENCRYPT: Attr(MOD, True),
    CKA.VERIFY: Attr(MOD, True),
    CKA.WRAP: Attr(MOD, True),
    CKA.TRUSTED: Attr(F.SO_ONLY, False),
    CKA.CHECK_VALUE: Attr(F(0)),
}

CLASS_ATTRS: dict[int, dict[int, Attr]] = {
    CKO.DATA: {**_STORAGE, **_DATA},
    CKO.CERTIFICATE: {**_STORAGE, **_CERT},
    CKO.PUBLIC_KEY: {**_STORAGE, **_KEY, **_PUBLIC},
    CKO.PRIVATE_KEY: {**_STORAGE, **_KEY, **_SECRECY, **_PRIVATE},
    CKO.SECRET_KEY: {**_STORAGE, **_KEY, **_SECRECY, **_SECRET},
    CKO.DOMAIN_PARAMETERS: {**_STORAGE, **_DOMAIN},
}
KEY_CLASSES = (CKO.PUBLIC_KEY, CKO.PRIVATE_KEY, CKO.SECRET_KEY)
# Classes whose attributes depend on CKA_KEY_TYPE.
TYPED_CLASSES = (*KEY_CLASSES, CKO.DOMAIN_PARAMETERS)

# Which key attribute permits which use (Base §5.8–5.14).
USAGE = {"encrypt": CKA.ENCRYPT, "decrypt": CKA.DECRYPT, "sign": CKA.SIGN, "verify": CKA.VERIFY,
         "wrap": CKA.WRAP, "unwrap": CKA.UNWRAP, "derive": CKA.DERIVE}


class How(IntEnum):       # IntEnum: it keys per-call dict lookups, and int hashing is C
    CREATE = auto()
    GENERATE = auto()
    UNWRAP = auto()
    DERIVE = auto()


How = fast_members(How)  # type: ignore[misc]  # consts.py: plain attribute lookup


# Required/forbidden flags per way of making an object, and the code for a violation.
_REQUIRED = {How.CREATE: F.REQUIRED_CREATE, How.UNWRAP: F(0), How.GENERATE: F.REQUIRED_GENERATE,
             How.DERIVE: F(0)}
_FORBIDDEN = {How.CREATE: F.FORBID_CREATE, How.GENERATE: F.FORBID_GENERATE,
              How.UNWRAP: F.FORBID_UNWRAP, How.DERIVE: F.FORBID_UNWRAP}


_DEFINED_CLASSES = frozenset(int(c) for c in CKO)


@lru_cache(maxsize=None)
def rules(klass: int, key_type: int | None) -> Mapping[int, Attr]:
    """Every attribute an object of this class (and key type) has, with its rule."""
    if klass not in CLASS_ATTRS:
        # A value the spec never assigned is an invalid value (Base §4.1.1 rule 2); a
        # class it defines that this token cannot make is inconsistent with the call.
        rv = CKR.TEMPLATE_INCONSISTENT if klass in _DEFINED_CLASSES else CKR.ATTRIBUTE_VALUE_INVALID
        raise P11Error(rv, f"object class 0x{klass:x} is not supported")
    table = dict(CLASS_ATTRS[klass])
    if klass in TYPED_CLASSES:
        if key_type is None:
            raise P11Error(CKR.TEMPLATE_INCOMPLETE, "CKA_KEY_TYPE is required")
        spec = KEY_TYPES.get(key_type)
        if spec is None:
            raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"key type 0x{key_type:x} is unknown")
        if klass not in spec.attrs:
            raise P11Error(CKR.TEMPLATE_INCONSISTENT,
                           f"key type 0x{key_type:x} has no objects of class 0x{klass:x}")
        table.update(spec.attrs[klass])
    return table


# The same rules as plain ints and sets, per (class, key type): IntFlag arithmetic costs
# about a microsecond an operation, and every key generation checks dozens of rules.
_COMPUTED, _MODIFIABLE, _SO_ONLY = int(F.COMPUTED), int(F.MODIFIABLE), int(F.SO_ONLY)
_ONLY_TO_TRUE, _ONLY_TO_FALSE = int(F.ONLY_TO_TRUE), int(F.ONLY_TO_FALSE)


@dataclass(frozen=True)
class Compiled:
    flags: dict[int, int]                       # CKA -> rule flags
    required: dict[How, tuple[int, ...]]        # CKAs a template must give
    defaults: dict[How, dict[int, Any]]         # CKA -> default, where not forbidden
    sealed: frozenset[int]
    sensitive: frozenset[int]
    # The template checks of new_object as sets, so that a good template passes in a few
    # C-level set operations: the attributes a template may not give, per way of making
    # the object (COMPUTED or FORBID_*), and those only the SO may set true.
    refused: dict[How, frozenset[int]]
    so_only: frozenset[int]


@lru_cache(maxsize=None)
def compiled(klass: int, key_type: int | None) -> Compiled:
    # Plain int keys: templates decoded from C have int keys, and a dict or set lookup of
    # an int that finds an IntEnum key compares the two the slow way.
    table = {int(cka): rule for cka, rule in rules(klass, key_type).items()}
    flags = {cka: int(rule.flags) for cka, rule in table.items()}
    return Compiled(
        flags,
        {how: tuple(c for c, f in flags.items() if f & int(_REQUIRED[how])) for how in How},
        {how: {c: r.default for c, r in table.items() if r.default is not None and not flags[c] & int(_FORBIDDEN[how])}
         for how in How},
        frozenset(c for c, f in flags.items() if f & int(F.SEALED)),
        frozenset(c for c, f in flags.items() if f & int(F.SENSITIVE)),
        {how: frozenset(c for c, f in flags.items() if f & (_COMPUTED | int(_FORBIDDEN[how]))) for how in How},
        frozenset(c for c, f in flags.items() if f & _SO_ONLY))


@lru_cache(maxsize=None)
def key_material_types() -> frozenset[int]:
    """Every attribute type that holds key material in some class or key type (flag
    SEALED): a template carrying one of these is never kept anywhere (abi/bridge.py)."""
    tables = [*CLASS_ATTRS.values(), *(t for spec in KEY_TYPES.values() for t in spec.attrs.values())]
    return frozenset(int(c) for t in tables for c, r in t.items() if r.flags & F.SEALED)


def new_object(how: How, klass: int, key_type: int | None, template: Mapping[int, Any],
               is_so: bool = False) -> dict[int, Any]:
    """Check a template for a new object and return its full attribute set with defaults.

    `template` is what the caller gave; for generate/unwrap/derive, the caller adds the
    values the mechanism computed after this check (they are the FORBID_* attributes).
    """
    c = compiled(klass, key_type)
    given = template.keys()
    if (not given <= c.flags.keys() or not given.isdisjoint(c.refused[how])
            or (not is_so and any(template[cka] for cka in given & c.so_only))):
        _refuse(how, c, template, is_so)
    missing = [cka for cka in c.required[how] if cka not in template]
    if missing:
        raise P11Error(CKR.TEMPLATE_INCOMPLETE, "missing " + ", ".join(_n(c) for c in missing))
    attrs = dict(c.defaults[how])
    attrs.update(template)
    return attrs


def _refuse(how: How, c: Compiled, template: Mapping[int, Any], is_so: bool) -> None:
    """The error for the first attribute of `template`, in its order, that new_object's
    set checks found wrong (Base §4.1.1: the code names that attribute's fault)."""
    forbidden = int(_FORBIDDEN[how])
    for cka, value in template.items():
        flags = c.flags.get(cka)
        if flags is None:
            raise P11Error(CKR.ATTRIBUTE_TYPE_INVALID, f"{_n(cka)} is not an attribute of this object")
        if flags & _COMPUTED:
            raise P11Error(CKR.ATTRIBUTE_READ_ONLY, f"{_n(cka)} is set by the token")
        if flags & forbidden:
            rv = CKR.ATTRIBUTE_READ_ONLY if how is How.CREATE else CKR.TEMPLATE_INCONSISTENT
            raise P11Error(rv, f"{_n(cka)} may not be given to {how.name.lower()}")
        if flags & _SO_ONLY and value and not is_so:
            raise P11Error(CKR.ATTRIBUTE_READ_ONLY, f"only the SO may set {_n(cka)}")


def check_change(attrs: Mapping[int, Any], changes: Mapping[int, Any], is_so: bool,
                 copying: bool = False) -> None:
    """The rules of C_SetAttributeValue and C_CopyObject (Base §5.7, table 10 footnotes)."""
    table = compiled(attrs[CKA.CLASS], attrs.get(CKA.KEY_TYPE)).flags
    if not copying and not attrs.get(CKA.MODIFIABLE, True):
        raise P11Error(CKR.ACTION_PROHIBITED, "the object has CKA_MODIFIABLE false")
    # C_CopyObject may also change CKA_TOKEN, CKA_PRIVATE and make CKA_MODIFIABLE false.
    copy_only = {CKA.TOKEN, CKA.PRIVATE, CKA.MODIFIABLE} if copying else set()
    for cka, value in changes.items():
        flags = table.get(cka)
        if flags is None:
            raise P11Error(CKR.ATTRIBUTE_TYPE_INVALID, f"{_n(cka)} is not an attribute of this object")
        old = attrs.get(cka)
        if cka in copy_only:
            if cka == CKA.MODIFIABLE and value and not old:
                raise P11Error(CKR.ATTRIBUTE_READ_ONLY, "CKA_MODIFIABLE cannot become true")
            continue
        if not flags & _MODIFIABLE:
            if value == old:
                continue  # setting a read-only attribute to its current value is harmless
            raise P11Error(CKR.ATTRIBUTE_READ_ONLY, f"{_n(cka)} cannot be changed")
        if flags & _ONLY_TO_TRUE and old and not value:
            raise P11Error(CKR.ATTRIBUTE_READ_ONLY, f"{_n(cka)} cannot go back to false")
        if flags & _ONLY_TO_FALSE and not old and value:
            raise P11Error(CKR.ATTRIBUTE_READ_ONLY, f"{_n(cka)} cannot go back to true")
        if flags & _SO_ONLY and value and not is_so:
            raise P11Error(CKR.ATTRIBUTE_READ_ONLY, f"only the SO may set {_n(cka)}")


def is_sealed(attrs: Mapping[int, Any], cka: int) -> bool:
    return cka in compiled(attrs[CKA.CLASS], attrs.get(CKA.KEY_TYPE)).sealed


def history(how: How, attrs: dict[int, Any], mech: int | None = None,
            base: Mapping[int, Any] | None = None) -> None:
    """Set CKA_LOCAL, CKA_KEY_GEN_MECHANISM, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE
    as the key's history dictates (Base §4.7.2, §4.9, §5.14 C_DeriveKey)."""
    klass = attrs[CKA.CLASS]
    if klass not in TYPED_CLASSES:
        return
    generated = how is How.GENERATE
    attrs[CKA.LOCAL] = generated
    if klass not in KEY_CLASSES:
        return    # domain parameters: CKA_LOCAL only (Base §4.10.2)
    attrs[CKA.KEY_GEN_MECHANISM] = mech if generated and mech is not None else CK_UNAVAILABLE_INFORMATION
    if klass == CKO.PUBLIC_KEY:
        return
    sensitive, extractable = attrs.get(CKA.SENSITIVE, False), attrs.get(CKA.EXTRACTABLE, False)
    if generated:
        attrs[CKA.ALWAYS_SENSITIVE], attrs[CKA.NEVER_EXTRACTABLE] = sensitive, not extractable
    elif how is How.DERIVE and base is not None:
        attrs[CKA.ALWAYS_SENSITIVE] = bool(base.get(CKA.ALWAYS_SENSITIVE)) and sensitive
        attrs[CKA.NEVER_EXTRACTABLE] = bool(base.get(CKA.NEVER_EXTRACTABLE)) and not extractable
    else:
        attrs[CKA.ALWAYS_SENSITIVE], attrs[CKA.NEVER_EXTRACTABLE] = False, False


def _n(cka: int) -> str:
    try:
        return "CKA_" + CKA(cka).name
    except ValueError:
        return f"attribute 0x{cka:x}"
