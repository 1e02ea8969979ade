"""MobileNetV4 against timm, the implementation people use (PyTorch), without PyTorch in CI.

``scripts/make_v4_fixtures.py`` ran timm on weights that ``helpers/v4_weights.py`` makes with
NumPy alone and committed timm's outputs (``tests/fixtures/v4/``); here the same weights go
through our safetensors writer and reader into the NumPy model, whose outputs must equal timm's
within a float32 bound. With timm installed, ``-m timm`` also runs timm live on a file that
``safetensors.torch.save_file`` wrote.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from helpers.bounds import UNIT_ROUNDOFF, parity_rtol, rounding_bound
from helpers.v4_weights import (
    RESOLUTION,
    TIMM_NAMES,
    VARIANTS,
    as_stored,
    first_attention,
    seeded_input,
    seeded_model,
    seeded_params,
)

import mobilenet_np as mnp
from mobilenet_np import ops, reference, reference_v4
from mobilenet_np.cli import main
from mobilenet_np.cost import network_cost
from mobilenet_np.families.v4 import ALPHAS
from mobilenet_np.kinds import KINDS, run_layer
from mobilenet_np.layers import Layer
from mobilenet_np.safetensors import write_safetensors
from mobilenet_np.torch_layout import to_torch
from mobilenet_np.v4_kinds import attention_probabilities

FIXTURES = Path(__file__).parent / "fixtures" / "v4"


@pytest.fixture(scope="module", params=VARIANTS)
def variant(request) -> str:
    return request.param


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities (N, K), shifted by the row's max first so that exp cannot overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def timm_outputs(variant: str) -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / f"{variant}.npz"))


def our_outputs(model, x: np.ndarray, block: str | None) -> dict[str, np.ndarray]:
    """Log-probabilities, pre-logits and the first attention block's output (image 0)."""
    logits, acts = model.forward(x, output="logits", capture=True, check_range=False)
    outputs = {"logits": log_softmax(logits), "pre_logits": acts["flatten"]}
    if block is not None:
        outputs["attention"] = acts[f"{block}.add"][:1]
    return outputs


def roundoff_bounds(model, x: np.ndarray, block: str | None) -> dict[str, float]:
    """How far two float32 runs may differ at each output (see ``bounds.roundoff_bound``): 8x
    what one ulp of input moves it, at least ``parity_rtol`` x (1 + max |output|)."""
    one_ulp = np.sign(np.random.default_rng(1).standard_normal(x.shape)).astype(np.float32)
    runs = [our_outputs(model, image, block)
            for image in (x, x * (1 + np.finfo(np.float32).eps * one_ulp))]
    rtol = parity_rtol(model.layers)
    return {name: max(8 * float(np.abs(runs[1][name] - value).max()),
                      rtol * (1 + float(np.abs(value).max())))
            for name, value in runs[0].items()}


@pytest.mark.parametrize("alpha", ALPHAS)
def test_params_equal_timms_count(variant, alpha):
    """Trainable parameters equal timm's sum(p.numel()) at every width timm defines; BN's
    running statistics come on top."""
    counts = json.loads((FIXTURES / "timm_params.json").read_text())
    layers = mnp.get_family(f"v4-{variant}").layers(alpha=alpha)
    assert network_cost(layers)["trainable_params"] == counts[variant][str(alpha)]
    if alpha == 1.0:
        assert counts[variant]["1.0"] == int(timm_outputs(variant)["timm_params"])


@pytest.mark.parametrize("name, alpha", [("conv-small", 0.5), ("hybrid-medium", 0.35),
                                         ("conv-large", 1.0)])
def test_load_recognises_variant_and_width(name, alpha, tmp_path):
    """mnp.load reads the variant and alpha off a safetensors file's shapes; a file with a top
    also loads without it."""
    family = mnp.get_family(f"v4-{name}")
    model = mnp.Network(family, None, alpha=alpha, classes=10, resolution=64)
    path = tmp_path / "weights.safetensors"
    write_safetensors(to_torch(model.params, model.layers), path)
    loaded = mnp.load(path, resolution=64)
    assert (loaded.family.name, loaded.config["alpha"], loaded.config["classes"]) == \
        (f"v4-{name}", alpha, 10)
    x = model.random_input(1)
    probabilities, acts = model.forward(x, capture=True)
    assert np.array_equal(loaded.forward(x), probabilities)
    features = mnp.Network(family, path, alpha=alpha, include_top=False, resolution=64)
    assert np.array_equal(features.forward(x), acts["blocks.4.0.bn1.act"])  # timm's forward_features


def test_outputs_equal_timms(variant, tmp_path):
    """Weights written as safetensors in timm's layout, read back into the model: its
    log-probabilities, pre-logits and attention output equal timm's within the float32 bound."""
    model = seeded_model(variant)
    path = tmp_path / "v4.safetensors"
    write_safetensors(to_torch(model.params, model.layers), path)
    loaded = mnp.load(path, resolution=RESOLUTION, include_preprocessing=False)
    assert loaded.family.name == f"v4-{variant}"
    x, block, gold = seeded_input(), first_attention(variant), timm_outputs(variant)
    ours = our_outputs(loaded, x, block)
    bounds = roundoff_bounds(loaded, x, block)
    assert set(ours) == set(gold) - {"timm_version", "torch_version", "timm_params"}
    gold["logits"] = log_softmax(gold["logits"])
    for name, value in ours.items():
        error = float(np.abs(value - gold[name]).max())
        assert error <= bounds[name], f"{name}: {error:.3g} above the bound {bounds[name]:.3g}"
    assert np.all(gold["logits"].std(axis=1) > 0.5), "degenerate logits: would prove nothing"


@pytest.mark.parametrize("mutation", ["keras_padding", "epsilon_1e-3", "head_order"])
def test_convention_mistakes_fail(mutation):
    """The PyTorch conventions are checked: Keras's stride-2 padding (0, 1), Keras's BN epsilon
    or the query channels read as j * heads + head would each move outputs far past the bound."""
    model, x = seeded_model("hybrid-medium"), seeded_input()
    bound = roundoff_bounds(model, x, None)["logits"]
    layers = []
    for layer in model.layers:
        if mutation == "keras_padding" and layer.stride == 2 and layer.kind != "mobile_mqa":
            layer = dataclasses.replace(layer, padding="same")
        if mutation == "epsilon_1e-3" and layer.kind == "batch_norm":
            layer = dataclasses.replace(layer, options={**layer.options, "epsilon": 1e-3})
        layers.append(layer)
    model.layers = layers
    if mutation == "head_order":
        for layer in (layer for layer in layers if layer.kind == "mobile_mqa"):
            heads, d = layer.options["heads"], layer.options["key_dim"]
            kernel = model.params[f"{layer.name}/query_kernel"]
            order = np.arange(heads * d).reshape(heads, d).T.ravel()  # channel j * heads + head
            model.params[f"{layer.name}/query_kernel"] = kernel[..., order]
    error = np.abs(log_softmax(model.forward(x, output="logits"))
                   - log_softmax(timm_outputs("hybrid-medium")["logits"])).max()
    assert error > 100 * bound


def test_attention_is_far_from_uniform():
    """Each query's largest attention weight is many times 1/S, in every attention layer."""
    model = seeded_model("hybrid-medium")
    _, acts = model.forward(seeded_input(), output="logits", capture=True)
    for layer in (layer for layer in model.layers if layer.kind == "mobile_mqa"):
        probabilities = attention_probabilities(acts[f"{layer.block}.norm"], layer,
                                                model.layer_weights(layer))
        positions = probabilities.shape[-1]
        assert probabilities.max(axis=-1).mean() > 10 / positions, layer.name


@pytest.mark.parametrize("name", ["conv-small", "hybrid-medium"])
def test_fused_predict_equals_forward(name):
    model, x = seeded_model(name), seeded_input()
    bound = roundoff_bounds(model, x, None)["logits"]
    error = np.abs(log_softmax(model.predict(x, output="logits"))
                   - log_softmax(model.forward(x, output="logits"))).max()
    assert error <= bound


@pytest.mark.parametrize("name", ["hybrid-medium", "hybrid-large"])
def test_numba_backend_equals_forward(name):
    pytest.importorskip("numba", reason="the numba backend needs Numba: pip install -e '.[jit]'")
    model = seeded_model(name)
    fast = mnp.Network(model.family, as_stored(model.params), backend="numba",
                       resolution=RESOLUTION, include_preprocessing=False)
    x = seeded_input()
    bound = roundoff_bounds(model, x, None)["logits"]
    error = np.abs(log_softmax(fast.predict(x, output="logits"))
                   - log_softmax(model.forward(x, output="logits"))).max()
    assert error <= bound


def test_the_model_normalises_pixels_as_timm_does():
    """With include_preprocessing (the default) the model takes 0-255 pixels and normalises
    them by ImageNet's mean and std: the same as the model without it on (x / 255 - mean) / std,
    within a few roundings of the normalised input carried through the network."""
    normalised = seeded_model("conv-small")
    pixels = mnp.Network(normalised.family, as_stored(normalised.params), resolution=RESOLUTION)
    assert pixels.expects_pixels and not normalised.expects_pixels
    x = np.random.default_rng(3).integers(0, 256, (2, RESOLUTION, RESOLUTION, 3)).astype(np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    by_hand = ((x / 255 - mean) / std).astype(np.float32)
    bound = roundoff_bounds(normalised, by_hand, None)["logits"]
    error = np.abs(log_softmax(pixels.predict(x, output="logits"))
                   - log_softmax(normalised.forward(by_hand, "logits", check_range=False))).max()
    assert error <= 4 * bound  # the pixel path rounds its input 2-3 times, the bound allows 1
    loops = run_layer(pixels.layers[0], x[:1, :4, :4], {}, twin=True)
    assert np.array_equal(loops, run_layer(pixels.layers[0], x[:1, :4, :4], {}))


@pytest.mark.parametrize("command", ["summary", "compare", "profile"])
def test_cli_reports_on_v4(command, capsys):
    extra = ["--resolution", "64", "--repeats", "1"] if command == "profile" else []
    code = main([command, "--arch", "v4-hybrid-medium", *extra])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err and out, err
    if command == "summary":
        assert "blocks.2.4.attn" in out and "mobile_mqa" in out and "ImageNet's mean" in out


# The loop twins of the new kinds, on small random problems.
def mqa_layer(kv_stride: int) -> Layer:
    """An attention layer on (6, 6, 16): 2 heads of width 4, values of width 5, 24 out."""
    kv = 3 if kv_stride == 2 else 6
    layer = Layer("attn", "mobile_mqa", (6, 6, 16), (6, 6, 24), kernel=3, stride=kv_stride,
                  padding=((1, 1), (1, 1)), options={"heads": 2, "key_dim": 4, "value_dim": 5,
                                                     "kv_size": (kv, kv), "epsilon": 1e-5})
    return dataclasses.replace(layer, weights=KINDS["mobile_mqa"].weights(layer))


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_attention_loop_twin(kv_stride):
    """The looped layer (reference.py's convolutions, reference_v4's attention) equals the
    vectorised one within what one more rounding per stage can do: 8x the output change one ulp
    of input causes (as ``bounds.roundoff_bound``), at least 2 u sqrt(stages * widest sum)."""
    layer, rng = mqa_layer(kv_stride), np.random.default_rng(kv_stride)
    weights = {name: rng.normal(0, 0.5, shape).astype(np.float32)
               for name, shape in layer.weights.items()}
    for name in weights:
        if name.endswith("variance"):
            weights[name] = np.abs(weights[name]) + 0.5
    x = rng.normal(0, 1, (2, 6, 6, 16)).astype(np.float32)
    expected = run_layer(layer, x, weights)
    one_ulp = np.sign(rng.standard_normal(x.shape)).astype(np.float32)
    nudged = run_layer(layer, x * (1 + np.finfo(np.float32).eps * one_ulp), weights)
    floor = 2 * UNIT_ROUNDOFF * np.sqrt(5 * 36) * (1 + float(np.abs(expected).max()))
    bound = max(8 * float(np.abs(nudged - expected).max()), floor)
    assert np.abs(run_layer(layer, x, weights, twin=True) - expected).max() <= bound


def test_multi_query_attention_twin():
    """The attention core alone: the bound from the scores' rounding through the softmax."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(0, 1, shape).astype(np.float32)
               for shape in ((2, 10, 3 * 8), (2, 7, 8), (2, 7, 5)))
    expected = ops.multi_query_attention(q, k, v, 3)
    twin = reference_v4.multi_query_attention(q, k, v, 3)
    # a score sums 8 products, then is scaled (one more rounding); a weight p moves by at most
    # 2 p |d score| (softmax_bound), so the output, sum p v, by 2 |d score| max |v|, plus the
    # rounding of exp, the normalisation and its own sum of 7 terms
    abs_scores = np.einsum("nlhd,nsd->nhls", np.abs(q.reshape(2, 10, 3, 8)), np.abs(k)) / np.sqrt(8)
    score_bound = float(rounding_bound(abs_scores.max(), 8 + 1))
    bound = 2 * score_bound * np.abs(v).max() + rounding_bound(np.abs(v).max(), 7 + 3)
    assert np.abs(twin - expected).max() <= bound
    # channel h * dv + j of the output is head h: a head's query change moves only its channels
    q2 = q.copy()
    q2[..., 8:16] += 1
    moved = np.abs(ops.multi_query_attention(q2, k, v, 3) - expected).max(axis=(0, 1))
    assert np.all(moved[:5] == 0) and np.all(moved[5:10] > 0) and np.all(moved[10:] == 0)


def test_gelu_and_layer_scale_twins():
    """GELU: both round the same float64 value once (ops.erf within ~1e-15 of math.erf), so
    at most 1 ulp apart; layer scale is one product per element, so exactly equal."""
    x = np.random.default_rng(0).normal(0, 3, (2, 3, 4, 5)).astype(np.float32)
    x.flat[:4] = [0.0, -8.0, 9.0, 1e-6]
    expected = ops.gelu(x)
    assert np.all(np.abs(reference.gelu(x) - expected) <= np.spacing(np.abs(expected)))
    scale = np.linspace(0.5, 1.5, 5).astype(np.float32)
    assert np.array_equal(reference_v4.layer_scale(x, scale), ops.layer_scale(x, scale))


# timm live, when it is installed (not a test dependency)
@pytest.mark.timm
@pytest.mark.parametrize("name", ["conv-small", "hybrid-medium"])
def test_timm_live(name, tmp_path):
    """timm's model with the seeded weights, its state_dict saved by safetensors itself (BN's
    num_batches_tracked included): mnp.load reads it, and the outputs agree live."""
    torch = pytest.importorskip("torch", reason="runs timm live: needs PyTorch")
    timm = pytest.importorskip("timm", reason="runs timm live: pip install timm")
    save_file = pytest.importorskip("safetensors.torch", reason="needs safetensors").save_file
    layers = mnp.get_family(f"v4-{name}").layers(resolution=RESOLUTION)
    gold = timm.create_model(TIMM_NAMES[name], pretrained=False).eval()
    state = {key: torch.from_numpy(array.copy())
             for key, array in to_torch(seeded_params(name), layers).items()}
    gold.load_state_dict(state, strict=False)
    path = tmp_path / "model.safetensors"
    save_file(gold.state_dict(), str(path))
    model, x = mnp.load(path, resolution=RESOLUTION, include_preprocessing=False), seeded_input()
    with torch.no_grad():
        theirs = gold(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    bound = roundoff_bounds(model, x, None)["logits"]
    assert np.abs(log_softmax(model.forward(x, output="logits")) - log_softmax(theirs)).max() <= bound
