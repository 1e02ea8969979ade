"""A tiny text progress bar on stderr (no dependency), shown only on a terminal."""

from __future__ import annotations

import sys


class ProgressBar:
    """``bar.update(done)`` redraws ``label [#####     ] 50%``; ``bar.close()`` ends the line."""

    def __init__(self, total: int, label: str, width: int = 30, stream=None) -> None:
        self.total, self.label, self.width = total, label, width
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = total > 0 and getattr(self.stream, "isatty", lambda: False)()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        filled = self.width * done // self.total
        bar = "#" * filled + " " * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {100 * done // self.total:3d}%")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
