"""A pytest plugin for your own integration suites (installed with the package).

    def test_my_app_survives_a_zone_outage(hspkcs11_region):
        session = hspkcs11_region.open()                # python-pkcs11, logged in, R/W
        my_app.store_secret(session)
        hspkcs11_region.zone_down()                     # one zone of three
        assert my_app.read_secret(session)              # the service promise
        hspkcs11_region.all_zones_down()
        with pytest.raises(pkcs11.exceptions.DeviceError):
            my_app.read_secret(session)

Each test gets a scratch region (three zones, a master key loaded and active, one
initialised token), and the module re-initialised on it: `HSPKCS11_CONF` points at the
scratch configuration while the test runs. Fault helpers change the region's shared
state on disk, exactly as `hspkcs11-util zone ...` and `masterkey ...` do, so the
module sees them at once. Needs python-pkcs11 (`pip install hspkcs11[test]`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from . import module_path
from .config import Config
from .consts import CKU, SessionFlag
from .hsm import backup, masterkey as mk
from .hsm.region import Region
from .hsm.replica import RegionService
from .p11 import sessions, tokens
from .p11.state import State

_LIB: Any = None


def _lib() -> Any:
    """One python-pkcs11 handle on the module per process; re-initialised per region."""
    global _LIB
    import pkcs11
    if _LIB is None:
        _LIB = pkcs11.lib(str(module_path()))
    else:
        _LIB.reinitialize()
    return _LIB


@dataclass
class ScratchRegion:
    """A throw-away region for one test, with helpers to inject cloud-HSM faults."""

    config: Config
    conf_path: Path
    master_key: bytes
    token_label: str = "test"
    so_pin: str = "so-pin-1234"
    user_pin: str = "user-pin-1234"
    lib: Any = None
    _sessions: list[Any] = field(default_factory=list)

    @property
    def service(self) -> RegionService:
        return RegionService(self.config)

    def open(self, rw: bool = True) -> Any:
        """A logged-in python-pkcs11 session on the scratch token. Login belongs to the
        application (Base §5.6): only the first open session gives the PIN."""
        pin = None if self._sessions else self.user_pin
        s = self.lib.get_token(token_label=self.token_label).open(user_pin=pin, rw=rw)
        self._sessions.append(s)
        return s

    def zone_down(self, zone: str | None = None) -> str:
        zone = zone or self.config.zones[0]
        self.service.faults.set(zone, down=True)
        return zone

    def zone_up(self, zone: str | None = None) -> None:
        svc = self.service
        for z in [zone] if zone else list(self.config.zones):
            svc.faults.clear(z)
        with svc.write_lock():
            svc.catch_up()
        svc.close()

    def all_zones_down(self) -> None:
        for zone in self.config.zones:
            self.zone_down(zone)

    def rotation_in_progress(self) -> str:
        """A new master key loaded, committed and being rotated to (re-wrap not run):
        keys must keep working under both keys. Returns the new MKVP."""
        new = os.urandom(32)
        for unit in Region(self.config).units():
            unit.registers.load(new)
            unit.registers.commit()
            unit.registers.start_rotation()
        return mk.mkvp(new)

    def restore_pending_master_key(self, region: str = "restored") -> "ScratchRegion":
        """Back this region up and restore it as `region`, with empty master-key
        registers; the module is re-initialised on the restored region. Tokens are
        visible, key use fails with CKR_DEVICE_ERROR until `load_master_key()`."""
        svc = self.service
        made = backup.make_backup(svc)
        svc.close()
        restored = backup.restore(self.config, made.backup.id, region,
                                  data_dir=self.config.data_dir.parent / region)
        other = replace(self, config=restored.config, conf_path=restored.conf_path, _sessions=[])
        os.environ["HSPKCS11_CONF"] = str(restored.conf_path)
        self.close_sessions()
        other.lib = _lib()
        return other

    def load_master_key(self) -> None:
        for unit in Region(self.config).units():
            unit.registers.load(self.master_key)
            unit.registers.commit()
            unit.registers.activate()

    def close_sessions(self) -> None:
        for s in self._sessions:
            try:
                s.close()
            except Exception:  # noqa: BLE001 - a session the test broke on purpose
                pass
        self._sessions.clear()


def make_scratch_region(base: Path) -> ScratchRegion:
    base.mkdir(parents=True, exist_ok=True)
    config = Config(data_dir=base / "data", region="scratch", zones=("scratch-1", "scratch-2", "scratch-3"),
                    backup_region="scratch-backup", backup_dir=base / "backups", log_level="INFO",
                    log_file=base / "hspkcs11.log")
    conf_path = base / "hspkcs11.conf"
    conf_path.write_text(backup.conf_text(config))
    key = os.urandom(32)
    for unit in Region(config).init():
        unit.registers.load(key)
        unit.registers.commit()
        unit.registers.activate()
    region = ScratchRegion(config, conf_path, key)
    st = State(config)
    slot = max(st.slots())
    tokens.init_token(st, slot, region.so_pin.encode(), region.token_label.encode().ljust(32, b" "))
    h = sessions.open_session(st, slot, SessionFlag.SERIAL_SESSION | SessionFlag.RW_SESSION)
    sessions.login(st, h, CKU.SO, region.so_pin.encode())
    tokens.init_pin(st, st.session(h), region.user_pin.encode())
    st.close()
    return region


@pytest.fixture
def hspkcs11_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScratchRegion]:
    """A scratch hspkcs11 region with a token, the module (re)initialised on it."""
    region = make_scratch_region(tmp_path / "hspkcs11")
    monkeypatch.setenv("HSPKCS11_CONF", str(region.conf_path))
    region.lib = _lib()
    yield region
    region.close_sessions()
