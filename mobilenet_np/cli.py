"""The ``mobilenet-np`` command: classify images, convert and download weights."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .download import official_weights
from .imagenet import imagenet_classes, load_image, preprocess_input, top_k
from .machine import blas_report, format_blas_report
from .measure import family_rows, profile_layers, time_standard_vs_separable
from .model import Network
from .progress import ProgressBar
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
from .weights import convert, describe_config, infer_config, read_weights_file

DEFAULT_ARCH = "v1"


def family_flags() -> argparse.ArgumentParser:
    """--arch, and a flag for every option some family has (--minimalistic, ...)."""
    parser = argparse.ArgumentParser(add_help=False)
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
                                        help=option.help)
                else:
                    parser.add_argument(f"--{flag}", dest=name, type=type(option.default),
                                        help=f"{option.help} (default {option.default})")
            owners.setdefault(name, []).append(family.name)
    parser.set_defaults(option_owners=owners)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobilenet-np", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    family = family_flags()

    classify = commands.add_parser("classify", help="top-k ImageNet classes of images", parents=[family])
    classify.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    classify.add_argument("--weights", default="imagenet",
                          help="a .h5 or .npz file (default: the official Keras file, cached)")
    classify.add_argument("--alpha", type=float,
                          help="width multiplier (default: read from --weights, else 1.0)")
    classify.add_argument("--resolution", type=int, default=224)
    classify.add_argument("--top", type=int, default=5)
    classify.add_argument("--interpolation", choices=["nearest", "bilinear"], default="nearest")
    classify.add_argument("--exif", action="store_true", help="turn photos upright by EXIF")
    classify.add_argument("--json", action="store_true", help="print JSON instead of a table")
    backend_flag(classify)

    conv = commands.add_parser("convert", help="Keras .h5 weights -> checked .npz", parents=[family])
    conv.add_argument("source", type=Path)
    conv.add_argument("destination", type=Path)

    summary = commands.add_parser("summary", help="per-layer params and MACs", parents=[family])
    compare = commands.add_parser("compare", help="standard vs depthwise-separable convolution",
                                  parents=[family])
    profile = commands.add_parser("profile", help="time every layer: where does the time go?",
                                  parents=[family])
    for command in (summary, compare, profile):
        command.add_argument("--alpha", type=float, help="width multiplier (default 1.0)")
        command.add_argument("--resolution", type=int, help="input size (default 224)")
        command.add_argument("--json", action="store_true")
    compare.add_argument("--measure", action="store_true", help="also time both in NumPy")
    compare.add_argument("--plot", metavar="FILE.png", help="write a figure")
    compare.add_argument("--family", action="store_true",
                         help="instead: every published model of every family side by side, "
                              "timed (takes no --arch, --alpha or --resolution)")
    profile.add_argument("--batch", type=int, default=1)
    profile.add_argument("--repeats", type=int, default=5)
    profile.add_argument("--fused", action="store_true", help="profile the fused path (predict)")
    backend_flag(profile)
    commands.add_parser("doctor", help="BLAS, CPU vector extensions, Numba: is BLAS holding "
                                       "this machine back?")

    weights = commands.add_parser("weights", help="official Keras weight files")
    weights_commands = weights.add_subparsers(dest="weights_command", required=True)
    download = weights_commands.add_parser("download", help="fetch into the cache", parents=[family])
    download.add_argument("--alpha", type=float, default=1.0)
    download.add_argument("--resolution", type=int, default=224)
    download.add_argument("--no-top", action="store_true")
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
    options = {**read, **own_options(args, family), "resolution": args.resolution}
    if args.alpha is not None:
        options["alpha"] = args.alpha
    return Network(family, weights, backend=args.backend, **options)


CLASSIFY_CHUNK = 32  # images decoded and run together: a batch for every core's lane


def classify(args: argparse.Namespace) -> int:
    """Classify each image; a bad image is reported and skipped, and the exit code is 1."""
    model = classify_model(args)
    results, failed = [], 0
    bar = ProgressBar(len(args.images) if len(args.images) > 3 else 0, "classifying")
    for start in range(0, len(args.images), CLASSIFY_CHUNK):
        paths, batch = [], []
        for path in args.images[start:start + CLASSIFY_CHUNK]:
            try:
                pixels = load_image(path, args.resolution, args.interpolation, args.exif)
            except (ValueError, OSError) as error:
                print(f"error: {error}", file=sys.stderr)
                failed += 1
                continue
            paths.append(path)
            batch.append(pixels if model.expects_pixels else preprocess_input(pixels))  # V3 rescales
        if batch:
            probs = model.predict(np.stack(batch))  # (n, 1000), the chunk in per-core lanes
            results += [{"image": str(path), "predictions": _predictions(row, best)}
                        for path, row, best in zip(paths, probs, top_k(probs, args.top),
                                                   strict=True)]
        bar.update(min(start + CLASSIFY_CHUNK, len(args.images)))
    bar.close()
    print(json.dumps(results, indent=2) if args.json else _table(results))
    return 1 if failed else 0


def cost_report(args: argparse.Namespace) -> int:
    """``summary`` and ``compare``: counts from the layer table, times when asked."""
    if getattr(args, "family", False):
        given = [flag for flag in ("arch", "alpha", "resolution") if getattr(args, flag)]
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
    measured = time_standard_vs_separable(blocks) if args.measure else None
    report = compare_json(blocks, measured)
    if args.plot:
        compare_plot(report, args.plot)
    print(json.dumps(report, indent=2) if args.json else compare_table(report))
    return 0


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


def _predictions(probs: np.ndarray, best: np.ndarray) -> list[dict]:
    """One image's probabilities (1000,) at the class indices ``best``, labelled."""
    classes = imagenet_classes()
    return [{"index": int(i), "wnid": classes[i][0], "label": classes[i][1],
             "probability": float(probs[i])} for i in best]


def _table(results: list[dict]) -> str:
    lines = []
    for result in results:
        lines.append(result["image"])
        for rank, p in enumerate(result["predictions"], 1):
            lines.append(f"  {rank}. {p['label']:<28} {p['wnid']}  #{p['index']:<4} "
                         f"{100 * p['probability']:6.2f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mobilenet-np`` and ``python -m mobilenet_np``."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "classify":
            return classify(args)
        if args.command in ("summary", "compare"):
            return cost_report(args)
        if args.command == "profile":
            return profile(args)
        if args.command == "doctor":
            return doctor()
        if args.command == "convert":
            config = convert(args.source, args.destination,
                             get_family(args.arch) if args.arch else None)
            print(f"wrote {args.destination}: {describe_config(config)}")
        elif args.command == "weights":
            family = get_family(args.arch or DEFAULT_ARCH)
            config = family.config(alpha=args.alpha, resolution=args.resolution,
                                   include_top=not args.no_top, **own_options(args, family))
            print(official_weights(family, config))
        return 0
    except (ValueError, TypeError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
