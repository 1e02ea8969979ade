"""PyTorch's weight layout (timm's state_dict) to this package's, and back.

Layer names are timm's module paths (``blocks.1.0.dw_mid.conv``); what changes is the weight
names and the axis order:

- a convolution's ``weight`` is OIHW, (Cout, Cin, kh, kw); ours HWIO (kh, kw, Cin, Cout), TF's.
  A depthwise conv in PyTorch is a grouped conv with one input channel per group, (C, 1, kh, kw):
  ours (kh, kw, C, 1);
- a Linear ``weight`` is (out, in): ours (in, out);
- BatchNorm's weight, bias, running_mean, running_var: gamma, beta, moving_mean,
  moving_variance (``num_batches_tracked``, a training counter, is dropped);
- LayerScale2d's ``gamma``: ``scale`` (not BN's gamma);
- an attention layer (``...attn``) holds its sub-modules' weights under one layer:
  ``attn.key.down_conv.weight`` -> ``attn/key_down_depthwise_kernel`` (``ATTENTION_MODULES``).
"""

from __future__ import annotations

import numpy as np

from .errors import WeightsError
from .kinds import BN_WEIGHTS
from .layers import Layer, Params
from .stored import Stored

BN_NAMES = dict(zip(BN_WEIGHTS, ("weight", "bias", "running_mean", "running_var"), strict=True))
# attention sub-module -> the prefix of its weights in our attention layer
ATTENTION_MODULES = {"query.proj": "query", "key.down_conv": "key_down", "key.norm": "key_down",
                     "key.proj": "key", "value.down_conv": "value_down",
                     "value.norm": "value_down", "value.proj": "value", "output.proj": "output"}
LAYOUT = "timm safetensors (PyTorch layout)"


def _attention_names() -> dict[str, str]:
    """Our attention weight name -> timm's sub-path, e.g. key_down_gamma -> key.norm.weight."""
    names = {}
    for module, prefix in ATTENTION_MODULES.items():
        if module.endswith("norm"):
            names.update({f"{prefix}_{ours}": f"{module}.{theirs}" for ours, theirs in BN_NAMES.items()})
        else:
            kernel = "depthwise_kernel" if module.endswith("down_conv") else "kernel"
            names[f"{prefix}_{kernel}"] = f"{module}.weight"
    return names


ATTENTION_NAMES = _attention_names()
ATTENTION_SUBPATHS = {theirs: ours for ours, theirs in ATTENTION_NAMES.items()}


def to_hwio(weight: np.ndarray) -> tuple[str, np.ndarray]:
    """A PyTorch conv or Linear weight -> (our weight name, the array in our layout)."""
    if weight.ndim == 2:
        return "kernel", weight.T  # (out, in) -> (in, out)
    if weight.ndim != 4:
        raise WeightsError(f"a {weight.ndim}-D weight is neither a conv's nor a Linear's")
    if weight.shape[1] == 1 and weight.shape[0] > 1:  # (C, 1, kh, kw): one filter per channel
        return "depthwise_kernel", weight.transpose(2, 3, 0, 1)  # (kh, kw, C, 1)
    return "kernel", weight.transpose(2, 3, 1, 0)  # (O, I, kh, kw) -> (kh, kw, I, O)


def from_torch(tensors: dict[str, np.ndarray]) -> Stored:
    """timm's state_dict (by parameter name) -> ``Stored`` {layer: {our weight name: array}}."""
    stored = Stored(layout=LAYOUT)
    for key, array in tensors.items():
        if key.endswith("num_batches_tracked"):
            continue
        module, _, param = key.rpartition(".")
        if ".attn." in f".{key}":
            layer, _, subpath = key.partition(".attn.")
            layer, weight = f"{layer}.attn", ATTENTION_SUBPATHS.get(subpath)
            if weight is None:
                raise WeightsError(f"{key}: an attention weight this package does not know")
            if weight.endswith("kernel"):
                array = to_hwio(array)[1]
        elif module.endswith("layer_scale") and param == "gamma":
            layer, weight = module, "scale"
        elif f"{module}.running_var" in tensors:  # a BatchNorm
            theirs = {v: k for k, v in BN_NAMES.items()}
            layer, weight = module, theirs.get(param, param)
        elif param == "weight":
            layer, (weight, array) = module, to_hwio(array)
        else:
            layer, weight = module, param
        stored.setdefault(layer, {})[weight] = array
    return stored


def torch_name(layer: Layer, weight: str) -> str:
    """timm's parameter name of one of our weights."""
    if layer.kind == "mobile_mqa":
        return f"{layer.name}.{ATTENTION_NAMES[weight]}"
    if layer.kind == "batch_norm":
        return f"{layer.name}.{BN_NAMES[weight]}"
    if layer.kind == "layer_scale":
        return f"{layer.name}.gamma"
    return f"{layer.name}.{'weight' if weight.endswith('kernel') else weight}"


def to_torch(params: Params, layers: list[Layer]) -> dict[str, np.ndarray]:
    """Our params -> timm's state_dict arrays (without BN's ``num_batches_tracked``)."""
    tensors = {}
    for layer in layers:
        for weight in layer.weights:
            array = params[f"{layer.name}/{weight}"]
            if weight.endswith("depthwise_kernel"):
                array = array.transpose(2, 3, 0, 1)  # (kh, kw, C, 1) -> (C, 1, kh, kw)
            elif weight.endswith("kernel"):
                array = array.T if array.ndim == 2 else array.transpose(3, 2, 0, 1)  # -> OIHW
            tensors[torch_name(layer, weight)] = np.ascontiguousarray(array)
    return tensors
