"""The mobilenet-np command: classify images, count and time layers, convert and download weights.

Every error is one line on stderr; exit codes: 0 done, 1 some images failed, 2 bad usage or
input, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .classify import classify
from .cli_options import DEFAULT_ARCH, build_parser
from .download import official_weights
from .int8 import Int8Classifier, load_tflite, tflite_summary, tflite_summary_table
from .machine import blas_report, format_blas_report
from .measure import family_rows, profile_layers, time_standard_vs_separable
from .model import Network
from .registry import COMMON_OPTIONS, Family, get_family
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

FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


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
    weights, family = args.weights or "imagenet", get_family(args.arch) if args.arch else None
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
    given = [flag for flag in flags if getattr(args, flag, None) not in (None, False)]
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
        print(json.dumps(report, indent=2) if args.json else
              f"{summary_table(layers)}\n{family.title} takes {family.preprocessing}")
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
