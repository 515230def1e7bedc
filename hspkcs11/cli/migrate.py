"""`hspkcs11-util import-softhsm`: copy a SoftHSM2 token's objects into one of ours.

The SoftHSM2 token is read through PKCS#11 only (the module's exported C_* functions,
called through cffi's ABI mode), so only what PKCS#11 lets a client read can move:
sensitive or non-extractable key values cannot leave SoftHSM2 this way, and those
objects are listed with the reason. The objects are made on our side by the engine's
C_CreateObject (`manage.create_object`), so every attribute rule applies.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click
from cffi import FFI

from ..consts import CKA, CKO, CKR, CKU
from ..errors import P11Error
from ..mechanisms.registry import AttrFlag
from ..p11 import codec, manage, schema
from ..p11.state import State
from .common import Bar, Failure, config, pass_ctx, secret
from .importing import user_session

ffi = FFI()
ffi.cdef("""
typedef unsigned long CK_ULONG;
typedef struct { CK_ULONG type; void *pValue; CK_ULONG ulValueLen; } CK_ATTRIBUTE;
typedef struct { unsigned char major, minor; } CK_VERSION;
typedef struct {
    unsigned char label[32]; unsigned char manufacturerID[32]; unsigned char model[16];
    unsigned char serialNumber[16]; CK_ULONG flags; CK_ULONG ulMaxSessionCount;
    CK_ULONG ulSessionCount; CK_ULONG ulMaxRwSessionCount; CK_ULONG ulRwSessionCount;
    CK_ULONG ulMaxPinLen; CK_ULONG ulMinPinLen; CK_ULONG ulTotalPublicMemory;
    CK_ULONG ulFreePublicMemory; CK_ULONG ulTotalPrivateMemory; CK_ULONG ulFreePrivateMemory;
    CK_VERSION hardwareVersion; CK_VERSION firmwareVersion; unsigned char utcTime[16];
} CK_TOKEN_INFO;
CK_ULONG C_Initialize(void *);
CK_ULONG C_Finalize(void *);
CK_ULONG C_GetSlotList(unsigned char, CK_ULONG *, CK_ULONG *);
CK_ULONG C_GetTokenInfo(CK_ULONG, CK_TOKEN_INFO *);
CK_ULONG C_OpenSession(CK_ULONG, CK_ULONG, void *, void *, CK_ULONG *);
CK_ULONG C_CloseSession(CK_ULONG);
CK_ULONG C_Login(CK_ULONG, CK_ULONG, unsigned char *, CK_ULONG);
CK_ULONG C_FindObjectsInit(CK_ULONG, CK_ATTRIBUTE *, CK_ULONG);
CK_ULONG C_FindObjects(CK_ULONG, CK_ULONG *, CK_ULONG, CK_ULONG *);
CK_ULONG C_FindObjectsFinal(CK_ULONG);
CK_ULONG C_GetAttributeValue(CK_ULONG, CK_ULONG, CK_ATTRIBUTE *, CK_ULONG);
""")

CKF_SERIAL_SESSION = 4
EXIT_CODES = """\b
Exit codes:
  0  every object PKCS#11 lets us read was copied (the others are listed, with why)
  1  the migration failed, or our token refused an object (listed, with the CKR)
  2  wrong usage"""


def _rv_name(rv: int) -> str:
    try:
        return "CKR_" + CKR(rv).name
    except ValueError:
        return f"CKR 0x{rv:x}"


class Source:
    """A token of another PKCS#11 module, read-only."""

    def __init__(self, path: str) -> None:
        try:
            self.lib: Any = ffi.dlopen(path)
        except OSError as exc:
            raise Failure(f"cannot load the module {path}: {exc}; give the path of "
                          "libsofthsm2.so with --module") from None
        rv = self.lib.C_Initialize(ffi.NULL)
        if rv not in (0, CKR.CRYPTOKI_ALREADY_INITIALIZED):
            raise Failure(f"C_Initialize of {path} failed: {_rv_name(rv)}; "
                          "is SOFTHSM2_CONF set to the configuration of that token?")
        self.session = 0

    def close(self) -> None:
        if self.session:
            self.lib.C_CloseSession(self.session)
        self.lib.C_Finalize(ffi.NULL)

    def _check(self, rv: int, what: str) -> None:
        if rv != 0:
            raise Failure(f"{what} failed on the source module: {_rv_name(rv)}")

    def open(self, label: str, pin: bytes) -> None:
        count = ffi.new("CK_ULONG *")
        self._check(self.lib.C_GetSlotList(1, ffi.NULL, count), "C_GetSlotList")
        slots = ffi.new("CK_ULONG[]", max(count[0], 1))
        self._check(self.lib.C_GetSlotList(1, slots, count), "C_GetSlotList")
        info = ffi.new("CK_TOKEN_INFO *")
        found = []
        for slot in list(slots)[:count[0]]:
            if self.lib.C_GetTokenInfo(slot, info) == 0:
                name = bytes(ffi.buffer(info.label)).decode(errors="replace").rstrip()
                found.append(name)
                if name == label:
                    break
        else:
            raise Failure(f"the source module has no token labelled {label!r} (it has: "
                          f"{', '.join(repr(n) for n in found) or 'none'}); check --token and SOFTHSM2_CONF")
        h = ffi.new("CK_ULONG *")
        self._check(self.lib.C_OpenSession(slot, CKF_SERIAL_SESSION, ffi.NULL, ffi.NULL, h), "C_OpenSession")
        self.session = h[0]
        buf = ffi.new("unsigned char[]", pin or b"\0")
        rv = self.lib.C_Login(self.session, CKU.USER, buf, len(pin))
        if rv == CKR.PIN_INCORRECT:
            raise Failure(f"wrong user PIN for the SoftHSM2 token {label!r} (--pin or $SOFTHSM2_PIN)")
        self._check(rv, "C_Login")

    def objects(self) -> list[int]:
        self._check(self.lib.C_FindObjectsInit(self.session, ffi.NULL, 0), "C_FindObjectsInit")
        out: list[int] = []
        handles, n = ffi.new("CK_ULONG[64]"), ffi.new("CK_ULONG *")
        while True:
            self._check(self.lib.C_FindObjects(self.session, handles, 64, n), "C_FindObjects")
            if not n[0]:
                break
            out += list(handles)[:n[0]]
        self.lib.C_FindObjectsFinal(self.session)
        return out

    def attribute(self, handle: int, cka: int) -> tuple[int, bytes]:
        """(CKR, raw value) of one attribute, the C way: a length query, then the value."""
        attr = ffi.new("CK_ATTRIBUTE[1]")
        attr[0].type, attr[0].pValue, attr[0].ulValueLen = cka, ffi.NULL, 0
        rv = self.lib.C_GetAttributeValue(self.session, handle, attr, 1)
        if rv != 0:
            return rv, b""
        n = attr[0].ulValueLen
        buf = ffi.new("unsigned char[]", max(n, 1))
        attr[0].pValue, attr[0].ulValueLen = buf, n
        rv = self.lib.C_GetAttributeValue(self.session, handle, attr, 1)
        return rv, bytes(ffi.buffer(buf, attr[0].ulValueLen)) if rv == 0 else b""


@dataclass
class Item:
    handle: int
    attrs: dict[int, Any] = field(default_factory=dict)
    why_not: str = ""

    def describe(self) -> str:
        try:
            klass = CKO(self.attrs.get(CKA.CLASS, -1)).name.lower().replace("_", " ")
        except ValueError:
            klass = f"object of class 0x{self.attrs.get(CKA.CLASS, 0):x}"
        label = bytes(self.attrs.get(CKA.LABEL, b"")).decode(errors="replace")
        ckaid = bytes(self.attrs.get(CKA.ID, b"")).hex()
        return f"{klass} {label!r}" + (f" id {ckaid}" if ckaid else "")


# Attributes the target computes or that only describe the source's history.
_SKIP = AttrFlag.COMPUTED | AttrFlag.FORBID_CREATE


def read_item(src: Source, handle: int) -> Item:
    """Every attribute of one source object that our schema accepts on create."""
    item = Item(handle)
    for cka in (CKA.CLASS, CKA.KEY_TYPE, CKA.LABEL, CKA.ID):
        rv, raw = src.attribute(handle, cka)
        if rv == 0:
            item.attrs[cka] = codec.decode(cka, raw)
    klass = item.attrs.get(CKA.CLASS)
    try:
        table = schema.rules(klass, item.attrs.get(CKA.KEY_TYPE)) if klass is not None else None
    except P11Error as exc:
        table = None
        item.why_not = f"hspkcs11 has no such object ({exc.why})"
    if table is None:
        item.why_not = item.why_not or "it has no CKA_CLASS"
        return item
    if klass == CKO.CERTIFICATE:
        rv, raw = src.attribute(handle, CKA.CERTIFICATE_TYPE)
        if rv == 0 and codec.decode(CKA.CERTIFICATE_TYPE, raw) != 0:
            item.why_not = "only X.509 public-key certificates are supported by hspkcs11"
            return item
    for cka, rule in table.items():
        if rule.flags & _SKIP or not codec.known(cka) or cka in item.attrs:
            continue
        rv, raw = src.attribute(handle, cka)
        if rv == CKR.ATTRIBUTE_SENSITIVE:
            if rule.flags & AttrFlag.SEALED:
                sensitive = src.attribute(handle, CKA.SENSITIVE)[1] == b"\x01"
                item.why_not = ("the key is sensitive (CKA_SENSITIVE true): PKCS#11 does not reveal its "
                                "value" if sensitive else
                                "the key is not extractable (CKA_EXTRACTABLE false): PKCS#11 does not "
                                "reveal its value")
                return item
            continue
        if rv != 0:
            continue          # CKR_ATTRIBUTE_TYPE_INVALID: the source object has no such attribute
        try:
            value = codec.decode(cka, raw)
        except P11Error:
            continue
        if rule.flags & AttrFlag.SO_ONLY and not value:
            continue          # CKA_TRUSTED false is the default; only the SO may give it
        item.attrs[cka] = value
    item.attrs[CKA.TOKEN] = True
    return item


@click.command("import-softhsm", epilog=EXIT_CODES)
@click.option("--module", "module_path", default="/usr/lib/softhsm/libsofthsm2.so", show_default=True,
              help="The SoftHSM2 PKCS#11 module (it reads $SOFTHSM2_CONF as usual).")
@click.option("--token", "label", required=True, help="Label of the SoftHSM2 token to copy.")
@click.option("--pin", help="User PIN of the SoftHSM2 token (prefer $SOFTHSM2_PIN or the prompt).")
@click.option("--to-token", help="Label of our token to copy into (default: the same label).")
@click.option("--to-pin", help="User PIN of our token (prefer $HSPKCS11_PIN or the prompt).")
@pass_ctx
def import_softhsm(ctx: click.Context, module_path: str, label: str, pin: str | None,
                   to_token: str | None, to_pin: str | None) -> None:
    """Copy every object PKCS#11 lets us read from a SoftHSM2 token into ours.

    Data objects, X.509 certificates, public keys, and private or secret keys that are
    extractable and not sensitive are copied with their attributes (CKA_LABEL and CKA_ID
    kept; CKA_LOCAL and the other history attributes are set by our token). Sensitive
    or non-extractable keys cannot leave SoftHSM2 through PKCS#11: they are listed, one
    line each, with the reason. Our token must exist: make it first with init-token.

    \b
    Example:
      hspkcs11-util init-token --free --label app
      SOFTHSM2_CONF=~/softhsm2.conf SOFTHSM2_PIN=1234 HSPKCS11_PIN=1234 \\
        hspkcs11-util import-softhsm --module /usr/lib/softhsm/libsofthsm2.so --token app
    """
    target = to_token or label
    st = State(config(ctx))
    try:
        if not any(t.label.decode(errors="replace").rstrip() == target for t in st.tokens()):
            raise Failure(f"our region has no token labelled {target!r}; make it with "
                          f"`hspkcs11-util init-token --free --label {target}` or name one with --to-token")
        src_pin = secret(pin, "SOFTHSM2_PIN", "SoftHSM2 user PIN").encode()
        our_pin = secret(to_pin, "HSPKCS11_PIN", "hspkcs11 user PIN").encode()
        src = Source(module_path)
        try:
            src.open(label, src_pin)
            handles = src.objects()
            bar = Bar("reading", quiet=len(handles) < 20)
            items = []
            for i, handle in enumerate(handles, 1):
                items.append(read_item(src, handle))
                bar(i, len(handles))
            bar.close()
        finally:
            src.close()
        copied, skipped, refused = 0, [], []
        with user_session(st, target, our_pin) as s:
            todo = [it for it in items if not it.why_not]
            bar = Bar("copying", quiet=len(todo) < 20)
            for i, item in enumerate(todo, 1):
                try:
                    manage.create_object(st, s, item.attrs)
                    copied += 1
                except P11Error as exc:
                    refused.append(f"{item.describe()}: refused by hspkcs11: CKR_{exc.rv.name}"
                                   + (f" ({exc.why})" if exc.why else ""))
                bar(i, len(todo))
            bar.close()
        skipped = [f"{it.describe()}: {it.why_not}" for it in items if it.why_not]
    finally:
        st.close()
    click.echo(f"copied {copied} of {len(items)} objects from SoftHSM2 token {label!r} to token {target!r}")
    for line in skipped + refused:
        click.echo(f"not copied: {line}")
    if refused:
        raise Failure(f"{len(refused)} object(s) were refused by our token (listed above); "
                      "the others were copied")


def register(cli: click.Group) -> None:
    cli.add_command(import_softhsm)
