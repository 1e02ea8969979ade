"""Official weight files (Keras's; timm's on the Hugging Face hub for V4): where they are
cached, and fetching them (atomically)."""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from .errors import InputError, WeightsError
from .files import atomic_output, no_space
from .progress import ProgressBar
from .registry import Family
from .weights import load_weights

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$MOBILENET_NP_HOME`` if set (and not empty; ``~`` expanded), else
    ``~/.cache/mobilenet-np``."""
    folder = Path(os.environ.get("MOBILENET_NP_HOME") or Path.home() / ".cache" / "mobilenet-np")
    folder = folder.expanduser()  # a quoted '~/x' reaches us unexpanded
    if folder.exists() and not folder.is_dir():
        raise InputError(f"the weights cache {folder} ($MOBILENET_NP_HOME) is a file, not a "
                         f"folder: point MOBILENET_NP_HOME at a folder")
    return folder


def official_file_name(family: Family, config: dict) -> str:
    """Keras's file name of the official weights for a model built with ``config``."""
    own = {name: config[name] for name in family.options if name in config}
    try:
        files = family.weight_files
        resolution = 224 if files.resolutions is None else _resolution(config)  # any size: 224's
        return files.file_name(config["alpha"], resolution, config["include_top"], **own)
    except ValueError as error:
        raise InputError(f"{family.title}: {error}") from None


def _resolution(config: dict) -> int:
    """The official files are for square inputs: the resolution as one number."""
    resolution = config["resolution"]
    if isinstance(resolution, int):
        return resolution
    if resolution[0] != resolution[1]:
        raise InputError(f"no official ImageNet weights for a {resolution[0]}x{resolution[1]} "
                         f"input: they are for square images")
    return resolution[0]


def cached_weights(family: Family, config: dict) -> Path | None:
    """The official file if it is already on disk (our cache, then Keras's), else None.

    Never downloads: the notebooks use it to run offline, falling back to random weights.
    """
    name = official_file_name(family, config)
    for candidate in (cache_dir() / name, Path.home() / ".keras" / "models" / name):
        if candidate.is_file():
            return candidate
    return None


def official_weights(family: Family, config: dict, verify: bool = False) -> Path:
    """The official file: from our cache, else from Keras's cache, else downloaded into ours.

    A file whose checksum Keras publishes is checked against it, cached or fresh; a fresh one
    must also fit the requested model before it takes its name in the cache, and so must a
    cached one with ``verify`` (``weights download``). A damaged file in our cache is
    downloaded again (logged as a warning); one in Keras's cache is passed over.
    ``$MOBILENET_NP_WEIGHTS_URL`` replaces the family's folder URL (a mirror, or a test server);
    the file lies at ``weight_files.path(name)`` under it (timm's: ``<repo>/resolve/main/...``).
    """
    name = official_file_name(family, config)
    expected = family.weight_files.checksums.get(name)

    def check(path: Path, fits: bool = True) -> None:
        check_checksum(path, expected)
        if fits:
            load_weights(path, family.layers(**config), family)

    ours = cache_dir() / name
    for candidate in (ours, Path.home() / ".keras" / "models" / name):
        if not candidate.is_file():
            continue
        try:
            check(candidate, verify)
        except ValueError as error:
            if candidate != ours:
                log.warning("passing over %s: %s", candidate, error)
                continue
            log.warning("the cached %s is damaged (%s): downloading it again",
                        candidate, error)
            break
        return candidate
    base = os.environ.get("MOBILENET_NP_WEIGHTS_URL", family.weight_files.folder)
    path = download(base.rstrip("/") + "/" + family.weight_files.path(name), ours, check)
    if expected is None:  # V1, V2 (Keras publishes no digests) and V4 (not pinned yet)
        log.warning("no published checksum for %s: the download was checked by its shapes "
                    "only, not by its size or sha256", name)
    return path


def check_checksum(path: Path, expected: str | None) -> None:
    """Compare a file's digest with the published ``"md5:..."`` / ``"sha256:..."``, if any."""
    if expected is None:
        return
    algorithm, digest = expected.split(":")
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            hasher.update(chunk)
    if hasher.hexdigest() != digest:
        raise WeightsError(f"{path}: {algorithm} {hasher.hexdigest()} is not the published "
                           f"{digest}: a damaged or unofficial file")


def download(url: str, destination: Path, check, timeout: float = 30) -> Path:
    """Fetch ``url`` to ``destination`` with a progress bar; ``check(path)`` must pass first.

    Written to a temporary file and renamed at the end: an interrupted or cut-off transfer, or
    a file that fails ``check``, leaves nothing at ``destination``.
    """
    with atomic_output(destination) as temporary:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise _offline(url, destination, error) from None
        except ValueError as error:  # "unknown url type": a mistyped mirror
            raise InputError(f"could not download {url}: {error} (is $MOBILENET_NP_WEIGHTS_URL "
                             f"a URL, such as https://host/folder/?)") from None
        with response, open(temporary, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            bar, done = ProgressBar(total, f"downloading {destination.name}"), 0
            while chunk := _read(response, url, destination):
                try:
                    out.write(chunk)
                except OSError as error:
                    if error.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise no_space(destination) from None
                    raise
                done += len(chunk)
                bar.update(done)
            bar.close()
        if total and done != total:
            raise _offline(url, destination, f"transfer cut off after {done} of {total} bytes")
        check(temporary)  # before the file takes its name
    return destination


def _read(response, url: str, destination: Path) -> bytes:
    """The next chunk of a download; a network failure says how to fetch the file by hand."""
    try:
        return response.read(1 << 16)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise _offline(url, destination, error) from None


def _offline(url: str, destination: Path, error: object) -> ConnectionError:
    return ConnectionError(
        f"could not download {url}: {error}. Offline? Fetch that URL on a machine with internet "
        f"and copy the file to {destination} (or pass its path with --weights / weights=PATH).")
