"""ui.figure_cache: the committed drawings are this tree's, they are what drawing gives, and a file that is not
current is never used."""
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT
from ui import compare, figure_cache, figures
from ui.lab import Lab

KINDS = ("gradient_flow", "curves", "weight_change")


def pixels(value) -> np.ndarray:
    """A kept drawing as pixels: a layer's (offset, PNG), a base image or a prediction grid's file."""
    if isinstance(value, tuple):
        import io
        return np.asarray(Image.open(io.BytesIO(value[1])).convert("RGBA"))
    if isinstance(value, Image.Image):
        return np.asarray(value.convert("RGBA"))
    with Image.open(value.path) as im:  # a compare.Grid
        return np.asarray(im.convert("RGBA"))


def test_the_committed_file_is_this_trees():
    assert figure_cache.stored_key() == figure_cache.key(ROOT / "checkpoints"), \
        "assets/figure_cache.zip is stale: run python -m ui.figure_cache"


def test_a_pair_from_the_file_is_the_pair_drawn(monkeypatch):
    cached = Lab()
    assert figure_cache.load(cached).endswith("drawings loaded")
    with monkeypatch.context() as m:  # from the file, nothing is drawn
        for name in ("layer", "base", "predictions_figure"):
            m.setattr(figures, name, lambda *a, name=name, **k: pytest.fail(f"figures.{name} called"))
        from_file = [compare.figure(cached, kind, "relu", "layerwise") for kind in KINDS]
        grid = compare.prediction_grid(cached, "relu")
    drawn = Lab()
    for kind, a in zip(KINDS, from_file, strict=True):
        b = compare.figure(drawn, kind, "relu", "layerwise")
        assert a.size == b.size and a.tobytes() == b.tobytes(), kind
    fresh = compare.prediction_grid(drawn, "relu")
    assert pixels(grid).tobytes() == pixels(fresh).tobytes()
    assert (grid.truth, grid.predicted) == (fresh.truth, fresh.predicted)  # what its text alternative says


@pytest.mark.slow
def test_every_drawing_in_the_file_is_what_drawing_gives():
    """The key guards what the drawings are made from; this guards the rest (a change the key does not see)."""
    cached, drawn = Lab(), Lab()
    figure_cache.load(cached)
    kept = {k: v for k, v in cached.made().items() if isinstance(k, tuple) and k[0] in figure_cache.KINDS}
    compare.warm(drawn)
    fresh = {k: v for k, v in drawn.made().items() if isinstance(k, tuple) and k[0] in figure_cache.KINDS}
    assert kept.keys() == fresh.keys()
    for k in kept:
        if isinstance(kept[k], tuple):
            assert kept[k][0] == fresh[k][0], k  # the layer's offset
        assert pixels(kept[k]).tobytes() == pixels(fresh[k]).tobytes(), k
        if isinstance(kept[k], compare.Grid):
            assert (kept[k].truth, kept[k].predicted) == (fresh[k].truth, fresh[k].predicted), k


def test_a_stale_broken_or_missing_file_loads_nothing(tmp_path):
    stale = tmp_path / "stale.zip"
    with zipfile.ZipFile(figure_cache.PATH) as src, zipfile.ZipFile(stale, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            dst.writestr(item, data.replace(b'"key": "', b'"key": "0') if item == "index.json" else data)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(figure_cache.PATH.read_bytes()[:1000])
    for path, words in ((stale, "stale"), (broken, "unreadable"), (tmp_path / "none.zip", "missing")):
        lab = Lab()
        assert words in figure_cache.load(lab, path)
        assert not lab.made(), path


def test_other_checkpoints_have_another_key(tmp_path):
    root = tmp_path / "checkpoints"
    shutil.copytree(ROOT / "checkpoints", root)
    assert figure_cache.key(root) == figure_cache.key(ROOT / "checkpoints")
    metrics = root / "relu" / "metrics.json"
    metrics.write_text(metrics.read_text() + " ")  # one byte more: another record
    assert figure_cache.key(root) != figure_cache.key(ROOT / "checkpoints")


def test_save_writes_the_file_whole(tmp_path):
    lab = Lab()
    figure_cache.load(lab)
    out = tmp_path / "cache.zip"
    n = figure_cache.save(lab, out)
    assert n == len([k for k in lab.made() if isinstance(k, tuple) and k[0] in figure_cache.KINDS])
    assert not list(tmp_path.glob("*.tmp")) and figure_cache.stored_key(out) == figure_cache.key(lab.root)
    again = Lab()
    assert figure_cache.load(again, out).endswith(f"{n} drawings loaded")
