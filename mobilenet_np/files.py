"""Our own files: ``.npz`` weights read without unpickling, and writes that are atomic."""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .layers import Params


def load_npz(path: str | os.PathLike) -> Params:
    """Arrays of an ``.npz`` file, never unpickling (``allow_pickle=False``)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as error:  # object arrays need pickle: refuse them
        raise ValueError(f"{path}: holds pickled objects, refused (only plain arrays are "
                         f"loaded): {error}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npz file (truncated?): {error}") from None


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    A failure (or Ctrl-C) leaves no half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".part")
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_npz(params: Params, path: str | os.PathLike) -> None:
    """Write params to ``path`` atomically, one array per "layer/weight" key."""
    with atomic_output(path) as temporary, open(temporary, "wb") as file:
        np.savez(file, **params)
