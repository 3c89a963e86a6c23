"""The numcodecs codec, with numcodecs' own expectations, and a zarr array."""

import json

import numpy as np
import pytest

numcodecs = pytest.importorskip("numcodecs", reason="the numcodecs codec needs numcodecs")

import pyweightvc as wvc  # noqa: E402
from common import DATA, hevc_qstep  # noqa: E402
from pyweightvc.numcodecs import PyWeightVC  # noqa: E402


def chunk(shape=(64, 96), seed=0, dtype=np.float32):
    return (np.random.default_rng(seed).standard_normal(shape) * 0.05).astype(dtype)


def test_registered_through_entry_point():
    codec = numcodecs.get_codec({"id": "pyweightvc", "qp": 30})
    assert isinstance(codec, PyWeightVC) and codec.qp == 30


def test_config_round_trips_through_json():
    codec = PyWeightVC(qp=20, bits=6, per_channel=True, preset="ultrafast")
    config = json.loads(json.dumps(codec.get_config()))
    again = numcodecs.get_codec(config)
    assert again.get_config() == codec.get_config()
    assert again == codec  # numcodecs compares configs


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape", [(64, 96), (1000,), (7, 5, 3)])
def test_round_trip_within_tolerance(dtype, shape):
    codec = PyWeightVC(qp=18)
    arr = chunk(shape, dtype=dtype)
    enc = codec.encode(arr)
    dec = codec.decode(enc)
    assert dec.dtype == arr.dtype and dec.shape == arr.shape
    scale = np.abs(arr.astype(np.float32)).max() / 127
    rms = np.sqrt(np.mean((dec.astype(np.float64) - arr) ** 2)) / scale  # in levels
    assert rms <= hevc_qstep(18) / 2 + 1
    out = np.empty_like(arr)
    codec.decode(enc, out=out)
    np.testing.assert_array_equal(out, dec)
    # decode accepts any buffer of the encoded bytes
    np.testing.assert_array_equal(codec.decode(bytearray(enc)), dec)
    np.testing.assert_array_equal(codec.decode(np.frombuffer(enc, np.uint8)), dec)


def test_lossless_is_exact_int8():
    codec = PyWeightVC(lossless=True)
    arr = chunk()
    q, s, z = wvc.quantize(arr)
    np.testing.assert_array_equal(codec.decode(codec.encode(arr)), wvc.dequantize(q, s, z))


def test_untyped_chunks_rejected():
    with pytest.raises(TypeError, match="float32, float16 or int8 chunks"):
        PyWeightVC().encode(np.zeros(10, np.float64))


def test_fixture_chunk_keeps_decoding():
    codec = numcodecs.get_codec(json.loads((DATA / "numcodecs_chunk_v1.json").read_text()))
    expected = np.load(DATA / "numcodecs_chunk_v1.expected.npy")
    np.testing.assert_array_equal(codec.decode((DATA / "numcodecs_chunk_v1.bin").read_bytes()), expected)


def test_zarr_array_written_and_read_back(tmp_path):
    zarr = pytest.importorskip("zarr", reason="zarr round trip needs zarr")
    data = chunk((200, 150), seed=3)
    z = zarr.open_array(
        str(tmp_path / "w.zarr"), mode="w", shape=data.shape, chunks=(64, 64), dtype="float32", zarr_format=2, compressor=PyWeightVC(qp=12)
    )
    z[:] = data
    back = zarr.open_array(str(tmp_path / "w.zarr"), mode="r")[:]
    assert back.shape == data.shape and back.dtype == np.float32
    scale = np.abs(data).max() / 127  # the largest per-chunk scale bounds every chunk's
    assert np.sqrt(np.mean((back - data) ** 2)) <= scale * (hevc_qstep(12) / 2 + 1)
    meta = json.loads((tmp_path / "w.zarr" / ".zarray").read_text())
    assert meta["compressor"]["id"] == "pyweightvc" and meta["compressor"]["qp"] == 12


def test_decode_raises_only_pyweightvc_errors_for_any_chunk():
    codec = PyWeightVC(qp=24)
    chunk = codec.encode(np.ones((8, 8), np.float32))
    with pytest.raises(wvc.FormatError, match="out holds 64 bytes"):
        codec.decode(chunk, out=np.empty(16, np.float32))  # a chunk of another size than out
    with pytest.raises(wvc.FormatError):
        codec.decode(chunk[:-1])
    with pytest.raises(wvc.FormatError):
        codec.decode(b"not a blob at all")
