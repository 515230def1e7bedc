"""Master-key rotation while applications run (issue 5; DESIGN "Rotation").

1. Every serving unit holds the old key as *current* and the new one *committed*. The
   registers are marked `rotating`: from then on new blobs are sealed under the new key.
2. Batches of blobs still under the old key are re-wrapped in C
   (`keywrap.kwp_rewrap_batch`: one ECB context per key, keys interleaved) and written
   to every unit as one replicated change, one transaction per unit. RFC 5649 is
   deterministic, so every unit gets the same bytes.
3. When no blob is left under the old key, each unit makes the new key current and
   clears the old one.

Crash safety: a batch is all-or-nothing in each unit and a unit's registers change by
an atomic rename, so after `kill -9` at any point every blob is under the old or the new
key and both are still loaded; running `rotate` again continues where it stopped.
Applications keep working throughout: a blob opens under whichever register holds its
key, and a row sealed under a key that is gone by the time it is stored is sealed again.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable

from .keywrap import kwp_rewrap_batch
from .masterkey import CurrentState, MasterKeyError, NewState
from .replica import UNIT_FAILURES, RegionService
from .store import row_digest
from .unit import CryptoUnit, make_blob, split_blob

log = logging.getLogger("hspkcs11")
BATCH = 5000


@dataclass(frozen=True)
class Plan:
    old_mkvp: str
    new_mkvp: str
    units: list[CryptoUnit]         # units still to finish (some may be done already)


def plan(svc: RegionService) -> Plan | None:
    """What a rotation has to do, or None when every unit is already on one key."""
    units = [u for u in svc.units if not svc.faults.zone(u.zone).down]
    if not units:
        raise MasterKeyError(f"every zone of region {svc.name} is down")
    pending = []
    pairs = set()
    for u in units:
        regs = u.registers.read()
        if regs.new_state is NewState.COMMITTED and regs.current_state is CurrentState.VALID:
            pending.append(u)
            pairs.add((regs.current_mkvp, regs.new_mkvp))
        elif regs.new_state is not NewState.EMPTY:
            raise MasterKeyError(f"unit {u.name}: the new-master-key register is {regs.new_state.value}; "
                                 "commit it with `hspkcs11-util masterkey commit` first")
    if not pending:
        return None
    if len(pairs) != 1:
        raise MasterKeyError("the units disagree on the keys to rotate between: "
                             + ", ".join(f"{a} -> {b}" for a, b in sorted(pairs, key=str)))
    old, new = pairs.pop()
    assert old is not None and new is not None
    return Plan(old, new, pending)


def remaining(svc: RegionService, mkvp: str) -> int:
    return svc.store.sealed_under(mkvp)


def rotate(svc: RegionService, progress: Callable[[int], None] | None = None, batch: int = BATCH) -> Plan | None:
    """Run (or resume) the rotation; `progress(n)` after each batch of n blobs."""
    p = plan(svc)
    if p is None:
        return None
    for u in p.units:
        u.registers.start_rotation()
    svc.record("rotation-start", old_mkvp=p.old_mkvp, new_mkvp=p.new_mkvp,
               blobs=remaining(svc, p.old_mkvp))
    old_key = p.units[0].registers.read().current_key
    new_key = p.units[0].registers.read().new_key
    assert old_key is not None and new_key is not None
    moved = 0
    while True:
        with svc.write_lock():
            units, head = svc.catch_up()
            rows = units[0].store.rows_sealed_under(p.old_mkvp, batch)
            if not rows:
                break
            wrapped = kwp_rewrap_batch(old_key, new_key, [split_blob(r.sealed or b"")[1] for r in rows])
            broken = [r.handle for r, w in zip(rows, wrapped) if w is None]
            if broken:
                raise MasterKeyError(f"rotation stopped: the blobs of objects {broken[:5]} do not open under "
                                     f"master key {p.old_mkvp} (damaged store); nothing was changed by this batch")
            new_rows = [replace(r, sealed=make_blob(p.new_mkvp, w), mkvp=p.new_mkvp) for r, w in zip(rows, wrapped)]
            digests = [row_digest(r) for r in new_rows]     # the same rows go to every unit
            seq = svc.next_seq(head)
            done = 0
            for u in units:          # like any replicated write: a failing unit catches up later
                try:
                    svc.inject(u, "write")
                    u.store.reseal(new_rows, seq, digests)
                    done += 1
                except UNIT_FAILURES as exc:
                    log.warning("unit %s missed a rotation batch (%s); it catches up", u.name, exc)
            if not done:
                raise MasterKeyError(f"rotation stopped: no unit of region {svc.name} accepts writes")
            svc.set_head(seq)
        moved += len(rows)
        svc.record("rotation-progress", old_mkvp=p.old_mkvp, new_mkvp=p.new_mkvp, rewrapped=moved)
        if progress:
            progress(len(rows))
    with svc.write_lock():
        svc.catch_up()
        if remaining(svc, p.old_mkvp):    # a writer slipped one in before the lock: go round again
            return rotate(svc, progress, batch)
        for u in p.units:
            u.registers.finish_rotation()
    svc.record("rotation-end", old_mkvp=p.old_mkvp, new_mkvp=p.new_mkvp, outcome="ok")
    log.info("region %s: master key rotated from %s to %s", svc.name, p.old_mkvp, p.new_mkvp)
    return p
