"""`hspkcs11-util audit`: the region's administrative events."""
from __future__ import annotations

import json

import click

from ..hsm import audit as audit_log
from .common import config, pass_ctx


@click.command("audit")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as stored.")
@click.option("--last", type=click.IntRange(1), default=None, help="Only the last N events.")
@pass_ctx
def audit(ctx: click.Context, as_json: bool, last: int | None) -> None:
    """Show the region's audit log (register changes, zone faults, token init...).

    \b
    Example:
      hspkcs11-util audit --last 20
    """
    events = audit_log.read(config(ctx).region_dir)
    for e in events[-last:] if last else events:
        if as_json:
            click.echo(json.dumps(e, sort_keys=True))
        else:
            detail = " ".join(f"{k}={v}" for k, v in sorted(e.items()) if k not in ("time", "event", "pid", "user"))
            click.echo(f"{e['time']} {e['event']:<20} {detail} (by {e['user']}, pid {e['pid']})")


def register(cli: click.Group) -> None:
    cli.add_command(audit)
