"""consts.fast_members: each enum is published as a namespace with plain attribute
lookup (Python 3.11's EnumType.__getattr__ makes `CKA.VALUE` slow). Whatever code does
with the enum must work the same through the namespace."""
from __future__ import annotations

from enum import IntEnum, IntFlag

import pytest

from hspkcs11.consts import CKA, CKR, MechFlag, fast_members


class Color(IntEnum):
    RED = 1
    GREEN = 2
    CRIMSON = 1          # an alias


class Bits(IntFlag):
    A = 1
    B = 2


FastColor, FastBits = fast_members(Color), fast_members(Bits)


def test_attributes_are_the_enum_members_themselves() -> None:
    assert FastColor.RED is Color.RED and FastColor.CRIMSON is Color.RED
    assert FastColor.GREEN.name == "GREEN" and FastColor.GREEN == 2
    assert repr(FastColor.GREEN) == "<Color.GREEN: 2>"


def test_calls_lookups_and_iteration_go_to_the_enum() -> None:
    assert FastColor(2) is Color.GREEN and FastColor["GREEN"] is Color.GREEN
    assert list(FastColor) == [Color.RED, Color.GREEN] and len(FastColor) == 2
    assert FastColor.__members__ == Color.__members__
    assert Color.RED in FastColor
    assert isinstance(Color.GREEN, FastColor) and not isinstance(2, FastColor)
    with pytest.raises(ValueError):
        FastColor(7)
    with pytest.raises(KeyError):
        FastColor["BLUE"]
    with pytest.raises(AttributeError):
        FastColor.BLUE     # noqa: B018 - no __getattr__ fallback that could invent one


def test_flags_keep_their_arithmetic() -> None:
    both = FastBits.A | FastBits.B
    assert both == 3 and isinstance(both, Bits) and FastBits(3) == both
    assert MechFlag.WRAP | MechFlag.UNWRAP == 0x60000


def test_the_published_constants_are_namespaces_of_members() -> None:
    assert CKR(0) is CKR.OK and CKR.OK.name == "OK" and CKR["GENERAL_ERROR"] == 5
    assert CKA(0x11) is CKA.VALUE and CKA.VALUE in CKA
    # What makes lookups fast: no __getattr__ anywhere on the namespace's type.
    assert not any("__getattr__" in vars(k) for k in type(CKA).__mro__)
