"""`hspkcs11-util drill`: the disaster-recovery runbook on a scratch region."""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import click

from .. import drill as runbook
from .common import Failure, pass_ctx


@click.command("drill")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Scratch directory (default: a new temporary one).")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@pass_ctx
def drill(ctx: click.Context, workdir: Path | None, as_json: bool) -> None:
    """Rehearse disaster recovery on a scratch region: lose a zone and keep working, back
    up, lose the region, restore elsewhere, reload the master key, use every key.
    Reports each step, the recovery point and the recovery time. Exit 1 if a step fails.

    \b
    Example:
      hspkcs11-util drill
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix="hspkcs11-drill-"))
    if workdir.exists() and any(workdir.iterdir()):
        raise Failure(f"{workdir} is not empty: give a new directory to --dir, or none")
    report = runbook.run(workdir, say=(lambda _: None) if as_json else click.echo)
    if as_json:
        click.echo(json.dumps({**asdict(report), "passed": report.passed, "lost_objects": report.lost_objects},
                              indent=1))
    else:
        click.echo(f"recovery point: backup at position {report.backup_position} holds {report.backup_objects} "
                   f"objects; {report.lost_objects} written after it (newest position {report.newest_position}) "
                   "are lost")
        click.echo(f"recovery time: {report.recovery_time_s:.2f} s from losing the region to {report.keys_verified} "
                   "keys verified")
        click.echo(f"drill {'PASSED' if report.passed else 'FAILED'} (scratch directory {workdir})")
    if not report.passed:
        raise Failure("the drill failed: see the FAIL step above")


def register(cli: click.Group) -> None:
    cli.add_command(drill)
