"""Mechanism families. Importing this package registers every family's mechanisms."""
from __future__ import annotations

import importlib

from .registry import KEY_TYPES, MECHANISMS, key_type, lookup

__all__ = ["KEY_TYPES", "MECHANISMS", "key_type", "lookup"]

# One module per family; each registers itself on import (kryoptic-style).
FAMILIES = ("digest", "hmac", "generic", "aes", "des3", "wrap", "rsa", "ec", "eddsa", "dh")

for _name in FAMILIES:
    importlib.import_module(f"{__name__}.{_name}")
