"""Blocks recovered from a graph's layer table, and the fused plan they compile to.

A Keras file says which layers a model has, not which boxes a paper draws around them. Here
the layer table of ``graph_layers.py`` gets its structure back, by pattern, whatever the
layers are called:

1. MobileNetV3's hard-sigmoid written as ops (``x + 3``, ReLU6, ``* 1/6``, then times x for a
   hard-swish) becomes one ``hard_sigmoid`` or ``hard_swish`` layer, as in our own tables; a
   first layer ``Rescaling(1 / 127.5, offset=-1)`` becomes their ``rescaling`` (the same
   float32 arithmetic, and a unit the fused path and int8 quantization know);
2. layers join units (``layers.py``): [pad] conv [batch norm] [activation] (``conv``,
   ``depthwise``), squeeze-excite, a residual ``add``, a pooled ``top``; anything else runs
   layer by layer (``layers``);
3. units join blocks: a depthwise unit with the 1x1 convs around it is a ``separable`` block
   (V1) or, with an expansion or a residual, an ``inverted_residual`` (V2, V3); what comes
   before the first is the ``stem``, what comes after the last the ``head``.

``compile_graph_plan`` then asks ``plan.UNIT_RULES`` for each unit; a unit its rule cannot
fuse runs unfused (``plan.layers_unit``): the model runs either way.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import UnsupportedError
from .fused import INPLACE
from .kinds import KINDS
from .layers import Block, Layer, Params
from .plan import UNIT_RULES, Unit, layers_unit

Unit_ = tuple[str, list[Layer]]  # (role, layers)
POOLS = ("global_average_pool", "global_max_pool")
SQUEEZE_EXCITE = ["global_average_pool", "pointwise_conv2d", "relu", "pointwise_conv2d",
                  "hard_sigmoid", "multiply"]


def _is_scale_shift(layer: Layer, scale: float, offset: float) -> bool:
    options = layer.options
    return (layer.kind == "scale_shift" and abs(float(options.get("scale", 1.0)) - scale) < 1e-6
            and abs(float(options.get("offset", 0.0)) - offset) < 1e-6
            and not isinstance(options.get("scale"), list)
            and not isinstance(options.get("offset"), list))


def _is_rescaling(layer: Layer) -> bool:
    """Whether a ``scale_shift`` computes exactly what our ``rescaling`` does: x * s - 1."""
    scale, offset = layer.options.get("scale", 1.0), layer.options.get("offset", 0.0)
    return (layer.kind == "scale_shift" and not isinstance(scale, list)
            and not isinstance(offset, list) and np.float32(scale) == np.float32(1 / 127.5)
            and np.float32(offset) == np.float32(-1.0))


def recover_activations(layers: list[Layer], input_name: str) -> list[Layer]:
    """``x + 3``, ReLU6, ``* 1/6`` -> ``hard_sigmoid``; followed by ``* x`` -> ``hard_swish``;
    a first ``scale_shift`` by 1 / 127.5 and -1 -> ``rescaling`` (pixels to [-1, 1])."""
    needed = {layer.source for layer in layers if layer.source}
    out: list[Layer] = []
    i = 0
    while i < len(layers):
        window = layers[i:i + 4]
        before = out[-1].name if out else input_name
        if (len(window) >= 3 and _is_scale_shift(window[0], 1.0, 3.0)
                and window[1].kind == "relu6" and _is_scale_shift(window[2], 1 / 6, 0.0)
                and not needed & {window[0].name, window[1].name}):
            swish = (len(window) == 4 and window[3].kind == "multiply"
                     and window[3].source == before and window[2].name not in needed)
            last = window[3] if swish else window[2]
            out.append(dataclasses.replace(last, kind="hard_swish" if swish else "hard_sigmoid",
                                           input_shape=window[0].input_shape, source=None,
                                           weights={}, options={}))
            i += 4 if swish else 3
        elif i == 0 and _is_rescaling(layers[0]):  # first: int8 calibrates it on the input
            out.append(dataclasses.replace(layers[0], kind="rescaling", options={}))
            i += 1
        else:
            out.append(layers[i])
            i += 1
    return out


def find_units(layers: list[Layer]) -> list[Unit_]:
    """The layers grouped into units (see the module's docstring); a layer whose output a later
    join reads always ends its unit (the interpreter keeps outputs by unit)."""
    needed = {layer.source for layer in layers if layer.source}
    units: list[Unit_] = []
    i = 0
    while i < len(layers):
        layer, rest = layers[i], layers[i:]
        before = layers[i - 1].name if i else None
        kinds = [each.kind for each in rest[:6]]
        if (kinds == SQUEEZE_EXCITE and rest[5].source == before
                and all(each.options.get("bias") for each in (rest[1], rest[3]))
                and not needed & {each.name for each in rest[:5]}):
            size = 6
            role = "squeeze_excite"
        elif KINDS[layer.kind].fuses in ("pad", "conv"):
            size = _conv_unit_size(rest, needed)
            conv = next((each for each in rest[:size] if KINDS[each.kind].fuses == "conv"), None)
            role = "layers" if conv is None else (  # (a pad alone runs layer by layer)
                "depthwise" if conv.kind == "depthwise_conv2d" else "conv")
        elif layer.kind == "add":
            size, role = 1, "residual"
        elif layer.kind == "rescaling":
            size, role = 1, "rescaling"
        elif layer.kind in POOLS and not needed & {each.name for each in rest[:-1]} \
                and not any(each.source for each in rest):
            size, role = len(rest), "top"
        else:
            size, role = 1, "layers"
            while (i + size < len(layers) and layers[i + size - 1].name not in needed
                   and not layers[i + size].source
                   and KINDS[layers[i + size].kind].fuses not in ("pad", "conv")
                   and layers[i + size].kind not in (*POOLS, "add")):
                size += 1
        units.append((role, layers[i:i + size]))
        i += size
    return units


def _conv_unit_size(rest: list[Layer], needed: set[str]) -> int:
    """How many layers of ``rest`` make one conv unit: [zero_pad] conv [batch_norm] [activation]."""
    size = 1
    if KINDS[rest[0].kind].fuses == "pad":
        if len(rest) < 2 or KINDS[rest[1].kind].fuses != "conv" or rest[0].name in needed:
            return 1  # a pad on its own runs as a layers unit
        size = 2
    for fuses in ("batch_norm", "activation"):
        if (size < len(rest) and rest[size - 1].name not in needed and not rest[size].source
                and KINDS[rest[size].kind].fuses == fuses
                and (fuses != "activation" or rest[size].kind in INPLACE)):
            size += 1
    return size


def find_blocks(units: list[Unit_]) -> list[Block]:
    """Units grouped into blocks around each depthwise unit, roles named as in our tables."""
    blocks: list[tuple[str, list[Unit_]]] = [("stem", [])]
    for k, (role, layers) in enumerate(units):
        next_conv = next((r for r, _ in units[k + 1:] if r in ("conv", "depthwise")), None)
        expands = role == "conv" and next_conv == "depthwise" and layers[-1].kind != "zero_pad" \
            and any(layer.kind == "pointwise_conv2d" for layer in layers)
        current = blocks[-1]
        in_block = current[0] not in ("stem", "head")
        seen_depthwise = any(r == "depthwise" for r, _ in current[1])
        mixed = any(r in ("pointwise", "project") for r, _ in current[1])
        if role == "conv" and in_block and seen_depthwise and not mixed:
            # the 1x1 conv after a depthwise: V1's pointwise (activated), V2's linear project
            role = "pointwise" if KINDS[layers[-1].kind].fuses == "activation" else "project"
        elif expands or (role == "depthwise" and (not in_block or seen_depthwise)):
            blocks.append(("block", []))
            role = "expand" if expands else role
        elif role in ("conv", "top") and in_block and (mixed or role == "top"):
            blocks.append(("head", []))
        blocks[-1][1].append((role, layers))
    return [_block(name, units, k) for k, (name, units) in enumerate(blocks) if units]


def _block(name: str, units: list[Unit_], k: int) -> Block:
    """One block, its layers tagged with block and role; a role repeated next to itself gets a
    ``#`` and its position (so that ``Block.units`` keeps the units apart)."""
    roles = [role for role, _ in units]
    if name in ("stem", "head"):
        kind = name
    elif "expand" in roles or "residual" in roles:
        kind = "inverted_residual"
    else:  # a depthwise with its 1x1 after it, or (a home-made net) without one
        kind = "separable" if {"pointwise", "project"} & set(roles) else "depthwise"
    label = name if name in ("stem", "head") else f"block_{k}"
    tagged, previous = [], None
    for j, (role, layers) in enumerate(units):
        own = f"{role}#{j}" if role == previous else role  # "#j": the rule is still the role's
        tagged += [dataclasses.replace(layer, block=label, role=own) for layer in layers]
        previous = role
    return Block(label, kind, tuple(tagged))


def compile_graph_plan(blocks: list[Block], params: Params, ends_in_softmax: bool) -> list[Unit]:
    """One ``Unit`` per unit, fused where ``plan.UNIT_RULES`` can, else layer by layer. A final
    softmax is left to ``predict`` (as ``plan.head_unit`` does), so the plan gives logits."""
    plan = []
    for block in blocks:
        for role, layers in block.units():
            rule = UNIT_RULES.get(role.split("#")[0], layers_unit)
            try:
                plan.append(rule(layers, params))
            except UnsupportedError:  # a unit its rule cannot fuse: run it as it is
                plan.append(layers_unit(layers, params))
    last = plan[-1]
    if ends_in_softmax and last.op == "layers":
        kept = last.covers[:-1]
        plan[-1:] = [layers_unit(kept, params)] if kept else []
    return plan


def graph_blocks(layers: list[Layer], input_name: str) -> list[Block]:
    """The blocks of a graph's layer table (activations recovered first)."""
    return find_blocks(find_units(recover_activations(layers, input_name)))
