"""The PyTorch adapter and the pyweightvc command, on a real pretrained model."""

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch adapter needs torch")

import pyweightvc as wvc  # noqa: E402
from pyweightvc import cli  # noqa: E402
from pyweightvc import torch as wvc_torch  # noqa: E402

BENCH = "the real models come with the benchmark harness, pyweightvc-bench: pip install ./bench"


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3)
        self.bn = torch.nn.BatchNorm2d(16)
        self.fc = torch.nn.Linear(64, 40)
        self.head = torch.nn.Linear(40, 64, bias=False)
        self.head.weight = torch.nn.Parameter(self.fc.weight.detach().T.contiguous())
        self.out = torch.nn.Linear(64, 40, bias=False)
        self.out.weight = self.fc.weight  # tied


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_state_dict_dtypes_shapes_and_order(tmp_path, dtype):
    torch.manual_seed(0)
    model = Tiny().to(dtype)
    sd = model.state_dict()
    path = str(tmp_path / "m.wvc")
    wvc_torch.save_state_dict(sd, path, qp=20)
    back = wvc_torch.load_state_dict(path)
    assert list(back) == list(sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype and back[k].shape == sd[k].shape, k
    torch.testing.assert_close(back["bn.running_var"], sd["bn.running_var"], rtol=0, atol=0)
    assert back["bn.num_batches_tracked"].dtype == torch.int64
    fresh = Tiny().to(dtype)
    fresh.load_state_dict(back, strict=True)
    with wvc.safe_open(path) as f:
        assert f._header["out.weight"]["storage"] == "alias"


def test_save_and_load_model(tmp_path):
    torch.manual_seed(1)
    model = Tiny()
    path = str(tmp_path / "m.wvc")
    wvc_torch.save_model(model, path, qp=24)
    other = wvc_torch.load_model(Tiny(), path)
    err = (other.fc.weight - model.fc.weight).abs().max().item()
    assert 0 < err < model.fc.weight.abs().max().item() / 2
    with pytest.raises(TypeError, match="not a tensor"):
        wvc_torch.save_state_dict({"a": 3}, path)


@pytest.fixture(scope="module")
def nets():
    return pytest.importorskip("pyweightvc_bench.nets", reason=BENCH)


@pytest.fixture(scope="module")
def mobilenet_checkpoint(tmp_path_factory, nets):
    d = tmp_path_factory.mktemp("mnv2")
    src = d / "mobilenet_v2.pth"
    src.write_bytes(open(nets.checkpoint_path("mobilenet_v2"), "rb").read())
    return d, src


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "pyweightvc", *map(str, args)], capture_output=True, text=True)


def test_real_model_through_the_command(mobilenet_checkpoint, nets):
    d, src = mobilenet_checkpoint
    out = d / "m.wvc"
    r = run_cli("compress", src, "-o", out, "--qp", 28, "--override", "classifier.1.bias=storage:int8", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["ratio_vs_fp32"] > 4.5 and summary["file_bytes"] == os.path.getsize(out)
    wvc_torch.load_model(nets.MobileNetV2().eval(), str(out), strict=True)  # every key and shape
    info = run_cli("info", out, "--json")
    assert info.returncode == 0, info.stderr
    rows = {r["tensor"]: r for r in json.loads(info.stdout)["tensors"]}
    assert rows["classifier.1.weight"]["storage"] == "hevc" and rows["classifier.1.weight"]["qp"] == 28
    assert rows["classifier.1.bias"]["storage"] == "int8+zlib"
    assert rows["features.0.1.num_batches_tracked"]["storage"] == "raw"
    text = run_cli("info", out)
    assert "classifier.1.weight" in text.stdout and "smaller than the input (float32" in text.stdout

    back = d / "back.pt"
    r = run_cli("decompress", out, "-o", back)
    assert r.returncode == 0, r.stderr
    sd = torch.load(back, weights_only=True)
    nets.MobileNetV2().load_state_dict(sd, strict=True)
    for k, v in wvc_torch.load_state_dict(str(out)).items():
        assert torch.equal(sd[k], v), k
    st = d / "back.safetensors"
    assert run_cli("decompress", out, "-o", st).returncode == 0
    from safetensors.torch import load_file

    assert set(load_file(str(st))) == set(sd)


def test_compressed_real_model_agrees_with_the_original(mobilenet_checkpoint, nets):
    from pyweightvc_bench import fidelity, photos

    d, src = mobilenet_checkpoint
    out = d / "agree.wvc"
    assert cli.main(["compress", str(src), "-o", str(out), "--qp", "24", "--json"]) == 0
    net = wvc_torch.load_model(nets.MobileNetV2().eval(), str(out))
    ref = nets.pretrained("mobilenet_v2")
    x = photos.batch(*nets.CLASSIFIERS["mobilenet_v2"][1:], per_photo=2)
    with torch.no_grad():
        agreement = fidelity.classifier_agreement(ref(x), net(x))
    # on 40 crops; the 320-crop figures per QP are in docs/benchmarks.md (mobilenet_v2, default rows)
    assert agreement["top1_agreement"] >= 0.8 and agreement["top5_agreement"] >= 0.95, agreement


def test_safetensors_input(tmp_path):
    from safetensors.torch import save_file

    t = {"w": torch.randn(64, 64, dtype=torch.bfloat16), "b": torch.zeros(64)}
    save_file(t, str(tmp_path / "m.safetensors"))
    assert cli.main(["compress", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "m.wvc"), "--json"]) == 0
    back = wvc_torch.load_state_dict(str(tmp_path / "m.wvc"))
    assert back["w"].dtype == torch.bfloat16 and torch.equal(back["b"], t["b"])


def test_nested_checkpoint(tmp_path):
    torch.save({"state_dict": Tiny().state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    r = run_cli("compress", tmp_path / "ckpt.pt", "-o", tmp_path / "m.wvc", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["read"] == "state_dict under key 'state_dict'"


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "make,args,code,message",
    [
        (None, ["compress", "missing.pt", "-o", "x.wvc"], 2, "no such file"),
        (lambda p: p.joinpath("bad.pt").write_bytes(b"not a zip"), ["compress", "bad.pt", "-o", "x.wvc"], 2, "not a PyTorch checkpoint"),
        (lambda p: torch.save({"x": Evil()}, p / "evil.pt"), ["compress", "evil.pt", "-o", "x.wvc"], 2, "pickle that needs arbitrary code"),
        (lambda p: torch.save({"a": 1, "b": "x"}, p / "nd.pt"), ["compress", "nd.pt", "-o", "x.wvc"], 2, "not a state_dict"),
        (
            lambda p: torch.save({"w": torch.zeros(3)}, p / "ok.pt"),
            ["compress", "ok.pt", "-o", "x.wvc", "--override", "w=qpp:3"],
            2,
            "unknown setting",
        ),
        (
            lambda p: torch.save({"w": torch.zeros(3)}, p / "ok.pt"),
            ["compress", "ok.pt", "-o", "x.wvc", "--override", "w"],
            2,
            "expected PATTERN=key:value",
        ),
        (
            lambda p: p.joinpath("pol.json").write_text('{"qpp": 1}') or torch.save({"w": torch.zeros(3)}, p / "ok.pt"),
            ["compress", "ok.pt", "-o", "x.wvc", "--policy", "pol.json"],
            2,
            "unknown keys",
        ),
        (lambda p: p.joinpath("c.wvc").write_bytes(b"\x10" + b"\0" * 7 + b"{}"), ["info", "c.wvc"], 3, "truncated file"),
        (None, ["compress", "x.pt", "-o", "y.wvc", "--qp", "99"], 2, "--qp: must be an integer in 0..51, got 99"),
        (
            lambda p: p.joinpath("notes.pt").write_text("some notes\n"),
            ["compress", "notes.pt", "-o", "x.wvc"],
            2,
            "notes.pt: not a PyTorch checkpoint (neither a zip archive nor a pickle",
        ),
        (lambda p: torch.save({"w": torch.zeros(3)}, p / "ok.pt"), ["compress", "ok.pt", "-o", "x.pt"], 2, "compress writes a .wvc file"),
        (
            lambda p: torch.save({"w": torch.zeros(3)}, p / "ok.pt"),
            ["compress", "ok.pt", "-o", "/proc/x.wvc"],
            5,
            "cannot write /proc/x.wvc",
        ),
        (
            lambda p: torch.save({"w": torch.zeros(3, dtype=torch.complex64)}, p / "c.pt"),
            ["compress", "c.pt", "-o", "x.wvc"],
            2,
            "tensor 'w': unsupported tensor dtype complex64",
        ),
    ],
)
def test_command_errors(tmp_path, make, args, code, message):
    if make:
        make(tmp_path)
    r = subprocess.run([sys.executable, "-m", "pyweightvc", *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert "pwned" not in r.stdout
    assert not (tmp_path / "x.wvc").exists()


def make_sharded_folder(folder, tensors, shards=3):
    """A Hugging Face style folder: shards, their index, and a config file."""
    from safetensors.torch import save_file

    folder.mkdir()
    names = list(tensors)
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({k: tensors[k] for k in part}, str(folder / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in part})
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "config.json").write_text('{"hidden_size": 64}')
    (folder / "sub").mkdir()
    (folder / "sub" / "extra.txt").write_text("kept")
    return weight_map


def test_sharded_folder_round_trip(tmp_path):
    torch.manual_seed(0)
    tensors = {f"layer{i}.weight": torch.randn(64, 128) * 0.05 for i in range(5)}
    tensors.update({f"layer{i}.bias": torch.randn(64) for i in range(5)})
    src = tmp_path / "model"
    weight_map = make_sharded_folder(src, tensors)
    out, back = tmp_path / "model-wvc", tmp_path / "model-back"
    r = run_cli("compress", src, "-o", out, "--qp", 20, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["shards"] == 3
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "model.safetensors.index.json", "pyweightvc.json", "sub"] + [f"model-{i:05d}-of-00003.wvc" for i in (1, 2, 3)]
    )
    r = run_cli("decompress", out, "-o", back)
    assert r.returncode == 0, r.stderr
    assert json.loads((back / "model.safetensors.index.json").read_text())["weight_map"] == weight_map
    assert (back / "sub" / "extra.txt").read_text() == "kept"
    from safetensors import safe_open as st_open

    for fname in set(weight_map.values()):
        with st_open(str(back / fname), framework="pt") as f:
            assert f.metadata() == {"format": "pt"}
            for k in f.keys():
                got, want = f.get_tensor(k), tensors[k]
                assert weight_map[k] == fname and got.shape == want.shape
                if k.endswith("bias"):
                    assert torch.equal(got, want)
                else:
                    assert (got - want).abs().max() < want.abs().max() / 4


@pytest.mark.slow
def test_minilm_folder_round_trip_loads_in_sentence_transformers(tmp_path):
    st = pytest.importorskip("sentence_transformers", reason="MiniLM check needs sentence-transformers")
    import shutil

    pytest.importorskip("pyweightvc_bench", reason=BENCH)
    from pyweightvc_bench import fidelity, models

    os.environ["HF_HUB_OFFLINE"] = "1"
    src = tmp_path / "minilm"
    shutil.copytree(models.minilm_path().parent, src)
    out, back = tmp_path / "minilm-wvc", tmp_path / "minilm-back"
    assert cli.main(["compress", str(src), "-o", str(out), "--qp", "16", "--json"]) == 0
    assert cli.main(["decompress", str(out), "-o", str(back), "--json"]) == 0
    text = [f"sentence number {i} about {w}" for i, w in enumerate(["cats", "compression", "video", "weights"] * 10)]
    ref = st.SentenceTransformer(str(src), device="cpu").encode(text)
    got = st.SentenceTransformer(str(back), device="cpu").encode(text)
    agreement = fidelity.embedding_agreement(ref, got)
    assert agreement["cosine"] > 0.98, agreement
