"""The safetensors reader and writer, and timm's layout: on a file safetensors itself wrote,
crafted damaged files (each one line), fuzzed bytes, and PyTorch's pickles (refused)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mobilenet_np as mnp
from mobilenet_np.errors import WeightsError
from mobilenet_np.safetensors import read_safetensors
from mobilenet_np.torch_layout import from_torch, to_torch

FIXTURES = Path(__file__).parent / "fixtures" / "v4"


def test_reads_a_file_written_by_safetensors():
    """sample.safetensors was written by safetensors.torch.save_file: F32, F16, BF16, I64, a
    scalar and metadata; the values PyTorch read from it are in sample.npz."""
    tensors = read_safetensors(FIXTURES / "sample.safetensors")
    expected = np.load(FIXTURES / "sample.npz")
    assert sorted(tensors) == sorted(expected.files)
    for name, array in tensors.items():
        assert array.shape == expected[name].shape
        assert np.array_equal(array.astype(np.float64), expected[name]), name
    assert tensors["i64"].dtype == np.int64 and tensors["f16"].dtype == np.float32


def test_round_trip_through_timm_layout():
    """Params -> timm's names and OIHW -> safetensors -> back: the same arrays."""
    layers = mnp.get_family("v4-hybrid-medium").layers()
    params = {key: np.full(shape, i, np.float32) + np.arange(int(np.prod(shape))).reshape(shape)
              for i, key, shape in ((i, f"{layer.name}/{w}", s)
                                    for i, layer in enumerate(layers)
                                    for w, s in layer.weights.items())}
    tensors = to_torch(params, layers)
    assert tensors["conv_stem.weight"].shape == (32, 3, 3, 3)  # OIHW
    assert tensors["blocks.2.4.attn.key.down_conv.weight"].shape == (160, 1, 3, 3)
    assert tensors["classifier.weight"].shape == (1000, 1280)
    stored = from_torch(tensors)
    for key, array in params.items():
        layer, _, weight = key.rpartition("/")
        assert np.array_equal(stored[layer][weight], array), key


def crafted(tmp_path: Path, header: dict | bytes, buffer: bytes = b"", length: int | None = None):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + buffer)
    return path


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("case, header, buffer, length, message", [
    ("truncated", {"w": F32_2}, b"\0" * 4, None, "truncated or damaged"),
    ("header past the end", {"w": F32_2}, b"", 1 << 40, "header of"),
    ("header not JSON", b"{not json", b"", None, "not JSON"),
    ("unknown dtype", {"w": {**F32_2, "dtype": "F8_E4M3"}}, b"\0" * 8, None, "dtype 'F8_E4M3'"),
    ("negative shape", {"w": {**F32_2, "shape": [-2]}}, b"\0" * 8, None, "bad shape"),
    ("size mismatch", {"w": {**F32_2, "shape": [3]}}, b"\0" * 8, None, "declares bytes"),
    ("overlap", {"a": F32_2, "b": {**F32_2, "data_offsets": [4, 12]}}, b"\0" * 12, None, "share"),
    ("no offsets", {"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, None, "lacks"),
])
def test_damaged_safetensors_is_one_line(tmp_path, case, header, buffer, length, message):
    path = crafted(tmp_path, header, buffer, length)
    with pytest.raises(WeightsError) as error:
        mnp.load(path)
    assert message in str(error.value) and "\n" not in str(error.value), case
    assert str(path) in str(error.value)


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flip=st.floats(0, 1), value=st.integers(0, 255), cut=st.floats(0.5, 1))
def test_damaged_safetensors_fuzzed(tmp_path, flip, value, cut):
    """sample.safetensors with one byte replaced, then cut short: read, or one WeightsError."""
    data = bytearray((FIXTURES / "sample.safetensors").read_bytes())
    data[int(flip * (len(data) - 1))] = value
    path = tmp_path / "fuzzed.safetensors"
    path.write_bytes(bytes(data[:max(1, int(cut * len(data)))]))
    try:
        read_safetensors(path)
    except WeightsError as error:
        assert str(path) in str(error) and "\n" not in str(error)


def test_deeply_nested_header_is_one_line(tmp_path):
    path = crafted(tmp_path, b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(WeightsError, match="not JSON"):
        read_safetensors(path)


@pytest.mark.parametrize("name", ["model.bin", "model.pth"])
def test_pytorch_pickles_are_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x80\x02}q\x00.")  # a pickle's first bytes
    with pytest.raises(WeightsError, match="pickle.*safetensors"):
        mnp.load(path)
