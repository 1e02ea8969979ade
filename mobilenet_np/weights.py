"""Weights: a file's arrays matched to a family's layer table, checked, converted to ``.npz``.

In memory, weights are one flat dict ``Params``: ``"conv_dw_3_bn/gamma" -> array``, the
Keras layer name and weight name joined by "/". Files are read by ``keras_files.py`` (Keras)
and ``files.py`` (ours); here their layers are named (Keras 3 files number them), matched to
the table the options build, and every array is checked: present, of the right shape, finite.
A file that fits nothing gets a message that says what it holds.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from .checks import check_weights
from .errors import WeightsError
from .files import check_destination, load_npz, refuse_special_file, save_npz
from .keras_files import read_keras_file
from .kinds import KINDS
from .layers import Layer, Params
from .registry import FAMILIES, Family, get_family
from .safetensors import looks_like_safetensors, read_safetensors, refuse_pickle
from .stored import Stored
from .torch_layout import from_torch

# Keras 3 ``.weights.h5`` files name layers by class and position (conv2d, conv2d_1, ...),
# not by layer name: each kind's record says which Keras class stores it (``keras_class``).
KERAS3_KEY = r"([a-z0-9_]+?)(?:_(\d+))?"  # "conv2d_12" -> class "conv2d", position 12
# Keras 3's legacy .h5 calls every layer's main array "kernel", a depthwise kernel too.
WEIGHT_ALIASES = {"depthwise_kernel": "kernel"}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def read_weights_file(path: str | os.PathLike, family: Family | None = None) -> Stored:
    """Read ``.npz`` (ours), any Keras file or a timm ``.safetensors`` into {layer: {weight: array}}.

    Keras 3 files only number their layers: they are named after the table of ``family``
    (default: every registered family's) whose layers they fit class by class, in Keras's order.
    """
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path} is a folder, not a weights file")
    refuse_special_file(path, str(path), "a weights file")
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    with open(path, "rb") as file:
        head = file.read(9)
    refuse_pickle(path, head)
    if looks_like_safetensors(head):  # timm's files (MobileNetV4), PyTorch's layout
        stored = from_torch(read_safetensors(path))
    elif _is_npz(path):
        stored = Stored(layout="our .npz")
        for key, array in load_npz(path).items():
            layer, _, weight = key.rpartition("/")
            stored.setdefault(layer, {})[weight] = array
    else:
        file = read_keras_file(path)
        stored = name_by_position(file.stored, family, file.layout) if file.positional \
            else Stored(file.stored, layout=file.layout)
    stored.source = str(path)
    return stored


def _is_npz(path: Path) -> bool:
    """Our .npz or a Keras file? By content, not name: a renamed file still reads right."""
    with open(path, "rb") as file:
        head = file.read(8)
    if head.startswith(b"PK\x03\x04"):  # a zip: ours if it holds arrays only, else Keras's
        with contextlib.suppress(zipfile.BadZipFile):
            with zipfile.ZipFile(path) as archive:
                return all(name.endswith(".npy") for name in archive.namelist())
        return path.suffix != ".keras"
    return head != HDF5_SIGNATURE and path.suffix == ".npz"


def keras_classes(layers: list[Layer]) -> Counter:
    """How many layers of each Keras class hold weights: what a Keras 3 file's keys count."""
    return Counter(KINDS[layer.kind].keras_class for layer in layers if layer.weights)


def candidate_tables(family: Family):
    """(options, layers) for every structure the family's options can build: with and without
    its top, and every combination of its on/off options (e.g. minimalistic). Widths and
    classes change shapes, not structure, so the defaults stand in for them."""
    switches = [name for name, option in family.options.items()
                if isinstance(option.default, bool)]
    for include_top in (True, False):
        for values in itertools.product((False, True), repeat=len(switches)):
            options = {"include_top": include_top, **dict(zip(switches, values, strict=True))}
            yield options, family.layers(**options)


def name_by_position(positional: Stored, family: Family | None, layout: str) -> Stored:
    """Give Keras 3's numbered layers (``conv2d_3``: "0", "1") their layer and weight names.

    Keras 3 numbers each class's layers in the model's order, so the k-th ``conv2d`` is the
    k-th conv of the table: the table whose layers of each class are exactly as many as the
    file's names them (array shapes are checked afterwards, against the exact options).
    """
    found = Counter()
    for key in positional:
        match = re.fullmatch(KERAS3_KEY, key)
        found[match.group(1) if match else key] += 1
    closest = None
    for candidate in [family] if family else FAMILIES.values():
        for options, layers in candidate_tables(candidate):
            expected = keras_classes(layers)
            if expected == found:
                return _rename_positional(positional, layers, layout)
            distance = sum(((expected - found) + (found - expected)).values())
            if closest is None or distance < closest[0]:
                closest = (distance, candidate.title, options, expected)
    _, title, options, expected = closest
    raise WeightsError(f"a {layout} file whose layers fit no MobileNet this package knows: it "
                     f"holds {_counts(found)}; the closest, {title} {options}, has "
                     f"{_counts(expected)}")


def _counts(classes: Counter) -> str:
    return ", ".join(f"{count} {name}" for name, count in sorted(classes.items()))


def _rename_positional(positional: Stored, layers: list[Layer], layout: str) -> Stored:
    """Name each ``class_k`` entry after the k-th weighted layer of that class in ``layers``."""
    by_class: dict[str, list[Layer]] = {}
    for layer in layers:
        if layer.weights:
            by_class.setdefault(KINDS[layer.kind].keras_class, []).append(layer)
    named = Stored(layout=layout)
    for key, arrays in positional.items():
        match = re.fullmatch(KERAS3_KEY, key)
        layers_of_class, position = by_class[match.group(1)], int(match.group(2) or 0)
        if position >= len(layers_of_class):  # counts agree, so the numbering has a gap
            raise WeightsError(f"{layout}: '{key}' numbers past the {len(layers_of_class)} "
                             f"{match.group(1)} layers the file holds (renamed or hand-edited?)")
        layer = layers_of_class[position]
        if len(arrays) != len(layer.weights):
            raise WeightsError(f"{layout}: '{key}' ({layer.name}) holds {len(arrays)} arrays, "
                             f"expected {len(layer.weights)} ({', '.join(layer.weights)})")
        named[layer.name] = dict(zip(layer.weights, arrays.values(), strict=True))
    return named


def in_family_names(stored: Stored, family: Family) -> Stored:
    """The file's layers under this family's names (Keras 2 named V3's ``Conv/BatchNorm``)."""
    renamed = Stored({family.keras_name(name): arrays for name, arrays in stored.items()},
                     layout=stored.layout)
    renamed.source = stored.source
    return renamed


def infer_config(stored: Stored) -> dict:
    """What a weights file holds, read off its shapes: ``{"arch", **builder options}``.

    Each registered family's ``recognise`` is asked in turn; the first that knows the file
    answers (see ``families/``).
    """
    for family in FAMILIES.values():
        config = family.recognise(in_family_names(stored, family))
        if config is not None:
            return {"arch": family.name, **config}
    raise WeightsError(f"{stored.source} ({stored.layout}) is not MobileNet weights this package "
                     f"knows: its layers are {sorted(stored)[:4]}...; families "
                     f"{', '.join(FAMILIES)}")


def describe_config(config: dict) -> str:
    """``infer_config``'s answer in one line: "MobileNet V1 alpha=0.25, with a 1000-class top"."""
    family = get_family(config["arch"])
    options = ", ".join([f"alpha={config['alpha']:g}"]
                        + [f"{name}={config[name]}" for name in family.options if name in config])
    top = f"a {config['classes']}-class top" if config["include_top"] else "no top"
    return f"{family.title} {options}, with {top}"


def check_params(stored: Stored, layers: list[Layer],
                 droppable: frozenset[str] = frozenset()) -> Params:
    """Match stored arrays to the layer table: every name present, none extra, every shape
    equal, every value finite. Layers in ``droppable`` may be in the file and are ignored: a
    file with a classifier loads into a model without one."""
    expected = {layer.name: layer for layer in layers if layer.weights}
    extra = set(stored) - set(expected) - droppable
    missing = [name for name in expected if name not in stored]
    problems = []
    if missing:
        problems.append(f"missing layers {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    if extra:
        problems.append(f"unexpected layers {sorted(extra)[:4]}")
    params = {}
    for name, layer in expected.items():
        arrays = stored.get(name, {})
        for weight, shape in layer.weights.items():
            array = arrays.get(weight, arrays.get(WEIGHT_ALIASES.get(weight, weight)))
            if array is None:
                if name not in missing:
                    problems.append(f"{name} has no '{weight}' (has {sorted(arrays)})")
            elif array.shape != shape:
                problems.append(f"{name}/{weight} has shape {array.shape}, expected {shape}")
            elif array.dtype.kind != "f":
                problems.append(f"{name}/{weight} has dtype {array.dtype}, expected floats")
            else:
                params[f"{name}/{weight}"] = np.ascontiguousarray(array, dtype=np.float32)
    if problems:
        raise WeightsError(f"{stored.source}: weights do not fit the model: "
                         + "; ".join(problems[:6]))
    return params


def check_finite(params: Params, source: str) -> Params:
    """Refuse NaN and infinity, naming the arrays that hold them (they would give NaN answers)."""
    bad = [f"{key} holds {np.count_nonzero(~np.isfinite(array))} NaN or infinite values"
           for key, array in params.items() if not np.isfinite(array).all()]
    if bad:
        raise WeightsError(f"{source}: " + "; ".join(bad[:4]) + (" ..." if len(bad) > 4 else ""))
    return params


def load_weights(weights: str | os.PathLike | Stored, layers: list[Layer],
                 family: Family) -> Params:
    """Params for ``layers`` from a weights file, or from what ``read_weights_file`` already
    read out of one (read once, build several models: they share its arrays), all checked."""
    if isinstance(weights, dict):
        stored = weights if isinstance(weights, Stored) else Stored(weights)
    else:
        stored = read_weights_file(weights, family)
    # The family's classifier layers: a file with a top loads into a model without one.
    droppable = frozenset(layer.name for layer in family.layers(include_top=True)
                          if layer.role == "top" and layer.weights)
    try:
        params = check_params(in_family_names(stored, family), layers, droppable)
    except WeightsError as error:
        try:
            holds = f"{stored.source} holds {describe_config(infer_config(stored))}"
        except WeightsError:
            holds = f"{stored.source} is not {family.title} weights"
        raise WeightsError(f"{error}. {holds}: pass the matching options (e.g. alpha=..., "
                         f"include_top=...) or another file") from None
    check_weights(check_finite(params, stored.source), layers, stored.source)
    return params


def file_options(stored: Stored, family: Family | None = None) -> tuple[Family, dict]:
    """The family and builder options a file holds, read off its shapes; a ``family`` given
    that the file contradicts is an error naming both."""
    config = infer_config(stored)
    if family is not None and config["arch"] != family.name:
        raise WeightsError(f"{stored.source} holds {describe_config(config)}, not {family.title}")
    return get_family(config.pop("arch")), config


def convert(source: str | os.PathLike, destination: str | os.PathLike,
            family: Family | None = None) -> dict:
    """Convert a Keras file to ``.npz`` after checking every array; return what it holds."""
    check_destination(source, destination, ".npz")
    stored = read_weights_file(source, family)
    family, options = file_options(stored, family)
    save_npz(load_weights(stored, family.layers(**options), family), destination)
    return {"arch": family.name, **options}
