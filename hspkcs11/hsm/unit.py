"""A crypto unit: one zone's directory with its store and master-key registers, and the
sealing of secret attributes under the unit's current master key.

A sealed blob is  b"HS1" || MKVP (16 bytes) || AES-KWP(master key, uid || region tag || payload)
(RFC 5649). The uid binds the blob to its object and the region tag (a hash of the
region name) to its region: a blob moved to another object, or copied by hand into
another region, fails to open. The tag is that of the store's `origin` region: the
region itself, or for a region restored from a backup, the backup's source region.
The MKVP says which master key opens it, so during rotation a blob is read under
whichever register holds that key.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..consts import CKR
from ..errors import P11Error
from .files import private_dir
from .keywrap import KeyWrapError, kwp_unwrap, kwp_wrap
from .masterkey import CurrentState, RegisterFile
from .store import Store

MAGIC = b"HS1"
UID_LEN = 16
TAG_LEN = 8


MKVP_LEN = 16


class UnitKeyMissing(P11Error):
    """This unit lacks the master key a call needs (its registers are empty or gone):
    a fault of the unit, so the region fails over to another (issue 13, row 7)."""


def make_blob(mkvp: str, wrapped: bytes) -> bytes:
    return MAGIC + bytes.fromhex(mkvp) + wrapped


def split_blob(blob: bytes) -> tuple[bytes, bytes]:
    """(raw MKVP, the RFC 5649 wrap) of a sealed blob."""
    return blob[len(MAGIC):len(MAGIC) + MKVP_LEN], blob[len(MAGIC) + MKVP_LEN:]


def region_tag(region: str) -> bytes:
    return hashlib.sha256(b"hspkcs11 region\0" + region.encode()).digest()[:TAG_LEN]


class CryptoUnit:
    def __init__(self, unit_dir: Path, region: str, zone: str, create: bool = False,
                 origin: str | None = None, synchronous: str = "FULL") -> None:
        self.dir, self.region, self.zone = unit_dir, region, zone
        if create:
            private_dir(unit_dir)
        self.store = Store(unit_dir / "unit.db", region, zone, create=create, origin=origin, synchronous=synchronous)
        self.registers = RegisterFile(unit_dir)
        # Blobs carry the tag of the region they were first sealed in (the store's
        # `origin`): the region itself, or for a restored region the backup's source.
        self._tag = region_tag(self.store.origin)

    @property
    def name(self) -> str:
        return f"{self.region}/{self.zone}"

    def _keys(self) -> dict[bytes, bytes]:
        """MKVP (raw) -> key, for every register holding a key."""
        regs = self.registers.read()
        keys = {}
        if regs.current_key is not None:
            keys[bytes.fromhex(regs.current_mkvp or "")] = regs.current_key
        if regs.new_key is not None:
            keys[bytes.fromhex(regs.new_mkvp or "")] = regs.new_key
        return keys

    def current(self) -> tuple[str, bytes]:
        """The current master key, or the error that tells the operator what to run."""
        regs = self.registers.read()
        if regs.current_state is not CurrentState.VALID or regs.current_key is None:
            raise UnitKeyMissing(CKR.DEVICE_ERROR,
                           f"crypto unit {self.name} has no current master key: run `hspkcs11-util "
                           "masterkey load PART PART`, `masterkey commit` and `masterkey activate`")
        assert regs.current_mkvp is not None
        return regs.current_mkvp, regs.current_key

    def require_master_key(self) -> None:
        self.current()

    def sealing_key(self) -> tuple[str, bytes]:
        """The key new blobs are sealed under: the current one, or the new one while a
        rotation is under way (so the re-wrap never chases fresh blobs)."""
        mkvp, key = self.current()
        regs = self.registers.read()
        if regs.rotating and regs.new_key is not None and regs.new_mkvp is not None:
            return regs.new_mkvp, regs.new_key
        return mkvp, key

    def loaded_mkvps(self) -> set[str]:
        regs = self.registers.read()
        return {m for m in (regs.current_mkvp, regs.new_mkvp) if m}

    def seal(self, uid: bytes, payload: bytes) -> tuple[bytes, str]:
        mkvp, key = self.sealing_key()
        return make_blob(mkvp, kwp_wrap(key, uid + self._tag + payload)), mkvp

    def unseal(self, uid: bytes, blob: bytes) -> bytes:
        if blob[:len(MAGIC)] != MAGIC:
            raise P11Error(CKR.DEVICE_ERROR, f"unit {self.name}: a sealed blob has an unknown format")
        mkvp_raw, body = split_blob(blob)
        key = self._keys().get(mkvp_raw)
        if key is None:
            raise UnitKeyMissing(CKR.DEVICE_ERROR,
                           f"unit {self.name}: key sealed under master key {mkvp_raw.hex()}, which is not "
                           "loaded; load that master key's parts (`hspkcs11-util masterkey load`)")
        try:
            plain = kwp_unwrap(key, body)
        except KeyWrapError:
            raise P11Error(CKR.DEVICE_ERROR, f"unit {self.name}: a sealed blob failed its integrity "
                           "check (tampered or corrupted store)") from None
        if plain[:UID_LEN] != uid:
            raise P11Error(CKR.DEVICE_ERROR, f"unit {self.name}: a sealed blob belongs to another object")
        if plain[UID_LEN:UID_LEN + TAG_LEN] != self._tag:
            raise P11Error(CKR.DEVICE_ERROR, f"unit {self.name}: a sealed blob was made in another region; "
                           "keys cross regions only through backup and restore")
        return plain[UID_LEN + TAG_LEN:]
