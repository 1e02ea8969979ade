"""Real pictures for the int8 agreement checks: matplotlib's bundled sample images, and seeded crops.

matplotlib ships three raster images (``mpl-data/sample_data``): ``grace_hopper.jpg`` (a
600x512 photo), ``Minduka_Present_Blue_Pack.png`` (a 128x128 clip-art drawing of a gift box,
RGBA) and ``logo2.png`` (matplotlib's logo). The first two are pictures of things ImageNet
has classes for (military uniform, bow tie; carton, packet); the logo is text, left out.
Crops: a seeded box of 35-100% of the picture's area, aspect 3:4 to 4:3, flipped left-right
half the time, resized bilinearly to the model's input.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

import mobilenet_np as mnp

PICTURES = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")


def picture_paths() -> list[str]:
    """The sample pictures' paths (needs matplotlib, which the test extra installs)."""
    from matplotlib import cbook

    return [cbook.get_sample_data(name, asfileobj=False) for name in PICTURES]


def whole(size: int = 224) -> np.ndarray:
    """Each picture whole, loaded as classify loads it: (P, size, size, 3) pixels in [0, 255]."""
    return np.stack([mnp.load_image(path, size) for path in picture_paths()])


def crops(n: int, seed: int, size: int = 224) -> np.ndarray:
    """n seeded crops, taken from the pictures in turn: (n, size, size, 3) pixels in [0, 255]."""
    rng = np.random.default_rng(seed)
    pictures = [Image.open(path).convert("RGB") for path in picture_paths()]  # alpha dropped, as Keras
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        picture = pictures[i % len(pictures)]
        width, height = picture.size
        area = rng.uniform(0.35, 1.0) * width * height
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))  # width / height
        w = int(min(width, round(np.sqrt(area * aspect))))
        h = int(min(height, round(np.sqrt(area / aspect))))
        left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        crop = picture.crop((left, top, left + w, top + h)).resize((size, size), Image.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        out[i] = np.asarray(crop, np.float32)
    return out


def calibration_and_evaluation(n_calibration: int = 16, n_evaluation: int = 62,
                               size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint seeded sets, preprocess_input'd to [-1, 1]: calibration crops (seed 0), and the
    whole pictures plus evaluation crops (seed 1)."""
    calibration = crops(n_calibration, seed=0, size=size)
    evaluation = np.concatenate([whole(size), crops(n_evaluation, seed=1, size=size)])
    return mnp.preprocess_input(calibration), mnp.preprocess_input(evaluation)


def agreement(reference: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """How often a model's ranking agrees with the reference's, over N images: (N, K) each.

    ``top1``: the same best class; ``top5``: the mean overlap of the two top-5 sets (|A & B| / 5);
    ``top1_in_top5``: the reference's best class is among the model's five.
    """
    ref5, our5 = (np.argsort(-s, axis=1, kind="stable")[:, :5] for s in (reference, scores))
    return {"top1": float(np.mean(ref5[:, 0] == our5[:, 0])),
            "top5": float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ref5, our5, strict=True)])),
            "top1_in_top5": float(np.mean([a[0] in b for a, b in zip(ref5, our5, strict=True)]))}
