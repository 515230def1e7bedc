"""The return codes PKCS#11 v2.40 names for each function (Base §5.x "Return values"),
as the fuzzer checks them.

Left out on purpose, so that they count as findings in the fuzzer's healthy region:
CKR_GENERAL_ERROR, CKR_FUNCTION_FAILED, CKR_HOST_MEMORY, CKR_DEVICE_ERROR,
CKR_DEVICE_MEMORY, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, CKR_SESSION_CLOSED and
CKR_FUNCTION_CANCELED. The spec lets every function return them, but here each one would
mean an exception escaped the engine's own error handling (abi/bridge.py maps foreign
exceptions to them), a unit failed, or memory ran out on inputs the harness keeps small.
"""
from __future__ import annotations

from hspkcs11.consts import CKR

A = CKR.ARGUMENTS_BAD
# Every function but C_Initialize (and C_GetFunctionList) may answer these.
BASE = {CKR.OK, CKR.CRYPTOKI_NOT_INITIALIZED}
# ...and every function that takes a session handle (Base §5.1.2).
SESSION = {CKR.SESSION_HANDLE_INVALID}

NEW_OBJECT = {A, CKR.ATTRIBUTE_READ_ONLY, CKR.ATTRIBUTE_TYPE_INVALID, CKR.ATTRIBUTE_VALUE_INVALID,
              CKR.CURVE_NOT_SUPPORTED, CKR.DOMAIN_PARAMS_INVALID, CKR.PIN_EXPIRED, CKR.SESSION_READ_ONLY,
              CKR.TEMPLATE_INCOMPLETE, CKR.TEMPLATE_INCONSISTENT, CKR.TOKEN_WRITE_PROTECTED,
              CKR.USER_NOT_LOGGED_IN}
KEY_INIT = {A, CKR.KEY_FUNCTION_NOT_PERMITTED, CKR.KEY_HANDLE_INVALID, CKR.KEY_SIZE_RANGE,
            CKR.KEY_TYPE_INCONSISTENT, CKR.MECHANISM_INVALID, CKR.MECHANISM_PARAM_INVALID,
            CKR.OPERATION_ACTIVE, CKR.PIN_EXPIRED, CKR.USER_NOT_LOGGED_IN}
ENCRYPT = {A, CKR.BUFFER_TOO_SMALL, CKR.DATA_INVALID, CKR.DATA_LEN_RANGE, CKR.OPERATION_NOT_INITIALIZED}
DECRYPT = {A, CKR.BUFFER_TOO_SMALL, CKR.ENCRYPTED_DATA_INVALID, CKR.ENCRYPTED_DATA_LEN_RANGE,
           CKR.OPERATION_NOT_INITIALIZED, CKR.USER_NOT_LOGGED_IN}
DIGEST = {A, CKR.BUFFER_TOO_SMALL, CKR.OPERATION_NOT_INITIALIZED}
SIGN = {A, CKR.BUFFER_TOO_SMALL, CKR.DATA_INVALID, CKR.DATA_LEN_RANGE, CKR.OPERATION_NOT_INITIALIZED,
        CKR.USER_NOT_LOGGED_IN, CKR.FUNCTION_REJECTED}
VERIFY = {A, CKR.DATA_INVALID, CKR.DATA_LEN_RANGE, CKR.OPERATION_NOT_INITIALIZED, CKR.SIGNATURE_INVALID,
          CKR.SIGNATURE_LEN_RANGE}
UNSUPPORTED = {CKR.FUNCTION_NOT_SUPPORTED}     # §5.1.6: the stub of an unsupported function

# function -> (codes of its "Return values" list, takes a session handle)
SPEC: dict[str, tuple[set[CKR], bool]] = {
    "C_Initialize": ({CKR.OK, A, CKR.CANT_LOCK, CKR.CRYPTOKI_ALREADY_INITIALIZED,
                      CKR.NEED_TO_CREATE_THREADS}, False),
    "C_Finalize": ({A}, False),
    "C_GetInfo": ({A}, False),
    "C_GetSlotList": ({A, CKR.BUFFER_TOO_SMALL}, False),
    "C_GetSlotInfo": ({A, CKR.SLOT_ID_INVALID}, False),
    "C_GetTokenInfo": ({A, CKR.SLOT_ID_INVALID, CKR.TOKEN_NOT_RECOGNIZED}, False),
    "C_GetMechanismList": ({A, CKR.BUFFER_TOO_SMALL, CKR.SLOT_ID_INVALID, CKR.TOKEN_NOT_RECOGNIZED}, False),
    "C_GetMechanismInfo": ({A, CKR.MECHANISM_INVALID, CKR.SLOT_ID_INVALID, CKR.TOKEN_NOT_RECOGNIZED}, False),
    "C_InitToken": ({A, CKR.PIN_INCORRECT, CKR.PIN_LOCKED, CKR.SESSION_EXISTS, CKR.SLOT_ID_INVALID,
                     CKR.TOKEN_NOT_RECOGNIZED, CKR.TOKEN_WRITE_PROTECTED}, False),
    "C_InitPIN": ({A, CKR.PIN_INVALID, CKR.PIN_LEN_RANGE, CKR.SESSION_READ_ONLY, CKR.TOKEN_WRITE_PROTECTED,
                   CKR.USER_NOT_LOGGED_IN}, True),
    "C_SetPIN": ({A, CKR.PIN_INCORRECT, CKR.PIN_INVALID, CKR.PIN_LEN_RANGE, CKR.PIN_LOCKED,
                  CKR.SESSION_READ_ONLY, CKR.TOKEN_WRITE_PROTECTED}, True),
    "C_OpenSession": ({A, CKR.SESSION_COUNT, CKR.SESSION_PARALLEL_NOT_SUPPORTED, CKR.SESSION_READ_WRITE_SO_EXISTS,
                       CKR.SLOT_ID_INVALID, CKR.TOKEN_NOT_RECOGNIZED, CKR.TOKEN_WRITE_PROTECTED}, False),
    "C_CloseSession": (set(), True),
    "C_CloseAllSessions": ({CKR.SLOT_ID_INVALID}, False),
    "C_GetSessionInfo": ({A}, True),
    "C_Login": ({A, CKR.OPERATION_NOT_INITIALIZED, CKR.PIN_INCORRECT, CKR.PIN_LOCKED, CKR.SESSION_READ_ONLY_EXISTS,
                 CKR.USER_ALREADY_LOGGED_IN, CKR.USER_ANOTHER_ALREADY_LOGGED_IN, CKR.USER_PIN_NOT_INITIALIZED,
                 CKR.USER_TOO_MANY_TYPES, CKR.USER_TYPE_INVALID}, True),
    "C_Logout": ({CKR.USER_NOT_LOGGED_IN}, True),
    "C_CreateObject": (NEW_OBJECT, True),
    "C_CopyObject": ({CKR.ACTION_PROHIBITED, A, CKR.ATTRIBUTE_READ_ONLY, CKR.ATTRIBUTE_TYPE_INVALID,
                      CKR.ATTRIBUTE_VALUE_INVALID, CKR.OBJECT_HANDLE_INVALID, CKR.PIN_EXPIRED, CKR.SESSION_READ_ONLY,
                      CKR.TEMPLATE_INCONSISTENT, CKR.TOKEN_WRITE_PROTECTED, CKR.USER_NOT_LOGGED_IN}, True),
    "C_DestroyObject": ({CKR.ACTION_PROHIBITED, CKR.OBJECT_HANDLE_INVALID, CKR.PIN_EXPIRED, CKR.SESSION_READ_ONLY,
                         CKR.TOKEN_WRITE_PROTECTED}, True),
    "C_GetObjectSize": ({A, CKR.INFORMATION_SENSITIVE, CKR.OBJECT_HANDLE_INVALID}, True),
    "C_GetAttributeValue": ({A, CKR.ATTRIBUTE_SENSITIVE, CKR.ATTRIBUTE_TYPE_INVALID, CKR.BUFFER_TOO_SMALL,
                             CKR.OBJECT_HANDLE_INVALID}, True),
    "C_SetAttributeValue": ({CKR.ACTION_PROHIBITED, A, CKR.ATTRIBUTE_READ_ONLY, CKR.ATTRIBUTE_TYPE_INVALID,
                             CKR.ATTRIBUTE_VALUE_INVALID, CKR.OBJECT_HANDLE_INVALID, CKR.SESSION_READ_ONLY,
                             CKR.TEMPLATE_INCONSISTENT, CKR.TOKEN_WRITE_PROTECTED, CKR.USER_NOT_LOGGED_IN}, True),
    "C_FindObjectsInit": ({A, CKR.ATTRIBUTE_TYPE_INVALID, CKR.ATTRIBUTE_VALUE_INVALID, CKR.OPERATION_ACTIVE,
                           CKR.PIN_EXPIRED}, True),
    "C_FindObjects": ({A, CKR.OPERATION_NOT_INITIALIZED}, True),
    "C_FindObjectsFinal": ({CKR.OPERATION_NOT_INITIALIZED}, True),
    "C_EncryptInit": (KEY_INIT, True),
    "C_Encrypt": (ENCRYPT, True),
    "C_EncryptUpdate": (ENCRYPT, True),
    "C_EncryptFinal": (ENCRYPT, True),
    "C_DecryptInit": (KEY_INIT, True),
    "C_Decrypt": (DECRYPT, True),
    "C_DecryptUpdate": (DECRYPT, True),
    "C_DecryptFinal": (DECRYPT, True),
    "C_DigestInit": ({A, CKR.MECHANISM_INVALID, CKR.MECHANISM_PARAM_INVALID, CKR.OPERATION_ACTIVE, CKR.PIN_EXPIRED,
                      CKR.USER_NOT_LOGGED_IN}, True),
    "C_Digest": (DIGEST, True),
    "C_DigestUpdate": ({A, CKR.OPERATION_NOT_INITIALIZED}, True),
    "C_DigestKey": ({CKR.KEY_HANDLE_INVALID, CKR.KEY_INDIGESTIBLE, CKR.KEY_SIZE_RANGE,
                     CKR.OPERATION_NOT_INITIALIZED}, True),
    "C_DigestFinal": (DIGEST, True),
    "C_SignInit": (KEY_INIT, True),
    "C_Sign": (SIGN, True),
    "C_SignUpdate": ({A, CKR.DATA_LEN_RANGE, CKR.OPERATION_NOT_INITIALIZED, CKR.USER_NOT_LOGGED_IN}, True),
    "C_SignFinal": (SIGN, True),
    "C_VerifyInit": (KEY_INIT, True),
    "C_Verify": (VERIFY, True),
    "C_VerifyUpdate": ({A, CKR.DATA_LEN_RANGE, CKR.OPERATION_NOT_INITIALIZED}, True),
    "C_VerifyFinal": (VERIFY, True),
    "C_GenerateKey": (NEW_OBJECT | {CKR.MECHANISM_INVALID, CKR.MECHANISM_PARAM_INVALID, CKR.OPERATION_ACTIVE}, True),
    "C_GenerateKeyPair": (NEW_OBJECT | {CKR.MECHANISM_INVALID, CKR.MECHANISM_PARAM_INVALID,
                                        CKR.OPERATION_ACTIVE}, True),
    "C_WrapKey": ({A, CKR.BUFFER_TOO_SMALL, CKR.KEY_HANDLE_INVALID, CKR.KEY_NOT_WRAPPABLE, CKR.KEY_SIZE_RANGE,
                   CKR.KEY_UNEXTRACTABLE, CKR.MECHANISM_INVALID, CKR.MECHANISM_PARAM_INVALID, CKR.OPERATION_ACTIVE,
                   CKR.PIN_EXPIRED, CKR.USER_NOT_LOGGED_IN, CKR.WRAPPING_KEY_HANDLE_INVALID,
                   CKR.WRAPPING_KEY_SIZE_RANGE, CKR.WRAPPING_KEY_TYPE_INCONSISTENT}, True),
    "C_UnwrapKey": (NEW_OBJECT | {CKR.BUFFER_TOO_SMALL, CKR.MECHANISM_INVALID, CKR.MECHANISM_PARAM_INVALID,
                                  CKR.OPERATION_ACTIVE, CKR.UNWRAPPING_KEY_HANDLE_INVALID,
                                  CKR.UNWRAPPING_KEY_SIZE_RANGE, CKR.UNWRAPPING_KEY_TYPE_INCONSISTENT,
                                  CKR.WRAPPED_KEY_INVALID, CKR.WRAPPED_KEY_LEN_RANGE}, True),
    "C_DeriveKey": (NEW_OBJECT | {CKR.KEY_HANDLE_INVALID, CKR.KEY_SIZE_RANGE, CKR.KEY_TYPE_INCONSISTENT,
                                  CKR.MECHANISM_INVALID, CKR.MECHANISM_PARAM_INVALID, CKR.OPERATION_ACTIVE}, True),
    "C_SeedRandom": ({A, CKR.OPERATION_ACTIVE, CKR.RANDOM_SEED_NOT_SUPPORTED, CKR.RANDOM_NO_RNG,
                      CKR.USER_NOT_LOGGED_IN}, True),
    "C_GenerateRandom": ({A, CKR.OPERATION_ACTIVE, CKR.RANDOM_NO_RNG, CKR.USER_NOT_LOGGED_IN}, True),
    "C_GetFunctionStatus": ({CKR.FUNCTION_NOT_PARALLEL}, True),
    "C_CancelFunction": ({CKR.FUNCTION_NOT_PARALLEL}, True),
    **{name: (UNSUPPORTED, True) for name in (
        "C_GetOperationState", "C_SetOperationState", "C_SignRecoverInit", "C_SignRecover", "C_VerifyRecoverInit",
        "C_VerifyRecover", "C_DigestEncryptUpdate", "C_DecryptDigestUpdate", "C_SignEncryptUpdate",
        "C_DecryptVerifyUpdate")},
    "C_WaitForSlotEvent": (UNSUPPORTED | {A, CKR.NO_EVENT}, False),
}

# Codes a function's list omits although the code's own definition (Base §5.1.6) plainly
# covers the case; each one is a decision, with its reason.
EXTRA: dict[str, dict[CKR, str]] = {
    "C_WrapKey": {CKR.KEY_FUNCTION_NOT_PERMITTED: "the wrapping key's CKA_WRAP is false (§5.1.6: a key used "
                                                  "for a purpose its attributes do not allow)"},
    "C_UnwrapKey": {CKR.KEY_FUNCTION_NOT_PERMITTED: "the unwrapping key's CKA_UNWRAP is false (§5.1.6)"},
    "C_DeriveKey": {CKR.KEY_FUNCTION_NOT_PERMITTED: "the base key's CKA_DERIVE is false (§5.1.6)"},
    "C_InitToken": {CKR.PIN_LEN_RANGE: "an SO PIN outside ulMinPinLen..ulMaxPinLen (§5.1.6: 'the specified "
                                       "PIN is too long or too short')"},
    "C_GenerateKeyPair": {CKR.KEY_SIZE_RANGE: "a modulus or prime size outside CK_MECHANISM_INFO's range, as "
                                              "tests/test_mechanisms.py decided (§5.1.6)"},
}
# Single-part and multi-part calls mixed in one operation (C_Encrypt after C_EncryptUpdate,
# C_EncryptUpdate after C_EncryptFinal's length query): Base §5.8-5.12 forbid the mix and
# name no code; the engine answers OPERATION_ACTIVE (§5.1.6: an active operation prevents
# the call) and ends the operation. An update call on a mechanism that has no multi-part
# form (Current Mechanisms: "single-part") is MECHANISM_INVALID.
MIXED = "a single-part and a multi-part call mixed in one operation"
SINGLE_PART = "an update call on a single-part mechanism"
for _fn in ("C_Encrypt", "C_Decrypt", "C_Digest", "C_Sign", "C_Verify", "C_EncryptUpdate", "C_DecryptUpdate",
            "C_DigestUpdate", "C_DigestKey", "C_SignUpdate"):
    EXTRA.setdefault(_fn, {})[CKR.OPERATION_ACTIVE] = MIXED
for _fn in ("C_EncryptUpdate", "C_DecryptUpdate", "C_DigestUpdate", "C_SignUpdate", "C_VerifyUpdate"):
    EXTRA.setdefault(_fn, {})[CKR.MECHANISM_INVALID] = SINGLE_PART


def allowed(function: str) -> set[int]:
    codes, takes_session = SPEC[function]
    out = set(codes) | set(EXTRA.get(function, {}))
    if function != "C_Initialize":
        out |= BASE
    if takes_session:
        out |= SESSION
    return {int(c) for c in out}
