"""hspkcs11-util: the operator's tool (DESIGN.md "Operator surface").

Exit codes: 0 success, 1 the operation failed (the message says why and what to do),
2 wrong usage (click's own).
"""
from __future__ import annotations

import sys
import traceback

import click

from .. import module_path
from .common import Failure, pass_ctx

COMMAND_MODULES = ("region", "masterkey", "zone", "status", "audit", "tokens", "backup", "restore", "drill",
                   "demo", "importing", "migrate")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks on errors.")
@click.option("--conf", type=click.Path(dir_okay=False), envvar="HSPKCS11_CONF",
              help="Configuration file (default: $HSPKCS11_CONF, ~/.config/hspkcs11/hspkcs11.conf).")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, conf: str | None) -> None:
    """Operate an hspkcs11 region: crypto units, master keys, tokens.

    \b
    Example:
      hspkcs11-util region init
      hspkcs11-util init-token --free --label app
    """
    ctx.obj = {"verbose": verbose, "conf": conf}


@cli.command("module-path")
def module_path_cmd() -> None:
    """Print the path of the PKCS#11 module to give to clients.

    \b
    Example:
      pkcs11-tool --module "$(hspkcs11-util module-path)" -L
    """
    click.echo(module_path())


def _register() -> None:
    import importlib
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(cli)


_register()


def main() -> None:
    verbose = "-v" in sys.argv[1:] or "--verbose" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Failure as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # an unexpected failure: one line unless -v
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {type(exc).__name__}: {exc} (run with -v for details)", err=True)
        sys.exit(1)


__all__ = ["cli", "main", "pass_ctx"]
