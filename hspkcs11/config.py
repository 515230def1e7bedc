"""hspkcs11.conf: a SoftHSM-style `key = value` file (DESIGN.md "What the user sees").

Found through $HSPKCS11_CONF, then ~/.config/hspkcs11/hspkcs11.conf, then
/etc/hspkcs11/hspkcs11.conf; with none of them, the embedded defaults below apply.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """A configuration problem, phrased as what is wrong and how to fix it."""


SEARCH = (Path("~/.config/hspkcs11/hspkcs11.conf"), Path("/etc/hspkcs11/hspkcs11.conf"))
LOG_LEVELS = ("ERROR", "WARNING", "INFO", "DEBUG")
NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")     # region and zone names, as the cloud spells them
NAME_MAX = 63


def check_name(value: str) -> str:
    """A region or zone name: each becomes a directory under data.dir, so anything else
    ('..', '/', an empty name) could put units outside it. ValueError says what to do."""
    if len(value) > NAME_MAX:
        raise ValueError(f"{len(value)} characters; a region or zone name has at most {NAME_MAX}: shorten it")
    if not NAME.fullmatch(value):
        raise ValueError("a region or zone name is lowercase letters and digits, with single dashes between "
                         "them (like us-south or us-south-1): rename it")
    return value


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("~/.local/share/hspkcs11").expanduser()
    region: str = "us-south"
    zones: tuple[str, ...] = ("us-south-1", "us-south-2", "us-south-3")
    backup_region: str = "eu-de"
    backup_dir: Path | None = None
    backup_keep: int = 7
    log_level: str = "ERROR"
    log_file: Path | None = None
    pin_max_failures: int = 10
    store_synchronous: str = "FULL"
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # The file's parsers already checked these (naming the line); this also covers
        # configurations built in code, e.g. restore's target made with replace().
        for key, value in (("region", self.region), ("backup.region", self.backup_region),
                           *(("zones", z) for z in self.zones)):
            try:
                check_name(value)
            except ValueError as exc:
                raise ConfigError(f"{key} = {value!r}: {exc}") from None

    @property
    def region_dir(self) -> Path:
        return self.data_dir / "regions" / self.region

    def unit_dir(self, zone: str) -> Path:
        return self.region_dir / zone


def find() -> Path | None:
    env = os.environ.get("HSPKCS11_CONF")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"HSPKCS11_CONF names {path}, which is not a readable file: "
                              "fix the path or unset HSPKCS11_CONF")
        return path
    for candidate in SEARCH:
        path = candidate.expanduser()
        if path.is_file():
            return path
    return None


def _zones(value: str) -> tuple[str, ...]:
    zones = tuple(z.strip() for z in value.split(",") if z.strip())
    if not 2 <= len(zones) <= 3 or len(set(zones)) != len(zones):
        raise ValueError("list 2 or 3 distinct zone names, comma separated")
    for z in zones:
        try:
            check_name(z)
        except ValueError as exc:
            raise ValueError(f"zone {z!r}: {exc}") from None
    return zones


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise ValueError("must be a whole number of at least 1")
    return n


def _synchronous(value: str) -> str:
    if value.upper() not in ("FULL", "NORMAL"):
        raise ValueError("must be full (a CKR_OK write survives a power cut) or normal (faster; it survives "
                         "kill -9, but a power cut may lose the newest writes)")
    return value.upper()


def _level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise ValueError("must be one of " + ", ".join(LOG_LEVELS))
    return value.upper()


def _path(value: str) -> Path:
    return Path(value).expanduser()


def _dir(value: str) -> Path:
    # A relative (or empty, i.e. ".") directory would be resolved against wherever each
    # process happens to start, scattering units and backups.
    path = Path(value).expanduser()
    if not value or not path.is_absolute():
        raise ValueError("must be an absolute directory (like /var/lib/hspkcs11 or ~/hspkcs11): a relative or "
                         "empty one depends on the directory each process starts in")
    return path


# config key -> (Config field, parser)
KEYS = {
    "data.dir": ("data_dir", _dir),
    "region": ("region", check_name),
    "zones": ("zones", _zones),
    "backup.region": ("backup_region", check_name),
    "backup.dir": ("backup_dir", _dir),
    "backup.keep": ("backup_keep", _positive),
    "log.level": ("log_level", _level),
    "log.file": ("log_file", _path),
    "pin.max_failures": ("pin_max_failures", _positive),
    "store.synchronous": ("store_synchronous", _synchronous),
}


def parse(text: str, source: Path | None = None) -> Config:
    values: dict[str, object] = {}
    where = source or "<config>"
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep or key not in KEYS:
            known = ", ".join(KEYS)
            raise ConfigError(f"{where}:{lineno}: unknown setting '{key}' (known: {known})")
        name, parser = KEYS[key]
        try:
            values[name] = parser(value)
        except ValueError as exc:
            raise ConfigError(f"{where}:{lineno}: {key} = {value!r}: {exc}") from None
    return Config(source=source, **values)  # type: ignore[arg-type]


def load(path: Path | None = None) -> Config:
    path = path or find()
    if path is None:
        return Config()
    try:
        return parse(path.read_text(), path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
