"""The mobilenet-np command's options: types that refuse bad values, the flags commands share.

Every option has help text; a default is printed once, in the help of the option it belongs
to, and comes from the constant the command uses. A usage error is one line (exit code 2).
"""

from __future__ import annotations

import argparse
import math

from .backends import BACKENDS
from .errors import InputError
from .registry import COMMON_OPTIONS, FAMILIES, Family

DEFAULT_ARCH = "v1"
MAX_RESOLUTION = 4096  # a 4096x4096 V1 1.0 already needs ~2 GiB per activation


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (exit 2)."""

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
