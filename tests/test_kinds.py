"""The kind table and the plan as data: a new kind through its record alone; every family's
loop twins layer by layer; int8 lowering the same from either backend's model; each error class
raised where a caller meets it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.bounds import roundoff_bound

import mobilenet_np as mnp
from mobilenet_np import kinds
from mobilenet_np.blocks import ConvNames, classifier_top, conv_unit
from mobilenet_np.cli import main
from mobilenet_np.cost import network_cost
from mobilenet_np.kinds import Kind, register_kind
from mobilenet_np.layers import LayerBuilder, check_options
from mobilenet_np.registry import FAMILIES, Family, WeightFiles, register

pytestmark = pytest.mark.numerical  # .ci/run runs these with other BLAS kernels too


def channel_scale(x, layer, weights):
    """The toy kind's kernel: every channel times its own learned scale, (N, H, W, C) * (C,)."""
    return x * weights["scale"]


def channel_scale_loops(x, layer, weights):
    """Its loop twin."""
    out = np.empty_like(x)
    for n, y, x_, c in np.ndindex(x.shape):
        out[n, y, x_, c] = x[n, y, x_, c] * weights["scale"][c]
    return out


TOY_KIND = Kind("channel_scale", channel_scale, channel_scale_loops,
                weights=lambda layer: {"scale": (layer.input_shape[-1],)})


def toy_build(alpha, resolution, include_top, pooling, classes) -> list:
    """stem conv, the toy kind in a unit of its own, a dense top."""
    height, width = check_options(alpha, resolution, pooling, classes)
    builder, names = LayerBuilder((height, width, 3)), ConvNames(bn="_bn", act="_relu")
    with builder.block("stem", "stem"):
        conv_unit(builder, "conv", "stem", "conv2d", 3, 2, 8, "relu6", names)
        with builder.unit("scale"):
            builder.layer("stem_scale", "channel_scale")
    with builder.block("head", "head"):
        classifier_top(builder, include_top, pooling, lambda: builder.dense("logits", classes),
                       "probabilities")
    return builder.blocks


@pytest.fixture
def toy_kind():
    """The toy kind and a family that uses it, registered for one test."""
    register_kind(TOY_KIND)
    family = register(Family("toy-kind", "ToyKindNet", toy_build, {},
                             WeightFiles("https://example.invalid/", (1.0,), (32,),
                                         lambda *args: "toy.h5"),
                             lambda stored: None, "preprocess_input's [-1, 1]"))
    yield family
    del kinds.KINDS["channel_scale"], FAMILIES["toy-kind"]


def test_a_new_kind_through_the_table_alone(toy_kind, capsys) -> None:
    """Forward, loop twins, fused predict (an unfused unit), cost, summary and profile."""
    model = mnp.Network(toy_kind, weights=None, resolution=32, classes=5)
    scale = model.params["stem_scale/scale"]
    assert scale.shape == (8,) and np.ptp(scale) > 0.1  # random weights reach the new kind too
    x = model.random_input(3)
    probs = model.forward(x)
    assert probs.shape == (3, 5) and np.abs(probs[0] - probs[1]).max() > 1e-3
    bound = roundoff_bound(model, x)
    assert np.abs(model.forward(x, loop_twins=True) - probs).max() <= bound
    assert [unit.op for unit in model.plan] == ["conv", "layers", "head"]
    assert np.abs(model.predict(x) - probs).max() <= bound
    # the new kind's output equals its formula on the stem's captured output
    _, seen = model.forward(x, capture=True)
    np.testing.assert_array_equal(seen["stem_scale"], seen["stem_relu"] * scale)
    cost = network_cost(model.layers)
    assert [c.params for c in cost["layers"] if c.kind == "channel_scale"] == [8]
    assert cost["total_params"] == sum(a.size for a in model.params.values())
    for command in (["summary", "--json"], ["profile", "--fused", "--repeats", "1", "--json"]):
        assert main([*command, "--arch", "toy-kind", "--resolution", "32"]) == 0
        assert "stem_scale" in json.dumps(json.loads(capsys.readouterr().out))


@pytest.mark.parametrize(("arch", "options"), [("v1", {"depth_multiplier": 2}), ("v2", {}),
                                               ("v3-small", {}), ("v3-large", {"pooling": "max",
                                                                                "include_top": False})])
def test_every_layer_of_every_family_equals_its_loop_twin(arch, options) -> None:
    """The whole network run on the loop twins (reference.py), layer by layer, against the
    vectorised kernels: the same sums in another order, hence ``roundoff_bound``."""
    model = mnp.Network(mnp.get_family(arch), weights=None, alpha=0.35 if arch == "v2" else 0.25,
                        resolution=32, **options)
    x = model.random_input(1)
    got, expected = model.forward(x, loop_twins=True), model.forward(x)
    assert np.abs(got - expected).max() <= roundoff_bound(model, x)


def test_quantize_reads_the_plan_whatever_the_backend() -> None:
    """The same int8 graph from a numba-backend model as from a numpy one, bit for bit."""
    pytest.importorskip("numba", reason="needs Numba, the numba backend: pip install -e '.[jit]'")
    numpy_model = mnp.MobileNetV2(alpha=0.35, resolution=96, weights=None)
    numba_model = mnp.MobileNetV2(alpha=0.35, resolution=96, weights=None, backend="numba")
    calibration = numpy_model.random_input(2, seed=5)
    a, b = mnp.quantize(numpy_model, calibration), mnp.quantize(numba_model, calibration)
    q = np.random.default_rng(0).integers(-128, 128, (2, 96, 96, 3)).astype(np.int8)
    out_a, out_b = a.run_quantized(q), b.run_quantized(q)
    assert np.unique(out_a).size > 5 and (out_a[0] != out_a[1]).any()  # not saturated
    np.testing.assert_array_equal(out_a, out_b)


def test_each_error_class_is_raised_where_a_caller_meets_it(tmp_path) -> None:
    """All are MobileNetError, itself a ValueError (code catching ValueError keeps working)."""
    model = mnp.MobileNet(alpha=0.25, resolution=32, weights=None)
    with pytest.raises(mnp.InputError, match="NaN"):
        model.predict(np.full((1, 32, 32, 3), np.nan, np.float32))
    (tmp_path / "w.h5").write_bytes(b"not a weights file")
    with pytest.raises(mnp.WeightsError, match="w.h5"):
        mnp.load(tmp_path / "w.h5")
    with pytest.raises(mnp.UnsupportedError, match="int8 quantization supports global average"):
        mnp.quantize(mnp.MobileNet(alpha=0.25, resolution=32, weights=None, include_top=False,
                                   pooling="max"), model.random_input(1))
    for error in (mnp.InputError, mnp.WeightsError, mnp.UnsupportedError):
        assert issubclass(error, mnp.MobileNetError) and issubclass(error, ValueError)
