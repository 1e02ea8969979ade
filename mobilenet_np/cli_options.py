"""The mobilenet-np command's options: types that refuse bad values, the flags commands share.

Every option has help text; a default is printed once, in the help of the option it belongs
to, and comes from the constant the command uses. A usage error is one line (exit code 2).
"""

from __future__ import annotations

import argparse
import json
import math

from .backends import BACKENDS
from .checks import zero_channel_layer
from .classify import chunk_size
from .errors import InputError, MobileNetError
from .layers import Layer
from .registry import COMMON_OPTIONS, FAMILIES, Family

DEFAULT_ARCH = "v1"
MAX_RESOLUTION = 4096  # a 4096x4096 V1 1.0 already needs ~2 GiB per activation


MAX_ALPHA = 100.0  # 10,000 times V1 1.0's weights: wider is a typo, not a model
MAX_TOP = 1000  # the ImageNet classes
MAX_BUILD_BYTES = 4 << 30  # weights + activations one command may build (see build_bytes)


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (exit 2), and options checked against the
    model they build before any command runs (``build_problem``)."""

    def error(self, message: str) -> None:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if self._subparsers is None:  # a command's own parser: its options are all known
            problem = build_problem(namespace)
            if problem:
                self.error(problem)
        return namespace, extras


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
    if value > MAX_ALPHA:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_ALPHA:g} (a model {MAX_ALPHA:g} "
                                         f"times wider than the published ones), got {text}")
    return value


def top_labels(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_TOP:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_TOP} (the ImageNet "
                                         f"classes), got {text}")
    return value


for _type, _name in ((positive_int, "positive integer"), (resolution, "pixel size"),
                     (width, "width multiplier"), (top_labels, "label count")):
    _type.__name__ = _name  # how argparse names the type in "invalid ... value" errors


def option_owners() -> dict[str, list[str]]:
    """Each family option's name -> the families that have it (``depth_multiplier`` -> v1)."""
    owners: dict[str, list[str]] = {}
    for family in FAMILIES.values():
        for name in family.options:
            owners.setdefault(name, []).append(family.name)
    return owners


def family_flags(parser: argparse.ArgumentParser, arch_default: str) -> None:
    """--arch, and a flag for every option some family has (--minimalistic, ...)."""
    parser.add_argument("--arch", choices=list(FAMILIES),
                        help=f"MobileNet family (default: {arch_default})")
    owners, done = option_owners(), set()
    for family in FAMILIES.values():
        for name, option in family.options.items():
            if name in done:
                continue
            done.add(name)
            flag, which = name.replace("_", "-"), f"--arch {', '.join(owners[name])} only"
            if isinstance(option.default, bool):  # a flag turns the family's default around
                parser.add_argument(f"--{'no-' if option.default else ''}{flag}", dest=name,
                                    action="store_const", const=not option.default,
                                    help=f"{'do not ' if option.default else ''}{option.help} "
                                         f"({which})")
            else:
                parser.add_argument(f"--{flag}", dest=name, type=positive_int,
                                    help=f"{option.help} ({which}; default: {option.default})")


def shape_flags(parser: argparse.ArgumentParser, alpha_default: str | None = None) -> None:
    """--alpha and --resolution; left None when not given, so a command can tell (``shape``)."""
    alpha_default = alpha_default or str(COMMON_OPTIONS["alpha"])
    parser.add_argument("--alpha", type=width, help=f"width multiplier (default: {alpha_default})")
    parser.add_argument("--resolution", type=resolution, help="input size in pixels, square "
                        f"(default: {COMMON_OPTIONS['resolution']})")


def shape(args: argparse.Namespace) -> dict:
    """--alpha and --resolution as given, the defaults ``shape_flags`` prints filled in."""
    return {name: COMMON_OPTIONS[name] if getattr(args, name) is None else getattr(args, name)
            for name in ("alpha", "resolution")}


def to_json(report: object) -> str:
    """Standard JSON (``allow_nan=False``: a NaN or infinity is a bug, never printed)."""
    return json.dumps(report, indent=2, allow_nan=False)


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def backend_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=list(BACKENDS), default="numpy",
                        help="the fused path's kernels: numpy, or numba (the loop twins, "
                             "compiled; needs Numba) (default: %(default)s)")


def own_options(args: argparse.Namespace, family: Family) -> dict:
    """The family's own options given on the command line; another family's is an error."""
    given = {}
    for name, owners in option_owners().items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if family.name not in owners:
            raise InputError(f"--{name.replace('_', '-')} exists for --arch {', '.join(owners)} "
                             f"only, not {family.name}")
        given[name] = value
    return given


def given_flags(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """The flags among ``names`` (dest names) that were given, as ``--flag`` strings."""
    return [f"--{name.replace('_', '-')}" for name in names
            if getattr(args, name, None) not in (None, False)]


def build_problem(args: argparse.Namespace) -> str | None:
    """Why the model these options build cannot be built, or None: a layer 0 channels wide
    (with the smallest alpha that works), or more memory than ``MAX_BUILD_BYTES``."""
    if not hasattr(args, "alpha") or getattr(args, "tflite", None) or getattr(args, "family",
                                                                           False):
        return None
    if getattr(args, "weights", None) and not args.arch:
        return None  # the weights file says which family: the command checks it there
    family = FAMILIES[args.arch or DEFAULT_ARCH]
    options = {name: getattr(args, name) for name in family.options
               if getattr(args, name, None) is not None}
    try:
        layers = family.layers(**shape(args), **options)
    except MobileNetError:
        return None  # the command refuses it, in its own words
    thin = zero_channel_layer(layers)
    if thin is not None:
        return (f"argument --alpha: {shape(args)['alpha']:g} makes layer {thin.name} of "
                f"{family.title} 0 channels wide; the smallest alpha that works is "
                f"{smallest_alpha(family, options):g}")
    batch = images_at_once(args)
    need = build_bytes(layers, batch) if batch else 0
    if need > MAX_BUILD_BYTES:
        return (f"{family.title} at alpha {shape(args)['alpha']:g}, resolution "
                f"{shape(args)['resolution']} needs about {need / 2**30:.1f} GiB for "
                f"{batch} image{'s' * (batch > 1)} at once, over the {MAX_BUILD_BYTES >> 30} "
                f"GiB a command may take: lower --alpha, --resolution or --batch")
    return None


def images_at_once(args: argparse.Namespace) -> int:
    """How many images the command runs through the model at once (0: it builds none)."""
    if hasattr(args, "batch"):
        return args.batch  # profile
    if hasattr(args, "images"):
        return chunk_size(shape(args)["resolution"])  # classify
    return 1 if getattr(args, "measure", False) else 0  # compare --measure; summary, download


def build_bytes(layers: list[Layer], batch: int) -> int:
    """float32 weights, plus three of the largest activation per image (input, output and a
    scratch buffer such as im2col's columns)."""
    weights = sum(math.prod(shape) for layer in layers for shape in layer.weights.values())
    largest = max(math.prod(layer.output_shape) for layer in layers)
    return 4 * (weights + 3 * batch * largest)


def smallest_alpha(family: Family, options: dict) -> float:
    """The smallest width multiplier (rounded up to 6 decimals) with no layer 0 channels wide,
    found by bisection on the family's own layer table."""
    def works(alpha: float) -> bool:
        return zero_channel_layer(family.layers(alpha=alpha, resolution=32, **options)) is None

    low, high = 0.0, 1.0
    while not works(high):
        low, high = high, high * 2
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (low, middle) if works(middle) else (middle, high)
    return math.ceil(high * 1e6) / 1e6
