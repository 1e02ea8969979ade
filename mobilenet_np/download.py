"""Official Keras weight files: where they are cached, and fetching them (atomically)."""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from .progress import ProgressBar
from .published import KERAS_WEIGHTS
from .weights import atomic_output, read_keras_h5

# The same URLs Keras's MobileNet / MobileNetV2(weights="imagenet") download from.
KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
FOLDERS = {"v1": "mobilenet/", "v2": "mobilenet_v2/", "v3-large": "mobilenet_v3/",
           "v3-small": "mobilenet_v3/"}
ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}  # V1's file names



def cache_dir() -> Path:
    """``$MOBILENET_NP_HOME`` if set, else ``~/.cache/mobilenet-np``."""
    return Path(os.environ.get("MOBILENET_NP_HOME", Path.home() / ".cache" / "mobilenet-np"))


def keras_weights_filename(alpha: float, resolution: int, include_top: bool,
                           arch: str = "v1", minimalistic: bool = False) -> str:
    """Keras's file name, e.g. ``mobilenet_2_5_224_tf.h5``,
    ``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5`` or
    ``weights_mobilenet_v3_small_minimalistic_224_1.0_float.h5``."""
    alphas, resolutions = KERAS_WEIGHTS[arch]
    if minimalistic and alpha != 1.0:
        alphas = ()  # Keras publishes minimalistic V3 weights at alpha 1.0 only
    if alpha not in alphas or resolution not in resolutions:
        raise ValueError(
            f"no official ImageNet weights for {arch} alpha={alpha}, resolution={resolution}: "
            f"they exist for alpha in {sorted(alphas)} and resolution in {list(resolutions)}"
        )
    suffix = "" if include_top else "_no_top"
    if arch.startswith("v3"):
        variant = f"{arch[3:]}{'_minimalistic' if minimalistic else ''}_224_{float(alpha)}"
        return f"weights_mobilenet_v3_{variant}_float{suffix and '_no_top_v2'}.h5"
    if arch == "v2":
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{resolution}{suffix}.h5"
    return f"mobilenet_{ALPHA_TEXT[alpha]}_{resolution}_tf{suffix}.h5"


def cached_weights(alpha: float, resolution: int, include_top: bool = True,
                   arch: str = "v1", minimalistic: bool = False) -> Path | None:
    """The official file if it is already on disk (our cache, then Keras's), else None.

    Never downloads: the notebooks use it to run offline, falling back to random weights.
    """
    name = keras_weights_filename(alpha, resolution, include_top, arch, minimalistic)
    for candidate in (cache_dir() / name, Path.home() / ".keras" / "models" / name):
        if candidate.is_file():
            return candidate
    return None


def keras_weights_path(alpha: float, resolution: int, include_top: bool,
                       arch: str = "v1", minimalistic: bool = False) -> Path:
    """The official file: from our cache, else from Keras's cache, else downloaded into ours.

    ``$MOBILENET_NP_WEIGHTS_URL`` replaces Keras's folder URL (a mirror, or a test server).
    """
    cached = cached_weights(alpha, resolution, include_top, arch, minimalistic)
    if cached is not None:
        return cached
    name = keras_weights_filename(alpha, resolution, include_top, arch, minimalistic)
    base = os.environ.get("MOBILENET_NP_WEIGHTS_URL", KERAS_URL + FOLDERS[arch])
    url = base.rstrip("/") + "/" + name
    return download(url, cache_dir() / name)


def download(url: str, destination: Path, timeout: float = 30) -> Path:
    """Fetch ``url`` to ``destination`` with a progress bar; check it is Keras weights.

    Written to a temporary file and renamed at the end: an interrupted or cut-off transfer
    leaves nothing at ``destination``.
    """
    with atomic_output(destination) as temporary:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, \
                    open(temporary, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                bar, done = ProgressBar(total, f"downloading {destination.name}"), 0
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    bar.update(done)
                bar.close()
            if total and done != total:
                raise ConnectionError(f"transfer cut off after {done} of {total} bytes")
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise ConnectionError(
                f"could not download {url}: {error}\n"
                f"Offline? Fetch that URL on a machine with internet and copy the file to "
                f"{destination} (or pass its path with --weights / weights=PATH)."
            ) from None
        read_keras_h5(temporary)  # a structural check before the file takes its name
    return destination
