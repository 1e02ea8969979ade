"""Build a MobileNet from its layer table and run it, one readable NumPy call per layer."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from . import ops
from .architectures import mobilenet_v1, mobilenet_v2, mobilenet_v3
from .download import keras_weights_path
from .layers import Layer
from .plan import compile_plan, cpu_cores, run_in_lanes
from .shapes import as_float32
from .weights import Params, Stored, load_weights, random_weights

# What each layer kind computes: f(x, layer, weights) with x (N, H, W, C) or (N, C).
LAYER_FUNCTIONS: dict[str, Callable[[np.ndarray, Layer, dict], np.ndarray]] = {
    "conv2d": lambda x, layer, w: ops.conv2d(x, w["kernel"], stride=layer.stride,
                                             padding=layer.padding),
    "depthwise_conv2d": lambda x, layer, w: ops.depthwise_conv2d(
        x, w["depthwise_kernel"], stride=layer.stride, padding=layer.padding),
    "pointwise_conv2d": lambda x, layer, w: ops.pointwise_conv2d(x, w["kernel"], w.get("bias")),
    "batch_norm": lambda x, layer, w: ops.batch_norm(
        x, w["gamma"], w["beta"], w["moving_mean"], w["moving_variance"], epsilon=1e-3),
    "relu6": lambda x, layer, w: ops.relu6(x),
    "relu": lambda x, layer, w: ops.relu(x),
    "hard_swish": lambda x, layer, w: ops.hard_swish(x),
    "hard_sigmoid": lambda x, layer, w: ops.hard_sigmoid(x),
    "rescaling": lambda x, layer, w: ops.rescale_pixels(x),  # MobileNetV3's own preprocessing
    "flatten": lambda x, layer, w: x.reshape(len(x), -1),  # (N, 1, 1, C) -> (N, C)
    "zero_pad": lambda x, layer, w: ops.zero_pad(x, layer.padding),
    "global_average_pool": lambda x, layer, w: ops.global_average_pool(
        x, keepdims=len(layer.output_shape) == 3),  # (N, C), or (N, 1, 1, C) to feed 1x1 convs
    "global_max_pool": lambda x, layer, w: ops.global_max_pool(x),
    # Keras's conv_preds is a 1x1 conv on the pooled (N, 1, 1, C) map: a matrix multiply.
    "classifier": lambda x, layer, w: x @ w["kernel"][0, 0] + w["bias"],
    "dense": lambda x, layer, w: x @ w["kernel"] + w["bias"],  # (N, C) @ (C, classes)
    "softmax": lambda x, layer, w: ops.softmax(x),
}


class Network:
    """A MobileNet built from its layer table: ``forward`` layer by layer, ``predict`` fused."""

    arch = "v1"  # the family, as named by --arch and ARCHITECTURES
    minimalistic = False  # MobileNetV3's variant without SE and hard-swish

    def __init__(self, layers: list[Layer], weights: str | os.PathLike | Stored | None,
                 seed: int, alpha: float) -> None:
        self.layers, self.alpha = layers, alpha
        self.input_shape = layers[0].input_shape  # (H, W, 3)
        self.include_top = layers[-1].kind == "softmax"
        # MobileNetV3 rescales inside the model (Keras's include_preprocessing): it takes pixels
        # in [0, 255]; the others take preprocess_input's [-1, 1].
        self.expects_pixels = layers[0].kind == "rescaling"
        self._plan: list | None = None  # the fused fast path, compiled on first predict
        if weights is None:
            self.params: Params = random_weights(layers, seed)
            self.calibrate_batch_norm(seed)
        else:
            if not isinstance(weights, dict) and str(weights) == "imagenet":
                weights = keras_weights_path(alpha, self.input_shape[0], self.include_top,
                                             self.arch, self.minimalistic)
            self.params = load_weights(weights, layers, self.arch)

    def layer_weights(self, layer: Layer) -> dict[str, np.ndarray]:
        """This layer's arrays by Keras weight name, e.g. ``{"gamma": (C,), ...}``."""
        return {name: self.params[f"{layer.name}/{name}"] for name in layer.weights}

    def forward(
        self, x: np.ndarray, output: str = "probabilities", capture: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """Run the network on preprocessed images.

        Parameters
        ----------
        x : (N, H, W, 3), values in [-1, 1] (see ``preprocess_input``).
        output : "probabilities" (softmax, what Keras returns) or "logits" (before it).
            Without the top, both give the last feature map or pooled features.
        capture : also return every layer's output, by layer name, in order.

        Returns
        -------
        (N, classes) probabilities or logits, or features; with ``capture`` a pair
        (output, {layer name: activation}).
        """
        if output not in ("probabilities", "logits"):
            raise ValueError(f"output must be 'probabilities' or 'logits', got {output!r}")
        x = self.check_input(x)
        return self._run(x, output, capture)

    __call__ = forward

    def _run(self, x: np.ndarray, output: str, capture: bool, calibrate: bool = False):
        """The layer loop of ``forward``. ``calibrate`` first sets each batch norm's moving
        statistics to those of its input (see ``calibrate_batch_norm``)."""
        activations = {}
        shortcuts = {layer.source for layer in self.layers if layer.source}
        saved = {}  # outputs that a later "add" (residual) or "multiply" (SE gate) needs
        for layer in self.layers:
            if output == "logits" and layer.kind == "softmax":
                break
            if calibrate and layer.kind == "batch_norm":
                # Scale each channel by its spread around the (random) moving mean, so
                # outputs stay of size ~gamma. The mean is not centred on the data: that
                # would subtract nearly equal numbers in near-constant channels, magnify
                # round-off and make float32 comparisons meaningless.
                mean = self.params[f"{layer.name}/moving_mean"]
                self.params[f"{layer.name}/moving_variance"] = ((x - mean) ** 2).mean(
                    axis=(0, 1, 2))
            x = self.run_layer(layer, x, saved)
            if layer.source:
                del saved[layer.source]  # each shortcut is used once
            if layer.name in shortcuts:
                saved[layer.name] = x
            if capture:
                activations[layer.name] = x
        return (x, activations) if capture else x

    def run_layer(self, layer: Layer, x: np.ndarray, saved: dict[str, np.ndarray]) -> np.ndarray:
        """One layer on x; ``saved`` holds the earlier outputs that "add" and "multiply" reuse."""
        if layer.kind == "add":
            return x + saved[layer.source]  # the residual connection
        if layer.kind == "multiply":
            return saved[layer.source] * x  # (N, H, W, C) * (N, 1, 1, C): the SE gate
        return LAYER_FUNCTIONS[layer.kind](x, layer, self.layer_weights(layer))

    def random_input(self, n: int, seed: int = 0) -> np.ndarray:
        """Seeded random images in this model's input range: [-1, 1], or [0, 255] pixels for
        models that rescale themselves (MobileNetV3). (n, H, W, 3) float32."""
        low, high = (0.0, 255.0) if self.expects_pixels else (-1.0, 1.0)
        rng = np.random.default_rng(seed)
        return rng.uniform(low, high, (n, *self.input_shape)).astype(np.float32)

    def calibrate_batch_norm(self, seed: int = 0) -> None:
        """Give random weights batch-norm statistics measured on a seeded random batch.

        He-normal kernels alone let activations shrink or blow up through dozens of layers
        (V3's unbounded ReLU and hard-swish: logits in the thousands). Measuring each BN's
        statistics on its actual input keeps every BN output of size ~gamma, in every
        family: a data-dependent initialisation.
        """
        self._run(self.random_input(2, seed), "logits", capture=False, calibrate=True)
        self._plan = None  # the fused path must be rebuilt from the new statistics

    def predict(self, x: np.ndarray, batch_size: int = 8, fast: bool = True,
                threads: int | None = None) -> np.ndarray:
        """Probabilities (N, classes) (or features, without the top) for preprocessed x.

        x is (N, H, W, 3). Runs ``batch_size`` images at a time, so activations stay small.
        ``fast=True`` uses the fused path of ``fast.py`` / ``plan.py`` (batch norm folded
        into the convolutions, fused activations), with the batch split over ``threads``
        lanes (default: one per CPU core); ``fast=False`` the readable layer-by-layer
        ``forward``, one chunk after another. Both give the same numbers to float32
        round-off (tested).
        """
        x = self.check_input(x)
        lanes = cpu_cores() if threads is None else threads
        for name, value in (("batch_size", batch_size), ("threads", lanes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"predict: {name} must be a positive integer, got {value!r}")
        if len(x) == 0:
            return np.zeros((0, *self.layers[-1].output_shape), np.float32)
        if not fast or self.fast_plan() is None:
            return np.concatenate([self.forward(x[i:i + batch_size])
                                   for i in range(0, len(x), batch_size)])
        out = run_in_lanes(self._plan, x, batch_size, lanes)
        return ops.softmax(out) if self.layers[-1].kind == "softmax" else out

    def fast_plan(self) -> list | None:
        """The fused steps of ``plan.py``, compiled once; None where it has no kernel for a
        layer (depth_multiplier > 1), and ``predict`` then runs the readable path."""
        if self._plan is None:
            try:
                self._plan = compile_plan(self.layers, self.params)
            except ValueError:
                self._plan = []
        return self._plan or None

    def check_input(self, x: np.ndarray) -> np.ndarray:
        """Return x as float32 (N, H, W, 3), or raise a clear error."""
        x = np.asarray(x)
        if x.dtype == np.uint8 and not self.expects_pixels:
            raise TypeError("x holds uint8 pixels: scale them first with preprocess_input(x)")
        x = as_float32("x", x, "MobileNet")
        if x.ndim == 3 and x.shape == self.input_shape:
            raise ValueError(f"x must be a batch (N, {', '.join(map(str, self.input_shape))}); "
                             f"got one image {x.shape}: use x[None]")
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise ValueError(f"this model takes (N, {', '.join(map(str, self.input_shape))}) "
                             f"images, got {tuple(x.shape)}")
        return x


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
    """

    arch = "v1"

    def __init__(
        self, alpha: float = 1.0, resolution: int | tuple[int, int] = 224,
        depth_multiplier: int = 1, include_top: bool = True,
        weights: str | os.PathLike | Stored | None = "imagenet", pooling: str | None = None,
        classes: int = 1000, seed: int = 0,
    ) -> None:
        self.depth_multiplier = depth_multiplier
        layers = mobilenet_v1(alpha, resolution, depth_multiplier, include_top, pooling, classes)
        super().__init__(layers, weights, seed, alpha)


class MobileNetV2(Network):
    """MobileNetV2 (inverted residuals, linear bottlenecks) with Keras's arguments and names.

    Same parameters as ``MobileNet`` without ``depth_multiplier``; Keras publishes ImageNet
    weights for alpha in {0.35, 0.5, 0.75, 1.0, 1.3, 1.4} and resolution in {96, 128, 160,
    192, 224}.
    """

    arch = "v2"

    def __init__(
        self, alpha: float = 1.0, resolution: int | tuple[int, int] = 224,
        include_top: bool = True, weights: str | os.PathLike | Stored | None = "imagenet",
        pooling: str | None = None, classes: int = 1000, seed: int = 0,
    ) -> None:
        layers = mobilenet_v2(alpha, resolution, include_top, pooling, classes)
        super().__init__(layers, weights, seed, alpha)


class _MobileNetV3(Network):
    """MobileNetV3 with Keras's arguments and names: hard-swish, squeeze-and-excite, and the
    pixel rescaling inside the model (``include_preprocessing``)."""

    size = "large"

    def __init__(
        self, alpha: float = 1.0, resolution: int | tuple[int, int] = 224,
        include_top: bool = True, weights: str | os.PathLike | Stored | None = "imagenet",
        pooling: str | None = None, classes: int = 1000, minimalistic: bool = False,
        include_preprocessing: bool = True, seed: int = 0,
    ) -> None:
        self.minimalistic = minimalistic
        layers = mobilenet_v3(self.size, alpha, resolution, include_top, pooling, classes,
                              minimalistic, include_preprocessing)
        super().__init__(layers, weights, seed, alpha)


class MobileNetV3Large(_MobileNetV3):
    """MobileNetV3-Large, like ``keras.applications.MobileNetV3Large``."""

    arch, size = "v3-large", "large"


class MobileNetV3Small(_MobileNetV3):
    """MobileNetV3-Small, like ``keras.applications.MobileNetV3Small``."""

    arch, size = "v3-small", "small"


# --arch names -> model classes
MODELS = {"v1": MobileNet, "v2": MobileNetV2, "v3-large": MobileNetV3Large,
          "v3-small": MobileNetV3Small}
