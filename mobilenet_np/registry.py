"""The family registry: one ``Family`` record per MobileNet family, found by its ``--arch`` name.

A record holds everything the package knows about a family: its layer-table builder, its own
options, the official weight files, how to recognise its weights from their shapes, what input
it takes, and its published numbers. The modules in ``mobilenet_np/families/`` each register
theirs; everything else (models, weights, downloads, costs, the CLI) reads the registry and
never branches on a family's name. See the README's "Adding a family".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .errors import InputError, UnsupportedError
from .layers import Block, Layer
from .stored import Stored

# Options every family takes (Keras's argument names), with their defaults.
COMMON_OPTIONS = {"alpha": 1.0, "resolution": 224, "include_top": True, "pooling": None,
                  "classes": 1000}


@dataclass(frozen=True)
class Option:
    """One of a family's own builder options (beyond ``COMMON_OPTIONS``)."""

    default: bool | int
    help: str


@dataclass(frozen=True)
class WeightFiles:
    """The official ImageNet weight files Keras publishes for a family."""

    folder: str  # the URL folder Keras downloads them from
    alphas: tuple[float, ...]
    # the input sizes trained for, one file each; None: one file (trained at 224) for any size,
    # as for MobileNetV3 (its layers do not depend on the input size: Keras loads it for any)
    resolutions: tuple[int, ...] | None
    # (alpha, resolution, include_top, **own options) -> Keras's file name; raises an error for
    # a combination Keras does not publish beyond the alphas and resolutions above
    name: Callable[..., str]
    checksums: Mapping[str, str] = field(default_factory=dict)  # name -> "md5:..." / "sha256:..."
    # a file name -> its path under ``folder`` (None: the name itself, as Keras's folders have
    # it; the Hugging Face hub keeps every model's file as ``<repo>/resolve/main/<file>``)
    remote: Callable[[str], str] | None = None

    def file_name(self, alpha: float, resolution: int, include_top: bool, **options) -> str:
        """Keras's file name for these options, or an error saying which ones exist."""
        sizes = self.resolutions
        if alpha not in self.alphas or (sizes is not None and resolution not in sizes):
            raise UnsupportedError(f"no official ImageNet weights for alpha={alpha}, resolution="
                             f"{resolution}: they exist for alpha in {sorted(self.alphas)} and "
                             f"resolution in {list(sizes or ['any'])}")
        return self.name(alpha, resolution, include_top, **options)

    def path(self, name: str) -> str:
        """Where the file called ``name`` (in the cache) lies under ``folder``."""
        return name if self.remote is None else self.remote(name)


@dataclass(frozen=True)
class Crop:
    """How a model's trainers resize a photo to evaluate it (timm's data config): the shorter
    side to size / ``crop_pct`` with ``interpolation``, then the centre size x size is kept."""

    crop_pct: float  # e.g. 0.875: the crop keeps the central 87.5% of the resized side
    interpolation: str  # an ``imagenet.RESAMPLING`` name, e.g. "bicubic"


@dataclass(frozen=True)
class Published:
    """One published model, with the numbers its source quotes (not computed)."""

    name: str  # e.g. "MobileNetV2 1.4"
    options: dict  # builder options, e.g. {"alpha": 1.4}; at 224x224 unless they say otherwise
    top1: float  # ImageNet top-1 %
    macs_m: float  # million multiply-adds
    params_m: float  # million parameters
    source: str


@dataclass(frozen=True)
class Family:
    """Everything the package knows about one MobileNet family."""

    name: str  # the --arch name, e.g. "v3-small"
    title: str  # e.g. "MobileNetV3-Small"
    # (alpha, resolution, include_top, pooling, classes, **own options) -> the layer table
    build: Callable[..., list[Block]]
    options: Mapping[str, Option]  # the family's own options, e.g. {"minimalistic": ...}
    weight_files: WeightFiles
    # a file's contents -> the builder options that made it (incl. include_top, classes),
    # or None when the file is not this family's
    recognise: Callable[[Stored], dict | None]
    preprocessing: str  # what the model takes, in one line
    published: tuple[Published, ...] = ()
    # a layer name as some Keras writer spelled it -> this family's (the identity for most)
    keras_name: Callable[[str], str] = field(default=lambda name: name)
    # how ``classify`` resizes photos for it: None, the whole photo squeezed to the input size
    # (as Keras's ``load_img`` does); else a resize and centre crop (timm's models)
    crop: Crop | None = None

    def config(self, **given) -> dict:
        """Every builder option, defaults filled in; an option this family lacks is an error."""
        known = {**COMMON_OPTIONS, **{k: o.default for k, o in self.options.items()}}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise InputError(f"{self.title} has no option {', '.join(unknown)} (it takes "
                             f"{', '.join(known)})")
        return {**known, **given}

    def blocks(self, **options) -> list[Block]:
        """The layer table, block by block."""
        return self.build(**self.config(**options))

    def layers(self, **options) -> list[Layer]:
        """The layer table, flat: every block's layers in order."""
        return [layer for block in self.blocks(**options) for layer in block.layers]


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family to the registry (its name must be new)."""
    if family.name in FAMILIES:
        raise UnsupportedError(f"a family named {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The family registered as ``name`` (an --arch value), or an error listing them."""
    if name not in FAMILIES:
        raise InputError(f"unknown MobileNet family {name!r}: choose from {', '.join(FAMILIES)}")
    return FAMILIES[name]
