"""The safetensors format with NumPy alone: no torch, no pickle, nothing executed.

A file is: 8 bytes, the header's length n (little-endian unsigned 64-bit); n bytes of JSON,
``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}``;
then one buffer holding every tensor's raw little-endian bytes, C order, at its offsets
(relative to the buffer's start). timm publishes its weights this way on the Hugging Face
hub. Everything the header declares is checked against the file before a byte is used.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import numpy as np

from .errors import WeightsError

MAX_HEADER_BYTES = 100 << 20  # the format's own limit
# safetensors dtype -> NumPy's, little-endian. BF16 has no NumPy type: read as uint16 and widened.
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
WRITTEN = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64",
           np.dtype(np.int64): "I64"}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def looks_like_safetensors(head: bytes) -> bool:
    """True if the first 9 bytes are a header length and the start of a JSON object."""
    return len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 1


def refuse_pickle(path: Path, head: bytes) -> None:
    """PyTorch's own ``.bin``/``.pth`` files are pickles, which run code when loaded: refused."""
    if looks_like_safetensors(head):  # its length's first byte may well be 0x80
        return
    if path.suffix in PICKLE_SUFFIXES or head.startswith(b"\x80"):
        raise WeightsError(f"{path} looks like a PyTorch pickle ({path.suffix or 'no suffix'}), which "
                           f"can run code when loaded: use the model's .safetensors file instead")


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file by name; floats as float32 (BF16/F16 widened)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise WeightsError(f"{path}: {len(data)} bytes, too short for a safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(MAX_HEADER_BYTES, len(data) - 8):
        raise WeightsError(f"{path}: header of {length} bytes declared, but the file has "
                           f"{len(data) - 8} after the length (truncated or not safetensors)")
    try:
        header = json.loads(data[8:8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:  # nested too deep
        raise WeightsError(f"{path}: the safetensors header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: the safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    buffer = memoryview(data)[8 + length:]
    tensors = {name: _tensor(path, name, entry, buffer) for name, entry in header.items()}
    _check_no_overlap(path, header)
    return tensors


def _tensor(path: Path, name: str, entry: object, buffer: memoryview) -> np.ndarray:
    """One header entry, checked (dtype, shape, offsets inside the buffer, size), as an array."""
    try:
        dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
    except (TypeError, KeyError, ValueError):
        raise WeightsError(f"{path}: tensor {name!r} lacks dtype, shape or data_offsets") from None
    if dtype not in DTYPES:
        raise WeightsError(f"{path}: tensor {name!r} has dtype {dtype!r}; this reader knows "
                           f"{', '.join(DTYPES)}")
    numbers = [*shape, begin, end] if isinstance(shape, list) else None
    if numbers is None or not all(type(v) is int and v >= 0 for v in numbers):
        raise WeightsError(f"{path}: tensor {name!r} has a bad shape {shape!r} or offsets")
    itemsize = np.dtype(DTYPES[dtype]).itemsize
    if end > len(buffer) or end - begin != math.prod(shape) * itemsize:  # exact, no overflow
        raise WeightsError(f"{path}: tensor {name!r} ({dtype} {shape}) declares bytes "
                           f"[{begin}, {end}) of a {len(buffer)}-byte buffer: truncated or damaged")
    array = np.frombuffer(buffer[begin:end], DTYPES[dtype]).reshape(shape)
    if dtype == "BF16":  # bfloat16 is float32's top 16 bits
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32) if array.dtype.kind == "f" else array.copy()


def _check_no_overlap(path: Path, header: dict) -> None:
    """Tensors may not share bytes (the format requires it; overlap means a crafted file)."""
    spans = sorted(entry["data_offsets"] for entry in header.values())
    for (_, end), (begin, _) in zip(spans, spans[1:], strict=False):
        if begin < end:
            raise WeightsError(f"{path}: two tensors share bytes {begin}..{end}: damaged file")


def write_safetensors(tensors: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write arrays (float32/16/64, int64) as a .safetensors file, in the order given."""
    header, offset = {}, 0
    arrays = {name: np.ascontiguousarray(array) for name, array in tensors.items()}
    for name, array in arrays.items():
        if array.dtype not in WRITTEN:
            raise WeightsError(f"write_safetensors: {name} is {array.dtype}; writes "
                               f"{', '.join(map(str, WRITTEN))}")
        header[name] = {"dtype": WRITTEN[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # pad with spaces: the buffer starts 8-byte aligned
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(text)) + text)
        for array in arrays.values():
            file.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
