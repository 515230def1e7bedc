"""Object management (Base §5.7): create, copy, destroy, attributes, size, find."""
from __future__ import annotations

from typing import Any, Callable

from ..consts import CKA, CKO, CKR, CKU
from ..errors import P11Error, require
from ..hsm.replica import StaleSeal
from ..mechanisms.registry import KEY_TYPES
from . import codec, schema
from .objects import P11Object, from_row, matches, split, to_row
from .state import Session, State

# Columns the store indexes: a find template naming one of these uses the index.
_INDEXED = {CKA.CLASS: "klass", CKA.LABEL: "label", CKA.ID: "ckaid", CKA.KEY_TYPE: "key_type"}


def finish_secret_key(attrs: dict[int, Any]) -> None:
    """Check a secret key's value against its type and record CKA_VALUE_LEN."""
    if attrs[CKA.CLASS] != CKO.SECRET_KEY or CKA.VALUE not in attrs:
        return
    spec = KEY_TYPES[attrs[CKA.KEY_TYPE]]
    if spec.check_value is not None:
        spec.check_value(attrs[CKA.VALUE])
    if CKA.VALUE_LEN in schema.compiled(CKO.SECRET_KEY, attrs[CKA.KEY_TYPE]).flags:
        attrs[CKA.VALUE_LEN] = len(attrs[CKA.VALUE])


def finish_domain_parameters(attrs: dict[int, Any]) -> None:
    """CKA_PRIME_BITS of created domain parameters is the token's to compute (Base §4.10,
    tables "DSA/DH domain parameter object attributes": footnote 2)."""
    if attrs[CKA.CLASS] == CKO.DOMAIN_PARAMETERS and CKA.PRIME in attrs:
        attrs[CKA.PRIME_BITS] = int.from_bytes(attrs[CKA.PRIME], "big").bit_length()


def store_new(st: State, s: Session, attrs: dict[int, Any]) -> int:
    """Make a checked attribute set into a token or session object; return its handle."""
    is_token = bool(attrs.get(CKA.TOKEN))
    if is_token:
        require(s.rw, CKR.SESSION_READ_ONLY, "token objects need an R/W session")
    if attrs.get(CKA.PRIVATE):
        require(st.user_logged_in(s), CKR.USER_NOT_LOGGED_IN, "private objects need the user logged in")
    public, secrets = split(attrs)
    if secrets or attrs[CKA.CLASS] in (CKO.SECRET_KEY, CKO.PRIVATE_KEY):
        st.hsm.require_master_key()
    if not is_token:
        handle = st.new_object_handle()
        st.session_objects[handle] = P11Object(handle, s.serial, public, session=s.handle, secrets=secrets)
        return handle
    obj = P11Object(0, s.serial, public, secrets=secrets)
    obj.handle = _stored(st, obj, st.store.insert_object)
    st.mark_own_write()
    st.cache[obj.handle] = obj
    return obj.handle


def _stored(st: State, obj: P11Object, write: Callable[[Any], Any]) -> Any:
    """Seal and store; if a rotation finished in between, seal again under the new key."""
    try:
        return write(to_row(obj, st.hsm))
    except StaleSeal:
        return write(to_row(obj, st.hsm))


def create_object(st: State, s: Session, template: dict[int, Any]) -> int:
    if CKA.CLASS not in template:
        raise P11Error(CKR.TEMPLATE_INCOMPLETE, "CKA_CLASS is required")
    attrs = schema.new_object(schema.How.CREATE, template[CKA.CLASS], template.get(CKA.KEY_TYPE),
                              template, is_so=st.logins.get(s.serial) == CKU.SO)
    finish_secret_key(attrs)
    finish_domain_parameters(attrs)
    schema.history(schema.How.CREATE, attrs)
    return store_new(st, s, attrs)


def copy_object(st: State, s: Session, handle: int, template: dict[int, Any]) -> int:
    obj = st.object(s, handle)
    require(obj.attrs.get(CKA.COPYABLE, True), CKR.ACTION_PROHIBITED, "the object has CKA_COPYABLE false")
    attrs = obj.all_attrs()
    schema.check_change(attrs, template, st.logins.get(s.serial) == CKU.SO, copying=True)
    return store_new(st, s, {**attrs, **template})


def destroy_object(st: State, s: Session, handle: int) -> None:
    obj = st.object(s, handle)
    require(obj.attrs.get(CKA.DESTROYABLE, True), CKR.ACTION_PROHIBITED,
            "the object has CKA_DESTROYABLE false")
    if obj.is_token:
        require(s.rw, CKR.SESSION_READ_ONLY, "destroying a token object needs an R/W session")
        st.store.delete_object(obj.serial, handle)
        st.mark_own_write()
        st.cache.pop(handle, None)
    else:
        del st.session_objects[handle]


def object_size(st: State, s: Session, handle: int) -> int:
    """What the object takes at rest: its public attributes and its sealed blob (a
    session object, never sealed, counts its secrets' plain size)."""
    obj = st.object(s, handle)
    secret = obj.sealed_size() or len(codec.pack_attrs(obj.secrets().items()))
    return len(codec.pack_attrs(obj.attrs.items())) + secret


def get_attributes(st: State, s: Session, handle: int, types: list[int]) -> list[tuple[int, bytes]]:
    """(status, value) per attribute; C applies the per-attribute rules of Base §5.7."""
    obj = st.object(s, handle)
    attrs = obj.attrs
    rules = schema.compiled(obj.klass, attrs.get(CKA.KEY_TYPE))
    # Table 10 footnote 7: a sensitive or unextractable key never reveals these.
    hidden = rules.sensitive if attrs.get(CKA.SENSITIVE) or not attrs.get(CKA.EXTRACTABLE, True) else ()
    flags, encoders = rules.flags, codec.ENCODERS
    out: list[tuple[int, bytes]] = []
    for cka in types:
        encode = encoders.get(cka)
        if encode is None or cka not in flags:
            out.append(_NO_SUCH_ATTRIBUTE)
        elif cka in hidden:
            out.append(_SENSITIVE)
        else:
            value = attrs[cka] if cka in attrs else obj.attr(cka)
            out.append(_NO_SUCH_ATTRIBUTE if value is None else (_OK, encode(value)))
    return out


# Plain ints: the per-attribute loop above runs for every attribute a client reads.
_OK = int(CKR.OK)
_NO_SUCH_ATTRIBUTE = (int(CKR.ATTRIBUTE_TYPE_INVALID), b"")
_SENSITIVE = (int(CKR.ATTRIBUTE_SENSITIVE), b"")


def set_attributes(st: State, s: Session, handle: int, template: dict[int, Any]) -> None:
    obj = st.object(s, handle)
    if obj.is_token:
        require(s.rw, CKR.SESSION_READ_ONLY, "changing a token object needs an R/W session")
    attrs = obj.all_attrs()
    schema.check_change(attrs, template, st.logins.get(s.serial) == CKU.SO)
    obj.replace_attrs({**attrs, **template})
    if obj.is_token:
        _stored(st, obj, st.store.update_object)
        st.mark_own_write()


# ---- find ---------------------------------------------------------------------------------

def find_init(st: State, s: Session, template: dict[int, Any] | None) -> None:
    """Snapshot the matching handles. `template` None: it named an attribute no object
    can have, so nothing matches."""
    require(s.find is None, CKR.OPERATION_ACTIVE, "a find is already active in this session")
    found: list[int] = []
    if template is not None:
        private_ok = st.user_logged_in(s)
        if template.get(CKA.TOKEN, True):
            st.sync()
            index = {arg: template[cka] for cka, arg in _INDEXED.items() if cka in template}
            for row in st.store.find(s.serial, private_ok, **index):
                obj = st.cache.get(row.handle)
                if obj is None:
                    obj = st.cache[row.handle] = from_row(row, st.hsm)
                if matches(obj, template):
                    found.append(row.handle)
        if not template.get(CKA.TOKEN, False):
            found += [h for h, o in st.session_objects.items()
                      if o.serial == s.serial and (private_ok or not o.private) and matches(o, template)]
    s.find = found


def find(st: State, s: Session, max_count: int) -> list[int]:
    require(s.find is not None, CKR.OPERATION_NOT_INITIALIZED, "no find is active")
    assert s.find is not None
    out, s.find = s.find[:max_count], s.find[max_count:]
    return out


def find_final(st: State, s: Session) -> None:
    require(s.find is not None, CKR.OPERATION_NOT_INITIALIZED, "no find is active")
    s.find = None
