"""The commands that count and time: ``summary``, ``compare``, ``profile`` and ``doctor``.

Each command is two functions: ``add_NAME`` builds its parser and points it at ``NAME`` with
``set_defaults(func=...)``; ``NAME(args)`` runs it and returns the exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_options import (
    DEFAULT_ARCH,
    backend_flag,
    family_flags,
    given_flags,
    json_flag,
    option_owners,
    own_options,
    positive_int,
    shape,
    shape_flags,
    to_json,
)
from .errors import InputError
from .graph_model import GraphModel
from .int8 import is_tflite, load_tflite, tflite_summary, tflite_summary_table
from .loader import load
from .machine import blas_report, format_blas_report
from .measure import family_rows, profile_layers, time_standard_vs_separable
from .model import Network
from .registry import get_family
from .reports import (
    compare_json,
    compare_plot,
    compare_table,
    family_table,
    profile_table,
    summary_json,
    summary_table,
)

FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def add_summary(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("summary", help="per-layer output shape, params and MACs")
    family_flags(parser, DEFAULT_ARCH)
    shape_flags(parser)
    parser.add_argument("--tflite", metavar="FILE", type=Path,
                        help="instead: an int8 .tflite file's ops, weight bytes (int8 vs "
                             "float32), MACs and scales; it fixes the model, so it takes no "
                             "--arch, --alpha, --resolution or family option")
    parser.add_argument("--weights", metavar="FILE",
                        help="instead: the model a Keras or .npz file holds (a saved model: "
                             "its own graph, e.g. a fine-tuned MobileNet with its head); it "
                             "fixes the model, so it takes no --arch, --alpha or family option")
    json_flag(parser)
    parser.set_defaults(func=summary)


def summary(args: argparse.Namespace) -> int:
    """``summary``: the layer table's shapes and counts, or a .tflite file's ops."""
    if args.tflite:
        refused = given_flags(args, ("arch", "alpha", "resolution", *option_owners()))
        if refused:
            raise InputError(f"--tflite takes the model, weights and input size from the file: "
                             f"drop {', '.join(refused)}")
        report = tflite_summary(load_tflite(args.tflite))
        print(to_json(report) if args.json else tflite_summary_table(report))
        return 0
    if args.weights:
        return weights_summary(args)
    family = get_family(args.arch or DEFAULT_ARCH)
    size = shape(args)
    layers = family.layers(**size, **own_options(args, family))
    report = summary_json(layers, size["alpha"], size["resolution"])
    print(to_json(report) if args.json else
          f"{summary_table(layers)}\n{family.title} takes {family.preprocessing}")
    return 0


def file_model(args: argparse.Namespace, **options) -> Network:
    """``--weights FILE``'s model (a saved graph or a family's ``Network``), refusing the
    options the file fixes; ``--resolution`` where the file leaves it open."""
    refused = given_flags(args, ("arch", "alpha", "tflite", *option_owners()))
    if refused:
        raise InputError(f"--weights takes the model from the file: drop {', '.join(refused)}")
    if is_tflite(args.weights):
        raise InputError(f"{args.weights} is a .tflite file: --weights takes a Keras or .npz "
                         f"file (summary --tflite describes a .tflite)")
    if args.resolution:
        options["resolution"] = args.resolution
    return load(args.weights, **options)


def weights_summary(args: argparse.Namespace) -> int:
    """``summary --weights FILE``: the layers of the model a file holds (its graph, if saved)."""
    model = file_model(args)
    described = model.describe() if isinstance(model, GraphModel) else (
        f"{model.family.title} alpha={model.alpha:g}; takes {model.family.preprocessing}")
    if args.json:
        report = summary_json(model.layers, model.alpha, list(model.input_shape[:2]))
        print(to_json({"model": described, **report}))
    else:
        print(f"{described}\n{summary_table(model.layers)}")
    return 0


def add_compare(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("compare",
                                 help="standard vs depthwise-separable convolution, per block")
    family_flags(parser, DEFAULT_ARCH)
    shape_flags(parser)
    parser.add_argument("--measure", action="store_true", help="also time both in NumPy")
    parser.add_argument("--plot", metavar="FILE.png", type=Path,
                        help="write a figure (.png, .pdf, .svg or .jpg)")
    parser.add_argument("--family", action="store_true",
                        help="instead: every published model of every family side by side, "
                             "timed; it takes no --arch, --alpha, --resolution, --plot or "
                             "family option")
    parser.add_argument("--weights", metavar="FILE",
                        help="instead: the blocks of the model a Keras or .npz file holds (a "
                             "saved model: the blocks recovered from its graph, e.g. a "
                             "fine-tuned MobileNet); it fixes the model, so it takes no "
                             "--arch, --alpha or family option")
    json_flag(parser)
    parser.set_defaults(func=compare)


def compare(args: argparse.Namespace) -> int:
    """``compare``: standard vs separable per block (counted, timed on --measure), of a family
    or of the model a file holds (``--weights``), or every family (``--family``)."""
    if args.family:
        refused = given_flags(args, ("arch", "alpha", "resolution", "plot", "weights",
                                     *option_owners()))
        if refused:
            raise InputError(f"compare --family compares every published model at its "
                             f"published input size: it takes no {', '.join(refused)}")
        rows = family_rows()
        print(to_json(rows) if args.json else family_table(rows))
        return 0
    if args.plot:
        check_figure_path(args.plot)
    if args.weights:  # a file's model: a family's blocks, or those recovered from its graph
        blocks = file_model(args).blocks
    else:
        family = get_family(args.arch or DEFAULT_ARCH)
        blocks = family.blocks(**shape(args), **own_options(args, family))
    report = compare_json(blocks, time_standard_vs_separable(blocks) if args.measure else None)
    if args.plot and not report["blocks"]:
        raise InputError(f"--plot: {args.weights} has no depthwise conv with a 1x1 conv after "
                         f"it: nothing to draw")
    if args.plot:
        compare_plot(report, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    print(to_json(report) if args.json else compare_table(report))
    return 0


def check_figure_path(path: Path) -> None:
    """A figure goes exactly where it is told: to a file with an image extension."""
    if path.is_dir():
        raise InputError(f"--plot {path} is a folder: name a file, e.g. {path / 'compare.png'}")
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise InputError(f"--plot {path}: name a {', '.join(FIGURE_SUFFIXES)} file")


def add_profile(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("profile", help="time every layer: where does the time go?")
    family_flags(parser, DEFAULT_ARCH)
    shape_flags(parser)
    parser.add_argument("--batch", type=positive_int, default=1,
                        help="images per run (default: %(default)s)")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="timed runs per layer, the median is shown (default: %(default)s)")
    parser.add_argument("--fused", action="store_true",
                        help="profile the fused path (predict); a --backend other than numpy "
                             "implies it")
    parser.add_argument("--weights", metavar="FILE",
                        help="instead of random weights: the model a Keras or .npz file holds "
                             "(a saved model: its own graph); it fixes the model, so it takes "
                             "no --arch, --alpha or family option")
    backend_flag(parser)
    json_flag(parser)
    parser.set_defaults(func=profile)


def profile(args: argparse.Namespace) -> int:
    """``profile``: time every layer (or fused step) of a model, random weights or a file's."""
    if args.weights:
        model = file_model(args, backend=args.backend)
    else:
        family = get_family(args.arch or DEFAULT_ARCH)
        model = Network(family, weights=None, backend=args.backend, **shape(args),
                        **own_options(args, family))
    fused = args.fused or args.backend != "numpy"  # a backend changes the fused path only
    rows = profile_layers(model, args.batch, args.repeats, fused)
    if args.json:
        print(to_json(rows))
    else:
        print(profile_table(rows, args.batch) + "\n\n"
              + format_blas_report(blas_report(measure=False)))  # doctor measures
    return 0


def add_doctor(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("doctor", help="BLAS, CPU vector extensions, Numba: is BLAS "
                                                "holding this machine back?")
    parser.set_defaults(func=doctor)


def doctor(args: argparse.Namespace) -> int:
    """``doctor``: the BLAS and its kernels beside the CPU's, measured; is Numba there?"""
    print(format_blas_report(blas_report()))
    try:
        import numba
    except ImportError:
        print("Numba: not installed (backend 'numba' needs it: pip install 'mobilenet-np[jit]')")
    else:
        print(f"Numba: {numba.__version__} (backend 'numba' available)")
    return 0
