"""The mobilenet-np command's options: types that refuse bad values, one flag per family option.

Every option has help text and its default shown; a usage error is one line (exit code 2).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from . import __version__
from .registry import FAMILIES

DEFAULT_ARCH = "v1"
MAX_RESOLUTION = 4096  # a 4096x4096 V1 1.0 already needs ~2 GiB per activation


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (exit 2) and defaults shown in every help."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                         **kwargs)

    def error(self, message: str) -> None:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def resolution(text: str) -> int:
    value = int(text)
    if not 32 <= value <= MAX_RESOLUTION:
        raise argparse.ArgumentTypeError(f"must be between 32 and {MAX_RESOLUTION}, got {text}")
    return value


def width(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


for _type, _name in ((positive_int, "positive integer"), (resolution, "pixel size"),
                     (width, "width multiplier")):
    _type.__name__ = _name  # how argparse names the type in "invalid ... value" errors


def family_flags() -> Parser:
    """--arch, and a flag for every option some family has (--minimalistic, ...)."""
    parser = Parser(add_help=False)
    parser.add_argument("--arch", choices=list(FAMILIES),
                        help=f"MobileNet family (default {DEFAULT_ARCH}, or what --weights holds)")
    owners: dict[str, list[str]] = {}
    for family in FAMILIES.values():
        for name, option in family.options.items():
            if name not in owners:
                flag = name.replace("_", "-")
                if isinstance(option.default, bool):
                    parser.add_argument(f"--{'no-' if option.default else ''}{flag}", dest=name,
                                        action="store_const", const=not option.default,
                                        help=f"do not: {option.help}" if option.default
                                        else option.help)
                else:
                    parser.add_argument(f"--{flag}", dest=name, type=positive_int,
                                        help=f"{option.help} (family default "
                                             f"{option.default})")
            owners.setdefault(name, []).append(family.name)
    parser.set_defaults(option_owners=owners)
    return parser


def build_parser() -> Parser:
    parser = Parser(prog="mobilenet-np", description="MobileNet in pure NumPy: classify images, "
                    "count and time layers, convert and download weights.")
    parser.add_argument("--version", action="version", version=f"mobilenet-np {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    family = family_flags()

    classify = commands.add_parser("classify", parents=[family],
                                   help="top-k ImageNet classes of images, folders or - (stdin)")
    classify.add_argument("images", nargs="+", metavar="IMAGE",
                          help="image files, folders of images, or - for one image on stdin")
    classify.add_argument("--weights",
                          help="a Keras (.h5, .weights.h5, .keras) or .npz weights file "
                               "(default 'imagenet': the official Keras file, cached)")
    classify.add_argument("--alpha", type=width,
                          help="width multiplier (default: read from --weights, else 1.0)")
    classify.add_argument("--resolution", type=resolution,
                          help="images are resized to this square size (default 224)")
    classify.add_argument("--tflite", metavar="FILE", type=Path,
                          help="instead: an int8 .tflite model, run by the NumPy integer kernels "
                               "(no TensorFlow; needs the [tflite] extra)")
    classify.add_argument("--top", type=positive_int, default=5, help="labels per image")
    classify.add_argument("--interpolation", choices=["nearest", "bilinear"], default="nearest",
                          help="resize filter (nearest is what Keras's load_img uses)")
    classify.add_argument("--exif", action="store_true", help="turn photos upright by EXIF")
    classify.add_argument("--json", action="store_true", help="print JSON instead of a table")
    backend_flag(classify)

    conv = commands.add_parser("convert", parents=[family],
                               help="any Keras weights file -> a checked .npz")
    conv.add_argument("source", type=Path, help="a Keras weights file")
    conv.add_argument("destination", type=Path, help="the .npz file to write")

    summary = commands.add_parser("summary", parents=[family], help="per-layer params and MACs")
    summary.add_argument("--tflite", metavar="FILE", type=Path,
                         help="instead: an int8 .tflite file's ops, weight bytes (int8 vs "
                              "float32), MACs and scales")
    compare = commands.add_parser("compare", parents=[family],
                                  help="standard vs depthwise-separable convolution, per block")
    profile = commands.add_parser("profile", parents=[family],
                                  help="time every layer: where does the time go?")
    for command in (summary, compare, profile):
        command.add_argument("--alpha", type=width, help="width multiplier (default 1.0)")
        command.add_argument("--resolution", type=resolution, help="input size (default 224)")
        command.add_argument("--json", action="store_true", help="print JSON instead of a table")
    compare.add_argument("--measure", action="store_true", help="also time both in NumPy")
    compare.add_argument("--plot", metavar="FILE.png", type=Path,
                         help="write a figure (.png, .pdf, .svg or .jpg)")
    compare.add_argument("--family", action="store_true",
                         help="instead: every published model of every family side by side, "
                              "timed (takes no --arch, --alpha, --resolution or --plot)")
    profile.add_argument("--batch", type=positive_int, default=1, help="images per run")
    profile.add_argument("--repeats", type=positive_int, default=5,
                         help="timed runs per layer (the median is shown)")
    profile.add_argument("--fused", action="store_true", help="profile the fused path (predict)")
    backend_flag(profile)
    commands.add_parser("doctor", help="BLAS, CPU vector extensions, Numba: is BLAS holding "
                                       "this machine back?")

    weights = commands.add_parser("weights", help="official Keras weight files")
    weights_commands = weights.add_subparsers(dest="weights_command", metavar="ACTION",
                                              required=True)
    download = weights_commands.add_parser("download", parents=[family],
                                           help="fetch into the cache, and check it")
    download.add_argument("--alpha", type=width, default=1.0, help="width multiplier")
    download.add_argument("--resolution", type=resolution, default=224, help="input size")
    download.add_argument("--no-top", action="store_true", help="the file without classifier")
    return parser


def backend_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument("--backend", default="numpy",
                         help="the fused path's kernels: numpy (default) or numba (the loop "
                              "twins, compiled; needs Numba)")
