"""Tensors through HEVC and back: shapes, dtypes, schemes, bit widths, exactness,
determinism, reuse, threads."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pyweightvc as wvc
from common import check_backwards_compatibility, check_encode_decode, hevc_qstep, snr_db

try:
    import torch
except ImportError:  # torch is optional; its tests say so when it is missing
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def weights(shape, seed=0, scale=0.02):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


SHAPES = {
    "1-D": (300,),
    "one element": (1,),
    "tall": (700, 9),
    "wide": (5, 900),
    "not multiple of 8": (101, 203),
    "conv 4-D": (32, 16, 3, 3),
    "depthwise 4-D": (96, 1, 3, 3),
    "3-D": (7, 11, 13),
    "scalar": (),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("qp", [None, 24], ids=["lossless", "qp24"])
def test_round_trip_shapes(shape, qp):
    check_encode_decode(weights(shape), qp=qp)


@pytest.mark.parametrize("qp", [None, 12, 30])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("per_channel", [False, True])
def test_round_trip_schemes(qp, symmetric, per_channel):
    w = weights((96, 120), seed=3) + 0.01
    check_encode_decode(w, qp=qp, symmetric=symmetric, per_channel=per_channel)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
@pytest.mark.parametrize("qp", [None, 18])
def test_round_trip_bit_widths(bits, qp):
    check_encode_decode(weights((64, 160), seed=bits), qp=qp, bits=bits)


def test_narrow_levels_survive_moderate_qp():
    # 4-bit levels are spread 16 samples apart: QP 12's errors (step 2.5) never
    # reach half a level, so the levels come back exactly.
    w = weights((128, 128), seed=5)
    blob = wvc.encode(w, qp=12, bits=4)
    np.testing.assert_array_equal(wvc.decode_int8(blob).levels, wvc.quantize(w, bits=4)[0])


def test_larger_than_frame_limit():
    w = weights((300, 200), seed=6)
    for qp in (None, 24):
        blob = check_encode_decode(w, qp=qp, max_frame_side=64)
        h = wvc.read_header(blob)
        assert h.tile == (60, 50) and h.frame == (60, 50)  # 5 x 4 frames


@pytest.mark.slow
def test_real_matrix_larger_than_default_frame_limit():
    side = wvc.lib_info()["default_max_frame_side"]
    check_encode_decode(weights((side + 7, 2 * side + 1), seed=7), qp=30, preset="ultrafast")


def test_error_shrinks_with_qp_and_size_grows():
    w = weights((256, 256), seed=8)
    sizes, snrs = [], []
    for qp in (12, 18, 24, 30, 36):
        blob = wvc.encode(w, qp=qp)
        sizes.append(len(blob))
        snrs.append(snr_db(w, wvc.decode(blob)))
    assert sizes == sorted(sizes, reverse=True)
    assert snrs == sorted(snrs, reverse=True)
    assert snrs[0] > 30 and hevc_qstep(36) > 30  # QP 12 is close to the int8 ceiling


def test_float16_stays_float16():
    w = weights((40, 50)).astype(np.float16)
    out = wvc.decode(check_encode_decode(w, qp=None))
    assert out.dtype == np.float16


@needs_torch
def test_bfloat16_torch_round_trip():
    t = torch.from_numpy(weights((40, 50))).to(torch.bfloat16)
    blob = wvc.encode(t, lossless=True)
    out_np = wvc.decode(blob)
    assert out_np.dtype == np.float32
    out_t = wvc.decode(blob, like="torch")
    assert out_t.dtype == torch.bfloat16 and out_t.shape == t.shape
    q, s, z = wvc.quantize(t)
    expected = torch.from_numpy(wvc.dequantize(q, s, z)).to(torch.bfloat16)
    assert torch.equal(out_t, expected)
    np.testing.assert_array_equal(out_np, wvc.dequantize(q, s, z))


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_torch_like_restores_dtype(dtype):
    dtype = getattr(torch, dtype)
    t = torch.from_numpy(weights((3, 4, 5))).to(dtype)
    out = wvc.decode(wvc.encode(t, qp=20), like="torch")
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == t.shape


def test_int8_input_taken_as_levels():
    q = np.random.default_rng(9).integers(-128, 128, (50, 60)).astype(np.int8)
    blob = wvc.encode(q, lossless=True)
    out = wvc.decode(blob)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, q)  # -128 included
    h = wvc.read_header(blob)
    assert h.scale.tolist() == [1.0] and h.zero_point.tolist() == [0]
    lossy = wvc.decode(wvc.encode(q, qp=24))
    assert lossy.dtype == np.int8 and np.abs(lossy.astype(int) - q).mean() < hevc_qstep(24)
    with pytest.raises(ValueError, match="int8 input"):
        wvc.encode(q, bits=4)


def test_decode_int8_gives_levels_and_parameters():
    w = weights((20, 30), seed=10)
    qt = wvc.decode_int8(wvc.encode(w, lossless=True, per_channel=True, symmetric=False))
    q, s, z = wvc.quantize(w, per_channel=True, symmetric=False)
    np.testing.assert_array_equal(qt.levels, q)
    np.testing.assert_array_equal(qt.scale, s)
    np.testing.assert_array_equal(qt.zero_point, z)
    assert qt.bits == 8 and qt.symmetric is False


def test_non_contiguous_input_is_copied():
    w = weights((60, 80), seed=11)
    strided = w.T  # Fortran order view
    assert not strided.flags.c_contiguous
    assert wvc.encode(strided, qp=24) == wvc.encode(np.ascontiguousarray(strided), qp=24)
    sliced = w[::2, 1::3]
    assert wvc.encode(sliced, qp=24) == wvc.encode(sliced.copy(), qp=24)


def test_deterministic_bytes_across_runs_and_threads():
    w = weights((300, 700), seed=12)
    blobs = {wvc.encode(w, qp=24, threads=t) for t in (1, 2, 2, 4)}
    assert len(blobs) == 1
    lossless = {wvc.encode(w, lossless=True, threads=t) for t in (1, 2)}
    assert len(lossless) == 1


def test_encoder_and_decoder_objects_are_reusable():
    enc = wvc.Encoder(qp=22, preset="fast", threads=2)
    dec = wvc.Decoder(threads=2)
    tensors = [weights(s, seed=i) for i, s in enumerate([(64, 64), (10,), (33, 65), (64, 64)])]
    blobs = [enc.encode(t) for t in tensors]
    for t, b in zip(tensors, blobs):
        assert dec.decode(b).shape == t.shape
        np.testing.assert_array_equal(dec.decode(b), wvc.decode(b))
    # a failed decode leaves the decoder usable
    bad = bytearray(blobs[0])
    bad[-5] ^= 0xFF
    with pytest.raises(wvc.WeightVCError):
        dec.decode(bytes(bad))
    np.testing.assert_array_equal(dec.decode(blobs[1]), wvc.decode(blobs[1]))


def test_concurrent_encoders_and_decoders():
    ws = [weights((128, 256), seed=s) for s in range(4)]
    expected = [wvc.encode(w, qp=26, threads=1) for w in ws]
    results = [None] * 4

    def work(i):
        blob = wvc.encode(ws[i], qp=26, threads=1)
        results[i] = (blob, wvc.decode(blob, threads=1))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert results[i][0] == expected[i]
        np.testing.assert_array_equal(results[i][1], wvc.decode(expected[i]))


def test_gil_released_during_encode():
    w = weights((512, 1024), seed=13)
    ticks = 0
    done = threading.Event()

    def encode():
        wvc.encode(w, qp=24, preset="medium", threads=1)
        done.set()

    worker = threading.Thread(target=encode)
    worker.start()
    while not done.is_set():  # Python keeps running while the encoder works
        ticks += 1
        done.wait(0.001)
    worker.join()
    assert ticks > 5


def test_lib_info_reports_versions():
    info = wvc.lib_info()
    assert info["x265"].startswith("3.")
    assert info["libde265"].startswith("1.")
    assert info["pyweightvc"] == wvc.__version__
    assert ("info", "false") in info["x265_options"]


@pytest.mark.parametrize("name", ["v1_f32_qp24", "v1_f16_lossless_pc", "v1_bf16_asym_4bit"])
def test_fixture_blobs_keep_decoding(name):
    check_backwards_compatibility(name)


@settings(max_examples=25, deadline=None)
@given(
    w=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=40),
        elements=st.floats(-4, 4, width=32),
    ),
    per_channel=st.booleans(),
    symmetric=st.booleans(),
)
def test_lossless_property(w, per_channel, symmetric):
    check_encode_decode(w, qp=None, per_channel=per_channel, symmetric=symmetric, preset="ultrafast")


def test_codec_libraries_print_nothing(capfd):
    w = weights((70, 90), seed=14)
    wvc.decode(wvc.encode(w, qp=24))
    wvc.decode(wvc.encode(w, lossless=True, threads=1))
    with pytest.raises(wvc.DecoderError):
        bad = bytearray(wvc.encode(w, qp=24))
        from test_errors import _rewrite

        wvc.decode(_rewrite(bytes(bad), payload=b"\x00\x00\x01\x40\x01" + bytes(100)))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("symmetric", [True, False])
def test_lossless_narrow_levels_are_coded_dense(symmetric):
    """Lossless coding has no codec error to absorb, so narrow levels are packed
    (sample 128 + q, format version 2) instead of spread 2^(8-b) apart: the blob
    costs about the levels' entropy."""
    w = weights((256, 256), seed=21)
    blob = check_encode_decode(w, qp=None, bits=3, symmetric=symmetric)
    header = wvc.read_header(blob)
    assert header.dense and blob[4:6] == b"\x02\x00"
    levels = wvc.quantize(w, bits=3, symmetric=symmetric)[0]
    p = np.bincount(levels.ravel().astype(np.int64) + 128) / levels.size
    entropy = -(p[p > 0] * np.log2(p[p > 0])).sum()
    assert 8 * len(blob) / w.size < entropy + 0.25
    # 8-bit and lossy blobs keep version 1 and the spread samples
    for options in ({"lossless": True}, {"qp": 24, "bits": 3}):
        b = wvc.encode(w, **options)
        assert not wvc.read_header(b).dense and b[4:6] == b"\x01\x00"


def test_dense_flag_in_a_version_1_blob_is_rejected():
    import struct
    import zlib

    blob = bytearray(wvc.encode(weights((16, 16)), qp=24))
    h = wvc.read_header(bytes(blob))
    blob[8] |= 8  # the dense flag, which version 1 does not have
    end = h.payload_offset - 4
    blob[end : h.payload_offset] = struct.pack("<I", zlib.crc32(bytes(blob[:end])))
    with pytest.raises(wvc.FormatError, match="unknown flags 0x9 for version 1"):
        wvc.read_header(bytes(blob))


def test_version_2_dense_fixture_keeps_decoding():
    check_backwards_compatibility("v2_f32_lossless_3bit_dense")
