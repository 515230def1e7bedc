"""The PKCS#11 call trace (log.level = DEBUG): C function, arguments by name, CKR by
name, time taken. Secrets never appear: PINs are starred, buffers are shown by length
only, templates by attribute names (never their values), mechanisms by name."""
from __future__ import annotations

import inspect
from typing import Any, Callable

from ..consts import CKA, CKM, CKU
from ..p11.crypto import Op, Step

SECRET = {"pin", "old", "new"}                      # PIN arguments
BUFFERS = {"data", "part", "sig", "seed", "wrapped", "buf", "label"}
TEMPLATES = {"tmpl", "pub", "priv"}                 # flattened; followed by their size
TYPES = "types"                                     # C_GetAttributeValue's types; then their count
OUTPUTS = {"out", "info", "count", "pub_out", "priv_out"}


def _name(enum: Any, value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return hex(value)


def c_name(py_name: str, args: dict[str, Any]) -> str:
    """The C function a callback serves: one callback carries several (C_Encrypt...)."""
    base = py_name[3:]
    if "op" not in args:
        return "C_" + ("Verify" if base == "Verify" and args.get("step") == Step.ONESHOT
                       else "VerifyFinal" if base == "Verify" else base)
    kind = Op(args["op"]).name.capitalize()
    if base == "OpInit":
        return f"C_{kind}Init"
    if base == "OpFeed":
        return f"C_{kind}Update"
    step = Step(args["step"])
    return f"C_{kind}" + {Step.ONESHOT: "", Step.UPDATE: "Update", Step.FINAL: "Final"}[step]


class Tracer:
    """Formats one callback's calls; built once per callback at bind time."""

    def __init__(self, fn: Callable[..., Any], ffi: Any) -> None:
        self.py_name = fn.__name__
        self.params = list(inspect.signature(fn).parameters)
        self.ffi = ffi

    def call(self, args: tuple[Any, ...]) -> tuple[str, str]:
        named = dict(zip(self.params, args))
        shown = []
        skip_next = False
        for i, (name, value) in enumerate(named.items()):
            if skip_next:
                skip_next = False
                continue
            if name in OUTPUTS or name in ("op", "step"):
                continue
            if name in SECRET:
                shown.append(f"{name}=***")
                skip_next = i + 1 < len(self.params) and self.params[i + 1] in ("n", "old_n", "new_n", "pin_len")
            elif name in TEMPLATES or name == TYPES:
                count = args[i + 1] if i + 1 < len(args) else 0
                shown.append(f"{name}=[{', '.join(self._attr_names(name, value, count))}]")
                skip_next = True
            elif name in BUFFERS:
                size = args[i + 1] if i + 1 < len(args) and isinstance(args[i + 1], int) else "?"
                shown.append(f"{name}=<{size} bytes>" if value != self.ffi.NULL else f"{name}=NULL")
                skip_next = isinstance(size, int)
            elif name == "mech":       # a CK_MECHANISM_TYPE, or a CK_MECHANISM pointer
                if isinstance(value, int):
                    shown.append("mech=CKM_" + _name(CKM, value))
                else:
                    shown.append("mech=" + ("CKM_" + _name(CKM, value.mechanism) if value != self.ffi.NULL else "NULL"))
            elif name == "user":
                shown.append("user=CKU_" + _name(CKU, value))
            elif isinstance(value, int):
                shown.append(f"{name}={value}")
            else:
                shown.append(f"{name}=<ptr>")
        return c_name(self.py_name, named), ", ".join(shown)

    def _attr_names(self, name: str, tmpl: Any, count: int) -> list[str]:
        if tmpl == self.ffi.NULL:
            return []
        if name == TYPES:
            types = self.ffi.unpack(tmpl, min(count, 64))
        else:
            from .bridge import template_types
            types = template_types(tmpl, count)[:64]
        return ["CKA_" + _name(CKA, t) for t in types]
