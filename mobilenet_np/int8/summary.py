"""What an int8 graph holds and costs, op by op: ``tflite_summary`` and its text table.

Works on a .tflite file or on any ``TFLiteModel`` (``load_tflite``'s or ``mnp.quantize``'s).
MACs follow ``cost.py``'s convention: one multiply-add = 1 MAC, counted for CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED only (a 1 x 1 image's classifier conv included), at
batch 1. Bytes: what the weights take as int8 (kernel bytes + int32 biases + one float32
scale per output channel) beside the same constants as float32 (kernel and bias, 4 bytes
each: the BN-folded float model, which is what a float .tflite stores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .model import TFLiteModel, load_tflite
from .tflite_file import Graph, Operator

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def op_macs(graph: Graph, op: Operator) -> int:
    """Multiply-adds of one op at batch 1: every output element sums one product per kernel tap.

    CONV_2D: Ho*Wo*Cout * kh*kw*Cin; DEPTHWISE_CONV_2D: Ho*Wo*C*M * kh*kw; FULLY_CONNECTED:
    rows * Cout * Cin. Other ops: 0 (elementwise work, as in cost.py).
    """
    if op.opcode not in WEIGHTED_OPS:
        return 0
    out_shape, kernel_shape = graph.tensors[op.outputs[0]].shape, graph.tensors[op.inputs[1]].shape
    outputs = int(np.prod(out_shape[1:]))  # batch 1: (Ho, Wo, Cout) or (Cout,)
    if op.opcode == "DEPTHWISE_CONV_2D":  # kernel (1, kh, kw, C*M): one channel per output
        return outputs * kernel_shape[1] * kernel_shape[2]
    return outputs * int(np.prod(kernel_shape[1:]))  # (Cout, kh, kw, Cin) or (Cout, Cin)


def op_weight_bytes(graph: Graph, op: Operator) -> tuple[int, int]:
    """(bytes as stored: int8 kernel + int32 bias + float32 scales, bytes as float32) of one op."""
    if op.opcode not in WEIGHTED_OPS:
        return 0, 0
    kernel = graph.tensors[op.inputs[1]]
    bias = graph.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    elements = int(np.prod(kernel.shape)), int(np.prod(bias.shape)) if bias is not None else 0
    scales = len(kernel.quantization.scale) if kernel.quantization is not None else 0
    stored = elements[0] * np.dtype(kernel.dtype).itemsize + 4 * elements[1] + 4 * scales
    return stored, 4 * (elements[0] + elements[1])


def _quantization(graph: Graph, index: int) -> dict:
    q = graph.tensors[index].quantization
    if q is None:
        return {"scale": None, "zero_point": None}
    return {"scale": float(q.scale[0]), "zero_point": int(q.zero_point[0])}


def tflite_summary(model: str | Path | bytes | TFLiteModel) -> dict:
    """Per op: name, op, output shape, weight bytes (stored, float32), MACs, scales in and out.

    Returns ``{"model", "input", "classes", "layers": [...], "total_macs", "weight_bytes",
    "float32_bytes"}``; ``input`` says what ``predict``'s pixels become, ``classes`` the
    outputs and where their labels come from;
    each layer ``{"name", "op", "output_shape", "weight_bytes", "float32_bytes", "macs",
    "input_scale", "input_zero_point", "output_scale", "output_zero_point"}`` (scales and
    zero points None where the tensor is not quantized, e.g. shape arithmetic).
    """
    model = model if isinstance(model, TFLiteModel) else load_tflite(model)
    graph, layers = model.graph, []
    for op in graph.operators:
        stored, float32 = op_weight_bytes(graph, op)
        given = _quantization(graph, op.inputs[0]) if op.inputs and op.inputs[0] >= 0 else {}
        out = _quantization(graph, op.outputs[0])
        layers.append({"name": graph.tensors[op.outputs[0]].name, "op": op.opcode,
                       "output_shape": list(graph.tensors[op.outputs[0]].shape),
                       "weight_bytes": stored, "float32_bytes": float32, "macs": op_macs(graph, op),
                       "input_scale": given.get("scale"), "input_zero_point": given.get("zero_point"),
                       "output_scale": out["scale"], "output_zero_point": out["zero_point"]})
    return {"model": model.name, "input": input_convention(model), "classes": classes_line(model),
            "layers": layers,
            "total_macs": sum(layer["macs"] for layer in layers),
            "weight_bytes": sum(layer["weight_bytes"] for layer in layers),
            "float32_bytes": sum(layer["float32_bytes"] for layer in layers)}


def input_convention(model: TFLiteModel) -> str:
    """What the input takes and how ``predict`` fills it from 0-255 pixels, in one line."""
    kind = f"{np.dtype(model.input.dtype).name} {tuple(model.input.shape)}"
    if model.input.dtype == np.uint8:
        return f"{kind}: 0-255 pixels as they are (an 8-bit image)"
    if model.input.dtype == np.float32 and model.normalization is not None:
        mean, std = (", ".join(f"{v:g}" for v in values) for values in model.normalization)
        return f"{kind}: (pixels - mean) / std, mean {mean}, std {std} (the file's metadata)"
    real = "0-255 pixels" if model.takes_pixels else "[-1, 1] (pixels / 127.5 - 1)"
    if model.input.dtype == np.float32:
        return f"{kind}: {real}, the MobileNet convention (the file declares no range)"
    scale, zero_point = model.input_quantization
    return f"{kind}: {real}, quantized at scale {scale:.6g}, zero point {zero_point}"


def classes_line(model: TFLiteModel) -> str:
    """How many outputs, and the labels ``classify --tflite`` gives them."""
    count = model.output.shape[-1] if model.output.shape else 0
    if model.labels:
        return f"{count} outputs, labelled by the labels file packed in the .tflite"
    known = {1000: "ImageNet", 1001: "ImageNet after class 0, background"}
    return f"{count} outputs, labelled as {known.get(count, 'class i (or --labels FILE)')}"


def _scale(scale: float | None, zero_point: int | None) -> str:
    return "-" if scale is None else f"{scale:.6g} @ {zero_point}"


def tflite_summary_table(summary: dict, name_width: int = 36) -> str:
    """The summary as text: one row per op, then the totals and the bytes saved."""
    header = (f"{'op / output tensor':<{name_width}} {'op':<18} {'output shape':<18} {'int8 B':>9} "
              f"{'float32 B':>10} {'MACs':>12}  {'in scale @ zp':<20} {'out scale @ zp':<20}")
    lines = [summary["model"], f"input: {summary['input']}", f"classes: {summary['classes']}",
             header, "-" * len(header)]
    for layer in summary["layers"]:
        name = layer["name"].split(";")[0]  # converters join fused ops' names with ";"
        name = name if len(name) <= name_width else "..." + name[3 - name_width:]
        lines.append(f"{name:<{name_width}} {layer['op']:<18} {str(tuple(layer['output_shape'])):<18} "
                     f"{layer['weight_bytes']:>9,} {layer['float32_bytes']:>10,} {layer['macs']:>12,}  "
                     f"{_scale(layer['input_scale'], layer['input_zero_point']):<20} "
                     f"{_scale(layer['output_scale'], layer['output_zero_point']):<20}")
    saved = summary["float32_bytes"] - summary["weight_bytes"]
    ratio = summary["float32_bytes"] / max(summary["weight_bytes"], 1)
    lines += ["-" * len(header),
              f"total: {summary['total_macs']:,} MACs; weights {summary['weight_bytes']:,} B as int8 "
              f"(+ int32 biases, float32 scales) vs {summary['float32_bytes']:,} B as float32: "
              f"{saved:,} B saved ({ratio:.2f}x smaller)"]
    return "\n".join(lines)
