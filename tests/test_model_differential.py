"""A model-based differential test (issue 13): hypothesis drives random sequences of
PKCS#11 calls against hspkcs11 and SoftHSM2 at once, and after every step compares the
token objects each module shows with a model of what must exist. hspkcs11 also takes
region steps (a zone down and up) and its units are checked after each: every healthy
unit holds exactly the model's objects, and they converge.

CI runs a bounded number of examples. A longer run is one command:

    HSPKCS11_SM_EXAMPLES=300 HSPKCS11_SM_STEPS=50 bash scripts/test.sh tests/test_model_differential.py

Both modules run in this process (conftest's `load_module`); the teardown of every
example also looks from a second, fresh process (tests/test_data_safety.fresh_view).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import SO_PIN, Module, load_module
from hspkcs11.config import load as load_config
from hspkcs11.hsm.region import Region
from regionkit import cli
from test_data_safety import fresh_view

A = pkcs11.Attribute
LABELS = st.sampled_from([f"o{i}" for i in range(6)])
PINS = st.sampled_from(["1234", "4321", "567890"])
EXAMPLES = int(os.environ.get("HSPKCS11_SM_EXAMPLES", "15"))
STEPS = int(os.environ.get("HSPKCS11_SM_STEPS", "15"))


class Side:
    """One module's token, with a logged-in R/W user session held open."""

    def __init__(self, module: Module) -> None:
        self.module = module
        self.token = module.init_token()
        self.pin = "1234"
        self.session: Any = self.token.open(user_pin=self.pin, rw=True)

    def objects(self) -> dict[str, int]:
        return {o[A.LABEL]: int(o[A.CLASS]) for o in self.session.get_objects()}

    def by_label(self, label: str) -> Any:
        return next(iter(self.session.get_objects({A.LABEL: label})))

    def relogin(self, pin: str) -> None:
        self.session.close()
        self.session = self.token.open(user_pin=pin, rw=True)
        self.pin = pin


class Differential(RuleBasedStateMachine):
    hs_conf: Path
    softhsm_conf: Path

    def __init__(self) -> None:
        super().__init__()
        self.sides = [Side(load_module(name, self.hs_conf, self.softhsm_conf)) for name in ("hspkcs11", "softhsm")]
        self.model: dict[str, int] = {}          # label -> CKO of every object that must exist
        self.down: str | None = None

    def both(self, fn: Any) -> list[str]:
        """Run `fn(side)` on both modules; the outcome (ok or the exception's name) must agree."""
        outcomes = []
        for side in self.sides:
            try:
                fn(side)
                outcomes.append("ok")
            except pkcs11.exceptions.PKCS11Error as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes[0] == outcomes[1], f"hspkcs11 {outcomes[0]}, SoftHSM2 {outcomes[1]}"
        return outcomes

    @rule(label=LABELS)
    def create_data(self, label: str) -> None:
        if label in self.model:
            return
        self.both(lambda s: s.session.create_object({A.CLASS: pkcs11.ObjectClass.DATA, A.TOKEN: True,
                                                     A.LABEL: label, A.VALUE: b"v" + label.encode()}))
        self.model[label] = int(pkcs11.ObjectClass.DATA)

    @rule(label=LABELS)
    def generate_aes(self, label: str) -> None:
        if label in self.model:
            return
        self.both(lambda s: s.session.generate_key(pkcs11.KeyType.AES, 128, store=True, label=label))
        self.model[label] = int(pkcs11.ObjectClass.SECRET_KEY)

    @rule(label=LABELS)
    def destroy(self, label: str) -> None:
        if label not in self.model:
            return
        self.both(lambda s: s.by_label(label).destroy())
        del self.model[label]

    @rule(old=LABELS, new=LABELS)
    def relabel(self, old: str, new: str) -> None:
        if old not in self.model or new in self.model:
            return
        def change(s: Side) -> None:
            s.by_label(old)[A.LABEL] = new
        self.both(change)
        self.model[new] = self.model.pop(old)

    @rule(label=LABELS, new=LABELS)
    def copy(self, label: str, new: str) -> None:
        if label not in self.model or new in self.model:
            return
        self.both(lambda s: s.by_label(label).copy({A.LABEL: new}))
        self.model[new] = self.model[label]

    @rule(new=PINS)
    def set_pin(self, new: str) -> None:
        def change(s: Side) -> None:
            s.session.set_pin(s.pin, new)
            s.relogin(new)
        self.both(change)

    @rule(new=PINS)
    def so_init_pin(self, new: str) -> None:
        def reset(s: Side) -> None:
            s.session.close()
            try:
                with s.token.open(so_pin=SO_PIN, rw=True) as so:
                    so.init_pin(new)
                s.pin = new
            finally:                      # a refused step must not leave the user session closed
                s.session = s.token.open(user_pin=s.pin, rw=True)
        self.both(reset)

    @rule()
    def wrong_pin(self) -> None:
        def guess(s: Side) -> None:
            s.session.close()
            try:
                s.token.open(user_pin="000000")
            finally:
                s.session = s.token.open(user_pin=s.pin, rw=True)      # a right PIN clears the count
        assert self.both(guess) == ["PinIncorrect", "PinIncorrect"]

    @precondition(lambda self: self.down is None)
    @rule(zone=st.sampled_from(["us-south-1", "us-south-2"]))
    def zone_down(self, zone: str) -> None:
        cli(self.hs_conf, "zone", "down", zone)
        self.down = zone

    @precondition(lambda self: self.down is not None)
    @rule()
    def zone_up(self) -> None:
        assert self.down is not None
        cli(self.hs_conf, "zone", "up", self.down)
        self.down = None

    @invariant()
    def both_show_the_model(self) -> None:
        for side in self.sides:
            assert side.objects() == self.model, side.module.name

    @invariant()
    def every_healthy_unit_holds_the_model(self) -> None:
        serial = self.sides[0].token.serial.decode().strip()
        units = [u for u in Region(load_config(self.hs_conf)).units() if u.zone != self.down]
        for unit in units:
            assert unit.store.count_objects(serial) == len(self.model), unit.zone
        assert len({u.store.content_digest() for u in units}) == 1

    def teardown(self) -> None:
        if self.down is not None:
            cli(self.hs_conf, "zone", "up", self.down)
        for side in self.sides:
            side.session.close()
        for side in self.sides:
            seen = fresh_view(side.module, side.token.label, side.pin)["labels"]
            assert seen == sorted(self.model), f"{side.module.name}, from a fresh process"


def test_random_call_sequences_agree_with_softhsm_and_the_model(hs_conf: Path, softhsm_conf: Path) -> None:
    Differential.hs_conf, Differential.softhsm_conf = hs_conf, softhsm_conf
    from hypothesis.stateful import run_state_machine_as_test
    run_state_machine_as_test(Differential, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, suppress_health_check=list(HealthCheck)))


pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
