"""Batches survive bad members: every image that cannot be read is its own error entry, the rest
are classified (exit 1); folders say what they skip; names are escaped on a terminal and exact
in JSON; NaN never reaches the output; options are walked for tracebacks."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mobilenet_np as mnp
from mobilenet_np import imagenet
from mobilenet_np.classify import classify_images
from mobilenet_np.cli import main
from mobilenet_np.files import save_npz
from mobilenet_np.registry import FAMILIES


def strict_json(text: str) -> object:
    """JSON as the standard has it: NaN and Infinity are not JSON."""
    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "w.npz"
    save_npz(mnp.MobileNet(alpha=0.25, resolution=64, weights=None, seed=2).params, path)
    return path


def picture(path: Path, seed: int = 0, orientation: int | None = None) -> Path:
    image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 30, 3), np.uint8))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(path, exif=exif)
    return path


def run(capsys, *argv: str) -> tuple[int, str, list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err.splitlines()


def test_one_bad_member_of_each_kind_loses_no_result(weights, tmp_path, capsys,
                                                     monkeypatch) -> None:
    good = picture(tmp_path / "good.png")
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path):  # root reads any folder: refuse this one as a non-root user's OS would
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    bad = [str(tmp_path / ("a" * 300 + ".png")), str(tmp_path / "loop.png"),
           str(tmp_path / "dangling.png"), "/dev/null", str(good / "x.png"), str(locked),
           str(tmp_path / "missing.png")]
    code, out, err = run(capsys, "classify", str(good), *bad, str(good), "--weights",
                         str(weights), "--resolution", "64", "--json")
    results = strict_json(out)
    assert code == 1
    assert [r["image"] for r in results] == [str(good), *bad, str(good)]
    assert all(len(r["predictions"]) == 5 for r in (results[0], results[-1]))
    assert all(set(r) == {"image", "error"} for r in results[1:-1])
    assert len(err) == len(bad) and all(line.startswith("error: ") for line in err)
    assert "locked: cannot list this folder: permission denied" in err[5]


def test_a_folder_says_what_it_skipped_and_why(weights, tmp_path, capsys) -> None:
    picture(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden.png").write_bytes((tmp_path / "a.png").read_bytes())
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "notes.txt").write_text("hello")
    os.symlink(tmp_path / "gone.png", tmp_path / "z_dangling.png")
    code, out, err = run(capsys, "classify", str(tmp_path), "--weights", str(weights),
                         "--resolution", "64", "--json")
    results = {Path(r["image"]).name: r for r in strict_json(out)}
    assert code == 1  # the dangling link is an image that failed
    assert list(results) == [".hidden.png", "a.png", "notes.txt", "pipe", "sub", "z_dangling.png"]
    assert results[".hidden.png"]["skipped"] == "hidden"
    assert "predictions" in results["a.png"]
    assert results["notes.txt"]["skipped"] == "not an image"
    assert results["pipe"]["skipped"].startswith("not a regular file")
    assert results["sub"]["skipped"].startswith("a folder")
    assert "which does not exist" in results["z_dangling.png"]["error"]
    assert sorted(line.split(" ", 1)[0] for line in err) == ["error:"] + ["note:"] * 4


def test_names_are_escaped_on_the_terminal_and_exact_in_json(weights, tmp_path, capsys) -> None:
    name = "evil\x1b[2J\nname\u202e.png"
    good = picture(tmp_path / name)
    code, out, err = run(capsys, "classify", str(good), str(tmp_path / ("x\x07\n.png")),
                         "--weights", str(weights), "--resolution", "64")
    assert code == 1
    assert out.splitlines()[0] == f"{tmp_path}/evil\\x1b[2J\\nname\\u202e.png"
    assert err == [f"error: {tmp_path}/x\\x07\\n.png: no such file"]
    assert "\x1b" not in out + "".join(err)
    code, out, err = run(capsys, "classify", str(good), "--weights", str(weights),
                         "--resolution", "64", "--json")
    assert code == 0 and strict_json(out)[0]["image"] == str(good)


def test_one_exif_note_per_run(weights, tmp_path, capsys) -> None:
    images = [picture(tmp_path / "up.png", 0), picture(tmp_path / "right.png", 1, 6),
              picture(tmp_path / "down.png", 2, 3)]
    argv = ["classify", *map(str, images), "--weights", str(weights), "--resolution", "64"]
    code, out, err = run(capsys, *argv)
    assert code == 0
    assert err == ["note: 2 images carry an EXIF orientation, but they were read as stored, not "
                   "upright (as Keras reads them): --exif (exif=True) turns them first"]
    code, out, err = run(capsys, *argv, "--exif")
    assert (code, err) == (0, [])


class Stdin:
    """A stand-in for sys.stdin whose ``buffer`` holds ``data``."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_stdin_is_read_up_to_the_cap_and_once(weights, tmp_path, capsys, monkeypatch) -> None:
    data = picture(tmp_path / "a.png").read_bytes()
    monkeypatch.setattr(imagenet, "MAX_FILE_BYTES", len(data))
    monkeypatch.setattr(sys, "stdin", Stdin(data))
    code, out, err = run(capsys, "classify", "-", "-", "--weights", str(weights),
                         "--resolution", "64", "--json")
    assert code == 1 and "predictions" in strict_json(out)[0]
    assert err == ["error: -: standard input was read already: give - once"]
    monkeypatch.setattr(sys, "stdin", Stdin(data + b"\0"))
    code, out, err = run(capsys, "classify", "-", "--weights", str(weights),
                         "--resolution", "64")
    assert code == 1
    assert err == [f"error: -: more than {len(data):,} bytes, the most one image may hold "
                   f"(imagenet.MAX_FILE_BYTES): is this an image?"]


def test_endless_stdin_is_cut_off(weights) -> None:
    """``yes | classify -`` ends with one line instead of filling memory (1 GiB cap)."""
    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    done = subprocess.run([sys.executable, "-m", "mobilenet_np", "classify", "-", "--weights",
                           str(weights), "--resolution", "64"], stdin=yes.stdout,
                          capture_output=True, text=True, check=False, timeout=120)
    yes.kill()
    assert done.returncode == 1
    assert done.stderr == ("error: -: more than 1,073,741,824 bytes, the most one image may hold "
                           "(imagenet.MAX_FILE_BYTES): is this an image?\n")


class HalfNaN:
    """A model that answers NaN for every second image (weights that break only some inputs)."""

    expects_pixels = False

    def predict(self, x: np.ndarray) -> np.ndarray:
        probs = np.full((len(x), 1000), 1e-3, np.float32)
        probs[1::2] = np.nan
        return probs


def test_nan_answers_are_errors_never_printed(tmp_path, caplog) -> None:
    images = [str(picture(tmp_path / f"{i}.png", i)) for i in range(3)]
    results = classify_images(HalfNaN(), images, 16, top=3)
    assert [set(r) for r in results] == [{"image", "predictions"}, {"image", "error"},
                                         {"image", "predictions"}]
    assert results[1]["error"].endswith("1.png: the model answered NaN or infinity: its weights "
                                        "are invalid (a negative batch-norm variance?)")
    strict_json(json.dumps(results, allow_nan=False))


ALPHAS = (None, "0.001", "0.03", "0.03125", "0.35", "1.4", "100")
RESOLUTIONS = (None, "32", "33", "4096")


def family_option_flags(family) -> list[list[str]]:
    """No option, and each option of every family (its own, and the others' refused)."""
    flags = [[]]
    for other in FAMILIES.values():
        for name, option in other.options.items():
            flag = "--" + ("no-" if option.default is True else "") + name.replace("_", "-")
            flags.append([flag] if isinstance(option.default, bool) else [flag, "2"])
    return flags


def option_pairs(family) -> list[tuple[str | None, str | None, list[str]]]:
    """(alpha, resolution, flags) covering every pair of the three: each alpha with each
    resolution, and each family option with each alpha and (cycling) each resolution. All
    triples, 5,544 runs of the command line over the families, took 3 minutes of CI."""
    cases = [(alpha, res, []) for alpha, res in itertools.product(ALPHAS, RESOLUTIONS)]
    for i, flags in enumerate(family_option_flags(family)):
        cases += [(alpha, RESOLUTIONS[(i + j) % len(RESOLUTIONS)], flags) for j, alpha in enumerate(ALPHAS)]
    return cases


def test_no_option_combination_gives_a_traceback(capsys) -> None:
    """summary and compare with every family, and every pair of alpha, resolution and family
    option: a report (valid JSON) or one line, exit 2, never a traceback."""
    for command, arch in itertools.product(("summary", "compare"), FAMILIES):
        for alpha, res, flags in option_pairs(FAMILIES[arch]):
            argv = [command, "--arch", arch, "--json", *flags]
            argv += ["--alpha", alpha] if alpha else []
            argv += ["--resolution", res] if res else []
            code, out, err = run(capsys, *argv)
            assert (code == 0 and err == [] and strict_json(out)) or \
                (code == 2 and len(err) == 1 and err[0].startswith("error: ")), (argv, err)


@pytest.mark.parametrize("arch", FAMILIES)
def test_profile_options_are_refused_before_any_work(arch, capsys) -> None:
    """The cases that used to die (0 channels, absurd sizes) stop at parse time; a thin model
    that works is profiled. (Only V1 gets 0 channels: V2 and V3 round widths up to 8.)"""
    thin = [["--alpha", "0.001"]] if arch == "v1" else []
    for extra in (*thin, ["--alpha", "100"], ["--batch", "100000"],
                  ["--resolution", "4096", "--batch", "64"]):
        code, out, err = run(capsys, "profile", "--arch", arch, "--repeats", "1", *extra)
        assert code == 2 and len(err) == 1 and out == "", (extra, err)
    thinner = [] if arch.startswith("v4") else ["--alpha", "0.35"]  # V4 has no width multiplier
    code, out, err = run(capsys, "profile", "--arch", arch, *thinner, "--resolution", "32",
                         "--repeats", "1", "--json")
    assert code == 0 and strict_json(out)
