"""`hspkcs11-util zone ...`: take zones down and up, inject finer faults (runbook drills)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import click

from ..hsm.faults import OPERATIONS, RESET_COMMAND, FaultFileError
from ..hsm.replica import RegionService
from .common import Failure, config, pass_ctx


def _service(ctx: click.Context, zone: str | None = None) -> RegionService:
    svc = RegionService(config(ctx))
    if zone is not None and zone not in svc.config.zones:
        raise Failure(f"no zone {zone!r} in region {svc.name}; its zones are {', '.join(svc.config.zones)}")
    return svc


@contextmanager
def _fault_file() -> Iterator[None]:
    """A damaged or long-locked fault file is the operator's to fix: one line, exit 1."""
    try:
        yield
    except FaultFileError as exc:
        raise Failure(str(exc)) from exc


def _ops(value: str) -> tuple[str, ...]:
    ops = tuple(o.strip() for o in value.split(",") if o.strip())
    bad = [o for o in ops if o not in OPERATIONS]
    if bad:
        raise click.BadParameter(f"unknown operation(s) {', '.join(bad)}; choose from {', '.join(OPERATIONS)}")
    return ops


@click.group("zone")
def zone() -> None:
    """Zone health and fault injection, seen by every process that uses the region."""


@zone.command("list")
@pass_ctx
def list_zones(ctx: click.Context) -> None:
    """List the zones with their health.

    \b
    Example:
      hspkcs11-util zone list
    """
    svc = _service(ctx)
    damaged = svc.faults.check()
    faults = svc.faults.read()
    for unit in svc.units:
        health = faults[unit.zone].describe() if unit.zone in faults else "healthy"
        if damaged:              # this process has no good view: say so rather than "healthy"
            health = "unknown (the fault file is damaged)"
        refusal = svc.refusal(unit)
        click.echo(f"{unit.zone}: {health}{'; refused: ' + refusal if refusal else ''}")
    if damaged:
        raise Failure(f"fault file {svc.faults.path} is damaged ({damaged}): run `{RESET_COMMAND}` to rewrite "
                      "it with every zone healthy")


@zone.command("down")
@click.argument("name")
@pass_ctx
def down(ctx: click.Context, name: str) -> None:
    """Take ZONE's crypto unit away from every client (a zone outage).

    \b
    Example:
      hspkcs11-util zone down us-south-2
    """
    svc = _service(ctx, name)
    with _fault_file():
        svc.faults.set(name, down=True)
    svc.record("zone-down", zone=name)
    click.echo(f"zone {name} is down; clients fail over to the other zones")


@zone.command("up")
@click.argument("name")
@pass_ctx
def up(ctx: click.Context, name: str) -> None:
    """Bring ZONE back: its unit catches up from a peer, then serves again.

    \b
    Example:
      hspkcs11-util zone up us-south-2
    """
    svc = _service(ctx, name)
    with _fault_file():
        svc.faults.clear(name)
    with svc.write_lock():
        def report(zone: str, n: int) -> None:
            click.echo(f"zone {zone}: caught up {n} change(s)")
        svc.catch_up(progress=report)
    svc.record("zone-up", zone=name)
    click.echo(f"zone {name} is up and serving")


@zone.command("fault")
@click.argument("name")
@click.option("--delay-ms", type=click.IntRange(0, 60000), default=None, help="Delay each operation by N ms.")
@click.option("--delay-ops", default=None, help=f"Operations to delay (default: all of {','.join(OPERATIONS)}).")
@click.option("--error-ops", default=None, help=f"Operations that fail ({','.join(OPERATIONS)}).")
@click.option("--corrupt/--no-corrupt", default=None, help="Answer reads with corrupted rows.")
@pass_ctx
def fault(ctx: click.Context, name: str, delay_ms: int | None, delay_ops: str | None, error_ops: str | None,
          corrupt: bool | None) -> None:
    """Inject a finer fault into ZONE's unit (a slow unit, failing operations, bad data).

    \b
    Example:
      hspkcs11-util zone fault us-south-1 --delay-ms 200 --delay-ops read
      hspkcs11-util zone fault us-south-3 --error-ops write
    """
    changes: dict[str, object] = {}
    if delay_ms is not None:
        changes["delay_ms"] = delay_ms
    if delay_ops is not None:
        changes["delay_ops"] = _ops(delay_ops)
    if error_ops is not None:
        changes["error_ops"] = _ops(error_ops)
    if corrupt is not None:
        changes["corrupt"] = corrupt
    if not changes:
        raise Failure("give at least one of --delay-ms, --delay-ops, --error-ops, --corrupt")
    svc = _service(ctx, name)
    with _fault_file():
        now = svc.faults.set(name, **changes)
    svc.record("zone-fault", zone=name, fault=now.describe())
    click.echo(f"zone {name}: {now.describe()}")


@zone.command("clear")
@click.argument("name")
@pass_ctx
def clear(ctx: click.Context, name: str) -> None:
    """Remove every fault of ZONE (same as `zone up`).

    \b
    Example:
      hspkcs11-util zone clear us-south-1
    """
    ctx.invoke(up, name=name)


@zone.command("reset-faults")
@pass_ctx
def reset_faults(ctx: click.Context) -> None:
    """Rewrite the fault file with every zone healthy (the fix for a damaged file).

    Zones that were down catch up from a peer before they serve, as with `zone up`.

    \b
    Example:
      hspkcs11-util zone reset-faults
    """
    svc = _service(ctx)
    with _fault_file():
        damaged = svc.faults.reset()
    # Recorded before the catch-up: the file is rewritten whether or not that succeeds.
    svc.record("zone-reset-faults", damaged=damaged)
    with svc.write_lock():
        def report(zone: str, n: int) -> None:
            click.echo(f"zone {zone}: caught up {n} change(s)")
        svc.catch_up(progress=report)
    was = f"was damaged ({damaged}), " if damaged else ""
    click.echo(f"fault file {svc.faults.path} {was}rewritten with no faults: every zone is up")


def register(cli: click.Group) -> None:
    cli.add_command(zone)
