"""Bad input, as users really hand it over: every case is one clear line, the right exit code,
no traceback, and no file changed or left behind."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers.data import write_legacy_h5
from PIL import Image

import mobilenet_np as mnp
from mobilenet_np.cli import main
from mobilenet_np.files import save_npz


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A folder of good and bad files, made once."""
    folder = tmp_path_factory.mktemp("world")
    model = mnp.MobileNet(alpha=0.25, resolution=128, weights=None, seed=2)
    save_npz(model.params, folder / "w.npz")
    write_legacy_h5(folder / "w.h5", model.layers, model.params)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(
        folder / "good.png")
    jpeg = folder / "whole.jpg"
    Image.open(folder / "good.png").save(jpeg)
    (folder / "truncated.jpg").write_bytes(jpeg.read_bytes()[:300])
    jpeg.unlink()
    (folder / "text.jpg").write_text("not a picture")
    (folder / "notes.h5").write_text("not weights")
    (folder / "empty").mkdir()
    os.mkfifo(folder / "pipe.png")
    nan = dict(model.params)
    nan["conv_dw_3/depthwise_kernel"] = np.full_like(nan["conv_dw_3/depthwise_kernel"], np.nan)
    save_npz(nan, folder / "nan.npz")
    np.savez(folder / "pickled.npz", **{"conv1/kernel": np.array([{"a": 1}], dtype=object)})
    with h5py.File(folder / "missing_group.h5", "w") as file:
        file.attrs["layer_names"] = np.array([b"conv1", b"conv1_bn"])
        file.create_group("conv1").attrs["weight_names"] = np.array([b"conv1/kernel:0"])
    with zipfile.ZipFile(folder / "no_weights.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    (folder / "a_file").write_text("I am a file")
    os.symlink(folder / "loop.png", folder / "loop.png")
    os.symlink(folder / "gone.png", folder / "dangling.png")
    Image.fromarray(np.full((8, 8), 300.0, np.float32)).save(folder / "float.tif")
    negative = dict(model.params)
    negative["conv_pw_2_bn/moving_variance"] = -negative["conv_pw_2_bn/moving_variance"]
    save_npz(negative, folder / "negative.npz")
    write_legacy_h5(folder / "negative.h5", model.layers, negative)
    return folder


@dataclass
class Case:
    """One bad input: argv ({} is the world folder), expected exit code and message fragment."""

    argv: str
    code: int
    message: str
    env: dict = field(default_factory=dict)
    marks: tuple = ()


THIN = "0.001 makes layer conv1 of MobileNet V1 0 channels wide; the smallest alpha that works is "


W = "--weights {}/w.npz --resolution 128"
CASES = {
    "missing image": Case(f"classify {{}}/missing.png {W}", 1, "missing.png: no such file"),
    "text file as image": Case(f"classify {{}}/text.jpg {W}", 1, "text.jpg: not an image file"),
    "truncated image": Case(f"classify {{}}/truncated.jpg {W}", 1,
                            "truncated.jpg: damaged or truncated image"),
    "folder with no images": Case(f"classify {{}}/empty {W}", 2, "no images to classify"),
    "named pipe as image": Case(f"classify {{}}/pipe.png {W}", 1,
                                "pipe.png is not a regular file"),
    "weights missing": Case("classify {}/good.png --weights {}/absent.h5", 2,
                            "weights file not found"),
    "weights a folder": Case("classify {}/good.png --weights {}/empty", 2, "empty is a folder"),
    "weights a named pipe": Case("classify {}/good.png --weights {}/pipe.png", 2,
                                 "pipe.png is not a regular file (a pipe or device?)"),
    "tflite a named pipe": Case("classify {}/good.png --tflite {}/pipe.png", 2,
                                "pipe.png is not a regular file (a pipe or device?)"),
    "summary of a named pipe": Case("summary --weights {}/pipe.png", 2,
                                    "pipe.png is not a regular file (a pipe or device?)"),
    "weights not HDF5": Case("classify {}/good.png --weights {}/notes.h5", 2,
                             "notes.h5: not a readable HDF5"),
    "weights pickled": Case("classify {}/good.png --weights {}/pickled.npz", 2,
                            "pickled.npz: holds pickled objects"),
    "weights with NaN": Case("classify {}/good.png --weights {}/nan.npz", 2,
                             "conv_dw_3/depthwise_kernel holds 288 NaN or infinite values"),
    "weights with a missing group": Case("classify {}/good.png --weights {}/missing_group.h5",
                                         2, "which is not in the file"),
    "archive without weights": Case("classify {}/good.png --weights {}/no_weights.keras", 2,
                                    "no_weights.keras: a zip file, but not a Keras archive"),
    "alpha nan": Case(f"classify {{}}/good.png {W} --alpha nan", 2,
                      "argument --alpha: must be a positive finite number, got nan"),
    "alpha inf": Case(f"classify {{}}/good.png {W} --alpha inf", 2,
                      "--alpha: must be a positive finite number, got inf"),
    "alpha zero": Case(f"classify {{}}/good.png {W} --alpha 0", 2, "got 0"),
    "alpha text": Case(f"classify {{}}/good.png {W} --alpha wide", 2,
                       "argument --alpha: invalid width multiplier value: 'wide'"),
    "alpha against the file": Case(f"classify {{}}/good.png {W} --alpha 0.5", 2,
                                   "w.npz holds MobileNet V1 alpha=0.25"),
    "resolution huge": Case("classify {}/good.png --resolution 30000", 2,
                            "--resolution: must be between 32 and 4096, got 30000"),
    "resolution tiny": Case("classify {}/good.png --resolution 16", 2, "between 32 and 4096"),
    "top zero": Case(f"classify {{}}/good.png {W} --top 0", 2,
                     "--top: must be between 1 and 1000 (the ImageNet classes), got 0"),
    "option of another family": Case(f"classify {{}}/good.png {W} --arch v1 --minimalistic",
                                     2, "--minimalistic exists for --arch v3-large, v3-small"),
    "unknown family": Case("summary --arch v9", 2, "argument --arch: invalid choice: 'v9'"),
    "summary alpha inf": Case("summary --alpha inf", 2, "--alpha: must be a positive finite"),
    "summary alpha negative": Case("summary --alpha -1", 2, "--alpha: must be a positive"),
    "summary resolution text": Case("summary --resolution abc", 2,
                                    "--resolution: invalid pixel size value: 'abc'"),
    "profile batch zero": Case("profile --batch 0 --resolution 32", 2,
                               "--batch: must be a positive integer, got 0"),
    "profile batch negative": Case("profile --batch -1 --resolution 32", 2,
                                   "--batch: must be a positive integer, got -1"),
    "profile repeats zero": Case("profile --repeats 0 --resolution 32", 2,
                                 "--repeats: must be a positive integer, got 0"),
    "plot into a folder": Case("compare --resolution 64 --plot {}/empty", 2,
                               "--plot {}/empty is a folder"),
    "plot without extension": Case("compare --resolution 64 --plot {}/figure", 2,
                                   "name a .png, .pdf, .svg, .jpg, .jpeg file"),
    "family with plot": Case("compare --family --plot {}/f.png", 2, "takes no --plot"),
    "family with arch": Case("compare --family --arch v2", 2, "takes no --arch"),
    "convert onto itself": Case("convert {}/w.npz {}/w.npz", 2, "is the source file itself"),
    "convert to .h5": Case("convert {}/w.h5 {}/out.h5", 2, "name the destination *.npz"),
    "convert onto its own .h5": Case("convert {}/w.h5 {}/w.h5", 2, "name the destination *.npz"),
    "convert into a folder": Case("convert {}/w.h5 {}/empty", 2, "name the destination *.npz"),
    "convert with another family": Case("convert --arch v2 {}/w.h5 {}/out.npz", 2,
                                        "w.h5 holds MobileNet V1 alpha=0.25, depth_multiplier=1, "
                                        "with a 1000-class top, not MobileNetV2"),
    "convert with a family option": Case("convert --minimalistic {}/w.h5 {}/out.npz", 2,
                                         "unrecognized arguments: --minimalistic"),
    "convert a missing file": Case("convert {}/absent.h5 {}/out.npz", 2, "weights file not found"),
    "convert unwritable": Case("convert {}/w.h5 /proc/out.npz", 2,
                               "error: could not write /proc/out.npz: No such file"),
    "cache is a file": Case("weights download --alpha 0.25", 2, "a_file ($MOBILENET_NP_HOME) is a "
                            "file", {"MOBILENET_NP_HOME": "{}/a_file"}),
    "no official file": Case("weights download --alpha 0.3", 2,
                             "no official ImageNet weights for alpha=0.3"),
    "weights without action": Case("weights", 2, "the following arguments are required: ACTION"),
    "unknown command": Case("fly", 2, "argument COMMAND: invalid choice: 'fly'"),
    "unknown option": Case("summary --colour", 2, "unrecognized arguments: --colour"),
    # issue 23
    "image name too long": Case(f"classify {{}}/{'a' * 300}.png {W}", 1,
                                "a.png: name too long for the file system"),
    "image a symlink loop": Case(f"classify {{}}/loop.png {W}", 1,
                                 "loop.png: a loop of symbolic links"),
    "image a dangling link": Case(f"classify {{}}/dangling.png {W}", 1,
                                  "dangling.png: a link to {}/gone.png, which does not exist"),
    "image a device": Case(f"classify /dev/zero {W}", 1, "/dev/zero is not a regular file"),
    "image below a file": Case(f"classify {{}}/good.png/x.png {W}", 1,
                               "x.png: a part of the path is a file, not a folder"),
    "float image past [0, 1]": Case(f"classify {{}}/float.tif {W}", 1,
                                    "float.tif: floating-point pixels span [300, 300], not [0, 1]"),
    "top past the classes": Case(f"classify {{}}/good.png {W} --top 1001", 2,
                                 "--top: must be between 1 and 1000 (the ImageNet classes), "
                                 "got 1001"),
    "summary alpha too thin": Case("summary --alpha 0.001", 2, THIN + "0.03125"),
    "profile alpha too thin": Case("profile --alpha 0.001 --resolution 32", 2, THIN + "0.03125"),
    "classify alpha too thin": Case("classify {}/good.png --arch v1 --alpha 0.001", 2,
                                    THIN + "0.03125"),
    "profile batch past memory": Case("profile --batch 100000", 2,
                                      "needs about 913.3 GiB for 100000 images at once, over "
                                      "the 4 GiB a command may take"),
    "profile alpha past memory": Case("profile --alpha 50", 2, "at alpha 50, resolution 224 "
                                      "needs about 29.9 GiB for 1 image at once"),
    "alpha absurdly wide": Case("summary --alpha 1e300", 2, "--alpha: must be at most 100"),
    "weights URL not a URL": Case("weights download --alpha 0.25", 2,
                                  "unknown url type: 'nonsense/mobilenet_2_5_224_tf.h5' (is "
                                  "$MOBILENET_NP_WEIGHTS_URL a URL",
                                  {"MOBILENET_NP_WEIGHTS_URL": "nonsense",
                                   "MOBILENET_NP_HOME": "{}/new_cache"}),
    "classify negative variance": Case("classify {}/good.png --weights {}/negative.npz", 2,
                                       "conv_pw_2_bn/moving_variance holds 32 negative values"),
    "convert negative variance": Case("convert {}/negative.h5 {}/out.npz", 2,
                                      "conv_pw_2_bn/moving_variance holds 32 negative values"),
}


def snapshot(folder: Path) -> dict:
    """Every regular file below ``folder`` and a digest of its bytes and mode."""
    return {path: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode)
            for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("name", [pytest.param(name, marks=case.marks)
                                  for name, case in CASES.items()])
def test_bad_input_is_one_clear_line(world, name, capsys, monkeypatch) -> None:
    case = CASES[name]
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.format(world))
    before = snapshot(world)
    code = main(case.argv.replace("{}", str(world)).split())
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == case.code, (code, err)
    assert len(lines) == 1, err
    assert case.message.format(world) in lines[0], err
    assert "Traceback" not in out + err
    assert snapshot(world) == before  # nothing changed, nothing left behind (no .part files)
    assert not (world / "new_cache").exists()  # not even a folder


def test_the_table_has_forty_cases() -> None:
    assert len(CASES) >= 40


def run_cli(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    """The real command in a child process (tracebacks and exit codes as a user sees them)."""
    return subprocess.run([sys.executable, "-m", "mobilenet_np", *argv], capture_output=True,
                          check=False, **kwargs)


def test_a_non_utf8_name_loses_no_result(world, tmp_path) -> None:
    """The good image is classified and printed; the odd name is shown escaped."""
    odd = os.path.join(os.fsencode(tmp_path), b"caf\xe9.png")
    Image.open(world / "good.png").save(odd.decode("utf-8", "surrogateescape"))
    done = run_cli("classify", str(world / "good.png"), os.fsdecode(odd), "--weights",
                   str(world / "w.npz"), "--resolution", "128", "--json",
                   env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["image"].rsplit("/", 1)[-1] for r in results] == ["good.png", "caf\\xe9.png"]
    assert all(len(r["predictions"]) == 5 for r in results)


def test_failed_images_are_listed_in_valid_json(world, capsys) -> None:
    code = main(["classify", str(world / "good.png"), str(world / "text.jpg"), "--weights",
                 str(world / "w.npz"), "--resolution", "128", "--json"])
    results = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [set(r) for r in results] == [{"image", "predictions"}, {"image", "error"}]


def test_a_folder_is_classified_in_order_and_non_images_are_skipped(world, tmp_path,
                                                                    capsys) -> None:
    for name in ("b.png", "a.png"):
        Image.open(world / "good.png").save(tmp_path / name)
    (tmp_path / "readme.txt").write_text("not an image")
    code = main(["classify", str(tmp_path), "--weights", str(world / "w.npz"),
                 "--resolution", "128", "--json"])
    out, err = capsys.readouterr()
    assert code == 0
    assert [(Path(r["image"]).name, r.get("skipped")) for r in json.loads(out)] == [
        ("a.png", None), ("b.png", None), ("readme.txt", "not an image")]
    assert err.strip() == f"note: skipped {tmp_path / 'readme.txt'} (not an image)"


def test_stdin_gives_one_image(world) -> None:
    done = run_cli("classify", "-", "--weights", str(world / "w.npz"), "--resolution", "128",
                   input=(world / "good.png").read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("-\n  1. ")
    done = run_cli("classify", "-", "--weights", str(world / "w.npz"), "--resolution", "128",
                   input=b"garbage")
    assert done.returncode == 1
    assert done.stderr.decode().strip() == "error: -: not an image file Pillow can read"


def test_a_broken_pipe_ends_quietly() -> None:
    reader = subprocess.Popen(["head", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    writer = subprocess.run([sys.executable, "-m", "mobilenet_np", "summary", "--arch", "v3-large"],
                            stdout=reader.stdin, stderr=subprocess.PIPE, check=False)
    reader.stdin.close()
    assert reader.stdout.read().startswith(b"layer")
    assert writer.returncode == 0 and writer.stderr == b""


@pytest.mark.parametrize("where", ["convert", "download"])
def test_ctrl_c_is_one_line_and_leaves_nothing(world, tmp_path, monkeypatch, capsys,
                                               where) -> None:
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "convert":
        monkeypatch.setattr(np, "savez", interrupt)
        argv = ["convert", str(world / "w.h5"), str(tmp_path / "out.npz")]
    else:
        monkeypatch.setattr("urllib.request.urlopen", interrupt)
        monkeypatch.setenv("MOBILENET_NP_HOME", str(tmp_path))
        monkeypatch.setenv("HOME", str(tmp_path))
        argv = ["weights", "download", "--alpha", "0.25"]
    assert main(argv) == 130
    assert capsys.readouterr().err == "interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_bare_command_prints_help_and_version(capsys) -> None:
    assert main([]) == 2
    assert "classify" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mobilenet-np {mnp.__version__}"
    help_text = subprocess.run([sys.executable, "-m", "mobilenet_np", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "``" not in help_text


def test_every_option_has_help() -> None:
    from mobilenet_np.cli import build_parser

    parsers, missing = [build_parser()], []
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:  # argparse keeps no public list of a parser's options
            if isinstance(action, argparse._SubParsersAction):
                parsers += list(action.choices.values())
            elif not action.help:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_written_files_get_the_umask_mode(world, tmp_path) -> None:
    old = os.umask(0o022)
    try:
        target = tmp_path / "out.npz"
        target.write_bytes(b"old")
        target.chmod(0o644)
        assert main(["convert", str(world / "w.h5"), str(target)]) == 0
        assert target.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_convert_refuses_its_source_through_links(world, tmp_path, capsys) -> None:
    source = tmp_path / "w.npz"
    source.write_bytes((world / "w.npz").read_bytes())
    (tmp_path / "hard.npz").hardlink_to(source)
    (tmp_path / "soft.npz").symlink_to(source)
    before = source.read_bytes()
    for link in ("hard.npz", "soft.npz"):
        assert main(["convert", str(source), str(tmp_path / link)]) == 2
        assert "is the source file itself" in capsys.readouterr().err
    assert source.read_bytes() == before


def test_empty_cache_variable_means_the_default_cache(monkeypatch, tmp_path) -> None:
    from mobilenet_np.download import cache_dir

    monkeypatch.setenv("MOBILENET_NP_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "mobilenet-np"


def test_predict_refuses_the_other_preprocessing_and_nan() -> None:
    pixels = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    v1 = mnp.MobileNet(alpha=0.25, resolution=64, weights=None)
    with pytest.raises(ValueError, match="scale pixels with preprocess_input"):
        v1.predict(pixels)
    assert v1.predict(pixels, check_range=False).shape == (1, 1000)
    v3 = mnp.MobileNetV3Small(resolution=64, weights=None)
    with pytest.raises(ValueError, match="takes pixels in \\[0, 255\\]"):
        v3.predict(mnp.preprocess_input(pixels))
    for model, x in ((v1, mnp.preprocess_input(pixels)), (v3, pixels)):
        x[0, 0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="1 NaN or infinite"):
            model.predict(x, check_range=False)


DAMAGED_LABELS = r"""
import sys
import mobilenet_np.imagenet as imagenet
assert not __debug__  # running under python -O, where an assert would have vanished
text = "index\twnid\tlabel\n" + "".join(f"{i + 1}\tn0\tthing\n" for i in range(1000))
imagenet.files = lambda package: type("T", (), {"joinpath": lambda self, name: type(
    "F", (), {"read_text": lambda self, encoding: text})()})()
try:
    imagenet.imagenet_classes()
except ValueError as error:
    sys.exit(str(error))
"""


def test_imagenet_classes_are_checked_without_assert() -> None:
    """A table shifted by one row is refused even under ``python -O``."""
    done = subprocess.run([sys.executable, "-O", "-c", DAMAGED_LABELS], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 1
    assert "imagenet_classes.tsv is damaged" in done.stderr
