"""AES key wrap: CKM_AES_KEY_WRAP (RFC 3394) and CKM_AES_KEY_WRAP_PAD (RFC 5649).

PKCS#11 v2.40 Current Mechanisms §2.14 (AES Key Wrap): single-part encrypt/decrypt and
wrap/unwrap. The parameter is optional: an 8-byte IV, or none for the default IV of
RFC 3394 §2.2.3.1. CKM_AES_KEY_WRAP takes data of n >= 2 semiblocks (a multiple of 8
bytes, at least 16). For CKM_AES_KEY_WRAP_PAD the 8-byte IV of v2.40 has no meaning
(RFC 5649's alternative IV is a fixed 32-bit constant plus the length; v3.0 moved the
4-byte variant to CKM_AES_KEY_WRAP_KWP), so only the default is accepted.
The work is done by `hsm.keywrap` (the C fast path over libcrypto's AES).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

from ..consts import CKK, CKM, CKR, MechFlag
from ..errors import P11Error
from ..hsm.keywrap import KeyWrapError, kw_unwrap, kw_wrap, kwp_unwrap, kwp_wrap
from .params import Param, ParamKind
from .registry import CipherOp, KeyView, Mechanism, register

_AES_KEY_SIZES = (16, 24, 32)

# KeyWrapError.kind -> CK_RV, by direction (v2.40 §5.2 C_Encrypt / C_Decrypt return values).
_ENCRYPT_RV = {"length": CKR.DATA_LEN_RANGE, "key": CKR.KEY_SIZE_RANGE}
_DECRYPT_RV = {"length": CKR.ENCRYPTED_DATA_LEN_RANGE, "integrity": CKR.ENCRYPTED_DATA_INVALID,
               "key": CKR.KEY_SIZE_RANGE}


class _KeyWrapOp(CipherOp):
    """One wrap or unwrap. Single-part per §2.14; update/final only gather the data."""

    multipart = False

    def __init__(self, run: Callable[[bytes, bytes], bytes], kek: bytes,
                 rvs: dict[str, CKR]) -> None:
        self._run = run
        self._kek = kek
        self._rvs = rvs
        self._data = bytearray()

    def update(self, data: bytes) -> bytes:
        self._data += data
        return b""

    def final(self) -> bytes:
        data, self._data = bytes(self._data), bytearray()
        return self.oneshot(data)

    def oneshot(self, data: bytes) -> bytes:
        try:
            return self._run(self._kek, data)
        except KeyWrapError as exc:
            raise P11Error(self._rvs.get(exc.kind, CKR.GENERAL_ERROR), str(exc)) from None


def _kek(key: KeyView) -> bytes:
    kek = key.secret()
    if len(kek) not in _AES_KEY_SIZES:
        raise P11Error(CKR.KEY_SIZE_RANGE, f"AES key wrap with a {len(kek)}-byte key")
    return kek


def _kw_param(param: Param) -> dict[str, Any]:
    """The optional 8-byte IV of CKM_AES_KEY_WRAP; absent or empty: the RFC default."""
    if param is None or param == b"":
        return {}
    if isinstance(param, (bytes, bytearray)) and len(param) == 8:
        return {"iv": bytes(param)}
    raise P11Error(CKR.MECHANISM_PARAM_INVALID, "AES key wrap IV must be 8 bytes")


def _kwp_param(param: Param) -> dict[str, Any]:
    """CKM_AES_KEY_WRAP_PAD: only the default (absent or empty) IV."""
    if param is None or param == b"":
        return {}
    raise P11Error(CKR.MECHANISM_PARAM_INVALID, "AES key wrap with padding takes no IV")


def _op(fn: Callable[..., bytes], check_param: Callable[[Param], dict[str, Any]],
        rvs: dict[str, CKR]) -> Callable[[KeyView, Param], CipherOp]:
    def make(key: KeyView, param: Param) -> CipherOp:
        kwargs = check_param(param)
        return _KeyWrapOp(partial(fn, **kwargs) if kwargs else fn, _kek(key), rvs)
    return make


# CKM -> (wrap, unwrap, parameter check, zero padding of wrapped keys: RFC 3394 needs
# whole 64-bit blocks, RFC 5649 pads itself)
_MODES = {
    CKM.AES_KEY_WRAP: (kw_wrap, kw_unwrap, _kw_param, 8),
    CKM.AES_KEY_WRAP_PAD: (kwp_wrap, kwp_unwrap, _kwp_param, 0),
}

register(*(
    Mechanism(mech, key_types=(CKK.AES,), min_key=16, max_key=32,
              param=ParamKind.RAW, param_optional=True,
              encrypt=_op(wrap, check, _ENCRYPT_RV), decrypt=_op(unwrap, check, _DECRYPT_RV),
              extra_flags=MechFlag.WRAP | MechFlag.UNWRAP, wrap_pad=pad)
    for mech, (wrap, unwrap, check, pad) in _MODES.items()
))
