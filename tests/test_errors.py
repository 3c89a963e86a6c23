"""Bad arguments and bad blobs: clear exceptions, never a crash, never silently
wrong numbers."""

import struct
import zlib

import numpy as np
import pytest

import pyweightvc as wvc
from pyweightvc.codec import _FIXED, _pack_header


@pytest.fixture(scope="module")
def blob():
    w = (np.random.default_rng(0).standard_normal((40, 70)) * 0.1).astype(np.float32)
    return wvc.encode(w, qp=24, per_channel=True)


def test_empty_tensor():
    with pytest.raises(ValueError, match="empty tensor"):
        wvc.encode(np.zeros((0, 4), np.float32))


@pytest.mark.parametrize("qp", [-1, 52, 24.0, "24", True])
def test_qp_out_of_range(qp):
    with pytest.raises(ValueError, match=r"qp must be an integer in 0\.\.51"):
        wvc.encode(np.ones(4, np.float32), qp=qp)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.uint8, np.bool_, np.complex64])
def test_unsupported_dtype(dtype):
    with pytest.raises(TypeError, match="expected float32, float16, bfloat16 or int8"):
        wvc.encode(np.ones(4, dtype))


def test_not_an_array():
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        wvc.encode([1.0, 2.0])


def test_bad_options():
    w = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="preset must be one of ultrafast, .*, got 'fastest'"):
        wvc.encode(w, preset="fastest")
    with pytest.raises(ValueError, match="threads"):
        wvc.encode(w, threads=0)
    with pytest.raises(ValueError, match="max_frame_side"):
        wvc.encode(w, max_frame_side=8)
    with pytest.raises(ValueError, match="unknown x265 option 'no-such-option'"):
        wvc.Encoder(x265_params={"no-such-option": 1})
    with pytest.raises(ValueError, match="bad value"):
        wvc.Encoder(x265_params={"rdoq-level": "seven"})
    with pytest.raises(TypeError, match=r"symmetric must be a bool \(True or False\)"):
        wvc.encode(w, symmetric="yes")
    with pytest.raises(ValueError, match="like must be 'numpy' or 'torch'"):
        wvc.decode(wvc.encode(w), like="jax")


def test_foreign_blob():
    with pytest.raises(wvc.FormatError, match="not a pyweightvc tensor blob"):
        wvc.decode(b"\x00\x00\x00\x01" + b"\x40" * 100)
    with pytest.raises(wvc.FormatError, match="truncated"):
        wvc.decode(b"")


def test_every_truncation_raises(blob):
    for n in range(len(blob)):
        with pytest.raises(wvc.FormatError):
            wvc.decode(blob[:n])


def test_trailing_bytes_rejected(blob):
    with pytest.raises(wvc.FormatError, match="padded"):
        wvc.decode(blob + b"\x00")


def test_every_single_byte_corruption_raises(blob):
    # Flipping any byte of the header or the payload is caught by a checksum
    # (or the magic/version check) before any number is produced.
    positions = range(len(blob)) if len(blob) < 4000 else np.linspace(0, len(blob) - 1, 4000).astype(int)
    for i in positions:
        bad = bytearray(blob)
        bad[i] ^= 0x5A
        with pytest.raises(wvc.FormatError):
            wvc.decode(bytes(bad))


def test_future_version_rejected(blob):
    bad = bytearray(blob)
    bad[4:6] = struct.pack("<H", 99)
    with pytest.raises(wvc.FormatError, match="unsupported format version 99"):
        wvc.decode(bytes(bad))


def _rewrite(blob: bytes, payload: bytes = None, **fixed) -> bytes:
    """Re-sign a blob after changing header fields or the payload, as a faulty or
    hostile producer would: the checksums then pass and deeper checks must hold."""
    h = wvc.read_header(blob)
    values = list(_FIXED.unpack_from(blob, 0))
    names = ["magic", "version", "dtype", "bits", "flags", "qp", "preset", "rank", "tile_h", "tile_w", "frame_h", "frame_w"]
    for k, v in fixed.items():
        values[names.index(k)] = v
    payload = blob[h.payload_offset :] if payload is None else payload
    head = bytearray(blob[: h.payload_offset - 16])
    head[: _FIXED.size] = _FIXED.pack(*values)
    head += struct.pack("<QI", len(payload), zlib.crc32(payload))
    head += struct.pack("<I", zlib.crc32(head))
    return bytes(head) + payload


def test_consistent_checksums_but_wrong_layout(blob):
    # refused by read_header before anything is allocated, not by the native core
    for fields in ({"tile_h": 0}, {"frame_w": 1}, {"frame_h": 48}, {"tile_w": 35}, {"frame_h": 16384}):
        with pytest.raises(wvc.FormatError, match="do not cut .* as a writer does"):
            wvc.decode(_rewrite(blob, **fields))


def _resign(blob: bytes, **fields) -> bytes:
    """The blob with header fields replaced (scale, zero_point, shape, flags...) and
    consistent CRCs, as a faulty or hostile writer would make it."""
    h = wvc.read_header(blob)
    args = dict(
        dtype_code=h.dtype_code,
        shape=h.shape,
        bits=h.bits,
        symmetric=h.symmetric,
        per_channel=h.per_channel,
        lossless=h.lossless,
        dense=h.dense,
        qp=h.qp if h.qp is not None else 0,
        preset=h.preset,
        geometry=(*h.tile, *h.frame),
        scale=h.scale,
        zero_point=h.zero_point,
        x265_options=h.x265_options,
        rotation=h.rotation,
        payload=blob[h.payload_offset :],
    )
    args.update(fields)
    return _pack_header(**args) + args["payload"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"scale": np.full(40, np.nan, np.float32)}, r"scale\[0\] = nan is not finite"),
        ({"scale": np.r_[np.ones(39), np.inf].astype(np.float32)}, r"scale\[39\] = inf"),
        ({"scale": np.r_[np.ones(3), 0.0, np.ones(36)].astype(np.float32)}, r"scale\[3\] = 0.0"),
        ({"scale": np.full(40, 1e-40, np.float32)}, "with a finite inverse"),
        ({"scale": np.ones(1, np.float32)}, "1 quantisation parameters for per-channel quantisation of 40 rows"),
        ({"symmetric": False, "zero_point": np.full(40, 128, np.int32)}, r"zero_point\[0\] = 128 is outside -128..127"),
        ({"symmetric": False, "bits": 4, "zero_point": np.full(40, -9, np.int32)}, "outside -8..7 for 4 bits"),
        ({"shape": (40, 2**47, 2**47)}, "has more than 281474976710656 elements"),
        ({"shape": (40, 2**30)}, "do not cut 1073741824 columns"),
        ({"qp": 255}, "qp 255 with the lossless flag clear"),
        ({"dense": True}, "dense samples need lossless coding"),
        (
            {"dtype_code": 4, "per_channel": False, "scale": np.ones(1, np.float32), "zero_point": np.zeros(1, np.int32)},
            "int8 levels must be stored as they are",
        ),
    ],
)
def test_consistent_checksums_but_fields_out_of_range(blob, fields, message):
    """Refused by read_header, before the output is allocated (issue 17: these escaped
    as ValueError or MemoryError from the native core and numpy)."""
    bad = _resign(blob, **fields)
    for call in (wvc.read_header, wvc.decode, wvc.decode_int8):
        with pytest.raises(wvc.FormatError, match=message):
            call(bad)


def test_elements_per_payload_byte_are_bounded():
    w = np.zeros((64, 64), np.float32)
    blob = wvc.encode(w, qp=51)
    h = wvc.read_header(blob)
    assert 64 * 64 <= 16384 * h.payload_size  # the writer's blob is within the bound
    # the same payload declared as a tensor of 16384 x 16384 pictures of that size: refused
    big = _resign(blob, shape=(16384, 16384), geometry=(16384, 16384, 16384, 16384))
    with pytest.raises(wvc.FormatError, match=r"elements in \d+ payload bytes \(at most 16384 a byte\)"):
        wvc.decode(big)
    with pytest.raises(wvc.FormatError, match="payload bytes cannot hold 4096 pictures"):
        wvc.decode(_resign(blob, shape=(1024, 1024), geometry=(16, 16, 16, 16)))


def test_consistent_checksums_but_garbage_stream(blob):
    rng = np.random.default_rng(1)
    with pytest.raises(wvc.FormatError, match="0 payload bytes cannot hold 1 pictures"):
        wvc.decode(_rewrite(blob, payload=b""))
    for payload in (rng.bytes(50), b"\x00\x00\x01" + rng.bytes(3000), blob[: len(blob) // 2]):
        with pytest.raises(wvc.DecoderError):
            wvc.decode(_rewrite(blob, payload=payload))


def test_picture_hash_verified(blob):
    # Every picture carries a CRC of its decoded samples (a suffix SEI, the last
    # NAL unit); the decoder checks each picture against it, so a decoder that
    # reconstructed a different picture than the encoder would fail loudly
    # (tests/test_picture_verify.py has the multi-picture cases).
    payload = bytearray(blob[wvc.read_header(blob).payload_offset :])
    payload[-3] ^= 0x01
    with pytest.raises(wvc.DecoderError, match="checksum mismatch"):
        wvc.decode(_rewrite(blob, payload=bytes(payload)))


def test_stream_of_another_tensor(blob):
    other = wvc.encode(np.ones((40, 70), np.float32), qp=24)
    payload = other[wvc.read_header(other).payload_offset :]
    # Same geometry, so it decodes: the checksum is what ties a payload to its header.
    out = wvc.decode(_rewrite(blob, payload=payload))
    assert out.shape == (40, 70)
    four_tiles = wvc.encode(np.ones((40, 70), np.float32), max_frame_side=35)
    with pytest.raises(wvc.DecoderError, match="1 picture hashes for 4 pictures"):
        wvc.decode(_rewrite(four_tiles, payload=payload))


def test_errors_share_one_root():
    for cls in (wvc.EncoderError, wvc.DecoderError, wvc.FormatError, wvc.ContainerError):
        assert issubclass(cls, wvc.WeightVCError)
