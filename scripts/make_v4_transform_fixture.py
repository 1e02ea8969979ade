"""Write tests/fixtures/v4/transform.npz and data_configs.json: timm's eval transform, recorded.

Run in the side environment of ``make_v4_fixtures.py`` (torch, torchvision, timm):

    /work/venv-torch/bin/python scripts/make_v4_transform_fixture.py

- ``data_configs.json``: for each variant, the data config timm resolves for the checkpoint
  ``weights="imagenet"`` downloads (``timm.data.resolve_model_data_config``: input size,
  crop_pct, interpolation, mean, std), so the tests can check the family records against it.
- ``transform.npz``: two seeded photos (portrait and landscape, smooth so the file stays small)
  and what timm's own eval transform (``timm.data.create_transform(..., is_training=False)``,
  its resize and CenterCrop, before ToTensor) makes of them at 64x64 for crop_pct 0.875 and
  0.95 (the V4 checkpoints' two values) and at 48x64, as uint8 arrays.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import timm
import torchvision.transforms as T
from PIL import Image
from timm.data import create_transform, resolve_model_data_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mobilenet_np.families.v4 import VARIANTS  # noqa: E402
from mobilenet_np.v4_sources import CHECKPOINTS  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "v4"
SIZES = {"064_0.875": ((64, 64), 0.875), "064_0.95": ((64, 64), 0.95),
         "048x064_0.95": ((48, 64), 0.95)}


def photo(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth seeded RGB photo (H, W, 3) uint8: waves, a disc with sharp edges, a little
    noise (quantised coarsely, so that the file stays small)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    disc = ((y - 0.4) ** 2 + (x - 0.55) ** 2 < 0.05) * 90.0
    channels = [120 + 100 * np.sin(6 * x + c) * np.cos(4 * y - c) + disc for c in range(3)]
    noisy = np.stack(channels, -1) + 8 * rng.integers(-1, 2, (height, width, 3))
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def timm_crop(image: np.ndarray, size: tuple[int, int], crop_pct: float) -> np.ndarray:
    """timm's eval transform up to the crop, on a PIL image: its resize (torchvision's Resize
    for a square size, timm's ResizeKeepRatio otherwise), then CenterCrop."""
    transform = create_transform(input_size=(3, *size), crop_pct=crop_pct,
                                 interpolation="bicubic", is_training=False)
    steps = transform.transforms
    assert isinstance(steps[1], T.CenterCrop), steps
    out = T.Compose(steps[:2])(Image.fromarray(image))
    return np.asarray(out)


def main() -> None:
    configs = {}
    for variant, spec in VARIANTS.items():
        name = f"{spec.timm_name}.{CHECKPOINTS[variant].tag}"
        model = timm.create_model(name, pretrained=False)
        configs[variant] = {"checkpoint": name, **{
            k: list(v) if isinstance(v, tuple) else v
            for k, v in resolve_model_data_config(model).items()}}
    (FIXTURES / "data_configs.json").write_text(json.dumps(configs, indent=1) + "\n")
    photos = {"portrait": photo(97, 71, 1), "landscape": photo(60, 91, 2)}
    arrays = {f"photo_{k}": v for k, v in photos.items()}
    for key, (size, crop_pct) in SIZES.items():
        for which, image in photos.items():
            arrays[f"{which}_{key}"] = timm_crop(image, size, crop_pct)
    np.savez_compressed(FIXTURES / "transform.npz", **arrays)
    print(json.dumps(configs, indent=1))


if __name__ == "__main__":
    main()
