"""Mechanism families. Importing this package registers every family's mechanisms."""
from __future__ import annotations

import importlib

from .registry import KEY_TYPES, MECHANISMS, lookup, key_type  # noqa: F401

# One module per family; each registers itself on import (kryoptic-style).
FAMILIES = ("digest", "hmac", "generic", "aes", "des3", "wrap", "rsa", "ec", "eddsa", "dh")

for _name in FAMILIES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # a family still being written: absent, not fatal
        if exc.name != f"{__name__}.{_name}":
            raise
