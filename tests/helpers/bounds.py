"""Float32 round-off bounds: how far two correct computations of the same numbers may differ."""

from __future__ import annotations

import numpy as np

UNIT_ROUNDOFF = 2.0**-24  # float32

def rounding_bound(abs_sum: np.ndarray, terms: int) -> np.ndarray:
    """Largest gap two float32 evaluations of the same sum can have, in any order.

    Higham's bound for a sum of ``terms`` products: |computed - exact| <= gamma * sum |x_i w_i|,
    gamma = terms * u / (1 - terms * u). Two computations (vectorised vs loop vs TensorFlow) may each
    be off by that much in opposite directions, hence the factor 2. ``abs_sum`` is the same
    convolution run on |x| and |w| (plus |bias|); a real bug (wrong tap, wrong padding, wrong
    channel) is off by the size of a whole term, far above this bound.
    """
    gamma = terms * UNIT_ROUNDOFF / (1 - terms * UNIT_ROUNDOFF)
    return 2 * gamma * abs_sum.astype(np.float64) + 1e-30

def assert_within_rounding(actual, expected, abs_sum, terms) -> float:
    """Assert every element is within ``rounding_bound``; return the max abs error seen."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    error = np.abs(actual - expected)
    bound = rounding_bound(np.asarray(abs_sum), terms)
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    assert np.all(error <= bound), (
        f"error {error[worst]:.3g} above the float32 rounding bound {bound[worst]:.3g} at {worst}"
    )
    return float(error.max())

def parity_rtol(layers) -> float:
    """Relative gap allowed between our logits and Keras's, from a model of float32 rounding.

    Each of the L summing layers on the path (convolutions, the classifier) adds up at most K
    products; a float32 sum of K terms in another order differs by about sqrt(K) u relative
    (u = 2^-24: independent roundings cancel like a random walk; Higham's worst case K u is
    never approached), and L layers' errors add the same way: sqrt(L K) u per computation,
    twice that between two (ours, Keras's). V1 1.0: L = 28, K = 1024 -> 2.0e-5; V2 1.0:
    L = 53, K = 1280 -> 3.1e-5. Used as rtol * (1 + max |logit|); a wrong padding, channel
    order or BN formula moves logits by 1e-2 or more.
    """
    from mobilenet_np.cost import layer_macs

    summing = [layer for layer in layers if layer_macs(layer)]
    widest = max(layer_macs(layer) // int(np.prod(layer.output_shape)) for layer in summing)
    return 2 * UNIT_ROUNDOFF * float(np.sqrt(len(summing) * widest))

def softmax_bound(probs: np.ndarray, logit_bound: float) -> float:
    """How far probabilities may move when every logit moves by at most ``logit_bound``:
    d p_i = p_i (d z_i - sum_j p_j d z_j), so |d p_i| <= 2 p_i max |d z|."""
    return 2 * float(np.max(probs)) * logit_bound

def log_softmax(logits: np.ndarray) -> np.ndarray:
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

def roundoff_bound(model, x: np.ndarray) -> float:
    """How far two float32 runs of ``model`` on x may drift apart when only the order of their
    sums differs: fused vs readable path, one batch size or BLAS kernel (AVX2, AVX-512) vs
    another. In log-probabilities (features without a top); a probability moves by at most
    its log-probability's change, as p <= 1, so it bounds probabilities too.

    How far round-off travels depends on the network, so the bound is measured per case: the
    output change caused by perturbing the *input alone* by one ulp, times 8. Each layer
    rounds its sums once, by a few ulps, and the layers after it carry that as they carry an
    input ulp; independent layers' errors add like a random walk (sqrt(28) = 5.3 < 8 for
    V1's 28 convolutions): ``one_ulp_reach``. Floor: the Keras-parity rule
    ``parity_rtol`` x (1 + max |output|). A real bug (a wrong fold, bias or tap) moves outputs
    by ~1.
    """
    readable = model.forward(x, output="logits")
    if model.include_top:  # logits matter only up to a constant per row
        readable = log_softmax(readable)
    floor = parity_rtol(model.layers) * (1 + float(np.abs(readable).max()))
    return max(floor, one_ulp_reach(model, x, log_probabilities=model.include_top))

def one_ulp_reach(model, x: np.ndarray, log_probabilities: bool = False) -> float:
    """8x how far perturbing the input alone by one ulp moves the logits (or log-probabilities,
    or features): how far one more rounding per layer can carry (see ``roundoff_bound``)."""
    one_ulp = np.sign(np.random.default_rng(1).standard_normal(x.shape)).astype(np.float32)
    outputs = [model.forward(image, output="logits")
               for image in (x, x * (1 + np.finfo(np.float32).eps * one_ulp))]
    if log_probabilities:
        outputs = [log_softmax(output) for output in outputs]
    return 8 * float(np.abs(outputs[1] - outputs[0]).max())
