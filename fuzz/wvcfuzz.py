"""Mutation fuzzing of pyweightvc's readers with the checksums repaired.

Targets (see fuzz/README.md):

- ``blob-header``   an encoded tensor's header fields mutated, both CRCs repaired
- ``blob-payload``  its HEVC payload mutated (bytes, NAL units), both CRCs repaired
- ``numcodecs``     mutated blobs through the numcodecs codec (with and without ``out``)
- ``wvc-header``    .wvc JSON header bytes mutated, the header checksum NOT repaired:
                    every change must be refused or harmless (same tensors out)
- ``wvc-json``      .wvc entries given hostile values (types, sizes, depth, huge
                    numbers), header checksum repaired
- ``wvc-text``      .wvc header text mutated, header checksum repaired
- ``wvc-data``      a stored tensor's bytes mutated (blob fields, deflate and rans streams,
                    raw bytes), its crc32 and the header checksum repaired

What it records, per target: inputs, refusals (WeightVCError), accepted inputs,
exceptions outside the contract (anything but WeightVCError), accepted inputs whose
repeated decodes differ (nondeterminism), accepted inputs whose output differs from
the unmutated one ("silent"; must be 0 for wvc-header, counted for information
elsewhere: a hostile file with repaired checksums may declare anything, and payload
changes in multi-picture blobs are the picture-hash issue being fixed in C++),
memory (the process runs under an RLIMIT_AS cap; MemoryError is a finding) and the
slowest input.

    python fuzz/wvcfuzz.py --seconds 1800 --seed 1 --out /tmp/fuzz-out
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import struct
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

import pyweightvc as wvc
from pyweightvc._arrays import matrix_dims
from pyweightvc._core import decode_levels, encode_levels
from pyweightvc.numcodecs import PyWeightVC

_FIXED = struct.Struct("<4sHBBBBBBIIII")
_FIELDS = {  # name: (offset, struct format) in the fixed part of a blob header
    "version": (4, "<H"),
    "dtype": (6, "<B"),
    "bits": (7, "<B"),
    "flags": (8, "<B"),
    "qp": (9, "<B"),
    "preset": (10, "<B"),
    "rank": (11, "<B"),
    "tile_h": (12, "<I"),
    "tile_w": (16, "<I"),
    "frame_h": (20, "<I"),
    "frame_w": (24, "<I"),
}
_CRC_LEAD = b'{"__metadata__":{"header_crc32":"'

INTERESTING = {
    "<B": [0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 32, 33, 51, 52, 127, 128, 254, 255],
    "<H": [0, 1, 2, 3, 255, 4096, 4097, 0x7FFF, 0xFFFF],
    "<I": [
        0,
        1,
        2,
        15,
        16,
        17,
        31,
        32,
        33,
        40,
        48,
        96,
        2047,
        2048,
        2049,
        16383,
        16384,
        16385,
        65535,
        65536,
        2**24,
        2**31 - 1,
        2**31,
        2**32 - 1,
    ],
    "<i": [0, 1, -1, 7, 8, -8, -9, 127, 128, -128, -129, 2**31 - 1, -(2**31)],
    "<Q": [0, 1, 2, 15, 16, 17, 40, 96, 2**16, 2**20, 2**28, 2**30, 2**31, 2**32, 2**40, 2**47, 2**48, 2**63, 2**64 - 1],
    "<f": [0.0, -0.0, 1.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e-45, 1e-39, 1.1754944e-38, 3.4e38, 1e-3, 0.5],
}


class Finding(Exception):
    pass


# ---------------------------------------------------------------------------
# blobs: field positions, repair, mutations


def blob_layout(blob: bytes) -> Optional[dict]:
    """Where the variable fields of a (possibly mutated) blob header sit, computed
    from its own fields as a reader does; None when they do not fit in the blob."""
    if len(blob) < _FIXED.size:
        return None
    _, version, _, _, flags, _, _, rank, *_ = _FIXED.unpack_from(blob, 0)
    pos = _FIXED.size
    out = {"shape": pos, "rank": rank}
    pos += 8 * rank
    if pos + 4 > len(blob):
        return None
    (n_params,) = struct.unpack_from("<I", blob, pos)
    out["n_params_at"] = pos
    pos += 4
    out.update(n_params=n_params, scale=pos, zero_point=None if flags & 1 else pos + 4 * n_params)
    pos += (4 if flags & 1 else 8) * n_params
    if pos + 2 > len(blob):
        return None
    (n_options,) = struct.unpack_from("<H", blob, pos)
    out["n_options_at"] = pos
    pos += 2 + n_options
    if version >= 2:
        out["rotation"] = pos
        pos += 13
    out["trailer"] = pos
    if pos + 16 > len(blob):
        return None
    return out


def repair_blob(blob: bytes, fix_size: bool = True) -> bytes:
    """Payload size (optionally), payload CRC and header CRC made consistent."""
    lay = blob_layout(blob)
    if lay is None:
        return blob
    b = bytearray(blob)
    t = lay["trailer"]
    payload = bytes(b[t + 16 :])
    if fix_size:
        struct.pack_into("<Q", b, t, len(payload))
    struct.pack_into("<I", b, t + 8, zlib.crc32(payload))
    struct.pack_into("<I", b, t + 12, zlib.crc32(bytes(b[: t + 12])))
    return bytes(b)


def payload_of(blob: bytes) -> tuple[bytes, bytes]:
    lay = blob_layout(blob)
    assert lay is not None
    return blob[: lay["trailer"] + 16], blob[lay["trailer"] + 16 :]


def _pick(rng: random.Random, fmt: str):
    if rng.random() < 0.8:
        return rng.choice(INTERESTING[fmt])
    if fmt == "<f":
        return struct.unpack("<f", rng.randbytes(4))[0]
    return int.from_bytes(rng.randbytes(struct.calcsize(fmt)), "little", signed=fmt == "<i")


def mutate_blob_header(rng: random.Random, blob: bytes) -> bytes:
    b = bytearray(blob)
    lay = blob_layout(blob)
    assert lay is not None
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.randrange(8)
        if kind <= 2:
            off, fmt = _FIELDS[rng.choice(list(_FIELDS))]
            struct.pack_into(fmt, b, off, _pick(rng, fmt))
        elif kind == 3 and lay["rank"]:
            struct.pack_into("<Q", b, lay["shape"] + 8 * rng.randrange(lay["rank"]), _pick(rng, "<Q"))
        elif kind == 4 and lay["n_params"]:
            struct.pack_into("<f", b, lay["scale"] + 4 * rng.randrange(lay["n_params"]), _pick(rng, "<f"))
        elif kind == 5 and lay["zero_point"] is not None and lay["n_params"]:
            struct.pack_into("<i", b, lay["zero_point"] + 4 * rng.randrange(lay["n_params"]), _pick(rng, "<i"))
        elif kind == 6:
            which = rng.choice(("n_params_at", "n_options_at", "rotation"))
            if which == "rotation" and "rotation" in lay:
                struct.pack_into("<BIQ", b, lay["rotation"], rng.choice((0, 1, 2)), _pick(rng, "<I"), _pick(rng, "<Q"))
            elif which == "n_params_at":
                struct.pack_into("<I", b, lay["n_params_at"], _pick(rng, "<I"))
            else:
                struct.pack_into("<H", b, lay["n_options_at"], _pick(rng, "<H"))
        else:
            i = rng.randrange(4, lay["trailer"])
            b[i] = rng.randrange(256)
    return repair_blob(bytes(b), fix_size=rng.random() < 0.9)


def nal_units(payload: bytes) -> list[bytes]:
    starts = []
    i = payload.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i)
        i = payload.find(b"\x00\x00\x01", i + 3)
    return [payload[a:b] for a, b in zip(starts, starts[1:] + [len(payload)])] or [payload]


def mutate_payload(rng: random.Random, payload: bytes) -> bytes:
    p = bytearray(payload)
    kind = rng.randrange(7)
    if kind == 0:  # flip bits
        for _ in range(rng.choice((1, 1, 2, 4))):
            p[rng.randrange(len(p))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # random bytes
        for _ in range(rng.choice((1, 2, 8))):
            p[rng.randrange(len(p))] = rng.randrange(256)
    elif kind == 2:  # delete or insert a range
        i = rng.randrange(len(p))
        if rng.random() < 0.5:
            del p[i : i + rng.randrange(1, 32)]
        else:
            p[i:i] = rng.randbytes(rng.randrange(1, 32))
    else:  # NAL units: swap, drop, duplicate, move
        units = nal_units(bytes(p))
        if len(units) < 2:
            p[rng.randrange(len(p))] ^= 0xFF
        else:
            i, j = rng.randrange(len(units)), rng.randrange(len(units))
            if kind == 3:
                units[i], units[j] = units[j], units[i]
            elif kind == 4:
                del units[i]
            elif kind == 5:
                units.insert(j, units[i])
            else:
                units.insert(j, units.pop(i))
            p = bytearray(b"".join(units))
    return bytes(p)


# ---------------------------------------------------------------------------
# .wvc files: building, repair, mutations


def header_with_crc(text: bytes) -> bytes:
    """Pad to a multiple of 8 and set the header_crc32 digits (when the lead is there)."""
    text += b" " * (-len(text) % 8)
    if text.startswith(_CRC_LEAD) and len(text) > len(_CRC_LEAD) + 9:
        end = len(_CRC_LEAD) + 8
        text = text[: len(_CRC_LEAD)] + b"%08x" % zlib.crc32(text[end + 1 :]) + text[end:]
    return text


def build_wvc(header: dict, datas: dict[str, bytes], fix_crc32: bool = True, raw_values: Optional[dict] = None) -> bytes:
    """A .wvc file from a header dict (entries in order) and each stored tensor's
    bytes: offsets and crc32 recomputed (crc32 only if fix_crc32), header checksum
    repaired. raw_values: placeholder string -> raw JSON text substituted after dumping."""
    header = json.loads(json.dumps(header))
    offset, chunks = 0, []
    for name, e in header.items():
        if name == "__metadata__" or not isinstance(e, dict) or name not in datas:
            continue
        d = datas[name]
        e["data_offsets"] = [offset, offset + len(d)]
        if fix_crc32:
            e["crc32"] = zlib.crc32(d)
        offset += len(d)
        chunks.append(d)
    meta = dict(header.get("__metadata__", {}))
    meta = {"header_crc32": "00000000", **{k: v for k, v in meta.items() if k != "header_crc32"}}
    header = {"__metadata__": meta, **{k: v for k, v in header.items() if k != "__metadata__"}}
    text = json.dumps(header, separators=(",", ":"))
    for k, v in (raw_values or {}).items():
        text = text.replace(json.dumps(k), v)
    blob = header_with_crc(text.encode())
    return struct.pack("<Q", len(blob)) + blob + b"".join(chunks)


def split_wvc(data: bytes) -> tuple[dict, dict[str, bytes]]:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    datas = {
        k: data[8 + n + e["data_offsets"][0] : 8 + n + e["data_offsets"][1]]
        for k, e in header.items()
        if k != "__metadata__" and "data_offsets" in e
    }
    return header, datas


def _deep(rng: random.Random) -> str:
    depth = rng.choice((10, 100, 1000, 100_000))
    return "[" * depth + "]" * depth


HOSTILE_VALUES: list[Callable[[random.Random], Any]] = [
    lambda r: r.choice([0, 1, -1, 2, 7, 8, 9, 255, 256, 2**31, 2**32, 2**48, 2**63, 2**64, 2**94, -(2**63)]),
    lambda r: r.choice([0.0, 1.5, -1.0, 1e300, 1e-300, 8.0, 3.0]),
    lambda r: r.choice([True, False, None]),
    lambda r: r.choice(
        ["", "x", "float32", "int8", "hevc", "raw", "alias", "zlib", "zlib-params", "fast", "conv.weight", "fc.weight", "__metadata__"]
    ),
    lambda r: r.choice([[], [1], [2, 3], [0, 0], [-1, 5], [2**40, 2**40], [2**47] * 3, [1.0], ["a"], [[1]], [True, 1]]),
    lambda r: r.choice([{}, {"a": 1}, {"dtype": "float32"}]),
    lambda r: ("RAW", "9" * r.choice((21, 100, 5000))),
    lambda r: ("RAW", r.choice(["NaN", "Infinity", "-Infinity", "1e999", "-0", "1" + "0" * 40 + ".5"])),
    lambda r: ("RAW", _deep(r)),
]
ENTRY_FIELDS = [
    "dtype",
    "shape",
    "storage",
    "data_offsets",
    "crc32",
    "qp",
    "lossless",
    "preset",
    "bits",
    "symmetric",
    "per_channel",
    "min_step",
    "rotate",
    "target_snr_db",
    "target_bpw",
    "coder",
    "params",
    "alias_of",
]


def mutate_wvc_json(rng: random.Random, data: bytes) -> bytes:
    header, datas = split_wvc(data)
    raw: dict = {}
    for _ in range(rng.choice((1, 1, 2))):
        names = [k for k in header if k != "__metadata__"]
        kind = rng.randrange(10)
        if kind == 0:  # a metadata value
            key = rng.choice(list(header["__metadata__"]) + ["onnx_tensors", "x"])
            value = rng.choice(HOSTILE_VALUES)(rng)
            header["__metadata__"][key] = value if not isinstance(value, tuple) else value[1]
            continue
        if kind == 1:  # rename / duplicate / drop an entry
            a = rng.choice(names)
            if rng.random() < 0.5:
                header.pop(a)
            else:
                header[a + "x"] = header[a]
            continue
        e = header[rng.choice(names)]
        field = rng.choice(ENTRY_FIELDS)
        if rng.random() < 0.15:
            e.pop(field, None)
            continue
        value = rng.choice(HOSTILE_VALUES)(rng)
        if isinstance(value, tuple):  # raw JSON text: a placeholder replaced after dumping
            placeholder = f"@@raw{len(raw)}@@"
            raw[placeholder] = value[1]
            value = placeholder
        e[field] = value
    fix = rng.random() < 0.8
    return build_wvc(header, datas, fix_crc32=fix, raw_values=raw)


def mutate_wvc_text(rng: random.Random, data: bytes) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    head = bytearray(data[8 : 8 + n].rstrip(b" "))
    start = len(_CRC_LEAD) + 9
    for _ in range(rng.choice((1, 1, 2, 4))):
        i = rng.randrange(start, len(head))
        kind = rng.randrange(4)
        if kind == 0:
            head[i] = rng.choice(b'0123456789"{}[],:-.eE \\ntfa')
        elif kind == 1:
            del head[i : i + rng.randrange(1, 8)]
        elif kind == 2:
            head[i:i] = rng.choice([b"[", b"{", b'"', b"0", b"-", b"9" * 30, b"[" * 50, b'"a":1,', b",", b"\\u0000"])
        else:
            j = rng.randrange(start, len(head))
            chunk = head[j : j + rng.randrange(1, 40)]
            head[i:i] = chunk
    blob = header_with_crc(bytes(head))
    return struct.pack("<Q", len(blob)) + blob + data[8 + n :]


def mutate_wvc_header_unrepaired(rng: random.Random, data: bytes) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        i = rng.randrange(8, 8 + n)
        b[i] = rng.choice((rng.randrange(256), rng.choice(b'0123456789 "[]{},:'), b[i] ^ (1 << rng.randrange(8))))
    return bytes(b)


def mutate_wvc_data(rng: random.Random, data: bytes) -> tuple[bytes, bool]:
    """A stored tensor's bytes mutated; also whether an HEVC payload was."""
    header, datas = split_wvc(data)
    payload_mutated = False
    name = rng.choice(list(datas))
    e, d = header[name], datas[name]
    if e["storage"] == "hevc":
        head, payload = payload_of(d)
        payload_mutated = rng.random() >= 0.6
        d = repair_blob(head + mutate_payload(rng, payload)) if payload_mutated else mutate_blob_header(rng, d)
    elif e["storage"] == "int8" and rng.random() < 0.6:
        n = e["params"] * (4 if e["symmetric"] else 8)
        params_coded, ranged = e["coder"].endswith("-params"), e["coder"].startswith("rans")
        if params_coded:
            dec = zlib.decompressobj()
            params, rest = bytearray(dec.decompress(d)), dec.unused_data
        else:
            params, rest = bytearray(d[:n]), d[n:]
        rows, cols = matrix_dims(tuple(e["shape"]))
        k = rng.randrange(4)
        if k == 0 and params:  # a parameter
            i = rng.randrange(0, len(params) // 4) * 4
            fmt = "<f" if i < 4 * e["params"] else "<i"
            struct.pack_into(fmt, params, i, _pick(rng, fmt))
        elif k == 1:  # levels out of range / another count
            levels = bytearray(decode_levels(rest, rows, cols).tobytes() if ranged else zlib.decompress(rest))
            if rng.random() < 0.5 and levels:
                levels[rng.randrange(len(levels))] = rng.randrange(256)
            else:
                levels += bytes(rng.choice((1, 100)))
            flat = np.frombuffer(bytes(levels), np.int8)
            rest = encode_levels(flat.reshape(1, -1)) if ranged else zlib.compress(bytes(levels), 9)
        elif k == 2:  # a bomb: many more levels than the shape
            count = rng.choice((10**5, 10**6, 10**7))
            rest = encode_levels(np.zeros((1, count), np.int8)) if ranged else zlib.compress(bytes(count), 9)
        else:
            rest = rest[: rng.randrange(len(rest) + 1)]
        d = (zlib.compress(bytes(params), 9) if params_coded else bytes(params)) + rest
    else:
        b = bytearray(d)
        if b:
            for _ in range(rng.choice((1, 2))):
                b[rng.randrange(len(b))] = rng.randrange(256)
        d = bytes(b)
    datas[name] = d
    return build_wvc(header, datas), payload_mutated


# ---------------------------------------------------------------------------
# seeds


def make_blobs() -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((40, 96)) * 0.05).astype(np.float32)
    blobs = {
        "single-qp24": wvc.encode(w[:16, :24], qp=24),
        "multi-qp30": wvc.encode(w, qp=30, max_frame_side=16),  # 3 x 6 pictures of 16 x 16
        "multi-asym4-pc": wvc.encode(w[:20, :40], qp=20, bits=4, symmetric=False, per_channel=True, max_frame_side=16),
        "rotated": wvc.encode(w[:8, :32], qp=22, rotate=True, rotation_seed=3),
        "dense": wvc.encode(w[:16, :32], lossless=True, bits=3),
        "int8": wvc.encode((rng.integers(-128, 128, (16, 20))).astype(np.int8), qp=20),
        "f16-3d": wvc.encode(w[:8, :48].reshape(8, 6, 8).astype(np.float16), qp=26),
    }
    for p in sorted((Path(__file__).parent.parent / "tests" / "data").glob("v*.wvct")):
        blobs["fixture-" + p.stem] = p.read_bytes()
    return blobs


def make_wvc(tmp: str) -> bytes:
    rng = np.random.default_rng(9)
    fc = (rng.standard_normal((40, 72)) * 0.05).astype(np.float32)
    tensors = {
        "conv.weight": (rng.standard_normal((16, 8, 3, 3)) * 0.1).astype(np.float32),
        "conv.bias": (rng.standard_normal(16) * 0.01).astype(np.float32),
        "fc.weight": fc,
        "fc.tied": fc,
        "emb.weight": (rng.standard_normal((100, 32)) * 0.05).astype(np.float16),
        # int8 at the data-free default's 36 dB: large enough to be rans-coded
        "big.weight": (rng.standard_normal((256, 256)) * 0.05).astype(np.float32),
        "mask": rng.integers(0, 2, (5, 5)).astype(bool),
        "steps": np.array(7, dtype=np.int64),
    }
    policy = wvc.Policy(
        24,
        overrides={
            "emb.*": {"storage": "int8", "symmetric": False, "per_channel": False},
            "conv.weight": {"min_step": 0.003},
            "big.*": {"storage": "int8", "target_snr_db": 36.0},
        },
    )
    path = os.path.join(tmp, "seed.wvc")
    wvc.save_file(tensors, path, policy=policy)
    return Path(path).read_bytes()


# ---------------------------------------------------------------------------
# running


def _digest(x: Any) -> bytes:
    if isinstance(x, dict):
        return b"|".join(k.encode() + b"=" + _digest(v) for k, v in x.items())
    if hasattr(x, "levels"):  # QuantizedTensor
        return b"q" + _digest(x.levels) + _digest(x.scale) + _digest(x.zero_point) + repr((x.bits, x.symmetric, x.rotation)).encode()
    a = np.ascontiguousarray(x)
    return repr((a.dtype.str, a.shape)).encode() + a.tobytes()


class Stats:
    def __init__(self) -> None:
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.slowest: dict[str, float] = defaultdict(float)
        self.findings: list[dict] = []

    def as_dict(self) -> dict:
        return {
            "targets": {k: dict(v) for k, v in self.counts.items()},
            "slowest_seconds": {k: round(v, 3) for k, v in self.slowest.items()},
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "findings": len(self.findings),
        }


class Fuzzer:
    """One process, one seed: runs the targets round robin until the time is up."""

    def __init__(self, seed: int, out: Optional[str], tmp: str, decode_threads: int = 1):
        self.rng = random.Random(seed)
        self.out = Path(out) if out else None
        self.tmp = tmp
        self.threads = decode_threads
        self.stats = Stats()
        self.blobs = make_blobs()
        self.blob_ref = {k: _digest(wvc.decode(b)) for k, b in self.blobs.items()}
        self.wvc_seed = make_wvc(tmp)
        self.wvc_path = os.path.join(tmp, "input.wvc")
        self.wvc_ref = self._load_all(self.wvc_seed)
        self.codec = PyWeightVC()

    # recording
    def _record(self, target: str, kind: str, data: bytes, detail: str) -> None:
        self.stats.counts[target][kind] += 1
        finding = {"target": target, "kind": kind, "detail": detail[-3000:], "size": len(data)}
        self.stats.findings.append(finding)
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            stem = f"{target}-{kind}-{zlib.crc32(data):08x}"
            (self.out / f"{stem}.bin").write_bytes(data)
            (self.out / f"{stem}.json").write_text(json.dumps(finding, indent=1))

    def _check(
        self,
        target: str,
        data: bytes,
        run: Callable[[], bytes],
        reference: Optional[bytes],
        repeats: int = 2,
        silent_key: str = "silent",
        payload: bool = False,
    ) -> None:
        """Run a decode: WeightVCError is a refusal; anything else is a finding; an
        accepted input is decoded again (same bytes or a nondeterminism finding) and
        compared with the reference (a difference is counted as silent_key).
        payload: the HEVC stream was mutated, so a nondeterministic decode is the
        native decoder's (libde265), counted apart as nondeterministic-payload."""
        nondeterministic = "nondeterministic-payload" if payload else "nondeterministic"
        c = self.stats.counts[target]
        c["inputs"] += 1
        t0 = time.perf_counter()
        try:
            first = run()
        except wvc.WeightVCError:
            c["refused"] += 1
            return
        except MemoryError:
            self._record(target, "memory", data, traceback.format_exc())
            return
        except Exception:  # noqa: BLE001 - the point: anything else is outside the contract
            self._record(target, "exception", data, traceback.format_exc())
            return
        finally:
            self.stats.slowest[target] = max(self.stats.slowest[target], time.perf_counter() - t0)
        c["accepted"] += 1
        for _ in range(repeats):
            try:
                again = run()
            except Exception:  # noqa: BLE001
                self._record(target, nondeterministic, data, "accepted once, then: " + traceback.format_exc())
                return
            if again != first:
                self._record(target, nondeterministic, data, "two decodes of one input differ")
                return
        if reference is not None and first != reference:
            c[silent_key] += 1
            if silent_key == "silent":
                self._record(target, "silent", data, "accepted with another output than the unmutated input")

    # decoding
    def _load_all(self, data: bytes) -> bytes:
        Path(self.wvc_path).write_bytes(data)
        parts = [_digest(wvc.load_file(self.wvc_path, threads=self.threads))]
        with wvc.safe_open(self.wvc_path, threads=self.threads) as f:
            for k in f.keys():
                parts.append(_digest(f.get_tensor(k)))
                if f.entry(k)["storage"] != "raw":
                    parts.append(_digest(f.get_int8(k)))
        return b"#".join(parts)

    def _blob_run(self, blob: bytes) -> Callable[[], bytes]:
        return lambda: _digest(wvc.decode(blob, threads=self.threads)) + b"#" + _digest(wvc.decode_int8(blob, threads=self.threads))

    # targets
    def blob_header(self) -> None:
        name = self.rng.choice(list(self.blobs))
        blob = mutate_blob_header(self.rng, self.blobs[name])
        self._check("blob-header", blob, self._blob_run(blob), None)

    def blob_payload(self) -> None:
        name = self.rng.choice(list(self.blobs))
        head, payload = payload_of(self.blobs[name])
        blob = repair_blob(head + mutate_payload(self.rng, payload))
        pictures = blob_pictures(self.blobs[name])
        ref = self.blob_ref[name]
        run = lambda: _digest(wvc.decode(blob, threads=self.threads))
        self._check(
            "blob-payload", blob, run, ref, payload=True, silent_key="silent-multi-picture" if pictures > 1 else "silent-one-picture"
        )

    def numcodecs(self) -> None:
        name = self.rng.choice(list(self.blobs))
        src = self.blobs[name]
        payload_mutated = self.rng.random() >= 0.5
        if not payload_mutated:
            blob = mutate_blob_header(self.rng, src)
        else:
            head, payload = payload_of(src)
            blob = repair_blob(head + mutate_payload(self.rng, payload))
        out_like = wvc.decode(src)

        def run() -> bytes:
            a = _digest(self.codec.decode(blob))
            b = _digest(self.codec.decode(np.frombuffer(blob, np.uint8), out=np.empty_like(out_like)))
            return a + b

        self._check("numcodecs", blob, run, None, payload=payload_mutated)

    def wvc_header(self) -> None:
        data = mutate_wvc_header_unrepaired(self.rng, self.wvc_seed)
        self._check("wvc-header", data, lambda: self._load_all(data), self.wvc_ref, repeats=1)

    def wvc_json(self) -> None:
        data = mutate_wvc_json(self.rng, self.wvc_seed)
        self._check("wvc-json", data, lambda: self._load_all(data), self.wvc_ref, repeats=1, silent_key="different")

    def wvc_text(self) -> None:
        data = mutate_wvc_text(self.rng, self.wvc_seed)
        self._check("wvc-text", data, lambda: self._load_all(data), self.wvc_ref, repeats=1, silent_key="different")

    def wvc_data(self) -> None:
        data, payload_mutated = mutate_wvc_data(self.rng, self.wvc_seed)
        self._check(
            "wvc-data", data, lambda: self._load_all(data), self.wvc_ref, repeats=1, silent_key="different", payload=payload_mutated
        )

    TARGETS = ("blob_header", "blob_payload", "numcodecs", "wvc_header", "wvc_json", "wvc_text", "wvc_data")

    def run(
        self, seconds: float, targets: tuple = TARGETS, max_inputs: Optional[int] = None, progress: Optional[Callable[[Stats], None]] = None
    ) -> Stats:
        """Targets round robin until the time (or max_inputs) is up; progress(stats)
        about once a minute."""
        start = time.monotonic()
        end, report = start + seconds, start + 60
        i = 0
        while time.monotonic() < end and (max_inputs is None or i < max_inputs):
            getattr(self, targets[i % len(targets)])()
            i += 1
            if progress is not None and time.monotonic() > report:
                progress(self.stats)
                report += 60
        return self.stats


def blob_pictures(blob: bytes) -> int:
    h = wvc.read_header(blob)
    rows, cols = h.layout[:2]
    return -(-rows // h.tile[0]) * -(-cols // h.tile[1])


def cap_memory(extra_bytes: int) -> None:
    """RLIMIT_AS at the current address space plus extra_bytes: an input that makes
    the process allocate more raises MemoryError (recorded as a finding)."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra_bytes, vm + extra_bytes))


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="folder for findings (inputs and tracebacks)")
    ap.add_argument("--memory-cap-mb", type=int, default=2048, help="address space allowed beyond the start-up's")
    ap.add_argument("--targets", default=",".join(Fuzzer.TARGETS))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        fuzzer = Fuzzer(args.seed, args.out, tmp)
        cap_memory(args.memory_cap_mb << 20)
        t0 = time.monotonic()

        def progress(stats: Stats) -> None:  # the counts so far, on stderr (a long run keeps them)
            counts = {k: dict(v) for k, v in stats.counts.items()}
            print(json.dumps({"seconds": round(time.monotonic() - t0), "targets": counts}), file=sys.stderr, flush=True)

        stats = fuzzer.run(args.seconds, tuple(t.replace("-", "_") for t in args.targets.split(",")), progress=progress)
        summary = {"seed": args.seed, "seconds": round(time.monotonic() - t0, 1), **stats.as_dict()}
    print(json.dumps(summary, indent=1))
    bad = sum(c[k] for c in stats.counts.values() for k in ("exception", "nondeterministic", "memory", "silent"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
