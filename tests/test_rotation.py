"""The seeded Hadamard rotation: the transform itself, rotated blobs (format
version 2), the "auto" decision, and the policy setting."""

import json

import numpy as np
import pytest

import pyweightvc as wvc
from common import DATA, check_backwards_compatibility, snr_db
from pyweightvc import _core, codec, rate
from pyweightvc.errors import FormatError

try:
    import torch
except ImportError:  # torch is optional; its tests say so when it is missing
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def outlier_matrix(rows=256, cols=384, seed=0):
    """Gaussian weights with two columns 25x larger: the case rotation is for."""
    w = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32) * 0.02
    w[:, [7, cols // 2 + 3]] *= 25
    return w


def smooth_matrix(rows=256, cols=384):
    """A smooth picture: neighbouring samples alike, which intra prediction exploits
    and a rotation would scramble."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    return (np.sin(x / 40) * np.cos(y / 30)).astype(np.float32)


def test_rotation_is_orthogonal_and_undone():
    x = np.random.default_rng(1).standard_normal((33, 96)).astype(np.float32)
    block = _core.rotation_block(96)
    assert block == 32
    y = _core.rotate_forward(x, 1, block, 99)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-5)
    assert not np.allclose(y, x)
    _core.rotate_inverse(y, block, 99)
    np.testing.assert_allclose(y, x, atol=2e-6)


def test_rotation_is_the_documented_matrix():
    """y = x . D . H with D the signs from splitmix64 (top bit) and H the normalised
    Sylvester-Hadamard blocks (docs/format.md): rebuilt here from the definition."""
    cols, block, seed = 24, 8, 2026
    state, mask, signs = seed, (1 << 64) - 1, []
    for _ in range(cols):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        signs.append(-1.0 if z >> 63 else 1.0)
    h = np.array([[1.0]])
    while h.shape[0] < block:
        h = np.block([[h, h], [h, -h]])
    full = np.kron(np.eye(cols // block), h / np.sqrt(block))
    x = np.random.default_rng(2).standard_normal((5, cols)).astype(np.float32)
    expected = (x.astype(np.float64) * np.array(signs)) @ full
    np.testing.assert_allclose(_core.rotate_forward(x, 1, block, seed), expected, atol=1e-5)


def test_rotation_block_is_the_largest_power_of_two_dividing():
    assert [_core.rotation_block(c) for c in (1, 2, 7, 384, 784, 1280, 3136, 1024)] == [1, 2, 1, 128, 16, 256, 64, 1024]


def test_rotated_blob_is_version_2_and_decodes_back():
    w = outlier_matrix()
    plain = wvc.encode(w, qp=24, per_channel=True)
    rotated = wvc.encode(w, qp=24, per_channel=True, rotate=True, rotation_seed=5)
    assert plain[4:6] == b"\x01\x00" and rotated[4:6] == b"\x02\x00"
    header = wvc.read_header(rotated)
    assert header.rotation == codec.Rotation(128, 5)
    assert wvc.read_header(plain).rotation is None
    # the outlier columns no longer set every row's scale: far closer at the same QP
    assert snr_db(w, wvc.decode(rotated)) > snr_db(w, wvc.decode(plain)) + 10


def test_rotated_levels_come_with_their_rotation():
    w = outlier_matrix(64, 128)
    blob = wvc.encode(w, qp=20, per_channel=True, rotate=True)
    q = wvc.decode_int8(blob)
    assert q.rotation == wvc.read_header(blob).rotation
    values = wvc.dequantize(q.levels, q.scale, q.zero_point)
    np.testing.assert_allclose(q.rotation.undo(values), wvc.decode(blob), atol=1e-6)
    # integer inference: rotated weights apply to rotated inputs, W x = (W D H)(x D H)
    x = np.random.default_rng(3).standard_normal((4, 128)).astype(np.float32)
    np.testing.assert_allclose(q.rotation.apply(x) @ wvc.dequantize(q.levels, q.scale).T, x @ wvc.decode(blob).T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_rotated_half_precision_and_conv_shapes(dtype):
    w = outlier_matrix(32, 64).reshape(32, 4, 4, 4).astype(dtype)
    out = wvc.decode(wvc.encode(w, qp=16, per_channel=True, rotate=True))
    assert out.dtype == dtype and out.shape == w.shape
    assert snr_db(w.astype(np.float32), out.astype(np.float32)) > 25


@needs_torch
def test_rotated_bfloat16_through_torch():
    t = torch.from_numpy(outlier_matrix(32, 64)).to(torch.bfloat16)
    out = wvc.decode(wvc.encode(t, qp=16, rotate=True, per_channel=True), like="torch")
    assert out.dtype == torch.bfloat16 and out.shape == t.shape
    assert snr_db(t.float().numpy(), out.float().numpy()) > 25


def test_rotation_arguments_are_checked():
    with pytest.raises(ValueError, match="even number of columns"):
        wvc.encode(np.ones((4, 7), np.float32), rotate=True)
    with pytest.raises(ValueError, match="int8 input"):
        wvc.encode(np.ones((4, 8), np.int8), rotate=True)
    with pytest.raises(TypeError, match='rotate must be True, False or "auto"'):
        wvc.Encoder(rotate="yes")
    with pytest.raises(TypeError, match='rotate="auto" is a Policy setting'):
        wvc.Encoder(rotate="auto")
    with pytest.raises(ValueError, match="rotation_seed"):
        wvc.Encoder(rotate=True, rotation_seed=-1)
    bad = np.ones((4, 8), np.float32)
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite value at flat index 11"):
        wvc.encode(bad, rotate=True)


def test_bad_rotation_in_a_header_is_a_format_error():
    blob = wvc.encode(outlier_matrix(16, 64), qp=24, rotate=True)
    h = wvc.read_header(blob)
    payload = blob[h.payload_offset :]
    forged = (
        codec._pack_header(
            dtype_code=h.dtype_code,
            shape=h.shape,
            bits=h.bits,
            symmetric=h.symmetric,
            per_channel=h.per_channel,
            lossless=h.lossless,
            dense=False,
            qp=h.qp,
            preset=h.preset,
            geometry=(*h.tile, *h.frame),
            scale=h.scale,
            zero_point=h.zero_point,
            x265_options="",
            rotation=codec.Rotation(48, 0),
            payload=payload,
        )
        + payload
    )
    with pytest.raises(FormatError, match="rotation kind 1 with block 48 for 64 columns"):
        wvc.read_header(forged)
    with pytest.raises(FormatError, match="truncated"):
        wvc.read_header(blob[: h.payload_offset - 20])


def test_version_2_fixture_keeps_decoding():
    check_backwards_compatibility("v2_f32_rotated_pc")
    meta = json.loads((DATA / "v2_f32_rotated_pc.json").read_text())
    assert meta["options"]["rotate"] is True


def test_auto_rotates_where_it_pays_and_not_elsewhere():
    assert rate.rotation_pays(outlier_matrix(), 24, per_channel=True)
    assert not rate.rotation_pays(smooth_matrix(), 24, per_channel=True)
    assert not rate.rotation_pays(np.ones((8, 7), np.float32), 24)  # odd columns: cannot


def test_policy_rotate_auto_in_a_file(tmp_path):
    tensors = {"outliers.weight": outlier_matrix(), "smooth.weight": smooth_matrix()}
    path = str(tmp_path / "m.wvc")
    header = wvc.save_file(tensors, path, policy=wvc.Policy(24, rotate="auto"))
    assert header["outliers.weight"]["rotate"] is True
    assert "rotate" not in header["smooth.weight"]  # not rotated: entry as before
    out = wvc.load_file(path)
    assert snr_db(tensors["outliers.weight"], out["outliers.weight"]) > 20
    # a size target and an SNR target keep the rotation decision
    sized = wvc.rate.save_file_to_size(tensors, path, 40_000, policy=wvc.Policy(rotate="auto"))
    assert sized["outliers.weight"]["rotate"] is True and os_size(path) <= 40_000
    header = wvc.save_file(tensors, path, policy=wvc.Policy(target_snr_db=25, rotate=True))
    assert header["smooth.weight"]["rotate"] is True
    assert snr_db(tensors["smooth.weight"], wvc.load_file(path)["smooth.weight"]) >= 25


def os_size(path):
    import os

    return os.path.getsize(path)


def test_policy_rotate_is_validated():
    with pytest.raises(TypeError, match='rotate must be True, False or "auto"'):
        wvc.Policy(rotate="sometimes")
    with pytest.raises(ValueError, match='rotate applies to storage "hevc" only'):
        wvc.Policy(overrides={"kind:conv": {"storage": "int8", "rotate": True}})
    # rotation is a step of the HEVC path: asking for it on conv kernels (int8 by default) sends them there
    turned = wvc.Policy(overrides={"kind:conv": {"rotate": True}}).plan("c.weight", "float32", (64, 16, 3, 3))
    assert (turned.storage, turned.qp, turned.rotate) == ("hevc", wvc.DEFAULT_QP, True)
    plan = wvc.Policy(overrides={"kind:conv": {"storage": "hevc", "qp": 20, "rotate": True}}).plan("c.weight", "float32", (64, 16, 3, 3))
    assert plan.rotate is True and plan.describe() == "hevc qp 20 rotated"
    assert json.loads(wvc.Policy(rotate="auto").to_json())["rotate"] == "auto"


def test_auto_leaves_lossless_plans_unrotated():
    """Lossless coding has no QP to judge a rotation at: "auto" keeps such plans
    as they are (rotate=True asks for it)."""
    plan = wvc.Policy(lossless=True, rotate="auto", overrides={"kind:linear": {"bits": 5}}).plan("w", "float32", (256, 384))
    assert rate.resolve_rotate(outlier_matrix(), plan) is False
    blob = wvc.encode(outlier_matrix(), lossless=True, bits=5, rotate=True)
    assert wvc.read_header(blob).rotation is not None and wvc.read_header(blob).dense


def test_command_rotate_and_overrides(tmp_path, capsys):
    from safetensors.numpy import save_file

    from pyweightvc import cli

    src, out = tmp_path / "m.safetensors", tmp_path / "m.wvc"
    save_file({"outliers.weight": outlier_matrix(), "smooth.weight": smooth_matrix()}, str(src))
    assert cli.main(["compress", str(src), "-o", str(out), "--rotate", "auto"]) == 0
    with wvc.safe_open(str(out)) as f:
        assert f.entry("outliers.weight").get("rotate") is True and "rotate" not in f.entry("smooth.weight")
    capsys.readouterr()
    assert cli.main(["info", str(out)]) == 0
    assert "hevc rotated" in capsys.readouterr().out
    assert cli.main(["compress", str(src), "-o", str(out), "--qp", "24", "--override", "smooth.*=rotate:true,target_snr_db:30.5"]) == 0
    with wvc.safe_open(str(out)) as f:
        assert f.entry("smooth.weight")["rotate"] is True and f.entry("smooth.weight")["target_snr_db"] == 30.5
        assert "rotate" not in f.entry("outliers.weight")  # the policy default: not rotated
    assert cli.main(["compress", str(src), "-o", str(out), "--override", "smooth.*=rotate:maybe"]) == 2
    assert 'rotate must be True, False or "auto"' in capsys.readouterr().err
