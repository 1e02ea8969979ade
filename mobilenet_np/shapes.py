"""Shape arithmetic and input checks shared by the vectorised kernels and their loop twins.

Layout convention, stated once for the whole package: activations are NHWC, that is
``(N, H, W, C)`` = (batch, height, width, channels), and kernels use TensorFlow's
layouts (``(kh, kw, Cin, Cout)`` for convolutions). Everything is computed in float32.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

Padding = str | tuple[tuple[int, int], tuple[int, int]]
Pads = tuple[tuple[int, int], tuple[int, int]]


def as_float32(name: str, array: object, func: str) -> np.ndarray:
    """Return ``array`` as float32; integers and other floats are accepted, anything else is not."""
    array = np.asarray(array)
    if array.dtype.kind not in "iuf":
        raise InputError(f"{func}: {name} must hold integers or floats, got dtype {array.dtype}")
    return array.astype(np.float32, copy=False)


def check_rank(name: str, array: np.ndarray, rank: int, layout: str, func: str) -> None:
    """Raise ``InputError`` unless ``array`` has ``rank`` dimensions."""
    if array.ndim != rank:
        raise InputError(
            f"{func}: {name} must be {rank}-D {layout}, got shape {tuple(array.shape)}"
        )


def as_pair(name: str, value: int | tuple[int, int], func: str) -> tuple[int, int]:
    """Turn an int or a pair of ints (e.g. a stride) into a pair of positive ints."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in pair):
        raise InputError(f"{func}: {name} must be a positive int or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" rule along one axis: output ceil(size / stride), extra pixel at the end.

    At stride 2 on an even size with a 3x3 kernel this is (0, 1): nothing before, one after.
    """
    out = -(-size // stride)  # ceil division
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: Padding, in_hw: tuple[int, int], kernel_hw: tuple[int, int],
    stride: tuple[int, int], func: str,
) -> Pads:
    """Turn ``"same"``, ``"valid"`` or ``((top, bottom), (left, right))`` into explicit pads."""
    if isinstance(padding, str):
        if padding.lower() == "valid":
            return (0, 0), (0, 0)
        if padding.lower() == "same":
            return (same_padding(in_hw[0], kernel_hw[0], stride[0]),
                    same_padding(in_hw[1], kernel_hw[1], stride[1]))
        raise InputError(
            f"{func}: padding must be 'same', 'valid' or ((top, bottom), (left, right)), "
            f"got {padding!r}"
        )
    try:
        (top, bottom), (left, right) = padding
        pads = tuple(int(p) for p in (top, bottom, left, right))
    except (TypeError, ValueError):
        raise InputError(
            f"{func}: padding must be 'same', 'valid' or ((top, bottom), (left, right)), "
            f"got {padding!r}"
        ) from None
    if min(pads) < 0:
        raise InputError(f"{func}: padding amounts must be >= 0, got {padding!r}")
    return (pads[0], pads[1]), (pads[2], pads[3])


def conv_output_hw(
    in_hw: tuple[int, int], kernel_hw: tuple[int, int], stride: tuple[int, int],
    pads: Pads, func: str,
) -> tuple[int, int]:
    """Output size of a convolution: ``floor((H + top + bottom - kh) / stride) + 1`` per axis."""
    out = []
    for axis, size, k, s, (before, after) in zip("HW", in_hw, kernel_hw, stride, pads, strict=True):
        padded = size + before + after
        if k > padded:
            raise InputError(
                f"{func}: kernel {kernel_hw[0]}x{kernel_hw[1]} is larger than the padded input "
                f"{in_hw[0] + sum(pads[0])}x{in_hw[1] + sum(pads[1])} along {axis}"
            )
        out.append((padded - k) // s + 1)
    return out[0], out[1]


def check_conv_args(
    x: object, kernel: object, bias: object, stride: int | tuple[int, int], groups: int,
    func: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[int, int]]:
    """Validate a (grouped) convolution's arguments; return float32 arrays and the stride pair.

    x ``(N, H, W, Cin)``, kernel ``(kh, kw, Cin // groups, Cout)``, bias ``(Cout,)`` or None.
    """
    x = as_float32("x", x, func)
    kernel = as_float32("kernel", kernel, func)
    check_rank("x", x, 4, "(N, H, W, C)", func)
    check_rank("kernel", kernel, 4, "(kh, kw, Cin // groups, Cout)", func)
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise InputError(f"{func}: groups must be a positive int, got {groups!r}")
    cin, cout = x.shape[3], kernel.shape[3]
    if cin % groups or cout % groups:
        raise InputError(
            f"{func}: groups={groups} must divide x's {cin} channels and the kernel's {cout} filters"
        )
    if kernel.shape[2] != cin // groups:
        raise InputError(
            f"{func}: kernel {tuple(kernel.shape)} expects {kernel.shape[2] * groups} input "
            f"channels (kernel.shape[2] * groups), but x {tuple(x.shape)} has {cin}"
        )
    return x, kernel, check_bias(bias, cout, func), as_pair("stride", stride, func)


def check_bias(bias: object, channels: int, func: str) -> np.ndarray | None:
    """Return bias as float32 ``(channels,)``, or None."""
    if bias is None:
        return None
    bias = as_float32("bias", bias, func)
    if bias.shape != (channels,):
        raise InputError(f"{func}: bias must have shape ({channels},), got {tuple(bias.shape)}")
    return bias


def check_depthwise_args(
    x: object, kernel: object, bias: object, stride: int | tuple[int, int], func: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[int, int]]:
    """Validate a depthwise convolution's arguments: x ``(N, H, W, C)``, kernel ``(kh, kw, C, M)``."""
    x = as_float32("x", x, func)
    kernel = as_float32("kernel", kernel, func)
    check_rank("x", x, 4, "(N, H, W, C)", func)
    check_rank("kernel", kernel, 4, "(kh, kw, C, depth_multiplier)", func)
    if kernel.shape[2] != x.shape[3]:
        raise InputError(
            f"{func}: kernel {tuple(kernel.shape)} is for {kernel.shape[2]} channels, "
            f"but x {tuple(x.shape)} has {x.shape[3]}"
        )
    channels = kernel.shape[2] * kernel.shape[3]
    return x, kernel, check_bias(bias, channels, func), as_pair("stride", stride, func)


def check_pointwise_args(
    x: object, kernel: object, bias: object, func: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate a 1x1 convolution: x ``(N, H, W, Cin)``, kernel ``(1, 1, Cin, Cout)`` or ``(Cin, Cout)``.

    Returns the kernel as a matrix ``(Cin, Cout)``.
    """
    x = as_float32("x", x, func)
    kernel = as_float32("kernel", kernel, func)
    check_rank("x", x, 4, "(N, H, W, C)", func)
    if kernel.ndim == 4 and kernel.shape[:2] == (1, 1):
        kernel = kernel[0, 0]  # (1, 1, Cin, Cout) -> (Cin, Cout)
    if kernel.ndim != 2:
        raise InputError(
            f"{func}: kernel must be (1, 1, Cin, Cout) or (Cin, Cout), got {tuple(kernel.shape)}"
        )
    if kernel.shape[0] != x.shape[3]:
        raise InputError(
            f"{func}: kernel expects {kernel.shape[0]} input channels, "
            f"but x {tuple(x.shape)} has {x.shape[3]}"
        )
    return x, kernel, check_bias(bias, kernel.shape[1], func)


def check_squeeze_excite_args(
    x: object, squeeze_kernel: object, excite_kernel: object, func: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate squeeze-and-excite: x ``(N, H, W, C)``, kernels ``(C, C')`` and ``(C', C)``.

    1x1 kernels may come as ``(1, 1, Cin, Cout)``; they are returned as matrices.
    """
    x = as_float32("x", x, func)
    check_rank("x", x, 4, "(N, H, W, C)", func)
    squeeze = as_float32("squeeze_kernel", squeeze_kernel, func)
    excite = as_float32("excite_kernel", excite_kernel, func)
    squeeze, excite = squeeze.reshape(-1, squeeze.shape[-1]), excite.reshape(-1, excite.shape[-1])
    if squeeze.shape[0] != x.shape[3] or excite.shape != squeeze.shape[::-1]:
        raise InputError(f"{func}: kernels {squeeze.shape} and {excite.shape} do not fit "
                         f"x with {x.shape[3]} channels (need (C, C') and (C', C))")
    return x, squeeze, excite
