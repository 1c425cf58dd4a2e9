"""The real dataset loads and splits reproducibly; missing or corrupt files give one clear message."""
import gzip
import shutil

import numpy as np
import pytest

from core.data import CLASSES, DEBIAN_DIR, DatasetError, load_fashion_mnist, load_raw, load_sample


def test_real_dataset_shapes_and_split(fashion):
    assert (len(fashion.train), len(fashion.val), len(fashion.test)) == (54_000, 6_000, 10_000)
    assert fashion.train.x.shape == (54_000, 784) and fashion.train.x.dtype.is_floating_point
    assert 0.0 <= fashion.train.x.min() and fashion.train.x.max() <= 1.0
    assert sorted(fashion.test.y.unique().tolist()) == list(range(10))
    assert np.bincount(fashion.test.y.numpy()).tolist() == [1000] * 10


def test_split_is_fixed_by_the_seed(fashion):
    again = load_fashion_mnist(seed=42)
    assert (again.val.y == fashion.val.y).all() and (again.train.x[:50] == fashion.train.x[:50]).all()
    other = load_fashion_mnist(seed=7)
    assert not (other.val.y == fashion.val.y).all()


def test_sample_is_real_test_images(fashion):
    sample = load_sample()
    assert len(sample) == 1000 and np.bincount(sample.y.numpy()).tolist() == [100] * 10
    with np.load("assets/fashion_mnist_sample.npz") as f:
        idx = f["test_index"]
    assert (fashion.test.x[idx] == sample.x).all() and (fashion.test.y[idx] == sample.y).all()
    assert len(CLASSES) == 10


@pytest.fixture
def copy_of_data(tmp_path):
    for f in DEBIAN_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def test_uncompressed_idx_files_are_accepted(copy_of_data):
    for f in list(copy_of_data.glob("*.gz")):
        (copy_of_data / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
        f.unlink()
    raw, source = load_raw(copy_of_data)
    assert raw["train"][0].shape == (60_000, 28, 28) and source == str(copy_of_data)


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[: len(b) // 2], "truncated|cannot be read"),
    (lambda b: gzip.compress(b"\x00\x00\x08\x02" + gzip.decompress(b)[4:], 1), "bad magic"),
    (lambda b: gzip.compress(gzip.decompress(b)[:-100], 1), "expected 7840000"),
])
def test_corrupt_dataset_names_the_file(copy_of_data, damage, message):
    target = copy_of_data / "t10k-images-idx3-ubyte.gz"
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(DatasetError, match=message) as err:
        load_raw(copy_of_data)
    assert str(target) in str(err.value) and "apt-get install dataset-fashion-mnist" in str(err.value)


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("VGL_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match="not found") as err:
        load_raw()
    assert str(tmp_path) in str(err.value)


def _hub_parquet(path, images, labels):
    """A split as the Hub's Parquet conversion stores it: rows of {image: {bytes: PNG, path}, label}."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    image = pa.array([{"bytes": png(a), "path": None} for a in images],
                     pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"image": image, "label": pa.array(labels.astype(np.int64))}), path)
    return path


@pytest.mark.slow
def test_hub_download_becomes_the_same_idx_files(tmp_path):
    """The Space's source of the real set: both splits in the Hub's Parquet layout (made here from Debian's
    real IDX files: this machine has no network), converted to IDX files that load exactly like the originals."""
    from core.data import HUB_DATASET, HUB_FILES, download_from_hub

    raw, _ = load_raw(DEBIAN_DIR)
    files = {HUB_FILES[s]: _hub_parquet(tmp_path / f"{s}.parquet", *raw[s]) for s in ("train", "test")}
    folder = download_from_hub(tmp_path / "data", fetch=lambda name: files[name])
    again, source = load_raw(folder)
    for split in ("train", "test"):
        assert np.array_equal(again[split][0], raw[split][0]) and np.array_equal(again[split][1], raw[split][1])
    assert source == str(folder) and HUB_DATASET == "zalando-datasets/fashion_mnist"
    bad = _hub_parquet(tmp_path / "short.parquet", raw["test"][0][:10], raw["test"][1][:10])
    with pytest.raises(DatasetError, match="short.parquet: 10 rows, expected 60000"):
        download_from_hub(tmp_path / "bad", fetch=lambda name: bad)
