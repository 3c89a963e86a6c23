"""Measures the codec core on real weights and prints Markdown tables.

    python benchmarks/core_bench.py [--quick] [--json out.json] [--sections rate,presets,...]

Sections:
  rate     bytes, bits per weight and weight SNR at QP 12..36 and lossless
  presets  size, SNR, encode and decode throughput per x265 preset (QP 24)
  frames   frame-size limit sweep (size and speed)
  options  psycho-visual tools and RDOQ: bits per weight at equal weight SNR
  kernels  quantisation kernel vs numpy (same formula) vs a plain memory copy

Throughput is in MB/s of int8 weights (one byte per weight); every timing is the
median of repeats in this run, and ratios compare numbers from the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
from pyweightvc_bench.fidelity import weight_snr_db as snr_db
from pyweightvc_bench.models import real_matrices

import pyweightvc as wvc

QPS = [12, 18, 24, 30, 36]


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def table(headers, rows) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def rate_section(mats, results, repeats):
    rows = []
    for name, w in mats.items():
        for per_channel in (False, True):
            scheme = "per channel" if per_channel else "per tensor"
            q, s, z = wvc.quantize(w, per_channel=per_channel)
            int8_snr = snr_db(w, wvc.dequantize(q, s, z))
            rows.append([name, scheme, "int8 (no coding)", w.size, f"{8:.3f}", f"{int8_snr:.2f}", "4.0"])
            for qp in QPS + [None]:
                setting = {"lossless": True} if qp is None else {"qp": qp}
                blob = wvc.encode(w, per_channel=per_channel, **setting)
                snr = snr_db(w, wvc.decode(blob))
                bpw = 8 * len(blob) / w.size
                label = "lossless" if qp is None else f"QP {qp}"
                rows.append([name, scheme, label, len(blob), f"{bpw:.3f}", f"{snr:.2f}", f"{32 / bpw:.1f}"])
                results["rate"].append(dict(matrix=name, per_channel=per_channel, setting=label, bytes=len(blob), bpw=bpw, snr_db=snr))
    print("\n### Size and fidelity per QP (preset %s)\n" % wvc.lib_info()["default_preset"])
    print(table(["matrix", "scales", "setting", "bytes", "bits/weight", "weight SNR dB", "ratio vs fp32"], rows))


def presets_section(mats, results, repeats, presets):
    rows = []
    for name, w in mats.items():
        for preset in presets:
            enc = wvc.Encoder(24, preset=preset)
            dec = wvc.Decoder()
            blob = enc.encode(w)
            t_enc = median_time(lambda: enc.encode(w), repeats)
            t_dec = median_time(lambda: dec.decode(blob), max(3, repeats))
            snr = snr_db(w, dec.decode(blob))
            mb = w.size / 1e6
            rows.append([name, preset, len(blob), f"{8 * len(blob) / w.size:.3f}", f"{snr:.2f}", f"{mb / t_enc:.2f}", f"{mb / t_dec:.1f}"])
            results["presets"].append(
                dict(matrix=name, preset=preset, bytes=len(blob), snr_db=snr, encode_mb_s=mb / t_enc, decode_mb_s=mb / t_dec)
            )
    print("\n### Presets at QP 24 (all cores; median of repeats)\n")
    print(table(["matrix", "preset", "bytes", "bits/weight", "SNR dB", "encode MB/s", "decode MB/s"], rows))


def frames_section(mats, results, repeats):
    rows = []
    for name, w in mats.items():
        for side in [256, 512, 1024, 2048, 4096, 16384]:
            enc = wvc.Encoder(24, max_frame_side=side)
            dec = wvc.Decoder()
            blob = enc.encode(w)
            t_enc = median_time(lambda: enc.encode(w), repeats)
            t_dec = median_time(lambda: dec.decode(blob), max(3, repeats))
            h = wvc.read_header(blob)
            n_frames = -(-h.layout[0] // h.tile[0]) * -(-h.layout[1] // h.tile[1])
            mb = w.size / 1e6
            rows.append([name, side, f"{n_frames} x {h.frame[0]}x{h.frame[1]}", len(blob), f"{mb / t_enc:.2f}", f"{mb / t_dec:.1f}"])
            results["frames"].append(
                dict(matrix=name, max_frame_side=side, frames=n_frames, bytes=len(blob), encode_mb_s=mb / t_enc, decode_mb_s=mb / t_dec)
            )
    print("\n### Frame size limit (QP 24, default preset)\n")
    print(table(["matrix", "max side", "frames (h x w)", "bytes", "encode MB/s", "decode MB/s"], rows))


def bpw_at_snr(points, target):
    """Bits per weight at a target SNR, interpolated linearly in (SNR, log bpw)."""
    points = sorted(points, key=lambda p: p[1])
    for (b0, s0), (b1, s1) in zip(points, points[1:]):
        if s0 <= target <= s1:
            t = (target - s0) / (s1 - s0) if s1 > s0 else 0.0
            return float(np.exp(np.log(b0) + t * (np.log(b1) - np.log(b0))))
    return float("nan")


def options_section(mats, results, repeats):
    variants = {
        "defaults (psy off, rdoq 2)": {},
        "psy-rd 2, psy-rdoq 1 (x265 defaults)": {"psy-rd": "2.0", "psy-rdoq": "1.0"},
        "rdoq-level 0": {"rdoq-level": "0"},
        "rdoq-level 1": {"rdoq-level": "1"},
        "tskip on": {"tskip": "1"},
        "ctu 32": {"ctu": "32"},
    }
    name, w = next(iter(mats.items()))
    targets = [16.0, 20.0, 24.0]
    rows = []
    for label, extra in variants.items():
        pts = []
        for qp in range(16, 34, 2):
            blob = wvc.encode(w, qp=qp, x265_params=extra)
            pts.append((8 * len(blob) / w.size, snr_db(w, wvc.decode(blob))))
        at = [bpw_at_snr(pts, t) for t in targets]
        enc = wvc.Encoder(24, x265_params=extra)
        t_enc = median_time(lambda: enc.encode(w), repeats)
        rows.append([label] + [f"{b:.3f}" for b in at] + [f"{t_enc:.2f}"])
        results["options"].append(
            dict(
                matrix=name, variant=label, x265_params=extra, points=pts, bpw_at_snr=dict(zip(map(str, targets), at)), encode_s_qp24=t_enc
            )
        )
    print(f"\n### x265 options: bits per weight at equal weight SNR ({name}, QP 16..32, preset {wvc.lib_info()['default_preset']})\n")
    print(table(["variant"] + [f"bpw @ {t:.0f} dB" for t in targets] + ["encode s at QP 24"], rows))


def kernels_section(results, repeats):
    from pyweightvc import _core

    w = (np.random.default_rng(0).standard_normal((4096, 4096)) * 0.02).astype(np.float32)
    dst = np.empty_like(w)
    rows = []

    def numpy_quantize():
        scale = np.float32(np.abs(w).max() / 127)
        return np.clip(np.rint(w * (np.float32(1) / scale)), -127, 127).astype(np.int8)

    t_copy = median_time(lambda: np.copyto(dst, w), repeats * 2)
    t_numpy = median_time(numpy_quantize, repeats * 2)
    np.testing.assert_array_equal(numpy_quantize(), wvc.quantize(w)[0])
    gb = w.nbytes / 1e9
    rows.append(["memory copy (np.copyto, fp32 -> fp32)", f"{gb / t_copy:.2f}", "1.00"])
    rows.append(["numpy, same formula", f"{gb / t_numpy:.2f}", f"{t_copy / t_numpy:.2f}"])
    for threads in (1, 0):
        t_ours = median_time(lambda: wvc.quantize(w, threads=threads or None), repeats * 2)
        t_scan = median_time(lambda: _core.compute_params(w, 1, 8, True, False, threads), repeats * 2)
        label = "1 thread" if threads == 1 else "all cores"
        rows.append([f"pyweightvc.quantize ({label}; scan + quantise)", f"{gb / t_ours:.2f}", f"{t_copy / t_ours:.2f}"])
        rows.append([f"  scale scan alone ({label})", f"{gb / t_scan:.2f}", f"{t_copy / t_scan:.2f}"])
        results["kernels"].append(dict(threads=threads, quantize_gb_s=gb / t_ours, scan_gb_s=gb / t_scan))
    results["kernels"].append(dict(copy_gb_s=gb / t_copy, numpy_gb_s=gb / t_numpy))
    print("\n### Quantisation kernel, 4096x4096 fp32 (GB/s of fp32 input; x = speed vs the copy)\n")
    print(table(["kernel", "GB/s", "x copy"], rows))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one repeat, fewer presets")
    ap.add_argument("--sections", default="rate,presets,frames,options,kernels")
    ap.add_argument("--json", help="write all measurements to this file")
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else 3
    sections = args.sections.split(",")
    info = wvc.lib_info()
    results = {k: [] for k in ("rate", "presets", "frames", "options", "kernels")}
    results["environment"] = dict(
        python=sys.version.split()[0],
        numpy=np.__version__,
        machine=platform.machine(),
        processor=platform.processor(),
        cores=__import__("os").cpu_count(),
        date=time.strftime("%Y-%m-%d"),
        **{k: v for k, v in info.items() if k != "x265_options"},
    )
    print(
        f"pyweightvc {info['pyweightvc']}, x265 {info['x265']}, libde265 {info['libde265']}, "
        f"{results['environment']['cores']} cores, {time.strftime('%Y-%m-%d')}"
    )
    mats = real_matrices() if {"rate", "presets", "frames", "options"} & set(sections) else {}
    for name, w in mats.items():
        print(
            f"- {name}: {w.shape[0]}x{w.shape[1]} {w.dtype}, {w.size / 1e6:.2f} M weights, max |w| {np.abs(w).max():.3f}, std {w.std():.4f}"
        )
    if "rate" in sections:
        rate_section(mats, results, repeats)
    if "presets" in sections:
        presets = ["ultrafast", "medium"] if args.quick else ["ultrafast", "veryfast", "fast", "medium", "slow"]
        presets_section(mats, results, repeats, presets)
    if "frames" in sections:
        frames_section(mats, results, repeats)
    if "options" in sections:
        options_section(mats, results, repeats)
    if "kernels" in sections:
        kernels_section(results, repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
