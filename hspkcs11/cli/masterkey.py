"""`hspkcs11-util masterkey ...`: key parts and the units' master-key registers."""
from __future__ import annotations

from pathlib import Path

import click

from ..hsm import masterkey as mk
from ..hsm.region import Region
from ..hsm.unit import CryptoUnit
from .common import Failure, config, pass_ctx, secret

ENV = "HSPKCS11_KEYPART_PASSWORD"


def _units(ctx: click.Context) -> list[CryptoUnit]:
    units = Region(config(ctx)).units()
    if not units:
        raise Failure("the region has no crypto units: run `hspkcs11-util region init`")
    return units


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
    vp = mk.part_new(file, secret(password, ENV, "Key-part password", confirm=True))
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
        parts.append(mk.part_read(f, secret(given, ENV, f"Password for {f}")))
    key = mk.combine(parts)
    for unit in _units(ctx):
        unit.registers.load(key)
        click.echo(f"unit {unit.name}: new register full-uncommitted, MKVP {mk.mkvp(key)}")
    click.echo("next: `hspkcs11-util masterkey commit`")


@masterkey.command("commit")
@pass_ctx
def commit(ctx: click.Context) -> None:
    """Commit the loaded new master key in every unit."""
    for unit in _units(ctx):
        regs = unit.registers.commit()
        click.echo(f"unit {unit.name}: new register committed, MKVP {regs.new_mkvp}")
    click.echo("next: `hspkcs11-util masterkey activate` (first key) or `masterkey rotate`")


@masterkey.command("activate")
@pass_ctx
def activate(ctx: click.Context) -> None:
    """Make the committed new master key current (the first time a key is set)."""
    for unit in _units(ctx):
        regs = unit.registers.read()
        if regs.current_mkvp and unit.store.sealed_under(regs.current_mkvp):
            raise Failure(f"unit {unit.name} holds keys sealed under the current master key "
                          f"{regs.current_mkvp}; use `hspkcs11-util masterkey rotate` to re-wrap them")
    for unit in _units(ctx):
        regs = unit.registers.activate()
        click.echo(f"unit {unit.name}: current master key {regs.current_mkvp} (valid)")


@masterkey.command("clear-new")
@pass_ctx
def clear_new(ctx: click.Context) -> None:
    """Empty the new-master-key register of every unit."""
    for unit in _units(ctx):
        unit.registers.clear_new()
        click.echo(f"unit {unit.name}: new register empty")


@masterkey.command("status")
@pass_ctx
def status(ctx: click.Context) -> None:
    """Show each unit's registers and MKVPs."""
    for unit in _units(ctx):
        r = unit.registers.read()
        click.echo(f"unit {unit.name}: current {r.current_state.value} {r.current_mkvp or '-'}; "
                   f"new {r.new_state.value} {r.new_mkvp or '-'}")


def register(cli: click.Group) -> None:
    cli.add_command(masterkey)
