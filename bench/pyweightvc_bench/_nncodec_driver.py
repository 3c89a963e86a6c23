"""Runs NNCodec inside its own virtual environment (numpy<2, torch, torchvision,
nncodec); started by nncodec_peer.py. Imports nothing from pyweightvc.

    python _nncodec_driver.py WORKDIR QP[,QP...] REPEATS

Reads WORKDIR/input.npz (arrays t0, t1, ...) and WORKDIR/input.json (their
names and groups). For each qp, codes each group's tensors as one NNCodec
bitstream, decodes it, and writes WORKDIR/qp<QP>.npz (decoded arrays, same
keys) and WORKDIR/summary.json (bytes and median times per qp and group).
"""

import json
import os
import statistics
import sys
import time

import numpy as np
from nncodec.nn import decode, encode


def main():
    workdir, qps, repeats = sys.argv[1], [int(q) for q in sys.argv[2].split(",")], int(sys.argv[3])
    with open(os.path.join(workdir, "input.json")) as f:
        index = json.load(f)  # key -> [group, name]
    arrays = np.load(os.path.join(workdir, "input.npz"))
    groups = {}
    for key, (group, name) in index.items():
        groups.setdefault(group, {})[name] = (key, arrays[key])
    summary = {}
    for qp in qps:
        decoded, entry = {}, {}
        for group, tensors in sorted(groups.items()):
            enc_times, dec_times = [], []
            for _ in range(max(1, repeats)):
                params = {name: arr.copy() for name, (_, arr) in tensors.items()}
                t = time.perf_counter()
                bitstream = encode(params, args={"qp": qp, "verbose": False})
                enc_times.append(time.perf_counter() - t)
                t = time.perf_counter()
                rec = decode(bitstream)
                dec_times.append(time.perf_counter() - t)
            entry[group] = {"bytes": len(bitstream), "encode_s": statistics.median(enc_times), "decode_s": statistics.median(dec_times)}
            for name, (key, arr) in tensors.items():
                decoded[key] = np.asarray(rec[name], dtype=np.float32).reshape(arr.shape)
        np.savez(os.path.join(workdir, f"qp{qp}.npz"), **decoded)
        summary[str(qp)] = entry
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump({"results": summary}, f)


if __name__ == "__main__":
    main()
