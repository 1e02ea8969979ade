"""A MobileNet built from its family's layer table, run one readable NumPy call per layer."""

from __future__ import annotations

import functools
import os

import numpy as np

from . import ops
from .backends import build_steps, check_backend
from .checks import PIXELS, SCALED, check_input, zero_channel_layer
from .download import official_weights
from .errors import InputError
from .interpreter import run_steps
from .kinds import KINDS, run_layer
from .lanes import cpu_cores, run_in_lanes, run_plan
from .layers import Block, Layer, Params
from .plan import compile_plan
from .random_init import calibrate_batch_norm, random_weights
from .registry import Family
from .shapes import as_float32
from .stored import Stored
from .weights import file_options, load_weights, read_weights_file

OUTPUTS = ("probabilities", "logits")


class Network:
    """A MobileNet of any registered family: ``forward`` layer by layer, ``predict`` fused.

    ``weights``: "imagenet" (the family's official Keras file, cached or downloaded), a path
    to a ``.h5``/``.npz`` file, what ``weights.read_weights_file`` read out of one, or None
    for seeded random weights (``random_init.py``). ``backend`` picks the kernels ``predict``'s
    fused steps call: "numpy" (``fused.py``) or "numba" (``compiled.py``: the loop twins,
    compiled; needs Numba). ``options`` are the family's builder options (``family.config``).
    """

    def __init__(self, family: Family, weights: str | os.PathLike | Stored | None = "imagenet",
                 seed: int = 0, backend: str = "numpy", **options) -> None:
        check_backend(backend)  # an unknown backend, or Numba missing: said before any download
        self.family, self.config = family, family.config(**options)
        self.blocks: list[Block] = family.build(**self.config)
        self.layers: list[Layer] = [layer for block in self.blocks for layer in block.layers]
        thin = zero_channel_layer(self.layers)
        if thin is not None:
            raise InputError(f"{family.title} alpha={self.config['alpha']}: layer {thin.name} "
                             f"would be 0 channels wide ({thin.output_shape}): use a larger alpha")
        self.alpha = self.config["alpha"]
        self.input_shape = self.layers[0].input_shape  # (H, W, 3)
        self.include_top = self.layers[-1].kind == "softmax"
        # MobileNetV3 rescales inside the model (Keras's include_preprocessing), V4 normalises
        # by ImageNet's mean and std: they take pixels in [0, 255]; V1, V2 preprocess_input's
        # [-1, 1].
        self.expects_pixels = KINDS[self.layers[0].kind].takes_pixels
        if weights is None:
            self.params: Params = calibrate_batch_norm(
                self.steps("logits"), random_weights(self.layers, seed), self.random_input(2, seed))
        else:
            if isinstance(weights, (str, os.PathLike)) and str(weights) == "imagenet":
                weights = official_weights(family, self.config)
            self.params = load_weights(weights, self.layers, family)
        # The fused path, compiled now, so that a layer it cannot run fails here, loudly: the
        # plan (units as data, BN folded) and the backend's steps that run it. They hold
        # BN-folded copies: after editing ``params`` by hand, build the model again.
        self.backend = backend
        self.plan = compile_plan(self.blocks, self.params)
        self.fused_steps = build_steps(self.plan, backend)

    def layer_weights(self, layer: Layer) -> dict[str, np.ndarray]:
        """This layer's arrays by Keras weight name, e.g. ``{"gamma": (C,), ...}``."""
        return {name: self.params[f"{layer.name}/{name}"] for name in layer.weights}

    def steps(self, output: str = "probabilities") -> list[Layer]:
        """The layers ``forward`` runs: all of them, or all but the softmax for logits."""
        if output not in OUTPUTS:
            raise InputError(f"output must be 'probabilities' or 'logits', got {output!r}")
        return self.layers[:-1] if output == "logits" and self.include_top else self.layers

    def forward(
        self, x: np.ndarray, output: str = "probabilities", capture: bool = False,
        check_range: bool = True, loop_twins: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """Run the network on images, one readable ``ops`` call per layer.

        Parameters
        ----------
        x : (N, H, W, 3); in [-1, 1] (see ``preprocess_input``), or pixels in [0, 255] for
            models that rescale themselves (MobileNetV3: ``expects_pixels``).
        output : "probabilities" (softmax, what Keras returns) or "logits" (before it).
            Without the top, both give the last feature map or pooled features.
        capture : also return every layer's output, by layer name, in order.
        check_range : refuse inputs outside the model's range (see ``check_input``).
        loop_twins : run every layer's loop twin (``reference.py``) instead: slow, for checking.

        Returns
        -------
        (N, classes) probabilities or logits, or features; with ``capture`` a pair
        (output, {layer name: activation}).
        """
        steps = self.steps(output)
        x = self.check_input(x, check_range)
        activations: dict[str, np.ndarray] | None = {} if capture else None
        def run(layer: Layer, x: np.ndarray, earlier: np.ndarray | None) -> np.ndarray:
            return run_layer(layer, x, self.layer_weights(layer), earlier, twin=loop_twins)

        out = run_steps(steps, x, run, activations)
        return (out, activations) if capture else out

    __call__ = forward

    def run_layer(self, layer: Layer, x: np.ndarray, earlier: np.ndarray | None) -> np.ndarray:
        """One layer on x; ``earlier`` is the saved output that an add or multiply joins."""
        return run_layer(layer, x, self.layer_weights(layer), earlier)

    def random_input(self, n: int, seed: int = 0) -> np.ndarray:
        """Seeded random images in this model's input range: [-1, 1], or [0, 255] pixels for
        models that rescale themselves (MobileNetV3). (n, H, W, 3) float32."""
        low, high = (0.0, 255.0) if self.expects_pixels else (-1.0, 1.0)
        rng = np.random.default_rng(seed)
        return rng.uniform(low, high, (n, *self.input_shape)).astype(np.float32)

    def predict(self, x: np.ndarray, batch_size: int = 8, fused: bool = True,
                threads: int | None = None, output: str = "probabilities",
                check_range: bool = True) -> np.ndarray:
        """Probabilities or logits (N, classes) (or features, without the top) for images x.

        x is (N, H, W, 3), as for ``forward``. Runs ``batch_size`` images at a time, so
        activations stay small. ``fused=True`` runs the fused path (``fused.py`` kernels in
        ``plan.py`` units: batch norm folded into the convolutions, fused activations), with
        the batch split over ``threads`` lanes (default: one per CPU core); ``fused=False``
        the readable ``forward``, one chunk after another. Both give the same numbers to
        float32 round-off (tested). ``check_range`` as in ``forward``.
        """
        steps = self.steps(output)
        x = self.check_input(x, check_range)
        lanes = cpu_cores() if threads is None else threads
        for name, value in (("batch_size", batch_size), ("threads", lanes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"predict: {name} must be a positive integer, got {value!r}")
        if len(x) == 0:
            return np.zeros((0, *steps[-1].output_shape), np.float32)
        if not fused:
            return np.concatenate([self.forward(x[i:i + batch_size], output, check_range=False)
                                   for i in range(0, len(x), batch_size)])
        out = run_in_lanes(functools.partial(run_plan, self.fused_steps), x, batch_size, lanes)
        return ops.softmax(out) if steps[-1].kind == "softmax" else out

    def check_input(self, x: np.ndarray, check_range: bool = True) -> np.ndarray:
        """Return x as float32 (N, H, W, 3), or raise an ``InputError`` saying what is wrong.

        NaN and infinity are always refused. With ``check_range``, so are the mistakes that
        give confident wrong answers (``checks.input_mistake``): pixels / 255, raw pixels
        given to a model that takes preprocess_input's [-1, 1] (V1, V2), preprocess_input
        applied twice, or preprocessed values given to a model that rescales pixels (V3).
        """
        x = np.asarray(x)
        if x.dtype == np.uint8 and not self.expects_pixels:
            raise InputError("x holds uint8 pixels: scale them first with preprocess_input(x)")
        x = as_float32("x", x, "MobileNet")
        if x.ndim == 3 and x.shape == self.input_shape:
            raise InputError(f"x must be a batch (N, {', '.join(map(str, self.input_shape))}); "
                             f"got one image {x.shape}: use x[None]")
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise InputError(f"this model takes (N, {', '.join(map(str, self.input_shape))}) "
                             f"images, got {tuple(x.shape)}")
        check_input(x, PIXELS if self.expects_pixels else SCALED, check_range)
        return x


def load(path: str | os.PathLike, **options) -> Network:
    """A model built from what a weights file holds: family and options read off the file.

    Works for every layout ``keras_files.py`` reads and for our ``.npz``; ``options`` (e.g.
    ``resolution=160``) override or add to what the file tells. ``mnp.load`` (``loader.py``)
    sends .tflite files and saved Keras graphs elsewhere first.
    """
    stored = read_weights_file(path)
    family, config = file_options(stored)
    return Network(family, stored, **{**config, **options})
