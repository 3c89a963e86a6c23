"""Writes the committed fixture blobs (run once per format version; never
regenerate a fixture of a released version: the tests exist to catch changes).

    python tests/data/make_fixtures.py v2    (v1: the version-1 fixtures)
    python tests/data/make_fixtures.py wvc-v2    (the .wvc file of format version 2)
    python tests/data/make_fixtures.py wvc-rans    (a .wvc file whose int8 levels are rans-coded)
"""

import json
from pathlib import Path

import numpy as np
import torch

import pyweightvc as wvc

HERE = Path(__file__).parent


def write(name, tensor, **options):
    blob = wvc.encode(tensor, **options)
    out = wvc.decode(blob)
    (HERE / f"{name}.wvct").write_bytes(blob)
    np.save(HERE / f"{name}.expected.npy", out)
    meta = {
        "options": options,
        "shape": list(out.shape),
        "decoded_dtype": str(out.dtype),
        "lib_info": {k: v for k, v in wvc.lib_info().items() if k != "x265_options"},
    }
    (HERE / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")


def write_container(stem="tiny_model_v1"):
    import hashlib
    import sys

    sys.path.insert(0, str(HERE.parent))
    from test_container import GOLDEN_MODELS, tiny_model

    path = HERE / f"{stem}.wvc"
    tensors = tiny_model()
    wvc.save_file(tensors, str(path), **GOLDEN_MODELS[stem])
    out = wvc.load_file(str(path))
    np.savez(HERE / f"{stem}.expected.npz", **out)
    meta = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "keys": list(out)}
    (HERE / f"{stem}.json").write_text(json.dumps(meta, indent=1) + "\n")


def write_numcodecs_chunk():
    from pyweightvc.numcodecs import PyWeightVC

    codec = PyWeightVC(qp=20, per_channel=True)
    chunk = (np.random.default_rng(7).standard_normal((32, 48)) * 0.1).astype(np.float32)
    blob = codec.encode(chunk)
    (HERE / "numcodecs_chunk_v1.bin").write_bytes(blob)
    np.save(HERE / "numcodecs_chunk_v1.expected.npy", codec.decode(blob))
    (HERE / "numcodecs_chunk_v1.json").write_text(json.dumps(codec.get_config(), indent=1) + "\n")


def main():
    rng = np.random.default_rng(2026)
    w = (rng.standard_normal((48, 80)) * 0.05).astype(np.float32)
    write("v1_f32_qp24", w, qp=24)
    write("v1_f16_lossless_pc", w.reshape(48, 5, 4, 4).astype(np.float16), lossless=True, per_channel=True)
    t = torch.from_numpy(w[:, :33]).to(torch.bfloat16)
    write("v1_bf16_asym_4bit", t, qp=18, bits=4, symmetric=False)
    write_container()
    write_numcodecs_chunk()


def main_v2():
    """Format version 2: a rotated blob (outlier columns, as rotation is for) and
    narrow levels coded losslessly as dense samples."""
    rng = np.random.default_rng(2027)
    w = (rng.standard_normal((40, 96)) * 0.05).astype(np.float32)
    w[:, [3, 50]] *= 20
    write("v2_f32_rotated_pc", w, qp=22, per_channel=True, rotate=True, rotation_seed=12345)
    write("v2_f32_lossless_3bit_dense", w, lossless=True, bits=3)


def main_multiframe():
    """A version-1 blob of six pictures whose sides are not multiples of 8 (34 x 38
    tiles, which x265 pads to 40 x 40): written before the decoder checked every
    picture's hash, so it pins that the check reads the format as it was."""
    w = (np.random.default_rng(2028).standard_normal((100, 75)) * 0.05).astype(np.float32)
    write("v1_f32_qp24_multiframe", w, qp=24, max_frame_side=40)


def main_wvc_v2():
    """A .wvc file of format version 2 (a CRC-32 of the JSON header in its first field)."""
    write_container("tiny_model_v2")


def main_wvc_rans():
    """A .wvc file of format version 2 whose int8 entries use the rans level coder."""
    write_container("tiny_model_v2_rans")


def main_zlib_params():
    """A .wvc file with an int8 entry of coder "zlib-params" (parameters deflated)."""
    write_container("tiny_model_v1_zlib_params")


if __name__ == "__main__":
    import sys

    fixtures = {
        "v1": main,
        "v2": main_v2,
        "zlib-params": main_zlib_params,
        "multiframe": main_multiframe,
        "wvc-v2": main_wvc_v2,
        "wvc-rans": main_wvc_rans,
    }
    fixtures[sys.argv[1] if len(sys.argv) > 1 else "zlib-params"]()
