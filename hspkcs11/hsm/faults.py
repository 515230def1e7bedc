"""Zone health and injected faults, shared by every process that uses the region.

The state lives in `DATA/regions/REGION/faults.json` so that `hspkcs11-util zone down`
in one shell takes a zone away from every client at once (DESIGN "Fault injection").
A process re-reads the file only when it changed (one stat per check).

Per zone: `down` (the unit is unreachable), `delay_ms` with `delay_ops` (a slow unit),
`error_ops` (those operations fail), `corrupt` (the unit answers with corrupted rows,
which readers must detect and never serve). Operations are `read`, `write` and `seal`.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .files import bump_epoch, write_private

OPERATIONS = ("read", "write", "seal")
FILE_NAME = "faults.json"


@dataclass(frozen=True)
class ZoneFaults:
    down: bool = False
    delay_ms: int = 0
    delay_ops: tuple[str, ...] = ()
    error_ops: tuple[str, ...] = ()
    corrupt: bool = False

    @property
    def healthy(self) -> bool:
        return self == ZoneFaults()

    def describe(self) -> str:
        if self.healthy:
            return "healthy"
        parts = ["down"] if self.down else []
        if self.delay_ms:
            parts.append(f"delay {self.delay_ms} ms on {','.join(self.delay_ops) or 'all'}")
        if self.error_ops:
            parts.append(f"errors on {','.join(self.error_ops)}")
        if self.corrupt:
            parts.append("corrupt answers")
        return "; ".join(parts)


@dataclass
class FaultFile:
    region_dir: Path
    _cache: tuple[tuple[int, int], dict[str, ZoneFaults]] | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.region_dir / FILE_NAME

    def read(self) -> dict[str, ZoneFaults]:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            return {}
        if self._cache and self._cache[0] == stamp:
            return self._cache[1]
        doc = json.loads(self.path.read_text())
        zones = {z: ZoneFaults(bool(f.get("down")), int(f.get("delay_ms", 0)), tuple(f.get("delay_ops", ())),
                               tuple(f.get("error_ops", ())), bool(f.get("corrupt")))
                 for z, f in doc.get("zones", {}).items()}
        self._cache = (stamp, zones)
        return zones

    def zone(self, zone: str) -> ZoneFaults:
        return self.read().get(zone, ZoneFaults())

    def write(self, zones: dict[str, ZoneFaults]) -> None:
        doc = {"zones": {z: asdict(f) for z, f in sorted(zones.items()) if not f.healthy}}
        write_private(self.path, json.dumps(doc, indent=1).encode())
        bump_epoch(self.region_dir)
        self._cache = None

    def set(self, zone: str, **changes: object) -> ZoneFaults:
        zones = dict(self.read())
        zones[zone] = replace(zones.get(zone, ZoneFaults()), **changes)  # type: ignore[arg-type]
        self.write(zones)
        return zones[zone]

    def clear(self, zone: str) -> None:
        zones = dict(self.read())
        zones.pop(zone, None)
        self.write(zones)
