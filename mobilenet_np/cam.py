"""Where the network looks: class activation maps, forward only, and their overlay on a photo.

V1 and V2 end with global average pooling and one linear classifier, so a class's logit is the
spatial mean of a map plus a bias: z_c = mean_ij(A_ij . W[:, c]) + b_c, with A (H, W, C) the last
feature map. That map, CAM_c = A . W[:, c] (Zhou et al., 2016), is exact: its mean plus the
bias *is* the logit. MobileNetV3 puts a 1x1 convolution and hard-swish between the pooling and
the classifier, so the logit is no longer linear in A. Grad-CAM (Selvaraju et al., 2017) then
weighs A's channels by the gradient of the logit with respect to the pooled vector: for a head
this short, the chain rule written out by hand (``head_gradient``), no autograd. With a linear
head that gradient is W[:, c], so one function gives both maps.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from . import ops
from .errors import InputError, UnsupportedError
from .files import atomic_output
from .kinds import BN_EPSILON, BN_WEIGHTS
from .layers import Layer

LINEAR = ("classifier", "dense", "pointwise_conv2d")  # kernel (C, K) (or (1, 1, C, K)), bias
RESHAPES = ("flatten",)  # (N, 1, 1, K) -> (N, K): nothing to differentiate


def _slope_relu(z: np.ndarray) -> np.ndarray:
    return (z > 0).astype(z.dtype)


def _slope_relu6(z: np.ndarray) -> np.ndarray:
    return ((z > 0) & (z < 6)).astype(z.dtype)


def _slope_hard_sigmoid(z: np.ndarray) -> np.ndarray:
    return ((z > -3) & (z < 3)).astype(z.dtype) / 6


def _slope_hard_swish(z: np.ndarray) -> np.ndarray:
    # d/dz [z * relu6(z + 3) / 6]: 0 below -3, (2z + 3) / 6 between, 1 above 3
    return np.where(z <= -3, 0, np.where(z >= 3, 1, (2 * z + 3) / 6)).astype(z.dtype)


def _slope_gelu(z: np.ndarray) -> np.ndarray:
    # d/dz [z * Phi(z)] = Phi(z) + z * phi(z): MobileNetV4-Hybrid-Large's head
    wide = z.astype(np.float64)
    cdf = 0.5 * (1.0 + ops.erf(wide * np.sqrt(0.5)))
    return (cdf + wide * np.exp(-0.5 * wide**2) / np.sqrt(2 * np.pi)).astype(z.dtype)


SLOPES = {"relu": _slope_relu, "relu6": _slope_relu6, "hard_sigmoid": _slope_hard_sigmoid,
          "hard_swish": _slope_hard_swish, "gelu": _slope_gelu}  # activation kind -> derivative


def batch_norm_affine(layer: Layer, weights: dict) -> tuple[np.ndarray, np.ndarray]:
    """Inference batch norm as scale * x + shift, per channel, in float64: (C,), (C,)."""
    gamma, beta, mean, variance = (weights[name].astype(np.float64) for name in BN_WEIGHTS)
    scale = gamma / np.sqrt(variance + layer.options.get("epsilon", BN_EPSILON))
    return scale, beta - mean * scale


def split_head(model) -> tuple[Layer, list[Layer]]:
    """The layer whose output the global average pooling reads, and the layers after it up to
    the logits (V1: the classifier; V3: 1x1 conv, hard-swish, 1x1 conv, flatten)."""
    steps = model.steps("logits")
    pools = [i for i, layer in enumerate(steps) if layer.kind == "global_average_pool"]
    if not model.include_top or not pools:
        raise UnsupportedError(f"{model.family.title}: a class activation map needs the "
                               f"classifier after global average pooling: build it with "
                               f"include_top=True")
    last = pools[-1]
    return steps[last - 1], steps[last + 1:]


def head_gradient(model, pooled: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """d logit[class] / d pooled, by the chain rule backwards through the head: (N, C).

    pooled (N, C) is the global average of the last feature map, classes (N,) one class per
    image. A linear layer sends the gradient back through its kernel's transpose, batch norm
    and an activation multiply it by their slope at the layer's input; float64 throughout.
    """
    _, head = split_head(model)
    h, saved = pooled.reshape(len(pooled), -1).astype(np.float64), []  # (N, C)
    for layer in head:  # forward, keeping what the backward pass needs
        weights = model.layer_weights(layer)
        if layer.kind in LINEAR:
            kernel = weights["kernel"].reshape(-1, weights["kernel"].shape[-1])  # (C, K)
            saved.append(kernel.astype(np.float64))
            h = h @ saved[-1] + weights.get("bias", 0)
        elif layer.kind == "batch_norm":  # MobileNetV4's head: an affine map per channel
            scale, shift = batch_norm_affine(layer, weights)
            saved.append(scale)
            h = h * scale + shift
        elif layer.kind in SLOPES:
            saved.append(SLOPES[layer.kind](h))
            h = model.run_layer(layer, h.astype(np.float32), None).astype(np.float64)
        elif layer.kind in RESHAPES:
            saved.append(None)
        else:
            raise UnsupportedError(f"{model.family.title}: no gradient for the head's "
                                   f"{layer.kind} layer {layer.name}")
    grad = np.zeros_like(h)  # (N, K): d logit[class] / d logits is one-hot
    grad[np.arange(len(h)), classes] = 1
    for layer, kept in zip(reversed(head), reversed(saved), strict=True):
        if layer.kind in LINEAR:
            grad = grad @ kept.T  # (N, K) @ (K, C) -> (N, C)
        elif kept is not None:  # an activation's slope, or batch norm's scale
            grad = grad * kept
    return grad


def class_activation_maps(model, x: np.ndarray, classes: np.ndarray | None = None,
                          check_range: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each image's map for its class (default: its top-1): (N, H, W), classes (N,), logits.

    The map is A . g with A (N, H, W, C) the last feature map and g (N, C) the head gradient:
    CAM for a linear head (its mean plus the bias is the logit), Grad-CAM otherwise (its
    channel weights H*W times Grad-CAM's, so the map is on the logit's scale). x and
    ``check_range`` as in ``Network.forward``.
    """
    logits, activations = model.forward(x, output="logits", capture=True, check_range=check_range)
    features = activations[split_head(model)[0].name]  # (N, H, W, C)
    if classes is None:
        classes = logits.argmax(axis=1)
    classes = np.asarray(classes).reshape(-1)
    if len(classes) != len(x) or not np.all((classes >= 0) & (classes < logits.shape[1])):
        raise InputError(f"classes must be {len(x)} class indices in [0, {logits.shape[1]}), "
                         f"got {classes.tolist()}")
    gradient = head_gradient(model, features.mean(axis=(1, 2)), classes).astype(np.float32)
    return np.einsum("nhwc,nc->nhw", features, gradient), classes, logits


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (H, W) -> RGB (H, W, 3) in [0, 1]: red at 0 turning yellow at 1."""
    return np.stack([np.ones_like(values), values, np.zeros_like(values)], axis=-1)


def overlay(image: np.ndarray, cam: np.ndarray, strength: float = 0.8) -> np.ndarray:
    """A photo (H, W, 3) in [0, 255] with a map (h, w)'s positive part drawn over it: uint8.

    The map is resized bilinearly to the photo and scaled by its peak; each pixel is blended
    with the heat colour in proportion to its value, so where the map is 0 the photo shows.
    """
    image, cam = np.asarray(image, np.float32), np.asarray(cam, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3 or cam.ndim != 2:
        raise InputError(f"overlay takes an image (H, W, 3) and a map (h, w), got "
                         f"{image.shape} and {cam.shape}")
    if not np.isfinite(cam).all():
        raise InputError("the map holds NaN or infinity: the model's output is invalid")
    size = image.shape[1], image.shape[0]  # Pillow's (width, height)
    resized = np.asarray(Image.fromarray(cam).resize(size, Image.BILINEAR))  # (H, W)
    peak = resized.max()
    values = np.maximum(resized, 0) / peak if peak > 0 else np.zeros_like(resized)
    alpha = strength * values[..., None]  # (H, W, 1)
    blended = (1 - alpha) * image + alpha * 255 * heat_colours(values)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def check_png_path(path: str | os.PathLike) -> None:
    """Refuse a destination that is not named *.png (the overlay is written as PNG)."""
    if not os.fspath(path).lower().endswith(".png"):
        raise InputError(f"{path}: the overlay is written as PNG: name the file *.png")


def write_overlay(path: str | os.PathLike, image: np.ndarray, cam: np.ndarray) -> None:
    """Write ``overlay(image, cam)`` to a .png file, atomically (no half-written file)."""
    check_png_path(path)
    picture = Image.fromarray(overlay(image, cam))
    with atomic_output(path) as temporary:
        picture.save(temporary, format="PNG")
