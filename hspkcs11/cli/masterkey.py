"""`hspkcs11-util masterkey ...`: key parts and the units' master-key registers."""
from __future__ import annotations

from pathlib import Path

import click

from ..hsm import masterkey as mk
from ..hsm import rotation
from ..hsm.replica import RegionService
from ..hsm.unit import CryptoUnit
from .common import Failure, config, confirm, pass_ctx, secret

ENV = "HSPKCS11_KEYPART_PASSWORD"


def _units(ctx: click.Context) -> tuple[RegionService, list[CryptoUnit]]:
    """The units that are up. A unit in a zone that is down is skipped, as on the cloud
    service: when it is back, load its key parts again (nothing copies a master key)."""
    svc = RegionService(config(ctx))
    faults = svc.faults.read()
    up = []
    for unit in svc.units:
        if unit.zone in faults and faults[unit.zone].down:
            click.echo(f"unit {unit.name}: skipped, zone is down (repeat this step when it is up)")
        else:
            up.append(unit)
    return svc, up


@click.group("masterkey")
def masterkey() -> None:
    """Master-key parts and registers (load, commit, activate)."""


@masterkey.command("part-new")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--password", help=f"Key-part password (prefer ${ENV} or the prompt).")
@pass_ctx
def part_new(ctx: click.Context, file: Path, password: str | None) -> None:
    """Create a random 32-byte key part in FILE, protected by a password.

    \b
    Example:
      hspkcs11-util masterkey part-new part1.json
    """
    vp = mk.part_new(file, secret(password, ENV, "Key-part password", confirm=True, flag="--password"))
    click.echo(f"key part written to {file} (verification pattern {vp})")


@masterkey.command("load")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--password", multiple=True, help=f"Password per part, in order (prefer ${ENV}).")
@pass_ctx
def load(ctx: click.Context, files: tuple[Path, ...], password: tuple[str, ...]) -> None:
    """Load key parts into the new-master-key register of every unit.

    One password for all parts may come from $HSPKCS11_KEYPART_PASSWORD; otherwise each
    part's password is asked for.

    \b
    Example:
      hspkcs11-util masterkey load part1.json part2.json
    """
    parts = []
    for i, f in enumerate(files):
        given = password[i] if i < len(password) else None
        parts.append(mk.part_read(f, secret(given, ENV, f"Password for {f}", flag="--password")))
    key = mk.combine(parts)
    svc, units = _units(ctx)
    from ..hsm.backup import check_restored_key   # a restored region takes only the backup's key
    checked = check_restored_key(svc, key)
    if checked:
        click.echo(checked)
    for unit in units:
        regs = unit.registers.read()
        if mk.mkvp(key) in (regs.new_mkvp, regs.current_mkvp):
            click.echo(f"unit {unit.name}: already holds MKVP {mk.mkvp(key)}")
            continue
        unit.registers.load(key)
        svc.record("masterkey-load", zone=unit.zone, mkvp=mk.mkvp(key))
        click.echo(f"unit {unit.name}: new register full-uncommitted, MKVP {mk.mkvp(key)}")
    click.echo("next: `hspkcs11-util masterkey commit`")


@masterkey.command("commit")
@pass_ctx
def commit(ctx: click.Context) -> None:
    """Commit the loaded new master key in every unit.

    \b
    Example:
      hspkcs11-util masterkey commit
    """
    svc, units = _units(ctx)
    for unit in units:
        if unit.registers.read().new_state is not mk.NewState.UNCOMMITTED:
            click.echo(f"unit {unit.name}: nothing to commit ({unit.registers.read().new_state.value})")
            continue
        regs = unit.registers.commit()
        svc.record("masterkey-commit", zone=unit.zone, mkvp=regs.new_mkvp)
        click.echo(f"unit {unit.name}: new register committed, MKVP {regs.new_mkvp}")
    click.echo("next: `hspkcs11-util masterkey activate` (first key) or `masterkey rotate`")


@masterkey.command("activate")
@pass_ctx
def activate(ctx: click.Context) -> None:
    """Make the committed new master key current (the first time a key is set; later
    keys take `masterkey rotate`).

    \b
    Example:
      hspkcs11-util masterkey activate
    """
    svc, units = _units(ctx)
    ready = [u for u in units if u.registers.read().new_state is mk.NewState.COMMITTED]
    for unit in units:
        if unit not in ready:
            regs = unit.registers.read()
            click.echo(f"unit {unit.name}: nothing to activate (new register {regs.new_state.value}, "
                       f"current {regs.current_mkvp or 'empty'})")
    for unit in ready:
        regs = unit.registers.read()
        if regs.current_mkvp and unit.store.sealed_under(regs.current_mkvp):
            raise Failure(f"unit {unit.name} holds keys sealed under the current master key "
                          f"{regs.current_mkvp}; use `hspkcs11-util masterkey rotate` to re-wrap them")
    for unit in ready:
        regs = unit.registers.activate()
        svc.record("masterkey-activate", zone=unit.zone, mkvp=regs.current_mkvp)
        click.echo(f"unit {unit.name}: current master key {regs.current_mkvp} (valid)")


@masterkey.command("rotate")
@click.option("--batch", type=click.IntRange(1), default=5000, show_default=True, help="Blobs per batch.")
@pass_ctx
def rotate_cmd(ctx: click.Context, batch: int) -> None:
    """Re-wrap every key from the current master key to the committed new one, then make
    the new key current. Applications keep working. Safe to interrupt and run again.

    \b
    Example:
      hspkcs11-util masterkey load new1.json new2.json && hspkcs11-util masterkey commit
      hspkcs11-util masterkey rotate
    """
    svc = RegionService(config(ctx))
    p = rotation.plan(svc)
    if p is None:
        raise Failure("nothing to rotate: load and commit a new master key first "
                      "(`masterkey load PART PART`, `masterkey commit`)")
    total = rotation.remaining(svc, p.old_mkvp)
    click.echo(f"rotating {total} key blob(s) from {p.old_mkvp} to {p.new_mkvp}")
    with click.progressbar(length=total, label="re-wrapping", show_pos=True) as bar:
        done = rotation.rotate(svc, progress=bar.update, batch=batch)
    assert done is not None
    click.echo(f"current master key is now {done.new_mkvp} in every unit; the old key is cleared")


@masterkey.command("clear-new")
@click.option("--yes", is_flag=True, help="Do not ask first.")
@pass_ctx
def clear_new(ctx: click.Context, yes: bool) -> None:
    """Empty the new-master-key register of every unit (refused during a rotation).

    \b
    Example:
      hspkcs11-util masterkey clear-new
    """
    confirm(yes, "Empty the new-master-key register of every unit? The key parts are needed to load it again.")
    svc, units = _units(ctx)
    for unit in units:
        unit.registers.clear_new()
        svc.record("masterkey-clear-new", zone=unit.zone)
        click.echo(f"unit {unit.name}: new register empty")


@masterkey.command("status")
@pass_ctx
def status(ctx: click.Context) -> None:
    """Show each unit's registers and MKVPs.

    \b
    Example:
      hspkcs11-util masterkey status
    """
    svc = RegionService(config(ctx))
    for unit in svc.units:
        r = unit.registers.read()
        click.echo(f"unit {unit.name}: current {r.current_state.value} {r.current_mkvp or '-'}; "
                   f"new {r.new_state.value} {r.new_mkvp or '-'}")


def register(cli: click.Group) -> None:
    cli.add_command(masterkey)
