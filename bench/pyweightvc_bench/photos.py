"""Real photographs for fidelity checks of the image classifiers.

No ImageNet validation set can be had offline; the photos bundled with
scikit-image and scikit-learn, with crops, flips and scales, give a few hundred
real inputs. Fidelity is then agreement with the uncompressed model.
"""

from __future__ import annotations

import numpy as np

SKIMAGE_PHOTOS = [
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "camera",
    "coins",
    "moon",
    "horse",
    "clock",
    "brick",
    "grass",
    "gravel",
]


def photos() -> list[np.ndarray]:
    """RGB uint8 photos (H, W, 3) that ship inside scikit-image and scikit-learn."""
    try:
        import skimage.data
        from sklearn.datasets import load_sample_images
    except ImportError as exc:
        raise ModuleNotFoundError("the photo set needs scikit-image and scikit-learn: pip install scikit-image scikit-learn") from exc
    images = []
    for name in SKIMAGE_PHOTOS:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        images.append(img[..., :3].astype(np.uint8))
    left, right, _ = skimage.data.stereo_motorcycle()
    images += [left, right]
    images += [np.asarray(i) for i in load_sample_images().images]
    return images


def _resize(img, size: int):
    """Resize so the shorter side is `size` (bilinear, antialiased)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)[None].float() / 255
    h, w = t.shape[-2:]
    scale = size / min(h, w)
    return F.interpolate(
        t, size=(max(size, round(h * scale)), max(size, round(w * scale))), mode="bilinear", align_corners=False, antialias=True
    )[0]


# shorter side before cropping, for 224-pixel crops; other crop sizes scale them
RESIZE_SCALES = (256, 320, 400)


def batch(mean, std, per_photo: int = 16, size: int = 224, seed: int = 0):
    """A float tensor (N, 3, size, size) of normalised crops: per photo, centre and
    random crops with the shorter side resized to 256, 320 and 400 pixels (for
    size 224; in proportion for other sizes), half of them mirrored."""
    import torch

    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    scales = [round(s * size / 224) for s in RESIZE_SCALES]
    rng = np.random.default_rng(seed)
    crops = []
    for img in photos():
        for k in range(per_photo):
            resized = _resize(img, scales[k % 3])
            h, w = resized.shape[-2:]
            if k == 0:
                y, x = (h - size) // 2, (w - size) // 2
            else:
                y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            crop = resized[:, y : y + size, x : x + size]
            if k % 2:
                crop = crop.flip(-1)
            crops.append(crop)
    x = torch.stack(crops)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s
