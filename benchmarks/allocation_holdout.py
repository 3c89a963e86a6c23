"""Does a file chosen against an evaluation set keep its fidelity on inputs the
search never saw? MiniLM, searched on the harness's 300 sentences (cosine >= 0.99),
then judged on the next sentences of the same source.

    python benchmarks/allocation_holdout.py [--cache DIR]

Runs pyweightvc.rate.save_file_for_accuracy twice, with Policy(rotate="auto") as
the harness's `accuracy search, rotated` variants do: allocate="shared" (one
weight-SNR target for every matrix) and allocate="measured" (targets spread by
the score's measured sensitivity to each large matrix). Prints, for each, the
file's bytes, what the search chose, its cosine and nearest-neighbour agreement on
the search's sentences and on the held-out ones (about 360 more first sentences
of standard-library docstrings). About 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from pyweightvc_bench import data, fidelity, subjects

import pyweightvc as wvc
from pyweightvc import rate

SEARCH_SENTENCES = 300  # what the harness evaluates MiniLM on


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pyweightvc-bench-cache")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    subject = subjects.MiniLM(args.cache)
    weights = subject.weights()
    held_out = data.sentences(10_000)[SEARCH_SENTENCES:]
    held_out_reference = subject.embeddings(weights, held_out)
    max_drop = subject.max_drop(subject.evaluate(weights))
    curves: dict = {}  # probe curves shared by both searches
    print(f"search sentences {SEARCH_SENTENCES}, held-out sentences {len(held_out)}, bar cosine >= {subject.match_threshold}")
    with tempfile.TemporaryDirectory() as work:
        for allocate in ("shared", "measured"):
            path = os.path.join(work, f"{allocate}.wvc")
            t = time.perf_counter()
            found = rate.save_file_for_accuracy(
                weights, path, subject.score, max_drop, policy=wvc.Policy(rotate="auto"), curve_cache=curves, allocate=allocate
            )
            seconds = time.perf_counter() - t
            back = wvc.load_file(path)
            held = fidelity.embedding_agreement(held_out_reference, subject.embeddings(back, held_out))
            search = subject.evaluate(back)
            qps = sorted(set(found.qps.values()))
            print(
                f"{allocate:9s} {os.path.getsize(path):>11,d} B  target {found.target_snr_db:.2f} dB, QPs "
                f"{qps[0]}..{qps[-1]}, {len(found.evaluations)} evaluations, {seconds:.0f} s | search set: "
                f"cosine {search['cosine']:.4f}, nn {search['nn_agreement']:.3f} | held out: cosine "
                f"{held['cosine']:.4f}, nn {held['nn_agreement']:.3f}"
            )
            for e in found.evaluations:
                if e.measured is not None:  # the sensitivity measurements: one group alone at the target
                    group = e.measured[0] if len(e.measured) == 1 else f"the other {len(e.measured)} matrices"
                    print(f"    {group} alone at {e.target_snr_db:.2f} dB: score drop {found.baseline - e.score:.5f}")
            if found.sensitivity:
                embeddings = "embeddings.word_embeddings.weight"
                print(
                    f"    QP chosen for {embeddings}: {found.qps[embeddings]}; the others "
                    f"{min(q for n, q in found.qps.items() if n != embeddings)}.."
                    f"{max(q for n, q in found.qps.items() if n != embeddings)}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
