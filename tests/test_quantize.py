"""The quantisation kernels against the documented formula."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pyweightvc as wvc
from common import reference_quantize

SCHEMES = [
    dict(symmetric=True, per_channel=False),
    dict(symmetric=True, per_channel=True),
    dict(symmetric=False, per_channel=False),
    dict(symmetric=False, per_channel=True),
]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: f"sym{int(s['symmetric'])}-pc{int(s['per_channel'])}")
@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_matches_reference_formula(scheme, bits):
    rng = np.random.default_rng(bits)
    w = (rng.standard_t(4, size=(37, 3, 5)) * 0.03 + 0.004).astype(np.float32)
    q, scale, zp = wvc.quantize(w, bits=bits, **scheme)
    q_ref, s_ref, z_ref = reference_quantize(w, bits=bits, **scheme)
    np.testing.assert_array_equal(scale, s_ref)
    np.testing.assert_array_equal(zp, z_ref)
    np.testing.assert_array_equal(q, q_ref)
    assert q.shape == w.shape and q.dtype == np.int8
    assert scale.shape == ((37,) if scheme["per_channel"] else (1,))


def test_rounds_half_to_even():
    # max |w| = 127 gives scale 1, so the levels are the rounded weights.
    w = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.4999, 127.0], dtype=np.float32)
    q, scale, _ = wvc.quantize(w)
    assert scale[0] == 1.0
    assert q.tolist() == [0, 2, 2, 0, -2, -2, 3, 127]


def test_symmetric_levels_and_zero():
    w = np.linspace(-1, 1, 1001, dtype=np.float32)
    for bits in range(2, 9):
        q, scale, zp = wvc.quantize(w, bits=bits)
        qmax = 2 ** (bits - 1) - 1
        assert q.min() == -qmax and q.max() == qmax and zp[0] == 0
        assert np.isclose(scale[0], 1.0 / qmax)


def test_asymmetric_represents_zero_exactly():
    w = np.concatenate([np.linspace(0.1, 0.9, 50), [0.0]]).astype(np.float32)  # all >= 0
    q, scale, zp = wvc.quantize(w, symmetric=False)
    back = wvc.dequantize(q, scale, zp)
    assert back[-1] == 0.0
    assert q.min() == -128 and q.max() == 127


@pytest.mark.parametrize("bits", [4, 8])
def test_error_within_half_step(bits):
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.05, (64, 200)).astype(np.float32)
    for per_channel in (False, True):
        q, scale, zp = wvc.quantize(w, bits=bits, per_channel=per_channel)
        back = wvc.dequantize(q, scale, zp)
        s = scale[:, None] if per_channel else scale[0]
        assert np.all(np.abs(back - w) <= s / 2 * (1 + 1e-5))


def test_float16_and_bfloat16_inputs_read_directly():
    torch = pytest.importorskip("torch", reason="bfloat16 inputs are made with torch")
    rng = np.random.default_rng(2)
    w32 = rng.normal(0, 0.1, (50, 70)).astype(np.float32)
    w16 = w32.astype(np.float16)
    q16, s16, _ = wvc.quantize(w16)
    q_ref, s_ref, _ = reference_quantize(w16.astype(np.float32))
    np.testing.assert_array_equal(q16, q_ref)
    np.testing.assert_array_equal(s16, s_ref)
    wbf = torch.from_numpy(w32).to(torch.bfloat16)
    qbf, sbf, _ = wvc.quantize(wbf)
    q_ref, s_ref, _ = reference_quantize(wbf.float().numpy())
    np.testing.assert_array_equal(qbf, q_ref)
    np.testing.assert_array_equal(sbf, s_ref)


def test_every_float16_value_converts_exactly():
    # All finite halves, each with the maximum so the scale is 1: the level is the
    # rounded value, which must equal numpy's conversion rounded the same way.
    halves = np.arange(0, 65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    halves = halves[np.isfinite(halves) & (np.abs(halves.astype(np.float32)) <= 127)]
    w = np.concatenate([halves, np.array([127.0], np.float16)])
    q, scale, _ = wvc.quantize(w)
    assert scale[0] == 1.0
    np.testing.assert_array_equal(q, np.rint(w.astype(np.float32)).astype(np.int8))


def test_float16_output_rounds_like_numpy():
    rng = np.random.default_rng(3)
    q = rng.integers(-127, 128, size=(300, 300)).astype(np.int8)
    for scale in (np.float32(1.37e-4), np.float32(3.3), np.float32(1e-7)):  # subnormal halves too
        out = wvc.dequantize(q, scale, 0, dtype=np.float16)
        ref = (np.float32(scale) * q.astype(np.float32)).astype(np.float16)
        np.testing.assert_array_equal(out.view(np.uint16), ref.view(np.uint16))


def test_dequantize_per_channel_broadcasts_axis0():
    q = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    scale = np.array([1.0, 2.0, 0.5], np.float32)
    zp = np.array([0, 1, -2], np.int32)
    expected = scale[:, None] * (q.astype(np.float32) - zp[:, None])
    np.testing.assert_array_equal(wvc.dequantize(q, scale, zp), expected)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_weights_rejected(bad):
    w = np.zeros((4, 5), np.float32)
    w[2, 3] = bad
    with pytest.raises(ValueError, match=r"finite.*row 2, column 3"):
        wvc.quantize(w)
    with pytest.raises(ValueError, match="finite"):
        wvc.encode(w)


@pytest.mark.parametrize("bits", [1, 9, 0, 2.5, True])
def test_bits_out_of_range(bits):
    with pytest.raises(ValueError, match="bits must be an integer in 2..8"):
        wvc.quantize(np.ones(4, np.float32), bits=bits)


def test_zero_tensor_and_tiny_values():
    q, scale, _ = wvc.quantize(np.zeros(10, np.float32))
    assert not q.any() and scale[0] == 1.0
    tiny = np.full(8, 1e-44, np.float32)  # subnormal floats
    q, scale, zp = wvc.quantize(tiny)
    assert np.isfinite(wvc.dequantize(q, scale, zp)).all()


@settings(max_examples=60, deadline=None)
@given(
    w=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=9),
        elements=st.floats(-1e6, 1e6, width=32),
    ),
    bits=st.integers(2, 8),
    symmetric=st.booleans(),
    per_channel=st.booleans(),
)
def test_quantize_property(w, bits, symmetric, per_channel):
    q, scale, zp = wvc.quantize(w, bits=bits, symmetric=symmetric, per_channel=per_channel)
    q_ref, s_ref, z_ref = reference_quantize(w, bits=bits, symmetric=symmetric, per_channel=per_channel)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(scale, s_ref)
    np.testing.assert_array_equal(zp, z_ref)


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: f"sym{int(s['symmetric'])}-pc{int(s['per_channel'])}")
@pytest.mark.parametrize("bits", [3, 8])
def test_min_step_matches_reference_formula(scheme, bits):
    # channels of very different ranges: the narrow ones get the floor, the wide ones keep max-abs
    rng = np.random.default_rng(bits)
    w = (rng.standard_normal((24, 2, 3)) * np.geomspace(1e-4, 1.0, 24)[:, None, None]).astype(np.float32)
    step = 0.002 if bits == 8 else 0.1
    q, scale, zp = wvc.quantize(w, bits=bits, min_step=step, **scheme)
    q_ref, s_ref, z_ref = reference_quantize(w, bits=bits, min_step=step, **scheme)
    np.testing.assert_array_equal(scale, s_ref)
    np.testing.assert_array_equal(zp, z_ref)
    np.testing.assert_array_equal(q, q_ref)
    assert scale.min() >= np.float32(step)
    plain = wvc.quantize(w, bits=bits, **scheme)[1]
    if scheme["per_channel"]:  # floored where max-abs was finer, untouched elsewhere
        assert np.any(plain < step) and np.any(plain > step)
        np.testing.assert_array_equal(scale, np.maximum(plain, np.float32(step)))
    back = wvc.dequantize(q, scale, zp)
    assert np.all(np.abs(back - w).reshape(len(w), -1) <= (scale if scheme["per_channel"] else scale[0]).reshape(-1, 1) * 0.5001 + 1e-7)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.1"])
def test_min_step_rejects_bad_values(bad):
    w = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="min_step must be a finite number >= 0"):
        wvc.quantize(w, min_step=bad)
    with pytest.raises(ValueError, match="min_step must be a finite number >= 0"):
        wvc.Encoder(min_step=bad)
    with pytest.raises(ValueError, match="min_step must be a finite number >= 0"):
        wvc.Policy(overrides={"kind:conv": {"min_step": bad}})


def test_min_step_through_hevc_and_int8_input():
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((64, 96)) * np.geomspace(1e-3, 1.0, 64)[:, None]).astype(np.float32)
    blob = wvc.encode(w, lossless=True, per_channel=True, min_step=0.01)
    qt = wvc.decode_int8(blob)
    np.testing.assert_array_equal(qt.scale, wvc.quantize(w, per_channel=True, min_step=0.01)[1])
    np.testing.assert_array_equal(qt.levels, wvc.quantize(w, per_channel=True, min_step=0.01)[0])
    assert len(blob) < len(wvc.encode(w, lossless=True, per_channel=True))  # narrow rows: fewer distinct levels
    with pytest.raises(ValueError, match="min_step=0"):
        wvc.encode(np.zeros((8, 8), np.int8), lossless=True, min_step=0.5)
