"""The Compare tab's drawings kept in one committed file, assets/figure_cache.zip: every method's figure layers,
the figures' bases and the prediction grids, so that any pair is composed, not drawn, from the app's first
request. Drawing them all is ~15 s of matplotlib; on a fresh Space that made the first minute's new pairs take
1-3 s each.

    python -m ui.figure_cache            # draw everything (ui.compare.warm) and rewrite the file
    python -m ui.figure_cache --check    # exit 1 if the file is not what this tree draws

The file holds a key: a hash of everything the drawings are made from (each method's checkpoint, the committed
sample, the code that draws, the drawing libraries' versions). The app uses the file only when its key is the
tree's; otherwise it draws as before (tests/test_figure_cache.py checks that the committed file is current).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import matplotlib
import numpy
import PIL
from PIL import Image

from core.data import SAMPLE_PATH
from core.methods import METHODS

from . import figures
from .compare import Grid
from .lab import Lab

HERE = Path(__file__).resolve().parent
PATH = HERE.parent / "assets" / "figure_cache.zip"
KINDS = ("gradient_flow", "curves", "weight_change", "predictions")  # the first item of every key kept
# the code the drawings come from: a change to any of it makes the file stale
SOURCES = [HERE / "figures.py", HERE / "compare.py", HERE.parent / "core" / "history.py",
           HERE.parent / "core" / "methods.py", HERE.parent / "core" / "models.py"]


def key(root: Path) -> str:
    """The hash of everything the drawings of the methods under `root` are made from."""
    h = hashlib.sha256()
    for name in METHODS:
        for file in ("config.json", "metrics.json", "model.safetensors"):
            path = root / name / file
            h.update(f"{name}/{file}:".encode())
            h.update(path.read_bytes() if path.is_file() else b"<missing>")
    for path in [SAMPLE_PATH, *SOURCES]:
        h.update(path.name.encode() + b":" + path.read_bytes())
    h.update(f"matplotlib {matplotlib.__version__} pillow {PIL.__version__} numpy {numpy.__version__}".encode())
    return h.hexdigest()


def save(lab: Lab, path: Path = PATH) -> int:
    """What `lab` has drawn (after ui.compare.warm), written whole to `path`; returns the number of drawings.
    Entries: a layer's (offset, PNG), a base (a decoded image, kept as PNG), a prediction grid (its file and
    the answers it shows)."""
    index, files = [], {}
    for k, value in lab.made().items():
        if not (isinstance(k, tuple) and k[0] in KINDS):
            continue
        file = f"{len(files)}.png"
        if isinstance(value, tuple):  # a layer: (offset, PNG bytes)
            (x, y), data = value
            entry = {"key": list(k), "file": file, "offset": [x, y]}
        elif isinstance(value, Image.Image):  # a base
            data, entry = figures.encoded(value), {"key": list(k), "file": file, "image": True}
        elif isinstance(value, Grid):  # a prediction grid: its PNG file and what it shows
            data = Path(value.path).read_bytes()
            entry = {"key": list(k), "file": file, "grid": {"truth": value.truth, "predicted": value.predicted}}
        else:
            continue
        files[file] = data
        index.append(entry)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:  # PNGs: compressing them again gains nothing
        z.writestr("index.json", json.dumps({"key": key(lab.root), "entries": index}, indent=0))
        for file, data in files.items():
            z.writestr(file, data)
    os.replace(tmp, path)
    return len(index)


def stored_key(path: Path = PATH) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("index.json"))["key"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def load(lab: Lab, path: Path = PATH) -> str:
    """The file's drawings given to `lab` (Lab.keep) when its key is that of lab's checkpoints and this tree;
    returns what happened, in a line for the app's log. A missing, stale or broken file loads nothing."""
    try:
        with zipfile.ZipFile(path) as z:
            index = json.loads(z.read("index.json"))
            if index.get("key") != key(lab.root):
                return f"Figure cache {path.name}: stale (its key is not this tree's), drawing as needed"
            for entry in index["entries"]:
                k, data = tuple(entry["key"]), z.read(entry["file"])
                if entry.get("image"):
                    lab.keep(k, Image.open(io.BytesIO(data)).convert("RGBA"))
                elif entry.get("grid"):
                    g = entry["grid"]
                    lab.keep(k, Grid(lab.png_file(f"predictions-{k[1]}", data), g["truth"], g["predicted"]))
                else:
                    lab.keep(k, (tuple(entry["offset"]), data))
    except FileNotFoundError:
        return f"Figure cache {path.name}: missing, drawing as needed"
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        return f"Figure cache {path.name}: unreadable ({type(e).__name__}: {e}), drawing as needed"
    return f"Figure cache {path.name}: {len(index['entries'])} drawings loaded"


def main(argv: list[str] | None = None) -> int:
    from . import compare  # (only to draw: the app loads the file without it)
    parser = argparse.ArgumentParser(prog="python -m ui.figure_cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not this tree's")
    args = parser.parse_args(argv)
    lab = Lab()
    if args.check:
        ok = stored_key() == key(lab.root)
        print(f"{PATH.name}: {'current' if ok else 'stale: run python -m ui.figure_cache'}")
        return 0 if ok else 1
    compare.warm(lab)
    print(f"{PATH.name}: {save(lab)} drawings, {PATH.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
