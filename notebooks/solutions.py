"""Reference answers to the notebooks' exercises, kept out of the notebooks' text.

``course.Exercises.check`` uses them when ``MOBILENET_NP_SOLUTIONS=1`` (CI runs every notebook
that way too), and ``ex.answer(n)`` prints them. Number answers are worked out the way the
exercise text suggests, not copied from the checks; code answers are what a student could write.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mobilenet_np import ops
from mobilenet_np.cost import network_cost
from mobilenet_np.families.v1 import SLIM, V1
from mobilenet_np.families.v2 import V2
from mobilenet_np.layers import correct_pad

SOLUTIONS: dict[tuple[str, int], Callable[..., object]] = {}


def solution(notebook: str, number: int) -> Callable:
    """Decorator: file a function returning the reference answer of one exercise."""
    def add(answer: Callable[..., object]) -> Callable[..., object]:
        SOLUTIONS[(notebook, number)] = answer
        return answer
    return add


# 01 -------------------------------------------------------------------------------------------

@solution("01", 1)
def _01_1():
    return (1, math.ceil(225 / 2), math.ceil(225 / 2), 16)


@solution("01", 2)
def _01_2():
    return (2 * (10 - 5 + 1) * (12 - 5 + 1), 5 * 5 * 4)


@solution("01", 3)
def _01_3():
    def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
        """TF's "same" padding along one axis: (before, after)."""
        out = math.ceil(size / stride)
        needed = max((out - 1) * stride + kernel - size, 0)
        return needed // 2, needed - needed // 2
    return tf_same_padding


@solution("01", 4)
def _01_4():
    def im2col(x: np.ndarray, kh: int, kw: int) -> np.ndarray:
        """Every kh x kw window of x (stride 1, "valid") as one row: (N*Ho*Wo, kh*kw*C)."""
        windows = sliding_window_view(x, (kh, kw), axis=(1, 2))  # (N, Ho, Wo, C, kh, kw)
        return windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * x.shape[-1])
    return im2col


# 02 -------------------------------------------------------------------------------------------

@solution("02", 1)
def _02_1():
    return 3 * 3 * 64 * 56 * 56 + 64 * 128 * 56 * 56


@solution("02", 2)
def _02_2():
    return round(1 / (1 / 512 + 1 / 5**2), 2)


@solution("02", 3)
def _02_3():
    cost = network_cost(V1.layers())
    pointwise = sum(c.macs for c in cost["layers"] if c.kind == "pointwise_conv2d")
    return round(pointwise / cost["total_macs"], 3)


@solution("02", 4)
def _02_4():
    def depthwise_by_loops(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        """Depthwise conv, stride 1, "same" padding, odd k: x (1, H, W, C), kernel (k, k, C, 1)."""
        _, height, width, channels = x.shape
        k = kernel.shape[0]
        out = np.zeros((1, height, width, channels), np.float32)
        for oy in range(height):
            for ox in range(width):
                for ky in range(k):
                    for kx in range(k):
                        iy, ix = oy + ky - k // 2, ox + kx - k // 2
                        if 0 <= iy < height and 0 <= ix < width:
                            out[0, oy, ox] += x[0, iy, ix] * kernel[ky, kx, :, 0]
        return out
    return depthwise_by_loops


@solution("02", 5)
def _02_5():
    def depthwise_as_grouped(kernel: np.ndarray) -> np.ndarray:
        """(kh, kw, C, M) depthwise kernel -> (kh, kw, 1, C*M) for ops.conv2d(groups=C)."""
        kh, kw, channels, multiplier = kernel.shape
        return kernel.reshape(kh, kw, 1, channels * multiplier)
    return depthwise_as_grouped


# 03 -------------------------------------------------------------------------------------------

@solution("03", 1)
def _03_1():
    return (224 // 8, 224 // 8, int(256 * 0.25))


@solution("03", 2)
def _03_2():
    def stable_softmax(logits: np.ndarray) -> np.ndarray:
        """Softmax over the last axis that never overflows."""
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)
    return stable_softmax


@solution("03", 3)
def _03_3():
    def fold_depthwise_bn(kernel, gamma, beta, mean, variance, epsilon=1e-3):
        """Fold inference BN into a (kh, kw, C, 1) depthwise kernel: (kernel', bias)."""
        scale = gamma / np.sqrt(variance + epsilon)  # one per channel c
        return kernel * scale[:, None], beta - mean * scale  # scale[c] multiplies kernel[..., c, 0]
    return fold_depthwise_bn


# 04 -------------------------------------------------------------------------------------------

@solution("04", 1)
def _04_1():
    def float32_epsilon() -> np.float32:
        """The gap between 1 and the next float32, found by halving."""
        one, eps = np.float32(1), np.float32(1)
        while one + eps / np.float32(2) > one:
            eps = eps / np.float32(2)
        return eps
    return float32_epsilon


@solution("04", 2)
def _04_2():
    from course import broken_model

    import mobilenet_np as mnp

    x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    _, before = mnp.MobileNet(alpha=0.25, resolution=128, weights=None, seed=1).forward(
        x, capture=True)
    _, after = broken_model().forward(x, capture=True)
    return next(name for name in before if not np.array_equal(before[name], after[name]))


# 05 -------------------------------------------------------------------------------------------

@solution("05", 1)
def _05_1():
    return round((224 / 128) ** 2, 2)  # 3.06: the classifier makes the exact ratio 3.05


@solution("05", 2)
def _05_2():
    macs = {key: network_cost(V1.layers(alpha=key[0], resolution=key[1]))["total_macs"]
            for key in SLIM}
    by_cost = sorted(SLIM, key=lambda key: (macs[key], -SLIM[key][0]))
    # on the frontier: more accurate than every model that costs no more
    return {key for i, key in enumerate(by_cost)
            if all(SLIM[key][0] > SLIM[cheaper][0] for cheaper in by_cost[:i])}


@solution("05", 3)
def _05_3():
    def separable_macs(dk: int, m: int, n: int, df: int, alpha: float, rho: float) -> int:
        """The paper's cost of one separable block with width alpha and resolution factor rho."""
        m_, n_, df_ = int(alpha * m), int(alpha * n), round(rho * df)
        return dk * dk * m_ * df_ * df_ + m_ * n_ * df_ * df_
    return separable_macs


@solution("05", 4)
def _05_4():
    return network_cost(V1.layers(alpha=0.6))["total_params"]


# 06 -------------------------------------------------------------------------------------------

@solution("06", 1)
def _06_1():
    def v2_block_macs(h: int, w: int, c_in: int, t: int, c_out: int, k: int, stride: int) -> int:
        """MACs of one inverted residual: expansion, depthwise, linear projection."""
        hidden = t * c_in
        ho, wo = math.ceil(h / stride), math.ceil(w / stride)
        expand = h * w * c_in * hidden if t != 1 else 0
        return expand + ho * wo * k * k * hidden + ho * wo * hidden * c_out
    return v2_block_macs


@solution("06", 2)
def _06_2():
    def stride2_block(x, expand, depthwise, project):
        """V2's stride-2 block (BN folded away): expand + ReLU6, depthwise s2 + ReLU6, project."""
        y = ops.relu6(ops.pointwise_conv2d(x, expand))
        y = ops.zero_pad(y, correct_pad(x.shape[1], x.shape[2], 3))
        y = ops.relu6(ops.depthwise_conv2d(y, depthwise, stride=2, padding="valid"))
        return ops.pointwise_conv2d(y, project)
    return stride2_block


@solution("06", 3)
def _06_3():
    cost = network_cost(V2.layers())
    depthwise = sum(c.macs for c in cost["layers"] if c.kind == "depthwise_conv2d")
    return depthwise / cost["total_macs"]


# 07 -------------------------------------------------------------------------------------------

@solution("07", 1)
def _07_1():
    def hard_swish(x: np.ndarray) -> np.ndarray:
        """x * relu6(x + 3) / 6."""
        return x * ops.relu6(x + 3) / 6
    return hard_swish


@solution("07", 2)
def _07_2():
    def squeeze_excite(x, squeeze_kernel, squeeze_bias, excite_kernel, excite_bias):
        """Gate every channel of x by a number in [0, 1] computed from the pooled image."""
        pooled = x.mean(axis=(1, 2))  # (N, C)
        hidden = np.maximum(pooled @ squeeze_kernel + squeeze_bias, 0)  # (N, C')
        gate = np.clip(hidden @ excite_kernel + excite_bias + 3, 0, 6) / 6  # (N, C)
        return x * gate[:, None, None, :]
    return squeeze_excite


@solution("07", 3)
def _07_3():
    channels, squeezed = 120, 32  # block_4: 40 channels expanded x3; SE to make_divisible(120/4)
    return channels * squeezed + squeezed * channels


# 08 -------------------------------------------------------------------------------------------

@solution("08", 1)
def _08_1():
    def depthwise_intensity(h: int, w: int, c: int, k: int, stride: int) -> float:
        """FLOPs per byte of a k x k depthwise layer that reads and writes each value once."""
        ho, wo = math.ceil(h / stride), math.ceil(w / stride)
        flops = 2 * ho * wo * c * k * k
        return flops / (4 * (h * w * c + ho * wo * c + k * k * c))
    return depthwise_intensity


@solution("08", 2)
def _08_2(profile):
    seconds = {kind: sum(r["seconds"] for r in profile if r["kind"] == kind)
               for kind in {r["kind"] for r in profile}}
    return seconds["depthwise_conv2d"] / sum(seconds.values())


# 09a ------------------------------------------------------------------------------------------

@solution("09a", 1)
def _09a_1():
    def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
        """float32 -> int8 as TFLite's QUANTIZE: times the float32 reciprocal, ties to even."""
        ratio = np.asarray(x, np.float32) * (np.float32(1) / np.float32(scale))
        return np.clip(np.rint(ratio) + zero_point, -128, 127).astype(np.int8)
    return quantize


@solution("09a", 2)
def _09a_2():
    def relu6_range(scale: float, zero_point: int) -> tuple[int, int]:
        """ReLU6 fused into an int8 op: the codes of real 0 and real 6, kept inside int8."""
        ratio = np.float32(6) / np.float32(scale)  # float32, as TFLite divides
        six = int(np.sign(ratio) * np.floor(np.abs(ratio) + np.float32(0.5)))  # C's round
        return max(-128, zero_point), min(127, zero_point + six)
    return relu6_range


@solution("09a", 3)
def _09a_3():
    return (2**31 - 1) // (255 * 127)


@solution("09a", 4)
def _09a_4():
    def requantize(acc: np.ndarray, multiplier: int, shift: int, zero_point: int) -> np.ndarray:
        """int32 accumulators -> int8 as TFLite's CONV_2D on x86: two roundings, ties up."""
        acc = np.asarray(acc, np.int64)
        high = (acc * multiplier + (1 << 30)) >> 31  # SQRDMULH: round(acc * m / 2^31)
        right = -shift  # shift <= 0 for a multiplier below 1
        if right > 0:
            high = (high + (1 << (right - 1))) >> right  # rounding right shift
        return np.clip(high + zero_point, -128, 127).astype(np.int8)
    return requantize


@solution("09a", 5)
def _09a_5():
    cin = cout = 256  # conv_pw_13 at alpha 0.25: 1024 * 0.25 channels in and out
    as_float32 = 4 * (cin * cout + cout)
    as_int8 = cin * cout + 4 * cout + 4 * cout  # int8 kernel, int32 bias, float32 scales
    return as_float32 - as_int8


# 09b ------------------------------------------------------------------------------------------

@solution("09b", 1)
def _09b_1():
    height = width = 64  # conv_pw_1 at 128x128: stride 2 in conv1 only
    window = 1 * 1 * 8   # K: a 1x1 window over 8 input channels
    return height * width * window  # one window sum per output pixel, shared by the 16 channels


@solution("11", 1)
def _11_1():
    def cam(features: np.ndarray, kernel: np.ndarray, c: int) -> np.ndarray:
        """(N, H, W, C) features, (C, K) kernel -> (N, H, W) map of class c."""
        return features @ kernel[:, c]
    return cam


@solution("11", 2)
def _11_2():
    def logit_drops(cam: np.ndarray) -> np.ndarray:
        """(H, W) map -> (H, W): how much the logit falls when each cell is zeroed."""
        return cam / cam.size
    return logit_drops


# 10 -------------------------------------------------------------------------------------------

@solution("10", 1)
def _10_1():
    def uib_macs(h: int, w: int, c_in: int, hidden: int, c_out: int, start: int, mid: int,
                 stride: int) -> int:
        """MACs of one UIB: [start depthwise] expansion [middle depthwise] projection."""
        ho, wo = math.ceil(h / stride), math.ceil(w / stride)
        macs = 0
        if start and mid:  # on the c_in input channels, at the input size
            macs += h * w * start * start * c_in
        elif start:  # without a middle depthwise the start one takes the stride
            macs += ho * wo * start * start * c_in
            h, w = ho, wo  # everything after it runs at the output size
        macs += h * w * c_in * hidden  # expansion
        if mid:
            macs += ho * wo * mid * mid * hidden
        return macs + ho * wo * hidden * c_out  # projection
    return uib_macs


@solution("10", 2)
def _10_2():
    def multi_query(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int) -> np.ndarray:
        """q (N, L, heads*d), one shared k (N, S, d) and v (N, S, dv) -> (N, L, heads*dv)."""
        n, length, _ = q.shape
        d = k.shape[-1]
        q = q.reshape(n, length, heads, d)  # channel h * d + j: head h, j-th
        scores = np.einsum("nlhd,nsd->nhls", q, k) / np.sqrt(d)  # (N, heads, L, S)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)  # softmax over the key positions
        out = np.einsum("nhls,nsd->nlhd", weights, v)  # (N, L, heads, dv)
        return out.reshape(n, length, -1)
    return multi_query
