"""Generated convolution problems, shared by the kernel tests and the fused-path tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from mobilenet_np import ops

CASES = 200  # per kernel and per comparison, as the foundation issue asks


@dataclass
class ConvCase:
    """One generated convolution problem (shapes, stride, padding and seeded arrays)."""

    x: np.ndarray  # (N, H, W, Cin)
    kernel: np.ndarray  # conv: (kh, kw, Cin // groups, Cout); depthwise: (kh, kw, C, M)
    bias: np.ndarray | None
    stride: int
    padding: object
    groups: int = 1
    depthwise: bool = False

    def run(self, module, x=None, kernel=None, bias=None) -> np.ndarray:
        """Run ``module``'s kernel (``ops`` or ``reference``) on this case, or on replaced arrays."""
        x = self.x if x is None else x
        kernel = self.kernel if kernel is None else kernel
        bias = self.bias if bias is None else bias
        if self.depthwise:
            return module.depthwise_conv2d(x, kernel, bias, self.stride, self.padding)
        return module.conv2d(x, kernel, bias, self.stride, self.padding, self.groups)

    def abs_sum(self) -> np.ndarray:
        """The same convolution on |x|, |w| and |bias|: the size of what each output sums."""
        bias = None if self.bias is None else np.abs(self.bias)
        return self.run(ops, np.abs(self.x), np.abs(self.kernel), bias)

    def terms(self) -> int:
        """How many rounded additions each output element takes (taps x channels, + bias)."""
        kh, kw, cin, _ = self.kernel.shape
        return kh * kw * (1 if self.depthwise else cin) + 1

    def tf_padding(self):
        """The same padding in ``tf.nn``'s spelling."""
        if isinstance(self.padding, str):
            return self.padding.upper()
        return [[0, 0], list(self.padding[0]), list(self.padding[1]), [0, 0]]


paddings = st.one_of(
    st.sampled_from(["same", "valid"]),
    st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
              st.tuples(st.integers(0, 2), st.integers(0, 2))),
)


@st.composite
def conv_cases(draw, depthwise: bool = False, keras_grouped: bool = False) -> ConvCase:
    """Draw shapes (odd, even, non-square), kernel 1/3/5, stride 1/2, any padding form.

    ``keras_grouped`` draws only what Keras ``Conv2D`` takes: string padding and groups > 1.
    """
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kh, kw = draw(st.sampled_from([(1, 1), (3, 3), (5, 5), (3, 1), (1, 5), (2, 2)]))
    stride = draw(st.sampled_from([1, 2]))
    padding = draw(st.sampled_from(["same", "valid"]) if keras_grouped else paddings)
    if padding != "same":  # "same" always fits; the others need kernel <= padded input
        pads = ((0, 0), (0, 0)) if padding == "valid" else padding
        assume(kh <= h + sum(pads[0]) and kw <= w + sum(pads[1]))
    if depthwise:
        groups, channels = 1, draw(st.integers(1, 6))
        kernel_shape = (kh, kw, channels, draw(st.sampled_from([1, 2])))
        out_channels = channels * kernel_shape[3]
    else:
        groups = draw(st.sampled_from([2, 3] if keras_grouped else [1, 1, 2, 3]))
        channels = groups * draw(st.integers(1, 3))
        out_channels = groups * draw(st.integers(1, 3))
        kernel_shape = (kh, kw, channels // groups, out_channels)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.uniform(-1, 1, (n, h, w, channels)).astype(np.float32)
    kernel = rng.standard_normal(kernel_shape).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32) if draw(st.booleans()) else None
    return ConvCase(x, kernel, bias, stride, padding, groups, depthwise)
