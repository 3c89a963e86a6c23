"""The benchmark harness: the quick suite end to end, the peers' coders, the
NNCodec environment, and bad arguments."""

import io
import json
import pickle
import re
import zlib

import numpy as np
import pytest

import pyweightvc as wvc

# the harness is the separate distribution pyweightvc-bench (pip install ./bench)
pytest.importorskip("pyweightvc_bench", reason="the benchmark harness is pyweightvc-bench: pip install ./bench")

from pyweightvc_bench import cli, data, figures, harness, methods, nncodec_peer  # noqa: E402
from pyweightvc_bench.methods import Setting  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    rc = cli.main(["--suite", "quick", "-o", str(out), "--nncodec", "off", "--no-progress"])
    assert rc == 0
    return out, harness.load_results(out / "results.json")


def _row(results, method, variant="default", setting=None):
    rows = [
        r for r in results["rows"] if r["method"] == method and r["variant"] == variant and (setting is None or r["setting"] == setting)
    ]
    assert len(rows) == 1, (method, variant, setting, rows)
    return rows[0]


def test_quick_suite_writes_every_output(quick_run):
    out, results = quick_run
    suite = harness.SUITES["quick"]
    expected = suite.settings("mlp_mnist", has_conv=False)
    assert [(r["method"], r["variant"], r["setting"]) for r in results["rows"]] == [(s.method, s.variant, s.label) for s in expected]
    csv_lines = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + len(expected)
    for name in ("mlp_mnist-rate.png", "mlp_mnist-qp.png", "mlp_mnist-snr.png", "throughput.png"):
        assert (out / "figures" / name).read_bytes()[:8] == PNG_MAGIC
    report = (out / "report.md").read_text()
    assert "## Headline: smallest model at matched fidelity" in report
    assert "## Beside the paper" in report
    assert "](figures/mlp_mnist-rate.png)" in report
    meta = results["meta"]
    assert meta["versions"]["x265"] == wvc.lib_info()["x265"] and meta["machine"]["cores"] >= 1


def test_quick_suite_reports_a_peer_that_did_not_run(quick_run):
    out, results = quick_run
    row = _row(results, "nncodec")
    assert row["status"] == "not run" and "--nncodec off" in row["reason"]
    assert "not run: NNCodec disabled (--nncodec off)" in (out / "report.md").read_text()


def test_quick_suite_measurements_are_consistent(quick_run):
    _, results = quick_run
    subject = results["subjects"]["mlp_mnist"]
    # the network really learned MNIST (trained here, fixed seed)
    assert subject["reference_fidelity"]["accuracy"] > 0.96
    int8, zstd, xz = (_row(results, m) for m in ("int8", "zstd", "xz"))
    lossless = _row(results, "pyweightvc", "lossless")
    assert int8["bytes"] == subject["int8_bytes"]
    # lossless coders of the same levels give the same weights, hence the same SNR and accuracy
    for r in (zstd, xz, lossless):
        assert r["snr_fc_db"] == pytest.approx(int8["snr_fc_db"], abs=1e-9)
        assert r["accuracy"] == int8["accuracy"]
        assert r["bytes"] < int8["bytes"] * 1.05
    q24, q36 = _row(results, "pyweightvc", setting="QP 24"), _row(results, "pyweightvc", setting="QP 36")
    assert q36["bytes"] < q24["bytes"] < int8["bytes"]
    assert q36["snr_fc_db"] < q24["snr_fc_db"] < int8["snr_fc_db"]
    for r in (q24, q36, int8):
        assert r["bytes"] == r["bytes_fc"] + r["bytes_conv"] + r["bytes_other"] + r["bytes_overhead"]
        assert r["ratio_vs_fp32"] == pytest.approx(subject["fp32_bytes"] / r["bytes"])
        assert r["encode_s"] >= 0 and r["decode_s"] >= 0


def test_quick_suite_lets_pyweightvc_choose_the_qps(quick_run):
    out, results = quick_run
    subject = results["subjects"]["mlp_mnist"]
    snr = _row(results, "pyweightvc", "target SNR")
    assert snr["snr_fc_db"] >= 22  # every fc tensor reaches 22 dB, so the group does
    sized, q36 = _row(results, "pyweightvc", "sized"), _row(results, "pyweightvc", setting="QP 36")
    assert 0.9 * q36["bytes"] <= sized["bytes"] <= q36["bytes"]
    search = _row(results, "pyweightvc", "accuracy search")
    assert search["accuracy"] >= subject["match_threshold"]
    assert search["bytes"] < _row(results, "pyweightvc", setting="QP 24")["bytes"]
    # the row says which weight-SNR target the search kept, and the report shows it
    assert re.fullmatch(r"\d+\.\d\d dB", search["chosen"]) and snr["chosen"] == ""
    assert f"matched-fidelity bar ({search['chosen']})" in (out / "report.md").read_text()


def test_quick_suite_rotation_and_low_bit_lossless(quick_run):
    _, results = quick_run
    subject = results["subjects"]["mlp_mnist"]
    q24, rotated = _row(results, "pyweightvc", setting="QP 24"), _row(results, "pyweightvc", "rotated")
    # auto rotation (where a probe says it pays): closer at the same QP
    assert rotated["snr_fc_db"] > q24["snr_fc_db"]
    low = _row(results, "pyweightvc", "low-bit lossless, per-tensor")  # 3 bits, dense samples
    int8 = _row(results, "int8")
    assert low["bpw_fc"] < 1.2 and low["snr_fc_db"] < int8["snr_fc_db"]
    assert low["accuracy"] > subject["reference_fidelity"]["accuracy"] - 0.02


def test_quick_suite_measures_the_simple_alternatives(quick_run):
    _, results = quick_run
    requant, gguf, zstd = _row(results, "requant", "SNR sweep"), _row(results, "gguf", "types"), _row(results, "zstd")
    assert 22 <= requant["snr_fc_db"] < 22.5 and requant["bpw_fc"] < 0.6 * zstd["bpw_fc"]
    # the MLP's first layer has 784 columns, no whole blocks of 32: float16, as llama.cpp leaves it
    assert gguf["setting"] == "Q4_0" and 4.5 < gguf["bpw_fc"] < 16
    # what `pyweightvc compress` does without options: exact levels at DEFAULT_SNR_DB, below int8 + zstd
    free = _row(results, "pyweightvc", "data-free default")
    assert wvc.DEFAULT_SNR_DB <= free["snr_fc_db"] < wvc.DEFAULT_SNR_DB + 0.5 and free["bytes"] < zstd["bytes"]


def test_update_merges_new_rows_into_an_earlier_run(quick_run, tmp_path):
    import shutil

    out, before = quick_run
    work = tmp_path / "run"
    shutil.copytree(out, work)
    rc = cli.main(["--suite", "quick", "-o", str(work), "--nncodec", "off", "--no-progress", "--update", "--variant", "low-bit lossless"])
    assert rc == 0
    after = harness.load_results(work / "results.json")
    keys = [harness._row_key(r) for r in after["rows"]]
    assert sorted(keys) == sorted(harness._row_key(r) for r in before["rows"])  # replaced, nothing lost or doubled
    new = _row(after, "pyweightvc", "low-bit lossless")
    assert new["bytes"] == _row(before, "pyweightvc", "low-bit lossless")["bytes"]  # deterministic
    update = after["meta"]["updates"][-1]
    assert update["variants"] == ["low-bit lossless"] and update["models"] == ["mlp_mnist"]
    assert after["meta"]["seconds"] > before["meta"]["seconds"]
    assert "by `pyweightvc bench --update` (variants: `low-bit lossless`;" in (work / "report.md").read_text()
    assert cli.main(["--suite", "quick", "-o", str(tmp_path / "none"), "--nncodec", "off", "--update"]) == 2


def test_publish_writes_the_report_with_its_figures(quick_run, tmp_path):
    out, _ = quick_run
    target = tmp_path / "docs" / "benchmarks.md"
    target.parent.mkdir()
    harness.publish(out, target)
    text = target.read_text()
    assert "](benchmarks/mlp_mnist-rate.png)" in text
    assert (tmp_path / "docs" / "benchmarks" / "mlp_mnist-rate.png").read_bytes()[:8] == PNG_MAGIC


def test_report_handles_a_lower_is_better_figure(quick_run, tmp_path):
    """The classifiers are judged by KL divergence (0 for fp32, log axes)."""
    import copy

    from pyweightvc_bench import report

    _, results = quick_run
    results = copy.deepcopy(results)
    s = results["subjects"]["mlp_mnist"]
    s.update(
        primary="kl_divergence",
        primary_label="KL divergence",
        higher_is_better=False,
        percent=False,
        match_threshold=0.02,
        metrics=[{"key": "kl_divergence", "label": "KL divergence", "higher_is_better": False, "percent": False}],
    )
    s["reference_fidelity"] = {"kl_divergence": 0.0}
    for r in results["rows"]:
        if r["status"] == "ok":
            r["kl_divergence"] = 1 - r["accuracy"]
    report.write(results, tmp_path / "r.md", tmp_path / "fig")
    text = (tmp_path / "r.md").read_text()
    assert "KL divergence" in text and (tmp_path / "fig" / "mlp_mnist-rate.png").stat().st_size > 1000


def _weights():
    rng = np.random.default_rng(0)
    return {
        "fc.weight": (rng.standard_normal((96, 200)) * 0.05).astype(np.float32),
        "conv.weight": (rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32),
        "fc.bias": rng.standard_normal(96).astype(np.float32),
    }


def test_tensor_groups_follow_the_policy():
    assert methods.tensor_groups(_weights()) == {"fc.weight": "fc", "conv.weight": "conv", "fc.bias": "other"}


@pytest.mark.parametrize("method", ["int8", "zstd", "xz"])
def test_lossless_level_coders_return_the_quantised_weights(method, tmp_path):
    w = _weights()
    groups = methods.tensor_groups(w)
    outcome = methods.run_level_coder(Setting(method, "default", "8-bit levels"), w, groups, str(tmp_path), 1, {})
    for k in ("fc.weight", "conv.weight"):
        levels, scale, zp = wvc.quantize(w[k], per_channel=True)
        np.testing.assert_array_equal(outcome.weights[k], wvc.dequantize(levels, scale, zp))
    np.testing.assert_array_equal(outcome.weights["fc.bias"], w["fc.bias"])
    assert outcome.group_bytes["other"] == w["fc.bias"].nbytes
    if method == "int8":
        assert outcome.group_bytes["fc"] == 96 * 200 + 4 * 96


def test_jpeg_codes_fc_matrices_and_keeps_conv_levels(tmp_path):
    w = _weights()
    groups = methods.tensor_groups(w)
    lo = methods.run_level_coder(Setting("jpeg", "default", "q 30", 30, {"quality": 30}), w, groups, str(tmp_path), 1, {})
    hi = methods.run_level_coder(Setting("jpeg", "default", "q 95", 95, {"quality": 95}), w, groups, str(tmp_path), 1, {})
    assert lo.group_bytes["fc"] < hi.group_bytes["fc"]
    snr = [harness._snr(w, o.weights, ["fc.weight"]) for o in (lo, hi)]
    assert 0 < snr[0] < snr[1]
    levels, scale, zp = wvc.quantize(w["conv.weight"], per_channel=True)
    np.testing.assert_array_equal(lo.weights["conv.weight"], wvc.dequantize(levels, scale, zp))
    assert lo.group_bytes["conv"] == len(zlib.compress(levels.tobytes(), 9)) + scale.nbytes


def test_pyweightvc_variants_map_to_policies(tmp_path):
    shape = (64, 64)
    asym = methods.pyweightvc_policy(Setting("pyweightvc", "asymmetric", "QP 24", 24, {"qp": 24, "symmetric": False}))
    assert not asym.plan("a", "float32", shape).symmetric and not asym.plan("c", "float32", (32, 16, 3, 3)).symmetric
    conv = methods.pyweightvc_policy(Setting("pyweightvc", "conv HEVC", "QP 30", 30, {"qp": 30, "conv_hevc": True}))
    plan = conv.plan("c", "float32", (64, 16, 3, 3))
    assert (plan.storage, plan.qp, plan.lossless) == ("hevc", 30, False)
    tensor = methods.pyweightvc_policy(Setting("pyweightvc", "per-tensor", "QP 24", 24, {"qp": 24, "per_channel": False}))
    assert not tensor.plan("a", "float32", shape).per_channel
    w = _weights()
    outcome = methods.run_pyweightvc(
        Setting("pyweightvc", "conv HEVC", "QP 30", 30, {"qp": 30, "conv_hevc": True}), w, methods.tensor_groups(w), str(tmp_path), 1, {}
    )
    assert outcome.group_bytes["conv"] > 0 and outcome.group_bytes["overhead"] > 0
    assert 0 < harness._snr(w, outcome.weights, ["conv.weight"]) < 40
    assert list(tmp_path.iterdir()) == []  # the .wvc file was removed


def test_nncodec_environment_missing_is_reported(tmp_path):
    with pytest.raises(methods.Unavailable, match="--nncodec setup"):
        nncodec_peer.ensure_venv(tmp_path / "absent", create=False)


def test_nncodec_is_set_up_only_when_asked(quick_run, tmp_path):
    """By default (auto) a missing NNCodec environment is a row that did not run,
    not a 6 GB set-up."""
    import shutil

    assert cli.build_parser().parse_args([]).nncodec == "auto"
    out, _ = quick_run
    work = tmp_path / "run"
    shutil.copytree(out, work)  # the trained MLP is cached there
    absent = tmp_path / "nncodec-venv"
    rc = cli.main(["--suite", "quick", "-o", str(work), "--nncodec-venv", str(absent), "--no-progress", "--update", "--variant", "default"])
    assert rc == 0
    row = _row(harness.load_results(work / "results.json"), "nncodec")
    assert row["status"] == "not run" and "--nncodec setup" in row["reason"], row
    assert not absent.exists()


def test_command_for_pyweightvc(tmp_path, capsys):
    """The entry point pyweightvc's command loads: `pyweightvc bench` is COMMAND."""
    import argparse
    import importlib.metadata as md

    eps = md.entry_points(group="pyweightvc.commands")
    (ep,) = [e for e in eps if e.name == "bench"]
    command = ep.load()
    assert command is cli.COMMAND and isinstance(command.help, str) and command.help
    parser = argparse.ArgumentParser(prog="pyweightvc")
    command.add_arguments(parser.add_subparsers(dest="command").add_parser("bench", help=command.help))
    args = parser.parse_args(["bench", "--models", "resnet9000", "-o", str(tmp_path)])
    assert (args.suite, args.nncodec, args.out) == ("quick", "auto", str(tmp_path))
    assert command.run(args) == 2
    assert "unknown model(s) resnet9000" in capsys.readouterr().err


@pytest.mark.parametrize("size", [224, 240, 260, 300])
def test_photo_crops_at_any_input_size(size):
    from pyweightvc_bench import nets, photos

    n = len(photos.photos())
    x = photos.batch(*nets.CLASSIFIERS["mobilenet_v2"][1:], per_photo=3, size=size)  # every resize scale
    assert tuple(x.shape) == (3 * n, 3, size, size)
    assert bool(x.isfinite().all()) and float(x.std()) > 0.5


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert cli.main(["--models", "resnet9000", "-o", str(tmp_path), "--nncodec", "off"]) == 2
    assert "unknown model(s) resnet9000" in capsys.readouterr().err
    assert cli.main(["--repeats", "0", "-o", str(tmp_path), "--nncodec", "off"]) == 2
    assert "repeats must be >= 1" in capsys.readouterr().err
    assert cli.main(["--variant", "rotatd", "-o", str(tmp_path), "--nncodec", "off"]) == 2
    assert "unknown variant(s) rotatd; known: " in capsys.readouterr().err


def test_mnist_pickle_refuses_anything_but_arrays():
    evil = pickle.dumps(__import__("os").getcwd)  # a GLOBAL the loader must not resolve
    with pytest.raises(pickle.UnpicklingError, match="unexpected object"):
        data._ArraysOnly(io.BytesIO(evil)).load()


def test_datasets_are_real():
    m = data.mnist()
    assert m["x_train"].shape == (50000, 784) and m["x_test"].shape == (10000, 784)
    assert set(np.unique(m["y_test"])) == set(range(10))
    f = data.fashion_mnist()
    assert f["x_train"].shape == (60000, 784) and f["x_test"].dtype == np.float32
    assert 0 <= f["x_test"].min() and f["x_test"].max() <= 1
    assert np.bincount(f["y_test"]).tolist() == [1000] * 10
    assert len(data.sentences()) == 300


@pytest.mark.slow
def test_quick_suite_with_nncodec(tmp_path, monkeypatch):
    """Creates NNCodec's own environment when missing (a few minutes, about 6 GB)
    and runs it on the very tensors of the quick suite."""
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["--suite", "quick", "-o", str(tmp_path), "--nncodec", "setup", "--no-progress"])
    assert rc == 0
    results = json.loads((tmp_path / "results.json").read_text())
    row = _row(results, "nncodec")
    assert row["status"] == "ok", row["reason"]
    assert 0 < row["bytes_fc"] < results["subjects"]["mlp_mnist"]["elements"]["fc"]  # under 8 bits per weight
    assert 10 < row["snr_fc_db"] < 60 and row["accuracy"] > 0.95
    assert not list(tmp_path.glob("*.nnc"))  # NNCodec's bitstream files stay in its work folder


def test_a_search_that_cannot_keep_the_bar_is_a_row_not_a_crash(tmp_path):
    """An accuracy search whose setting cannot reach the bar (rate.Unreachable) is
    reported as not run, with the reason, and the settings after it still run."""
    rng = np.random.default_rng(0)
    weights = {"fc.weight": (rng.standard_normal((64, 128)) * 0.05).astype(np.float32)}
    groups = methods.tensor_groups(weights)
    context = {
        "score": lambda state: -float(np.abs(state["fc.weight"] - weights["fc.weight"]).max()),
        "max_drop": 0.0,
    }  # nothing lossy keeps a zero drop
    settings = [
        Setting("pyweightvc", "accuracy search", "matched-fidelity bar", None, {"accuracy": True}),
        Setting("pyweightvc", "default", "QP 24", 24, {"qp": 24}),
    ]
    out = list(methods.run_settings(settings, weights, groups, str(tmp_path), 1, context, None, "off"))
    assert out[0][1] is None and out[0][2].startswith("unreachable: even the finest settings searched (48 dB per tensor) drop the score")
    assert out[1][1] is not None and out[1][2] is None


def test_every_variant_of_the_full_suite_has_a_figure_style():
    """The figures draw each pyweightvc variant with its own line style and marker."""
    variants = {
        s.variant
        for m in harness.SUITES["full"].models
        for s in harness.SUITES["full"].settings(m, has_conv=m not in ("mlp_mnist", "minilm"))
        if s.method == "pyweightvc"
    }
    assert variants - set(figures.STYLES) == set() and variants - set(figures.VARIANT_MARKERS) == set()


def test_requantised_reaches_its_snr_with_the_coarsest_step(tmp_path):
    """The baseline of issue 16: fc levels of the coarsest step that reaches the SNR,
    zstd -19; conv kernels as 8-bit levels per channel."""
    import zstandard

    w = _weights()
    groups = methods.tensor_groups(w)
    outcomes = {
        t: methods.run_requantised(Setting("requant", "SNR sweep", f"SNR {t} dB", t, {"target_snr_db": t}), w, groups, str(tmp_path), 1, {})
        for t in (12, 24)
    }
    for t, o in outcomes.items():
        snr = harness._snr(w, o.weights, ["fc.weight"])
        assert t <= snr < t + 0.5  # the coarsest step: the SNR lands just above the target
        levels, scale, zp = wvc.quantize(w["conv.weight"], per_channel=True)
        np.testing.assert_array_equal(o.weights["conv.weight"], wvc.dequantize(levels, scale, zp))
        assert o.group_bytes["conv"] == len(zstandard.ZstdCompressor(level=19).compress(levels.tobytes())) + scale.nbytes
    assert outcomes[12].group_bytes["fc"] < 0.7 * outcomes[24].group_bytes["fc"]


def test_gguf_quantises_whole_blocks_and_keeps_other_rows_float16(tmp_path):
    from gguf import GGMLQuantizationType, quants

    rng = np.random.default_rng(1)
    w = {
        "fc.weight": (rng.standard_normal((96, 256)) * 0.05).astype(np.float32),
        **{k: v for k, v in _weights().items() if k != "fc.weight"},
    }
    groups = methods.tensor_groups(w)
    o = methods.run_gguf(Setting("gguf", "types", "Q4_0", 4.5, {"type": "Q4_0"}), w, groups, str(tmp_path), 1, {})
    assert o.group_bytes["fc"] == 96 * 256 * 18 // 32  # 4.5 bits per weight, block scales included
    q4 = GGMLQuantizationType.Q4_0
    np.testing.assert_array_equal(o.weights["fc.weight"], quants.dequantize(quants.quantize(w["fc.weight"], q4), q4))
    # 16 x 3 x 3 = 144 columns: not whole blocks of 32, so float16
    assert o.group_bytes["conv"] == w["conv.weight"].size * 2
    np.testing.assert_array_equal(o.weights["conv.weight"], w["conv.weight"].astype(np.float16).astype(np.float32))
    assert 10 < harness._snr(w, o.weights, ["fc.weight"]) < 30


def test_gguf_missing_is_reported_not_raised(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gguf", None)
    w = _weights()
    out = list(
        methods.run_settings([Setting("gguf", "types", "Q4_0", 4.5, {"type": "Q4_0"})], w, methods.tensor_groups(w), str(tmp_path), 1, {})
    )
    assert out[0][1] is None and "pip install gguf" in out[0][2]


def test_every_method_has_a_name_colour_and_marker():
    from pyweightvc_bench import report

    family = set(methods.RUNNERS) | {"nncodec"}
    assert family == set(report.METHOD_ORDER) == set(report.METHOD_NAMES) == set(figures.COLOURS) == set(figures.MARKERS)
