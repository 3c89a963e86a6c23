"""The rans coder of int8 levels (native core) and its use in .wvc int8 entries."""

import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyweightvc as wvc
from pyweightvc._core import decode_levels, encode_levels, max_levels_for_bytes


def spread_rows(rows=64, cols=256, seed=0):
    """Laplacian levels whose rows differ in spread by up to 16x, as in embeddings."""
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.uniform(0, math.log(16), (rows, 1)))
    return np.clip(np.round(rng.laplace(0, 1, (rows, cols)) * scale), -127, 127).astype(np.int8)


@st.composite
def level_matrices(draw):
    rows = draw(st.integers(0, 40))
    cols = draw(st.integers(0, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["uniform", "laplace", "constant", "two"]))
    if kind == "uniform":
        m = rng.integers(-128, 128, (rows, cols))
    elif kind == "laplace":
        m = np.clip(np.round(rng.laplace(0, draw(st.floats(0.01, 60)), (rows, cols))), -128, 127)
    elif kind == "constant":
        m = np.full((rows, cols), draw(st.integers(-128, 127)))
    else:
        m = rng.choice([draw(st.integers(-128, 127)), draw(st.integers(-128, 127))], (rows, cols), p=[0.999, 0.001])
    return m.astype(np.int8)


@settings(max_examples=150, deadline=None)
@given(level_matrices())
def test_round_trip_is_exact(m):
    stream = encode_levels(m)
    np.testing.assert_array_equal(decode_levels(stream, *m.shape), m)
    assert m.size <= max_levels_for_bytes(len(stream))


def test_rows_of_unequal_spread_code_below_their_order0_entropy():
    """Row classes: below what any single table can reach (the order-0 entropy)."""
    m = spread_rows(rows=256, cols=512)
    counts = np.bincount(m.ravel().astype(np.int64) + 128)
    p = counts[counts > 0] / m.size
    entropy_bytes = -(counts[counts > 0] * np.log2(p)).sum() / 8
    stream = encode_levels(m)
    assert stream[0] > 1  # more than one class
    assert len(stream) < 0.97 * entropy_bytes
    assert len(stream) < 0.9 * len(zlib.compress(m.tobytes(), 9))


def test_a_constant_matrix_still_costs_bytes_in_proportion():
    """No symbol takes more than 255/256 of a table: levels per byte stay bounded."""
    stream = encode_levels(np.zeros((1000, 1000), np.int8))
    assert 10**6 <= max_levels_for_bytes(len(stream)) < 4 * 10**6


def expect_refused(stream, rows, cols, match=None):
    with pytest.raises(wvc.DecoderError, match=match):
        decode_levels(stream, rows, cols)


def test_malformed_streams_are_refused():
    m = spread_rows(rows=8, cols=100)
    good = encode_levels(m)
    classes = good[0]
    for cut in range(len(good)):  # every truncation
        expect_refused(good[:cut], 8, 100)
    expect_refused(good + b"\0\0", 8, 100, "after the last level")
    expect_refused(bytes([0]) + good[1:], 8, 100, "class count")
    expect_refused(bytes([17]) + good[1:], 8, 100, "class count")
    expect_refused(good, 8, 99)  # another shape: leftover words or a wrong final state
    expect_refused(good, 9, 100)
    # a class id at or above the class count
    if classes > 1:
        expect_refused(good[:1] + bytes([0xFF]) + good[2:], 8, 100, "row class")
    # one table whose frequencies do not sum to 2^14, one with a too-frequent symbol
    expect_refused(bytes([1, 128, 129, 0x80, 0x40, 1]) + bytes(6), 1, 4, "sum")
    expect_refused(bytes([1, 128, 128, 0x80, 0x80, 1]) + bytes(6), 1, 4, "frequency above")
    expect_refused(bytes([1, 129, 128]) + bytes(8), 1, 4, "range is empty")


def test_a_level_count_beyond_the_bound_is_refused_before_allocating():
    # 10^12 levels from 20 bytes: refused by the bound, not by running out of memory
    expect_refused(bytes(20), 10**6, 10**6, "cannot hold")


def test_flipped_bytes_never_crash():
    m = spread_rows(rows=16, cols=64, seed=3)
    good = bytearray(encode_levels(m))
    rng = np.random.default_rng(1)
    for _ in range(300):
        bad = bytearray(good)
        bad[rng.integers(len(bad))] ^= 1 << int(rng.integers(8))
        try:
            out = decode_levels(bytes(bad), 16, 64)
        except wvc.DecoderError:
            continue
        assert out.shape == (16, 64)  # undetected here; the entry's CRC-32 catches it in a file


def test_int8_entries_take_the_smaller_coder(tmp_path):
    """Large matrices are rans-coded; small ones take whichever of rans and deflate is smaller."""
    rng = np.random.default_rng(0)
    big = (rng.laplace(0, 0.02, (300, 256)) * np.exp(rng.uniform(0, 2, (300, 1)))).astype(np.float32)
    small = (rng.standard_normal((10, 12)) * 0.1).astype(np.float32)
    path = str(tmp_path / "m.wvc")
    policy = wvc.Policy(overrides={"*": {"storage": "int8", "target_snr_db": 25}})
    wvc.save_file({"big": big, "small": small}, path, policy=policy)
    with wvc.safe_open(path) as f:
        assert f.entry("big")["coder"].startswith("rans")
        for name, x in (("big", big), ("small", small)):
            q = f.get_int8(name)
            e = f.entry(name)
            params = q.scale.size * (4 if e["symmetric"] else 8)
            stored = e["data_offsets"][1] - e["data_offsets"][0]
            levels = q.levels.reshape(q.levels.shape[0], -1)
            best = min(len(encode_levels(levels)), len(zlib.compress(q.levels.tobytes(), 9)))
            assert stored - best <= params  # the levels take the smaller of the two
            assert 10 * np.log10((x**2).sum() / ((x - f.get_tensor(name)) ** 2).sum()) >= 25
