"""`hspkcs11-util region ...`: the crypto units of the configured region."""
from __future__ import annotations

import click

from ..hsm import audit
from ..hsm.region import Region
from .common import config, pass_ctx


@click.group("region")
def region() -> None:
    """Create and inspect the region's crypto units."""


@region.command("init")
@pass_ctx
def init(ctx: click.Context) -> None:
    """Create a crypto unit for every zone of the configured region.

    \b
    Example:
      HSPKCS11_CONF=./hspkcs11.conf hspkcs11-util region init
    """
    cfg = config(ctx)
    units = Region(cfg).init()
    for unit in units:
        click.echo(f"unit {unit.name}: {unit.dir}")
    audit.record(cfg.region_dir, "region-init", region=cfg.region, zones=list(cfg.zones))
    click.echo("next: create key parts with `hspkcs11-util masterkey part-new FILE` and load them")


def register(cli: click.Group) -> None:
    cli.add_command(region)
