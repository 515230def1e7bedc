"""AES key wrap (RFC 3394) and key wrap with padding (RFC 5649): the C fast path
(`hsm.keywrap`) and the pure-Python reference (`hsm.keywrap_ref`) over the NIST CAVP
and RFC vectors, random round trips cross-checked against each other and against
`cryptography`'s own keywrap, the batch re-wrap, and the length/key/integrity errors.
"""
from __future__ import annotations

import os
import random
import struct
from types import ModuleType

import pytest
from cryptography.hazmat.primitives import keywrap as pyca
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hspkcs11.hsm import keywrap, keywrap_ref
from hspkcs11.hsm.keywrap import KeyWrapError
from tests.vectors.loader import Record, load, vectors

IMPLS = {"c": keywrap, "ref": keywrap_ref}
KEK_SIZES = (16, 24, 32)

# file -> (mode, kind): "wrap" records give K, P -> C; "unwrap" records K, C -> P or FAIL.
FILES = {f"{m}_{d}_{k}.txt": (m.lower(), "wrap" if d == "AE" else "unwrap")
         for m in ("KW", "KWP") for d in ("AE", "AD") for k in (128, 192, 256)}
FILES["RFC3394_KW.txt"] = ("kw", "wrap")
FILES["RFC5649_KWP.txt"] = ("kwp", "wrap")

CASES = [(mode, kind, rec) for name, (mode, kind) in FILES.items()
         for rec in load(vectors("keywrap", name))]


@pytest.fixture(params=sorted(IMPLS))
def impl(request) -> ModuleType:
    return IMPLS[request.param]


def test_the_c_extension_is_built() -> None:
    # Without it `keywrap` silently runs the reference: the "c" cases would prove nothing.
    from hspkcs11 import _aeskw
    assert keywrap.BACKEND == "c"
    assert keywrap.kwp_wrap is keywrap._c_kwp_wrap
    assert _aeskw.lib.hs_kw_lanes() >= 1


def test_vector_files_are_complete() -> None:
    counts: dict[str, list[int]] = {}
    for mode, kind, rec in CASES:
        name = rec.source.split(":")[0]
        counts.setdefault(name, [0, 0])[rec.fail] += 1
    assert set(counts) == set(FILES)
    for name, (ok, fail) in counts.items():
        assert ok >= 2, name
        assert (fail > 0) == ("_AD_" in name), name      # every decrypt file has FAIL cases
    assert len(CASES) > 400


@pytest.mark.parametrize("mode,kind,rec", CASES, ids=[c[2].id for c in CASES])
def test_vector(impl: ModuleType, mode: str, kind: str, rec: Record) -> None:
    wrap = getattr(impl, f"{mode}_wrap")
    unwrap = getattr(impl, f"{mode}_unwrap")
    kek, blob = rec.hex("K"), rec.hex("C")
    if rec.fail:
        with pytest.raises(KeyWrapError) as err:
            unwrap(kek, blob)
        assert err.value.kind == "integrity"
        return
    plain = rec.hex("P")
    assert unwrap(kek, blob) == plain
    assert wrap(kek, plain) == blob


def test_vectors_cover_every_kek_size_and_the_kwp_single_block() -> None:
    sizes = {(mode, len(rec.hex("K"))) for mode, _, rec in CASES}
    assert sizes == {(m, k) for m in ("kw", "kwp") for k in KEK_SIZES}
    assert any(mode == "kwp" and len(rec.hex("C")) == 16 for mode, _, rec in CASES)


# --- random round trips, three implementations agreeing -------------------------------

@pytest.mark.parametrize("kek_len", KEK_SIZES)
def test_kwp_random_round_trips(kek_len: int) -> None:
    rng = random.Random(kek_len)
    for length in list(range(1, 80)) + [rng.randrange(80, 3000) for _ in range(10)]:
        kek, data = os.urandom(kek_len), os.urandom(length)
        blob = keywrap.kwp_wrap(kek, data)
        assert len(blob) == (length + 7) // 8 * 8 + 8
        assert blob == keywrap_ref.kwp_wrap(kek, data) == pyca.aes_key_wrap_with_padding(kek, data)
        assert keywrap.kwp_unwrap(kek, blob) == keywrap_ref.kwp_unwrap(kek, blob) == data


@pytest.mark.parametrize("kek_len", KEK_SIZES)
def test_kw_random_round_trips(kek_len: int) -> None:
    for n in list(range(2, 40)) + [512]:
        kek, data = os.urandom(kek_len), os.urandom(8 * n)
        blob = keywrap.kw_wrap(kek, data)
        assert blob == keywrap_ref.kw_wrap(kek, data) == pyca.aes_key_wrap(kek, data)
        assert keywrap.kw_unwrap(kek, blob) == keywrap_ref.kw_unwrap(kek, blob) == data


def test_kw_with_an_explicit_iv(impl: ModuleType) -> None:
    kek, data, iv = os.urandom(32), os.urandom(32), os.urandom(8)
    blob = impl.kw_wrap(kek, data, iv=iv)
    assert blob == keywrap.kw_wrap(kek, data, iv=iv) == keywrap_ref.kw_wrap(kek, data, iv=iv)
    assert blob != impl.kw_wrap(kek, data)
    assert impl.kw_unwrap(kek, blob, iv=iv) == data
    for wrong in (None, bytes(8), iv[:7] + bytes([iv[7] ^ 1])):
        with pytest.raises(KeyWrapError) as err:
            impl.kw_unwrap(kek, blob, iv=wrong)
        assert err.value.kind == "integrity"
    # The default IV given explicitly is the default.
    assert impl.kw_wrap(kek, data, iv=b"\xa6" * 8) == impl.kw_wrap(kek, data)


def test_inputs_may_be_any_bytes_like(impl: ModuleType) -> None:
    kek, data = os.urandom(16), os.urandom(24)
    blob = impl.kwp_wrap(bytearray(kek), memoryview(data))
    assert impl.kwp_unwrap(memoryview(kek), bytearray(blob)) == data
    assert impl.kw_unwrap(bytearray(kek), impl.kw_wrap(memoryview(kek), bytearray(data))) == data


# --- integrity ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode,length", [("kw", 16), ("kw", 40), ("kwp", 5), ("kwp", 32), ("kwp", 33)])
def test_any_flipped_bit_fails_integrity(impl: ModuleType, mode: str, length: int) -> None:
    kek, data = os.urandom(24), os.urandom(length)
    blob = getattr(impl, f"{mode}_wrap")(kek, data)
    unwrap = getattr(impl, f"{mode}_unwrap")
    for pos in range(len(blob)):
        bad = bytearray(blob)
        bad[pos] ^= 1 << (pos % 8)
        with pytest.raises(KeyWrapError) as err:
            unwrap(kek, bytes(bad))
        assert err.value.kind == "integrity"
    with pytest.raises(KeyWrapError):
        unwrap(os.urandom(24), blob)


def _kwp_blob_with(kek: bytes, mli: int, padded: bytes, aiv: bytes = b"\xa6\x59\x59\xa6") -> bytes:
    """An RFC 5649 blob whose AIV says `mli`, built from the raw parts (RFC 5649 §4.1)."""
    a = aiv + struct.pack(">I", mli)
    if len(padded) == 8:
        enc = Cipher(algorithms.AES(kek), modes.ECB()).encryptor()
        return enc.update(a + padded) + enc.finalize()
    return keywrap_ref.kw_wrap(kek, padded, iv=a)


@pytest.mark.parametrize("padded_len", [8, 16, 24])
def test_kwp_checks_the_aiv_mli_and_padding(impl: ModuleType, padded_len: int) -> None:
    kek = os.urandom(16)
    for mli in range(padded_len - 7, padded_len + 1):                  # the valid MLIs
        padded = os.urandom(mli) + bytes(padded_len - mli)
        assert impl.kwp_unwrap(kek, _kwp_blob_with(kek, mli, padded)) == padded[:mli]
        if mli < padded_len:                                          # nonzero padding
            bad = padded[:-1] + b"\x01"
            with pytest.raises(KeyWrapError, match="integrity"):
                impl.kwp_unwrap(kek, _kwp_blob_with(kek, mli, bad))
    padded = bytes(padded_len)
    for mli in (0, padded_len - 8, padded_len + 1, padded_len + 8, 0xFFFFFFFF):  # out of range
        with pytest.raises(KeyWrapError, match="integrity"):
            impl.kwp_unwrap(kek, _kwp_blob_with(kek, mli, padded))
    with pytest.raises(KeyWrapError, match="integrity"):                # wrong constant
        impl.kwp_unwrap(kek, _kwp_blob_with(kek, padded_len, padded, aiv=b"\xa6\x59\x59\xa7"))
    # A plain RFC 3394 blob (default IV) is not an RFC 5649 blob.
    if padded_len >= 16:
        with pytest.raises(KeyWrapError, match="integrity"):
            impl.kwp_unwrap(kek, impl.kw_wrap(kek, padded))


# --- lengths and keys --------------------------------------------------------------------

@pytest.mark.parametrize("func,length", [
    ("kw_wrap", 0), ("kw_wrap", 8), ("kw_wrap", 15), ("kw_wrap", 17), ("kw_wrap", 31),
    ("kw_unwrap", 0), ("kw_unwrap", 8), ("kw_unwrap", 16), ("kw_unwrap", 23), ("kw_unwrap", 25),
    ("kwp_wrap", 0),
    ("kwp_unwrap", 0), ("kwp_unwrap", 8), ("kwp_unwrap", 15), ("kwp_unwrap", 17), ("kwp_unwrap", 39),
])
def test_bad_lengths_are_rejected(impl: ModuleType, func: str, length: int) -> None:
    with pytest.raises(KeyWrapError) as err:
        getattr(impl, func)(os.urandom(16), os.urandom(length))
    assert err.value.kind == "length"
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("func", ["kw_wrap", "kw_unwrap", "kwp_wrap", "kwp_unwrap"])
@pytest.mark.parametrize("kek_len", [0, 8, 15, 17, 20, 31, 33, 64])
def test_bad_kek_sizes_are_rejected(impl: ModuleType, func: str, kek_len: int) -> None:
    with pytest.raises(KeyWrapError) as err:
        getattr(impl, func)(os.urandom(kek_len), os.urandom(32))
    assert err.value.kind == "key"


@pytest.mark.parametrize("iv", [b"", bytes(7), bytes(9), bytes(16)])
def test_kw_iv_must_be_8_bytes(impl: ModuleType, iv: bytes) -> None:
    with pytest.raises(KeyWrapError, match="length"):
        impl.kw_wrap(os.urandom(16), os.urandom(16), iv=iv)
    with pytest.raises(KeyWrapError, match="length"):
        impl.kw_unwrap(os.urandom(16), os.urandom(24), iv=iv)


# --- batch re-wrap (master-key rotation) ---------------------------------------------------

def _expected_rewrap(old: bytes, new: bytes, blob: bytes) -> bytes | None:
    try:
        return pyca.aes_key_wrap_with_padding(new, pyca.aes_key_unwrap_with_padding(old, blob))
    except (pyca.InvalidUnwrap, ValueError):
        return None


@pytest.mark.parametrize("old_len,new_len", [(32, 32), (16, 32), (32, 24)])
def test_rewrap_batch_matches_per_blob_unwrap_and_wrap(impl: ModuleType, old_len: int,
                                                       new_len: int) -> None:
    rng = random.Random(old_len * 100 + new_len)
    old, new = os.urandom(old_len), os.urandom(new_len)
    # Many of one size (more than one full group of lanes, and a partial one), a mix of
    # other sizes in random order, a corrupted blob in the middle and malformed ones.
    lengths = [32] * 150 + [rng.choice([1, 7, 8, 9, 16, 24, 33, 100, 1200]) for _ in range(60)]
    rng.shuffle(lengths)
    plains = [os.urandom(n) for n in lengths]
    blobs = [pyca.aes_key_wrap_with_padding(old, p) for p in plains]
    corrupt = len(blobs) // 2
    bad = bytearray(blobs[corrupt])
    bad[-1] ^= 0x80
    blobs[corrupt] = bytes(bad)
    blobs[10] = pyca.aes_key_wrap_with_padding(os.urandom(old_len), plains[10])  # other KEK
    blobs.insert(20, b"\x00" * 12)                                 # not a multiple of 8
    blobs.insert(30, b"")
    blobs.insert(40, b"\x00" * 8)                                  # too short

    result = impl.kwp_rewrap_batch(old, new, blobs)
    assert len(result) == len(blobs)
    expected = [_expected_rewrap(old, new, b) for b in blobs]
    assert result == expected
    assert sum(r is None for r in result) == 5
    assert result[corrupt + 3] is None and result[20] is None
    ok = [(r, b) for r, b in zip(result, blobs) if r is not None]
    assert all(len(r) == len(b) for r, b in ok)
    assert all(impl.kwp_unwrap(new, r) == impl.kwp_unwrap(old, b) for r, b in ok)


def test_rewrap_batch_of_one_size_in_lanes(impl: ModuleType) -> None:
    old, new = os.urandom(32), os.urandom(32)
    for count in (1, 2, 31, 32, 33, 64, 100):
        plains = [os.urandom(32) for _ in range(count)]
        blobs = [keywrap_ref.kwp_wrap(old, p) for p in plains]
        assert impl.kwp_rewrap_batch(old, new, blobs) == [keywrap_ref.kwp_wrap(new, p) for p in plains]


def test_rewrap_batch_all_failing_and_empty(impl: ModuleType) -> None:
    old, new = os.urandom(16), os.urandom(16)
    blobs = [keywrap_ref.kwp_wrap(os.urandom(16), os.urandom(32)) for _ in range(40)]
    assert impl.kwp_rewrap_batch(old, new, blobs) == [None] * 40
    assert impl.kwp_rewrap_batch(old, new, []) == []


def test_rewrap_batch_same_kek_is_identity(impl: ModuleType) -> None:
    kek = os.urandom(24)
    blobs = [keywrap_ref.kwp_wrap(kek, os.urandom(n)) for n in (1, 8, 32, 45)]
    assert impl.kwp_rewrap_batch(kek, kek, blobs) == blobs


@pytest.mark.parametrize("old_len,new_len", [(15, 32), (32, 0), (33, 16)])
def test_rewrap_batch_bad_kek_fails_the_batch(impl: ModuleType, old_len: int, new_len: int) -> None:
    blobs = [keywrap_ref.kwp_wrap(os.urandom(16), b"k" * 32)]
    with pytest.raises(KeyWrapError) as err:
        impl.kwp_rewrap_batch(os.urandom(old_len), os.urandom(new_len), blobs)
    assert err.value.kind == "key"


def test_rewrap_batch_c_equals_reference() -> None:
    old, new = os.urandom(32), os.urandom(16)
    blobs = [keywrap_ref.kwp_wrap(old, os.urandom(n)) for n in range(1, 120)]
    blobs[50] = blobs[50][:-8] + bytes(8)
    assert keywrap.kwp_rewrap_batch(old, new, blobs) == keywrap_ref.kwp_rewrap_batch(old, new, blobs)
