"""Our own files: ``.npz`` weights read without unpickling, and writes that are atomic."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .layers import Params


def load_npz(path: str | os.PathLike) -> Params:
    """Arrays of an ``.npz`` file, never unpickling (``allow_pickle=False``)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as error:
        if "pickle" in str(error):  # object arrays need pickle: refuse them
            raise ValueError(f"{path}: holds pickled objects, refused (only plain arrays are "
                             f"loaded)") from None
        raise ValueError(f"{path}: a damaged .npz file: {error}") from None
    except Exception as error:  # noqa: BLE001
        # zipfile, zlib and NumPy's header parser fail in many ways on damaged bytes
        # (BadZipFile, zlib.error, EOFError, KeyError, ...): all mean "damaged file".
        raise ValueError(f"{path}: not a readable .npz file (truncated or damaged: "
                         f"{type(error).__name__}: {error})") from None


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    A failure (or Ctrl-C) leaves no half-written file under the final name and no temporary
    file. The file gets the mode a plain ``open()`` would give it (0666 less the umask), not
    ``mkstemp``'s private 0600. Errors name ``path``, not the hidden temporary file.
    """
    path = Path(path)
    hidden, temporary = f".{path.name}.", None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".part")
        os.close(handle)
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        names = (error.filename, error.filename2)
        if any(name and (Path(name).name.startswith(hidden) or Path(name) in (path, path.parent))
               for name in names):
            raise OSError(error.errno, f"could not write {path}: {error.strerror}") from None
        raise
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)


def _umask() -> int:
    """The process's umask (reading it means setting it: put it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_destination(source: str | os.PathLike, destination: str | os.PathLike,
                      suffix: str) -> None:
    """Refuse to write over the source (also through a link) or under a name of another kind."""
    source, destination = Path(source), Path(destination)
    if destination.suffix != suffix:
        raise ValueError(f"{destination}: this writes {suffix} files; name the destination "
                         f"*{suffix}")
    if destination.is_dir():
        raise ValueError(f"{destination} is a folder; name a {suffix} file to write")
    if destination.exists() and source.exists() and os.path.samefile(source, destination):
        raise ValueError(f"{destination} is the source file itself; writing it would destroy "
                         f"the source: name another destination")


def save_npz(params: Params, path: str | os.PathLike) -> None:
    """Write params to ``path`` atomically, one array per "layer/weight" key."""
    with atomic_output(path) as temporary, open(temporary, "wb") as file:
        np.savez(file, **params)
