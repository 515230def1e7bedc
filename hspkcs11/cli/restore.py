"""`hspkcs11-util restore`: a new instance of a region from a backup (disaster recovery)."""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from ..config import check_name
from ..hsm import backup as bk
from .backup import failing, util_command
from .common import Bar, config, confirm, pass_ctx


def _region_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # The name becomes a directory under data.dir: refuse '..', '/' before anything is read.
    try:
        return check_name(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from None


class ZoneBars:
    """One progress bar per zone's copy of the backup."""

    def __init__(self) -> None:
        self.zone: str | None = None
        self.bar = Bar("")

    def __call__(self, zone: str, done: int, total: int) -> None:
        if zone != self.zone:
            self.bar.close()
            self.zone, self.bar = zone, Bar(f"restoring {zone}")
        self.bar(done, total)

    def close(self) -> None:
        self.bar.close()


@click.command("restore")
@click.option("--from", "source", required=True, metavar="ID",
              help="A backup ID from `backup list`, or the path of a backup directory.")
@click.option("--region", required=True, callback=_region_name, help="The region to create (e.g. eu-de).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Data directory of the new instance (default: the configured data.dir).")
@click.option("--force", is_flag=True, help="Restore over a region whose units hold live data (replaces it).")
@click.option("--yes", is_flag=True, help="With --force: do not ask before replacing live data.")
@pass_ctx
def restore(ctx: click.Context, source: str, region: str, data_dir: Path | None, force: bool, yes: bool) -> None:
    """Create a new instance of the region from a backup.

    Its units start with empty master-key registers: tokens are visible, but keys can be
    used only once the same master key (the backup's MKVP) is loaded from its parts.

    \b
    Example:
      hspkcs11-util restore --from us-south-20260101T031700.000Z --region eu-de
    """
    cfg = config(ctx)
    if force:
        confirm(yes, f"Replace the live data of region {region} with backup {source}? Stop its applications first.")
    bars = ZoneBars()
    try:
        with failing():
            done = bk.restore(cfg, source, region, data_dir=data_dir, force=force, progress=bars)
    finally:
        bars.close()
    new, m = done.config, done.backup.manifest
    click.echo(f"restored backup {done.backup.id} (region {m['source_region']}, position {m['position']}) "
               f"into region {new.region}: zones {', '.join(new.zones)} under {new.region_dir}")
    if done.replaced:
        click.echo(f"  replaced the live data of {', '.join(done.replaced)} (--force)")
    click.echo(f"  {m['tokens']} token(s), {m['objects']} object(s); master-key registers are empty")
    util = shlex.join(util_command())
    conf = shlex.quote(str(done.conf_path))
    click.echo(f"configuration written to {done.conf_path}; to use the new instance:")
    click.echo(f"  export HSPKCS11_CONF={conf}")
    click.echo(f"  {util} masterkey load PART PART [PART]   # the parts of master key {m['mkvp']}")
    click.echo(f"  {util} masterkey commit")
    click.echo(f"  {util} masterkey activate")
    click.echo(f"  {util} status")
    click.echo("until then tokens are visible but every key use fails with CKR_DEVICE_ERROR")


def register(cli: click.Group) -> None:
    cli.add_command(restore)
