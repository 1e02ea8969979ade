"""MobileNetV4's ImageNet weights and its own preprocessing, checked against what timm states.

``scripts/make_v4_transform_fixture.py`` recorded, in a side environment with timm, the data
config timm resolves for each checkpoint (``data_configs.json``) and what timm's own eval
transform makes of two seeded photos (``transform.npz``); downloads go to a local HTTP server
laid out like the Hugging Face hub, never to the internet.
"""

from __future__ import annotations

import http.server
import json
import logging
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mobilenet_np as mnp
from mobilenet_np.cam import SLOPES
from mobilenet_np.cli import main
from mobilenet_np.cli_models import resize_rule
from mobilenet_np.download import official_weights
from mobilenet_np.errors import WeightsError
from mobilenet_np.families.v4 import IMAGENET_MEAN, IMAGENET_STD, VARIANTS
from mobilenet_np.imagenet import load_image
from mobilenet_np.plan import compile_plan
from mobilenet_np.safetensors import write_safetensors
from mobilenet_np.torch_layout import to_torch
from mobilenet_np.v4_sources import CHECKPOINTS

FIXTURES = Path(__file__).parent / "fixtures" / "v4"
CONFIGS = json.loads((FIXTURES / "data_configs.json").read_text())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_family_records_state_timms_data_config(variant):
    family, timm = mnp.get_family(f"v4-{variant}"), CONFIGS[variant]
    name = family.weight_files.file_name(1.0, 224, True)
    assert name == f"{timm['checkpoint']}.safetensors"
    assert (family.crop.crop_pct, family.crop.interpolation) == (timm["crop_pct"],
                                                                 timm["interpolation"])
    assert CHECKPOINTS[variant].size == timm["input_size"][1] == timm["input_size"][2]
    assert (list(IMAGENET_MEAN), list(IMAGENET_STD)) == (timm["mean"], timm["std"])
    assert family.weight_files.path(name) == f"{timm['checkpoint']}/resolve/main/model.safetensors"


def transform_cases() -> list:
    """(photo, size, crop_pct, timm's crop) for every crop the fixture holds."""
    arrays, cases = np.load(FIXTURES / "transform.npz"), []
    for key in arrays.files:
        if not key.startswith("photo_"):
            which, size, crop_pct = key.split("_")
            height, width = (int(side) for side in size.split("x")) if "x" in size \
                else (int(size),) * 2
            cases.append(pytest.param(arrays[f"photo_{which}"], (height, width),
                                      float(crop_pct), arrays[key], id=key))
    return cases


@pytest.mark.parametrize(("photo", "size", "crop_pct", "timm"), transform_cases())
def test_load_image_crops_as_timms_eval_transform(photo, size, crop_pct, timm, tmp_path):
    """Bicubic resize keeping the aspect ratio, then the centre: timm's uint8 pixels exactly
    (both resize PIL images with Pillow's own filter)."""
    Image.fromarray(photo).save(tmp_path / "photo.png")
    ours = load_image(tmp_path / "photo.png", size, "bicubic", crop_pct=crop_pct)
    assert ours.shape == (*size, 3) and np.array_equal(ours, timm)


def test_classify_resizes_as_each_model_was_trained():
    v4 = mnp.Network(mnp.get_family("v4-conv-small"), weights=None, resolution=64)
    v1 = mnp.Network(mnp.get_family("v1"), weights=None, alpha=0.25, resolution=128)
    assert resize_rule(v4, None) == ("bicubic", 0.875)
    assert resize_rule(v4, "bilinear") == ("bilinear", 0.875)
    assert resize_rule(v1, None) == ("nearest", None)


class Hub(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` by path, as the hub does: ``/x/<repo>/resolve/main/model.safetensors``."""

    files: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def timm_file(variant: str, seed: int, folder: Path) -> bytes:
    """A variant's random weights in timm's names and layout, as a .safetensors file's bytes."""
    model = mnp.Network(mnp.get_family(f"v4-{variant}"), weights=None, seed=seed, resolution=64)
    write_safetensors(to_torch(model.params, model.layers), folder / f"{variant}.safetensors")
    return (folder / f"{variant}.safetensors").read_bytes()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A local hub serving conv-small's file at its path, an empty cache, an empty home."""
    Hub.files = {"/x/mobilenetv4_conv_small.e2400_r224_in1k/resolve/main/model.safetensors":
                 timm_file("conv-small", 5, tmp_path)}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("MOBILENET_NP_WEIGHTS_URL", f"http://127.0.0.1:{httpd.server_port}/x/")
    monkeypatch.setenv("MOBILENET_NP_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield
    httpd.shutdown()


def test_imagenet_weights_come_from_the_hub_into_the_cache(hub, tmp_path, caplog):
    family = mnp.get_family("v4-conv-small")
    with caplog.at_level(logging.WARNING, logger="mobilenet_np"):
        path = official_weights(family, family.config(resolution=64))
    assert path == tmp_path / "cache" / "mobilenetv4_conv_small.e2400_r224_in1k.safetensors"
    assert "no published checksum" in caplog.text and "sha256" in caplog.text
    Hub.files = {}  # the second load reads the cache, not the network
    model = mnp.Network(family, weights="imagenet", resolution=64)
    served = mnp.Network(family, weights=None, seed=5, resolution=64)
    assert all(np.array_equal(model.params[k], served.params[k]) for k in served.params)


def test_another_variants_file_is_refused_and_not_cached(hub, tmp_path):
    medium = mnp.get_family("v4-conv-medium")
    Hub.files["/x/mobilenetv4_conv_medium.e500_r224_in1k/resolve/main/model.safetensors"] = \
        Hub.files.popitem()[1]
    with pytest.raises(WeightsError, match="MobileNetV4-Conv-Small"):
        official_weights(medium, medium.config())
    assert not any((tmp_path / "cache").glob("*.safetensors"))


def test_offline_classify_is_one_line_naming_the_hub_file(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MOBILENET_NP_WEIGHTS_URL", "http://127.0.0.1:9/")  # nothing listens
    monkeypatch.setenv("MOBILENET_NP_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    Image.new("RGB", (40, 30)).save(tmp_path / "photo.png")
    code = main(["classify", str(tmp_path / "photo.png"), "--arch", "v4-hybrid-medium"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "Offline?" in err
    assert "mobilenetv4_hybrid_medium.e500_r224_in1k/resolve/main/model.safetensors" in err


def test_layer_scale_and_uib_convs_fold_into_fused_steps():
    """Every layer scale of hybrid-medium joins the step before it (a projection or the
    attention); dw_start and dw_end are fused depthwise steps. fused == forward:
    test_mobilenet_v4.py."""
    model = mnp.Network(mnp.get_family("v4-hybrid-medium"), weights=None, resolution=64)
    plan = compile_plan(model.blocks, model.params)
    scaled = [unit for unit in plan if unit.covers[-1].kind == "layer_scale"]
    assert len(scaled) == sum(layer.kind == "layer_scale" for layer in model.layers) > 0
    assert {unit.op for unit in scaled} == {"conv", "attention"}
    starts = [unit for unit in plan if unit.covers[0].role == "dw_start"]
    assert starts and {unit.op for unit in starts} == {"depthwise"}


def test_gelu_slope_equals_central_differences():
    """The head gradient --cam needs for hybrid-large: d/dz z Phi(z), against a float64 central
    difference of ``math.erf``'s GELU g. Its error is at most h^2/6 max|g'''| (that third
    derivative, z phi(z) (z^2 - 4), is under 1 in size) plus the round-off 2 eps max|g| / h
    (|g| <= 6 here)."""
    z, h = np.linspace(-6, 6, 49), 1e-5

    def gelu(t: float) -> float:
        return t * 0.5 * (1 + math.erf(t / math.sqrt(2)))

    central = np.array([(gelu(t + h) - gelu(t - h)) / (2 * h) for t in z])
    bound = h**2 / 6 + 2 * np.finfo(float).eps * 6 / h
    assert np.abs(SLOPES["gelu"](z) - central).max() <= bound


def test_cam_on_v4_from_the_command_line(tmp_path, capsys):
    model = mnp.Network(mnp.get_family("v4-hybrid-medium"), weights=None, seed=1, resolution=96)
    write_safetensors(to_torch(model.params, model.layers), tmp_path / "w.safetensors")
    pixels = np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    assert main(["classify", str(tmp_path / "photo.png"), "--weights",
                 str(tmp_path / "w.safetensors"), "--resolution", "96", "--cam",
                 str(tmp_path / "cam.png")]) == 0
    assert "where the model looks" in capsys.readouterr().err
    assert Image.open(tmp_path / "cam.png").size == (96, 96)  # over the centre crop it saw
