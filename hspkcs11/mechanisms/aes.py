"""AES (PKCS#11 v2.40 Current Mechanisms: "AES", "AES with Counter", "Additional AES
Mechanisms" (GCM), "AES CMAC", "Key derivation by data encryption"): the CKK_AES key
type and its mechanisms. CTS, CCM, GMAC and AES_MAC are not offered.

Key sizes in mechanism infos are in bytes (16..32), as the spec and SoftHSM2 give them.
The ECB/CBC/CBC_PAD machinery here (`BlockCipher`, `block_mode_ops`) is shared with
`des3.py`: only the block cipher differs.
"""
from __future__ import annotations

import hmac as _hmac
import os
from dataclasses import dataclass
from typing import Any, Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import cmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..consts import CKA, CKK, CKM, CKR, MechFlag
from ..errors import P11Error
from .generic import VARIABLE_SECRET_ATTRS, secret_len, template_value_len
from .params import CbcEncryptData, CtrParams, GcmParams, Param, ParamKind
from .registry import (Attrs, CipherOp, KeyTypeSpec, KeyView, Mechanism, SignOp, Template,
                       VerifyBySigning, register, register_key_type, require_param)

WRAP_FLAGS = MechFlag.WRAP | MechFlag.UNWRAP


# --- block modes shared with DES3 -----------------------------------------------------

class BlockOp(CipherOp):
    """ECB or CBC without padding. `cryptography`'s context keeps a partial block
    between updates and returns whole blocks only; a partial block still there at
    final is CKR_DATA_LEN_RANGE (encrypt) or CKR_ENCRYPTED_DATA_LEN_RANGE (decrypt)."""

    def __init__(self, ctx: Any, block: int, len_error: CKR) -> None:
        self._ctx = ctx
        self._block = block
        self._len_error = len_error
        self._total = 0

    def update(self, data: bytes) -> bytes:
        self._total += len(data)
        return self._ctx.update(data)

    def final(self) -> bytes:
        if self._total % self._block:
            raise P11Error(self._len_error, f"{self._total} bytes is not whole blocks")
        return self._ctx.finalize()


class PadEncryptOp(CipherOp):
    """CBC with PKCS#7 padding (RFC 5652 §6.3), encrypt: always adds 1..block bytes."""

    def __init__(self, ctx: Any, block: int) -> None:
        self._ctx = ctx
        self._padder = padding.PKCS7(block * 8).padder()

    def update(self, data: bytes) -> bytes:
        return self._ctx.update(self._padder.update(data))

    def final(self) -> bytes:
        return self._ctx.update(self._padder.finalize()) + self._ctx.finalize()


class PadDecryptOp(CipherOp):
    """CBC with PKCS#7 padding, decrypt. The unpadder holds back the last plaintext
    block until final, where the padding is checked (bad -> ENCRYPTED_DATA_INVALID)."""

    def __init__(self, ctx: Any, block: int) -> None:
        self._ctx = ctx
        self._block = block
        self._unpadder = padding.PKCS7(block * 8).unpadder()
        self._total = 0

    def update(self, data: bytes) -> bytes:
        self._total += len(data)
        return self._unpadder.update(self._ctx.update(data))

    def final(self) -> bytes:
        if self._total == 0 or self._total % self._block:
            raise P11Error(CKR.ENCRYPTED_DATA_LEN_RANGE, f"{self._total} bytes of CBC_PAD data")
        last = self._unpadder.update(self._ctx.finalize())
        try:
            return last + self._unpadder.finalize()
        except ValueError:
            raise P11Error(CKR.ENCRYPTED_DATA_INVALID, "bad PKCS#7 padding") from None


@dataclass(frozen=True)
class BlockCipher:
    """What the block-mode factories need to know of one block cipher."""

    algorithm: Callable[[bytes], CipherAlgorithm]
    block: int                 # bytes
    key_lens: frozenset[int]   # valid CKA_VALUE lengths, bytes

    def key(self, key: KeyView) -> CipherAlgorithm:
        value = key.secret()
        if len(value) not in self.key_lens:
            raise P11Error(CKR.KEY_SIZE_RANGE, f"key of {len(value)} bytes")
        return self.algorithm(value)

    def iv(self, param: Param) -> bytes:
        iv = require_param(param, bytes)
        if len(iv) != self.block:
            raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"IV of {len(iv)} bytes")
        return iv

    def checked_data(self, data: bytes) -> bytes:
        """Data of an ENCRYPT_DATA derivation: whole blocks, at least one."""
        if not data or len(data) % self.block:
            raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"derivation data of {len(data)} bytes")
        return data


def block_mode_ops(cipher: BlockCipher, chained: bool, pad: bool) -> dict[str, Callable]:
    """encrypt/decrypt factories for ECB (chained=False), CBC, or CBC_PAD (pad=True)."""

    def mode(param: Param) -> modes.Mode:
        return modes.CBC(cipher.iv(param)) if chained else modes.ECB()

    def encrypt(key: KeyView, param: Param) -> CipherOp:
        ctx = Cipher(cipher.key(key), mode(param)).encryptor()
        if pad:
            return PadEncryptOp(ctx, cipher.block)
        return BlockOp(ctx, cipher.block, CKR.DATA_LEN_RANGE)

    def decrypt(key: KeyView, param: Param) -> CipherOp:
        ctx = Cipher(cipher.key(key), mode(param)).decryptor()
        if pad:
            return PadDecryptOp(ctx, cipher.block)
        return BlockOp(ctx, cipher.block, CKR.ENCRYPTED_DATA_LEN_RANGE)

    return {"encrypt": encrypt, "decrypt": decrypt}


def encrypt_data_derive(cipher: BlockCipher, chained: bool) -> Callable:
    """<cipher>_ECB_ENCRYPT_DATA / <cipher>_CBC_ENCRYPT_DATA ("Key derivation by data
    encryption"): the new key's value is the parameter data encrypted under the base key."""

    def derive(key: KeyView, param: Param, template: Template) -> bytes:
        if chained:
            p = require_param(param, CbcEncryptData)
            if len(p.iv) != cipher.block:
                raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"IV of {len(p.iv)} bytes")
            data, mode = cipher.checked_data(p.data), modes.CBC(p.iv)
        else:
            data, mode = cipher.checked_data(require_param(param, bytes)), modes.ECB()
        wanted = template.get(CKA.VALUE_LEN)
        if wanted is not None and wanted > len(data):
            # The data is the parameter: too little of it for the key asked for.
            raise P11Error(CKR.MECHANISM_PARAM_INVALID,
                           f"{len(data)} bytes of data cannot make a key of {wanted} bytes")
        ctx = Cipher(cipher.key(key), mode).encryptor()
        return ctx.update(data) + ctx.finalize()

    return derive


# --- AES ------------------------------------------------------------------------------

AES_KEY_LENS = frozenset((16, 24, 32))
AES = BlockCipher(algorithms.AES, 16, AES_KEY_LENS)
AES_SIZES = {"key_types": (CKK.AES,), "min_key": 16, "max_key": 32}


def _check_aes_value(value: bytes) -> None:
    if len(value) not in AES_KEY_LENS:
        raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"AES key of {len(value)} bytes")


def _generate(template: Template, param: Param) -> Attrs:
    # SoftHSM2 answers a bad CKA_VALUE_LEN with CKR_ATTRIBUTE_VALUE_INVALID: a template
    # value is wrong, no key exists yet whose size could be out of range.
    n = template_value_len(template)
    if n not in AES_KEY_LENS:
        raise P11Error(CKR.ATTRIBUTE_VALUE_INVALID, f"AES key of {n} bytes")
    return {CKA.VALUE: os.urandom(n), CKA.KEY_TYPE: CKK.AES}


class CtrOp(CipherOp):
    """AES-CTR ("AES with Counter", CK_AES_CTR_PARAMS). The low `ulCounterBits` bits of the
    counter block are the counter; `cryptography` increments all 128 bits, which is the
    same until the counter would wrap into the nonce bits: refuse that instead."""

    def __init__(self, key: KeyView, param: Param, len_error: CKR) -> None:
        p = require_param(param, CtrParams)
        if len(p.cb) != 16 or not 1 <= p.counter_bits <= 128:
            raise P11Error(CKR.MECHANISM_PARAM_INVALID,
                           f"counter block of {len(p.cb)} bytes, {p.counter_bits} counter bits")
        counter = int.from_bytes(p.cb, "big") & ((1 << p.counter_bits) - 1)
        # a full 128-bit counter wraps mod 2**128, as cryptography does
        self._blocks_left = None if p.counter_bits == 128 else (1 << p.counter_bits) - counter
        self._ctx = Cipher(AES.key(key), modes.CTR(p.cb)).encryptor()
        self._len_error = len_error
        self._total = 0

    def update(self, data: bytes) -> bytes:
        self._total += len(data)
        if self._blocks_left is not None and -(-self._total // 16) > self._blocks_left:
            raise P11Error(self._len_error, "the CTR counter would wrap")
        return self._ctx.update(data)

    def final(self) -> bytes:
        return self._ctx.finalize()


def _gcm_params(param: Param) -> tuple[bytes, bytes, int]:
    """(iv, aad, tag length in bytes) of CK_GCM_PARAMS (v2.40 "AES-GCM"). The spec allows
    ulTagBits 0..128 (whole bytes here, as SoftHSM2) and IVs of 1..256 bytes; `cryptography`
    takes IVs of 8..128 bytes only, so shorter or longer IVs are refused."""
    p = require_param(param, GcmParams)
    if p.tag_bits % 8 or not 0 <= p.tag_bits <= 128:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"GCM tag of {p.tag_bits} bits")
    if not 8 <= len(p.iv) <= 128:
        raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"GCM IV of {len(p.iv)} bytes")
    return p.iv, p.aad, p.tag_bits // 8


def _gcm_encrypt(key: bytes, iv: bytes, aad: bytes, data: bytes) -> tuple[bytes, bytes]:
    """(ciphertext, full 16-byte tag)."""
    out = AESGCM(key).encrypt(iv, data, aad)
    return out[:-16], out[-16:]


class GcmEncryptOp(CipherOp):
    """AES-GCM encrypt: the ciphertext streams out, final appends the (truncated) tag."""

    def __init__(self, key: KeyView, param: Param) -> None:
        self._iv, self._aad, self._tag_len = _gcm_params(param)
        self._key = AES.key(key).key
        self._ctx: Any = None   # built on first update: single-part calls use AESGCM

    def update(self, data: bytes) -> bytes:
        if self._ctx is None:
            self._ctx = Cipher(algorithms.AES(self._key), modes.GCM(self._iv)).encryptor()
            self._ctx.authenticate_additional_data(self._aad)
        return self._ctx.update(data)

    def final(self) -> bytes:
        if self._ctx is None:
            return self.oneshot(b"")
        return self._ctx.finalize() + self._ctx.tag[:self._tag_len]

    def oneshot(self, data: bytes) -> bytes:
        ct, tag = _gcm_encrypt(self._key, self._iv, self._aad, data)
        return ct + tag[:self._tag_len]


class GcmDecryptOp(CipherOp):
    """AES-GCM decrypt. The spec (v2.40 "AES-GCM") lets no plaintext out before the tag is
    verified, so updates only collect; final checks the tag and returns everything."""

    def __init__(self, key: KeyView, param: Param) -> None:
        self._iv, self._aad, self._tag_len = _gcm_params(param)
        self._key = AES.key(key).key
        self._buf = bytearray()

    def update(self, data: bytes) -> bytes:
        self._buf += data
        return b""

    def final(self) -> bytes:
        return self.oneshot(b"")

    def oneshot(self, data: bytes) -> bytes:
        data = bytes(self._buf) + data if self._buf else data
        n = self._tag_len
        if len(data) < n:
            raise P11Error(CKR.ENCRYPTED_DATA_LEN_RANGE, "shorter than the GCM tag")
        ct, tag = (data[:-n], data[-n:]) if n else (data, b"")
        try:
            if n == 16:
                return AESGCM(self._key).decrypt(self._iv, data, self._aad)
            if n >= 4:     # `cryptography` verifies truncated tags down to 4 bytes
                ctx = Cipher(algorithms.AES(self._key),
                             modes.GCM(self._iv, tag, min_tag_length=n)).decryptor()
                ctx.authenticate_additional_data(self._aad)
                return ctx.update(ct) + ctx.finalize()
        except InvalidTag:
            raise P11Error(CKR.ENCRYPTED_DATA_INVALID, "GCM tag mismatch") from None
        # Tags of 0..3 bytes: GCM's keystream is the same both ways, so "encrypting" the
        # ciphertext gives the plaintext; encrypting that again gives the full tag to check.
        plain, _ = _gcm_encrypt(self._key, self._iv, b"", ct)
        _, full = _gcm_encrypt(self._key, self._iv, self._aad, plain)
        if not _hmac.compare_digest(full[:n], tag):
            raise P11Error(CKR.ENCRYPTED_DATA_INVALID, "GCM tag mismatch")
        return plain


class CmacSign(SignOp):
    """CMAC (NIST SP 800-38B), cut to `length` bytes for CKM_AES_CMAC_GENERAL."""

    def __init__(self, algorithm: CipherAlgorithm, length: int) -> None:
        self._mac = cmac.CMAC(algorithm)
        self._len = length

    def update(self, data: bytes) -> None:
        self._mac.update(data)

    def final(self) -> bytes:
        return self._mac.finalize()[:self._len]


def cmac_ops(cipher: BlockCipher, mac_len: int) -> tuple[dict[str, Callable], dict[str, Callable]]:
    """sign/verify factories of <cipher>_CMAC (a full-block MAC) and <cipher>_CMAC_GENERAL
    (CK_MAC_GENERAL_PARAMS: a MAC of 1..block bytes), SP 800-38B over any block cipher."""

    def general_len(param: Param) -> int:
        n = require_param(param, int)
        if not 1 <= n <= mac_len:
            raise P11Error(CKR.MECHANISM_PARAM_INVALID, f"CMAC length {n}, not 1..{mac_len}")
        return n

    def sign(key: KeyView, param: Param) -> SignOp:
        return CmacSign(cipher.key(key), mac_len)

    def general_sign(key: KeyView, param: Param) -> SignOp:
        return CmacSign(cipher.key(key), general_len(param))

    return ({"sign": sign, "verify": lambda key, param: VerifyBySigning(sign(key, param))},
            {"sign": general_sign, "verify": lambda key, param: VerifyBySigning(general_sign(key, param))})


_CMAC, _CMAC_GENERAL = cmac_ops(AES, 16)


register_key_type(KeyTypeSpec(CKK.AES, VARIABLE_SECRET_ATTRS, size=secret_len,
                              check_value=_check_aes_value))

register(
    Mechanism(CKM.AES_KEY_GEN, min_key=16, max_key=32, generate=_generate),
    Mechanism(CKM.AES_ECB, **AES_SIZES, extra_flags=WRAP_FLAGS, wrap_pad=16,
              **block_mode_ops(AES, chained=False, pad=False)),
    Mechanism(CKM.AES_CBC, **AES_SIZES, param=ParamKind.RAW, extra_flags=WRAP_FLAGS, wrap_pad=16,
              **block_mode_ops(AES, chained=True, pad=False)),
    Mechanism(CKM.AES_CBC_PAD, **AES_SIZES, param=ParamKind.RAW, extra_flags=WRAP_FLAGS,
              **block_mode_ops(AES, chained=True, pad=True)),
    Mechanism(CKM.AES_CTR, **AES_SIZES, param=ParamKind.CTR,
              encrypt=lambda key, param: CtrOp(key, param, CKR.DATA_LEN_RANGE),
              decrypt=lambda key, param: CtrOp(key, param, CKR.ENCRYPTED_DATA_LEN_RANGE)),
    Mechanism(CKM.AES_GCM, **AES_SIZES, param=ParamKind.GCM,
              encrypt=GcmEncryptOp, decrypt=GcmDecryptOp),
    Mechanism(CKM.AES_CMAC, **AES_SIZES, **_CMAC),
    Mechanism(CKM.AES_CMAC_GENERAL, **AES_SIZES, param=ParamKind.ULONG,
              **_CMAC_GENERAL),
    Mechanism(CKM.AES_ECB_ENCRYPT_DATA, **AES_SIZES, param=ParamKind.DERIVATION_STRING,
              derive=encrypt_data_derive(AES, chained=False)),
    Mechanism(CKM.AES_CBC_ENCRYPT_DATA, **AES_SIZES, param=ParamKind.AES_CBC_DATA,
              derive=encrypt_data_derive(AES, chained=True)),
)
