"""The disaster-recovery drill: the whole runbook on a scratch region (issue 5 part 5).

Steps, each a real operation on real stores: make a region with keys; lose a zone and
keep working; back up; write more (the work a disaster will cost); lose the region;
restore the backup in another region; load the same master key from its parts; use
every key. The report gives each step's outcome, the recovery point (the newest object
in the backup against the newest object written) and the recovery time (from the
region's loss to every key verified).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import Config
from .consts import CKA, CKK, CKM, CKO, CKU, SessionFlag
from .hsm import backup, masterkey as mk
from .hsm.region import Region
from .hsm.replica import RegionService
from .mechanisms.params import Param
from .p11 import crypto, keys, manage, sessions, tokens
from .p11.state import State

SO_PIN, USER_PIN = b"drill-so-pin", b"drill-pin"

# How the drill uses a key of each type: (operation, mechanism, parameter).
USES: dict[int, tuple[crypto.Op, int, Param]] = {
    CKK.AES: (crypto.Op.ENCRYPT, CKM.AES_ECB, None),
    CKK.RSA: (crypto.Op.SIGN, CKM.SHA256_RSA_PKCS, None),
    CKK.EC: (crypto.Op.SIGN, CKM.ECDSA_SHA256, None),
    CKK.GENERIC_SECRET: (crypto.Op.SIGN, CKM.SHA256_HMAC, None),
}


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)
    backup_position: int = 0
    newest_position: int = 0
    backup_objects: int = 0
    newest_objects: int = 0
    recovery_time_s: float = 0.0
    keys_verified: int = 0

    @property
    def lost_objects(self) -> int:
        """Objects written after the backup: the recovery point's cost."""
        return self.newest_objects - self.backup_objects

    @property
    def passed(self) -> bool:
        return all(s.ok for s in self.steps)


def user_session(st: State, pin: bytes = USER_PIN) -> Any:
    slot = next(sid for sid, t in st.slots().items() if t is not None)
    h = sessions.open_session(st, slot, SessionFlag.SERIAL_SESSION | SessionFlag.RW_SESSION)
    if st.logins.get(st.session(h).serial) != CKU.USER:
        sessions.login(st, h, CKU.USER, pin)
    return st.session(h)


def _make_keys(st: State, n: int, label: str) -> None:
    s = user_session(st)
    for i in range(n):
        keys.generate_key(st, s, CKM.AES_KEY_GEN, None,
                          {CKA.TOKEN: True, CKA.VALUE_LEN: 32, CKA.LABEL: f"{label}-{i}".encode()})


def use_every_key(st: State, pin: bytes = USER_PIN) -> int:
    """Use each private and secret key once; raises on the first that fails."""
    s = user_session(st, pin)
    used = 0
    for klass in (CKO.SECRET_KEY, CKO.PRIVATE_KEY):
        manage.find_init(st, s, {CKA.CLASS: klass})
        handles = manage.find(st, s, 1 << 30)
        manage.find_final(st, s)
        for h in handles:
            op, mech, param = USES[st.key(s, h).key_type]
            crypto.init(st, s, op, mech, param, h)
            crypto.data(st, s, op, crypto.Step.ONESHOT, bytes(16), crypto.CAP_QUERY)
            crypto.data(st, s, op, crypto.Step.ONESHOT, bytes(16), 1 << 20)
            used += 1
    return used


def run(workdir: Path, say: Callable[[str], None] = lambda _: None) -> Report:
    report = Report()

    def step(name: str, fn: Callable[[], str]) -> None:
        t = time.perf_counter()
        try:
            detail, ok = fn(), True
        except Exception as exc:  # a failed step is a finding of the drill, not a crash
            detail, ok = f"{type(exc).__name__}: {exc}", False
        report.steps.append(Step(name, ok, detail, time.perf_counter() - t))
        say(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
        if not ok:
            raise _Stop

    source = Config(data_dir=workdir / "data", region="drill-south", zones=("drill-south-1", "drill-south-2",
                    "drill-south-3"), backup_region="drill-east", backup_dir=workdir / "backups",
                    log_file=workdir / "drill.log", log_level="INFO")
    password = "drill key-part password"
    parts = [workdir / "keypart-1.json", workdir / "keypart-2.json"]
    state: dict[str, Any] = {}

    def build() -> str:
        for p in parts:
            mk.part_new(p, password)
        key = mk.combine([mk.part_read(p, password) for p in parts])
        for u in Region(source).init():
            u.registers.load(key)
            u.registers.commit()
            u.registers.activate()
        st = state["st"] = State(source)
        slot = max(st.slots())
        tokens.init_token(st, slot, SO_PIN, b"drill".ljust(32, b" "))
        s = _session_so(st, slot)
        tokens.init_pin(st, s, USER_PIN)
        sessions.close_session(st, s.handle)
        s = user_session(st)
        keys.generate_key_pair(st, s, CKM.RSA_PKCS_KEY_PAIR_GEN, None, {CKA.TOKEN: True, CKA.MODULUS_BITS: 2048},
                               {CKA.TOKEN: True})
        keys.generate_key_pair(st, s, CKM.EC_KEY_PAIR_GEN, None,
                               {CKA.TOKEN: True, CKA.EC_PARAMS: bytes.fromhex("06082a8648ce3d030107")},
                               {CKA.TOKEN: True})
        _make_keys(st, 20, "before")
        return f"region {source.region}, 3 zones, token 'drill' with RSA, EC and 20 AES keys"

    def lose_zone() -> str:
        st = state["st"]
        st.hsm.faults.set("drill-south-1", down=True)
        _make_keys(st, 5, "during-outage")
        return f"zone drill-south-1 down; {use_every_key(st)} keys used and 5 made without it"

    def back_up() -> str:
        made = backup.make_backup(state["st"].hsm)
        state["backup"] = made.backup
        report.backup_position = made.backup.manifest["position"]
        report.backup_objects = made.backup.manifest["objects"]
        return f"backup {made.backup.id} at position {report.backup_position} ({made.backup.manifest['objects']} objects)"

    def more_work() -> str:
        st = state["st"]
        _make_keys(st, 7, "after-backup")
        report.newest_position = st.store.last_change()
        report.newest_objects = st.store.count_objects()
        return f"7 more keys written after the backup (newest position {report.newest_position})"

    def lose_region() -> str:
        st = state.pop("st")
        st.close()
        state["lost_at"] = time.perf_counter()
        shutil.rmtree(source.region_dir)
        return f"{source.region_dir} deleted: every zone of {source.region} is gone"

    def restore_elsewhere() -> str:
        restored = backup.restore(source, state["backup"].id, source.backup_region,
                                  data_dir=workdir / "restored")
        state["restored"] = restored.config
        return (f"restored into region {restored.config.region} ({', '.join(restored.config.zones)}), "
                "master-key registers empty")

    def reload_key() -> str:
        cfg = state["restored"]
        key = mk.combine([mk.part_read(p, password) for p in parts])
        svc = RegionService(cfg)
        check = backup.check_restored_key(svc, key)
        for u in svc.units:
            u.registers.load(key)
            u.registers.commit()
            u.registers.activate()
        svc.close()
        return f"same master key {mk.mkvp(key)} loaded from its two parts; {check}"

    def verify() -> str:
        st = State(state["restored"])
        try:
            report.keys_verified = use_every_key(st)
        finally:
            st.close()
        report.recovery_time_s = time.perf_counter() - state["lost_at"]
        return f"{report.keys_verified} keys used successfully"

    try:
        for name, fn in (("build a region", build), ("lose a zone, keep working", lose_zone),
                         ("back up", back_up), ("keep writing", more_work), ("lose the region", lose_region),
                         ("restore elsewhere", restore_elsewhere), ("reload the master key", reload_key),
                         ("use every key", verify)):
            step(name, fn)
    except _Stop:
        pass
    return report


def _session_so(st: State, slot: int) -> Any:
    h = sessions.open_session(st, slot, SessionFlag.SERIAL_SESSION | SessionFlag.RW_SESSION)
    sessions.login(st, h, CKU.SO, SO_PIN)
    return st.session(h)


class _Stop(Exception):
    pass
