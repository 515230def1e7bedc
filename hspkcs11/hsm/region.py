"""A region: its configured zones, each with one crypto unit (DESIGN.md "The cloud-HSM model").

For now one unit serves (the first zone that exists); replication across zones comes
with the region issue.
"""
from __future__ import annotations

from ..config import Config
from ..consts import CKR
from ..errors import P11Error
from .files import private_dir
from .store import StoreError
from .unit import CryptoUnit


class Region:
    def __init__(self, config: Config) -> None:
        self.config = config

    def init(self) -> list[CryptoUnit]:
        """Create (or open) the unit of every configured zone."""
        private_dir(self.config.region_dir)
        return [CryptoUnit(self.config.unit_dir(z), self.config.region, z, create=True)
                for z in self.config.zones]

    def units(self) -> list[CryptoUnit]:
        """The units that exist, in zone order."""
        return [CryptoUnit(self.config.unit_dir(z), self.config.region, z)
                for z in self.config.zones if (self.config.unit_dir(z) / "unit.db").exists()]

    def serving_unit(self) -> CryptoUnit:
        try:
            units = self.units()
        except StoreError as exc:
            raise P11Error(CKR.GENERAL_ERROR, str(exc)) from None
        if not units:
            raise P11Error(CKR.GENERAL_ERROR,
                           f"region {self.config.region} has no crypto units under {self.config.region_dir}: "
                           "run `hspkcs11-util region init`")
        return units[0]
