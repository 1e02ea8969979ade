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

from .layers import BN_WEIGHTS, Layer
from .shapes import resolve_padding
from .weights import Params

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


def relu6_inplace(x: np.ndarray) -> np.ndarray:
    """min(max(x, 0), 6) without a temporary."""
    return np.clip(x, 0.0, 6.0, out=x)


class Conv:
    """im2col conv (standard or 1x1) with folded BN bias and an optional fused ReLU6."""

    def __init__(self, layer: Layer, kernel: np.ndarray, bias: np.ndarray, relu: bool) -> None:
        self.layer, self.relu = layer, relu
        kh, kw, cin, cout = kernel.shape
        self.matrix = np.ascontiguousarray(kernel.reshape(kh * kw * cin, cout))  # (K, Cout)
        self.bias = bias
        self.pads = resolve_padding(layer.padding, layer.input_shape[:2], (kh, kw),
                                    (layer.stride, layer.stride), layer.name)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        out_h, out_w, cout = self.layer.output_shape
        if self.matrix.shape[0] == x.shape[-1]:  # 1x1: the activation already is the matrix
            cols = x.reshape(n * out_h * out_w, -1)  # (N*H*W, Cin)
        else:
            cols = im2col(x, self.layer.kernel, self.layer.stride, self.pads, (out_h, out_w))
        out = cols @ self.matrix  # (N*Ho*Wo, Cout)
        out += self.bias
        if self.relu:
            relu6_inplace(out)
        return out.reshape(n, out_h, out_w, cout)


def im2col(x: np.ndarray, k: int, stride: int, pads, out_hw: tuple[int, int]) -> np.ndarray:
    """(N, H, W, C) -> (N*Ho*Wo, k*k*C): row = one receptive field, taps in (ky, kx, c) order."""
    n, _, _, c = x.shape
    out_h, out_w = out_hw
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    cols = np.empty((n, out_h, out_w, k, k, c), dtype=np.float32)
    for i in range(k):
        for j in range(k):
            cols[:, :, :, i, j] = xp[:, i:i + stride * out_h:stride, j:j + stride * out_w:stride]
    return cols.reshape(n * out_h * out_w, k * k * c)


class Depthwise:
    """Depthwise conv (depth multiplier 1) + folded BN + ReLU6, in cache-sized row bands.

    Per-channel weights are tiled along the width, ``(Wo, C)``, so that every NumPy call
    runs over whole contiguous rows of Wo * C numbers instead of C at a time.
    """

    def __init__(self, layer: Layer, pads, kernel: np.ndarray, bias: np.ndarray) -> None:
        self.layer, self.pads = layer, pads
        out_w, channels = layer.output_shape[1:]
        kh, kw = kernel.shape[:2]
        self.kernel_rows = np.ascontiguousarray(  # (kh, kw, Wo, C): tap weights, tiled
            np.broadcast_to(kernel[:, :, None, :, 0], (kh, kw, out_w, channels)))
        self.bias_row = np.ascontiguousarray(np.broadcast_to(bias, (out_w, channels)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        out_h, out_w, channels = self.layer.output_shape
        out = np.empty((n, out_h, out_w, channels), dtype=np.float32)
        rows = max(1, BAND_BYTES // (out_w * channels * 4))
        for image in range(n):
            for start in range(0, out_h, rows):
                self._band(x, out, image, start, min(start + rows, out_h))
        return out

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

    def _band(self, x: np.ndarray, out: np.ndarray, image: int, start: int, stop: int) -> None:
        """Output rows [start, stop) of one image: kh*kw shifted multiply-adds, bias, ReLU6."""
        s = self.layer.stride
        band = self._padded_rows(x, image, start, stop)
        # Column phases: at stride 2, even and odd columns as two contiguous arrays, so tap j
        # reads phases[j % s][:, j // s : j // s + Wo] without a stride along W.
        phases = [band] if s == 1 else [np.ascontiguousarray(band[:, p::s]) for p in range(s)]
        acc = out[image, start:stop]  # (rows, Wo, C), a view we write into
        tmp = np.empty_like(acc)
        rows, width = acc.shape[:2]
        kh, kw = self.kernel_rows.shape[:2]
        for i in range(kh):
            for j in range(kw):
                tap = phases[j % s][i:i + s * (rows - 1) + 1:s, j // s:j // s + width]
                if i == 0 and j == 0:
                    np.multiply(tap, self.kernel_rows[i, j], out=acc)
                else:
                    np.multiply(tap, self.kernel_rows[i, j], out=tmp)
                    acc += tmp
        acc += self.bias_row
        relu6_inplace(acc)


class Head:
    """Global average pool -> classifier (a matmul) -> softmax or logits; or pooling only."""

    def __init__(self, pool: str, kernel: np.ndarray | None, bias: np.ndarray | None) -> None:
        self.pool, self.kernel, self.bias = pool, kernel, bias

    def __call__(self, x: np.ndarray) -> np.ndarray:
        pooled = x.mean(axis=(1, 2)) if self.pool == "avg" else x.max(axis=(1, 2))  # (N, C)
        return pooled if self.kernel is None else pooled @ self.kernel + self.bias


class Residual:
    """MobileNetV2's shortcut: add the saved output of an earlier step (``source``)."""

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
        if getattr(step, "output_name", None) in shortcuts:
            saved[step.output_name] = x
    return x


def compile_plan(layers: list[Layer], params: Params) -> list:
    """Turn the layer table into fused steps: conv+BN+ReLU6 -> one ``Conv`` or ``Depthwise``.

    Raises ValueError for tables it cannot fuse (e.g. depth multiplier > 1); the readable
    path runs those.
    """
    plan, i, pads = [], 0, None
    while i < len(layers):
        layer = layers[i]
        if layer.kind == "zero_pad":  # merged into the next depthwise's own padding
            pads = layer.padding
            i += 1
            continue
        if layer.kind in ("conv2d", "pointwise_conv2d", "depthwise_conv2d"):
            bn = layers[i + 1]
            relu = i + 2 < len(layers) and layers[i + 2].kind == "relu6"
            if bn.kind != "batch_norm":
                raise ValueError(f"cannot fuse {layer.name}: not followed by batch norm")
            depthwise = layer.kind == "depthwise_conv2d"
            weight = params[f"{layer.name}/{'depthwise_kernel' if depthwise else 'kernel'}"]
            statistics = (params[f"{bn.name}/{w}"] for w in BN_WEIGHTS)
            kernel, bias = fold_batch_norm(weight, *statistics, depthwise=depthwise)
            if depthwise:
                if kernel.shape[3] != 1 or not relu:
                    raise ValueError("the fast path's depthwise needs multiplier 1 and ReLU6")
                step = Depthwise(layer, _merge_pads(pads, layer), kernel, bias)
            else:
                step = Conv(layer, kernel, bias, relu=relu)  # no ReLU6: a linear bottleneck
            step.output_name = layers[i + 1 + relu].name  # the layer whose output it produces
            plan.append(step)
            pads = None
            i += 2 + relu
            continue
        if layer.kind == "add":
            residual = Residual(layer.source)
            residual.output_name = layer.name
            plan.append(residual)
            i += 1
            continue
        if layer.kind in ("global_average_pool", "global_max_pool"):
            classifier = next((later for later in layers[i:]
                               if later.kind in ("classifier", "dense")), None)
            kernel = None if classifier is None else \
                params[f"{classifier.name}/kernel"].reshape(-1, classifier.output_shape[0])
            bias = None if classifier is None else params[f"{classifier.name}/bias"]
            plan.append(Head("avg" if layer.kind == "global_average_pool" else "max", kernel, bias))
            break
        raise ValueError(f"the fast path has no step for {layer.kind} ({layer.name})")
    return plan


def _merge_pads(before, layer: Layer):
    """An explicit zero_pad followed by a conv's own padding is one padding."""
    own = resolve_padding(layer.padding, layer.input_shape[:2], (layer.kernel, layer.kernel),
                          (layer.stride, layer.stride), layer.name)
    if before is None:
        return own
    return tuple((a + c, b + d) for (a, b), (c, d) in zip(before, own, strict=True))
