"""Refusing what would give a confident wrong answer: inputs in the wrong range, invalid weights.

Pure functions, no I/O. ``input_mistake`` tells which preprocessing mistake an input array
shows (pixels / 255, raw pixels, preprocess_input applied twice or to a model that rescales
itself, NaN); ``check_weights`` refuses weights that are finite but still give NaN (negative
batch-norm variances, channels that fold to infinity, layers 0 channels wide).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError, WeightsError
from .kinds import BN_EPSILON, BN_WEIGHTS, KINDS
from .layers import Layer
from .plan import fold_batch_norm

SCALED = (-1.0, 1.0)  # preprocess_input's output: what V1, V2 (and most int8 files) take
PIXELS = (0.0, 255.0)  # what a model that rescales itself takes (MobileNetV3)
PIXELS_ABOVE = 2.0  # a range reaching past this takes pixels, not [-1, 1]
MARGIN = 0.05  # of the range's width: resizing and augmentation overshoot a little
NORMALISED_HIGH = (1 - 0.406) / 0.225  # the largest value ImageNet mean/std normalisation gives
TWICE = 1 / 127.5  # preprocess_input(preprocess_input(x)) lies in [-1 - TWICE, -1 + TWICE]


def input_mistake(x: np.ndarray, takes: tuple[float, float] = SCALED) -> str | None:
    """None if ``x`` (any shape) fits a model taking values in ``takes``; else one line naming
    the mistake and its fix.

    ``takes`` is SCALED ([-1, 1]), PIXELS ([0, 255]) or a .tflite input's own real range.
    Recognised: NaN/inf; [0, 1] input (pixels / 255); raw [0, 255] pixels given to a [-1, 1]
    model; [-1, 1] or mean/std-normalised input given to a pixel model; preprocess_input
    applied twice (a [-1, 1] image squeezed into about [-1.008, -0.992]); anything else
    outside the range.
    """
    x = np.asarray(x)
    if x.size == 0:
        return None
    if x.dtype.kind == "f":
        bad = np.count_nonzero(~np.isfinite(x))
        if bad:
            return (f"x holds {bad} NaN or infinite values (of {x.size}): the model would answer "
                    f"NaN; find where they came from (a division by zero?) and fix the input")
    low, high = float(x.min()), float(x.max())
    spans, slack = f"x spans [{low:.4g}, {high:.4g}]", MARGIN * (takes[1] - takes[0])
    if takes[1] > PIXELS_ABOVE:
        return _pixel_model_mistake(spans, low, high, takes, slack)
    if low < -1 - 1e-4 and high < -1 + 2.5 * TWICE:
        return (f"{spans}: preprocess_input was applied twice (a [-1, 1] image squeezed into "
                f"about [-1.008, -0.992]): apply it once, to the 0-255 pixels")
    if low >= 0 and high <= 1 and high - low > 0.5:
        return (f"{spans}, like pixels / 255 in [0, 1], but this model takes [-1, 1]: pass "
                f"x * 2 - 1, or preprocess_input(pixels) on the 0-255 pixels")
    if low >= -slack and 1 + 4 * slack < high <= 255 * (1 + MARGIN):
        return (f"{spans}, like raw [0, 255] pixels, but this model takes [-1, 1]: scale pixels "
                f"with preprocess_input(x) first")
    if low < takes[0] - slack or high > takes[1] + slack:
        return (f"{spans}, outside the [{takes[0]:.4g}, {takes[1]:.4g}] this model takes: scale "
                f"pixels with preprocess_input(x) first")
    return None


def _pixel_model_mistake(spans: str, low: float, high: float, takes: tuple[float, float],
                         slack: float) -> str | None:
    """``input_mistake`` for a model that takes [0, 255] pixels and rescales them itself."""
    if low < 0 and high <= 1 + MARGIN:
        return (f"{spans}, like preprocess_input's [-1, 1], but this model takes pixels in "
                f"[0, 255] and rescales them itself: pass load_image(...) pixels, without "
                f"preprocess_input")
    if low < -0.5 and high <= NORMALISED_HIGH * (1 + MARGIN):
        return (f"{spans}, like ImageNet mean/std normalisation (timm's and torchvision's "
                f"transforms), but this model takes pixels in [0, 255] and normalises them "
                f"itself: pass load_image(...) pixels")
    if low >= 0 and high <= 1 and high > low:  # a flat image may be black pixels
        return (f"{spans}, like pixels / 255 in [0, 1], but this model takes pixels in "
                f"[0, 255]: pass x * 255")
    if low < takes[0] - slack or high > takes[1] + slack:
        return (f"{spans}, outside the [{takes[0]:.4g}, {takes[1]:.4g}] this model takes pixels "
                f"in: pass 8-bit pixels as load_image gives them")
    return None


def check_input(x: np.ndarray, takes: tuple[float, float] = SCALED,
                check_range: bool = True) -> None:
    """Raise ``InputError`` with ``input_mistake``'s line; NaN and inf even without
    ``check_range`` (the range check is what ``check_range=False`` turns off)."""
    message = input_mistake(x, takes)
    if message is None:
        return
    if message.startswith("x holds"):
        raise InputError(message)
    if check_range:
        raise InputError(f"{message} (or check_range=False)")


def check_weights(params: dict[str, np.ndarray], layers: list[Layer] | None = None,
                  source: str = "the weights") -> None:
    """Raise ``WeightsError`` naming the array, for weights that are finite yet invalid.

    Refused: a layer or array 0 channels wide; a batch-norm variance below zero, or so
    negative that ``variance + epsilon <= 0`` (the fold divides by its square root); and any
    NaN or infinity that folding batch norm into the preceding convolution would create
    (``layers`` gives the pairing; without it, only the scale and shift are checked).
    """
    thin = zero_channel_layer(layers or [])
    if thin is not None:
        raise WeightsError(f"{source}: layer {thin.name} would be 0 channels wide (output "
                           f"{thin.output_shape}): use a larger alpha")
    for key, array in params.items():
        if array.size == 0:
            raise WeightsError(f"{source}: {key} has shape {array.shape}, 0 values: a layer "
                               f"0 channels wide cannot compute anything")
    for bn, bn_epsilon, conv in _batch_norms(params, layers):
        _check_batch_norm(params, bn, bn_epsilon, conv, source)


def zero_channel_layer(layers: list[Layer]) -> Layer | None:
    """The first layer of a table that is 0 wide (output or weights), or None."""
    for layer in layers:
        if 0 in layer.output_shape or any(0 in shape for shape in layer.weights.values()):
            return layer
    return None


def _batch_norms(params: dict[str, np.ndarray], layers: list[Layer] | None):
    """(batch-norm layer, the conv it folds into) for every BN in ``params``; without a table,
    (BN name, None) pairs at Keras's epsilon."""
    if layers is None:
        suffix = "/moving_variance"
        return [(key[:-len(suffix)], BN_EPSILON, None) for key in params if key.endswith(suffix)]
    pairs, conv = [], None
    for layer in layers:
        if KINDS[layer.kind].fuses == "conv":
            conv = layer
        elif layer.kind == "batch_norm":
            pairs.append((layer.name, layer.options.get("epsilon", BN_EPSILON), conv))
    return [(bn, eps, conv) for bn, eps, conv in pairs if f"{bn}/moving_variance" in params]


def _check_batch_norm(params: dict[str, np.ndarray], bn: str, epsilon: float, conv: Layer | None,
                      source: str) -> None:
    """One batch norm: a valid variance, and a fold into ``conv`` (by the fused path's own
    ``plan.fold_batch_norm``) that stays finite in float32."""
    gamma, beta, mean, variance = (params[f"{bn}/{w}"] for w in BN_WEIGHTS)
    negative = np.flatnonzero(variance < 0)
    if negative.size:
        raise WeightsError(
            f"{source}: {bn}/moving_variance holds {negative.size} negative values (channel "
            f"{negative[0]}: {variance[negative[0]]:.4g}); a variance is never below 0: the "
            f"file is damaged or not batch-norm statistics")
    depthwise = conv is not None and conv.kind == "depthwise_conv2d"
    key = None if conv is None else f"{conv.name}/{'depthwise_' * depthwise}kernel"
    kernel = params.get(key, np.ones(variance.shape, np.float32))  # no conv: the scale itself
    with np.errstate(all="ignore"):
        folded, shift = fold_batch_norm(kernel, gamma, beta, mean, variance, epsilon,
                                        depthwise and key in params)
    for what, values in (("folded kernel gamma / sqrt(variance + epsilon) x kernel", folded),
                         ("shift beta - mean * scale", shift)):
        bad = np.flatnonzero(~np.isfinite(values.reshape(-1, values.shape[-1])).all(axis=0))
        if bad.size:
            raise WeightsError(
                f"{source}: {bn} would fold into {bad.size} NaN or infinite values (its "
                f"{what}, first at channel {bad[0]}): "
                f"check {bn}'s gamma, moving_mean and moving_variance")
