"""Write tests/fixtures/v4/: timm's outputs for the seeded MobileNetV4 test weights.

Run in a side environment with PyTorch, timm and safetensors (not test dependencies):

    python -m venv /work/venv-v4
    /work/venv-v4/bin/pip install torch==2.14.1 torchvision==0.29.1 timm safetensors \
        numpy pillow h5py threadpoolctl
    /work/venv-v4/bin/python scripts/make_v4_fixtures.py

For each variant: the weights of ``tests/helpers/v4_weights.py`` (NumPy alone) in timm's
layout (``torch_layout.to_torch``), written with ``safetensors.torch.save_file``, loaded into
``timm.create_model(..., pretrained=False)`` by ``load_state_dict``; timm's logits, pre-logits
and first attention block's output for the seeded input, and its parameter count
(``sum(p.numel())``), go to ``<variant>.npz``. Also
``sample.safetensors`` (a few tensors in F32, F16, BF16 and I64, written by safetensors) with
the values PyTorch reads from it in ``sample.npz``, for the reader's tests; and timm's
parameter counts at every width (``timm_params.json``). ``make_v4_fixtures.py none`` writes
only these two.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import timm
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mobilenet_np.families.v4 import ALPHAS  # noqa: E402
from mobilenet_np.registry import get_family  # noqa: E402
from mobilenet_np.torch_layout import to_torch  # noqa: E402
from tests.helpers.v4_weights import (  # noqa: E402
    RESOLUTION,
    TIMM_NAMES,
    VARIANTS,
    first_attention,
    seeded_input,
    seeded_params,
)

OUT = ROOT / "tests" / "fixtures" / "v4"


def timm_model(variant: str, folder: Path) -> torch.nn.Module:
    """timm's model holding the test weights, read back from a safetensors file timm's tools wrote."""
    layers = get_family(f"v4-{variant}").layers(resolution=RESOLUTION)
    tensors = {name: torch.from_numpy(array.copy())
               for name, array in to_torch(seeded_params(variant), layers).items()}
    path = folder / f"{variant}.safetensors"
    save_file(tensors, str(path))
    model = timm.create_model(TIMM_NAMES[variant], pretrained=False)
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    assert not unexpected, unexpected
    assert all(name.endswith("num_batches_tracked") for name in missing), missing
    return model.eval()


def record(variant: str, folder: Path) -> None:
    """timm's outputs on the seeded input -> <variant>.npz (NHWC where spatial)."""
    model = timm_model(variant, folder)
    captured = {}
    block = first_attention(variant)
    if block is not None:
        stage, index = (int(i) for i in block.split(".")[1:])
        model.blocks[stage][index].register_forward_hook(
            lambda module, args, out: captured.update(attention=out[:1].permute(0, 2, 3, 1)))
    x = torch.from_numpy(seeded_input().transpose(0, 3, 1, 2).copy())  # NHWC -> NCHW
    with torch.no_grad():
        features = model.forward_features(x)
        pre_logits = model.forward_head(features, pre_logits=True)
        logits = model.forward_head(features)
    arrays = {"logits": logits, "pre_logits": pre_logits, **captured}
    params = sum(parameter.numel() for parameter in model.parameters())  # timm's own count
    np.savez_compressed(OUT / f"{variant}.npz", timm_version=np.array(timm.__version__),
                        torch_version=np.array(torch.__version__), timm_params=np.array(params),
                        **{name: value.numpy().astype(np.float32) for name, value in arrays.items()})
    print(variant, {name: tuple(value.shape) for name, value in arrays.items()})


def parameter_counts() -> None:
    """timm's sum(p.numel()) for every variant at the widths timm defines -> timm_params.json."""
    from timm.models.mobilenetv3 import _gen_mobilenet_v4

    counts = {variant: {str(alpha): sum(p.numel() for p in _gen_mobilenet_v4(
        TIMM_NAMES[variant].split(".")[0], alpha).parameters()) for alpha in ALPHAS}
        for variant in VARIANTS}
    (OUT / "timm_params.json").write_text(json.dumps(counts, indent=1) + "\n")


def sample() -> None:
    """A small safetensors file in every dtype the reader knows, and its values as float64."""
    rng = np.random.default_rng(0)
    values = torch.from_numpy(rng.normal(0, 3, (2, 3, 4)))
    tensors = {"f32": values.float(), "f16": values.half(), "bf16": values.bfloat16(),
               "i64": torch.arange(-3, 3, dtype=torch.int64).reshape(2, 3),
               "scalar": torch.tensor(7, dtype=torch.int64)}
    save_file(tensors, str(OUT / "sample.safetensors"), metadata={"format": "pt"})
    np.savez_compressed(OUT / "sample.npz",
                        **{name: tensor.to(torch.float64).numpy() for name, tensor in tensors.items()})


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    sample()
    parameter_counts()
    with tempfile.TemporaryDirectory() as folder:
        for name in sys.argv[1:] or VARIANTS:
            if name != "none":
                record(name, Path(folder))
