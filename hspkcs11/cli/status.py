"""`hspkcs11-util status`: every unit's health, master keys, position, lag and objects."""
from __future__ import annotations

import json
from typing import Any

import click

from ..hsm.masterkey import MasterKeyError, Registers
from ..hsm.replica import UNIT_FAILURES, RegionService
from .common import config, pass_ctx


def unit_status(svc: RegionService) -> list[dict[str, Any]]:
    faults = svc.faults.read()
    rows = []
    for unit in svc.units:
        try:
            regs = unit.registers.read()
        except MasterKeyError:            # a damaged register file: shown as refused, with empty registers
            regs = Registers()
        row: dict[str, Any] = {
            "zone": unit.zone,
            "health": faults[unit.zone].describe() if unit.zone in faults else "healthy",
            "refused": svc.refusal(unit),
            "current_mkvp": regs.current_mkvp, "current_state": regs.current_state.value,
            "new_mkvp": regs.new_mkvp, "new_state": regs.new_state.value,
        }
        try:
            row.update(position=unit.store.position(), objects=unit.store.count_objects(),
                       tokens=len(unit.store.tokens()))
        except UNIT_FAILURES as exc:
            row.update(position=None, objects=None, tokens=None, error=str(exc))
        rows.append(row)
    for zone, why in svc.broken.items():
        rows.append({"zone": zone, "health": "does not open", "refused": why, "current_mkvp": None,
                     "current_state": None, "new_mkvp": None, "new_state": None, "position": None,
                     "objects": None, "tokens": None, "error": why})
    rows.sort(key=lambda r: svc.config.zones.index(r["zone"]))
    head = max((r["position"] for r in rows if r["position"] is not None), default=0)
    for r in rows:
        r["lag"] = None if r["position"] is None else head - r["position"]
    return rows


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status(ctx: click.Context, as_json: bool) -> None:
    """Show every crypto unit of the region.

    \b
    Example:
      hspkcs11-util status --json | jq '.units[] | {zone, health, lag}'
    """
    svc = RegionService(config(ctx))
    rows = unit_status(svc)
    if as_json:
        click.echo(json.dumps({"region": svc.name, "units": rows}, indent=1))
        return
    click.echo(f"region {svc.name}")
    for r in rows:
        health = r["health"] + (f"; refused: {r['refused']}" if r["refused"] else "")
        click.echo(f"  {r['zone']}: {health}")
        click.echo(f"    current master key {r['current_state']} {r['current_mkvp'] or '-'}; "
                   f"new {r['new_state']} {r['new_mkvp'] or '-'}")
        click.echo(f"    position {r['position']} (lag {r['lag']}), {r['tokens']} token(s), "
                   f"{r['objects']} object(s)")


def register(cli: click.Group) -> None:
    cli.add_command(status)
