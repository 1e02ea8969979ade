"""The course's exercise checks: a wrong answer raises with a hint, None means "not answered yet".

Each notebook makes ``ex = Exercises("02")`` and, under every answer cell, calls
``ex.check(1, answer_1)``. A number exercise is answered by a value, a code exercise by a
function (its stub returns None until the student writes it). ``ex.hint(1)`` gives the hint
again, ``ex.answer(1)`` reveals the reference answer (from ``solutions.py``, kept out of the
notebooks' text). With ``MOBILENET_NP_SOLUTIONS=1`` every check runs on the reference answer
instead of the cell's: CI runs the notebooks both ways, and ``tests/test_exercises.py`` shows
each check rejects wrong answers.

This file lives beside the notebooks, not in ``mobilenet_np``: it is course material (it
changes with the exercises' text), and the library should not ship the answers.
"""

from __future__ import annotations

import inspect
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobilenet_np import ops, reference
from mobilenet_np.cost import layer_macs, network_cost, separable_blocks
from mobilenet_np.families.v1 import SLIM, V1
from mobilenet_np.families.v2 import V2
from mobilenet_np.families.v3 import V3_LARGE
from mobilenet_np.int8.fixedpoint import Requantize, activation_range, quantize_multiplier
from mobilenet_np.int8.ops import quantize as int8_quantize
from mobilenet_np.layers import correct_pad
from mobilenet_np.measure import run_times
from mobilenet_np.shapes import same_padding

SOLUTIONS_SWITCH = "MOBILENET_NP_SOLUTIONS"
PRETRAINED_SWITCH = "MOBILENET_NP_PRETRAINED"
PRETRAINED_NAME = "mobilenet_2_5_224_tf.h5"  # the real MobileNet V1 0.25/224 ImageNet weights
REPO = Path(__file__).resolve().parent.parent
RANDOM_WEIGHTS = "ran on RANDOM weights (the real ones were not found), so they say nothing " \
                 "about a trained MobileNet"


class NotAnswered(Exception):
    """A code answer whose function still returns None (the stub)."""


@dataclass(frozen=True)
class Check:
    """One exercise: what the answer is (``kind``), a hint, and the test that may reject it."""

    kind: str  # "number" (a value) or "code" (a function)
    hint: str
    test: Callable[..., str | None]  # raises AssertionError when wrong; may return a remark


CHECKS: dict[tuple[str, int], Check] = {}


def register(notebook: str, number: int, kind: str, hint: str) -> Callable:
    """Decorator: file ``test`` as exercise ``number`` of ``notebook``."""
    def add(test: Callable[..., str | None]) -> Callable[..., str | None]:
        CHECKS[(notebook, number)] = Check(kind, hint, test)
        return test
    return add


def solutions_mode() -> bool:
    """True when ``$MOBILENET_NP_SOLUTIONS`` asks every check to use the reference answer."""
    return os.environ.get(SOLUTIONS_SWITCH, "") not in ("", "0")


def reference_answer(notebook: str, number: int, **context):
    """The reference answer of an exercise, from ``solutions.py``."""
    import solutions  # beside this file; imported only when asked for

    return solutions.SOLUTIONS[(notebook, number)](**context)


class Exercises:
    """The exercises of one notebook: ``check``, ``hint``, ``answer``."""

    def __init__(self, notebook: str) -> None:
        self.notebook = notebook
        if solutions_mode():
            print(f"{SOLUTIONS_SWITCH} is set: every check below runs on the reference answer.")

    def check(self, number: int, answer: object, **context) -> None:
        """Pass quietly on None, raise AssertionError with a hint on a wrong answer."""
        check = CHECKS[(self.notebook, number)]
        label = f"Exercise {self.notebook}.{number}"
        if solutions_mode():
            answer = reference_answer(self.notebook, number, **context)
        if answer is None:
            print(f"{label}: not answered yet (edit the cell above, then run this one again).")
            return
        try:
            remark = check.test(answer, **context)
        except NotAnswered:
            print(f"{label}: not answered yet (your function still returns None).")
            return
        except AssertionError as wrong:
            raise AssertionError(f"{label}: {wrong}\nHint: {check.hint}\n"
                                 f"(Still stuck? {answer_call(number, context)} shows one "
                                 f"answer.)") from None
        print(f"{label}: correct." + (f" {remark}" if remark else ""))

    def hint(self, number: int) -> None:
        """Print the hint of an exercise."""
        print(CHECKS[(self.notebook, number)].hint)

    def answer(self, number: int, **context) -> None:
        """Reveal the reference answer (source code for a code exercise)."""
        import solutions  # beside this file; imported only when asked for

        wanted = inspect.signature(solutions.SOLUTIONS[(self.notebook, number)]).parameters
        missing = [name for name in wanted if name not in context]
        if missing:  # an answer computed from this run's data (08.2: the profile)
            print(f"This answer is computed from your run's data: call "
                  f"{answer_call(number, dict.fromkeys(missing))}")
            return
        value = reference_answer(self.notebook, number, **context)
        print(inspect.getsource(value) if callable(value) else repr(value))


# The real weights, found where the tests find them -----------------------------------------

def find_weights(root: Path = REPO) -> Path | None:
    """The real V1 0.25/224 weights file, or None: ``$MOBILENET_NP_PRETRAINED`` (when set, it
    alone is looked at), ``../shared/weights/`` beside the repository, our download cache
    (``$MOBILENET_NP_HOME``, default ``~/.cache/mobilenet-np``), then Keras's
    ``~/.keras/models``. Never downloads."""
    if os.environ.get(PRETRAINED_SWITCH):
        path = Path(os.environ[PRETRAINED_SWITCH])
        return path if path.is_file() else None
    cache = Path(os.environ.get("MOBILENET_NP_HOME") or Path.home() / ".cache" / "mobilenet-np")
    folders = [root.parent / "shared" / "weights", cache, Path.home() / ".keras" / "models"]
    return next((folder / PRETRAINED_NAME for folder in folders
                 if (folder / PRETRAINED_NAME).is_file()), None)


def real_or_random_v1(**options):
    """MobileNet V1 0.25/224 on the real weights when ``find_weights`` finds them, else on
    seeded random ones; prints which. Returns (model, True if the weights are real)."""
    import mobilenet_np as mnp

    path = find_weights()
    if path is None:
        print(f"The real weights ({PRETRAINED_NAME}) were not found: this notebook runs on "
              f"seeded random weights, and says so at every conclusion that needs real ones. "
              f"To use them: `mobilenet-np weights download --alpha 0.25` (needs internet), or "
              f"set {PRETRAINED_SWITCH} to the file.")
    else:
        print(f"Using the real ImageNet weights: {path.name}")
    return mnp.MobileNet(alpha=0.25, resolution=224, weights=path, **options), path is not None


# Lesson helpers: analysis the notebooks show, kept here so each reads as a lesson ------------

def receptive_fields(layers) -> list[tuple[str, int, int]]:
    """(layer name, receptive field, jump) after each layer with a kernel or a stride.

    The receptive field is the width of the input window one output value depends on; the
    jump is how many input pixels apart neighbouring outputs sit. A k x k layer widens the
    window by (k - 1) x jump, and its stride multiplies the jump.
    """
    field, jump, rows = 1, 1, []
    for layer in layers:
        if layer.kernel > 1 or layer.stride > 1:
            field += (layer.kernel - 1) * jump
            jump *= layer.stride
            rows.append((layer.name, field, jump))
    return rows


def peak_live_values(layers) -> tuple[int, str]:
    """The most activation values alive at once, running the layers one by one (batch 1) as
    the interpreter does: a layer's input and output, plus every saved output a later add or
    multiply still needs. Returns (values, the layer where the peak is)."""
    readers = Counter(layer.source for layer in layers if layer.source)
    saved: dict[str, int] = {}
    peak, where, previous = 0, "", ""
    for layer in layers:
        live = (int(np.prod(layer.input_shape)) + int(np.prod(layer.output_shape))
                + sum(size for name, size in saved.items() if name != previous))
        if live > peak:
            peak, where = live, layer.name
        if layer.source:
            readers[layer.source] -= 1
            if not readers[layer.source]:
                del saved[layer.source]
        if readers[layer.name]:
            saved[layer.name] = int(np.prod(layer.output_shape))
        previous = layer.name
    return peak, where


def peak_block_values(blocks) -> tuple[int, str]:
    """The most values a block needs at once if only its input and output are ever whole: a
    block that computes its wide middle a slice at a time (MobileNetV2's argument for narrow
    bottlenecks). Returns (values, the block where the peak is)."""
    sizes = [(int(np.prod(block.layers[0].input_shape)) + int(np.prod(block.layers[-1].output_shape)),
              block.name) for block in blocks]
    return max(sizes)


def answer_call(number: int, context: dict) -> str:
    """How to ask for an answer: ``ex.answer(2)``, or ``ex.answer(2, profile=profile)``."""
    return f"ex.answer({', '.join([str(number), *(f'{name}={name}' for name in context)])})"


# Helpers for the tests ------------------------------------------------------------------------

def expect(condition: bool, message: str) -> None:
    """Reject the answer with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)


def as_tuple(answer: object) -> tuple:
    """The answer as a tuple, or a rejection saying a tuple was wanted."""
    try:
        return tuple(answer)  # type: ignore[arg-type]
    except TypeError:
        raise AssertionError(f"expected a tuple, got {answer!r}") from None


def as_number(answer: object) -> float:
    """The answer as a float, or a rejection saying a number was wanted."""
    try:
        return float(answer)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AssertionError(f"expected a number, got {answer!r}") from None


def as_function(answer: object) -> Callable:
    """The answer as a callable, or a rejection saying a function was wanted."""
    expect(callable(answer), f"expected a function, got {answer!r}")
    return answer  # type: ignore[return-value]


def called(function: Callable, *args) -> object:
    """``function(*args)``; NotAnswered if it still returns None."""
    result = function(*args)
    if result is None:
        raise NotAnswered
    return result


def same_array(mine: object, expected: np.ndarray, what: str, rtol: float = 1e-5) -> None:
    """Reject unless ``mine`` has ``expected``'s shape and values (to float32 round-off)."""
    mine = np.asarray(mine)
    expect(mine.shape == expected.shape, f"{what}: shape {mine.shape}, expected {expected.shape}")
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    error = float(np.abs(mine.astype(np.float64) - expected).max(initial=0.0))
    expect(np.all(np.isfinite(mine)), f"{what}: your output has NaN or inf")
    expect(error <= rtol * scale, f"{what}: off by up to {error:.3g} (values up to {scale:.3g})")


def random_cases(seed: int, count: int) -> list[np.random.Generator]:
    """``count`` independent seeded generators, one per test case."""
    return [np.random.default_rng([seed, i]) for i in range(count)]


# 01 · Convolution, from loops to one matrix multiply ------------------------------------------

@register("01", 1, "number", 'Under "same" the output size is ceil(input / stride); the last axis '
                             "counts filters.")
def _01_1(answer):
    expected = ops.conv2d(np.zeros((1, 225, 225, 3)), np.zeros((3, 3, 3, 16)), stride=2).shape
    expect(as_tuple(answer) == expected, f"{as_tuple(answer)} is not the output shape")


@register("01", 2, "number", "One row per output pixel of every image; one column per "
                             "(tap row, tap column, input channel).")
def _01_2(answer):
    rows, columns = as_tuple(answer)
    expect(rows == 2 * 6 * 8, f"{rows} rows is wrong")
    expect(columns == 5 * 5 * 4, f"{columns} columns is wrong")


@register("01", 3, "code", "First find the output size that \"same\" promises, then how many "
                           "input pixels its windows need in all; TF puts an odd extra pixel at "
                           "the end.")
def _01_3(answer):
    function = as_function(answer)
    for size in range(1, 30):
        for kernel in range(1, 8):
            for stride in range(1, 4):
                mine = as_tuple(called(function, size, kernel, stride))
                expect(mine == same_padding(size, kernel, stride),
                       f"size {size}, kernel {kernel}, stride {stride}: you gave {mine}, "
                       f"which TF does not use")


@register("01", 4, "code", "sliding_window_view gives (N, Ho, Wo, C, kh, kw); put the taps "
                           "before the channels, then reshape to one row per output pixel.")
def _01_4(answer):
    function = as_function(answer)
    for rng in random_cases(14, 6):
        n, h, w, c = rng.integers(1, 3), rng.integers(3, 9), rng.integers(3, 9), rng.integers(1, 5)
        kh, kw, cout = rng.integers(1, 4), rng.integers(1, 4), rng.integers(1, 5)
        x = rng.uniform(-1, 1, (n, h, w, c)).astype(np.float32)
        kernel = rng.standard_normal((kh, kw, c, cout)).astype(np.float32)
        cols = np.asarray(called(function, x, int(kh), int(kw)))
        rows = n * (h - kh + 1) * (w - kw + 1)
        expect(cols.shape == (rows, kh * kw * c),
               f"x {x.shape}, kernel {kh}x{kw}: matrix {cols.shape}, expected {(rows, kh * kw * c)}")
        out = (cols @ kernel.reshape(-1, cout)).reshape(n, h - kh + 1, w - kw + 1, cout)
        same_array(out, reference.conv2d(x, kernel, padding="valid"),
                   "im2col(x) @ kernel vs the loop conv2d")


# 02 · Depthwise-separable convolution -----------------------------------------------------------

@register("02", 1, "number", "Depthwise: Dk*Dk*M*Df*Df. Pointwise: M*N*Df*Df. Add them.")
def _02_1(answer):
    block = separable_blocks(V1.blocks())[1]  # conv_dw_2: 64 -> 128 at 56x56
    expect(as_number(answer) == block.separable_macs, f"{answer} multiply-adds is not it")


@register("02", 2, "number", "separable / standard = 1/N + 1/Dk^2; the question asks for the "
                             "inverse, to two decimals (within 0.005).")
def _02_2(answer):
    expected = 1 / (1 / 512 + 1 / 25)
    expect(abs(as_number(answer) - expected) <= 0.0051, f"{answer} is not within 0.005")


@register("02", 3, "number", "Sum the MACs of the layers whose kind is 'pointwise_conv2d' and "
                             "divide by the total; three decimals (within 0.001).")
def _02_3(answer):
    cost = network_cost(V1.layers())
    share = sum(c.macs for c in cost["layers"] if c.kind == "pointwise_conv2d") / cost["total_macs"]
    expect(abs(as_number(answer) - share) <= 0.001, f"{answer} is not within 0.001 of the share")


@register("02", 4, "code", "Loop over output rows, output columns and the kh x kw taps; each "
                           "tap multiplies a pixel's C channels by kernel[ky, kx, :, 0], "
                           "elementwise (no sum over channels).")
def _02_4(answer):
    function = as_function(answer)
    for rng in random_cases(24, 5):
        h, w, c, k = rng.integers(2, 8), rng.integers(2, 8), rng.integers(1, 6), (1, 3, 5)[
            rng.integers(0, 3)]
        x = rng.uniform(-1, 1, (1, h, w, c)).astype(np.float32)
        kernel = rng.standard_normal((k, k, c, 1)).astype(np.float32)
        same_array(called(function, x, kernel), reference.depthwise_conv2d(x, kernel),
                   f"x {x.shape}, kernel {kernel.shape}")


@register("02", 5, "code", "A group of one input channel and M filters: the kernel ops.conv2d "
                           "wants is (kh, kw, Cin / groups, Cout) = (kh, kw, 1, C*M), with output "
                           "channel c*M + m.")
def _02_5(answer):
    function = as_function(answer)
    for rng, (c, multiplier) in zip(random_cases(25, 4), ((3, 1), (4, 2), (1, 3), (5, 2)),
                                    strict=True):
        x = rng.uniform(-1, 1, (1, 6, 7, c)).astype(np.float32)
        kernel = rng.standard_normal((3, 3, c, multiplier)).astype(np.float32)
        grouped = np.asarray(called(function, kernel))
        expect(grouped.shape == (3, 3, 1, c * multiplier),
               f"depthwise kernel {kernel.shape}: you gave {grouped.shape}")
        same_array(ops.conv2d(x, grouped, groups=c), ops.depthwise_conv2d(x, kernel),
                   f"grouped conv vs depthwise, kernel {kernel.shape}")


# 03 · MobileNet, forward ----------------------------------------------------------------------

@register("03", 1, "number", "Each stride-2 layer halves H and W: count them in the table from "
                             "conv1 down to conv_pw_5. alpha multiplies every layer's filter "
                             "count in the table.")
def _03_1(answer):
    layer = next(layer for layer in V1.layers(alpha=0.25) if layer.name == "conv_pw_5_relu")
    expect(as_tuple(answer) == layer.output_shape, f"{as_tuple(answer)} is not that shape")


@register("03", 2, "code", "exp(1000) overflows float32. Subtracting each row's maximum first "
                           "changes nothing mathematically (it cancels) and keeps exp <= 1.")
def _03_2(answer):
    function = as_function(answer)
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]],
                      np.float32)
    for rng in random_cases(32, 3):
        logits = np.concatenate([logits, 30 * rng.standard_normal((2, 3)).astype(np.float32)])
    with np.errstate(all="ignore"):
        mine = called(function, logits)
    same_array(mine, ops.softmax(logits), "softmax")


@register("03", 3, "code", "The depthwise kernel is (kh, kw, C, 1): BN's scale belongs to input "
                           "(= output) channel c, the third axis, not the last.")
def _03_3(answer):
    function = as_function(answer)
    for rng in random_cases(33, 4):
        c = int(rng.integers(2, 9))
        x = rng.uniform(-1, 1, (1, 6, 6, c)).astype(np.float32)
        kernel = rng.standard_normal((3, 3, c, 1)).astype(np.float32)
        gamma, beta, mean = (rng.standard_normal(c).astype(np.float32) for _ in range(3))
        variance = rng.uniform(0.1, 2, c).astype(np.float32)
        folded, bias = called(function, kernel, gamma, beta, mean, variance)
        expect(np.shape(folded) == kernel.shape,
               f"folded kernel shape {np.shape(folded)}, expected {kernel.shape}")
        expected = ops.batch_norm(ops.depthwise_conv2d(x, kernel), gamma, beta, mean, variance)
        same_array(ops.depthwise_conv2d(x, folded, bias), expected, "folded depthwise vs depthwise + BN",
                   rtol=1e-4)


# 04 · Checking against TensorFlow -------------------------------------------------------------

@register("04", 1, "code", "Start from eps = np.float32(1) and halve it while "
                           "np.float32(1) + eps / 2 is still above 1 (stay in float32).")
def _04_1(answer):
    mine = as_number(called(as_function(answer)))
    expect(mine == np.finfo(np.float32).eps, f"{mine!r} is not float32's epsilon")


HIDDEN_CHANGE = ("conv_dw_7_bn/gamma", 3)  # the weight broken_model changes (not in the text)


def broken_model():
    """``ours`` from notebook 04 (V1 0.25/128, random weights, seed 1) with one weight changed,
    somewhere the notebook does not say: exercise 04.2 finds where from the outputs alone."""
    import mobilenet_np as mnp

    model = mnp.MobileNet(alpha=0.25, resolution=128, weights=None, seed=1)
    name, index = HIDDEN_CHANGE
    model.params[name][index] += 1.0
    return model


@register("04", 2, "number", "Run broken.forward(x, capture=True) on the same x; compare "
                             "activations[name] with its output for every name, in order, and "
                             "give the first name where np.array_equal is False.")
def _04_2(answer):
    expect(isinstance(answer, str), f"expected a layer name (a string), got {answer!r}")
    names = [layer.name for layer in V1.layers(alpha=0.25, resolution=128)]
    expect(answer in names, f"{answer!r} is not a layer of this model")
    # The changed gamma first shows in its own batch norm's output (the conv before is intact).
    first = HIDDEN_CHANGE[0].split("/")[0]
    expect(names.index(answer) >= names.index(first), f"{answer!r} still gives the same output "
                                                      f"as in ours: look further down")
    expect(answer == first, f"{answer!r} differs, but an earlier layer already does")


# 05 · Width and resolution --------------------------------------------------------------------

@register("05", 1, "number", "Divide the two exact totals from network_cost (two decimals).")
def _05_1(answer):
    macs = [network_cost(V1.layers(alpha=1.0, resolution=r))["total_macs"] for r in (224, 128)]
    ratio = macs[0] / macs[1]
    mine = as_number(answer)
    expect(abs(mine - ratio) <= 0.02, f"{mine} is not within 0.02 of the ratio")
    return (f"Exactly {ratio:.4f}; (224/128)^2 = {(224 / 128) ** 2:.4f} is close but above it: "
            f"the classifier's {network_cost(V1.layers())['layers'][-2].macs:,} MACs act on the "
            f"pooled vector and do not shrink with the resolution.")


def v1_grid() -> dict[tuple[float, int], tuple[int, float]]:
    """The 16 published V1 models: (alpha, resolution) -> (exact MACs, TF-slim top-1 %)."""
    return {key: (network_cost(V1.layers(alpha=key[0], resolution=key[1]))["total_macs"],
                  SLIM[key][0]) for key in SLIM}


def dominated_by(key: tuple[float, int], grid: dict) -> tuple[float, int] | None:
    """A model with at most ``key``'s MACs and at least its top-1, better in one; else None."""
    macs, top1 = grid[key]
    return next((other for other, (m, t) in grid.items()
                 if m <= macs and t >= top1 and (m, t) != (macs, top1)), None)


@register("05", 2, "number", "For each model, look for another with no more MACs and no lower "
                             "top-1 (better in one): if there is one, the model is off the "
                             "frontier. Sorting by MACs and keeping each model more accurate than "
                             "every cheaper one does the same.")
def _05_2(answer):
    try:
        mine = {(float(alpha), int(resolution)) for alpha, resolution in answer}  # type: ignore
    except (TypeError, ValueError):
        raise AssertionError(f"expected a set of (alpha, resolution) pairs, got {answer!r}") from None
    grid = v1_grid()
    unknown = mine - set(grid)
    expect(not unknown, f"{sorted(unknown)} are not among the 16 published models")
    for key in sorted(mine):
        better = dominated_by(key, grid)
        if better is not None:
            raise AssertionError(f"{key} is off the frontier: {better} has "
                                 f"{grid[better][0] / 1e6:.0f}M MACs (vs {grid[key][0] / 1e6:.0f}M) "
                                 f"and {grid[better][1]}% top-1 (vs {grid[key][1]}%)")
    missing = [key for key in grid if dominated_by(key, grid) is None and key not in mine]
    expect(not missing, f"{len(missing)} model(s) on the frontier are missing from your set: "
                        f"check every model against every other, the smallest ones too")


@register("05", 3, "code", "Depthwise Dk*Dk*(aM)*(rDf)^2 plus pointwise (aM)*(aN)*(rDf)^2; "
                           "round the channels with int(alpha * filters) and the size with "
                           "round(rho * Df).")
def _05_3(answer):
    function = as_function(answer)
    base = separable_blocks(V1.blocks(alpha=1.0, resolution=224))
    for alpha in (1.0, 0.75, 0.5, 0.25):
        for resolution in (224, 192, 160, 128):
            for plain, scaled in zip(base, separable_blocks(V1.blocks(alpha=alpha, resolution=resolution)),
                                     strict=True):
                mine = as_number(called(function, plain.kernel, plain.in_channels,
                                        plain.out_channels, plain.size[0], alpha,
                                        resolution / 224))
                expect(mine == scaled.separable_macs,
                       f"{plain.name} at alpha {alpha}, resolution {resolution}: you gave "
                       f"{mine:,.0f}, the layer table counts {scaled.separable_macs:,}")


@register("05", 4, "number", "Build the layer table with V1.layers(alpha=0.6) and count "
                             "(network_cost): width changes parameters, resolution does not.")
def _05_4(answer):
    expected = network_cost(V1.layers(alpha=0.6, resolution=224))["total_params"]
    expect(as_number(answer) == expected, f"{answer} is not the parameter count")


# 06 · Inverted residuals ----------------------------------------------------------------------

def v2_blocks_to_check() -> list[tuple[int, int, int, int, int, int, int, int]]:
    """(h, w, c_in, t, c_out, k, stride, macs) of every V2 block, at several widths and sizes."""
    cases = []
    for alpha, resolution in ((1.0, 224), (0.35, 96), (1.4, 160)):
        for block in V2.blocks(alpha=alpha, resolution=resolution):
            if block.kind != "inverted_residual":
                continue
            depthwise, project = block.conv("depthwise"), block.conv("project")
            expand = block.conv("expand")
            c_in = (expand or depthwise).input_shape[-1]
            h, w = block.layers[0].input_shape[:2]
            t = expand.output_shape[-1] // c_in if expand else 1
            macs = sum(layer_macs(layer) for layer in block.layers)
            cases.append((h, w, c_in, t, project.output_shape[-1], depthwise.kernel,
                          depthwise.stride, macs))
    return cases


@register("06", 1, "code", "Expansion runs at the input size (h x w), depthwise and projection "
                           "at the output size (ceil(h / stride)); t = 1 has no expansion.")
def _06_1(answer):
    function = as_function(answer)
    for h, w, c_in, t, c_out, k, stride, macs in v2_blocks_to_check():
        mine = as_number(called(function, h, w, c_in, t, c_out, k, stride))
        expect(mine == macs, f"h={h}, w={w}, c_in={c_in}, t={t}, c_out={c_out}, k={k}, "
                             f"stride={stride}: you gave {mine:,.0f}, the counters {macs:,}")


@register("06", 2, "code", "ops.zero_pad(x, correct_pad(h, w, 3)) then depthwise with padding "
                           "'valid' and stride 2; ReLU6 after expansion and after depthwise, "
                           "nothing after the projection, and no residual (the shape changed).")
def _06_2(answer):
    function = as_function(answer)
    for rng in random_cases(62, 4):
        h, w = (int(v) for v in rng.integers(4, 10, 2))
        c_in, c_out = (int(v) for v in rng.integers(2, 6, 2))
        hidden = 6 * c_in
        x = rng.uniform(-1, 1, (1, h, w, c_in)).astype(np.float32)
        expand = rng.standard_normal((c_in, hidden)).astype(np.float32)
        depthwise = rng.standard_normal((3, 3, hidden, 1)).astype(np.float32)
        project = rng.standard_normal((hidden, c_out)).astype(np.float32)
        y = ops.relu6(ops.pointwise_conv2d(x, expand))
        y = ops.zero_pad(y, correct_pad(h, w, 3))
        y = ops.relu6(ops.depthwise_conv2d(y, depthwise, stride=2, padding="valid"))
        expected = ops.pointwise_conv2d(y, project)
        same_array(called(function, x, expand, depthwise, project), expected,
                   f"stride-2 block on x {x.shape}")


@register("06", 3, "number", "network_cost(V2.layers()): sum the MACs of kind "
                             "'depthwise_conv2d', divide by the total; within 0.001.")
def _06_3(answer):
    cost = network_cost(V2.layers())
    share = sum(c.macs for c in cost["layers"] if c.kind == "depthwise_conv2d") / cost["total_macs"]
    expect(abs(as_number(answer) - share) <= 0.001, f"{answer} is not within 0.001 of the share")


# 07 · Squeeze-and-excite and hard-swish -------------------------------------------------------

@register("07", 1, "code", "hard_swish(x) = x * relu6(x + 3) / 6; ops.relu6 is allowed.")
def _07_1(answer):
    function = as_function(answer)
    x = np.concatenate([np.linspace(-8, 8, 161), [-3, 3, 0, -3.0001, 2.9999]]).astype(np.float32)
    same_array(called(function, x), reference.hard_swish(x), "hard-swish on [-8, 8]")


@register("07", 2, "code", "Pool to (N, C); @ squeeze kernel + bias, ReLU; @ excite kernel + bias, "
                           "hard-sigmoid; multiply x by the gate broadcast as (N, 1, 1, C).")
def _07_2(answer):
    function = as_function(answer)
    for rng in random_cases(72, 3):
        n, c, s = int(rng.integers(1, 3)), int(rng.integers(4, 12)), int(rng.integers(1, 4))
        x = rng.uniform(0, 2, (n, 5, 4, c)).astype(np.float32)
        weights = (rng.standard_normal((c, s)).astype(np.float32),
                   rng.standard_normal(s).astype(np.float32),
                   rng.standard_normal((s, c)).astype(np.float32),
                   rng.standard_normal(c).astype(np.float32))
        same_array(called(function, x, *weights), reference.squeeze_excite(x, *weights),
                   f"squeeze-excite on x {x.shape}")


@register("07", 3, "number", "Two 1x1 convolutions on a 1x1 pooled map: C*C' + C'*C; read C and "
                             "C' from the layer table (or sum layer_macs over the block's "
                             "squeeze_excite layers).")
def _07_3(answer):
    block = next(b for b in V3_LARGE.blocks() if b.name == "block_4")
    macs = sum(layer_macs(layer) for layer in block.layers if layer.role == "squeeze_excite")
    expect(as_number(answer) == macs, f"{answer} is not the MAC count")


# 08 · Latency vs MACs -------------------------------------------------------------------------

@register("08", 1, "code", "FLOPs = 2 * Ho*Wo*C*k*k with Ho = ceil(h / stride); bytes = 4 * "
                           "(h*w*C read + Ho*Wo*C written + k*k*C weights).")
def _08_1(answer):
    function = as_function(answer)
    for h, c, k, stride in ((112, 32, 3, 1), (112, 64, 3, 2), (14, 512, 3, 1), (7, 1024, 3, 1),
                            (28, 120, 5, 1), (9, 7, 5, 2)):
        out = math.ceil(h / stride)
        flops = 2 * out * out * c * k * k
        expected = flops / (4 * (h * h * c + out * out * c + k * k * c))
        mine = as_number(called(function, h, h, c, k, stride))
        expect(abs(mine - expected) <= 1e-9 * expected,
               f"h=w={h}, C={c}, k={k}, stride {stride}: you gave {mine:.4f} FLOP/byte")


@register("08", 2, "number", "Sum the seconds of the rows whose kind is 'depthwise_conv2d' and "
                             "divide by the sum over all rows; within 0.02.")
def _08_2(answer, profile):
    total = sum(row["seconds"] for row in profile)
    share = sum(row["seconds"] for row in profile if row["kind"] == "depthwise_conv2d") / total
    expect(abs(as_number(answer) - share) <= 0.02, f"{answer} is not within 0.02 of the measured share")


# 09 · Integer-only inference ------------------------------------------------------------------

SAMPLE_PICTURES = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")  # matplotlib's two photos
REAL_TFLITE_SWITCH = "MOBILENET_NP_REAL_TFLITE"
UINT8_FILE = "mobilenet_v1_0.25_128_quant.tflite"  # Google's hosted uint8 V1 0.25/128 (2018)


def sample_picture_paths() -> list[str]:
    """The paths of matplotlib's two sample pictures: a portrait and a clip-art gift box."""
    from matplotlib import cbook

    return [cbook.get_sample_data(name, asfileobj=False) for name in SAMPLE_PICTURES]


def picture_crops(path: str, n: int, seed: int, size: int = 224) -> np.ndarray:
    """n seeded crops of one picture (35-100% of its area, aspect 3:4 to 4:3, half of them
    flipped, resized bilinearly): (n, size, size, 3) pixels in [0, 255]."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    picture = Image.open(path).convert("RGB")  # alpha dropped, as Keras loads it
    width, height = picture.size
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        area = rng.uniform(0.35, 1.0) * width * height
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))  # width / height
        w, h = int(min(width, round(np.sqrt(area * aspect)))), int(min(height, round(np.sqrt(area / aspect))))
        left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        crop = picture.crop((left, top, left + w, top + h)).resize((size, size), Image.BILINEAR)
        out[i] = np.asarray(crop.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop,
                            np.float32)
    return out


def disjoint_photo_sets(size: int = 224, calibrate: int = 16, crops: int = 31):
    """For each sample picture: (its name, calibration images cropped from the OTHER picture,
    evaluation images from this one: whole, then ``crops`` crops), all in [-1, 1]. A model
    calibrated on one set never sees its evaluation picture."""
    import mobilenet_np as mnp

    paths = sample_picture_paths()
    sets = []
    for i, path in enumerate(paths):
        other = paths[1 - i]
        calibration = picture_crops(other, calibrate, seed=10 + i, size=size)
        evaluation = np.concatenate([mnp.load_image(path, size)[None],
                                     picture_crops(path, crops, seed=20 + i, size=size)])
        sets.append((SAMPLE_PICTURES[i], mnp.preprocess_input(calibration),
                     mnp.preprocess_input(evaluation)))
    return sets


def find_real_tflite(name: str = UINT8_FILE, root: Path = REPO) -> Path | None:
    """One of Google's hosted .tflite files, or None: in ``$MOBILENET_NP_REAL_TFLITE`` (when
    set, it alone is looked at), ``../shared/real-tflite/`` beside the repository, or our
    cache (``$MOBILENET_NP_HOME``, default ``~/.cache/mobilenet-np``). Never downloads."""
    if os.environ.get(REAL_TFLITE_SWITCH):
        path = Path(os.environ[REAL_TFLITE_SWITCH]) / name
        return path if path.is_file() else None
    cache = Path(os.environ.get("MOBILENET_NP_HOME") or Path.home() / ".cache" / "mobilenet-np")
    return next((folder / name for folder in (root.parent / "shared" / "real-tflite", cache)
                 if (folder / name).is_file()), None)


def folded_kernel(model, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A conv layer's BN-folded float kernel as (K, C), one column per output channel, and its
    (C,) bias: what the quantizer rounds."""
    from mobilenet_np.kinds import BN_WEIGHTS
    from mobilenet_np.plan import fold_batch_norm

    depthwise = name.startswith("conv_dw")
    kernel = model.params[f"{name}/{'depthwise_kernel' if depthwise else 'kernel'}"]
    bn = [model.params[f"{name}_bn/{w}"] for w in BN_WEIGHTS]
    kernel, bias = fold_batch_norm(kernel, *bn, depthwise=depthwise)
    columns = kernel.shape[2] * kernel.shape[3] if depthwise else kernel.shape[3]
    return kernel.reshape(-1, columns), bias  # (K, C)


def int8_logits(q_model, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """The dequantized input of an int8 model's SOFTMAX (its logits) on float images: (N, classes)."""
    from mobilenet_np.int8 import ops as int8_ops

    graph = q_model.graph
    softmax = next(op for op in graph.operators if op.opcode == "SOFTMAX")
    t = graph.tensors[softmax.inputs[0]]
    rows = []
    for start in range(0, len(x), batch):
        _, values = q_model.forward(int8_ops.quantize(x[start:start + batch], *q_model.input_quantization),
                                    capture=True)
        q = t.quantization
        rows.append(int8_ops.dequantize(values[t.name], q.scale[0], q.zero_point[0]))
    return np.concatenate(rows).reshape(len(x), -1)


def agreement(reference: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Two models' (N, classes) scores: top1 (same best class), top5 (mean overlap of the two
    top-5 sets), top1_in_top5 (the reference's best class among the other's five)."""
    ref5, our5 = (np.argsort(-s, axis=1, kind="stable")[:, :5] for s in (reference, scores))
    return {"top1": float(np.mean(ref5[:, 0] == our5[:, 0])),
            "top5": float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ref5, our5, strict=True)])),
            "top1_in_top5": float(np.mean([a[0] in b for a, b in zip(ref5, our5, strict=True)]))}


def quantize_cases() -> list[tuple[np.ndarray, float, int]]:
    """(x float32, scale, zero point) for exercise 09a.1: exact ties (scale 0.5: x / scale = k / 2),
    values next to ties at the model's own scales (where dividing by the scale and multiplying by
    its float32 reciprocal can round apart), values far outside the int8 range, and 0."""
    ties = (np.arange(-300, 301) * 0.25).astype(np.float32)
    cases = [(ties, 0.5, 0), (ties, 0.5, -7)]
    rng = np.random.default_rng(91)
    for scale, zero_point in ((2 / 255, -1), (6 / 255, -128), (0.1, 5), (0.0137, 20)):
        scale = float(np.float32(scale))  # TFLite stores scales as float32
        near_ties = ((np.arange(-400, 400) + 0.5) * scale).astype(np.float32)
        spread = rng.uniform(-4, 4, 2000).astype(np.float32)
        cases.append((np.concatenate([near_ties, spread, np.float32([0, 1e4, -1e4])]), scale, zero_point))
    return cases


@register("09a", 1, "code", "x * (np.float32(1) / np.float32(scale)) keeps float32; np.rint "
                           "rounds halves to even (np.floor(v + 0.5) does not); add the zero "
                           "point, np.clip to [-128, 127], then .astype(np.int8) (a cast first "
                           "would wrap around).")
def _09a_1(answer):
    function = as_function(answer)
    for x, scale, zero_point in quantize_cases():
        mine = np.asarray(called(function, x.copy(), scale, zero_point))
        expected = int8_quantize(x, scale, zero_point)
        expect(mine.shape == expected.shape, f"x of shape {x.shape}: you gave shape {mine.shape}")
        expect(mine.dtype == np.int8, f"you gave {mine.dtype} values; QUANTIZE outputs int8")
        wrong = np.flatnonzero(mine != expected)
        expect(wrong.size == 0, f"scale {scale:.6g}, zero point {zero_point}: {wrong.size} of {x.size} "
                                f"values differ, e.g. x = {x[wrong[0]]!r} gave {mine[wrong[0]]}, "
                                f"TFLite gives {expected[wrong[0]]}" if wrong.size else "")


RELU6_CASES = [(float(np.float32(scale)), zero_point)
               for scale in (6 / 255, 8 / 255, 0.0471, 0.48, 0.8, 0.1, 1.2, 0.01)
               for zero_point in (-128, -100, -1, 0, 50, 127)]  # 6 / 0.48 and 6 / 0.8: exact .5


@register("09a", 2, "code", "np.float32(6) / np.float32(scale) keeps float32; half away from "
                           "zero is np.sign(v) * np.floor(np.abs(v) + 0.5) (Python's round "
                           "sends halves to even); then max(-128, ...) and min(127, ...).")
def _09a_2(answer):
    function = as_function(answer)
    for scale, zero_point in RELU6_CASES:
        mine = tuple(int(v) for v in as_tuple(called(function, scale, zero_point)))
        expected = activation_range("RELU6", scale, zero_point)
        expect(mine == expected, f"scale {scale:.6g}, zero point {zero_point}: you gave {mine}, "
                                 f"TFLite clamps to {expected}")


@register("09a", 3, "number", "|x - zero_point| <= 255 (both in [-128, 127]) and |w| <= 127 (narrow "
                             "range): K products add up to at most K * 255 * 127; find the largest K "
                             "that keeps this <= 2**31 - 1.")
def _09a_3(answer):
    mine = as_number(answer)
    largest = (2**31 - 1) // (255 * 127)
    expect(mine == largest, f"{answer} is not the largest K")
    widest = max(layer_macs(layer) // math.prod(layer.output_shape)
                 for layer in V1.layers(alpha=1.0) if layer_macs(layer))
    return f"MobileNet V1 1.0's widest sum has K = {widest}: {largest / widest:.0f}x below the limit."


def requantize_cases() -> list[tuple[np.ndarray, int, int, int]]:
    """(int32-valued accumulators, multiplier, shift, zero point) for exercise 09a.4. Real
    multipliers 0.5 and 0.25 give exact ties in both rounding steps (and cases where one
    rounding and two differ) on small accumulators; the others are seeded at typical sizes."""
    rng = np.random.default_rng(94)
    small = np.arange(-4096, 4097, dtype=np.int64)
    cases = []
    for real, zero_point in ((0.5, 0), (0.25, -128), (0.25, 3), (0.1234, -128), (3.1e-3, 0),
                             (7.7e-4, -128), (1.9e-5, 10), *((float(r), -128) for r in
                                                             10.0 ** rng.uniform(-6, -0.3, 6))):
        multiplier, shift = quantize_multiplier(real)
        accumulators = np.concatenate([small, rng.integers(-(2**24), 2**24, 5000)])
        cases.append((accumulators, multiplier, shift, zero_point))
    return cases


@register("09a", 4, "code", "Two roundings, each half up (ties toward +inf), in int64: high = (acc "
                           "* multiplier + 2**30) >> 31, then with right = -shift, (high + "
                           "2**(right - 1)) >> right (skip it when right is 0); add the zero point, "
                           "clip to [-128, 127], cast to np.int8.")
def _09a_4(answer):
    function = as_function(answer)
    for accumulators, multiplier, shift, zero_point in requantize_cases():
        mine = np.asarray(called(function, accumulators.copy(), multiplier, shift, zero_point))
        expected = Requantize(multiplier, shift, zero_point, rounding="double_up").apply(accumulators)
        expect(mine.shape == expected.shape, f"{accumulators.shape} accumulators: you gave shape "
                                             f"{mine.shape}")
        expect(mine.dtype == np.int8, f"you gave {mine.dtype} values; the layer outputs int8")
        wrong = np.flatnonzero(mine != expected)
        expect(wrong.size == 0, f"multiplier {multiplier}, shift {shift}, zero point {zero_point}: "
                                f"{wrong.size} of {accumulators.size} outputs differ, e.g. acc = "
                                f"{accumulators[wrong[0]]} gave {mine[wrong[0]]}, TFLite's CONV_2D "
                                f"gives {expected[wrong[0]]}" if wrong.size else "")


@register("09a", 5, "number", "float32: (256 * 256 kernel + 256 bias) * 4 bytes; int8: 256 * 256 "
                             "kernel bytes + 256 int32 biases * 4 + 256 float32 scales * 4. "
                             "Subtract.")
def _09a_5(answer):
    layer = next(layer for layer in V1.layers(alpha=0.25) if layer.name == "conv_pw_13")
    cin, cout = layer.input_shape[-1], layer.output_shape[-1]
    as_float32 = 4 * (cin * cout + cout)
    as_int8 = cin * cout + 4 * cout + 4 * cout
    expect(as_number(answer) == as_float32 - as_int8, f"{answer} bytes is not what int8 saves there")
    return (f"int8 stores this layer in {as_int8:,} B instead of {as_float32:,} B "
            f"({as_float32 / as_int8:.2f}x smaller).")


# 09b · Two integer schemes -------------------------------------------------------------------

@register("09b", 1, "number", "A 1x1 window holds K = Cin = 8 codes; one window per output pixel "
                              "(64 x 64 of them), shared by the 16 output channels.")
def _09b_1(answer):
    layer = next(layer for layer in V1.layers(alpha=0.25, resolution=128) if layer.name == "conv_pw_1")
    pixels = math.prod(layer.output_shape[:2])
    expect(as_number(answer) == pixels * layer.input_shape[-1], f"{answer} additions is not it")
    return (f"the layer's {layer_macs(layer):,} MACs grow by 1/{layer.output_shape[-1]}; a depthwise "
            f"layer's window sums would add one addition per multiply-add.")


# 11 · Where does it look? --------------------------------------------------------------------

def cam_cases() -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Seeded (features (N, H, W, C) >= 0, kernel (C, K), class) cases, rectangular maps too."""
    cases = []
    for rng in random_cases(110, 3):
        n, h, w, c, k = (int(v) for v in rng.integers((1, 2, 2, 3, 4), (3, 8, 8, 12, 9)))
        features = rng.uniform(0, 6, (n, h, w, c)).astype(np.float32)  # after ReLU6
        kernel = rng.standard_normal((c, k)).astype(np.float32)
        cases.append((features, kernel, int(rng.integers(0, k))))
    return cases


@register("11", 1, "code", "For every cell (i, j), the dot product of the C features there with "
                           "column c of the kernel: features @ kernel[:, c] does all cells at once.")
def _11_1(answer):
    function = as_function(answer)
    for features, kernel, c in cam_cases():
        mine = np.asarray(called(function, features, kernel, c))
        expect(mine.shape == features.shape[:3], f"the map of features {features.shape} must be "
               f"(N, H, W) = {features.shape[:3]}, one number per cell; yours is {mine.shape}")
        pooled_logit = features.mean(axis=(1, 2)) @ kernel[:, c]  # (N,): what the classifier sees
        same_array(mine.mean(axis=(1, 2)), pooled_logit, "the mean of your map (it must equal "
                   "the pooled features times column c)")
        same_array(mine, features @ kernel[:, c], f"the map for class {c}")


@register("11", 2, "code", "The logit is mean(CAM) + bias, a mean over H*W cells: zeroing cell "
                           "(i, j) removes its term, cam[i, j], from a sum divided by H*W.")
def _11_2(answer):
    function = as_function(answer)
    for features, kernel, c in cam_cases():
        one = features[0]  # (H, W, C)
        height, width = one.shape[:2]
        logit = one.mean(axis=(0, 1)) @ kernel[:, c]
        drops = np.empty((height, width), np.float64)
        for i in range(height):
            for j in range(width):
                zeroed = one.copy()
                zeroed[i, j] = 0  # all C features of cell (i, j)
                drops[i, j] = logit - zeroed.mean(axis=(0, 1)) @ kernel[:, c]
        mine = np.asarray(called(function, one @ kernel[:, c]))
        expect(mine.shape == (height, width), f"a ({height}, {width}) map needs "
               f"({height}, {width}) drops, one per cell; yours is {mine.shape}")
        same_array(mine, drops, f"the drops of a ({height}, {width}) map, measured by zeroing "
                   f"each cell and running pool + classifier again", rtol=1e-4)


# 10 · One block to rule them all (MobileNetV4) -------------------------------------------------

# The UIB's two optional depthwise convolutions, (start kernel, middle kernel), 0 = absent.
UIB_VARIANTS = {"inverted residual (V2)": (0, 3), "ConvNeXt-like": (3, 0), "FFN": (0, 0),
                "ExtraDW": (3, 3)}


def uib_blocks(start: int, mid: int, input_shape: tuple[int, int, int], expansion: int,
               filters: int, stride: int = 1) -> list:
    """One UIB as MobileNetV4's builder makes it (``families/v4.universal_ib``), after a no-op
    reshape that stands for the previous block (the builder names the residual's source after
    the layer before the block). Returns the two ``Block``s: [block input, UIB]."""
    from mobilenet_np.families.v4 import universal_ib
    from mobilenet_np.layers import LayerBuilder

    builder = LayerBuilder(input_shape)
    with builder.block("previous", "input"), builder.unit("input"):
        builder.layer("block_input", "reshape")  # (N, H, W, C) -> the same: no arithmetic
    with builder.block("uib", "universal_ib"):
        universal_ib(builder, "uib.", {"a": start, "k": mid, "e": expansion, "c": filters},
                     stride, "relu", False)
    return builder.blocks


def seeded_block_params(blocks: list, x: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """He-normal kernels and random BN, each BN's variance measured on x (N, H, W, C), as the
    package seeds a model (``random_init.py``): activations neither vanish nor explode."""
    from mobilenet_np.random_init import calibrate_batch_norm, random_weights

    layers = [layer for block in blocks for layer in block.layers]
    return calibrate_batch_norm(layers, random_weights(layers, seed), x)


def run_blocks(blocks: list, params: dict[str, np.ndarray], x: np.ndarray,
               fused: bool = False) -> np.ndarray:
    """x (N, H, W, C) through the blocks with the package's kinds: layer by layer (``forward``'s
    readable path) or ``predict``'s fused steps (BN folded into the convolutions)."""
    from mobilenet_np.backends import build_steps
    from mobilenet_np.interpreter import run_steps
    from mobilenet_np.kinds import run_layer
    from mobilenet_np.lanes import call_step
    from mobilenet_np.plan import compile_plan

    if fused:
        return run_steps(build_steps(compile_plan(blocks, params)), x, call_step)
    layers = [layer for block in blocks for layer in block.layers]
    return run_steps(layers, x, lambda layer, x, other: run_layer(
        layer, x, {name: params[f"{layer.name}/{name}"] for name in layer.weights}, other))


def seeded_v4(variant: str, resolution: int = 224):
    """MobileNetV4 ``variant`` (e.g. "conv-small") on seeded random weights with measured BN
    statistics, taking normalised images as timm's model does (no weights are downloaded)."""
    import mobilenet_np as mnp

    return mnp.Network(mnp.get_family(f"v4-{variant}"), weights=None, resolution=resolution,
                       include_preprocessing=False)


def mha_macs(layer) -> int:
    """MACs of FULL multi-head attention in place of a mobile MQA layer: every head its own
    key and value projections, and keys and values at every position (no downsampling)."""
    height, width, channels = layer.input_shape
    length, heads = height * width, layer.options["heads"]
    d, dv = layer.options["key_dim"], layer.options["value_dim"]
    projections = length * channels * heads * (2 * d + dv)  # queries, keys, values: per head
    attention = heads * length * length * (d + dv)  # scores and weighted sum, S = L
    return projections + attention + length * heads * dv * layer.output_shape[-1]


def ideal_bytes(layer, before=None) -> int:
    """4 bytes x (input read once + output written once + weights read once); the input
    unpadded when the layer ``before`` only zero-pads it."""
    source = before.input_shape if before is not None and before.kind == "zero_pad" \
        else layer.input_shape
    weights = sum(math.prod(shape) for shape in layer.weights.values())
    return 4 * (math.prod(source) + math.prod(layer.output_shape) + weights)


def network_intensity(layers) -> float:
    """A whole network's arithmetic intensity: its FLOPs (2 x MACs) over the ideal bytes of
    the layers that do them (convolutions, attention, classifier): FLOP per byte."""
    flops, moved = 0, 0
    for before, layer in zip([None, *layers[:-1]], layers, strict=True):
        if layer_macs(layer):
            flops += 2 * layer_macs(layer)
            moved += ideal_bytes(layer, before)
    return flops / moved


def machine_roofs(repeats: int = 7) -> dict[str, float]:
    """This machine's roofs, each the fastest of ``repeats`` runs (run under one BLAS thread
    for one core): compute (best float32 matmul of three MobileNet-like shapes, GFLOP/s),
    memory (a 64 MiB copy, GB/s) and L2 cache (a 256 KiB copy, GB/s), bytes read + written."""
    rng = np.random.default_rng(0)
    peak = 0.0
    for m, k, n in ((1024, 1024, 1024), (784, 256, 256), (196, 512, 512)):
        a, b = (rng.standard_normal(shape).astype(np.float32) for shape in ((m, k), (k, n)))
        peak = max(peak, 2 * m * k * n / run_times(lambda a=a, b=b: a @ b, repeats).min() / 1e9)
    small, big = np.ones(2**16, np.float32), np.ones(16 * 2**20, np.float32)  # 256 KiB, 64 MiB
    small_out, big_out = copy_target(small), copy_target(big)
    t_small = run_times(lambda: [np.copyto(small_out, small) for _ in range(64)], repeats).min() / 64
    t_big = run_times(lambda: np.copyto(big_out, big), repeats).min()
    return {"compute": peak, "memory": 2 * big.nbytes / t_big / 1e9,
            "cache": 2 * small.nbytes / t_small / 1e9}


def copy_target(source: np.ndarray) -> np.ndarray:
    """An empty array like ``source`` (1-D float32) starting 2 KiB away from it modulo 4 KiB.
    At nearly the same offset the CPU takes each load for one of the stores just before it
    (4K aliasing) and a copy runs several times slower than the cache allows."""
    buffer = np.empty(source.size + 1024, np.float32)
    shift = (source.ctypes.data + 2048 - buffer.ctypes.data) % 4096 // 4
    return buffer[shift:shift + source.size]


def v4_uib_cases() -> list[tuple[tuple[int, ...], int]]:
    """((h, w, c_in, hidden, c_out, start, mid, stride), MACs by the counters) for every UIB of
    the five MobileNetV4 variants, at 224 x 224 and at 256 x 192 (a rectangular input)."""
    from mobilenet_np.registry import get_family

    cases = []
    for variant in ("conv-small", "conv-medium", "conv-large", "hybrid-medium", "hybrid-large"):
        for resolution in (224, (256, 192)):
            for block in get_family(f"v4-{variant}").blocks(resolution=resolution):
                if block.kind != "universal_ib":
                    continue
                start, mid = block.conv("dw_start"), block.conv("depthwise")
                expand, project = block.conv("expand"), block.conv("project")
                h, w, c_in = block.layers[0].input_shape
                stride = max(layer.stride for layer in block.layers)
                shape = (h, w, c_in, expand.output_shape[-1], project.output_shape[-1],
                         start.kernel if start else 0, mid.kernel if mid else 0, stride)
                cases.append((shape, sum(layer_macs(layer) for layer in block.layers)))
    # No MobileNetV4 has a stride-2 block with one depthwise: built here, odd sizes too.
    for start, mid, (h, w) in ((3, 0, (14, 14)), (5, 0, (15, 9)), (0, 3, (14, 14)),
                               (0, 5, (7, 10))):
        block = uib_blocks(start, mid, (h, w, 24), 4, 40, stride=2)[-1]
        cases.append(((h, w, 24, 96, 40, start, mid, 2), sum(map(layer_macs, block.layers))))
    return cases


@register("10", 1, "code", "The start depthwise runs on the c_in input channels. The middle "
                           "depthwise takes the stride when there is one: then everything before "
                           "it runs at h x w. Without it the start depthwise takes the stride, "
                           "and everything after it, the expansion too, runs at ceil(h / s) x "
                           "ceil(w / s).")
def _10_1(answer):
    function = as_function(answer)
    for (h, w, c_in, hidden, c_out, start, mid, stride), macs in v4_uib_cases():
        mine = as_number(called(function, h, w, c_in, hidden, c_out, start, mid, stride))
        expect(mine == macs, f"h={h}, w={w}, c_in={c_in}, hidden={hidden}, c_out={c_out}, "
                             f"start={start}, mid={mid}, stride={stride}: you gave {mine:,.0f}, "
                             f"the counters {macs:,}")


def mqa_cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Seeded (q (N, L, heads*d), k (N, S, d), v (N, S, dv), heads): one head and several,
    L != S, d != dv; scores of size ~2, so the softmax is far from uniform (a wrong head
    order or scale shows)."""
    cases = []
    for rng, (n, length, positions, heads, d, dv) in zip(
            random_cases(102, 4), ((1, 6, 6, 1, 4, 4), (2, 12, 4, 4, 8, 5),
                                   (1, 9, 3, 2, 16, 16), (2, 5, 7, 3, 6, 2)), strict=True):
        q = (2 * rng.standard_normal((n, length, heads * d))).astype(np.float32)
        k = rng.standard_normal((n, positions, d)).astype(np.float32)
        v = rng.standard_normal((n, positions, dv)).astype(np.float32)
        cases.append((q, k, v, heads))
    return cases


@register("10", 2, "code", "Query channel h * d + j is head h's j-th: q.reshape(N, L, heads, d); "
                           "scores = q k^T / sqrt(d) for every head with the one shared k, "
                           "softmax over the S key positions, then times the shared v; output "
                           "channel h * dv + j.")
def _10_2(answer):
    from mobilenet_np import reference_v4

    function = as_function(answer)
    for q, k, v, heads in mqa_cases():
        expected = reference_v4.multi_query_attention(q, k, v, heads)
        same_array(called(function, q.copy(), k.copy(), v.copy(), heads), expected,
                   f"{heads} head(s), q {q.shape}, k {k.shape}, v {v.shape}")
