"""The fast inference path: the same network as ``model.py``'s readable loop, rearranged for speed.

Three ideas, all pure NumPy:

1. **Fold batch norm into the convolution** at load time. At inference BN is a per-channel
   affine map, and a convolution is linear, so for output channel o::

       BN(conv(x, W))[o] = gamma[o] * (conv(x, W)[o] - mean[o]) / sqrt(var[o] + eps) + beta[o]
                         = conv(x, W * s)[o] + (beta[o] - mean[o] * s[o]),  s = gamma / sqrt(var + eps)

   One conv with scaled weights and a bias replaces conv + BN: a whole pass over memory saved.
2. **Fuse bias + ReLU6 in place** (``out=``), so no temporary arrays are made per layer.
3. **Depthwise in cache-sized row bands.** Depthwise is 3% of the MACs but memory-bound:
   nine multiplies and eight adds per output, each a separate NumPy pass. Over a band of rows
   that fits in the CPU cache those passes cost far less than over the whole activation.
   The 1x1 convolutions are matrix multiplies: BLAS already uses every core for them.
   (Threads for the depthwise bands were tried and measured: with OpenBLAS's own threads
   spinning between matmuls they gained nothing reliable on 2 cores, so they are not used.)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import ops
from .layers import BN_WEIGHTS, Layer
from .shapes import resolve_padding
from .weights import Params

ACTIVATIONS = ("relu6", "relu", "hard_swish")  # what a fused step may apply after its conv
BAND_BYTES = 1 << 18  # 256 KiB of output per depthwise band: fits in L2 with its input


def fold_batch_norm(
    kernel: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
    variance: np.ndarray, epsilon: float = 1e-3, depthwise: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold inference BN into the preceding conv: returns (kernel * s, beta - mean * s).

    kernel (..., Cout) for standard/pointwise; for depthwise (kh, kw, C, M) the BN channel of
    output c * M + m scales ``kernel[..., c, m]``. Computed in float64, returned as float32.
    """
    scale = gamma.astype(np.float64) / np.sqrt(variance.astype(np.float64) + epsilon)  # (Cout,)
    per_weight = scale.reshape(kernel.shape[-2:]) if depthwise else scale  # (C, M) or (Cout,)
    folded = kernel.astype(np.float64) * per_weight
    bias = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return folded.astype(np.float32), bias.astype(np.float32)


def activate_inplace(x: np.ndarray, kind: str | None) -> np.ndarray:
    """Apply relu6 / relu / hard_swish (or nothing: a linear bottleneck) to x in place."""
    if kind == "relu6":
        np.clip(x, 0.0, 6.0, out=x)
    elif kind == "relu":
        np.maximum(x, 0.0, out=x)
    elif kind == "hard_swish":  # x * relu6(x + 3) / 6, with one temporary
        gate = np.add(x, np.float32(3.0))
        np.clip(gate, 0.0, 6.0, out=gate)
        gate /= np.float32(6.0)
        x *= gate
    return x


class Conv:
    """im2col conv (standard or 1x1) with folded BN bias and an optional fused activation.

    (Blocking the matmul so that bias and activation hit cache was measured: no gain here.)
    """

    def __init__(self, layer: Layer, kernel: np.ndarray, bias: np.ndarray,
                 activation: str | None) -> None:
        self.layer, self.activation, self.kind = layer, activation, layer.kind
        kh, kw, cin, cout = kernel.shape
        self.matrix = np.ascontiguousarray(kernel.reshape(kh * kw * cin, cout))  # (K, Cout)
        self.bias = bias
        pads = resolve_padding(layer.padding, layer.input_shape[:2], (kh, kw),
                               (layer.stride, layer.stride), layer.name)
        self.gather = None if kh == 1 else im2col_indices(
            layer.input_shape, kh, layer.stride, pads, layer.output_shape[:2])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        out_h, out_w, cout = self.layer.output_shape
        if self.gather is None:  # 1x1: the activation already is the im2col matrix
            cols = x.reshape(n * out_h * out_w, -1)  # (N*H*W, Cin)
        else:
            flat = np.zeros((n, x[0].size + 1), dtype=np.float32)  # (N, H*W*C + 1): a 0 at the end
            flat[:, :-1] = x.reshape(n, -1)
            cols = np.take(flat, self.gather, axis=1).reshape(n * out_h * out_w, -1)  # (N*Ho*Wo, K)
        out = cols @ self.matrix  # (N*Ho*Wo, Cout)
        out += self.bias
        activate_inplace(out, self.activation)
        return out.reshape(n, out_h, out_w, cout)


def im2col_indices(input_shape: tuple[int, int, int], k: int, stride: int, pads,
                   out_hw: tuple[int, int]) -> np.ndarray:
    """Where each im2col entry comes from in one flattened image: (Ho*Wo*k*k*C,) indices.

    im2col is a gather: row (y, x) of the matrix holds the k*k*C inputs of that receptive
    field, in (ky, kx, c) order. Computing the positions once turns it into one ``np.take``
    per batch. Positions in the zero padding point one past the image, at an appended 0.
    """
    height, width, channels = input_shape
    (top, _), (left, _) = pads
    rows = stride * np.arange(out_hw[0])[:, None] + np.arange(k) - top  # (Ho, k): input row
    cols = stride * np.arange(out_hw[1])[:, None] + np.arange(k) - left  # (Wo, k)
    r = rows[:, None, :, None, None]  # (Ho, 1, k, 1, 1) to broadcast as (Ho, Wo, ky, kx, C)
    q = cols[None, :, None, :, None]  # (1, Wo, 1, k, 1)
    inside = (r >= 0) & (r < height) & (q >= 0) & (q < width)
    index = (r * width + q) * channels + np.arange(channels)  # (Ho, Wo, k, k, C)
    return np.where(inside, index, height * width * channels).reshape(-1)


class Depthwise:
    """Depthwise conv (depth multiplier 1) + folded BN + activation, in cache-sized row bands.

    Per-channel weights are tiled along the width, ``(Wo*C,)`` per tap, so that every NumPy
    call runs over whole contiguous rows of Wo * C numbers instead of C at a time.
    """

    def __init__(self, layer: Layer, pads, kernel: np.ndarray, bias: np.ndarray,
                 activation: str | None = "relu6") -> None:
        self.layer, self.pads, self.activation = layer, pads, activation
        self.kind = "depthwise_conv2d"
        out_w, channels = layer.output_shape[1:]
        kh, kw = kernel.shape[:2]
        self.kernel_rows = np.ascontiguousarray(  # (kh, kw, Wo*C): tap weights, tiled
            np.broadcast_to(kernel[:, :, None, :, 0], (kh, kw, out_w, channels))
        ).reshape(kh, kw, out_w * channels)
        self.bias_row = np.tile(bias, out_w)  # (Wo*C,)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        out_h, out_w, channels = self.layer.output_shape
        out = np.empty((n, out_h, out_w * channels), dtype=np.float32)  # (N, Ho, Wo*C)
        rows = max(1, BAND_BYTES // (out_w * channels * 4))
        for image in range(n):
            for start in range(0, out_h, rows):
                self._band(x, out[image, start:start + rows], image, start)
        return out.reshape(n, out_h, out_w, channels)

    def _padded_rows(self, x: np.ndarray, image: int, start: int, stop: int) -> np.ndarray:
        """The input rows that output rows [start, stop) read, zero-padded: (rows_in, Wp, C).

        Padding one small band at a time keeps it in cache (a padded copy of the whole
        activation would be one more trip through main memory).
        """
        (top, bottom), (left, right) = self.pads
        s, kh = self.layer.stride, self.kernel_rows.shape[0]
        height, width, channels = x.shape[1:]
        first, last = start * s - top, (stop - 1) * s + kh - top  # input rows, may fall outside
        band = np.zeros((last - first, left + width + right, channels), dtype=np.float32)
        lo, hi = max(first, 0), min(last, height)
        band[lo - first:hi - first, left:left + width] = x[image, lo:hi]
        return band

    def _band(self, x: np.ndarray, out: np.ndarray, image: int, start: int) -> None:
        """Output rows [start, start + len(out)) of one image into out (rows, Wo*C).

        One ``einsum`` per column phase does all the kh*kw taps: it multiplies and accumulates
        in one pass per tap (9 passes over the band, not 9 multiplies + 8 adds), then bias
        and activation in place.
        """
        s, kh = self.layer.stride, self.kernel_rows.shape[0]
        rows = out.shape[0]
        band = self._padded_rows(x, image, start, start + rows)  # (rows_in, Wp, C)
        for phase in range(s):
            taps = self._phase_taps(band, phase, rows)  # (rows, taps, kh, Wo*C), a view
            weights = self.kernel_rows[:, phase::s]  # (kh, taps, Wo*C)
            if phase == 0:
                np.einsum("rtiq,itq->rq", taps, weights, out=out)
            else:
                out += np.einsum("rtiq,itq->rq", taps, weights)
        out += self.bias_row
        activate_inplace(out, self.activation)

    def _phase_taps(self, band: np.ndarray, phase: int, rows: int) -> np.ndarray:
        """Every tap of one column phase as a strided view (rows, taps, kh, Wo*C), no copy.

        At stride s, output column x reads input column s*x + j; taps j = phase + s*t read
        column s*(x + t) + phase, i.e. column x + t of the phase's own columns ``[phase::s]``.
        Flattening (W, C) turns tap t into a shift by t*C along one contiguous row of numbers.
        """
        s, (kh, kw, _) = self.layer.stride, self.kernel_rows.shape
        width, channels = self.layer.output_shape[1:]
        columns = band if s == 1 else np.ascontiguousarray(band[:, phase::s])  # (rows_in, Wq, C)
        flat = columns.reshape(columns.shape[0], -1)  # (rows_in, Wq*C)
        windows = sliding_window_view(flat, (kh, width * channels))  # (.., .., kh, Wo*C)
        taps = len(range(phase, kw, s))
        return windows[: s * (rows - 1) + 1 : s, : (taps - 1) * channels + 1 : channels]


class Head:
    """Global pooling, then 1x1 stages on the pooled vector: matmul + bias (+ activation).

    V1: one stage (conv_preds); V2: one (the Dense layer); V3: two (conv_2 with hard-swish,
    then logits); no top: none, the pooled features are the output.
    """

    kind = "head"

    def __init__(self, pool: str, stages: list[tuple[np.ndarray, np.ndarray, str | None]]):
        self.pool, self.stages = pool, stages

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.mean(axis=(1, 2)) if self.pool == "avg" else x.max(axis=(1, 2))  # (N, C)
        for matrix, bias, activation in self.stages:
            x = activate_inplace(x @ matrix + bias, activation)  # (N, C')
        return x


class SqueezeExcite:
    """MobileNetV3's gate: x * hard_sigmoid(W2 relu(W1 mean(x) + b1) + b2), per channel."""

    kind = "squeeze_excite"

    def __init__(self, squeeze: tuple[np.ndarray, np.ndarray],
                 excite: tuple[np.ndarray, np.ndarray]) -> None:
        self.squeeze, self.excite = squeeze, excite

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ops.squeeze_excite(x, *self.squeeze, *self.excite)


class Rescale:
    """MobileNetV3's built-in preprocessing: pixels [0, 255] -> [-1, 1]."""

    kind = "rescaling"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ops.rescale_pixels(x)


class Residual:
    """MobileNetV2's shortcut: add the saved output of an earlier step (``source``)."""

    kind = "add"

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, x: np.ndarray, saved: dict[str, np.ndarray]) -> np.ndarray:
        return x + saved[self.source]


def run_step(step, x: np.ndarray, saved: dict[str, np.ndarray]) -> np.ndarray:
    """One step; ``saved`` holds the outputs that residual steps will add back."""
    return step(x, saved) if isinstance(step, Residual) else step(x)


def run_plan(plan: list, x: np.ndarray) -> np.ndarray:
    """Run fused steps in order: (N, H, W, 3) -> logits (N, classes) or features."""
    shortcuts = {step.source for step in plan if isinstance(step, Residual)}
    saved = {}
    for step in plan:
        x = run_step(step, x, saved)
        if step.covers[-1].name in shortcuts:
            saved[step.covers[-1].name] = x
    return x


def compile_plan(layers: list[Layer], params: Params) -> list:
    """Turn the layer table into fused steps: conv+BN+activation -> one ``Conv`` or
    ``Depthwise``, SE's six layers -> one ``SqueezeExcite``, pooling and the top -> ``Head``.

    Every step records the layers it replaces in ``step.covers`` (its output is the output of
    ``covers[-1]``), so costs and residual shortcuts are read off the table, not re-derived.
    Raises ValueError for tables it cannot fuse (e.g. depth multiplier > 1); the readable
    path runs those.
    """
    plan, i = [], 0
    while i < len(layers):
        start, layer = i, layers[i]
        pads = None
        if layer.kind == "zero_pad":  # merged into the next depthwise's own padding
            pads, i = layer.padding, i + 1
            layer = layers[i]
        if layer.kind == "rescaling":
            step, used = Rescale(), 1
        elif layer.kind == "global_average_pool" and any(
                later.kind == "multiply" for later in layers[i + 1:i + 6]):
            step, used = _squeeze_excite(layers[i:i + 6], params), 6  # pool .. multiply
        elif layer.kind in ("conv2d", "pointwise_conv2d", "depthwise_conv2d"):
            step, used = _fused_conv(layers[i:i + 3], params, pads)
        elif layer.kind == "add":
            step, used = Residual(layer.source), 1
        elif layer.kind in ("global_average_pool", "global_max_pool"):
            step, used = _head(layer, layers[i + 1:], params), len(layers) - i
        else:
            raise ValueError(f"the fast path has no step for {layer.kind} ({layer.name})")
        i += used
        step.covers = tuple(layers[start:i])
        plan.append(step)
    return plan


def _fused_conv(layers: list[Layer], params: Params, pads) -> tuple[object, int]:
    """conv, BN and (if one follows) its activation -> one step, and how many layers it took."""
    layer, bn = layers[0], layers[1]
    if bn.kind != "batch_norm":
        raise ValueError(f"cannot fuse {layer.name}: not followed by batch norm")
    follower = layers[2].kind if len(layers) > 2 else None
    activation = follower if follower in ACTIVATIONS else None  # None: a linear bottleneck
    depthwise = layer.kind == "depthwise_conv2d"
    weight = params[f"{layer.name}/{'depthwise_kernel' if depthwise else 'kernel'}"]
    kernel, bias = fold_batch_norm(weight, *(params[f"{bn.name}/{w}"] for w in BN_WEIGHTS),
                                   depthwise=depthwise)
    if not depthwise:
        if pads is not None:
            raise ValueError(f"the fast path pads only before a depthwise conv, not {layer.name}")
        return Conv(layer, kernel, bias, activation), 3 if activation else 2
    if kernel.shape[3] != 1:
        raise ValueError("the fast path's depthwise handles depth multiplier 1")
    return (Depthwise(layer, _merge_pads(pads, layer), kernel, bias, activation),
            3 if activation else 2)


def _matrix(layer: Layer, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """A 1x1 conv or dense layer's kernel as a (Cin, Cout) matrix, and its bias."""
    kernel = params[f"{layer.name}/kernel"]
    return kernel.reshape(-1, kernel.shape[-1]), params[f"{layer.name}/bias"]


def _head(pool: Layer, rest: list[Layer], params: Params) -> Head:
    """Pooling and the matmul stages after it (each with the activation that follows it)."""
    stages = []
    for i, layer in enumerate(rest):
        if layer.kind in ("classifier", "dense", "pointwise_conv2d"):
            follower = rest[i + 1].kind if i + 1 < len(rest) else None
            stages.append((*_matrix(layer, params),
                           follower if follower in ACTIVATIONS else None))
    return Head("avg" if pool.kind == "global_average_pool" else "max", stages)


def _squeeze_excite(layers: list[Layer], params: Params) -> SqueezeExcite:
    """pool, conv, relu, conv, hard_sigmoid, multiply -> one step."""
    kinds = [layer.kind for layer in layers]
    expected = ["global_average_pool", "pointwise_conv2d", "relu", "pointwise_conv2d",
                "hard_sigmoid", "multiply"]
    if kinds != expected:
        raise ValueError(f"the fast path knows squeeze-excite as {expected}, got {kinds}")
    return SqueezeExcite(_matrix(layers[1], params), _matrix(layers[3], params))


def _merge_pads(before, layer: Layer):
    """An explicit zero_pad followed by a conv's own padding is one padding."""
    own = resolve_padding(layer.padding, layer.input_shape[:2], (layer.kernel, layer.kernel),
                          (layer.stride, layer.stride), layer.name)
    if before is None:
        return own
    return tuple((a + c, b + d) for (a, b), (c, d) in zip(before, own, strict=True))
