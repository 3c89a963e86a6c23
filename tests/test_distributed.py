"""Model folders compressed with tensors as tasks (pyweightvc.distributed): the same
bytes in this process, on a Dask LocalCluster and per shard through save_file; a
killed worker; --resume; Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="bf16 shards are written with torch")
distributed = pytest.importorskip("distributed", reason="the Dask engine needs pyweightvc[distributed]")

from pyweightvc import folders  # noqa: E402
from pyweightvc.distributed import LOCAL_CLUSTER_OPTIONS  # noqa: E402
from pyweightvc.policy import Policy  # noqa: E402


def make_folder(path, shards=2, matrices=4, rows=192, cols=256, seed=0):
    """A Hugging Face style folder of bf16 shards: matrices of different sizes (so
    that tasks finish out of order), a norm vector and an int64 buffer per shard."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    path.mkdir()
    weight_map = {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {
            f"layers.{s}.proj{i}.weight": (torch.randn(rows + 64 * i, cols, generator=gen) * 0.02).to(torch.bfloat16)
            for i in range(matrices)
        }
        part[f"layers.{s}.norm.weight"] = torch.ones(cols, dtype=torch.bfloat16)
        part[f"layers.{s}.position_ids"] = torch.arange(cols, dtype=torch.int64)
        save_file(part, str(path / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in part})
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (path / "config.json").write_text('{"hidden_size": 256}')
    return path


def shard_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".wvc"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("models") / "model")


@pytest.fixture(scope="module")
def reference(model, tmp_path_factory):
    """Each shard through compress_checkpoint (load the shard, save_file)."""
    out = tmp_path_factory.mktemp("reference")
    for shard in folders.model_shards(str(model)):
        folders.compress_checkpoint(str(model / shard), str(out / shard.replace(".safetensors", ".wvc")), Policy(20))
    return shard_bytes(out)


def test_same_bytes_in_process_on_a_local_cluster_and_through_save_file(model, reference, tmp_path):
    one = folders.compress_folder(str(model), str(tmp_path / "one"), Policy(20), workers=1)
    assert shard_bytes(tmp_path / "one") == reference
    two = folders.compress_folder(str(model), str(tmp_path / "two"), Policy(20), scheduler="local", workers=2)
    assert shard_bytes(tmp_path / "two") == reference
    assert one.headers == two.headers and one.bytes == two.bytes
    # the rest of the folder as before: other files copied, the manifest last
    assert (tmp_path / "two" / "config.json").exists()
    assert folders.read_manifest(str(tmp_path / "two")) == one.shards


def test_a_killed_worker_is_survived_with_the_same_bytes(tmp_path):
    # tensors that take a while, so that the kill lands while tasks run
    src = make_folder(tmp_path / "big", shards=2, matrices=4, rows=256, cols=512, seed=1)
    ref = tmp_path / "ref"
    folders.compress_folder(str(src), str(ref), Policy(24), workers=1)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=0, **LOCAL_CLUSTER_OPTIONS) as c,
        distributed.Client(c) as client,
    ):
        pids = client.run(os.getpid)
        errors = []

        def run():
            try:
                folders.compress_folder(str(src), str(tmp_path / "out"), Policy(24), client=client)
            except BaseException as exc:  # reported below
                errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                victim = busy[0]
            time.sleep(0.05)
        assert victim is not None, "no task started"
        time.sleep(0.1)  # into the encode
        os.kill(pids[victim], signal.SIGKILL)
        t.join(120)
        assert not t.is_alive() and not errors, errors
        assert pids[victim] not in client.run(os.getpid).values()  # it was killed (the nanny started another)
    assert shard_bytes(tmp_path / "out") == shard_bytes(ref)


def test_resume_keeps_the_shards_that_verify_and_codes_the_others(model, reference, tmp_path):
    out = tmp_path / "out"
    folders.compress_folder(str(model), str(out), Policy(20), workers=1)
    first, second = sorted(reference)
    # a crash after the first shard: no manifest, the second shard missing
    (out / folders.FOLDER_MANIFEST).unlink()
    (out / second).unlink()
    kept = (out / first).stat()
    coded = []
    result = folders.compress_folder(str(model), str(out), Policy(20), workers=1, resume=True, progress=lambda name, n: coded.append(name))
    assert (out / first).stat().st_mtime_ns == kept.st_mtime_ns and (out / first).stat().st_ino == kept.st_ino
    assert shard_bytes(out) == reference and folders.read_manifest(str(out)) == result.shards
    assert len(result.headers) == len(coded)  # progress counts kept tensors too
    # a corrupted shard and a shard coded under other settings are coded again
    data = bytearray((out / first).read_bytes())
    data[-10] ^= 0xFF
    (out / first).write_bytes(bytes(data))
    folders.compress_folder(str(model), str(out), Policy(20), workers=1, resume=True)
    assert shard_bytes(out) == reference
    folders.compress_folder(str(model), str(out), Policy(30), workers=1, resume=True)
    assert shard_bytes(out)[first] != reference[first]


def test_resume_from_the_command_line(model, reference, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "pyweightvc", "compress", str(model), "-o", str(out), "--qp", "20", "--workers", "1", "--json"]
    assert subprocess.run(args, capture_output=True, text=True).returncode == 0
    (out / sorted(reference)[1]).unlink()
    r = subprocess.run(args + ["--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["shards"] == 2 and shard_bytes(out) == reference
    assert summary["ratio_vs_input"] < summary["ratio_vs_fp32"]  # bf16 input: compared with bf16


def test_spread_options_need_a_folder(tmp_path):
    from pyweightvc import cli

    np_path = tmp_path / "x.safetensors"
    from safetensors.numpy import save_file

    save_file({"w": np.zeros((4, 4), np.float32)}, str(np_path))
    for extra in (["--scheduler", "local"], ["--resume"], ["--workers", "2"]):
        assert cli.main(["compress", str(np_path), "-o", str(tmp_path / "x.wvc"), *extra]) == cli.EXIT_BAD_INPUT


@pytest.mark.parametrize("spread", [["--scheduler", "local", "--workers", "2"], ["--workers", "1"]])
def test_ctrl_c_stops_at_once_and_leaves_no_partial_or_temporary_file(tmp_path, spread):
    psutil = pytest.importorskip("psutil")
    src = make_folder(tmp_path / "big", shards=2, matrices=8, rows=1024, cols=1024, seed=2)
    out = tmp_path / "out"
    # a terminal's Ctrl-C: SIGINT to the whole process group
    p = subprocess.Popen(
        # HEVC at a QP: the data-free default (levels) is over before an interrupt lands
        [sys.executable, "-m", "pyweightvc", "compress", str(src), "-o", str(out), "--qp", "24", *spread],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # interrupt once every process is encoding: a worker still importing Dask
        # would print its own traceback
        def busy():
            procs = (
                [psutil.Process(p.pid)]
                if "local" not in spread
                else [
                    c
                    for c in psutil.Process(p.pid).children()
                    if "spawn_main" in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())
                ]
            )
            want = 2 if "local" in spread else 1
            return len(procs) == want and all(sum(c.cpu_times()[:2]) > 4.0 for c in procs)

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None and not busy():
            time.sleep(0.1)
        children = psutil.Process(p.pid).children(recursive=True)
        assert p.poll() is None, "finished before the interrupt: make the folder larger"
        t0 = time.monotonic()
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, err
    assert elapsed < 5, elapsed
    assert "Traceback" not in err, err
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, alive  # the cluster's processes are shut down too
    names = sorted(os.listdir(out)) if out.exists() else []
    assert not [n for n in names if n.startswith(".")], names  # no temporary files
    assert folders.FOLDER_MANIFEST not in names
    for name in names:  # finished shards only, each complete
        assert name.endswith(".wvc")
        with folders.safe_open(str(out / name)) as f:
            assert len(f.keys()) == 10


def test_folder_decodes_in_parallel_into_the_tensors_load_file_gives(model, tmp_path):
    from safetensors import safe_open as st_open

    import pyweightvc as wvc

    out, back = tmp_path / "out", tmp_path / "back"
    folders.compress_folder(str(model), str(out), Policy(20), workers=1)
    count, size = folders.decompress_folder(str(out), str(back), threads=2)
    assert count == 12 and size == sum((back / s).stat().st_size for s in folders.model_shards(str(model)))
    for wvc_name, st_name in folders.read_manifest(str(out)).items():
        want = wvc.load_file(str(out / wvc_name), like="torch")
        with st_open(str(back / st_name), framework="pt") as f:
            assert f.metadata() == {"format": "pt"} and sorted(f.keys()) == sorted(want)
            for k in f.keys():
                got = f.get_tensor(k)
                assert got.dtype == want[k].dtype and torch.equal(got, want[k]), k
    assert not [n for n in os.listdir(back) if n.startswith(".")]
