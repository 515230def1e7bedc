"""Catch-up between two stores when one holds a change the region went on without
(hsm/store.Store.export_for): a writer killed after its change reached that unit only."""
from __future__ import annotations

import os
from pathlib import Path

from hspkcs11.hsm.store import ObjectRow, Store, TokenRow

SERIAL = "0123456789abcdef"


def row(handle: int, label: bytes) -> ObjectRow:
    return ObjectRow(handle, SERIAL, os.urandom(16), 4, 0x1F, True, label, b"id", b"attrs", None, None)


def pair(tmp_path: Path) -> tuple[Store, Store]:
    """Two units at the same position 2: a token (seq 1) and object 2 (seq 2)."""
    stores = []
    for zone in ("a", "b"):
        st = Store(tmp_path / f"{zone}.db", "r", zone, create=True)
        st.put_token(TokenRow(SERIAL, 0, b"t".ljust(32), "so", "user", 0, 0), 1)
        stores.append(st)
    shared = row(2, b"shared")
    for st in stores:
        st.put_object(shared, 2)
    return stores[0], stores[1]


def holdings(st: Store) -> tuple[list[tuple[int, bytes | None]], list[int]]:
    return ([(r.handle, r.label) for r in st.find(SERIAL, True)],
            [seq for seq, *_ in st.changes_since(0)])


def test_an_orphan_change_is_dropped_and_what_it_touched_is_put_back(tmp_path: Path) -> None:
    source, lost = pair(tmp_path)
    lost.put_object(row(3, b"orphan"), 3)                      # the killed writer's change, seq 3
    lost.put_object(row(2, b"orphan edit"), 3)
    source.put_object(row(4, b"acknowledged"), 4)              # the region went on: seq 4 (3 never reused)
    bundle = source.export_for(lost, lost.position())
    assert bundle.drop == [3]
    lost.import_bundle(bundle)
    assert holdings(lost) == holdings(source) == ([(2, b"shared"), (4, b"acknowledged")], [1, 2, 4])
    assert lost.content_digest() == source.content_digest()


def test_a_peer_that_only_lags_gets_the_plain_changes(tmp_path: Path) -> None:
    source, behind = pair(tmp_path)
    source.put_object(row(3, b"new"), 3)
    bundle = source.export_for(behind, behind.position())
    assert bundle.drop == [] and [c[0] for c in bundle.changes] == [3]
    behind.import_bundle(bundle)
    assert holdings(behind) == holdings(source)
