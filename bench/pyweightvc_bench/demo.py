"""The main job end to end on a real model: compress MobileNetV2's ImageNet
checkpoint with the ``pyweightvc`` command, reload the .wvc file into the network
(strict=True), and report size and fidelity.

    python -m pyweightvc_bench.demo [--qp N] [--preset fast] [--workdir DIR] [--photos-per-image 8]

Without --qp the command's data-free default runs (matrices kept as levels at
pyweightvc.DEFAULT_SNR_DB weight SNR); --qp N sends them through HEVC at QP N.

Fidelity: weight SNR of the compressed tensors, and top-1 / top-5 agreement and
KL divergence of the compressed network against the original on crops of real
photographs (no ImageNet validation set can be had offline).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from tqdm import tqdm

import pyweightvc as wvc
from pyweightvc import cli
from pyweightvc_bench import fidelity, nets, photos


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qp", type=int, help="matrices through HEVC at this QP (default: the command's default)")
    ap.add_argument("--preset", default=wvc.DEFAULT_PRESET, choices=wvc.settings.PRESETS)
    ap.add_argument("--model", default="mobilenet_v2", choices=sorted(nets.CLASSIFIERS))
    ap.add_argument("--workdir", help="where the checkpoint and .wvc files go (default: a temporary folder)")
    ap.add_argument("--photos-per-image", type=int, default=8, help="crops per bundled photo (default 8)")
    args = ap.parse_args(argv)

    import torch

    info = wvc.lib_info()
    print(
        f"pyweightvc {info['pyweightvc']} (x265 {info['x265']}, libde265 {info['libde265']}); "
        f"model {args.model}, " + (f"QP {args.qp}, preset {args.preset}\n" if args.qp is not None else "default settings\n")
    )
    workdir = args.workdir or tempfile.mkdtemp(prefix="pyweightvc-demo-")
    os.makedirs(workdir, exist_ok=True)
    src = os.path.join(workdir, f"{args.model}.pth")
    out = os.path.join(workdir, f"{args.model}.wvc")
    shutil.copyfile(nets.checkpoint_path(args.model), src)

    command = ["compress", src, "-o", out] + (["--qp", str(args.qp), "--preset", args.preset] if args.qp is not None else [])
    print("$ pyweightvc " + " ".join(command))
    if cli.main(command) != 0:
        return 1

    t0 = time.perf_counter()
    from pyweightvc import torch as wvc_torch

    compressed = wvc_torch.load_model(nets.CLASSIFIERS[args.model][0]().eval(), out)
    t_load = time.perf_counter() - t0
    original = nets.pretrained(args.model)
    print(f"\nreloaded {os.path.basename(out)} into {type(compressed).__name__} (strict=True) in {t_load:.2f} s")

    # weight fidelity per storage path
    ref = original.state_dict()
    got = compressed.state_dict()
    with wvc.safe_open(out) as f:
        groups: dict = {}
        for name in f.keys():
            e = f.entry(name)
            label = e["storage"] if e["storage"] != "hevc" else ("hevc lossless" if e["lossless"] else f"hevc QP {e['qp']}")
            if e["storage"] == "int8" and e.get("target_snr_db"):
                label = f"int8, {e['target_snr_db']:g} dB"
            g = groups.setdefault(label, {"tensors": 0, "weights": 0, "bytes": 0, "ref": [], "got": []})
            g["tensors"] += 1
            g["weights"] += int(np.prod(e["shape"]))
            g["bytes"] += e["data_offsets"][1] - e["data_offsets"][0]
            if ref[name].is_floating_point():
                g["ref"].append(ref[name].double().flatten())
                g["got"].append(got[name].double().flatten())
    print(f"\n{'stored as':16s} {'tensors':>7s} {'weights':>10s} {'bytes':>10s} {'bits/w':>7s} {'weight SNR dB':>14s}")
    for label, g in groups.items():
        snr = fidelity.weight_snr_db(torch.cat(g["ref"]), torch.cat(g["got"])) if g["ref"] else float("inf")
        print(f"{label:16s} {g['tensors']:>7d} {g['weights']:>10,d} {g['bytes']:>10,d} {8 * g['bytes'] / g['weights']:>7.3f} {snr:>14.2f}")

    _, mean, std = nets.CLASSIFIERS[args.model]
    print("\ncropping the bundled photos ...", flush=True)
    x = photos.batch(mean, std, per_photo=args.photos_per_image)
    outputs: dict = {"original": [], "compressed": []}
    with torch.no_grad(), tqdm(total=2 * len(x), unit=" crops", desc="running both networks", file=sys.stderr) as bar:
        for chunk in torch.split(x, 16):
            for key, net in (("original", original), ("compressed", compressed)):
                outputs[key].append(net(chunk))
                bar.update(len(chunk))
    agreement = fidelity.classifier_agreement(torch.cat(outputs["original"]), torch.cat(outputs["compressed"]))
    print(
        f"\nfidelity on {agreement['inputs']} crops of real photos: "
        f"top-1 agreement {100 * agreement['top1_agreement']:.1f} %, "
        f"top-5 agreement {100 * agreement['top5_agreement']:.1f} %, "
        f"KL divergence {agreement['kl_divergence']:.4f}"
    )
    print(f"files in {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
