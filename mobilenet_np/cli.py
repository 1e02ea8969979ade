"""The mobilenet-np command: classify images, count and time layers, convert and download weights.

One function per command (``cli_models.py``, ``cli_reports.py``), chosen by argparse
(``set_defaults(func=...)``). Only the command line prints. Expected errors (``MobileNetError``,
``OSError``) are one line on stderr; anything else is a bug and shows its traceback
(``MOBILENET_NP_DEBUG=1`` shows it for expected errors too). Exit codes: 0 done, 1 some images
failed, 2 bad usage or input, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from functools import partial

from . import __version__
from .cli_models import add_classify, add_convert, add_weights
from .cli_options import Parser
from .cli_reports import add_compare, add_doctor, add_profile, add_summary
from .errors import MobileNetError
from .imagenet import printable
from .progress import logger


def build_parser() -> Parser:
    """The command line: every command's parser, each pointing at its function."""
    parser = Parser(prog="mobilenet-np", description="MobileNet in pure NumPy: classify images, "
                    "count and time layers, convert and download weights.")
    parser.add_argument("--version", action="version", version=f"mobilenet-np {__version__}")
    parser.set_defaults(func=partial(no_command, parser))
    commands = parser.add_subparsers(metavar="COMMAND")
    for add in (add_classify, add_convert, add_summary, add_compare, add_profile, add_doctor,
                add_weights):
        add(commands)
    return parser


def no_command(parser: Parser, args: argparse.Namespace) -> int:
    """``mobilenet-np`` alone: the list of commands, as a usage error."""
    parser.print_help()
    return 2


class StderrHandler(logging.Handler):
    """The package's log on stderr: errors and notes as lines, progress as a bar (terminal only)."""

    WIDTH = 30

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.bar_open = False

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr  # looked up now: the one in place when the line is written
        progress = getattr(record, "progress", None)
        if progress is not None:
            if stream.isatty():
                label, percent, finished = progress
                filled, end = self.WIDTH * percent // 100, "\n" if finished else ""
                stream.write(f"\r{label} [{'#' * filled}{' ' * (self.WIDTH - filled)}] "
                             f"{percent:3d}%{end}")
                stream.flush()
                self.bar_open = not finished
            return
        self.end_bar()  # a line in the middle of a bar starts below it
        stream.write(f"{'error' if record.levelno >= logging.ERROR else 'note'}: "
                     f"{printable(record.getMessage())}\n")

    def end_bar(self) -> None:
        """End a bar left open (an error or Ctrl-C in the middle of it) with its line."""
        if self.bar_open:
            sys.stderr.write("\n")
            self.bar_open = False


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mobilenet-np`` and ``python -m mobilenet_np``."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error already printed
        return done.code
    handler, level, propagate = StderrHandler(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # shown once, here, whatever logging the caller configured
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `mobilenet-np summary | head -1`: the reader left, fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0
    except KeyboardInterrupt:
        handler.end_bar()
        show_traceback_when_debugging()
        print("interrupted", file=sys.stderr)
        return 130
    except (MobileNetError, OSError) as error:  # expected: one line; anything else is a bug
        handler.end_bar()
        show_traceback_when_debugging()
        print(f"error: {printable(str(error))}", file=sys.stderr)
        return 2
    finally:
        handler.end_bar()  # also before the traceback of a bug
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def show_traceback_when_debugging() -> None:
    """With ``MOBILENET_NP_DEBUG=1``, the traceback of the error being handled, on stderr."""
    if os.environ.get("MOBILENET_NP_DEBUG", "") not in ("", "0"):
        traceback.print_exc()
