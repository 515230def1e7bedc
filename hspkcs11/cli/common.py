"""What every command group shares: the configuration, secrets, and error wording."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable

import click

from ..config import Config, ConfigError, load
from ..errors import P11Error
from ..hsm.masterkey import MasterKeyError
from ..hsm.store import StoreError


class Failure(Exception):
    """An operation that failed for a reason the operator can act on."""


def config(ctx: click.Context) -> Config:
    conf = ctx.obj.get("conf") if ctx.obj else None
    try:
        return load(Path(conf) if conf else None)
    except ConfigError as exc:
        raise Failure(str(exc)) from None


def pass_ctx(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Pass the click context and turn known failures into one-line errors."""
    @click.pass_context
    @functools.wraps(fn)
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(ctx, *args, **kwargs)
        except P11Error as exc:
            raise Failure(exc.why or f"CKR_{exc.rv.name}") from exc
        except (MasterKeyError, StoreError, ConfigError) as exc:
            raise Failure(str(exc)) from exc
    return wrapper


def confirm(yes: bool, question: str) -> None:
    """Destructive commands ask first, or take --yes (and say so when no one can answer)."""
    if yes:
        return
    if not click.get_text_stream("stdin").isatty():
        raise Failure(f"{question} Add --yes to confirm (no terminal to ask)")
    click.confirm(question, abort=True)


def secret(value: str | None, env: str, prompt: str, confirm: bool = False, flag: str | None = None) -> str:
    """A secret from a flag, else the environment, else a hidden prompt. With `flag`
    named, a secret given that way is taken with a warning: argv is visible to every
    user of the machine (ps, /proc) and stays in shell history."""
    if value:
        if flag:
            click.echo(f"warning: {flag} on the command line can be read by other users (ps) and stays in "
                       f"shell history; prefer ${env} or the hidden prompt", err=True)
        return value
    if os.environ.get(env):
        return os.environ[env]
    if not click.get_text_stream("stdin").isatty():
        raise Failure(f"{prompt} needed: set {env} or run in a terminal to be asked")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


class Bar:
    """A click progress bar for long work, made when the first report says how long it is."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label, self.quiet = label, quiet
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
