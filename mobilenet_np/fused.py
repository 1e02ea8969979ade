"""The fused path's kernels and steps: the layers of ``ops.py``, rearranged for speed, pure NumPy.

The package has three tiers, named the same way everywhere: the *loop twins* of
``reference.py`` (plain loops, readable line by line), the *vectorised kernels* of ``ops.py``
(one NumPy call per layer: the readable ``forward``), and the *fused path* here and in
``plan.py`` (several layers per call: ``predict``). What the fused path does:

1. **Fold batch norm into the convolution** at load time (``plan.fold_batch_norm``). At
   inference BN is a per-channel affine map, and a convolution is linear, so for channel o::

       BN(conv(x, W))[o] = gamma[o] * (conv(x, W)[o] - mean[o]) / sqrt(var[o] + eps) + beta[o]
                         = conv(x, W * s)[o] + (beta[o] - mean[o] * s[o]),  s = gamma / sqrt(var + eps)

   One conv with scaled weights and a bias replaces conv + BN: a whole pass over memory saved.
2. **Fuse bias + activation in place** (``out=``), so no temporary arrays are made per layer.
3. **Depthwise by einsum, in cache-sized row bands.** Depthwise is 3% of the MACs but
   memory-bound: every tap is a pass over the activation. One ``einsum`` over a strided view
   of all the taps multiplies and accumulates in one pass per tap (a multiply and an add
   would be two), and over a band of rows that fits in the CPU cache.
4. **im2col as one gather** (``np.take``) with indices computed once: the stem's 3-channel
   input makes a copy-per-tap im2col crawl along runs of 3 numbers.

The 1x1 convolutions are matrix multiplies: BLAS runs them at close to its peak already.
Each class below is one fused *step*, made from one ``plan.Unit`` (``STEPS`` says which class
runs which op): it runs the layers the unit covers and outputs what the last of them would.
"""

from __future__ import annotations

import numpy as np

from . import ops
from .errors import UnsupportedError
from .kinds import run_layer
from .plan import Unit

BAND_BYTES = 1 << 18  # 256 KiB of output per depthwise band: fits in L2 with its input


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    x += np.float32(3.0)
    np.clip(x, 0.0, 6.0, out=x)
    x /= np.float32(6.0)
    return x


def _hard_swish(x: np.ndarray) -> np.ndarray:
    """x * relu6(x + 3) / 6, with one temporary."""
    x *= _hard_sigmoid(x.copy())
    return x


def _gelu(x: np.ndarray) -> np.ndarray:
    """MobileNetV4-Hybrid-Large's exact GELU (erf has no in-place form: computed, copied back)."""
    x[...] = ops.gelu(x)
    return x


# The activations a fused step applies in place to its output, by kind (None: linear).
INPLACE = {None: lambda x: x, "relu": lambda x: np.maximum(x, 0.0, out=x),
           "relu6": lambda x: np.clip(x, 0.0, 6.0, out=x), "hard_sigmoid": _hard_sigmoid,
           "hard_swish": _hard_swish, "gelu": _gelu}


def activate_inplace(x: np.ndarray, kind: str | None) -> np.ndarray:
    """Apply an activation kind (or nothing: a linear bottleneck) to x in place."""
    return INPLACE[kind](x)


class Step:
    """A fused step: one call for the table layers its unit covers, producing the last one's output."""

    def __init__(self, unit: Unit) -> None:
        if unit.activation not in INPLACE:
            raise UnsupportedError(f"the fused path cannot apply {unit.activation} in place "
                                   f"({unit.name}): add it to fused.INPLACE")
        self.unit = unit

    @property
    def name(self) -> str:
        return self.unit.name

    @property
    def source(self) -> str | None:  # a step that joins an earlier output names it here
        return self.unit.source


class Conv(Step):
    """im2col conv (standard or 1x1) with folded BN bias and an optional fused activation.

    (Blocking the matmul so that bias and activation hit cache was measured: no gain here.)
    """

    def __init__(self, unit: Unit) -> None:
        super().__init__(unit)
        kh, kw, cin, cout = unit.kernel.shape
        self.matrix = np.ascontiguousarray(unit.kernel.reshape(kh * kw * cin, cout))  # (K, Cout)
        plain_1x1 = (kh, kw, unit.stride, unit.pads) == (1, 1, 1, ((0, 0), (0, 0)))
        self.gather = None if plain_1x1 else im2col_indices(
            unit.input_shape, (kh, kw), unit.stride, unit.pads, unit.output_shape[:2])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.matmul(x)  # (N*Ho*Wo, Cout)
        out += self.unit.bias
        activate_inplace(out, self.unit.activation)
        return out.reshape(len(x), *self.unit.output_shape)

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """The convolution without its bias: im2col, then one matmul; (N*Ho*Wo, Cout)."""
        n = x.shape[0]
        out_h, out_w, _ = self.unit.output_shape
        if self.gather is None:  # 1x1: the activation already is the im2col matrix
            cols = x.reshape(n * out_h * out_w, -1)  # (N*H*W, Cin)
        else:
            flat = np.empty((n, x[0].size + 1), dtype=np.float32)  # (N, H*W*C + 1)
            flat[:, :-1], flat[:, -1] = x.reshape(n, -1), 0.0  # the image, then the padding's 0
            cols = np.take(flat, self.gather, axis=1).reshape(n * out_h * out_w, -1)  # (N*Ho*Wo, K)
        return cols @ self.matrix


def im2col_indices(input_shape: tuple[int, int, int], kernel_hw: tuple[int, int], stride: int,
                   pads, out_hw: tuple[int, int]) -> np.ndarray:
    """Where each im2col entry comes from in one flattened image: (Ho*Wo*kh*kw*C,) indices.

    im2col is a gather: row (y, x) of the matrix holds the kh*kw*C inputs of that receptive
    field, in (ky, kx, c) order. Computing the positions once turns it into one ``np.take``
    per batch. Positions in the zero padding point one past the image, at an appended 0.
    """
    height, width, channels = input_shape
    (top, _), (left, _) = pads
    rows = stride * np.arange(out_hw[0])[:, None] + np.arange(kernel_hw[0]) - top  # (Ho, kh)
    cols = stride * np.arange(out_hw[1])[:, None] + np.arange(kernel_hw[1]) - left  # (Wo, kw)
    r = rows[:, None, :, None, None]  # (Ho, 1, kh, 1, 1) to broadcast as (Ho, Wo, kh, kw, C)
    q = cols[None, :, None, :, None]  # (1, Wo, 1, kw, 1)
    inside = (r >= 0) & (r < height) & (q >= 0) & (q < width)
    index = (r * width + q) * channels + np.arange(channels)  # (Ho, Wo, kh, kw, C)
    return np.where(inside, index, height * width * channels).reshape(-1)


class Depthwise(Step):
    """Depthwise conv + folded BN + activation, in cache-sized row bands.

    Per-channel weights are tiled along the width, ``(Wo*C,)`` per tap, so that every NumPy
    call runs over whole contiguous rows of Wo * C numbers instead of C at a time. With a
    depth multiplier M, each band repeats every input channel M times first: output channel
    c * M + m is then an ordinary depthwise channel with its own filter.
    """

    def __init__(self, unit: Unit, band_bytes: int = BAND_BYTES) -> None:
        super().__init__(unit)
        self.band_bytes, self.stride = band_bytes, unit.stride
        out_w, channels = unit.output_shape[1:]  # channels = C * M
        kh, kw, _, self.multiplier = unit.kernel.shape
        self.kernel_rows = np.ascontiguousarray(  # (kh, kw, Wo*C*M): tap weights, tiled
            np.broadcast_to(unit.kernel.reshape(kh, kw, 1, channels), (kh, kw, out_w, channels))
        ).reshape(kh, kw, out_w * channels)
        self.bias_row = np.tile(unit.bias, out_w)  # (Wo*C,)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        out_h, out_w, channels = self.unit.output_shape
        out = np.empty((n, out_h, out_w * channels), dtype=np.float32)  # (N, Ho, Wo*C)
        rows = max(1, self.band_bytes // (out_w * channels * 4))
        for image in range(n):
            for start in range(0, out_h, rows):
                self._band(x, out[image, start:start + rows], image, start)
        return out.reshape(n, out_h, out_w, channels)

    def _band(self, x: np.ndarray, out: np.ndarray, image: int, start: int) -> None:
        """Output rows [start, start + len(out)) of one image into out (rows, Wo*C).

        One ``einsum`` per column phase does all the kh*kw taps: it multiplies and accumulates
        in one pass per tap (9 passes over the band, not 9 multiplies + 8 adds), then bias
        and activation in place.
        """
        s = self.stride
        for phase in range(s):
            columns = self._padded_columns(x, image, start, start + len(out), phase)
            taps = self._phase_taps(columns, phase, len(out))  # (rows, taps, kh, Wo*C), a view
            weights = self.kernel_rows[:, phase::s]  # (kh, taps, Wo*C)
            if phase == 0:
                np.einsum("rtiq,itq->rq", taps, weights, out=out)
            else:
                out += np.einsum("rtiq,itq->rq", taps, weights)
        out += self.bias_row
        activate_inplace(out, self.unit.activation)

    def _padded_columns(self, x: np.ndarray, image: int, start: int, stop: int,
                        phase: int) -> np.ndarray:
        """The zero-padded input rows that output rows [start, stop) read, keeping only the
        padded columns ``phase, phase + s, ...``: (rows_in, Wq, C), contiguous.

        At stride 1 that is the whole padded band. Padding one small band at a time keeps it
        in cache (a padded copy of the whole activation is one more trip through memory).
        """
        (top, _), (left, _) = self.unit.pads
        s, kh = self.stride, self.kernel_rows.shape[0]
        height, width, channels = x.shape[1:]
        first, last = start * s - top, (stop - 1) * s + kh - top  # input rows, may fall outside
        padded_width = s * (self.unit.output_shape[1] - 1) + self.kernel_rows.shape[1]
        band = np.zeros((last - first, len(range(phase, padded_width, s)),
                         channels * self.multiplier), np.float32)  # (rows_in, Wq, C*M)
        lo = max(first, 0)
        hi = max(lo, min(last, height))  # a band wholly in the top padding reads no row
        # Padded column j is input column j - left; the first one inside the image is j0,
        # which lands in band column k0. Columns past the last one any tap reads are dropped.
        j0 = phase + s * max(0, -(-(left - phase) // s))
        k0 = (j0 - phase) // s
        inputs = x[image, lo:hi, j0 - left::s][:, :band.shape[1] - k0]
        if self.multiplier > 1:
            inputs = np.repeat(inputs, self.multiplier, axis=-1)  # channel c -> c*M .. c*M+M-1
        band[lo - first:hi - first, k0:k0 + inputs.shape[1]] = inputs
        return band

    def _phase_taps(self, columns: np.ndarray, phase: int, rows: int) -> np.ndarray:
        """Every tap of one column phase as a strided view (rows, taps, kh, Wo*C), no copy.

        At stride s, output column x reads input column s*x + j; taps j = phase + s*t read
        column s*(x + t) + phase, i.e. column x + t of the phase's own columns. Flattening
        (W, C) turns tap t into a shift by t*C along one contiguous row of numbers, and tap
        row i into a shift by i rows: a view with four strides over the same memory.
        """
        s, (kh, kw, row_length) = self.stride, self.kernel_rows.shape
        channels = columns.shape[2]
        row_step, item = columns.strides[0], columns.itemsize
        shape = (rows, len(range(phase, kw, s)), kh, row_length)
        return np.ndarray(shape, np.float32, columns, 0,  # checked against the buffer's size
                          (s * row_step, channels * item, row_step, item))


class SqueezeExcite(Step):
    """MobileNetV3's gate: x * hard_sigmoid(W2 relu(W1 mean(x) + b1) + b2), per channel."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        squeeze, excite = self.unit.stages
        return ops.squeeze_excite(x, squeeze.matrix, squeeze.bias, excite.matrix, excite.bias)


class Residual(Step):
    """MobileNetV2's shortcut: add the saved output of an earlier step (``source``)."""

    def __call__(self, x: np.ndarray, earlier: np.ndarray) -> np.ndarray:
        return x + earlier


class Rescale(Step):
    """MobileNetV3's built-in preprocessing: pixels [0, 255] -> [-1, 1]."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ops.rescale_pixels(x)


class Head(Step):
    """Global pooling, then 1x1 stages on the pooled vector: matmul + bias (+ activation).

    V1: one stage (conv_preds); V2: one (the Dense layer); V3: two (conv_2 with hard-swish,
    then logits); no top: none, the pooled features are the output.
    """

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.mean(axis=(1, 2)) if self.unit.pool == "avg" else x.max(axis=(1, 2))  # (N, C)
        for stage in self.unit.stages:
            x = activate_inplace(x @ stage.matrix + stage.bias, stage.activation)  # (N, C')
        return x


class Attention(Step):
    """MobileNetV4's mobile MQA by its kind's vectorised kernel, on weights whose output
    projection carries the layer scale that followed it (``plan.fold_layer_scale``)."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        layer = self.unit.covers[0]
        return run_layer(layer, x, self.unit.weights[layer.name])


class Layers(Step):
    """A unit without a fused op of its own: its layers, one vectorised kernel each."""

    def __call__(self, x: np.ndarray, earlier: np.ndarray | None = None) -> np.ndarray:
        outputs: dict[str, np.ndarray] = {}  # joins inside the unit read their source here
        for layer in self.unit.covers:
            other = outputs.get(layer.source, earlier) if layer.source else None
            x = outputs[layer.name] = run_layer(layer, x, self.unit.weights[layer.name], other)
        return x


# Which step class runs each op of ``plan.Unit``.
STEPS = {"conv": Conv, "depthwise": Depthwise, "squeeze_excite": SqueezeExcite, "add": Residual,
         "rescale": Rescale, "head": Head, "attention": Attention, "layers": Layers}
