"""The region's audit log: append-only JSON lines of administrative events.

Register changes, zone faults and recoveries, token initialisation, backups and
restores are written here by whichever process did them (O_APPEND keeps concurrent
writers' lines whole). Never a PIN, a password or a key byte.
"""
from __future__ import annotations

import getpass
import json
import os
import time
from pathlib import Path
from typing import Any

from .files import private_dir

FILE_NAME = "audit.jsonl"


def record(region_dir: Path, event: str, **detail: Any) -> None:
    """Append one event: time, actor (OS user and pid), and its details; `outcome` is
    "ok" unless the caller says otherwise, and `zone` names the unit where there is one."""
    private_dir(region_dir)
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event,
                       "pid": os.getpid(), "user": _user(), "outcome": "ok", **detail}, sort_keys=True)
    fd = os.open(region_dir / FILE_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read(region_dir: Path) -> list[dict[str, Any]]:
    path = region_dir / FILE_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
