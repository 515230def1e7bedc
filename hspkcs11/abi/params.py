"""CK_MECHANISM -> (mechanism number, decoded parameter). The only place that reads
mechanism parameter structures, which hold pointers (Current Mechanisms spec)."""
from __future__ import annotations

from typing import Any, Callable

from ..consts import CKR
from ..errors import P11Error
from ..mechanisms import lookup
from ..mechanisms.params import (CbcEncryptData, CtrParams, Ecdh1Params, EddsaParams, GcmParams,
                                 OaepParams, Param, ParamKind, PssParams)


def _bytes(ffi: Any, ptr: Any, n: int) -> bytes:
    if n == 0:
        return b""
    if ptr == ffi.NULL:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, "NULL pointer inside the mechanism parameter")
    return ffi.buffer(ffi.cast("CK_BYTE *", ptr), n)[:]


# ParamKind -> (C struct, decoder from a pointer to it)
def _gcm(ffi: Any, p: Any) -> GcmParams:
    return GcmParams(_bytes(ffi, p.pIv, p.ulIvLen), _bytes(ffi, p.pAAD, p.ulAADLen), p.ulTagBits)


def _ctr(ffi: Any, p: Any) -> CtrParams:
    return CtrParams(p.ulCounterBits, ffi.buffer(p.cb, 16)[:])


def _oaep(ffi: Any, p: Any) -> OaepParams:
    return OaepParams(p.hashAlg, p.mgf, p.source, _bytes(ffi, p.pSourceData, p.ulSourceDataLen))


def _pss(ffi: Any, p: Any) -> PssParams:
    return PssParams(p.hashAlg, p.mgf, p.sLen)


def _ecdh1(ffi: Any, p: Any) -> Ecdh1Params:
    return Ecdh1Params(p.kdf, _bytes(ffi, p.pSharedData, p.ulSharedDataLen),
                       _bytes(ffi, p.pPublicData, p.ulPublicDataLen))


def _string(ffi: Any, p: Any) -> bytes:
    return _bytes(ffi, p.pData, p.ulLen)


def _cbc_data(ffi: Any, p: Any) -> CbcEncryptData:
    return CbcEncryptData(ffi.buffer(p.iv, len(p.iv))[:], _bytes(ffi, p.pData, p.length))


def _eddsa(ffi: Any, p: Any) -> EddsaParams:
    return EddsaParams(bool(p.phFlag), _bytes(ffi, p.pContextData, p.ulContextDataLen))


STRUCTS: dict[ParamKind, tuple[str, Callable[[Any, Any], Any]]] = {
    ParamKind.GCM: ("CK_GCM_PARAMS", _gcm),
    ParamKind.CTR: ("CK_AES_CTR_PARAMS", _ctr),
    ParamKind.OAEP: ("CK_RSA_PKCS_OAEP_PARAMS", _oaep),
    ParamKind.PSS: ("CK_RSA_PKCS_PSS_PARAMS", _pss),
    ParamKind.ECDH1: ("CK_ECDH1_DERIVE_PARAMS", _ecdh1),
    ParamKind.DERIVATION_STRING: ("CK_KEY_DERIVATION_STRING_DATA", _string),
    ParamKind.AES_CBC_DATA: ("CK_AES_CBC_ENCRYPT_DATA_PARAMS", _cbc_data),
    ParamKind.DES_CBC_DATA: ("CK_DES_CBC_ENCRYPT_DATA_PARAMS", _cbc_data),
    ParamKind.EDDSA: ("CK_EDDSA_PARAMS", _eddsa),
    ParamKind.ULONG: ("CK_ULONG", lambda ffi, p: p[0]),
}


def decode(ffi: Any, mech: Any) -> tuple[int, Param]:
    """Read a CK_MECHANISM; CKR_MECHANISM_INVALID / _PARAM_INVALID as the spec names them."""
    if mech == ffi.NULL:
        raise P11Error(CKR.ARGUMENTS_BAD, "NULL CK_MECHANISM")
    m = lookup(mech.mechanism)
    ptr, n = mech.pParameter, mech.ulParameterLen
    if n == 0 or ptr == ffi.NULL:
        if n != 0:
            raise P11Error(CKR.MECHANISM_PARAM_INVALID, "NULL parameter with a length")
        if m.param in (ParamKind.NONE, ParamKind.RAW) or m.param_optional:
            return m.mech, (b"" if m.param is ParamKind.RAW and not m.param_optional else None)
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, "this mechanism needs a parameter")
    if m.param is ParamKind.NONE:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, "this mechanism takes no parameter")
    if m.param is ParamKind.RAW:
        return m.mech, ffi.buffer(ffi.cast("CK_BYTE *", ptr), n)[:]
    ctype, reader = STRUCTS[m.param]
    if n != ffi.sizeof(ctype):
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"parameter of {n} bytes, {ctype} has {ffi.sizeof(ctype)}")
    return m.mech, reader(ffi, ffi.cast(ctype + " *", ptr))


def repeatable(mech_type: int) -> int:
    """1 when a call's answer is fixed by the mechanism number and the parameter's own
    bytes (no parameter, or a raw one such as an IV; no pointers inside, no randomness):
    the shim may then give the same answer to the same call (csrc/shim.c)."""
    m = lookup(mech_type)
    return int(m.param in (ParamKind.NONE, ParamKind.RAW) and not m.randomized)
