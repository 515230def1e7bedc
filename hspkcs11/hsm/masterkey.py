"""The customer-owned master key: key-part files, the MKVP, and a unit's two registers.

A master key is the XOR of 2–3 random 32-byte parts (DESIGN.md "The cloud-HSM model"),
each kept in its own file encrypted under a password (scrypt + AES-256-GCM), so no
single custodian holds the key. A unit has a *new* register (Empty -> Uncommitted ->
Committed) and a *current* one (Empty -> Valid); both live on disk so that every
process using the unit sees the same state.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.keywrap import (InvalidUnwrap, aes_key_unwrap_with_padding,
                                                    aes_key_wrap_with_padding)

from .files import bump_epoch, write_private

KEY_LEN = 32
PART_FORMAT = "hspkcs11-keypart-1"
MIN_PARTS, MAX_PARTS = 2, 3
MIN_PASSWORD = 8
_SCRYPT = {"n": 2 ** 15, "r": 8, "p": 1}


class MasterKeyError(Exception):
    """A master-key step that cannot be done, phrased as what to do instead."""


def mkvp(key: bytes) -> str:
    """Master-key verification pattern: identifies a key without revealing it."""
    return hashlib.sha256(b"hspkcs11 master key verification pattern\0" + key).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


# ---- key parts ---------------------------------------------------------------------

def _part_key(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode())


def part_new(path: Path, password: str) -> str:
    """Create a random key part protected by `password`; returns its verification pattern."""
    if len(password) < MIN_PASSWORD:
        raise MasterKeyError(f"the key-part password must have at least {MIN_PASSWORD} characters")
    if path.exists():
        raise MasterKeyError(f"{path} exists; choose another file name (a key part is never overwritten)")
    part = os.urandom(KEY_LEN)
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_part_key(password, salt, **_SCRYPT)).encrypt(nonce, part, PART_FORMAT.encode())
    doc = {"format": PART_FORMAT, "kdf": {"name": "scrypt", **_SCRYPT, "salt": _b64(salt)},
           "nonce": _b64(nonce), "part": _b64(sealed), "vp": mkvp(part)[:16]}
    write_private(path, json.dumps(doc, indent=1).encode())
    return doc["vp"]


def part_read(path: Path, password: str) -> bytes:
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != PART_FORMAT:
            raise ValueError("format")
        kdf = doc["kdf"]
        key = _part_key(password, _unb64(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"])
        part = AESGCM(key).decrypt(_unb64(doc["nonce"]), _unb64(doc["part"]), PART_FORMAT.encode())
    except OSError as exc:
        raise MasterKeyError(f"cannot read key part {path}: {exc.strerror}") from None
    except InvalidTag:
        raise MasterKeyError(f"wrong password for key part {path} (or the file was altered)") from None
    except (ValueError, KeyError, TypeError):
        raise MasterKeyError(f"{path} is not an hspkcs11 key-part file") from None
    if len(part) != KEY_LEN:
        raise MasterKeyError(f"{path} holds a key part of the wrong length")
    return part


def combine(parts: list[bytes]) -> bytes:
    if not MIN_PARTS <= len(parts) <= MAX_PARTS:
        raise MasterKeyError(f"a master key is made of {MIN_PARTS} or {MAX_PARTS} key parts, "
                             f"got {len(parts)}")
    if len(set(parts)) != len(parts):
        raise MasterKeyError("the same key part was given twice")
    key = bytes(KEY_LEN)
    for part in parts:
        key = bytes(a ^ b for a, b in zip(key, part))
    return key


# ---- registers ---------------------------------------------------------------------

class NewState(str, Enum):
    EMPTY = "empty"
    UNCOMMITTED = "full-uncommitted"
    COMMITTED = "full-committed"


class CurrentState(str, Enum):
    EMPTY = "empty"
    VALID = "valid"


@dataclass(frozen=True)
class Registers:
    new_state: NewState = NewState.EMPTY
    new_mkvp: str | None = None
    new_key: bytes | None = None
    current_state: CurrentState = CurrentState.EMPTY
    current_mkvp: str | None = None
    current_key: bytes | None = None
    rotating: bool = False       # a re-wrap from current to new is under way: seal under new


class RegisterFile:
    """A unit's registers on disk. Keys are wrapped under the unit's device key, which
    stands in for the HSM's tamper-protected memory (docs/security.md says what this
    can and cannot protect in software)."""

    def __init__(self, unit_dir: Path) -> None:
        self.path = unit_dir / "registers.json"
        self._path = str(self.path)            # stat()ed per call: no pathlib on that path
        self._device_key_path = unit_dir / "device.key"
        self._cache: tuple[tuple[int, int], Registers] | None = None

    def _device_key(self) -> bytes:
        if not self._device_key_path.exists():
            write_private(self._device_key_path, os.urandom(KEY_LEN))
        return self._device_key_path.read_bytes()

    def _stamp(self) -> tuple[int, int]:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return (0, 0)
        return (st.st_mtime_ns, st.st_ino)

    def read(self) -> Registers:
        """The registers, re-read only when the file changed (one stat per call)."""
        stamp = self._stamp()
        if self._cache and self._cache[0] == stamp:
            return self._cache[1]
        regs = Registers()
        if stamp != (0, 0):
            try:
                doc = json.loads(self.path.read_text())
            except ValueError:
                raise MasterKeyError(f"{self.path}: the register file is not valid JSON; the unit is "
                                     "damaged") from None
            dk = self._device_key()

            def unwrap(field: str) -> bytes | None:
                value = doc.get(field)
                if value is None:
                    return None
                try:
                    return aes_key_unwrap_with_padding(dk, _unb64(value))
                except InvalidUnwrap:
                    raise MasterKeyError(f"{self.path}: a register does not open under the unit's "
                                         "device key; the unit is damaged") from None

            try:
                regs = Registers(NewState(doc["new_state"]), doc.get("new_mkvp"), unwrap("new_key"),
                                 CurrentState(doc["current_state"]), doc.get("current_mkvp"),
                                 unwrap("current_key"), bool(doc.get("rotating", False)))
            except (KeyError, ValueError, TypeError, AttributeError):
                raise MasterKeyError(f"{self.path}: the register file is damaged") from None
            # The MKVPs are kept in the clear beside the wrapped keys: they must name them.
            for key, shown in ((regs.new_key, regs.new_mkvp), (regs.current_key, regs.current_mkvp)):
                if key is not None and mkvp(key) != shown:
                    raise MasterKeyError(f"{self.path}: a register's MKVP does not match its key; "
                                         "the unit is damaged")
        self._cache = (stamp, regs)
        return regs

    def write(self, regs: Registers) -> None:
        dk = self._device_key()

        def wrap(key: bytes | None) -> str | None:
            return None if key is None else _b64(aes_key_wrap_with_padding(dk, key))

        doc = {"new_state": regs.new_state.value, "new_mkvp": regs.new_mkvp, "new_key": wrap(regs.new_key),
               "current_state": regs.current_state.value, "current_mkvp": regs.current_mkvp,
               "current_key": wrap(regs.current_key), "rotating": regs.rotating}
        write_private(self.path, json.dumps(doc, indent=1).encode())
        bump_epoch(self.path.parent.parent)      # the unit's region directory
        self._cache = None

    # ---- transitions (the cloud service's console steps) -------------------------------

    def load(self, key: bytes) -> Registers:
        regs = self.read()
        if regs.new_state is not NewState.EMPTY:
            raise MasterKeyError(f"the new-master-key register is {regs.new_state.value} "
                                 f"(MKVP {regs.new_mkvp}); run `hspkcs11-util masterkey clear-new` first")
        regs = replace(regs, new_state=NewState.UNCOMMITTED, new_mkvp=mkvp(key), new_key=key)
        self.write(regs)
        return regs

    def commit(self) -> Registers:
        regs = self.read()
        if regs.new_state is not NewState.UNCOMMITTED:
            raise MasterKeyError(f"nothing to commit: the new-master-key register is {regs.new_state.value}; "
                                 "load key parts with `hspkcs11-util masterkey load PART PART`")
        regs = replace(regs, new_state=NewState.COMMITTED)
        self.write(regs)
        return regs

    def activate(self) -> Registers:
        """Make the committed new key current. The caller checks no blob needs re-wrapping."""
        regs = self.read()
        if regs.new_state is not NewState.COMMITTED:
            raise MasterKeyError(f"the new-master-key register is {regs.new_state.value}, not committed; "
                                 "run `hspkcs11-util masterkey commit` first")
        regs = Registers(current_state=CurrentState.VALID, current_mkvp=regs.new_mkvp,
                         current_key=regs.new_key)
        self.write(regs)
        return regs

    def start_rotation(self) -> Registers:
        """From now on new blobs are sealed under the new key; the re-wrap moves the rest."""
        regs = self.read()
        if regs.current_state is not CurrentState.VALID:
            raise MasterKeyError("there is no current master key to rotate from; use `masterkey activate`")
        if regs.new_state is not NewState.COMMITTED:
            raise MasterKeyError(f"the new-master-key register is {regs.new_state.value}; load the new key's "
                                 "parts (`masterkey load`) and `masterkey commit` before rotating")
        if not regs.rotating:
            regs = replace(regs, rotating=True)
            self.write(regs)
        return regs

    def finish_rotation(self) -> Registers:
        """The new key becomes current and the old one is cleared (every blob re-wrapped)."""
        regs = self.read()
        if not regs.rotating or regs.new_key is None:
            raise MasterKeyError("no rotation is under way")
        regs = Registers(current_state=CurrentState.VALID, current_mkvp=regs.new_mkvp, current_key=regs.new_key)
        self.write(regs)
        return regs

    def clear_new(self) -> Registers:
        if self.read().rotating:
            raise MasterKeyError("a rotation to the new master key is under way; finish it with "
                                 "`hspkcs11-util masterkey rotate`")
        regs = replace(self.read(), new_state=NewState.EMPTY, new_mkvp=None, new_key=None)
        self.write(regs)
        return regs
