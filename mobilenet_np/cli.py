"""The mobilenet-np command: classify images, count and time layers, convert and download weights.

Every error is one line on stderr; exit codes: 0 done, 1 some images failed, 2 bad usage or
input, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from . import __version__
from .classify import classify
from .download import official_weights
from .int8 import Int8Classifier, load_tflite, tflite_summary, tflite_summary_table
from .machine import blas_report, format_blas_report
from .measure import family_rows, profile_layers, time_standard_vs_separable
from .model import Network
from .registry import COMMON_OPTIONS, FAMILIES, Family, get_family
from .reports import (
    compare_json,
    compare_plot,
    compare_table,
    family_table,
    profile_table,
    summary_json,
    summary_table,
)
from .weights import convert, describe_config, infer_config, load_weights, read_weights_file

DEFAULT_ARCH = "v1"
MAX_RESOLUTION = 4096  # a 4096x4096 V1 1.0 already needs ~2 GiB per activation
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


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
    parser = Parser(prog="mobilenet-np", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mobilenet-np {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    family = family_flags()

    classify = commands.add_parser("classify", parents=[family],
                                   help="top-k ImageNet classes of images, folders or - (stdin)")
    classify.add_argument("images", nargs="+", metavar="IMAGE",
                          help="image files, folders of images, or - for one image on stdin")
    classify.add_argument("--weights", default="imagenet",
                          help="a Keras (.h5, .weights.h5, .keras) or .npz weights file; "
                               "'imagenet' is the official Keras file, cached")
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


def own_options(args: argparse.Namespace, family: Family) -> dict:
    """The family's own options given on the command line; another family's is an error."""
    given = {}
    for name, owners in args.option_owners.items():
        value = getattr(args, name)
        if value is None:
            continue
        if family.name not in owners:
            flag = name.replace("_", "-")
            raise ValueError(f"--{flag} exists for --arch {', '.join(owners)} only, not "
                             f"{family.name}")
        given[name] = value
    return given


def shape_options(args: argparse.Namespace) -> dict:
    """--alpha and --resolution, defaults filled in."""
    return {"alpha": COMMON_OPTIONS["alpha"] if args.alpha is None else args.alpha,
            "resolution": COMMON_OPTIONS["resolution"] if args.resolution is None
            else args.resolution}


def classify_model(args: argparse.Namespace) -> Network:
    """The model ``classify`` runs: the flags given, the rest read off the weights file (once)."""
    weights, family = args.weights, get_family(args.arch) if args.arch else None
    read = {}
    if weights != "imagenet":
        weights = read_weights_file(weights, family)
        config = infer_config(weights)
        family = family or get_family(config["arch"])
        if family.name == config["arch"]:
            read = {k: config[k] for k in ("alpha", *family.options) if k in config}
    family = family or get_family(DEFAULT_ARCH)
    options = {**read, **own_options(args, family), "resolution": args.resolution or 224}
    if args.alpha is not None:
        options["alpha"] = args.alpha
    return Network(family, weights, backend=args.backend, **options)


def refuse_with_tflite(args: argparse.Namespace, flags: tuple[str, ...]) -> None:
    """A .tflite file fixes the model, its weights and its input size: no flag may say else."""
    given = [flag for flag in flags if getattr(args, flag, None) not in (None, False, "imagenet")]
    if given:
        raise ValueError(f"--tflite takes the model, weights and input size from the file: "
                         f"drop --{', --'.join(name.replace('_', '-') for name in given)}")


def classify_command(args: argparse.Namespace) -> int:
    """``classify``: a float model (flags and weights) or an int8 .tflite file."""
    options = (*args.option_owners, "arch", "alpha", "resolution", "weights")
    if args.tflite:
        refuse_with_tflite(args, options)
        model = Int8Classifier(load_tflite(args.tflite), str(args.tflite))
        size = model.size
    else:
        model = classify_model(args)
        size = model.input_shape[:2]
    return classify(model, args.images, size, args.top, args.interpolation, args.exif,
                    args.json)


def cost_report(args: argparse.Namespace) -> int:
    """``summary`` and ``compare``: counts from the layer table, times when asked."""
    if args.command == "summary" and args.tflite:
        refuse_with_tflite(args, (*args.option_owners, "arch", "alpha", "resolution"))
        report = tflite_summary(load_tflite(args.tflite))
        print(json.dumps(report, indent=2) if args.json else tflite_summary_table(report))
        return 0
    if getattr(args, "family", False):
        given = [flag for flag in ("arch", "alpha", "resolution", "plot") if getattr(args, flag)]
        if given:
            raise ValueError(f"compare --family compares every published model at 224: it takes "
                             f"no --{', --'.join(given)}")
        rows = family_rows()
        print(json.dumps(rows, indent=2) if args.json else family_table(rows))
        return 0
    family = get_family(args.arch or DEFAULT_ARCH)
    shape = shape_options(args)
    blocks = family.blocks(**shape, **own_options(args, family))
    if args.command == "summary":
        layers = [layer for block in blocks for layer in block.layers]
        report = summary_json(layers, shape["alpha"], shape["resolution"])
        print(json.dumps(report, indent=2) if args.json else summary_table(layers))
        return 0
    if args.plot:
        check_figure_path(args.plot)
    measured = time_standard_vs_separable(blocks) if args.measure else None
    report = compare_json(blocks, measured)
    if args.plot:
        compare_plot(report, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    print(json.dumps(report, indent=2) if args.json else compare_table(report))
    return 0


def check_figure_path(path: Path) -> None:
    """A figure goes exactly where it is told: to a file with an image extension."""
    if path.is_dir():
        raise ValueError(f"--plot {path} is a folder: name a file, e.g. {path / 'compare.png'}")
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"--plot {path}: name a {', '.join(FIGURE_SUFFIXES)} file")


def profile(args: argparse.Namespace) -> int:
    """``profile``: time every layer (or fused step) of a model with random weights."""
    family = get_family(args.arch or DEFAULT_ARCH)
    model = Network(family, weights=None, backend=args.backend, **shape_options(args),
                    **own_options(args, family))
    fused = args.fused or args.backend != "numpy"  # a backend changes the fused path only
    rows = profile_layers(model, args.batch, args.repeats, fused)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(profile_table(rows, args.batch) + "\n\n"
              + format_blas_report(blas_report(measure=False)))  # doctor measures
    return 0


def doctor() -> int:
    """``doctor``: the BLAS and its kernels beside the CPU's, measured; is Numba there?"""
    print(format_blas_report(blas_report()))
    try:
        import numba
    except ImportError:
        print("Numba: not installed (backend 'numba' needs it: pip install 'mobilenet-np[jit]')")
    else:
        print(f"Numba: {numba.__version__} (backend 'numba' available)")
    return 0


def download(args: argparse.Namespace) -> int:
    """``weights download``: the official file, cached or fetched, checked to fit the model."""
    family = get_family(args.arch or DEFAULT_ARCH)
    config = family.config(alpha=args.alpha, resolution=args.resolution,
                           include_top=not args.no_top, **own_options(args, family))
    path = official_weights(family, config)
    load_weights(path, family.layers(**config), family)  # a damaged cached file says so
    print(path)
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch one parsed command."""
    if args.command == "classify":
        return classify_command(args)
    if args.command in ("summary", "compare"):
        return cost_report(args)
    if args.command == "profile":
        return profile(args)
    if args.command == "doctor":
        return doctor()
    if args.command == "convert":
        given = [name for name in args.option_owners if getattr(args, name) is not None]
        if given:
            raise ValueError(f"convert reads every option from the file: drop "
                             f"--{', --'.join(name.replace('_', '-') for name in given)}")
        config = convert(args.source, args.destination,
                         get_family(args.arch) if args.arch else None)
        print(f"wrote {args.destination}: {describe_config(config)}")
        return 0
    return download(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mobilenet-np`` and ``python -m mobilenet_np``."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error already printed
        return done.code
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return run(args)
    except BrokenPipeError:  # e.g. `mobilenet-np summary | head -1`: the reader left, fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0
    except (ValueError, TypeError, OSError, ImportError) as error:  # ImportError: an extra
        print(f"error: {error}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: not enough memory: try a smaller --resolution or --batch", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
