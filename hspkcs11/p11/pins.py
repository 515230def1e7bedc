"""PINs are kept only as salted scrypt hashes (memory-hard, from `cryptography`)."""
from __future__ import annotations

import base64
import hmac
import os

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..consts import CKR
from ..errors import P11Error

MIN_LEN, MAX_LEN = 4, 255        # as SoftHSM2 reports in CK_TOKEN_INFO
_N, _R, _P = 2 ** 14, 8, 1


def check_length(pin: bytes) -> None:
    if not MIN_LEN <= len(pin) <= MAX_LEN:
        raise P11Error(CKR.PIN_LEN_RANGE, f"a PIN has {MIN_LEN} to {MAX_LEN} bytes")


def _derive(pin: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(pin)


def hash_pin(pin: bytes) -> str:
    salt = os.urandom(16)
    digest = _derive(pin, salt, _N, _R, _P)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()])


def verify_pin(pin: bytes, stored: str) -> bool:
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != "scrypt":
        raise P11Error(CKR.GENERAL_ERROR, f"unknown PIN hash scheme {scheme!r}")
    actual = _derive(pin, base64.b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(actual, base64.b64decode(digest))
