"""Digest mechanisms: FIPS 180 / RFC 1321 known answers, single- and multi-part."""
from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives import hashes

from hspkcs11.consts import CKM, MechFlag
from hspkcs11.mechanisms import MECHANISMS
from hspkcs11.mechanisms.digest import DIGESTS

from fakekeys_sym import chunks, load

VECTORS = load("digest.json")["vectors"]


def _message(v: dict) -> bytes:
    return v["msg"].encode() * v.get("repeat", 1)


def _id(v: dict) -> str:
    return f"{v['mech']}-{len(_message(v))}"


def test_table_names_every_digest_mechanism():
    assert DIGESTS == {CKM.MD5: hashes.MD5, CKM.SHA_1: hashes.SHA1, CKM.SHA224: hashes.SHA224,
                       CKM.SHA256: hashes.SHA256, CKM.SHA384: hashes.SHA384,
                       CKM.SHA512: hashes.SHA512}
    for mech in DIGESTS:
        m = MECHANISMS[mech]
        assert m.flags == MechFlag.DIGEST
        assert (m.min_key, m.max_key, m.key_types) == (0, 0, ())


@pytest.mark.parametrize("v", VECTORS, ids=_id)
def test_known_answer_single_part(v):
    op = MECHANISMS[CKM[v["mech"]]].digest(None)
    assert op.oneshot(_message(v)).hex() == v["digest"]


@pytest.mark.parametrize("v", [v for v in VECTORS if "repeat" not in v], ids=_id)
def test_known_answer_multi_part(v):
    rng = random.Random(v["digest"])
    for _ in range(5):
        op = MECHANISMS[CKM[v["mech"]]].digest(None)
        assert op.multipart
        for piece in chunks(_message(v), rng):
            op.update(piece)
        assert op.final().hex() == v["digest"]


@pytest.mark.parametrize("mech", list(DIGESTS), ids=lambda m: CKM(m).name)
def test_multi_part_equals_single_part_on_random_data(mech):
    rng = random.Random(mech)
    data = rng.randbytes(1000)
    whole = MECHANISMS[mech].digest(None).oneshot(data)
    op = MECHANISMS[mech].digest(None)
    for piece in chunks(data, rng):
        op.update(piece)
    assert op.final() == whole
    assert len(whole) == DIGESTS[mech].digest_size
