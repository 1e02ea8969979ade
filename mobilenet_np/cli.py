"""The ``mobilenet-np`` command: classify images, convert and download weights."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .architectures import ARCHITECTURES
from .download import keras_weights_path
from .imagenet import imagenet_classes, load_image, preprocess_input, top_k
from .measure import family_rows, profile_layers, time_standard_vs_separable
from .model import MODELS
from .progress import ProgressBar
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobilenet-np", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    family = argparse.ArgumentParser(add_help=False)
    family.add_argument("--arch", choices=sorted(MODELS), default="v1",
                        help="MobileNet family (default v1)")
    family.add_argument("--minimalistic", action="store_true",
                        help="MobileNetV3's variant without squeeze-excite and hard-swish")

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

    conv = commands.add_parser("convert", help="Keras .h5 weights -> checked .npz", parents=[family])
    conv.add_argument("source", type=Path)
    conv.add_argument("destination", type=Path)

    summary = commands.add_parser("summary", help="per-layer params and MACs", parents=[family])
    compare = commands.add_parser("compare", help="standard vs depthwise-separable convolution",
                                  parents=[family])
    for command in (summary, compare):
        command.add_argument("--alpha", type=float, default=1.0)
        command.add_argument("--resolution", type=int, default=224)
        command.add_argument("--json", action="store_true")
    compare.add_argument("--measure", action="store_true", help="also time both in NumPy")
    compare.add_argument("--plot", metavar="FILE.png", help="write a figure")
    compare.add_argument("--family", action="store_true",
                         help="instead: every published V1/V2/V3 model side by side, timed")

    profile = commands.add_parser("profile", help="time every layer: where does the time go?",
                                  parents=[family])
    profile.add_argument("--alpha", type=float, default=1.0)
    profile.add_argument("--resolution", type=int, default=224)
    profile.add_argument("--batch", type=int, default=1)
    profile.add_argument("--repeats", type=int, default=5)
    profile.add_argument("--fast", action="store_true", help="profile the fused fast path")
    profile.add_argument("--json", action="store_true")

    weights = commands.add_parser("weights", help="official Keras weight files")
    weights_commands = weights.add_subparsers(dest="weights_command", required=True)
    download = weights_commands.add_parser("download", help="fetch into the cache", parents=[family])
    download.add_argument("--alpha", type=float, default=1.0)
    download.add_argument("--resolution", type=int, default=224)
    download.add_argument("--no-top", action="store_true")
    return parser


def family_options(args: argparse.Namespace) -> dict:
    """Options only some families take (--minimalistic: MobileNetV3)."""
    if args.minimalistic and not args.arch.startswith("v3"):
        raise ValueError("--minimalistic exists for --arch v3-large and v3-small only")
    return {"minimalistic": True} if args.minimalistic else {}


CLASSIFY_CHUNK = 32  # images decoded and run together: a batch for every core's lane


def classify(args: argparse.Namespace) -> int:
    """Classify each image; a bad image is reported and skipped, and the exit code is 1."""
    alpha, weights = args.alpha, args.weights
    if alpha is None and weights != "imagenet":  # read the file once: for alpha and the model
        weights = read_weights_file(weights, args.arch)
        alpha = infer_config(weights)["alpha"]
    model = MODELS[args.arch](alpha=1.0 if alpha is None else alpha, resolution=args.resolution,
                              weights=weights, **family_options(args))
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
    layers = ARCHITECTURES[args.arch](alpha=args.alpha, resolution=args.resolution,
                                      **family_options(args))
    if args.command == "summary":
        report = summary_json(layers, args.alpha, args.resolution)
        print(json.dumps(report, indent=2) if args.json else summary_table(layers))
        return 0
    if args.family:
        rows = family_rows()
        print(json.dumps(rows, indent=2) if args.json else family_table(rows))
        return 0
    measured = time_standard_vs_separable(layers) if args.measure else None
    report = compare_json(layers, measured)
    if args.plot:
        compare_plot(report, args.plot)
    print(json.dumps(report, indent=2) if args.json else compare_table(report))
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
            model = MODELS[args.arch](alpha=args.alpha, resolution=args.resolution, weights=None,
                                      **family_options(args))
            rows = profile_layers(model, args.batch, args.repeats, args.fast)
            print(json.dumps(rows, indent=2) if args.json else profile_table(rows, args.batch))
            return 0
        if args.command == "convert":
            config = convert(args.source, args.destination, args.arch)
            print(f"wrote {args.destination}: {describe_config(config)}")
        elif args.command == "weights":
            path = keras_weights_path(args.alpha, args.resolution, not args.no_top, args.arch)
            print(path)
        return 0
    except (ValueError, TypeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
