"""Token commands in the manner of softhsm2-util: init-token, show-slots, delete-token.

They drive the same engine functions that C_InitToken, C_Login and C_InitPIN use, so a
token made here is exactly one a PKCS#11 client would make.
"""
from __future__ import annotations

import click

from ..consts import CKU, SessionFlag
from ..p11 import sessions, tokens
from ..p11.state import State
from .common import Failure, config, confirm, pass_ctx, secret


def _state(ctx: click.Context) -> State:
    return State(config(ctx))


@click.command("init-token")
@click.option("--free", is_flag=True, help="Use the free slot.")
@click.option("--slot", type=int, help="Slot to (re)initialize.")
@click.option("--label", required=True, help="Token label (up to 32 bytes).")
@click.option("--so-pin", help="SO PIN (prefer $HSPKCS11_SO_PIN or the prompt).")
@click.option("--pin", help="User PIN (prefer $HSPKCS11_PIN or the prompt).")
@click.option("--yes", is_flag=True, help="Do not ask before re-initialising a token (it wipes it).")
@pass_ctx
def init_token(ctx: click.Context, free: bool, slot: int | None, label: str, so_pin: str | None,
               pin: str | None, yes: bool) -> None:
    """Initialize a token and set its user PIN.

    \b
    Example:
      HSPKCS11_SO_PIN=12345678 HSPKCS11_PIN=1234 hspkcs11-util init-token --free --label app
    """
    if free == (slot is not None):
        raise Failure("give exactly one of --free or --slot N")
    if len(label.encode()) > 32:
        raise Failure("a token label has at most 32 bytes")
    so = secret(so_pin, "HSPKCS11_SO_PIN", "SO PIN", confirm=True).encode()
    user = secret(pin, "HSPKCS11_PIN", "User PIN", confirm=True).encode()
    st = _state(ctx)
    if free:
        slot = max(st.slots())
    assert slot is not None
    current = st.slot(slot)
    if current is not None:
        confirm(yes, f"Re-initialise token {current.label.decode(errors='replace').rstrip()!r} in slot {slot}? "
                     "Every object on it is destroyed.")
    tokens.init_token(st, slot, so, label.encode().ljust(32, b" "))
    h = sessions.open_session(st, slot, SessionFlag.SERIAL_SESSION | SessionFlag.RW_SESSION)
    sessions.login(st, h, CKU.SO, so)
    tokens.init_pin(st, st.session(h), user)
    sessions.close_session(st, h)
    click.echo(f"token {label!r} initialized in slot {slot} (serial {st.slot(slot).serial})")


@click.command("show-slots")
@pass_ctx
def show_slots(ctx: click.Context) -> None:
    """List the slots and their tokens.

    \b
    Example:
      hspkcs11-util show-slots
    """
    st = _state(ctx)
    click.echo(f"region {st.config.region}, serving unit {st.hsm.name}")
    for slot_id, t in st.slots().items():
        if t is None:
            click.echo(f"slot {slot_id}: free (uninitialized token)")
        else:
            label = t.label.decode(errors="replace").rstrip()
            click.echo(f"slot {slot_id}: token {label!r} serial {t.serial} "
                       f"objects {st.store.count_objects(t.serial)}")


@click.command("delete-token")
@click.option("--token", "label", required=True, help="Label of the token to delete.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def delete_token(ctx: click.Context, label: str, yes: bool) -> None:
    """Delete a token and every object on it.

    \b
    Example:
      hspkcs11-util delete-token --token app --yes
    """
    st = _state(ctx)
    matches = [t for t in st.tokens() if t.label.decode(errors="replace").rstrip() == label]
    if not matches:
        raise Failure(f"no token labelled {label!r}; see `hspkcs11-util show-slots`")
    confirm(yes, f"Delete token {label!r} and all its objects?")
    for t in matches:
        st.store.delete_token(t.serial)
        st.hsm.record("token-delete", serial=t.serial, label=label)
        click.echo(f"token {label!r} (serial {t.serial}) deleted")


def register(cli: click.Group) -> None:
    for command in (init_token, show_slots, delete_token):
        cli.add_command(command)
