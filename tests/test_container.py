""".wvc model files: round trips, policy, laziness, golden bytes, hostile files."""

import json
import os
import struct
import zlib

import numpy as np
import pytest

import pyweightvc as wvc
from common import DATA
from pyweightvc.container import MAX_HEADER_BYTES, _header_bytes


def tiny_model(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "conv.weight": (rng.standard_normal((16, 8, 3, 3)) * 0.1).astype(np.float32),
        "conv.bias": (rng.standard_normal(16) * 0.01).astype(np.float32),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "fc.weight": (rng.standard_normal((40, 72)) * 0.05).astype(np.float32),
        "fc.bias": np.zeros(40, np.float32),
        "emb.weight": (rng.standard_normal((100, 32)) * 0.05).astype(np.float16),
        "mask": rng.integers(0, 2, (5, 5)).astype(bool),
    }


def write(tmp_path, tensors, name="m.wvc", **kw):
    path = str(tmp_path / name)
    wvc.save_file(tensors, path, **kw)
    return path


def test_round_trip_default_policy(tmp_path):
    t = tiny_model()
    path = write(tmp_path, t, qp=24)
    out = wvc.load_file(path)
    assert list(out) == list(t)  # key order kept
    for k in t:
        assert out[k].shape == t[k].shape and out[k].dtype == t[k].dtype, k
    for exact in ("conv.bias", "bn.num_batches_tracked", "fc.bias", "mask"):
        np.testing.assert_array_equal(out[exact], t[exact])
    # conv kernel: int8 per channel, exact levels
    q, s, z = wvc.quantize(t["conv.weight"], per_channel=True)
    np.testing.assert_array_equal(out["conv.weight"], wvc.dequantize(q, s, z))
    with wvc.safe_open(path) as f:
        assert f.entry("fc.weight")["storage"] == "hevc" and f.entry("fc.weight")["qp"] == 24
        assert f.entry("conv.weight")["storage"] == "int8" and f.entry("conv.weight")["per_channel"]
        assert f.entry("conv.bias")["storage"] == "raw"
        assert f.entry("emb.weight")["storage"] == "hevc"  # 2-D, 3200 >= 1024 elements
        meta = f.metadata()
    assert meta["format"] == "pyweightvc" and meta["x265"].startswith("3.")
    assert json.loads(meta["policy"])["qp"] == 24


def test_small_threshold_and_override_by_kind(tmp_path):
    t = tiny_model()
    # emb.weight has 3200 >= 1024 elements: the default sends it through HEVC
    path = write(tmp_path, t, policy=wvc.Policy(min_elements=4000))
    with wvc.safe_open(path) as f:
        assert f.entry("emb.weight")["storage"] == "raw"
        assert f.entry("fc.weight")["storage"] == "raw"
    path = write(tmp_path, t, policy=wvc.Policy(24, overrides={"kind:conv": {"storage": "hevc", "qp": 20}}))
    with wvc.safe_open(path) as f:
        e = f.entry("conv.weight")
        assert e["storage"] == "hevc" and e["qp"] == 20


def test_policy_overrides_hit_the_right_tensors(tmp_path):
    t = tiny_model()
    policy = wvc.Policy(
        24,
        overrides={
            "*.weight": {"qp": 30},
            "re:^emb\\.": {"lossless": True},
            "fc.*": {"qp": 18, "per_channel": True},
            "conv.bias": {"storage": "int8"},
        },
    )
    path = write(tmp_path, t, policy=policy)
    with wvc.safe_open(path) as f:
        assert f.entry("fc.weight")["qp"] == 18 and f.entry("fc.weight")["per_channel"] is True
        assert f.entry("emb.weight")["lossless"] is True and f.entry("emb.weight")["qp"] is None
        assert f.entry("conv.weight")["storage"] == "hevc" and f.entry("conv.weight")["qp"] == 30
        assert f.entry("conv.bias")["storage"] == "int8"
        assert f.entry("bn.num_batches_tracked")["storage"] == "raw"
        np.testing.assert_array_equal(f.get_int8("emb.weight").levels, wvc.quantize(t["emb.weight"], per_channel=True)[0])


def test_policy_errors():
    with pytest.raises(ValueError, match="unknown setting.*qpp.*allowed: storage, qp"):
        wvc.Policy(overrides={"fc.*": {"qpp": 3}})
    with pytest.raises(ValueError, match="unknown kind 'dense'"):
        wvc.Policy(overrides={"kind:dense": {"qp": 3}})
    with pytest.raises(ValueError, match="qp must be an integer in 0..51"):
        wvc.Policy(overrides={"fc.*": {"qp": 99}})
    with pytest.raises(ValueError, match="bad regular expression"):
        wvc.Policy(overrides={"re:(": {"qp": 3}})
    with pytest.raises(ValueError, match="can only be stored raw"):
        wvc.Policy(overrides={"bn.*": {"qp": 3}}).plan("bn.num_batches_tracked", "int64", ())
    assert wvc.Policy(overrides={"nothing.*": {"qp": 3}}).unmatched(["fc.weight"]) == ["nothing.*"]


def test_same_input_same_bytes(tmp_path):
    t = tiny_model()
    a = open(write(tmp_path, t, name="a.wvc"), "rb").read()
    b = open(write(tmp_path, dict(t), name="b.wvc"), "rb").read()
    assert a == b


# the committed files and how they were written: the conv kernel's coder is "zlib"
# (raw scales) in the first, "zlib-params" in the second (a step floor that every
# channel takes, so its scales are equal and deflate well), "rans-params" in the
# last; the version-1 files have no header checksum, the version-2 ones have it in
# bytes 4..8
GOLDEN_MODELS = {
    "tiny_model_v1": {"qp": 24},
    "tiny_model_v1_zlib_params": {"policy": wvc.Policy(24, overrides={"kind:conv": {"min_step": 0.003}})},
    "tiny_model_v2": {"qp": 24},
    # the matrices as exact levels at 20 dB: the rans coder is smaller than deflate on all three
    "tiny_model_v2_rans": {"policy": wvc.Policy(overrides={"*.weight": {"storage": "int8", "target_snr_db": 20}})},
}
GOLDEN_CODERS = {"tiny_model_v1_zlib_params": "zlib-params", "tiny_model_v2_rans": "rans-params"}


def split(data: bytes) -> tuple[int, dict, bytes]:
    """A .wvc file's header length, parsed header and data section."""
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8 : 8 + n]), data[8 + n :]


def header_crc_ok(data: bytes) -> bool:
    """Whether a version-2 header's first field is the CRC-32 of the header bytes after it."""
    (n,) = struct.unpack("<Q", data[:8])
    lead = b'{"__metadata__":{"header_crc32":"'
    head = data[8 : 8 + n]
    return head.startswith(lead) and head[len(lead) : len(lead) + 8] == b"%08x" % zlib.crc32(head[len(lead) + 9 :])


@pytest.mark.parametrize("stem", GOLDEN_MODELS)
def test_golden_bytes(stem):
    """The committed files of a fixed tiny model keep loading to the committed values
    (test_golden_bytes_reproduced checks that today's writer makes the same bytes)."""
    path = DATA / f"{stem}.wvc"
    expected = json.loads((DATA / f"{stem}.json").read_text())
    out = wvc.load_file(str(path))
    assert list(out) == expected["keys"]
    ref = np.load(DATA / f"{stem}.expected.npz")
    for k in out:
        np.testing.assert_array_equal(out[k], ref[k])
    with wvc.safe_open(str(path)) as f:
        assert f.entry("conv.weight")["coder"] == GOLDEN_CODERS.get(stem, "zlib")
        assert f.metadata()["format_version"] == stem[len("tiny_model_v")]
    assert header_crc_ok(path.read_bytes()) == stem.startswith("tiny_model_v2")


@pytest.mark.parametrize("stem", GOLDEN_MODELS)
def test_golden_bytes_reproduced(tmp_path, stem):
    expected = json.loads((DATA / f"{stem}.json").read_text())
    path = write(tmp_path, tiny_model(), **GOLDEN_MODELS[stem])
    written = open(path, "rb").read()
    n, header, data = split(written)
    assert header_crc_ok(written)
    # same tensors, settings and data bytes as the committed file (the metadata
    # names the library versions, which may differ between machines)
    _, committed_header, committed_data = split((DATA / f"{stem}.wvc").read_bytes())
    meta = header.pop("__metadata__")
    committed_meta = committed_header.pop("__metadata__")
    meta.pop("header_crc32"), committed_meta.pop("header_crc32", None)
    assert header == committed_header
    assert data == committed_data
    assert expected["keys"] == list(header)
    assert meta["format_version"] == "2"
    if stem.startswith("tiny_model_v2") and committed_meta == meta:  # same library versions: the same bytes
        assert written == (DATA / f"{stem}.wvc").read_bytes()


def test_default_keeps_matrices_as_levels_at_the_default_snr(tmp_path):
    """Policy() without a QP or target: each matrix as exact levels of the coarsest
    step reaching DEFAULT_SNR_DB (recorded in its entry), conv kernels as 8-bit
    levels, vectors raw; no HEVC."""
    t = tiny_model()
    path = write(tmp_path, t)
    with wvc.safe_open(path) as f:
        fc = f.entry("fc.weight")
        assert fc["storage"] == "int8" and fc["target_snr_db"] == wvc.DEFAULT_SNR_DB and fc["min_step"] > 0
        assert f.entry("conv.weight")["storage"] == "int8" and "target_snr_db" not in f.entry("conv.weight")
        back = f.get_tensor("fc.weight")
    snr = 10 * np.log10((t["fc.weight"].astype(np.float64) ** 2).sum() / ((t["fc.weight"] - back).astype(np.float64) ** 2).sum())
    assert wvc.DEFAULT_SNR_DB <= snr < wvc.DEFAULT_SNR_DB + 0.3  # the coarsest step that reaches it
    assert wvc.Policy().plan("fc.weight", "float32", (40, 72)).describe() == f"int8 snr>={wvc.DEFAULT_SNR_DB:g}dB"


def test_policy_rules_around_the_data_free_default():
    shape = (40, 72)
    plan = wvc.Policy(preset="slow").plan("fc.weight", "float32", shape)
    assert (plan.storage, plan.target_snr_db, plan.preset) == ("int8", wvc.DEFAULT_SNR_DB, "slow")
    # an override that asks for HEVC gets it, with the policy's preset, at DEFAULT_QP when the policy has no QP
    hevc = wvc.Policy(preset="slow", overrides={"fc.*": {"qp": 30}}).plan("fc.weight", "float32", shape)
    assert (hevc.storage, hevc.qp, hevc.preset) == ("hevc", 30, "slow")
    turned = wvc.Policy(overrides={"fc.*": {"rotate": "auto"}}).plan("fc.weight", "float32", shape)
    assert (turned.storage, turned.qp, turned.rotate) == ("hevc", wvc.DEFAULT_QP, "auto")
    # rotation is a step of the HEVC path: asking for it without a QP asks for that path
    assert wvc.Policy(rotate=True).qp == wvc.DEFAULT_QP and wvc.Policy(rotate=True).plan("fc.weight", "float32", shape).rotate is True
    # the QP searches get an HEVC base from the default, and any other policy as it is
    assert wvc.Policy().searchable().plan("fc.weight", "float32", shape).qp == wvc.DEFAULT_QP
    explicit = wvc.Policy(30)
    assert explicit.searchable() is explicit
    assert wvc.Policy(target_snr_db=30).plan("fc.weight", "float32", shape).storage == "hevc"
    # what a file records rebuilds the same policy
    again = wvc.Policy(**json.loads(wvc.Policy().to_json()))
    assert again.plan("fc.weight", "float32", shape) == wvc.Policy().plan("fc.weight", "float32", shape)


def test_lazy_reads_decode_only_what_is_asked(tmp_path, monkeypatch):
    path = write(tmp_path, tiny_model(), qp=24)
    calls = []
    original = wvc.Decoder.decode
    monkeypatch.setattr(wvc.Decoder, "decode", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    with wvc.safe_open(path) as f:
        assert set(f.keys()) == set(tiny_model())
        assert calls == [] and f.decoded_count == 0
        f.get_tensor("fc.bias")
        assert calls == [] and f.decoded_count == 1
        f.get_tensor("fc.weight")
        assert len(calls) == 1 and f.decoded_count == 2
        qt = f.get_int8("fc.weight")
        assert qt.levels.shape == (40, 72) and qt.levels.dtype == np.int8
        with pytest.raises(ValueError, match="stored raw"):
            f.get_int8("fc.bias")
        with pytest.raises(KeyError, match="no tensor named 'nope'"):
            f.get_tensor("nope")


def test_tied_tensors_stored_once(tmp_path):
    w = (np.random.default_rng(1).standard_normal((64, 64)) * 0.1).astype(np.float32)
    path = write(tmp_path, {"embed.weight": w, "lm_head.weight": w, "other": w.copy()}, qp=24)
    with wvc.safe_open(path) as f:
        assert f._header["lm_head.weight"] == {"dtype": "float32", "shape": [64, 64], "storage": "alias", "alias_of": "embed.weight"}
        assert f._header["other"]["storage"] == "hevc"
    out = wvc.load_file(path)
    assert out["embed.weight"] is out["lm_head.weight"]


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.wvc"
    path.write_bytes(b"previous good file")
    bad = tiny_model()
    bad["fc.weight"] = bad["fc.weight"].copy()
    bad["fc.weight"][3, 3] = np.nan
    with pytest.raises(ValueError, match="tensor 'fc.weight'.*finite"):
        wvc.save_file(bad, str(path))
    assert path.read_bytes() == b"previous good file"
    assert os.listdir(tmp_path) == ["m.wvc"]  # no temporary file left behind
    import pyweightvc.container as c

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(c.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        wvc.save_file(tiny_model(), str(path))
    assert path.read_bytes() == b"previous good file"
    assert os.listdir(tmp_path) == ["m.wvc"]


def test_written_file_respects_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = write(tmp_path, {"a": np.zeros(3, np.float32)})
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644


# ---------------------------------------------------------------------------
# hostile and broken files


def craft(tmp_path, header: dict, data: bytes = b"", meta=None, version="2") -> str:
    """A .wvc file as a faulty or hostile writer makes it: checksums consistent."""
    meta = meta if meta is not None else {"format": "pyweightvc", "format_version": version}
    if version == "1":
        blob = json.dumps({"__metadata__": meta, **header}).encode()
    else:
        blob = _header_bytes({"__metadata__": meta, **header})
    path = tmp_path / "crafted.wvc"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return str(path)


def raw_entry(offsets, shape=(2,), dtype="float32", data=b"\0" * 8):
    return {"dtype": dtype, "shape": list(shape), "storage": "raw", "data_offsets": list(offsets), "crc32": zlib.crc32(data)}


@pytest.mark.parametrize(
    "header,data,message",
    [
        ({"a": raw_entry([0, 8])}, b"\0" * 4, r"tensor 'a': data_offsets \[0, 8\] outside the 4-byte data section"),
        ({"a": raw_entry([0, 8]), "b": raw_entry([4, 12])}, b"\0" * 12, "tensor 'b': data 4..12 overlaps tensor 'a'"),
        ({"a": raw_entry([0, 8], shape=(3,))}, b"\0" * 8, "tensor 'a': 8 data bytes for 3 elements of float32"),
        ({"a": {**raw_entry([0, 8]), "crc32": 1}}, b"\0" * 8, "tensor 'a': checksum mismatch"),
        ({"a": raw_entry([0, 8], dtype="complex64")}, b"\0" * 8, "tensor 'a': unknown dtype 'complex64'"),
        ({"a": raw_entry([0, 8], shape=(-2,))}, b"\0" * 8, r"tensor 'a': bad shape \[-2\]"),
        ({"a": {**raw_entry([0, 8]), "storage": "magic"}}, b"\0" * 8, "tensor 'a': unknown storage 'magic'"),
        (
            {"a": {"dtype": "float32", "shape": [2], "storage": "alias", "alias_of": "zz"}},
            b"",
            "tensor 'a': alias_of 'zz' does not name a stored tensor",
        ),
        ({"a": "nope"}, b"", "tensor 'a': entry is not a JSON object"),
    ],
)
def test_hostile_headers(tmp_path, header, data, message):
    path = craft(tmp_path, header, data)
    with pytest.raises(wvc.ContainerError, match=message):
        with wvc.safe_open(path) as f:
            for k in f.keys():
                f.get_tensor(k)


def test_hevc_entry_shape_must_match_blob(tmp_path):
    blob = wvc.encode(np.ones((4, 4), np.float32))
    entry = {"dtype": "float32", "shape": [2, 8], "storage": "hevc", "bits": 8, "data_offsets": [0, len(blob)], "crc32": zlib.crc32(blob)}
    path = craft(tmp_path, {"w": entry}, blob)
    with wvc.safe_open(path) as f, pytest.raises(wvc.ContainerError, match=r"blob holds float32 \[4, 4\]"):
        f.get_tensor("w")


BOMB = zlib.compress(b"\x01" * 10_000_000)  # a small stream that inflates to 10 MB


@pytest.mark.parametrize(
    "coder, data, message",
    [
        ("zlib", struct.pack("<f", 1.0) + BOMB, "levels holds 101 or more bytes, 100 expected"),
        ("zlib-params", zlib.compress(struct.pack("<f", 1.0)) + BOMB, "levels holds 101 or more bytes, 100 expected"),
        ("zlib-params", BOMB + zlib.compress(bytes(100)), "quantisation parameters holds 5 or more bytes, 4 expected"),
        ("zlib-params", zlib.compress(struct.pack("<f", 1.0)) + zlib.compress(bytes(100)) + b"x", "1 bytes after the levels"),
        ("zlib-params", zlib.compress(struct.pack("<f", 1.0)) + b"not zlib", "levels does not decode"),
    ],
)
def test_int8_entry_cannot_inflate_past_its_shape(tmp_path, coder, data, message):
    entry = {
        "dtype": "float32",
        "shape": [10, 10],
        "storage": "int8",
        "bits": 8,
        "symmetric": True,
        "per_channel": False,
        "coder": coder,
        "params": 1,
        "data_offsets": [0, len(data)],
        "crc32": zlib.crc32(data),
    }
    path = craft(tmp_path, {"w": entry}, data)
    with wvc.safe_open(path) as f, pytest.raises(wvc.ContainerError, match=message):
        f.get_tensor("w")


def test_header_limits(tmp_path):
    p = tmp_path / "huge.wvc"
    p.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}")
    with pytest.raises(wvc.ContainerError, match="exceeds"):
        wvc.safe_open(str(p))
    p.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(wvc.ContainerError, match="truncated file"):
        wvc.safe_open(str(p))
    p.write_bytes(b"\x01")
    with pytest.raises(wvc.ContainerError, match="too short"):
        wvc.safe_open(str(p))
    p.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{}")
    with pytest.raises(wvc.ContainerError, match="not JSON"):
        wvc.safe_open(str(p))
    with pytest.raises(wvc.ContainerError, match="lacks format=pyweightvc"):
        wvc.safe_open(craft(tmp_path, {}, meta={}))
    with pytest.raises(wvc.ContainerError, match="unsupported .wvc format version '9'"):
        wvc.safe_open(craft(tmp_path, {}, meta={"format": "pyweightvc", "format_version": "9"}))


def test_every_truncation_and_corruption_of_a_real_file_raises(tmp_path):
    path = write(tmp_path, tiny_model())
    good = open(path, "rb").read()
    target = tmp_path / "bad.wvc"
    rng = np.random.default_rng(0)
    positions = list(range(0, len(good), max(1, len(good) // 150))) + list(rng.integers(0, len(good), 50))
    for n in positions:
        target.write_bytes(good[:n])
        with pytest.raises(wvc.ContainerError):
            wvc.load_file(str(target))
    (n,) = struct.unpack("<Q", good[:8])
    for i in positions:
        if i < 8 + n:
            continue  # header bytes: may still parse (e.g. a digit of a shape); checked below
        bad = bytearray(good)
        bad[i] ^= 0x41
        target.write_bytes(bytes(bad))
        with pytest.raises(wvc.ContainerError, match="checksum mismatch"):
            wvc.load_file(str(target))


def test_header_corruption_is_refused_or_harmless(tmp_path):
    """Every byte of the JSON header changed in turn: the file is refused with a
    ContainerError, or it loads to exactly the original values (the change hit
    metadata or padding). Nothing else escapes."""
    path = write(tmp_path, tiny_model())
    good = open(path, "rb").read()
    reference = wvc.load_file(path)
    (n,) = struct.unpack("<Q", good[:8])
    target = tmp_path / "bad.wvc"
    refused = 0
    for i in range(8, 8 + n):
        bad = bytearray(good)
        bad[i] = ord("9") if bad[i] != ord("9") else ord("1")
        target.write_bytes(bytes(bad))
        try:
            out = wvc.load_file(str(target))
        except wvc.ContainerError:
            refused += 1
            continue
        assert list(out) == list(reference), i
        for k in out:
            assert out[k].dtype == reference[k].dtype and np.array_equal(out[k], reference[k]), (i, k)
    assert refused > n // 2


def _int8_entry(data: bytes, shape=(10, 10), **fields) -> dict:
    return {
        "dtype": "float32",
        "shape": list(shape),
        "storage": "int8",
        "bits": 8,
        "symmetric": True,
        "per_channel": False,
        "coder": "zlib",
        "params": 1,
        "data_offsets": [0, len(data)],
        "crc32": zlib.crc32(data),
        **fields,
    }


@pytest.mark.parametrize(
    "header, message",
    [
        ({"a": {"dtype": "float32", "shape": [2], "storage": "alias", "alias_of": ["b"]}}, r"alias_of \['b'\]"),
        ({"a": _int8_entry(b"\0" * 8, params=1.0)}, "bad quantisation parameter count 1.0"),
        ({"a": _int8_entry(b"\0" * 8, params=True)}, "bad quantisation parameter count True"),
        ({"a": _int8_entry(b"\0" * 8, per_channel=True)}, "bad quantisation parameter count 1"),
        ({"a": raw_entry([0, 8], shape=(2**47, 2**47, 2**0))}, "has more than 281474976710656 elements"),
        ({"a": raw_entry([0, 8], shape=(2**31, 2**31, 2**32))}, "has more than"),
        ({"a": {**raw_entry([0, 8]), "crc32": [1]}}, r"bad crc32 \[1\]"),
        ({"a": {**raw_entry([0, 8]), "crc32": 2**32}}, "bad crc32"),
        ({"a": {**raw_entry([0, 8]), "dtype": ["float32"]}}, "unknown dtype"),
        ({"a": {**raw_entry([0, 8]), "storage": {"x": 1}}}, "unknown storage"),
        ({"a": {**raw_entry([0, 8]), "data_offsets": [0.0, 8]}}, "data_offsets"),
        ({"a": _int8_entry(b"\0" * 8, qp="24")}, "bad qp '24'"),
        ({"a": _int8_entry(b"\0" * 8, symmetric=1)}, "bad symmetric 1"),
        ({"a": _int8_entry(b"\0" * 8, preset="turbo")}, "bad preset 'turbo'"),
    ],
)
def test_entry_fields_type_checked(tmp_path, header, message):
    """Issue 17: these escaped as TypeError / OverflowError from a consistent header."""
    with pytest.raises(wvc.ContainerError, match=message):
        wvc.load_file(craft(tmp_path, header, b"\0" * 8))


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"__metadata__":{"format":"pyweightvc","format_version":"2"},"a":' + "[" * 5000 + "]" * 5000 + "}", "nests 5001 deep"),
        ('{"__metadata__":{"format":"pyweightvc","format_version":"2"},"a":{"shape":[' + "9" * 5000 + "]}}", "an integer of 5000 digits"),
        ('{"__metadata__":{"format":"pyweightvc","format_version":"2"},"a":{"min_step":NaN}}', "holds NaN"),
        ('{"__metadata__":{"format":"pyweightvc","format_version":"2"},"a":{"min_step":1e999}}', "'1e999'"),
        ('{"__metadata__":{"format":"pyweightvc","format_version":"2"},"a":{},"a":{}}', "the key 'a' twice"),
    ],
)
def test_header_json_limits(tmp_path, text, message):
    path = tmp_path / "j.wvc"
    head = text.encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head)
    with pytest.raises(wvc.ContainerError, match=message):
        wvc.load_file(str(path))


def test_int8_levels_beyond_deflate_ratio_refused_before_inflating(tmp_path, monkeypatch):
    """Issue 17: a 1 MB file whose int8 entry claims 2^30 levels took 5 GB before it
    was refused; now its shape is refused against its size, nothing inflated."""
    data = struct.pack("<f", 1.0) + zlib.compress(bytes(10**6), 9)  # ~1 KB of deflate
    import pyweightvc.container as c

    def no_inflate(*a, **k):
        raise AssertionError("inflated")

    monkeypatch.setattr(c, "_inflate", no_inflate)
    path = craft(tmp_path, {"w": _int8_entry(data, shape=(2**15, 2**15))}, data)
    with pytest.raises(wvc.ContainerError, match="cannot come out of"):
        wvc.load_file(path)


def test_int8_parameters_and_levels_checked(tmp_path):
    levels = zlib.compress(bytes(100), 9)
    for scale, message in ((float("nan"), "scale nan"), (0.0, "scale 0.0"), (1e-40, "finite inverse")):
        data = struct.pack("<f", scale) + levels
        with pytest.raises(wvc.ContainerError, match=message):
            wvc.load_file(craft(tmp_path, {"w": _int8_entry(data)}, data))
    data = struct.pack("<fi", 1.0, 8) + zlib.compress(bytes(100), 9)  # bits 4, zero point 8
    with pytest.raises(wvc.ContainerError, match="a zero point is outside -8..7 for 4 bits"):
        wvc.load_file(craft(tmp_path, {"w": _int8_entry(data, bits=4, symmetric=False)}, data))
    data = struct.pack("<f", 1.0) + zlib.compress(b"\x09" * 100, 9)
    with pytest.raises(wvc.ContainerError, match="levels outside -7..7 for 4 bits"):
        wvc.load_file(craft(tmp_path, {"w": _int8_entry(data, bits=4)}, data))
    data = struct.pack("<f", 1.0) + zlib.compress(b"\x81" * 100, 9)  # -127 fits 8-bit symmetric
    assert wvc.load_file(craft(tmp_path, {"w": _int8_entry(data)}, data))["w"].min() == -127


def test_header_checksum_and_versions(tmp_path):
    path = write(tmp_path, tiny_model())
    good = open(path, "rb").read()
    text = good[8:].split(b'"format_version":"2"', 1)
    # a version-2 header whose checksum field is gone, or moved: refused
    header = json.loads(good[8 : 8 + struct.unpack("<Q", good[:8])[0]])
    header["__metadata__"].pop("header_crc32")
    with pytest.raises(wvc.ContainerError, match="version-2 header starts with its header_crc32"):
        wvc.safe_open(craft(tmp_path, {k: v for k, v in header.items() if k != "__metadata__"}, meta=header["__metadata__"], version="1"))
    # downgraded to version 1 with the field kept: refused
    bad = text[0] + b'"format_version":"1"' + text[1]
    (tmp_path / "down.wvc").write_bytes(good[:8] + bad)
    with pytest.raises(wvc.ContainerError, match="checksum mismatch|has no header_crc32"):
        wvc.safe_open(str(tmp_path / "down.wvc"))
    # a version-1 header (no checksum) still reads; with the field it is refused
    meta = {"format": "pyweightvc", "format_version": "1"}
    assert wvc.load_file(craft(tmp_path, {"a": raw_entry([0, 8])}, b"\0" * 8, meta=meta, version="1"))["a"].shape == (2,)
    with pytest.raises(wvc.ContainerError, match="version-1 header has no header_crc32"):
        wvc.safe_open(craft(tmp_path, {"a": raw_entry([0, 8])}, b"\0" * 8, meta={**meta, "header_crc32": "0"}, version="1"))
    with pytest.raises(ValueError, match="reserved"):
        wvc.save_file({"a": np.zeros(2, np.float32)}, str(tmp_path / "x.wvc"), metadata={"header_crc32": "x"})


def test_bool_bytes_must_be_0_or_1(tmp_path):
    entry = {**raw_entry([0, 2], shape=(2,), dtype="bool", data=b"\x01\x02")}
    with pytest.raises(wvc.ContainerError, match="a bool byte other than 0 or 1"):
        wvc.load_file(craft(tmp_path, {"m": entry}, b"\x01\x02"))


def test_hevc_entry_settings_must_be_its_blobs(tmp_path):
    blob = wvc.encode(np.ones((4, 4), np.float32), qp=24)
    entry = {
        "dtype": "float32",
        "shape": [4, 4],
        "storage": "hevc",
        "bits": 8,
        "symmetric": True,
        "per_channel": False,
        "qp": 24,
        "lossless": False,
        "preset": "fast",
        "data_offsets": [0, len(blob)],
        "crc32": zlib.crc32(blob),
    }
    assert wvc.load_file(craft(tmp_path, {"w": entry}, blob))["w"].shape == (4, 4)
    for key, value in (("bits", 6), ("qp", 30), ("lossless", True), ("per_channel", True), ("rotate", True)):
        with pytest.raises(wvc.ContainerError, match=f"the entry says {key}="):
            wvc.load_file(craft(tmp_path, {"w": {**entry, key: value}}, blob))


def test_save_file_errors(tmp_path):
    with pytest.raises(TypeError, match="mapping"):
        wvc.save_file([np.zeros(3)], str(tmp_path / "x.wvc"))
    with pytest.raises(TypeError, match="tensor 'a': expected a numpy array"):
        wvc.save_file({"a": [1, 2]}, str(tmp_path / "x.wvc"))
    with pytest.raises(TypeError, match="unsupported tensor dtype complex64"):
        wvc.save_file({"a": np.zeros(3, np.complex64)}, str(tmp_path / "x.wvc"))
    with pytest.raises(TypeError, match="metadata must map str to str"):
        wvc.save_file({"a": np.zeros(3, np.float32)}, str(tmp_path / "x.wvc"), metadata={"k": 1})
    with pytest.raises(ValueError, match="reserved"):
        wvc.save_file({"a": np.zeros(3, np.float32)}, str(tmp_path / "x.wvc"), metadata={"x265": "x"})
    assert not os.listdir(tmp_path)


def test_empty_and_odd_tensors(tmp_path):
    t = {
        "empty": np.zeros((0, 3), np.float32),
        "scalar": np.float32(3.5),
        "f64": np.arange(5.0),
        "u8": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "i16": np.arange(-3, 3, dtype=np.int16),
    }
    out = wvc.load_file(write(tmp_path, t))
    for k, v in t.items():
        np.testing.assert_array_equal(out[k], np.asarray(v))
        assert out[k].dtype == np.asarray(v).dtype


def test_min_step_for_conv_kernels(tmp_path):
    t = tiny_model()
    t["conv.weight"][:8] *= 1e-3  # narrow output channels: their max-abs steps fall below the floor
    policy = wvc.Policy(24, overrides={"kind:conv": {"min_step": 1e-3}})
    assert policy.plan("conv.weight", "float32", (16, 8, 3, 3)).describe() == "int8 min_step 0.001"
    assert policy.plan("fc.weight", "float32", (40, 72)).quant_options() == {
        "bits": 8,
        "symmetric": True,
        "per_channel": True,
    }  # no min_step key: entries read as before
    path = write(tmp_path, t, policy=policy)
    plain = write(tmp_path, t, name="plain.wvc", qp=24)
    with wvc.safe_open(path) as f, wvc.safe_open(plain) as g:
        assert f.entry("conv.weight")["min_step"] == 1e-3 and "min_step" not in f.entry("fc.weight")
        qt = f.get_int8("conv.weight")
        levels, scale, _ = wvc.quantize(t["conv.weight"], per_channel=True, min_step=1e-3)
        np.testing.assert_array_equal(qt.scale, scale)
        np.testing.assert_array_equal(qt.levels, levels)
        assert scale[:8].tolist() == [np.float32(1e-3)] * 8 and np.all(scale[8:] > 1e-3)
        err = np.abs(f.get_tensor("conv.weight") - t["conv.weight"]).reshape(16, -1).max(axis=1)
        assert np.all(err <= scale * 0.5001)
        np.testing.assert_array_equal(f.get_tensor("fc.weight"), g.get_tensor("fc.weight"))
    assert os.path.getsize(path) < os.path.getsize(plain)  # 8 channels of 72 weights in a few levels


def test_min_step_policy_errors():
    with pytest.raises(ValueError, match="min_step applies to quantised storage"):
        wvc.Policy(overrides={"fc.*": {"storage": "raw", "min_step": 0.1}})
    with pytest.raises(ValueError, match="'fc.bias'.*min_step applies to quantised storage.*kind:conv"):
        wvc.Policy(overrides={"fc.*": {"min_step": 0.1}}).plan("fc.bias", "float32", (40,))


def test_min_step_from_the_command_line(tmp_path, capsys):
    from safetensors.numpy import save_file

    from pyweightvc import cli

    src, out = tmp_path / "m.safetensors", tmp_path / "m.wvc"
    save_file({k: v for k, v in tiny_model().items() if k.startswith(("conv", "fc"))}, str(src))
    assert cli.main(["compress", str(src), "-o", str(out), "--qp", "24", "--override", "kind:conv=min_step:0.002"]) == 0
    with wvc.safe_open(str(out)) as f:
        assert f.entry("conv.weight")["min_step"] == 0.002 and "min_step" not in f.entry("fc.weight")
    capsys.readouterr()
    assert cli.main(["compress", str(src), "-o", str(out), "--override", "kind:conv=min_step:-1"]) == 2
    assert "min_step must be a finite number >= 0" in capsys.readouterr().err


def test_non_finite_values_in_raw_tensors_are_kept_and_reported(tmp_path):
    """A large tensor with NaN is refused (it cannot be quantised); a small one stored
    raw keeps it bit for bit, with a warning naming the tensor and the element."""
    small = np.array([0.5, -np.inf, np.nan, 1.0], np.float32)
    path = str(tmp_path / "m.wvc")
    with pytest.warns(UserWarning, match=r"tensor 'mask': 2 non-finite value\(s\), the first -inf at flat index 1"):
        wvc.save_file({"mask": small, "ids": np.arange(4)}, path)
    back = wvc.load_file(path)["mask"]
    assert np.array_equal(back, small, equal_nan=True)
    big = np.ones((64, 64), np.float32)
    big[3, 5] = np.nan
    with pytest.raises(ValueError, match="tensor 'w': weights must be finite, found NaN at row 3, column 5"):
        wvc.save_file({"w": big}, path)


def test_checksums_ok_reads_every_stored_tensor(tmp_path):
    path = tmp_path / "m.wvc"
    w = np.random.default_rng(0).standard_normal((64, 96)).astype(np.float32)
    wvc.save_file({"a": w, "tied": w, "b": np.arange(8, dtype=np.float32)}, str(path))
    with wvc.safe_open(str(path)) as f:
        assert f.written_entry("tied")["storage"] == "alias" and f.checksums_ok()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # the last stored tensor's data
    path.write_bytes(bytes(data))
    with wvc.safe_open(str(path)) as f:
        assert not f.checksums_ok()
    with pytest.raises(ValueError, match="closed"):
        f.checksums_ok()
