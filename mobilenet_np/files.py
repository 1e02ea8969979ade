"""Our own files: ``.npz`` weights read without unpickling, writes that are atomic, and the
one check every reader makes before it opens a path (a named pipe would block it)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import InputError, WeightsError
from .layers import Params


def is_special_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a named pipe, a socket or a device: opening one would wait for a
    writer or stream forever, so readers and sniffers never open it (a missing path or a
    folder is not special: opening it fails at once, with its own message)."""
    path = Path(path)
    return path.exists() and not path.is_file() and not path.is_dir()


def refuse_special_file(path: str | os.PathLike, name: str, wanted: str) -> None:
    """One line for a pipe or device given where a file is read (``wanted``: what to pass)."""
    if is_special_file(path):
        raise WeightsError(f"{name} is not a regular file (a pipe or device?): pass {wanted}")


def load_npz(path: str | os.PathLike) -> Params:
    """Arrays of an ``.npz`` file, never unpickling (``allow_pickle=False``)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as error:
        if "pickle" in str(error):  # object arrays need pickle: refuse them
            raise WeightsError(f"{path}: holds pickled objects, refused (only plain arrays are "
                             f"loaded)") from None
        raise WeightsError(f"{path}: a damaged .npz file: {error}") from None
    except Exception as error:  # noqa: BLE001
        # zipfile, zlib and NumPy's header parser fail in many ways on damaged bytes
        # (BadZipFile, zlib.error, EOFError, KeyError, ...): all mean "damaged file".
        raise WeightsError(f"{path}: not a readable .npz file (truncated or damaged: "
                         f"{type(error).__name__}: {error})") from None


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds (and cleans up) exactly as Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Terminated`` (a ``KeyboardInterrupt``).

    Only where they would otherwise kill the process outright (default handler, main thread):
    a handler someone else installed is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _raise_terminated)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    A failure (or Ctrl-C, SIGTERM, SIGHUP) leaves no half-written file under the final name, no
    temporary file and no folder made for it; the data reaches the disk (fsync) before the
    rename. The file gets the mode a plain ``open()`` would give it (0666 less the umask), not
    ``mkstemp``'s private 0600. Errors name ``path``, not the hidden temporary file; a full
    disk names its device.
    """
    path = Path(path)
    hidden, temporary, done = f".{path.name}.", None, False
    created = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    try:
        with signals_interrupt():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                                 suffix=".part")
            os.close(handle)
            yield Path(temporary)
            _fsync(temporary)
            os.chmod(temporary, 0o666 & ~_umask())
            os.replace(temporary, path)
            done = True
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise no_space(path) from None
        names = (error.filename, error.filename2)
        if any(name and (Path(name).name.startswith(hidden) or Path(name) in (path, path.parent))
               for name in names):
            raise _one_line(error.errno, f"could not write {path}: {error.strerror}") from None
        raise
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)
        for folder in created if not done else ():  # the folders made for it, innermost first
            with contextlib.suppress(OSError):
                folder.rmdir()


def no_space(path: Path) -> OSError:
    """The error for a full disk (or quota), naming the device's mount point and the file."""
    return _one_line(errno.ENOSPC, f"no space left on {mount_point(path.parent)} while writing "
                                   f"{path}: free some space or write elsewhere")


def _one_line(code: int | None, message: str) -> OSError:
    """An OSError that prints as ``message`` alone (``OSError(errno, text)`` prints
    "[Errno 28] text") and still carries its errno."""
    error = OSError(message)
    error.errno = code
    return error


def mount_point(folder: Path) -> Path:
    """The mount point of the file system holding ``folder`` (how users know a device)."""
    folder = folder.resolve()
    while not folder.exists():  # mkdir itself may have met the full disk
        folder = folder.parent
    device = folder.stat().st_dev
    while folder.parent != folder and folder.parent.stat().st_dev == device:
        folder = folder.parent
    return folder


def _fsync(path: str) -> None:
    """Push a written file's data to the disk, so the rename never publishes an empty file."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


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
        raise InputError(f"{destination}: this writes {suffix} files; name the destination "
                         f"*{suffix}")
    if destination.is_dir():
        raise InputError(f"{destination} is a folder; name a {suffix} file to write")
    if destination.exists() and source.exists() and os.path.samefile(source, destination):
        raise InputError(f"{destination} is the source file itself; writing it would destroy "
                         f"the source: name another destination")


def save_npz(params: Params, path: str | os.PathLike) -> None:
    """Write params to ``path`` atomically, one array per "layer/weight" key."""
    with atomic_output(path) as temporary, open(temporary, "wb") as file:
        np.savez(file, **params)
