"""Fidelity figures: how close a compressed model stays to the original."""

from __future__ import annotations

import numpy as np


def weight_snr_db(reference, decoded) -> float:
    """Signal-to-noise ratio of decoded weights, in dB (inf when exact)."""
    ref = np.asarray(reference, np.float64)
    err = ((ref - np.asarray(decoded, np.float64)) ** 2).sum()
    return float("inf") if err == 0 else float(10 * np.log10((ref**2).sum() / err))


def classifier_agreement(reference_logits, logits) -> dict:
    """top1: share of inputs where both models' top class is the same; top5: share
    where the reference's top class is among the compressed model's top 5;
    kl: mean KL divergence of the compressed output distribution from the reference."""
    import torch

    ref = torch.as_tensor(reference_logits).double()
    out = torch.as_tensor(logits).double()
    ref_top = ref.argmax(1)
    top1 = (out.argmax(1) == ref_top).double().mean().item()
    top5 = (out.topk(5, dim=1).indices == ref_top[:, None]).any(1).double().mean().item()
    p_log = ref.log_softmax(1)
    kl = (p_log.exp() * (p_log - out.log_softmax(1))).sum(1).mean().item()
    return {"top1_agreement": top1, "top5_agreement": top5, "kl_divergence": kl, "inputs": int(ref.shape[0])}


def embedding_agreement(reference, embeddings, k: int = 10) -> dict:
    """cosine: mean cosine similarity of each embedding with its reference (and
    cosine_worst: the lowest);
    nn_agreement: share of items whose nearest neighbour (among the others) is the
    same; topk_overlap: mean overlap of the k nearest neighbours."""
    a = np.asarray(reference, np.float64)
    b = np.asarray(embeddings, np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cosines = (a * b).sum(1)
    cosine = float(cosines.mean())
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -np.inf)
    np.fill_diagonal(sb, -np.inf)
    nn_a, nn_b = sa.argmax(1), sb.argmax(1)
    ka = np.argsort(-sa, axis=1)[:, :k]
    kb = np.argsort(-sb, axis=1)[:, :k]
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(ka, kb)])
    return {
        "cosine": cosine,
        "cosine_worst": float(cosines.min()),
        "nn_agreement": float((nn_a == nn_b).mean()),
        f"top{k}_overlap": float(overlap),
        "items": int(a.shape[0]),
    }
