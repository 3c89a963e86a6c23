"""QP chosen for the user: per-tensor SNR / bits-per-weight targets, whole-model
byte budgets and accuracy-driven search."""

import math
import os

import numpy as np
import pytest

import pyweightvc as wvc
from pyweightvc import rate


def _w(rows=300, cols=500, std=0.02, seed=0):
    return (np.random.default_rng(seed).standard_normal((rows, cols)) * std).astype(np.float32)


def _snr(ref, got):
    ref = ref.astype(np.float64)
    return 10 * math.log10((ref**2).sum() / ((ref - got) ** 2).sum())


@pytest.mark.parametrize("target", [12.0, 20.0, 31.5])
def test_snr_target_is_met_with_the_largest_qp(target):
    w = _w()
    blob, choice = rate.encode_to_target(w, target_snr_db=target, per_channel=True)
    got = wvc.decode(blob)
    assert _snr(w, got) >= target and choice.snr_db == pytest.approx(_snr(w, got))
    assert wvc.read_header(blob).qp == choice.qp
    # one QP more would miss the target: the choice is the cheapest that meets it
    assert _snr(w, wvc.decode(wvc.encode(w, qp=choice.qp + 1, per_channel=True))) < target


@pytest.mark.parametrize("target", [1.0, 3.0, 5.5])
def test_bpw_target_fits_with_the_smallest_qp(target):
    w = _w()
    blob, choice = rate.encode_to_target(w, target_bpw=target, per_channel=True)
    assert 8 * len(blob) / w.size <= target
    assert 8 * len(wvc.encode(w, qp=choice.qp - 1, per_channel=True)) / w.size > target


def test_large_tensors_are_searched_on_a_probe_and_checked_in_full():
    w = _w(4000, 512)
    blob, choice = rate.encode_to_target(w, target_snr_db=20)
    assert all(len(t) == 3 for t in choice.trials) and len(choice.trials) <= 7
    assert _snr(w, wvc.decode(blob)) >= 20


def test_targets_through_encode_and_their_errors():
    w = _w()
    assert _snr(w, wvc.decode(wvc.encode(w, target_snr_db=25))) >= 25
    with pytest.raises(ValueError, match="not both"):
        wvc.encode(w, qp=20, target_snr_db=25)
    with pytest.raises(ValueError, match="exactly one"):
        rate.encode_to_target(w, target_snr_db=20, target_bpw=3)
    with pytest.raises(ValueError, match=r"target_snr_db must be a number in \(0, 200\]"):
        wvc.encode(w, target_snr_db=float("nan"))
    with pytest.raises(rate.Unreachable, match="above what this tensor's 8-bit levels reach"):
        wvc.encode(w, target_snr_db=60)
    with pytest.raises(rate.Unreachable, match="below the smallest this tensor codes to"):
        wvc.encode(w, target_bpw=0.001)


def test_near_qp_0_lossless_wins_when_smaller():
    w = _w()
    blob, choice = rate.encode_to_target(w, target_snr_db=42, per_channel=True)
    assert choice.qp is None and wvc.read_header(blob).lossless
    levels, scale, zp = wvc.quantize(w, per_channel=True)
    np.testing.assert_array_equal(wvc.decode(blob), wvc.dequantize(levels, scale, zp))


def test_policy_targets_are_recorded_in_the_file(tmp_path):
    tensors = {"fc.weight": _w(), "emb.weight": _w(200, 300, 0.1, seed=1), "fc.bias": np.zeros(300, np.float32)}
    path = str(tmp_path / "m.wvc")
    wvc.save_file(tensors, path, policy=wvc.Policy(target_snr_db=18, overrides={"emb.*": {"target_bpw": 2.5}}))
    back = wvc.load_file(path)
    with wvc.safe_open(path) as f:
        fc, emb = f.entry("fc.weight"), f.entry("emb.weight")
    assert fc["target_snr_db"] == 18 and isinstance(fc["qp"], int) and _snr(tensors["fc.weight"], back["fc.weight"]) >= 18
    assert emb["target_bpw"] == 2.5 and emb["data_offsets"][1] - emb["data_offsets"][0] <= 2.5 * 200 * 300 / 8
    with pytest.raises(ValueError, match="give one of qp, lossless, target_snr_db, target_bpw"):
        wvc.Policy(overrides={"x": {"qp": 20, "target_snr_db": 10}})


def test_allocation_spends_bytes_where_they_buy_most():
    """Two tensors, one much more sensitive: it gets the lower QP."""
    a, b = _w(256, 512, seed=1), _w(256, 512, seed=2)
    curves = {"a": rate.tensor_curve(a), "b": rate.tensor_curve(b)}
    budget = float(curves["a"].bytes_at(np.array(26)) + curves["b"].bytes_at(np.array(26)))
    even = rate.allocate_qps(curves, budget)
    assert abs(even["a"] - even["b"]) <= 1
    skewed = rate.allocate_qps(curves, budget, sensitivity={"a": 100.0, "b": 1.0})
    assert skewed["a"] < even["a"] and skewed["b"] > even["b"]
    with pytest.raises(rate.Unreachable, match="need at least about"):
        rate.allocate_qps(curves, 10)


@pytest.mark.parametrize("target", [60_000, 150_000])
def test_file_fits_the_size_target(tmp_path, target):
    tensors = {"a": _w(256, 512, seed=1), "b": _w(128, 1024, 0.1, seed=2), "bias": np.ones(64, np.float32)}
    path = tmp_path / "m.wvc"
    header = rate.save_file_to_size(tensors, str(path), target)
    size = path.stat().st_size
    assert target * 0.9 <= size <= target
    with wvc.safe_open(str(path)) as f:
        assert f.metadata()["target_size_bytes"] == str(target)
        assert f.entry("a")["qp"] == header["a"]["qp"]
    assert sorted(os.listdir(tmp_path)) == ["m.wvc"]


def test_impossible_size_leaves_no_file(tmp_path):
    tensors = {"a": _w(256, 512), "big": np.ones(5000, np.float32)}
    with pytest.raises(ValueError, match="alone take"):
        rate.save_file_to_size(tensors, str(tmp_path / "m.wvc"), 10_000)
    assert os.listdir(tmp_path) == []


def _argmax_model():
    """A linear 'model' (one 64 x 256 matrix) and its score: the agreement of its
    argmax with the original's on 400 fixed inputs."""
    rng = np.random.default_rng(3)
    w = _w(64, 256, 0.05, seed=4)
    x = rng.standard_normal((400, 256)).astype(np.float32)
    ref = (x @ w.T).argmax(1)

    def score(state):
        return float(((x @ np.asarray(state["w"]).T).argmax(1) == ref).mean())

    return w, score


def test_accuracy_search_keeps_the_score(tmp_path):
    w, score = _argmax_model()
    out = rate.save_file_for_accuracy({"w": w}, str(tmp_path / "m.wvc"), score, max_drop=0.05)
    assert out.baseline == 1.0 and out.score >= 0.95
    assert score(wvc.load_file(str(tmp_path / "m.wvc"))) == out.score
    sizes = {round(e.target_snr_db, 3): e.bytes for e in out.evaluations}
    assert (tmp_path / "m.wvc").stat().st_size == min(s for t, s in sizes.items() if t >= out.target_snr_db)
    assert sorted(os.listdir(tmp_path)) == ["m.wvc"]


def test_a_nan_score_never_passes(tmp_path):
    """A compressed model whose score is NaN (an output check of overflowing outputs)
    fails the bar; a NaN score of the uncompressed tensors is refused."""
    w, _ = _argmax_model()
    calls = []

    def nan_when_compressed(state):  # the first call scores the uncompressed tensors
        calls.append(1)
        return 1.0 if len(calls) == 1 else float("nan")

    with pytest.raises(rate.Unreachable):
        rate.save_file_for_accuracy({"w": w}, str(tmp_path / "m.wvc"), nan_when_compressed, max_drop=0.05)
    with pytest.raises(ValueError, match="finite"):
        rate.save_file_for_accuracy({"w": w}, str(tmp_path / "m.wvc"), lambda state: float("nan"), max_drop=0.05)
    assert os.listdir(tmp_path) == []


def test_accuracy_search_chooses_the_step_of_lossless_levels(tmp_path):
    """A lossless plan has no QP: the search picks its quantisation step (min_step),
    from the plan's own max-abs step up, and codes those levels exactly."""
    w, score = _argmax_model()
    policy = wvc.Policy(lossless=True, per_channel=False, overrides={"kind:linear": {"bits": 6}})
    path = str(tmp_path / "m.wvc")
    plain = wvc.save_file({"w": w}, path, policy=policy)["w"]
    plain_bytes = plain["data_offsets"][1] - plain["data_offsets"][0]
    out = rate.save_file_for_accuracy({"w": w}, path, score, max_drop=0.1, policy=policy)
    assert out.score >= 0.9 and score(wvc.load_file(path)) == out.score
    max_abs_step = np.float32(np.abs(w).max() / 31)
    with wvc.safe_open(path) as f:
        entry, levels = f.entry("w"), f.get_int8("w")
        assert entry["lossless"] and entry["bits"] == 6
        assert entry["min_step"] == pytest.approx(max_abs_step * 2 ** (out.qps["w"] / rate.STEPS_PER_OCTAVE))
        assert levels.scale.item() == np.float32(max(entry["min_step"], max_abs_step))
        # lossless: the file holds exactly these levels
        assert np.array_equal(f.get_tensor("w"), levels.levels.astype(np.float32) * levels.scale.item())
    assert out.qps["w"] > 0 and entry["data_offsets"][1] - entry["data_offsets"][0] < plain_bytes
    # the step a knob coarser fails the score, or the search stopped at the coarsest step
    failed = [e for e in out.evaluations if e.score < out.baseline - 0.1]
    assert failed


def test_measured_allocation_spends_the_bytes_where_the_score_feels_them(tmp_path):
    """Two matrices of the same size and statistics; the score feels b's output error
    10x less than a's. One shared SNR target codes both alike; the measured
    allocation gives b the coarser QP and a smaller file that keeps the score."""
    rng = np.random.default_rng(11)
    ref = {"a": _w(64, 256, 0.05, seed=12), "b": _w(64, 256, 0.05, seed=13)}
    x = rng.standard_normal((300, 256)).astype(np.float32)
    out_ref = {k: x @ w.T for k, w in ref.items()}

    def rel_err(state, k):
        return float(((x @ np.asarray(state[k]).T - out_ref[k]) ** 2).sum() / (out_ref[k] ** 2).sum())

    def score(state):
        return 1 - rel_err(state, "a") - 0.1 * rel_err(state, "b")

    path = str(tmp_path / "m.wvc")
    shared = rate.save_file_for_accuracy(ref, path, score, max_drop=0.01)
    shared_bytes = os.path.getsize(path)
    out = rate.save_file_for_accuracy(ref, path, score, max_drop=0.01, allocate="measured")
    assert shared.sensitivity == {} and abs(shared.qps["a"] - shared.qps["b"]) <= 1
    assert out.sensitivity["a"] > 5 * out.sensitivity["b"] > 0
    assert out.qps["b"] > out.qps["a"]
    assert out.score >= out.baseline - 0.01 and score(wvc.load_file(path)) == out.score
    assert os.path.getsize(path) < 0.95 * shared_bytes
    with wvc.safe_open(path) as f:
        assert {k: f.entry(k)["qp"] for k in ref} == out.qps
    measured = [e for e in out.evaluations if e.measured is not None]
    budgets = [e for e in out.evaluations if e.budget is not None]
    assert [e.measured for e in measured] == [["a"], ["b"]] and len(budgets) >= 3
    # an allocation tried once is not written again (bisection steps that land on it reuse its result)
    assert len({(e.bytes, e.score) for e in out.evaluations}) == len(out.evaluations)
    # the file kept is the smallest evaluation that keeps the score
    passing = [e.bytes for e in out.evaluations if e.score >= out.baseline - 0.01]
    assert os.path.getsize(path) == min(passing)
    assert sorted(os.listdir(tmp_path)) == ["m.wvc"]


def test_measured_allocation_groups_and_arguments(tmp_path):
    curve = lambda n: rate.Curve(n, np.array([6.0, 50.0]), np.array([4.0, 0.1]), np.array([30.0, 2.0]))  # noqa: E731
    groups = rate.sensitivity_groups({"small": curve(50), "big": curve(1000), "mid": curve(200), "tiny": curve(20)})
    assert groups == [["big"], ["mid"], ["small", "tiny"]]
    assert rate.sensitivity_groups({"only": curve(10)}) == [["only"]]
    w = _w(64, 256, 0.05, seed=4)
    with pytest.raises(ValueError, match=r"allocate must be \"shared\" .* or \"measured\" .*'equal'"):
        rate.save_file_for_accuracy({"w": w}, str(tmp_path / "m.wvc"), lambda s: 1.0, 0.1, allocate="equal")
    # one group: nothing to trade, the shared search's file
    out = rate.save_file_for_accuracy({"w": w}, str(tmp_path / "m.wvc"), lambda s: 1.0, 0.1, allocate="measured")
    assert out.sensitivity == {} and not any(e.budget is not None for e in out.evaluations)


def test_accuracy_search_raises_the_conv_step_as_far_as_the_score_allows(tmp_path):
    """fc through lossy HEVC, a conv kernel as 8-bit levels whose channels differ 100x in
    range; the score: the fc's argmax agreement and the conv outputs' sign agreement
    (every channel counts alike, so zeroing the narrow ones costs)."""
    rng = np.random.default_rng(7)
    w = _w(64, 256, 0.05, seed=5)
    k = (rng.standard_normal((48, 8, 3, 3)) * np.geomspace(0.002, 0.2, 48)[:, None, None, None]).astype(np.float32)
    x, xk = rng.standard_normal((400, 256)).astype(np.float32), rng.standard_normal((400, 72)).astype(np.float32)
    ref_w, ref_k = (x @ w.T).argmax(1), np.sign(xk @ k.reshape(48, -1).T)

    def score(state):
        kk = np.asarray(state["k"]).reshape(48, -1)
        return float(((x @ np.asarray(state["w"]).T).argmax(1) == ref_w).mean() + (np.sign(xk @ kk.T) == ref_k).mean()) / 2

    path = str(tmp_path / "m.wvc")
    out = rate.save_file_for_accuracy({"w": w, "k": k}, path, score, max_drop=0.05, search_min_step="int8")
    steps = [e for e in out.evaluations if e.min_step > 0]
    assert out.min_step > 0 and out.score >= out.baseline - 0.05 and len(steps) >= 3
    assert score(wvc.load_file(path)) == out.score
    with wvc.safe_open(path) as f:
        assert f.entry("k")["min_step"] == out.min_step and f.entry("k")["storage"] == "int8"
        assert f.get_int8("k").scale.min() == np.float32(out.min_step)
    # the step a quarter octave up failed (or the search hit its ceiling), and the file beats max-abs scales
    failed = [e.min_step for e in steps if e.score < out.baseline - 0.05]
    assert any(s <= out.min_step * 2**0.26 for s in failed) or out.min_step == max(e.min_step for e in steps)
    no_step = min(e.bytes for e in out.evaluations if e.min_step == 0 and e.score >= out.baseline - 0.05)
    assert os.path.getsize(path) < no_step
    assert sorted(os.listdir(tmp_path)) == ["m.wvc"]
    with pytest.raises(ValueError, match="no tensor is stored as int8 levels"):
        rate.save_file_for_accuracy({"w": w}, path, score, max_drop=0.05, search_min_step="int8")
    with pytest.raises(ValueError, match=r"search_min_step must be None, \"int8\" or \"hevc\".*True"):
        rate.save_file_for_accuracy({"w": w, "k": k}, path, score, max_drop=0.05, search_min_step=True)


def test_accuracy_search_floors_the_hevc_steps_of_rotated_matrices(tmp_path):
    """search_min_step="hevc": the floor goes to the lossy HEVC tensors, searched from
    the median row step of the matrix as rotated. Rows 100x apart in range, the score
    the outputs' relative error: the narrow rows' precision is worth little."""
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((96, 512)) * np.geomspace(0.002, 0.2, 96)[:, None]).astype(np.float32)
    x = rng.standard_normal((300, 512)).astype(np.float32)
    ref = x @ w.T

    def score(state):
        return 1 - float(((x @ np.asarray(state["w"]).T - ref) ** 2).sum() / (ref**2).sum())

    path = str(tmp_path / "m.wvc")
    out = rate.save_file_for_accuracy({"w": w}, path, score, max_drop=0.01, policy=wvc.Policy(rotate=True), search_min_step="hevc")
    steps = [e for e in out.evaluations if e.min_step > 0]
    rotated_scales = np.sort(wvc.decode_int8(wvc.encode(w, per_channel=True, rotate=True)).scale)
    assert steps[0].min_step == pytest.approx(rotated_scales[len(rotated_scales) // 2 - 1] / 2, rel=1e-6)
    assert out.min_step > 0 and out.score >= out.baseline - 0.01
    with wvc.safe_open(path) as f:
        assert f.entry("w")["min_step"] == out.min_step and f.entry("w")["rotate"]
    no_step = min(e.bytes for e in out.evaluations if e.min_step == 0 and e.score >= out.baseline - 0.01)
    assert os.path.getsize(path) < no_step
