"""Real trained weights (see the project's models list) through the codec."""

import numpy as np
import pytest

import pyweightvc as wvc
from common import check_encode_decode, snr_db

# the loaders of the real weights are part of the benchmark harness (pip install ./bench)
models = pytest.importorskip("pyweightvc_bench.models", reason="the real weights' loaders are pyweightvc-bench's")


@pytest.fixture(scope="module")
def classifier():
    pytest.importorskip("torch", reason="the MobileNetV2 checkpoint is a torch .pth")
    return models.mobilenet_v2_state_dict()["classifier.1.weight"]


def test_mobilenet_classifier_lossless_is_exact_int8(classifier):
    assert classifier.shape == (1000, 1280) and classifier.dtype == np.float32
    blob = check_encode_decode(classifier, qp=None)
    q, s, z = wvc.quantize(classifier)
    assert snr_db(classifier, wvc.decode(blob)) == pytest.approx(snr_db(classifier, wvc.dequantize(q, s, z)))
    assert 8 * len(blob) / classifier.size < 7.5  # lossless HEVC still beats raw int8


def test_mobilenet_classifier_qp24_snr_and_rate(classifier):
    # Measured with benchmarks/core_bench.py: 17.15 dB at 3.19 bits per weight.
    blob = check_encode_decode(classifier, qp=24)
    snr = snr_db(classifier, wvc.decode(blob))
    bpw = 8 * len(blob) / classifier.size
    assert 16.5 < snr < 18.0, snr
    assert 2.9 < bpw < 3.5, bpw


def test_mobilenet_conv_kernels_round_trip(classifier):
    sd = models.mobilenet_v2_state_dict()
    w = sd["features.18.0.weight"]  # 1280 x 320 x 1 x 1
    check_encode_decode(w, qp=None, per_channel=True)
    dw = sd["features.2.conv.1.0.weight"]  # depthwise 3x3
    check_encode_decode(dw, qp=20)


@pytest.mark.slow
def test_minilm_embeddings(tmp_path):
    emb = models.minilm_tensors()["embeddings.word_embeddings.weight"]
    assert emb.shape == (30522, 384)
    blob = check_encode_decode(emb, qp=18, per_channel=True)
    assert snr_db(emb, wvc.decode(blob)) > 15


def test_snr_target_on_a_probe_takes_the_largest_qp_of_the_whole_tensor():
    """MiniLM's first FFN matrix at 15 dB per channel: its probe rows rejected the QP
    that the whole matrix still meets; the full check must find it."""
    pytest.importorskip("safetensors")
    tensors = models.minilm_tensors()
    w = np.ascontiguousarray(tensors[next(k for k in tensors if k.endswith("layer.0.intermediate.dense.weight"))], np.float32)
    blob, choice = wvc.rate.encode_to_target(w, target_snr_db=15, per_channel=True)
    assert snr_db(w, wvc.decode(blob)) >= 15
    assert snr_db(w, wvc.decode(wvc.encode(w, qp=choice.qp + 1, per_channel=True))) < 15
