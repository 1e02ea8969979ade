"""The Keras-like classes: ``MobileNet``, ``MobileNetV2``, ``MobileNetV3Large``, ``MobileNetV3Small``.

Each is a ``Network`` of one registered family with Keras's argument names and defaults, as in
``keras.applications``. They live above the family tables (``families/``), which are data and
builders only and never import the runtime.
"""

from __future__ import annotations

import os

from . import families  # noqa: F401  (registers every family in mobilenet_np/families/)
from .model import Network
from .registry import get_family
from .stored import Stored


class MobileNet(Network):
    """MobileNet V1 with Keras's arguments, layer names and numbers.

    Parameters
    ----------
    alpha : width multiplier; every layer has ``int(filters * alpha)`` filters.
    resolution : input height = width, or a pair (height, width); at least 32.
    depth_multiplier : depthwise filters per input channel.
    include_top : end with the 1000-way classifier (``conv_preds`` + softmax).
    weights : "imagenet" (the official Keras file, from the cache or downloaded), a path to a
        ``.h5``/``.npz`` file, what ``weights.read_weights_file`` read out of one, or None for
        seeded random weights that do not vanish.
    pooling : with ``include_top=False``: None (feature map), "avg" or "max".
    classes : size of the classifier.
    seed : seed of the random weights when ``weights=None``.
    backend : the kernels ``predict`` runs: "numpy" or "numba" (the loop twins, compiled).
    """

    def __init__(
        self, alpha: float = 1.0, resolution: int | tuple[int, int] = 224,
        depth_multiplier: int = 1, include_top: bool = True,
        weights: str | os.PathLike | Stored | None = "imagenet",
        pooling: str | None = None, classes: int = 1000, seed: int = 0,
        backend: str = "numpy",
    ) -> None:
        super().__init__(get_family("v1"), weights, seed, backend, alpha=alpha, resolution=resolution,
                         depth_multiplier=depth_multiplier, include_top=include_top,
                         pooling=pooling, classes=classes)


class MobileNetV2(Network):
    """MobileNetV2 (inverted residuals, linear bottlenecks) with Keras's arguments and names.

    Same parameters as ``MobileNet`` without ``depth_multiplier``; Keras publishes ImageNet
    weights for alpha in {0.35, 0.5, 0.75, 1.0, 1.3, 1.4} and resolution in {96, 128, 160,
    192, 224}.
    """

    def __init__(
        self, alpha: float = 1.0, resolution: int | tuple[int, int] = 224,
        include_top: bool = True, weights: str | os.PathLike | Stored | None = "imagenet",
        pooling: str | None = None, classes: int = 1000, seed: int = 0,
        backend: str = "numpy",
    ) -> None:
        super().__init__(get_family("v2"), weights, seed, backend, alpha=alpha, resolution=resolution,
                         include_top=include_top, pooling=pooling, classes=classes)


class _MobileNetV3(Network):
    """MobileNetV3 with Keras's arguments and names: hard-swish, squeeze-and-excite, and the
    pixel rescaling inside the model (``include_preprocessing``)."""

    arch = "v3-large"

    def __init__(
        self, alpha: float = 1.0, resolution: int | tuple[int, int] = 224,
        include_top: bool = True, weights: str | os.PathLike | Stored | None = "imagenet",
        pooling: str | None = None, classes: int = 1000, minimalistic: bool = False,
        include_preprocessing: bool = True, seed: int = 0,
        backend: str = "numpy",
    ) -> None:
        super().__init__(get_family(self.arch), weights, seed, backend, alpha=alpha, resolution=resolution,
                         include_top=include_top, pooling=pooling, classes=classes,
                         minimalistic=minimalistic, include_preprocessing=include_preprocessing)


class MobileNetV3Large(_MobileNetV3):
    """MobileNetV3-Large, like ``keras.applications.MobileNetV3Large``."""

    arch = "v3-large"


class MobileNetV3Small(_MobileNetV3):
    """MobileNetV3-Small, like ``keras.applications.MobileNetV3Small``."""

    arch = "v3-small"
