"""Every picture of a stream is checked against its own decoded-picture hash
(issue 17): damaged or rearranged pictures anywhere in a multi-picture blob raise
DecoderError, even when the blob's checksums were repaired after the damage, and
nothing a corrupted stream leaves undecoded reaches an output."""

import struct
import zlib

import numpy as np
import pytest

import pyweightvc as wvc
from common import check_backwards_compatibility


def resign(blob: bytes, payload: bytes) -> bytes:
    """blob with its payload replaced and both CRCs (payload, header) repaired, as a
    faulty or hostile producer would write it: only the picture checks remain."""
    h = wvc.read_header(blob)
    head = bytearray(blob[: h.payload_offset - 16])  # trailer: length, payload CRC, header CRC
    head += struct.pack("<QI", len(payload), zlib.crc32(payload))
    head += struct.pack("<I", zlib.crc32(head))
    return bytes(head) + payload


def payload_of(blob: bytes) -> bytes:
    return blob[wvc.read_header(blob).payload_offset :]


def nal_units(payload: bytes) -> list[tuple[int, bytes]]:
    """(nal_unit_type, bytes from its start code on) for every NAL unit."""
    starts, i = [], payload.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i - 1 if i > 0 and payload[i - 1] == 0 else i)
        i = payload.find(b"\x00\x00\x01", i + 3)
    units = []
    for k, s in enumerate(starts):
        unit = payload[s : starts[k + 1] if k + 1 < len(starts) else len(payload)]
        header = unit.index(b"\x00\x00\x01") + 3
        units.append(((unit[header] >> 1) & 0x3F, unit))
    return units


def pictures(payload: bytes) -> list[list[tuple[int, bytes]]]:
    """The NAL units grouped per picture: parameter sets, slice, hash SEI (type 40)."""
    groups, current = [], []
    for t, unit in nal_units(payload):
        current.append((t, unit))
        if t == 40:
            groups.append(current)
            current = []
    assert not current
    return groups


def join(groups) -> bytes:
    return b"".join(unit for g in groups for _, unit in g)


def replace_unit(groups, picture: int, nal_type: int, unit: bytes):
    out = [list(g) for g in groups]
    out[picture] = [(t, unit if t == nal_type else u) for t, u in out[picture]]
    return out


def unit_of(groups, picture: int, nal_type: int) -> bytes:
    return next(u for t, u in groups[picture] if t == nal_type)


SLICE = 20  # IDR_N_LP: every picture x265 writes here


@pytest.fixture(scope="module")
def blob():
    w = (np.random.default_rng(3).standard_normal((130, 200)) * 0.05).astype(np.float32)
    b = wvc.encode(w, qp=24, max_frame_side=64)  # 3 x 4 = 12 pictures of 44 x 50 (padded to 48 x 56)
    assert len(pictures(payload_of(b))) == 12
    return b


def test_unchanged_payload_decodes(blob):
    groups = pictures(payload_of(blob))
    np.testing.assert_array_equal(wvc.decode(resign(blob, join(groups))), wvc.decode(blob))


@pytest.mark.parametrize("picture", [0, 1, 5])
def test_flipped_slice_byte_in_earlier_picture(blob, picture):
    # Many flips make libde265 report a stream error; the others decode "fine" to
    # a different picture, which its hash rejects (before, only the last
    # picture's hash was enforced and such blobs decoded to wrong numbers).
    groups = pictures(payload_of(blob))
    unit = unit_of(groups, picture, SLICE)
    by_hash = 0
    for pos in range(10, len(unit) - 1, 23):
        bad = bytearray(unit)
        bad[pos] ^= 0x10
        with pytest.raises(wvc.DecoderError) as info:
            wvc.decode(resign(blob, join(replace_unit(groups, picture, SLICE, bytes(bad)))))
        by_hash += f"picture {picture} fails its decoded picture hash" in str(info.value)
    assert by_hash > 0


def test_swapped_slices_rejected(blob):
    groups = pictures(payload_of(blob))
    a, b = unit_of(groups, 0, SLICE), unit_of(groups, 1, SLICE)
    swapped = replace_unit(replace_unit(groups, 0, SLICE, b), 1, SLICE, a)
    with pytest.raises(wvc.DecoderError, match="picture 0 fails its decoded picture hash"):
        wvc.decode(resign(blob, join(swapped)))


def test_swapped_hashes_rejected(blob):
    groups = pictures(payload_of(blob))
    a, b = unit_of(groups, 2, 40), unit_of(groups, 3, 40)
    swapped = replace_unit(replace_unit(groups, 2, 40, b), 3, 40, a)
    with pytest.raises(wvc.DecoderError, match="picture 2 fails its decoded picture hash"):
        wvc.decode(resign(blob, join(swapped)))


@pytest.mark.parametrize("picture", [0, 4, 11])
def test_flipped_hash_rejected(blob, picture):
    groups = pictures(payload_of(blob))
    sei = bytearray(unit_of(groups, picture, 40))
    sei[-2] ^= 0x01  # the CRC's low byte, before the rbsp stop byte
    with pytest.raises(wvc.DecoderError, match=rf"picture {picture} fails its decoded picture hash \(CRC"):
        wvc.decode(resign(blob, join(replace_unit(groups, picture, 40, bytes(sei)))))


def test_missing_duplicated_and_extra_pictures(blob):
    groups = pictures(payload_of(blob))
    cases = {
        "11 picture hashes for 12": join(groups[:3] + groups[4:]),  # a picture left out
        "13 picture hashes for 12": join(groups[:3] + [groups[3]] + groups[3:]),  # one twice
        "picture 3 has two hashes": join(groups[:3] + [groups[3] + groups[3][-1:]] + groups[4:]),
        "11 picture hashes for 12 pictures": join(groups[:3] + [groups[3][:-1]] + groups[4:]),
    }
    for message, payload in cases.items():
        with pytest.raises(wvc.DecoderError, match=message):
            wvc.decode(resign(blob, payload))


def test_frames_with_padding_are_verified():
    # Frame sides that are not multiples of 8: x265 pads them and hashes the padded
    # picture, libde265 crops it; the check covers the picture the hash was made of.
    rng = np.random.default_rng(4)
    for shape, side in (((1001, 2047), 2048), ((45, 70), 23), ((100, 75), 40)):
        w = (rng.standard_normal(shape) * 0.05).astype(np.float32)
        b = wvc.encode(w, lossless=True, max_frame_side=side)
        levels, _, _ = wvc.quantize(w)
        np.testing.assert_array_equal(wvc.decode_int8(b).levels, levels)


def test_blob_from_before_the_picture_check():
    # Written and decoded by the decoder before per-picture verification: six
    # pictures of 34 x 38 samples; the bytes of the format are unchanged.
    check_backwards_compatibility("v1_f32_qp24_multiframe")


# --- libde265's "SPS error" messages -------------------------------------------


def _bits(data: bytes) -> str:
    return "".join(f"{b:08b}" for b in data)


def _ue(bits: str, pos: int) -> tuple[int, int]:
    zeros = 0
    while bits[pos + zeros] == "0":
        zeros += 1
    value = int(bits[pos + zeros : pos + 2 * zeros + 1], 2) - 1
    return value, pos + 2 * zeros + 1


def _ue_bits(value: int) -> str:
    code = f"{value + 1:b}"
    return "0" * (len(code) - 1) + code


def _unescape(data: bytes) -> bytes:
    return data.replace(b"\x00\x00\x03", b"\x00\x00")


def _escape(rbsp: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def sps_with_width(unit: bytes, delta: int) -> bytes:
    """The SPS unit with pic_width_in_luma_samples changed by delta."""
    header = unit.index(b"\x00\x00\x01") + 3
    bits = _bits(_unescape(unit[header + 2 :]))
    pos = 4 + 3 + 1 + 96  # vps id, sub-layers, nesting flag, profile_tier_level of one layer
    _, pos = _ue(bits, pos)  # sps_seq_parameter_set_id
    _, pos = _ue(bits, pos)  # chroma_format_idc (0: no separate_colour_plane_flag)
    width, end = _ue(bits, pos)
    body = (bits[:pos] + _ue_bits(width + delta) + bits[end:]).rstrip("0")[:-1]  # without the stop bit
    body += "1" + "0" * (-(len(body) + 1) % 8)
    rbsp = bytes(int(body[i : i + 8], 2) for i in range(0, len(body), 8))
    return unit[: header + 2] + _escape(rbsp)


def test_libde265_sps_errors_not_printed(blob, capfd):
    # A width that is no multiple of the minimum coding block: libde265 1.0.11
    # rejects that SPS with fprintf(stderr, "SPS error: CB alignment"), whatever
    # its verbosity; the stream check rejects it before libde265 reads it.
    groups = pictures(payload_of(blob))
    bad = [[(t, sps_with_width(u, 1) if t == 33 else u) for t, u in g] for g in groups]
    capfd.readouterr()
    with pytest.raises(wvc.DecoderError, match="SPS block sizes out of range"):
        wvc.decode(resign(blob, join(bad)))
    assert capfd.readouterr().err == ""
    # the helper itself: an unchanged width gives back the same SPS
    assert sps_with_width(unit_of(groups, 0, 33), 0) == unit_of(groups, 0, 33)


# --- damaged blobs, decoded many times (slow) -------------------------------------


def _outcome(blob: bytes, decoder: "wvc.Decoder | None", threads: int):
    try:
        out = decoder.decode(blob) if decoder else wvc.decode(blob, threads=threads)
    except wvc.DecoderError:
        return "DecoderError"
    return out.tobytes()


def _mutations(payload: bytes, rng: np.random.Generator, count: int):
    groups = pictures(payload)
    n = len(groups)
    for _ in range(count):
        kind = rng.integers(6)
        g = [list(x) for x in groups]
        p = int(rng.integers(n - 1))  # an earlier picture: never the last one
        if kind <= 1:  # flipped bits in an earlier picture's slice data
            unit = bytearray(unit_of(g, p, SLICE))
            for _ in range(1 + kind * 3):
                unit[int(rng.integers(8, len(unit)))] ^= 1 << int(rng.integers(8))
            g = replace_unit(g, p, SLICE, bytes(unit))
        elif kind == 2:  # a byte anywhere in the payload (parameter sets, SEI, slices)
            flat = bytearray(join(g))
            flat[int(rng.integers(len(flat)))] ^= 1 << int(rng.integers(8))
            yield bytes(flat)
            continue
        elif kind == 3:  # two slices swapped
            q = int(rng.integers(n))
            a, b = unit_of(g, p, SLICE), unit_of(g, q, SLICE)
            g = replace_unit(replace_unit(g, p, SLICE, b), q, SLICE, a)
        elif kind == 4:  # a slice duplicated over another picture's
            q = int(rng.integers(n))
            g = replace_unit(g, q, SLICE, unit_of(g, p, SLICE))
        else:  # a slice cut short
            unit = unit_of(g, p, SLICE)
            g = replace_unit(g, p, SLICE, unit[: int(rng.integers(8, len(unit)))])
        yield join(g)


@pytest.mark.slow
@pytest.mark.parametrize("lossless", [False, True])
def test_damaged_blobs_raise_or_decode_identically(lossless):
    w = (np.random.default_rng(5).standard_normal((100, 150)) * 0.05).astype(np.float32)
    blob = wvc.encode(w, max_frame_side=50, **({"lossless": True} if lossless else {"qp": 30}))
    reference = wvc.decode(blob).tobytes()
    rng = np.random.default_rng(6)
    reused = wvc.Decoder(threads=2)
    accepted = rejected = 0
    for payload in _mutations(payload_of(blob), rng, 120):
        damaged = resign(blob, payload)
        outcomes = {_outcome(damaged, reused if k % 3 == 2 else None, 1 + k % 2) for k in range(12)}
        assert len(outcomes) == 1, "the same damaged blob decoded to different results"
        (outcome,) = outcomes
        if outcome == "DecoderError":
            rejected += 1
        else:  # accepted only if the damage changed no decoded sample
            assert outcome == reference
            accepted += 1
    assert rejected > 100
    # the reused decoder is still sound after all those failures
    assert reused.decode(blob).tobytes() == reference
