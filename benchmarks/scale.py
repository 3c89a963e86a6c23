"""Big checkpoints: throughput, CPU utilisation and peak memory of folder compression
on 1 and 2 workers, in one process and on a Dask LocalCluster, and of folder decode;
and, per core, what x265's settings cost against bytes at equal weight SNR.

    python benchmarks/scale.py [--data /work/scale-data] [--sections small,full,core] [--json out.json]

Synthetic Llama-shaped bf16 folders (Gaussian weights, std 0.02), written once to
--data and reused:

- full: embeddings 32000x4096, --layers decoder layers (q, k, v, o 4096x4096; gate,
  up 11008x4096; down 4096x11008; two norms 4096) and an lm_head 32000x4096, in
  two shards: 1.07 B weights with 4 layers. Compressed once, on the default
  executor (a LocalCluster of one worker per core), and decoded.
- small: six 4096x4096 attention matrices in two shards (101 M weights), for the
  comparisons that a 1 B folder would make too long on 2 cores: one process
  (--workers 1, the encoder on every core), LocalCluster of 1 and of 2 workers.

Every run is the command line in a child process; its process tree (the
LocalCluster's workers included) is sampled every 0.2 s: CPU utilisation = CPU
seconds of the tree / (wall seconds x cores); peak RSS = the largest sum of the
tree's resident sets, and the largest single process. Before each run the
1-minute load average must be under --max-load (waits up to --wait seconds before
the first run, 2 minutes before the others) and is recorded with each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

HIDDEN, MLP, VOCAB = 4096, 11008, 32000


def layer_shapes(i: int) -> dict:
    p = f"model.layers.{i}."
    return {
        p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN),
        p + "self_attn.k_proj.weight": (HIDDEN, HIDDEN),
        p + "self_attn.v_proj.weight": (HIDDEN, HIDDEN),
        p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
        p + "mlp.gate_proj.weight": (MLP, HIDDEN),
        p + "mlp.up_proj.weight": (MLP, HIDDEN),
        p + "mlp.down_proj.weight": (HIDDEN, MLP),
        p + "input_layernorm.weight": (HIDDEN,),
        p + "post_attention_layernorm.weight": (HIDDEN,),
    }


def full_shards(layers: int) -> list[dict]:
    first = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    second = {}
    for i in range(layers):
        (first if i < layers // 2 else second).update(layer_shapes(i))
    second.update({"model.norm.weight": (HIDDEN,), "lm_head.weight": (VOCAB, HIDDEN)})
    return [first, second]


def small_shards() -> list[dict]:
    names = [f"model.layers.0.self_attn.{k}_proj.weight" for k in "qkvo"] + [f"model.layers.1.self_attn.{k}_proj.weight" for k in "qk"]
    shapes = {n: (HIDDEN, HIDDEN) for n in names}
    items = list(shapes.items())
    return [dict(items[:3]), dict(items[3:])]


def make_folder(path: str, shards: list[dict]) -> int:
    """Write the folder unless it is there already; returns its weights."""
    import torch
    from safetensors.torch import save_file

    total = sum(int(np.prod(s)) for part in shards for s in part.values())
    done = os.path.join(path, ".complete")
    if os.path.exists(done):
        return total
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    gen = torch.Generator().manual_seed(0)
    weight_map = {}
    for i, part in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name, shape in part.items():
            if len(shape) == 1:
                tensors[name] = torch.ones(shape, dtype=torch.bfloat16)
            else:
                tensors[name] = (torch.randn(shape, generator=gen) * 0.02).to(torch.bfloat16)
        save_file(tensors, os.path.join(path, fname), metadata={"format": "pt"})
        del tensors
        weight_map.update({n: fname for n in part})
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 2 * total}, "weight_map": weight_map}, f)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "hidden_size": HIDDEN, "intermediate_size": MLP, "vocab_size": VOCAB}, f)
    open(done, "w").close()
    return total


_waited = [False]


def wait_quiet(max_load: float, wait: float, wait_next: float = 120) -> float:
    """Wait for a 1-minute load under max_load: up to `wait` s the first time, then
    up to `wait_next` s; returns the load the run starts under."""
    deadline = time.monotonic() + (wait_next if _waited[0] else wait)
    _waited[0] = True
    while True:
        load = os.getloadavg()[0]
        if load < max_load or time.monotonic() > deadline:
            return load
        print(f"  load {load:.2f} >= {max_load}: waiting", file=sys.stderr, flush=True)
        time.sleep(30)


def run_measured(args: list, cores: int) -> dict:
    """Run a command; sample its process tree's CPU time and memory."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    cpu: dict[int, float] = {}
    peak_tree = peak_one = 0
    while proc.poll() is None:
        try:
            tree = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        rss = 0
        for p in tree:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    cpu[p.pid] = t.user + t.system
                    r = p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            rss += r
            peak_one = max(peak_one, r)
        peak_tree = max(peak_tree, rss)
        time.sleep(0.2)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({proc.returncode}): {err[-2000:]}")
    # the root's own final CPU time (children that were waited for are in it too)
    return {
        "wall_s": wall,
        "cpu_s": sum(cpu.values()),
        "cpu_util": sum(cpu.values()) / (wall * cores),
        "peak_rss_tree_mb": peak_tree / 1e6,
        "peak_rss_process_mb": peak_one / 1e6,
        "summary": json.loads(out) if out.strip().startswith("{") else None,
    }


def cli(*args) -> list:
    return [sys.executable, "-m", "pyweightvc", *map(str, args)]


def measure(label: str, command: list, weights: int, cores: int, opts, results: list) -> dict:
    load = wait_quiet(opts.max_load, opts.wait)
    r = run_measured(command, cores)
    r.update(
        label=label,
        weights=weights,
        load_before=load,
        load_after=os.getloadavg()[0],
        weights_per_s=weights / r["wall_s"],
        command=" ".join(map(str, command[1:])),
    )
    results.append(r)
    print(
        f"| {label} | {weights / 1e6:.0f} M | {r['wall_s']:.1f} | {r['weights_per_s'] / 1e6:.2f} | "
        f"{100 * r['cpu_util']:.0f} % | {r['peak_rss_tree_mb']:.0f} | {r['peak_rss_process_mb']:.0f} | "
        f"{load:.2f} |",
        flush=True,
    )
    return r


HEADER = (
    "| run | weights | wall s | M weights/s | CPU (of all cores) | peak RSS MB (tree) | "
    "peak RSS MB (largest process) | load before |\n|---|---|---|---|---|---|---|---|"
)


def folder_section(name: str, shards: list[dict], configs: list, opts, results: list, cores: int) -> None:
    src = os.path.join(opts.data, name)
    weights = make_folder(src, shards)
    print(f"\n### {name}: {weights / 1e9:.3f} B bf16 weights in {len(shards)} shards ({src})\n")
    print(HEADER)
    out = os.path.join(opts.data, name + "-wvc")
    for label, extra in configs:
        shutil.rmtree(out, ignore_errors=True)
        r = measure(
            f"{name}: compress, {label}", cli("compress", src, "-o", out, "--json", "--qp", "24", *extra), weights, cores, opts, results
        )
        s = r["summary"]
        r["ratio_vs_input"], r["ratio_vs_fp32"], r["bits_per_weight"] = (s["ratio_vs_input"], s["ratio_vs_fp32"], s["bits_per_weight"])
    back = os.path.join(opts.data, name + "-back")
    shutil.rmtree(back, ignore_errors=True)
    measure(f"{name}: decompress", cli("decompress", out, "-o", back, "--json"), weights, cores, opts, results)
    shutil.rmtree(back, ignore_errors=True)
    last = [r for r in results if r.get("ratio_vs_input")][-1]
    print(
        f"\n{name}: {last['ratio_vs_input']:.2f}x smaller than the bf16 input, {last['ratio_vs_fp32']:.2f}x vs fp32, "
        f"{last['bits_per_weight']:.3f} bits per weight"
    )


def core_section(opts, results: list) -> None:
    """One core: encode speed and bits per weight at equal weight SNR per setting."""
    from core_bench import bpw_at_snr  # benchmarks/ is on sys.path when this script runs
    from pyweightvc_bench.fidelity import weight_snr_db as snr_db

    import pyweightvc as wvc

    mats = {"gaussian 1024x1024": (np.random.default_rng(0).standard_normal((1024, 1024)) * 0.02).astype(np.float32)}
    try:
        from pyweightvc_bench.models import real_matrices

        for name, w in real_matrices().items():
            if w.ndim == 2 and 0.5e6 <= w.size <= 2.5e6:
                mats[f"{name} {w.shape[0]}x{w.shape[1]}"] = np.ascontiguousarray(w, np.float32)
                break
    except Exception as exc:  # the harness is optional
        print(f"(no real matrix: {exc})", file=sys.stderr)
    variants = [("fast (default)", {}, {})]
    variants += [(p, {"preset": p}, {}) for p in ("ultrafast", "superfast", "veryfast", "faster", "medium")]
    variants += [("fast, rdoq-level 1", {}, {"rdoq-level": "1"}), ("fast, rdoq-level 0", {}, {"rdoq-level": "0"})]
    variants += [("fast, frames 1024", {"max_frame_side": 1024}, {}), ("fast, frames 512", {"max_frame_side": 512}, {})]
    variants += [("veryfast, rdoq-level 1", {"preset": "veryfast"}, {"rdoq-level": "1"})]
    targets = (18.0, 21.0, 24.0)
    qps = (16, 19, 22, 25, 28, 31)
    for mname, w in mats.items():
        load = wait_quiet(opts.max_load, opts.wait)
        print(f"\n### One core, {mname} (load {load:.2f}): bits per weight at equal weight SNR, encode speed at QP 24\n")
        print("| setting | " + " | ".join(f"bpw @ {t:.0f} dB" for t in targets) + " | M weights/s (1 thread) | vs default |")
        print("|---|" + "---|" * (len(targets) + 2))
        base = None
        for label, kw, x265 in variants:
            pts = []
            for qp in qps:
                blob = wvc.Encoder(qp, threads=1, x265_params=x265, **kw).encode(w)
                pts.append((8 * len(blob) / w.size, snr_db(w, wvc.decode(blob))))
            enc = wvc.Encoder(24, threads=1, x265_params=x265, **kw)
            times = []
            for _ in range(3):
                t = time.perf_counter()
                enc.encode(w)
                times.append(time.perf_counter() - t)
            speed = w.size / min(times)
            at = [bpw_at_snr(pts, t) for t in targets]
            base = base or (at, speed)
            print(
                f"| {label} | "
                + " | ".join(f"{b:.3f} ({100 * (b / b0 - 1):+.1f} %)" for b, b0 in zip(at, base[0]))
                + f" | {speed / 1e6:.2f} | {speed / base[1]:.2f}x |",
                flush=True,
            )
            results.append(
                dict(
                    section="core",
                    matrix=mname,
                    setting=label,
                    options={**kw, **x265},
                    points=pts,
                    bpw_at_snr=dict(zip(map(str, targets), at)),
                    weights_per_s=speed,
                    load_before=load,
                )
            )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", default="/work/scale-data", help="where the synthetic folders are written (2.2 GB for the full one, plus its outputs)"
    )
    ap.add_argument("--sections", default="small,full,core")
    ap.add_argument("--layers", type=int, default=4, help="decoder layers of the full folder (4: 1.07 B weights)")
    ap.add_argument("--max-load", type=float, default=0.5, help="wait until the 1-minute load is under this")
    ap.add_argument(
        "--wait", type=float, default=1200, help="seconds to wait for that at most before the first run (2 minutes before each later one)"
    )
    ap.add_argument("--shrink", type=int, default=1, help="divide every dimension by this (a quick check of the script; figures need 1)")
    ap.add_argument("--json", help="write every measurement here")
    opts = ap.parse_args(argv)
    if opts.shrink > 1:
        global HIDDEN, MLP, VOCAB
        HIDDEN, MLP, VOCAB = HIDDEN // opts.shrink, MLP // opts.shrink, VOCAB // opts.shrink
        opts.data = os.path.join(opts.data, f"shrink{opts.shrink}")
    import pyweightvc as wvc

    cores = len(os.sched_getaffinity(0))
    info = wvc.lib_info()
    env = dict(
        python=sys.version.split()[0],
        machine=platform.machine(),
        cores=cores,
        cpu=next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line), "?"),
        memory_gb=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        date=time.strftime("%Y-%m-%d %H:%M"),
        pyweightvc=info["pyweightvc"],
        x265=info["x265"],
        libde265=info["libde265"],
    )
    print(
        f"pyweightvc {env['pyweightvc']}, x265 {env['x265']}, libde265 {env['libde265']}; {cores} cores "
        f"({env['cpu']}), {env['memory_gb']} GB; {env['date']}"
    )
    results: list = []
    sections = opts.sections.split(",")
    os.makedirs(opts.data, exist_ok=True)
    if "small" in sections:
        folder_section(
            "small",
            small_shards(),
            [
                ("one process (--workers 1)", ["--workers", "1"]),
                ("LocalCluster, 1 worker", ["--scheduler", "local", "--workers", "1"]),
                ("LocalCluster, 2 workers", ["--scheduler", "local", "--workers", "2"]),
            ],
            opts,
            results,
            cores,
        )
        small = {r["label"]: r for r in results}
        one = small["small: compress, LocalCluster, 1 worker"]["weights_per_s"]
        two = small["small: compress, LocalCluster, 2 workers"]["weights_per_s"]
        print(f"\nscaling 1 -> 2 workers: {two / one:.2f}x")
    if "full" in sections:
        folder_section("full", full_shards(opts.layers), [("default (LocalCluster, a worker per core)", [])], opts, results, cores)
    if "core" in sections:
        core_section(opts, results)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"environment": env, "results": results}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
