"""`hspkcs11-util backup ...`: cross-region backups of the region (now, list, verify, schedule)."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from ..config import Config
from ..hsm import audit
from ..hsm import backup as bk
from ..hsm.files import write_private
from ..hsm.region import Region
from ..hsm.replica import RegionService
from .common import Bar, Failure, config, pass_ctx


@contextmanager
def failing() -> Iterator[None]:
    """A backup error is the operator's one-line message."""
    try:
        yield
    except bk.BackupError as exc:
        raise Failure(str(exc)) from None


@click.group("backup")
def backup() -> None:
    """Backups of the region's store in the backup region (wrapped blobs only, MAC-protected)."""


@backup.command("now")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar (for cron and timers).")
@click.option("--step-pages", type=click.IntRange(1), default=bk.STEP_PAGES, show_default=True,
              help="Database pages copied per step; writers go on between steps.")
@pass_ctx
def now(ctx: click.Context, quiet: bool, step_pages: int) -> None:
    """Back up the region now, while applications keep working.

    \b
    Example:
      hspkcs11-util backup now
    """
    cfg = config(ctx)
    svc = RegionService(cfg)
    bar = Bar(f"backing up {cfg.region}", quiet)
    try:
        with failing():
            made = bk.make_backup(svc, progress=bar, step_pages=step_pages)
    finally:
        bar.close()
    m = made.backup.manifest
    click.echo(f"backup {made.backup.id} of region {cfg.region} (unit {made.zone}) written to {made.backup.path}")
    click.echo(f"  position {m['position']}, {m['tokens']} token(s), {m['objects']} object(s), "
               f"master key {m['mkvp']}, SHA-256 {m['db_sha256']}")
    for old in made.removed:
        click.echo(f"  removed {old} (backup.keep = {cfg.backup_keep})")


@backup.command("list")
@click.option("--all", "every", is_flag=True, help="Backups of every region in the backup directory.")
@click.option("--json", "as_json", is_flag=True, help="The manifests, as JSON.")
@pass_ctx
def list_cmd(ctx: click.Context, every: bool, as_json: bool) -> None:
    """List the region's backups in the backup region, oldest first.

    \b
    Example:
      hspkcs11-util backup list
    """
    cfg = config(ctx)
    found = bk.list_backups(cfg, None if every else cfg.region)
    if as_json:
        click.echo(json.dumps([b.manifest if isinstance(b, bk.Backup) else {"error": str(b)} for b in found],
                              indent=1))
        return
    click.echo(f"backups in {bk.backup_root(cfg)} (backup region {cfg.backup_region}, keep {cfg.backup_keep})")
    if not found:
        click.echo("  none yet: `hspkcs11-util backup now`")
    for b in found:
        if isinstance(b, bk.BackupError):
            click.echo(f"  DAMAGED  {b}")
            continue
        m = b.manifest
        click.echo(f"  {b.id}  {m['created']}  position {m['position']}  {m['tokens']} token(s)  "
                   f"{m['objects']} object(s)  master key {m['mkvp']}  {m['db_size']} bytes")


@backup.command("verify")
@click.argument("backup_id", metavar="ID")
@pass_ctx
def verify(ctx: click.Context, backup_id: str) -> None:
    """Check a backup's SHA-256 and its MAC (needs the master key it was made under).

    ID is one shown by `backup list`, or the path of a backup directory.

    \b
    Example:
      hspkcs11-util backup verify us-south-20260101T031700.000Z
    """
    cfg = config(ctx)
    units = Region(cfg).units() if cfg.region_dir.exists() else []
    try:
        with failing():
            done = bk.verify(cfg, backup_id, units)
    except Failure as exc:
        if cfg.region_dir.exists():
            audit.record(cfg.region_dir, "backup-verify", region=cfg.region, backup=backup_id, outcome="refused",
                         error=str(exc))
        raise
    m = done.backup.manifest
    audit.record(cfg.region_dir, "backup-verify", region=cfg.region, backup=done.backup.id, outcome="ok",
                 unit=done.mac_checked_by)
    click.echo(f"backup {done.backup.id}: SHA-256 ok, MAC ok under master key {m['mkvp']} "
               f"(checked by unit {done.mac_checked_by}); position {m['position']}, {m['tokens']} token(s), "
               f"{m['objects']} object(s)")


def util_command() -> list[str]:
    """The absolute command that runs hspkcs11-util from this installation."""
    beside = Path(os.path.abspath(sys.executable)).parent / "hspkcs11-util"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("hspkcs11-util")
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable), "-m", "hspkcs11.cli"]


def _conf_path(ctx: click.Context, cfg: Config) -> Path | None:
    given = ctx.obj.get("conf") if ctx.obj else None
    path = Path(given) if given else cfg.source
    return Path(os.path.abspath(path.expanduser())) if path else None


def schedule_units(cfg: Config, conf: Path | None, hour: int, minute: int) -> dict[str, str]:
    """cron line, systemd service and timer that run `backup now` daily."""
    command = shlex.join(util_command() + ["backup", "now", "--quiet"])
    env = f"HSPKCS11_CONF={shlex.quote(str(conf))} " if conf else ""
    name = f"hspkcs11-backup-{cfg.region}"
    service = "\n".join([
        "[Unit]",
        f"Description=hspkcs11: back up region {cfg.region} to {cfg.backup_region}",
        "",
        "[Service]",
        "Type=oneshot",
        *([f'Environment="HSPKCS11_CONF={conf}"'] if conf else []),
        f"ExecStart={command}",
        ""])
    timer = "\n".join([
        "[Unit]",
        f"Description=hspkcs11: daily backup of region {cfg.region}",
        "",
        "[Timer]",
        f"OnCalendar=*-*-* {hour:02d}:{minute:02d}:00",
        "Persistent=true",
        "RandomizedDelaySec=10min",
        "",
        "[Install]",
        "WantedBy=timers.target",
        ""])
    return {"cron": f"{minute} {hour} * * * {env}{command}", "name": name, "service": service, "timer": timer}


@backup.command("schedule")
@click.option("--at", "at", default="03:17", show_default=True, help="Time of day (HH:MM, local time).")
@click.option("--install", is_flag=True,
              help="Write the systemd user units to ~/.config/systemd/user (does not enable them).")
@pass_ctx
def schedule(ctx: click.Context, at: str, install: bool) -> None:
    """Print (or install) a daily `backup now`: a cron line and a systemd user timer.

    \b
    Example:
      hspkcs11-util backup schedule
      (crontab -l; hspkcs11-util backup schedule | sed -n 2p) | crontab -
      hspkcs11-util backup schedule --install && systemctl --user enable --now hspkcs11-backup-REGION.timer
    """
    try:
        hour, minute = (int(x) for x in at.split(":"))
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise click.BadParameter("give a time of day as HH:MM", param_hint="--at") from None
    cfg = config(ctx)
    conf = _conf_path(ctx, cfg)
    u = schedule_units(cfg, conf, hour, minute)
    if conf is None:
        click.echo("# note: no configuration file is in use, so the job uses the defaults; "
                   "set HSPKCS11_CONF to pin one", err=True)
    if install:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"
        for kind in ("service", "timer"):
            write_private(base / f"{u['name']}.{kind}", u[kind].encode())
            click.echo(f"wrote {base / (u['name'] + '.' + kind)}")
        click.echo(f"enable it with: systemctl --user daemon-reload && systemctl --user enable --now "
                   f"{u['name']}.timer")
        return
    click.echo("# cron (crontab -e):")
    click.echo(u["cron"])
    click.echo(f"\n# systemd user units: ~/.config/systemd/user/{u['name']}.service")
    click.echo(u["service"])
    click.echo(f"# ~/.config/systemd/user/{u['name']}.timer")
    click.echo(u["timer"])
    click.echo(f"# then: systemctl --user daemon-reload && systemctl --user enable --now {u['name']}.timer")


def register(cli: click.Group) -> None:
    cli.add_command(backup)
