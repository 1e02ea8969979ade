"""Progress and notes from long jobs (a batch of images, a download), reported through ``logging``.

The library never prints: it logs to the ``mobilenet_np`` logger, which holds a ``NullHandler``,
so an API caller sees nothing unless they configure logging. The command line wires the logger
to stderr (``cli.StderrHandler``): notes and per-image errors as lines, progress as a bar on a
terminal.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("mobilenet_np")
logger.addHandler(logging.NullHandler())


class ProgressBar:
    """``bar.update(done)`` logs ``label: P%`` (INFO, once per percent); ``bar.close()`` ends it.

    Each record carries ``progress = (label, percent, finished)`` for a handler that draws.
    """

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.shown = total, label, -1

    def update(self, done: int) -> None:
        percent = 100 * done // self.total if self.total > 0 else -1
        if percent > self.shown:
            self.shown = percent
            self._log(percent, finished=False)

    def close(self) -> None:
        if self.shown >= 0:
            self._log(self.shown, finished=True)

    def _log(self, percent: int, finished: bool) -> None:
        logger.info("%s: %d%%%s", self.label, percent, " (done)" if finished else "",
                    extra={"progress": (self.label, percent, finished)})
