"""The module's log: `log.level` and `log.file` from hspkcs11.conf. Without a file,
errors go to stderr (the host's), as SoftHSM2 sends them to syslog."""
from __future__ import annotations

import logging
import os

from ..config import Config
from ..hsm.files import private_dir

log = logging.getLogger("hspkcs11")
_configured: tuple[str, str] | None = None


def configure_logging(config: Config) -> None:
    global _configured
    target = str(config.log_file) if config.log_file else ""
    if _configured == (config.log_level, target):
        return
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    if config.log_file:
        private_dir(config.log_file.parent)
        fd = os.open(config.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        handler: logging.Handler = logging.StreamHandler(os.fdopen(fd, "a"))
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s hspkcs11[%(process)d] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(config.log_level)
    log.propagate = False
    _configured = (config.log_level, target)
