"""The commands that read weights: ``classify``, ``convert`` and ``weights download``.

Each command is two functions: ``add_NAME`` builds its parser and points it at ``NAME`` with
``set_defaults(func=...)``; ``NAME(args)`` runs it and returns the exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from . import ops
from .cam import check_png_path, class_activation_maps, write_overlay
from .classify import classify_images
from .cli_options import (
    DEFAULT_ARCH,
    backend_flag,
    family_flags,
    given_flags,
    json_flag,
    option_owners,
    own_options,
    shape,
    shape_flags,
    to_json,
    top_labels,
)
from .download import official_weights
from .errors import InputError
from .graph_model import PREPROCESSING, GraphModel, read_model_file
from .imagenet import load_image, preprocess_input, printable
from .int8 import Int8Classifier, load_tflite
from .int8.classify import class_names, read_labels
from .keras_graph import KerasGraph
from .model import Network
from .registry import COMMON_OPTIONS, FAMILIES, get_family
from .weights import convert as convert_file
from .weights import describe_config, file_options

logger = logging.getLogger("mobilenet_np")


def add_classify(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("classify",
                                 help="top-k ImageNet classes of images, folders or - (stdin)")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files, folders of images, or - for one image on stdin")
    parser.add_argument("--weights", metavar="FILE",
                        help="a Keras (.h5, .weights.h5, .keras) or .npz weights file "
                             "(default: the official Keras file, downloaded once and cached)")
    parser.add_argument("--tflite", metavar="FILE", type=Path,
                        help="instead of a float model: a .tflite classifier (int8, uint8 or "
                             "float), run by the NumPy kernels (needs the [tflite] extra); it "
                             "fixes the model, so it takes no --weights, --arch, --alpha, "
                             "--resolution or family option")
    parser.add_argument("--labels", metavar="FILE",
                        help="the class names, one per line: of a fine-tuned Keras model, or of "
                             "a .tflite file that packs none of its own; without it, 1000 or "
                             "1001 classes are ImageNet's and any other count is numbered")
    parser.add_argument("--preprocessing", choices=list(PREPROCESSING),
                        help="what a saved Keras model takes, when its file does not say: "
                             "pixels in [0, 255], or preprocess_input's [-1, 1] (scaled)")
    family_flags(parser, f"what --weights holds, else {DEFAULT_ARCH}")
    shape_flags(parser, f"what --weights holds, else {COMMON_OPTIONS['alpha']}")
    parser.add_argument("--top", type=top_labels, default=5,
                        help="labels per image (default: %(default)s)")
    parser.add_argument("--interpolation", choices=["nearest", "bilinear", "bicubic"],
                        help="resize filter; without it, the model's own: nearest (what "
                             "Keras's load_img uses) for V1-V3, bicubic with timm's centre "
                             "crop for V4")
    parser.add_argument("--exif", action="store_true", help="turn photos upright by EXIF")
    parser.add_argument("--cam", metavar="OUT.png", type=Path,
                        help="also draw where the model looks for the top class (its class "
                             "activation map over the image) into OUT.png; one image file")
    json_flag(parser)
    backend_flag(parser)
    parser.set_defaults(func=classify)


def classify(args: argparse.Namespace) -> int:
    """``classify``: labels per image (errors went to stderr as they came); 1 if any failed."""
    if args.cam:
        check_cam(args)
    if args.tflite:
        refused = given_flags(args, ("weights", "arch", "alpha", "resolution", *option_owners()))
        if refused:
            raise InputError(f"--tflite takes the model, weights and input size from the file: "
                             f"drop {', '.join(refused)}")
        if args.preprocessing:
            raise InputError("--preprocessing is for saved Keras models, not --tflite")
        model = Int8Classifier(load_tflite(args.tflite, backend=args.backend), str(args.tflite), args.labels)
        size, labels, top = model.size, None, args.top
    else:
        model = classify_model(args)
        size = model.input_shape[:2]
        labels = own_labels(model, args.labels)
        top = min(args.top, model.layers[-1].output_shape[-1])  # a 2-class model has 2 labels
        pools = any(layer.kind == "global_average_pool" for layer in model.layers)
        if args.cam and isinstance(model, GraphModel) and (
                not model.include_top or model.input_shape[-1] != 3 or not pools):
            raise InputError(f"--cam needs an RGB model with a softmax classifier after global "
                             f"average pooling; {args.weights} answers otherwise")
    net = model  # (--cam draws on the model itself)
    if isinstance(model, GraphModel):
        model = OwnClasses(model)
    args.interpolation, crop_pct = resize_rule(net, args.interpolation)
    results = classify_images(model, args.images, size, top, args.interpolation, args.exif,
                              crop_pct)
    if labels is not None:
        for prediction in (p for result in results for p in result.get("predictions", [])):
            prediction["wnid"], prediction["label"] = labels[prediction["index"]]
    text = to_json(results) if args.json else results_table(results)
    if text:  # (no empty line when every image failed: the errors are on stderr)
        print(text)
    if args.cam and "predictions" in results[0]:
        write_cam(net, args, results[0]["predictions"][0])
    return 1 if any("error" in result for result in results) else 0


def resize_rule(model, interpolation: str | None) -> tuple[str, float | None]:
    """(filter, crop_pct): the model's own way to resize photos (its family's ``crop``: timm's
    centre crop for V4; else Keras's whole-photo resize), the filter replaced if given."""
    crop = getattr(getattr(model, "family", None), "crop", None)
    if crop is None:
        return interpolation or "nearest", None
    return interpolation or crop.interpolation, crop.crop_pct


def check_cam(args: argparse.Namespace) -> None:
    """Refuse, before any work, what ``--cam`` cannot draw."""
    if args.tflite:
        raise InputError("--cam needs a float model: drop --tflite (or --cam)")
    if len(args.images) != 1 or args.images[0] == "-" or Path(args.images[0]).is_dir():
        raise InputError("--cam draws one image: give exactly one IMAGE file (not a folder or -)")
    check_png_path(args.cam)


def write_cam(model: Network, args: argparse.Namespace, best: dict) -> None:
    """``--cam``: the map of the top class (``best``, as printed) over the image, as a PNG."""
    pixels = load_image(args.images[0], model.input_shape[:2], args.interpolation, args.exif,
                        resize_rule(model, args.interpolation)[1])
    x = pixels if model.expects_pixels else preprocess_input(pixels)
    maps, _, _ = class_activation_maps(model, x[None], [best["index"]], check_range=False)
    write_overlay(args.cam, pixels, maps[0])
    print(f"wrote {printable(str(args.cam))}: where the model looks for {best['label']}",
          file=sys.stderr)


def classify_model(args: argparse.Namespace) -> Network:
    """The model ``classify`` runs: the flags given, the rest read off the weights file (once);
    a saved Keras model that is not a stock MobileNet, by its graph."""
    weights, family = args.weights or "imagenet", get_family(args.arch) if args.arch else None
    read = {}
    if weights != "imagenet":
        graph, weights = read_model_file(args.weights, family)
        if weights is None:
            return graph_model(args, graph)
        family, config = file_options(weights, family)  # the file's family, or an error
        read = {k: config[k] for k in ("alpha", *family.options) if k in config}
    if args.preprocessing:
        raise InputError("--preprocessing is for saved Keras models that do not say their "
                         "input range; this model's own is known")
    family = family or get_family(DEFAULT_ARCH)
    options = {**read, **own_options(args, family), "resolution": shape(args)["resolution"]}
    if args.alpha is not None:
        options["alpha"] = args.alpha
    return Network(family, weights, backend=args.backend, **options)


def graph_model(args: argparse.Namespace, graph: KerasGraph) -> GraphModel:
    """``--weights``'s saved model read by its graph, which fixes the model and its input size."""
    refused = given_flags(args, ("arch", "alpha", "resolution", *option_owners()))
    if refused:
        raise InputError(f"{args.weights} is a saved model: its graph says the model and "
                         f"its input size: drop {', '.join(refused)}")
    model = GraphModel(graph, args.weights, args.backend, args.preprocessing)
    if model.preprocessing is None:
        raise InputError(f"{args.weights} does not say what its input takes: pass "
                         f"--preprocessing pixels ([0, 255]) or scaled ([-1, 1])")
    return model


def own_labels(model: Network, path: str | None) -> tuple[tuple[str, str], ...] | None:
    """(wnid, label) per output from ``--labels`` (one per line, as many as the model's
    outputs), or numbered for a model read by its graph; None: the official models' ImageNet."""
    count = model.layers[-1].output_shape[-1]
    if path is None:
        return class_names(count) if isinstance(model, GraphModel) else None
    labels = read_labels(path)
    if len(labels) != count:
        raise InputError(f"--labels {path} holds {len(labels)} labels, but the model answers "
                         f"{count} classes: one label per line, one per class")
    return class_names(count, labels)


class OwnClasses:
    """A model read by its graph, behind ``classify`` (which reads every image as RGB and ranks
    probabilities): a 1-channel model gets each pixel's luma, weighted as PIL's
    ``convert("L")`` (Keras's ``load_img(color_mode="grayscale")``); a model that answers
    logits (no softmax or sigmoid at its end) is ranked by their softmax (sigmoid for one
    logit), which ``classify`` says."""

    LUMA = np.array([0.299, 0.587, 0.114], np.float32)

    def __init__(self, model: GraphModel) -> None:
        self.model, self.expects_pixels = model, model.expects_pixels
        self.input_shape = (*model.input_shape[:2], 3)
        self.logits = model.layers[-1].kind not in ("softmax", "sigmoid")
        if self.logits:
            logger.warning("%s answers logits: classify ranks their %s", model.graph.source,
                           "sigmoid" if model.class_count == 1 else "softmax")

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.model.input_shape[-1] == 1:
            x = (x @ self.LUMA)[..., None]  # (N, H, W, 1)
        out = self.model.predict(x, check_range=False)
        if not self.logits:
            return out
        return 1 / (1 + np.exp(-out)) if out.shape[1] == 1 else ops.softmax(out)


def results_table(results: list[dict]) -> str:
    """The images that worked, each with its ranked labels (failures and skipped files went to
    stderr); names with control characters or terminal escapes shown escaped."""
    lines = []
    for result in results:
        if "predictions" not in result:
            continue
        lines.append(printable(result["image"]))
        for rank, p in enumerate(result["predictions"], 1):
            lines.append(f"  {rank}. {p['label']:<28} {p['wnid']}  #{p['index']:<4} "
                         f"{100 * p['probability']:6.2f}%")
    return "\n".join(lines)


def add_convert(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("convert", help="any Keras weights file -> a checked .npz")
    parser.add_argument("source", type=Path, help="a Keras weights file")
    parser.add_argument("destination", type=Path, help="the .npz file to write")
    parser.add_argument("--arch", choices=list(FAMILIES),
                        help="refuse a file of another family (default: any family; every "
                             "option is read off the file)")
    parser.set_defaults(func=convert)


def convert(args: argparse.Namespace) -> int:
    """``convert``: a Keras file to a checked .npz; the family and options come from the file."""
    config = convert_file(args.source, args.destination,
                          get_family(args.arch) if args.arch else None)
    print(f"wrote {args.destination}: {describe_config(config)}")
    return 0


def add_weights(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("weights", help="official Keras weight files")
    actions = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    download = actions.add_parser("download", help="fetch into the cache, and check it")
    family_flags(download, DEFAULT_ARCH)
    shape_flags(download)
    download.add_argument("--no-top", action="store_true", help="the file without classifier")
    download.set_defaults(func=weights_download)


def weights_download(args: argparse.Namespace) -> int:
    """``weights download``: the official file, cached or fetched, checked to fit the model."""
    family = get_family(args.arch or DEFAULT_ARCH)
    config = family.config(**shape(args), include_top=not args.no_top,
                           **own_options(args, family))
    path = official_weights(family, config, verify=True)  # a damaged cached file is replaced
    print(printable(str(path)))
    return 0

