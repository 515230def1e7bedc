"""Pure-Python reference of AES key wrap (RFC 3394) and key wrap with padding (RFC 5649).

It follows the RFC steps literally over `cryptography`'s AES-ECB block primitive and
shares nothing with csrc/aeskw.c, so that tests can cross-check the C fast path against
an independent implementation. Same functions, same errors as `keywrap`; slow.
"""
from __future__ import annotations

import hmac
import struct
from typing import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .keywrap import KeyWrapError

DEFAULT_IV = b"\xa6" * 8           # RFC 3394 §2.2.3.1
KWP_AIV = b"\xa6\x59\x59\xa6"      # RFC 5649 §3
_MAX_DATA = 0xFFFFFFF8             # the same cap as the C code (MLI is 32 bits)


def _ecb(kek: bytes, encrypt: bool):
    if len(kek) not in (16, 24, 32):
        raise KeyWrapError("key", f"KEK of {len(kek)} bytes")
    cipher = Cipher(algorithms.AES(bytes(kek)), modes.ECB())
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update


def _iv(iv: bytes | None) -> bytes:
    if iv is None:
        return DEFAULT_IV
    if len(iv) != 8:
        raise KeyWrapError("length", f"KW IV of {len(iv)} bytes")
    return bytes(iv)


def _wrap(block, a: bytes, r: list[bytes]) -> bytes:
    """RFC 3394 §2.2.1, index-based form."""
    n = len(r)
    for j in range(6):
        for i in range(n):
            b = block(a + r[i])
            t = n * j + i + 1
            a = (int.from_bytes(b[:8], "big") ^ t).to_bytes(8, "big")
            r[i] = b[8:]
    return a + b"".join(r)


def _unwrap(block, blob: bytes) -> tuple[bytes, bytes]:
    """RFC 3394 §2.2.2, index-based form: returns (A, P)."""
    n = len(blob) // 8 - 1
    a = blob[:8]
    r = [blob[8 * (i + 1):8 * (i + 2)] for i in range(n)]
    for j in range(5, -1, -1):
        for i in range(n - 1, -1, -1):
            t = n * j + i + 1
            a = (int.from_bytes(a, "big") ^ t).to_bytes(8, "big")
            b = block(a + r[i])
            a, r[i] = b[:8], b[8:]
    return a, b"".join(r)


def kw_wrap(kek: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    block = _ecb(kek, True)
    iv = _iv(iv)
    if len(data) < 16 or len(data) % 8 or len(data) > _MAX_DATA:
        raise KeyWrapError("length", f"KW data of {len(data)} bytes")
    data = bytes(data)
    return _wrap(block, iv,
                 [data[k:k + 8] for k in range(0, len(data), 8)])


def kw_unwrap(kek: bytes, blob: bytes, iv: bytes | None = None) -> bytes:
    block = _ecb(kek, False)
    iv = _iv(iv)
    if len(blob) < 24 or len(blob) % 8 or len(blob) - 8 > _MAX_DATA:
        raise KeyWrapError("length", f"KW blob of {len(blob)} bytes")
    a, p = _unwrap(block, bytes(blob))
    if not hmac.compare_digest(a, iv):
        raise KeyWrapError("integrity", "KW integrity check failed")
    return p


def kwp_wrap(kek: bytes, data: bytes) -> bytes:
    block = _ecb(kek, True)
    if not 0 < len(data) <= _MAX_DATA:
        raise KeyWrapError("length", f"KWP data of {len(data)} bytes")
    aiv = KWP_AIV + struct.pack(">I", len(data))
    padded = bytes(data) + b"\0" * (-len(data) % 8)
    if len(padded) == 8:                                   # RFC 5649 §4.1: one block
        return block(aiv + padded)
    return _wrap(block, aiv, [padded[k:k + 8] for k in range(0, len(padded), 8)])


def kwp_unwrap(kek: bytes, blob: bytes) -> bytes:
    block = _ecb(kek, False)
    if len(blob) < 16 or len(blob) % 8 or len(blob) - 8 > _MAX_DATA:
        raise KeyWrapError("length", f"KWP blob of {len(blob)} bytes")
    blob = bytes(blob)
    if len(blob) == 16:                                    # RFC 5649 §4.2: one block
        b = block(blob)
        a, p = b[:8], b[8:]
    else:
        a, p = _unwrap(block, blob)
    mli = int.from_bytes(a[4:], "big")                     # §3: the integrity checks
    ok = hmac.compare_digest(a[:4], KWP_AIV)
    ok &= len(p) - 8 < mli <= len(p)
    ok &= hmac.compare_digest(p[mli:], b"\0" * (len(p) - mli)) if ok else False
    if not ok:
        raise KeyWrapError("integrity", "KWP integrity check failed")
    return p[:mli]


def kwp_rewrap_batch(old_kek: bytes, new_kek: bytes,
                     blobs: Sequence[bytes]) -> list[bytes | None]:
    _ecb(old_kek, False)
    _ecb(new_kek, True)
    out: list[bytes | None] = []
    for blob in blobs:
        try:
            out.append(kwp_wrap(new_kek, kwp_unwrap(old_kek, blob)))
        except KeyWrapError:
            out.append(None)
    return out
