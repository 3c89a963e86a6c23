"""Output checks with built-in probe inputs, and the smallest file that keeps them."""

import json
import os

import numpy as np
import pytest

import pyweightvc as wvc
from pyweightvc import cli, fidelity

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def mlp_onnx(weights, image_input=False):
    """x -> relu(x W1 + b1) W2 + b2 as an ONNX graph (batch dimension symbolic)."""
    (w1, b1), (w2, b2) = weights
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2))]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["y0"]),
        helper.make_node("Add", ["y0", "b2"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", w1.shape[0]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", w2.shape[1]])
    model = helper.make_model(helper.make_graph(nodes, "mlp", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def random_mlp(seed=0, n_in=64, hidden=256, n_out=10):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal((n_in, hidden)) * 0.1, np.zeros(hidden)), (rng.standard_normal((hidden, n_out)) * 0.1, np.zeros(n_out)))


def test_probe_inputs_follow_the_graph_and_are_deterministic():
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, 32, 40])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", "length"])
    mask = helper.make_tensor_value_info("mask", TensorProto.BOOL, [2, 5])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["out"])], "g", [image, ids, mask], [out])
    model = helper.make_model(graph)
    description, sets = fidelity.onnx_probe_inputs(model, n=3, seed=5)
    assert len(sets) == 3 and "image-like" in description and "token ids" in description and "seed 5" in description
    first = sets[0]
    assert first["image"].shape == (1, 3, 32, 40) and first["image"].dtype == np.float32
    assert 0 <= first["image"].min() and first["image"].max() <= 1 and first["image"].std() > 0.05
    assert first["ids"].shape == (1, fidelity.UNKNOWN_DIM) and first["ids"].dtype == np.int64
    assert first["mask"].shape == (2, 5) and first["mask"].dtype == np.bool_
    again = fidelity.onnx_probe_inputs(model, n=3, seed=5)[1]
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(sets, again) for k in a)
    other = fidelity.onnx_probe_inputs(model, n=3, seed=6)[1]
    assert not np.array_equal(sets[0]["image"], other[0]["image"])


def test_probe_sentences_are_real_and_fixed():
    sentences = fidelity.probe_sentences(40)
    assert len(sentences) == 40 and len(set(sentences)) == 40
    assert all(s[0].isupper() and s.endswith(".") and len(s.split()) >= 4 for s in sentences)
    assert fidelity.probe_sentences(40) == sentences


def test_onnx_output_check_sees_coarse_weights(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(mlp_onnx(random_mlp()), str(src))
    from pyweightvc import onnx as wvc_onnx

    fine, coarse = tmp_path / "fine.wvc", tmp_path / "coarse.wvc"
    wvc_onnx.compress(str(src), str(fine), policy=wvc.Policy(lossless=True))
    wvc_onnx.compress(str(src), str(coarse), policy=wvc.Policy(44))
    good, bad = fidelity.check_onnx(str(src), str(fine)), fidelity.check_onnx(str(src), str(coarse))
    assert good.fidelity > 0.999 and good.outputs["y"]["top1_agreement"] > 0.9
    assert bad.fidelity < good.fidelity and bad.outputs["y"]["relative_error"] > good.outputs["y"]["relative_error"]
    assert "normal values" in good.probe and good.inputs == fidelity.PROBE_INPUTS


def test_check_against_the_source(tmp_path, capsys):
    src = tmp_path / "m.onnx"
    onnx.save(mlp_onnx(random_mlp()), str(src))
    out = tmp_path / "m.wvc"
    assert cli.main(["compress", str(src), "-o", str(out), "--qp", "20", "--no-check"]) == 0
    capsys.readouterr()
    assert cli.main(["check", str(out), "--against", str(src), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and 0.9 < report["output_check"]["fidelity"] <= 1.0
    assert report["output_check"]["probe"].startswith("probe inputs")


def test_a_plain_checkpoint_gets_weight_snr(tmp_path, capsys):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    save_file({"w": rng.standard_normal((64, 128)).astype(np.float32), "b": np.zeros(64, np.float32)}, str(tmp_path / "m.safetensors"))
    assert cli.main(["compress", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "m.wvc"), "--qp", "30"]) == 0
    text = capsys.readouterr().out
    assert "no output check possible" in text and "lowest" in text and "(w)" in text


def trained_digits_mlp():
    """An MLP trained on scikit-learn's digits (a real task), as ONNX, with its test split."""
    datasets = pytest.importorskip("sklearn.datasets")
    neural = pytest.importorskip("sklearn.neural_network")
    x, y = datasets.load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    clf = neural.MLPClassifier(hidden_layer_sizes=(256,), max_iter=60, random_state=0).fit(x[:1400], y[:1400])
    weights = list(zip(clf.coefs_, clf.intercepts_))
    return mlp_onnx(weights), x[1400:], y[1400:]


def test_target_fidelity_search_meets_its_bar(tmp_path):
    model, x, y = trained_digits_mlp()
    src, path = tmp_path / "digits.onnx", tmp_path / "digits.wvc"
    onnx.save(model, str(src))
    result = fidelity.compress_onnx_for_fidelity(str(src), str(path), 0.999)
    assert result.check.fidelity >= 0.999
    assert result.search.score >= 0.999 and len(result.search.evaluations) >= 3
    with wvc.safe_open(str(path)) as f:
        assert f.metadata()["target_fidelity"] == "0.999"
    # given the data-free default, files of exact levels are searched beside HEVC's, and the
    # smallest passing file of either kind is the one written
    evaluations = result.search.evaluations
    assert any(e.levels for e in evaluations) and any(not e.levels for e in evaluations)
    passing = [e.bytes for e in evaluations if result.search.baseline - e.score <= 1 - 0.999]
    assert os.path.getsize(path) == min(passing)
    hevc_only = fidelity.compress_onnx_for_fidelity(str(src), str(tmp_path / "hevc.wvc"), 0.999, policy=wvc.Policy(24))
    assert not any(e.levels for e in hevc_only.search.evaluations)
    assert os.path.getsize(path) <= os.path.getsize(tmp_path / "hevc.wvc")
    from pyweightvc import onnx as wvc_onnx

    lossless = tmp_path / "lossless.wvc"
    wvc_onnx.compress(str(src), str(lossless), policy=wvc.Policy(lossless=True))
    assert os.path.getsize(path) < os.path.getsize(lossless)
    # the task itself: test accuracy of the rebuilt model stays with the original's
    import onnxruntime

    def accuracy(m):
        session = onnxruntime.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return float((session.run(None, {"x": x})[0].argmax(1) == y).mean())

    assert accuracy(wvc_onnx.decompress(str(path))) >= accuracy(model) - 0.01
    with pytest.raises(ValueError, match=r"target_fidelity must be a cosine in \(0, 1\]"):
        fidelity.compress_onnx_for_fidelity(str(src), str(path), 1.5)


def tiny_transformers_folder(folder):
    """A small BERT with a word-level vocabulary, saved as a Hugging Face folder
    (config.json, model.safetensors, tokenizer files): built here, nothing downloaded."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    words = sorted({w.strip(".,()").lower() for s in fidelity.probe_sentences() for w in s.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w in words if w][:400]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(os.path.join(folder, "vocab.txt"))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        max_position_embeddings=128,
    )
    transformers.BertModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_folder_output_check_and_target_fidelity(tmp_path, capsys):
    src = tiny_transformers_folder(str(tmp_path / "bert"))
    out = str(tmp_path / "bert_wvc")
    assert cli.main(["compress", src, "-o", out, "--qp", "30"]) == 0
    text = capsys.readouterr().out
    assert "output check on 64 built-in sentences" in text and "cosine to the original" in text
    coarse = fidelity.check_folder(src, out)
    assert 0.5 < coarse.fidelity < 1.0
    best = str(tmp_path / "bert_best")
    result = fidelity.compress_folder_for_fidelity(src, best, 0.9995)
    assert result.check.fidelity >= 0.9995 > coarse.fidelity
    assert sorted(os.listdir(best)) == sorted(os.listdir(out))
    assert cli.main(["check", best, "--against", src]) == 0
    assert "cosine to the original" in capsys.readouterr().out
