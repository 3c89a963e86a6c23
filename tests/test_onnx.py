"""ONNX models in, ONNX models out, run in ONNX Runtime."""

import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX support needs onnx")
ort = pytest.importorskip("onnxruntime", reason="ONNX checks need onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import pyweightvc as wvc  # noqa: E402
from pyweightvc import onnx as wvc_onnx  # noqa: E402


def small_model(opset=17):
    """input (N, 64) -> MatMul W1 (64x128) -> Add b1 -> Relu -> Gemm W2 (transB) -> Add const
    plus a Conv branch on a (N, 4, 8, 8) input."""
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((64, 128)) * 0.1).astype(np.float32)
    b1 = (rng.standard_normal(128) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((40, 128)) * 0.1).astype(np.float32)
    big_const = (rng.standard_normal((40, 40)) * 0.1).astype(np.float32)
    kernel = (rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h0"], name="mm"),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("Gemm", ["h2", "W2"], ["h3"], transB=1, alpha=1.0, name="gemm"),
        helper.make_node("Constant", [], ["C"], value=numpy_helper.from_array(big_const, "C_value")),
        helper.make_node("MatMul", ["h3", "C"], ["y"]),
        helper.make_node("Conv", ["img", "K"], ["z"], pads=[1, 1, 1, 1], name="conv"),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64]),
            helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 8, 8, 8]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 40]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 16, 8, 8]),
        ],
        [
            numpy_helper.from_array(w1, "W1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "W2"),
            numpy_helper.from_array(kernel, "K"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


FEEDS = {
    "x": np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32),
    "img": np.random.default_rng(2).standard_normal((5, 8, 8, 8)).astype(np.float32),
}


def test_float_round_trip_keeps_the_graph(tmp_path):
    model = small_model()
    path = str(tmp_path / "m.wvc")
    wvc_onnx.compress(model, path, qp=12)
    back = wvc_onnx.decompress(path, format="float")
    onnx.checker.check_model(back, full_check=True)
    assert [(n.op_type, n.name, list(n.input), list(n.output)) for n in back.graph.node] == [
        (n.op_type, n.name, list(n.input), list(n.output)) for n in model.graph.node
    ]
    assert [a for n in back.graph.node for a in n.attribute if a.name != "value"] == [
        a for n in model.graph.node for a in n.attribute if a.name != "value"
    ]
    assert back.opset_import == model.opset_import and back.producer_name == "tests"
    init = {t.name: t for t in back.graph.initializer}
    orig = {t.name: t for t in model.graph.initializer}
    assert init["b1"] == orig["b1"]  # small tensors are kept verbatim
    with wvc.safe_open(path) as f:
        assert f.entry("W1")["storage"] == "hevc" and f.entry("K")["storage"] == "int8"
        assert f.entry("__constant__:C")["storage"] == "hevc"
        np.testing.assert_array_equal(numpy_helper.to_array(init["W1"]), f.get_tensor("W1"))
    ref, got = run(model, FEEDS), run(back, FEEDS)
    for a, b in zip(ref, got):
        assert np.abs(a - b).max() < 0.05 * np.abs(a).max()


@pytest.mark.parametrize("qp", [24, None])  # None: the data-free default, matrices as exact levels
def test_qdq_keeps_weights_int8_and_runs(tmp_path, qp):
    model = small_model()
    path = str(tmp_path / "m.wvc")
    wvc_onnx.compress(model, path, qp=qp)
    qdq = wvc_onnx.decompress(path, format="qdq")
    onnx.checker.check_model(qdq, full_check=True)
    init = {t.name: t for t in qdq.graph.initializer}
    assert init["W1_quantized"].data_type == TensorProto.INT8
    assert init["K_quantized"].data_type == TensorProto.INT8
    assert "W1" not in init and "b1" in init
    dq = [n for n in qdq.graph.node if n.op_type == "DequantizeLinear"]
    assert sorted(n.output[0] for n in dq) == ["K", "W1", "W2"]
    with wvc.safe_open(path) as f:
        np.testing.assert_array_equal(numpy_helper.to_array(init["W1_quantized"]), f.get_int8("W1").levels)
    for a, b in zip(run(wvc_onnx.decompress(path, format="float"), FEEDS), run(qdq, FEEDS)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    p = tmp_path / "q.onnx"
    wvc_onnx.save(qdq, str(p))
    assert p.stat().st_size < 0.5 * len(model.SerializeToString())


def test_qdq_converts_old_opsets(tmp_path):
    model = small_model(opset=12)
    path = str(tmp_path / "m.wvc")
    wvc_onnx.compress(model, path, qp=24)
    qdq = wvc_onnx.decompress(path, format="qdq")
    assert max(o.version for o in qdq.opset_import if o.domain == "") == 13
    onnx.checker.check_model(qdq)
    run(qdq, FEEDS)


def test_external_data_model(tmp_path):
    model = small_model()
    src = tmp_path / "ext.onnx"
    # a fresh copy: save_model points the model it is given at the side file
    onnx.save_model(
        small_model(), str(src), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.onnx.data", size_threshold=0
    )
    assert (tmp_path / "ext.onnx.data").stat().st_size > 30000
    wvc_onnx.compress(str(src), str(tmp_path / "m.wvc"), qp=12)
    back = wvc_onnx.decompress(str(tmp_path / "m.wvc"))
    for a, b in zip(run(model, FEEDS), run(back, FEEDS)):
        assert np.abs(a - b).max() < 0.05 * np.abs(a).max()


def test_bad_models(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01 definitely not protobuf \xff\xff")
    with pytest.raises(ValueError, match="not an ONNX model"):
        wvc_onnx.compress(str(bad), str(tmp_path / "m.wvc"))
    model = small_model()
    del model.graph.initializer[0]  # W1 is now referenced but missing
    with pytest.raises(ValueError, match=r"node 'mm' \(MatMul\) uses \['W1'\]"):
        wvc_onnx.compress(model, str(tmp_path / "m.wvc"))
    wvc.save_file({"a": np.zeros(3, np.float32)}, str(tmp_path / "plain.wvc"))
    with pytest.raises(ValueError, match="not a .wvc file made from an ONNX model"):
        wvc_onnx.decompress(str(tmp_path / "plain.wvc"))
    assert not (tmp_path / "m.wvc").exists()


def test_command(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save_model(small_model(), str(src))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pyweightvc", *map(str, args)], capture_output=True, text=True)

    assert cli("compress", src, "-o", tmp_path / "m.wvc", "--qp", 20).returncode == 0
    r = cli("decompress", tmp_path / "m.wvc", "-o", tmp_path / "q.onnx", "--format", "qdq")
    assert r.returncode == 0, r.stderr
    onnx.checker.check_model(onnx.load(str(tmp_path / "q.onnx")))
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    r = cli("compress", tmp_path / "junk.onnx", "-o", tmp_path / "j.wvc")
    assert r.returncode == 2 and "not an ONNX model" in r.stderr
    assert not os.path.exists(tmp_path / "j.wvc")


@pytest.mark.slow
def test_ddddocr_reads_as_well_after_compression(tmp_path):
    pytest.importorskip("ddddocr", reason="the real OCR model ships in ddddocr")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import onnx_bench

    inputs = onnx_bench.ocr_inputs(60)
    src = onnx_bench.ddddocr_model()
    base, _ = onnx_bench.run_ocr(src, inputs, repeats=1)
    wvc_onnx.compress(src, str(tmp_path / "d.wvc"), qp=24)
    for fmt in ("float", "qdq"):
        out = str(tmp_path / f"d-{fmt}.onnx")
        wvc_onnx.save(wvc_onnx.decompress(str(tmp_path / "d.wvc"), format=fmt), out)
        onnx.checker.check_model(out)
        exact, _ = onnx_bench.run_ocr(out, inputs, repeats=1)
        assert base >= 0.95 and exact >= base - 0.05, (fmt, base, exact)


def test_qdq_exports_rotated_weights_as_floats(tmp_path):
    model = small_model()
    path = str(tmp_path / "m.wvc")
    wvc_onnx.compress(model, path, policy=wvc.Policy(20, rotate=True))
    with wvc.safe_open(path) as f:
        assert f.entry("W1")["rotate"] is True and f.get_int8("W1").rotation is not None
    qdq = wvc_onnx.decompress(path, format="qdq")
    onnx.checker.check_model(qdq, full_check=True)
    dq = [n for n in qdq.graph.node if n.op_type == "DequantizeLinear"]
    assert [n.output[0] for n in dq] == ["K"]  # the conv kernel is not rotated: int8 as before
    for a, b in zip(run(wvc_onnx.decompress(path, format="float"), FEEDS), run(qdq, FEEDS)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _rewrite_wvc(src, dst, edit):
    """A .wvc file with its tensors and metadata edited by edit(tensors, metadata), written as a writer would."""
    with wvc.safe_open(str(src)) as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = {
            k: v
            for k, v in f.metadata().items()
            if k not in ("header_crc32", "format", "format_version", "pyweightvc", "x265", "libde265", "policy")
        }
    edit(tensors, meta)
    wvc.save_file(tensors, str(dst), policy=wvc.Policy(24, min_elements=10**9), metadata=meta)  # everything raw


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t, m: t.update({wvc_onnx.MODEL_KEY: np.frombuffer(b"\xff\xff\xff not protobuf", np.uint8)}),
            "is not a serialised ONNX model",
        ),
        (lambda t, m: t.update({wvc_onnx.MODEL_KEY: np.zeros(3, np.float32)}), "expected raw uint8 bytes"),
        (lambda t, m: m.update(onnx_tensors="[" * 100 + "]" * 100), "nests 100 deep"),
        (lambda t, m: m.update(onnx_tensors='[["W1", "initializer"]]'), "malformed"),
        (lambda t, m: m.update(onnx_tensors='[["W1", "initializer", "nope"]]'), "no float initializer 'nope'"),
        (lambda t, m: m.update(onnx_tensors='[["zz", "initializer", "W1"]]'), "no tensor 'zz'"),
        (lambda t, m: m.update(onnx_tensors='[["W1", "initializer", "W1"], ["W1", "initializer", "W1"]]'), "listed twice"),
        (lambda t, m: t.update(W1=np.zeros((3, 3), np.float32)), "shape \\[3, 3\\]"),
    ],
)
def test_hostile_onnx_files(tmp_path, edit, message):
    """Only pyweightvc's errors come out of decompress for any file content (issue 17)."""
    wvc_onnx.compress(small_model(), str(tmp_path / "m.wvc"), qp=24)
    _rewrite_wvc(tmp_path / "m.wvc", tmp_path / "bad.wvc", edit)
    with pytest.raises(wvc.ContainerError, match=message):
        wvc_onnx.decompress(str(tmp_path / "bad.wvc"))


def lstm_model(hidden=32, inputs=24, directions=2):
    """A bidirectional LSTM whose W has a few outlier weights in a few gate rows (as
    trained LSTMs' do): with one scale per direction they coarsen every row."""
    rng = np.random.default_rng(4)
    row_scale = np.geomspace(0.02, 0.2, 4 * hidden)[rng.permutation(4 * hidden)][None, :, None]
    w = (rng.standard_normal((directions, 4 * hidden, inputs)) * row_scale).astype(np.float32)
    w[:, :3, :2] = 3.0
    r = (rng.standard_normal((directions, 4 * hidden, hidden)) * row_scale).astype(np.float32)
    b = (rng.standard_normal((directions, 8 * hidden)) * 0.1).astype(np.float32)
    node = helper.make_node("LSTM", ["seq", "W", "R", "B"], ["all", "last"], hidden_size=hidden, direction="bidirectional")
    graph = helper.make_graph(
        [node],
        "lstm",
        [helper.make_tensor_value_info("seq", TensorProto.FLOAT, [7, 3, inputs])],
        [
            helper.make_tensor_value_info("all", TensorProto.FLOAT, [7, directions, 3, hidden]),
            helper.make_tensor_value_info("last", TensorProto.FLOAT, [directions, 3, hidden]),
        ],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, w


def test_recurrent_weights_get_a_scale_per_gate_row(tmp_path):
    model, w = lstm_model()
    path = str(tmp_path / "m.wvc")
    wvc_onnx.compress(model, path)
    with wvc.safe_open(path) as f:
        assert f.entry("W")["shape"] == [2 * 128, 24] and f.get_int8("W").scale.size == 2 * 128
        assert "B" not in f.keys()  # the bias is a vector: kept raw in the graph
        stored = f.get_tensor("W").reshape(w.shape)

    # the default's weight SNR, far above the 8-bit levels of one scale per direction
    def snr(x):
        return 10 * np.log10((w.astype(np.float64) ** 2).sum() / ((w - x) ** 2).sum())

    per_direction = snr(wvc.dequantize(*wvc.quantize(w, per_channel=True)))
    assert snr(stored) >= wvc.DEFAULT_SNR_DB - 0.1 > per_direction + 5
    feeds = {"seq": np.random.default_rng(5).standard_normal((7, 3, 24)).astype(np.float32)}
    ref = run(model, feeds)[0]
    for format in ("float", "qdq"):
        back = wvc_onnx.decompress(path, format=format)
        onnx.checker.check_model(back)
        got = run(back, feeds)[0]
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=0.02)
