"""The per-process cache of token objects is bounded (p11/state.ObjectCache)."""
from __future__ import annotations

from hspkcs11.p11.state import ObjectCache


def test_the_oldest_entry_goes_past_the_limit() -> None:
    cache = ObjectCache(3)
    for handle in (1, 2, 3, 4):
        cache[handle] = f"object {handle}"     # type: ignore[assignment]
    assert list(cache) == [2, 3, 4]
    assert cache.get(1) is None


def test_replacing_an_entry_drops_nothing() -> None:
    cache = ObjectCache(2)
    cache[1], cache[2] = "a", "b"              # type: ignore[assignment]
    cache[2] = "b2"                            # type: ignore[assignment]
    assert dict(cache) == {1: "a", 2: "b2"}


def test_a_dropped_entry_can_come_back() -> None:
    cache = ObjectCache(1)
    cache[1] = "a"                             # type: ignore[assignment]
    cache[2] = "b"                             # type: ignore[assignment]
    cache[1] = "a again"                       # type: ignore[assignment]
    assert dict(cache) == {1: "a again"}
