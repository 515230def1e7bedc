"""A region's units as the operator creates and lists them (DESIGN.md "The cloud-HSM
model"); `replica.RegionService` is the same region as the engine serves it."""
from __future__ import annotations

from ..config import Config
from .files import private_dir
from .unit import CryptoUnit


class Region:
    def __init__(self, config: Config) -> None:
        self.config = config

    def init(self) -> list[CryptoUnit]:
        """Create (or open) the unit of every configured zone. A unit added to a region
        restored from a backup takes its peers' `origin`, so it opens their blobs."""
        private_dir(self.config.region_dir)
        origin = next((u.store.origin for u in self.units()), None)
        return [CryptoUnit(self.config.unit_dir(z), self.config.region, z, create=True, origin=origin)
                for z in self.config.zones]

    def units(self) -> list[CryptoUnit]:
        """The units that exist, in zone order."""
        return [CryptoUnit(self.config.unit_dir(z), self.config.region, z)
                for z in self.config.zones if (self.config.unit_dir(z) / "unit.db").exists()]
