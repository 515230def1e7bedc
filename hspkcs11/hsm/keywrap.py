"""AES key wrap (RFC 3394 "KW") and key wrap with padding (RFC 5649 "KWP").

The Python face of the C fast path `hspkcs11._aeskw` (csrc/aeskw.c, AES from the
system libcrypto). Used by the master key (every secret attribute at rest is a KWP blob),
by master-key rotation (`kwp_rewrap_batch`: one crossing into C per batch) and by the
CKM_AES_KEY_WRAP(_PAD) mechanisms. It knows nothing of PKCS#11: failures are
`KeyWrapError`, which callers map to their own codes.

If the extension is not built, the pure-Python reference (`keywrap_ref`) stands in,
same behaviour, much slower; `BACKEND` says which one is in use.
"""
from __future__ import annotations

import logging
import struct
from array import array
from itertools import accumulate
from typing import Sequence

__all__ = ["KeyWrapError", "kw_wrap", "kw_unwrap", "kwp_wrap", "kwp_unwrap",
           "kwp_rewrap_batch", "BACKEND"]

log = logging.getLogger(__name__)


class KeyWrapError(ValueError):
    """A wrap or unwrap failure. `kind` is "length", "integrity" or "key"."""

    def __init__(self, kind: str, why: str = "") -> None:
        super().__init__(f"{kind}: {why}" if why else kind)
        self.kind = kind


try:
    from .._aeskw import ffi, lib
except ImportError as exc:                       # not built: the reference stands in
    ffi = lib = None
    _import_error = exc

_KINDS: dict[int, str] = {}
if lib is not None:
    _KINDS = {lib.HS_KW_ERR_LENGTH: "length", lib.HS_KW_ERR_INTEGRITY: "integrity",
              lib.HS_KW_ERR_KEY: "key"}


def _check(rc: int, what: str) -> None:
    if rc:
        kind = _KINDS.get(rc)
        if kind is None:                          # libcrypto or allocation failure
            raise RuntimeError(f"{what}: aeskw error {rc}")
        raise KeyWrapError(kind, what)


# bytes go to `const uint8_t *` as they are (no copy); `bytes(x)` is free for bytes and
# turns a bytearray or memoryview into one.

def _c_kw_wrap(kek: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    out = ffi.new("uint8_t[]", len(data) + 8)
    _check(lib.hs_kw_wrap(bytes(kek), len(kek), bytes(data), len(data), out, _iv(iv)),
           "KW wrap")
    return ffi.buffer(out)[:]


def _c_kw_unwrap(kek: bytes, blob: bytes, iv: bytes | None = None) -> bytes:
    out = ffi.new("uint8_t[]", max(len(blob) - 8, 1))
    _check(lib.hs_kw_unwrap(bytes(kek), len(kek), bytes(blob), len(blob), out, _iv(iv)),
           "KW unwrap")
    return ffi.buffer(out, len(blob) - 8)[:]


def _c_kwp_wrap(kek: bytes, data: bytes) -> bytes:
    out = ffi.new("uint8_t[]", (len(data) + 7) // 8 * 8 + 8)
    out_len = ffi.new("size_t *")
    _check(lib.hs_kwp_wrap(bytes(kek), len(kek), bytes(data), len(data), out, out_len),
           "KWP wrap")
    return ffi.buffer(out, out_len[0])[:]


def _c_kwp_unwrap(kek: bytes, blob: bytes) -> bytes:
    out = ffi.new("uint8_t[]", max(len(blob) - 8, 1))
    out_len = ffi.new("size_t *")
    _check(lib.hs_kwp_unwrap(bytes(kek), len(kek), bytes(blob), len(blob), out, out_len),
           "KWP unwrap")
    return ffi.buffer(out, out_len[0])[:]


def _c_kwp_rewrap_batch(old_kek: bytes, new_kek: bytes,
                        blobs: Sequence[bytes]) -> list[bytes | None]:
    """Re-wrap RFC 5649 blobs from `old_kek` to `new_kek` in one call into C.

    Returns, per blob, its re-wrap (same length) or None when that blob failed
    (integrity or length); other blobs are unaffected. A bad KEK raises.
    """
    n = len(blobs)
    data = b"".join(blobs)
    lens = array("Q", map(len, blobs))            # size_t on the 64-bit targets we build
    size = lens[0] if n else 0
    uniform = size > 0 and lens.count(size) == n  # the usual batch: keys of one size
    offs = array("Q", range(0, len(data) + 1, size) if uniform
                 else accumulate(lens, initial=0))
    out = bytearray(len(data))
    out_len = array("Q", bytes(8 * n))
    status = array("i", bytes(4 * n))
    c_offs = ffi.from_buffer("size_t[]", offs)      # out[i] goes where in[i] was
    _check(lib.hs_kwp_rewrap_batch(
        bytes(old_kek), len(old_kek), bytes(new_kek), len(new_kek),
        n, data, c_offs, ffi.from_buffer("size_t[]", lens),
        ffi.from_buffer("uint8_t[]", out), c_offs, ffi.from_buffer("size_t[]", out_len),
        ffi.from_buffer("int[]", status)), "KWP re-wrap batch")
    res = bytes(out)
    if uniform and status.count(0) == n:
        return _split(res, size, n)
    return [res[o:o + ln] if st == 0 else None for o, ln, st in zip(offs, lens, status)]


def _split(buf: bytes, size: int, n: int) -> list[bytes]:
    """`buf` cut into n pieces of `size` bytes; struct cuts a run of pieces per call,
    about twice as fast as slicing one by one."""
    per = max(1, 32768 // size)
    run = struct.Struct(f"{size}s" * per)
    pieces: list[bytes] = []
    whole = n // per * per * size
    for k in range(0, whole, per * size):
        pieces.extend(run.unpack_from(buf, k))
    pieces.extend(buf[k:k + size] for k in range(whole, n * size, size))
    return pieces


def _iv(iv: bytes | None):
    if iv is None:
        return ffi.NULL
    if len(iv) != 8:
        raise KeyWrapError("length", f"KW IV of {len(iv)} bytes")
    return bytes(iv)


if lib is not None:
    assert ffi.sizeof("size_t") == array("Q").itemsize
    BACKEND = "c"
    kw_wrap, kw_unwrap = _c_kw_wrap, _c_kw_unwrap
    kwp_wrap, kwp_unwrap = _c_kwp_wrap, _c_kwp_unwrap
    kwp_rewrap_batch = _c_kwp_rewrap_batch
else:
    log.warning("hspkcs11._aeskw is not built (%s): AES key wrap runs in pure Python",
                _import_error)
    BACKEND = "python"

    def _ref():
        from . import keywrap_ref       # imported late: keywrap_ref imports this module
        return keywrap_ref

    def kw_wrap(kek: bytes, data: bytes, iv: bytes | None = None) -> bytes:
        return _ref().kw_wrap(kek, data, iv)

    def kw_unwrap(kek: bytes, blob: bytes, iv: bytes | None = None) -> bytes:
        return _ref().kw_unwrap(kek, blob, iv)

    def kwp_wrap(kek: bytes, data: bytes) -> bytes:
        return _ref().kwp_wrap(kek, data)

    def kwp_unwrap(kek: bytes, blob: bytes) -> bytes:
        return _ref().kwp_unwrap(kek, blob)

    def kwp_rewrap_batch(old_kek: bytes, new_kek: bytes,
                         blobs: Sequence[bytes]) -> list[bytes | None]:
        return _ref().kwp_rewrap_batch(old_kek, new_kek, blobs)
