"""The command line's shape: one function per command, help that states each default once and
truly, no option a command always refuses, bugs shown as tracebacks, a library that never prints."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import mobilenet_np as mnp
from mobilenet_np.classify import classify_images
from mobilenet_np.cli import StderrHandler, build_parser, main
from mobilenet_np.errors import MissingDependencyError
from mobilenet_np.registry import COMMON_OPTIONS, FAMILIES


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its words ("classify", "weights download"), found by walking."""
    found, todo = {}, [("", build_parser())]
    while todo:
        words, parser = todo.pop()
        for action in parser._actions:  # argparse keeps no public list of a parser's options
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{words} {name}".strip(), sub) for name, sub in action.choices.items()]
        if words:
            found[words] = parser
    return found


def helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's help as printed (``%(default)s`` expanded), by its first flag or name."""
    formatter = parser._get_formatter()
    return {(action.option_strings or [action.dest])[0]: formatter._expand_help(action)
            for action in parser._actions if action.help is not None}


def test_every_command_runs_its_own_function() -> None:
    """No dispatch on the command's name: each parser (leaves only) names its function."""
    found = commands()
    assert set(found) == {"classify", "convert", "summary", "compare", "profile", "doctor",
                          "weights", "weights download"}
    for words, parser in found.items():
        if words == "weights":  # only a group: "weights" alone is a usage error
            continue
        func = parser.get_default("func")
        assert callable(func), words
        assert func.__name__ == words.replace(" ", "_"), (words, func)


def test_each_default_is_printed_once_and_is_the_value_used() -> None:
    for words, parser in commands().items():
        for action in parser._actions:
            if action.help in (None, argparse.SUPPRESS) or not action.option_strings:
                continue
            text = helps(parser)[action.option_strings[0]]
            assert text.count("default") <= 1, (words, text)
            if action.default not in (None, False, argparse.SUPPRESS):
                # a value argparse fills in: the help shows exactly that value
                assert f"(default: {action.default})" in text, (words, text)
            elif action.default is None and "default: " in text:
                # a value the command fills in when the option is absent: checked below
                assert action.dest in ("arch", "alpha", "resolution", "weights", "labels",
                                       *{n for f in FAMILIES.values() for n in f.options}), text


@pytest.mark.parametrize("command", ["summary", "compare", "profile", "weights download"])
def test_the_filled_in_defaults_are_the_ones_printed(command) -> None:
    """--alpha, --resolution and --arch print what the command takes when they are absent."""
    printed = helps(commands()[command])
    assert f"(default: {COMMON_OPTIONS['alpha']})" in printed["--alpha"]
    assert f"(default: {COMMON_OPTIONS['resolution']})" in printed["--resolution"]
    assert "(default: v1)" in printed["--arch"]
    for family in FAMILIES.values():
        for name, option in family.options.items():
            if not isinstance(option.default, bool):
                flag = f"--{name.replace('_', '-')}"
                assert f"default: {option.default})" in printed[flag]


def test_summary_without_options_is_the_printed_default(capsys) -> None:
    assert main(["summary", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["alpha"], report["resolution"]) == (COMMON_OPTIONS["alpha"],
                                                      COMMON_OPTIONS["resolution"])
    assert report["total_macs"] == 568_740_352  # V1 1.0/224, the paper's 569M counted exactly


def own_flag_argv(family_name: str, name: str) -> list[str]:
    """argv giving one family option with a value that family takes."""
    option = FAMILIES[family_name].options[name]
    if isinstance(option.default, bool):
        return [f"--{'no-' if option.default else ''}{name.replace('_', '-')}"]
    return [f"--{name.replace('_', '-')}", str(option.default)]


@pytest.mark.parametrize("command", ["summary", "compare"])
def test_every_listed_option_is_taken(command, capsys) -> None:
    """An option in a command's --help works there (with its family), none is always refused."""
    # (--weights: summary of a file's model, run by tests/test_keras_graph.py)
    listed = set(helps(commands()[command])) - {"-h", "--json", "--family", "--tflite",
                                                "--weights"}
    taken = set()
    for family in FAMILIES.values():
        for name in family.options:
            flags = own_flag_argv(family.name, name)
            assert main([command, "--arch", family.name, "--resolution", "64", *flags]) == 0
            taken.add(flags[0])
    assert main([command, "--arch", "v2", "--alpha", "0.5", "--resolution", "64"]) == 0
    taken |= {"--arch", "--alpha", "--resolution"}
    if command == "compare":
        assert main(["compare", "--resolution", "64", "--measure"]) == 0
        taken |= {"--measure", "--plot"}  # --plot: drawn by tests/test_cost.py
    capsys.readouterr()
    assert listed == taken


def test_convert_lists_no_family_option() -> None:
    """convert reads every option off the file: only --arch (a check) is offered."""
    assert set(helps(commands()["convert"])) == {"-h", "source", "destination", "--arch"}


PLANTED = r"""
import sys
from mobilenet_np import ops

def planted(*args, **kwargs):
    raise TypeError("planted bug")

ops.depthwise_conv2d.__code__ = planted.__code__  # every reference to the kernel now fails
from mobilenet_np.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli(code: str, *argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env={**os.environ, **env}, check=False)


def test_a_bug_in_a_kernel_reaches_the_user_as_a_traceback() -> None:
    done = run_cli(PLANTED, "profile", "--alpha", "0.25", "--resolution", "32", "--repeats", "1")
    assert done.returncode == 1  # Python's own exit code for an uncaught exception
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.rstrip().endswith("TypeError: planted bug")
    assert "error:" not in done.stderr


EXPECTED = "import sys\nfrom mobilenet_np.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def test_expected_errors_are_one_line_and_debug_shows_their_traceback(tmp_path) -> None:
    argv = ("compare", "--resolution", "64", "--plot", str(tmp_path))
    done = run_cli(EXPECTED, *argv, MOBILENET_NP_DEBUG="")
    assert done.returncode == 2
    assert done.stderr == f"error: --plot {tmp_path} is a folder: name a file, e.g. " \
                          f"{tmp_path / 'compare.png'}\n"
    debug = run_cli(EXPECTED, *argv, MOBILENET_NP_DEBUG="1")
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert "mobilenet_np.errors.InputError: --plot" in debug.stderr
    assert debug.stderr.endswith(done.stderr)


def test_a_missing_extra_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    """matplotlib hidden from the import system: --plot says what to install."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["compare", "--resolution", "64", "--plot", str(tmp_path / "f.png")]) == 2
    assert capsys.readouterr().err == "error: --plot needs matplotlib: pip install matplotlib\n"
    with pytest.raises(ImportError):  # also what an API caller caught before it existed
        raise MissingDependencyError("x")


@pytest.fixture
def pictures(tmp_path):
    """A folder with two photos, a text file, and a damaged picture; a 0.25/32 model."""
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png", "c.png", "d.png"):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "bad.png").write_bytes((tmp_path / "a.png").read_bytes()[:60])
    return tmp_path, mnp.MobileNet(alpha=0.25, resolution=32, weights=None)


def test_the_library_prints_nothing_and_logs_what_the_cli_shows(pictures, capsys, caplog):
    folder, model = pictures
    with caplog.at_level(logging.INFO, logger="mobilenet_np"):
        results = classify_images(model, [str(folder)], 32, top=1)
    assert capsys.readouterr() == ("", "")
    good, failed, skipped = {"image", "predictions"}, {"image", "error"}, {"image", "skipped"}
    assert [set(r) for r in results] == [good, good, failed, good, good, skipped]  # a, b, bad,
    # c, d, notes.txt
    levels = {(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records
              if not hasattr(r, "progress")}
    assert ("WARNING", f"skipped {folder / 'notes.txt'} (not an image)") in levels
    assert any(level == "ERROR" and "bad.png" in text for level, text in levels)
    bars = [r.progress for r in caplog.records if hasattr(r, "progress")]
    assert bars == [("classifying", 100, False), ("classifying", 100, True)]  # one chunk


class Terminal:
    """A stderr stand-in that says it is a terminal and keeps what is written."""

    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_the_cli_draws_progress_on_a_terminal_only(monkeypatch) -> None:
    handler = StderrHandler()

    def record(level: int, message: str, **extra) -> logging.LogRecord:
        made = logging.LogRecord("mobilenet_np", level, __file__, 1, message, None, None)
        made.__dict__.update(extra)
        return made

    events = [record(logging.INFO, "x", progress=("classifying", 50, False)),
              record(logging.ERROR, "b.png: not an image file"),
              record(logging.INFO, "x", progress=("classifying", 100, True)),
              record(logging.WARNING, "skipped notes.txt (not an image)")]
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    for event in events:
        handler.emit(event)
    lines = terminal.text.split("\n")
    assert re.fullmatch(r"\rclassifying \[#{15} {15}\]  50%", lines[0])
    assert lines[1] == "error: b.png: not an image file"  # below the bar, not inside it
    assert lines[2].endswith("100%") and lines[3] == "note: skipped notes.txt (not an image)"
    monkeypatch.setattr(sys, "stderr", pipe := Terminal())
    pipe.isatty = lambda: False
    for event in events:
        handler.emit(event)
    assert pipe.text == "error: b.png: not an image file\nnote: skipped notes.txt (not an image)\n"
