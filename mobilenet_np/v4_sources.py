"""Where MobileNetV4's published numbers and ImageNet weights come from.

- **The paper** (Qin et al. 2024, "MobileNetV4: Universal Models for the Mobile Ecosystem",
  arXiv:2404.10518, its ImageNet-1K classification table): top-1, MACs and params of each
  variant, each at the input size the paper trained it at (Conv-M and Hybrid-M at 256,
  Conv-L and Hybrid-L at 384). ``compare --family`` puts them beside the exact counts.
- **timm's checkpoints** on the Hugging Face hub (``https://huggingface.co/timm/<name>.<tag>``):
  the only published MobileNetV4 weights (Google released none, timm's model cards say). For
  each variant, the one ``weights="imagenet"`` downloads, with its data config as timm's
  ``pretrained_cfg`` states it (``timm/models/mobilenetv3.py``, ``default_cfgs``; also the
  hub's ``config.json``) and its top-1 from the model card's "Model Comparison" table, at the
  size it was trained at.
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import Published

HUB = "https://huggingface.co/timm/"
HUB_FILE = "model.safetensors"  # every timm repository's weights, under resolve/main/
INTERPOLATION = "bicubic"  # every MobileNetV4 checkpoint's data config


@dataclass(frozen=True)
class Checkpoint:
    """One of timm's ImageNet-1k checkpoints: its tag and its data config (``pretrained_cfg``)."""

    tag: str  # e.g. "e2400_r224_in1k": 2400 epochs, trained at 224, on ImageNet-1k
    size: int  # ``input_size``: trained and evaluated at size x size
    crop_pct: float  # the eval transform keeps the centre size of a size / crop_pct resize
    top1: float  # ImageNet-1k top-1 % at ``size``, from the model card
    # The file's sha256, when a source states it. None for all five: the hub's LFS pointers
    # (which hold it) were not readable when this was written, so downloads are checked by
    # their shapes only, and say so (``download.official_weights``).
    sha256: str | None = None


# alpha 1.0 only: timm's one other width with weights (conv-small 0.5, e3000_r224) was trained
# on inputs normalised by mean = std = 0.5, not ImageNet's mean and std.
CHECKPOINTS = {
    "conv-small": Checkpoint("e2400_r224_in1k", 224, 0.875, 73.756),
    "conv-medium": Checkpoint("e500_r224_in1k", 224, 0.95, 79.094),
    "conv-large": Checkpoint("e500_r256_in1k", 256, 0.95, 81.862),  # none trained at 224
    "hybrid-medium": Checkpoint("e500_r224_in1k", 224, 0.95, 80.442),
    "hybrid-large": Checkpoint("ix_e600_r384_in1k", 384, 0.95, 83.990),  # only 384 exists
}


def cache_name(timm_name: str, checkpoint: Checkpoint) -> str:
    """The file's name in the weights cache: ``mobilenetv4_conv_small.e2400_r224_in1k.safetensors``."""
    return f"{timm_name}.{checkpoint.tag}.safetensors"


def hub_path(name: str) -> str:
    """A cache name -> the file's path on the hub: ``<model>.<tag>/resolve/main/model.safetensors``."""
    return f"{name.removesuffix('.safetensors')}/resolve/main/{HUB_FILE}"


PAPER = "Qin et al. 2024 (arXiv:2404.10518), ImageNet-1K classification table, as reported"
# (name, input size the paper used, top-1 %, MACs (M), params (M)), as secondary pages quote the
# paper's table (the table itself was not readable here: reported, not verified)
PAPER_ROWS = {
    "conv-small": ("MNv4-Conv-S", 224, 73.8, 200, 3.8),
    "conv-medium": ("MNv4-Conv-M", 256, 79.9, 1000, 9.2),
    "conv-large": ("MNv4-Conv-L", 384, 82.9, 5900, 31.0),
    "hybrid-medium": ("MNv4-Hybrid-M", 256, 80.7, 1200, 10.5),
    "hybrid-large": ("MNv4-Hybrid-L", 384, 83.4, 7200, 35.9),
}


def paper_row(variant: str) -> Published:
    """The paper's numbers for a variant, at the input size the paper gives them for."""
    name, size, top1, macs, params = PAPER_ROWS[variant]
    options = {} if size == 224 else {"resolution": size}
    return Published(name if size == 224 else f"{name} @{size}", options, top1, macs, params,
                     PAPER)
