"""Write weight files with Keras itself, for test_keras_files.py (run in a subprocess).

    python keras_writer.py --keras 2|3 JOBS.json

``--keras 2`` imports tf_keras (the Keras 2 generation), ``--keras 3`` imports keras: never both
in one process. Each job of the JSON list builds one ``keras.applications`` model, copies our
params into it (an .npz written by the test), writes every format of that generation into the
job's folder and saves Keras's own output on the job's input:

    {"folder": ..., "model": "MobileNetV3Small", "kwargs": {...}, "params": "p.npz",
     "layers": [[our layer name, [weight names]], ...], "input": "x.npy"}

Written: the weight files (``FORMATS``), ``expected.npy`` (logits when a softmax follows,
else the model's output), ``probabilities.npy`` (with a top) and ``names.json`` (pairs of
Keras's layer name and ours, as matched by position).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

# Generation -> (file name, how Keras writes it); test_keras_files.py names them the same.
FORMATS = {
    2: {"keras2_weights.h5": lambda model, path: model.save_weights(path),
        "keras2_model.h5": lambda model, path: model.save(path),
        # tf_keras (2.21 here) also writes Keras 3's two layouts, by file name
        "keras2.weights.h5": lambda model, path: model.save_weights(path),
        "keras2.keras": lambda model, path: model.save(path)},
    3: {"keras3.weights.h5": lambda model, path: model.save_weights(path),
        "keras3_model.h5": lambda model, path: model.save(path),  # Keras 3's legacy HDF5
        "keras3.keras": lambda model, path: model.save(path)},
}


def copy_params(model, layers: list, params) -> list[list[str]]:
    """Copy our arrays into the model's layers that hold weights, by position, checking every
    shape (tf_keras names MobileNetV3's layers differently from ours); return the name pairs."""
    theirs = [layer for layer in model.layers if layer.weights]
    if len(theirs) != len(layers):
        raise SystemExit(f"{model.name}: {len(theirs)} Keras layers with weights, "
                         f"{len(layers)} of ours")
    pairs = []
    for layer, (name, weights) in zip(theirs, layers, strict=True):
        arrays = [params[f"{name}/{weight}"] for weight in weights]
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if shapes != [a.shape for a in arrays]:
            raise SystemExit(f"{layer.name} {shapes} does not fit our {name} "
                             f"{[a.shape for a in arrays]}")
        layer.set_weights(arrays)
        pairs.append([layer.name, name])
    return pairs


def outputs(keras, model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Keras's logits where a softmax follows (and its probabilities), else the model output.

    V1 and V3 end in a softmax ``Activation`` layer: the logits are its input. V2's ``Dense``
    applies the softmax itself: it is switched to linear (after the files are written).
    """
    last = model.layers[-1]
    if isinstance(last, keras.layers.Activation):
        logits = keras.Model(model.inputs, last.input)(x)
    elif getattr(last, "activation", None) is keras.activations.softmax:
        probabilities = np.asarray(model(x))
        last.activation = keras.activations.linear
        return {"expected": np.asarray(model(x)), "probabilities": probabilities}
    else:
        return {"expected": np.asarray(model(x))}
    return {"expected": np.asarray(logits).reshape(len(x), -1),
            "probabilities": np.asarray(model(x))}


def write_job(keras, generation: int, job: dict) -> None:
    """One model: build it, give it our params, write every format, save its outputs."""
    keras.backend.clear_session()
    folder = Path(job["folder"])
    model = getattr(keras.applications, job["model"])(weights=None, **job["kwargs"])
    with np.load(job["params"], allow_pickle=False) as params:
        pairs = copy_params(model, job["layers"], params)
    for name, write in FORMATS[generation].items():
        write(model, str(folder / name))
    for name, array in outputs(keras, model, np.load(job["input"])).items():
        np.save(folder / f"{name}.npy", array)
    (folder / "names.json").write_text(json.dumps(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", type=int, choices=(2, 3), required=True)
    parser.add_argument("jobs", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.keras == 2:
        import tf_keras as keras
    else:
        import keras
    for job in json.loads(args.jobs.read_text()):
        write_job(keras, args.keras, job)


if __name__ == "__main__":
    main()
