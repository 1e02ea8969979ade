"""Run the course's notebooks top to bottom and print how long each took (the course map's times).

    python notebooks/time_notebooks.py                  # every notebook, in order
    python notebooks/time_notebooks.py 05 09a --write   # these two, outputs saved in place
    python notebooks/time_notebooks.py 09               # 09a and 09b

Each notebook runs in a fresh kernel, from this folder, as ``pytest notebooks`` runs it;
``--write`` saves the executed notebook (its outputs refreshed). The times are wall-clock on
this machine with whatever else it is running: a busy machine makes them longer, never shorter.
Needs the test extra (``nbclient``, ``nbformat``), which ``pip install -e ".[test]"`` installs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def run(path: Path, write: bool) -> float:
    """Execute one notebook in a fresh kernel; return its wall-clock seconds."""
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=1800, kernel_name="python3",
                            resources={"metadata": {"path": str(HERE)}}).execute()
    seconds = time.perf_counter() - start
    if write:
        nbformat.write(notebook, path)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("numbers", nargs="*", help="notebook numbers, e.g. 05 or 09b (default: all)")
    parser.add_argument("--write", action="store_true", help="save the executed notebooks")
    args = parser.parse_args()
    paths = sorted(HERE.glob("[0-9][0-9]*_*.ipynb"))  # 01_..., 09a_..., 09b_...
    if args.numbers:
        paths = [path for path in paths if {path.name[:2], path.name.split("_")[0]} & set(args.numbers)]
    for path in paths:
        print(f"{path.name:<44} {run(path, args.write):6.1f} s", flush=True)


if __name__ == "__main__":
    main()
