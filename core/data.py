"""FashionMNIST as in-memory tensors: find the IDX files (or fetch them from the Hub), check them, split with a seed."""
from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_DIR = Path(__file__).resolve().parent.parent / "data"  # where a download from the Hub is kept
# The dataset on the Hugging Face Hub (the Space's front matter names it), as the Hub's own Parquet conversion:
# one file per split, rows of {image: {bytes: PNG}, label}. On a Space this is how the real set arrives.
HUB_DATASET = "zalando-datasets/fashion_mnist"
HUB_REVISION = "refs/convert/parquet"
HUB_FILES = {"train": "fashion_mnist/train/0000.parquet", "test": "fashion_mnist/test/0000.parquet"}
SAMPLE_PATH = Path(__file__).resolve().parent.parent / "assets" / "fashion_mnist_sample.npz"
FILES = {  # split -> (images, labels, expected count)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
HOW_TO_GET = ("install it with `apt-get install dataset-fashion-mnist` (Debian), "
              "pass --data-dir / set VGL_DATA_DIR to a folder holding the four IDX files, "
              f"or run once with internet so it is downloaded from the Hub ({HUB_DATASET}) into data/")


class DatasetError(RuntimeError):
    """The dataset is missing or corrupt; the message says where we looked and how to get it."""


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # float32 [N, 784] in [0, 1], what transforms.ToTensor() gives, flattened
    y: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class FashionMNIST:
    train: Split
    val: Split
    test: Split
    source: str


def _open(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:  # gzip raises BadGzipFile (an OSError) or EOFError when truncated
        raise DatasetError(f"{path}: cannot be read ({e}); {HOW_TO_GET}") from None


def read_idx(path: Path, expected_count: int, is_images: bool) -> np.ndarray:
    """Parse an IDX file (gzipped or not) and check its magic number, count and shape."""
    raw = _open(path)
    magic, ndim = (0x00000803, 3) if is_images else (0x00000801, 1)
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DatasetError(f"{path}: not an IDX {'image' if is_images else 'label'} file "
                           f"(bad magic number); {HOW_TO_GET}")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    want = [expected_count, 28, 28] if is_images else [expected_count]
    if dims != want:
        raise DatasetError(f"{path}: header says shape {dims}, expected {want}; {HOW_TO_GET}")
    body = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(want)):
        raise DatasetError(f"{path}: holds {body.size} bytes of data, expected {int(np.prod(want))} "
                           f"(truncated?); {HOW_TO_GET}")
    if not is_images and body.max() > 9:
        raise DatasetError(f"{path}: label {int(body.max())} is out of range 0-9; {HOW_TO_GET}")
    return body.reshape(want)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where we look, in order: the explicit folder, $VGL_DATA_DIR, Debian's package, the Hub download."""
    explicit = data_dir or os.environ.get("VGL_DATA_DIR")
    if explicit:  # an explicit choice is never silently replaced by another copy
        return [Path(explicit)]
    return [DEBIAN_DIR, DOWNLOAD_DIR]


def load_raw(data_dir: str | os.PathLike | None = None, download: bool = True) -> tuple[dict, str]:
    """Return {'train': (images uint8 [N,28,28], labels uint8 [N]), 'test': ...} and where they came from.
    Without an explicit folder and with `download`, a set found nowhere is fetched from the Hub once."""
    dirs = candidate_dirs(data_dir)
    for folder in dirs:
        paths = {split: (_find(folder, img), _find(folder, lab)) for split, (img, lab, _) in FILES.items()}
        if all(p is not None for pair in paths.values() for p in pair):
            return ({split: (read_idx(paths[split][0], FILES[split][2], True),
                             read_idx(paths[split][1], FILES[split][2], False)) for split in FILES},
                    HUB_DATASET if folder == DOWNLOAD_DIR else str(folder))
    why = ""
    if download and not (data_dir or os.environ.get("VGL_DATA_DIR")):
        try:
            download_from_hub()
            return load_raw(DOWNLOAD_DIR, download=False)
        except DatasetError:
            raise
        except Exception as e:  # offline, or the Hub refused: the message says where we looked, and this
            why = f"; the download from the Hub failed ({type(e).__name__})"
    raise DatasetError("FashionMNIST not found (looked in " + ", ".join(str(d) for d in dirs) + why
                       + "); " + HOW_TO_GET)


def read_parquet(path: Path, expected_count: int) -> tuple[np.ndarray, np.ndarray]:
    """One split of the Hub's Parquet conversion -> (images uint8 [N,28,28], labels uint8 [N]), checked as
    read_idx checks an IDX file. (pyarrow: Parquet is a columnar, compressed format not worth parsing by hand.)"""
    import pyarrow.parquet as pq
    from PIL import Image

    table = pq.read_table(path, columns=["image", "label"])
    if table.num_rows != expected_count:
        raise DatasetError(f"{path.name}: {table.num_rows} rows, expected {expected_count}")
    images = np.empty((expected_count, 28, 28), np.uint8)
    for i, cell in enumerate(table.column("image").to_pylist()):
        with Image.open(io.BytesIO(cell["bytes"])) as im:
            if im.size != (28, 28) or im.mode != "L":
                raise DatasetError(f"{path.name}: image {i} is {im.mode} {im.size}, expected L (28, 28)")
            images[i] = np.asarray(im)
    labels = np.asarray(table.column("label").to_numpy(), dtype=np.int64)
    if labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{path.name}: labels out of range 0-9")
    return images, labels.astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """`array` (uint8 [N,28,28] images or [N] labels) as an uncompressed IDX file, written atomically."""
    magic = 0x00000803 if array.ndim == 3 else 0x00000801
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(header + np.ascontiguousarray(array, np.uint8).tobytes())
    os.replace(tmp, path)


def download_from_hub(folder: Path = DOWNLOAD_DIR, fetch=None) -> Path:
    """Fetch both splits of HUB_DATASET and keep them in `folder` as the four IDX files the other sources
    give (so every later start reads them like Debian's copy). `fetch(filename) -> local path` defaults to
    huggingface_hub's cached download of the dataset repo at HUB_REVISION."""
    if fetch is None:
        from huggingface_hub import hf_hub_download
        fetch = lambda name: hf_hub_download(HUB_DATASET, name, repo_type="dataset",  # noqa: E731
                                             revision=HUB_REVISION)
    folder.mkdir(parents=True, exist_ok=True)
    for split, (images_name, labels_name, count) in FILES.items():
        images, labels = read_parquet(Path(fetch(HUB_FILES[split])), count)
        write_idx(folder / images_name, images)
        write_idx(folder / labels_name, labels)
    return folder


def to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 [N,28,28] -> float32 [N,784] in [0,1]: the model's input scale, shared by training and the app."""
    return torch.from_numpy(np.array(images)).reshape(len(images), -1).float().div_(255.0)


def to_images(x: torch.Tensor) -> np.ndarray:
    """The inverse of to_float: float [N,784] in [0,1] -> uint8 [N,28,28] images."""
    return (x * 255).round().to(torch.uint8).reshape(-1, 28, 28).numpy()


def load_fashion_mnist(data_dir=None, seed: int = 42, val_fraction: float = 0.1,
                       limit: int | None = None) -> FashionMNIST:
    """The whole set as tensors. The seed fixes the 90/10 train/val split; `limit` caps the train split."""
    raw, source = load_raw(data_dir)
    x, y = to_float(raw["train"][0]), torch.from_numpy(raw["train"][1].astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(y) * val_fraction))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    if limit is not None:
        train_idx = train_idx[:limit]
    test = Split(to_float(raw["test"][0]), torch.from_numpy(raw["test"][1].astype(np.int64)))
    return FashionMNIST(Split(x[train_idx], y[train_idx]), Split(x[val_idx], y[val_idx]), test, source)


def load_sample(path: Path = SAMPLE_PATH) -> Split:
    """The committed sample of real test images (100 per class) for tests, the app's examples and the Space."""
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels = f["images"], f["labels"]
    except (OSError, KeyError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read the committed sample ({e}); "
                           "rebuild it with `python -m core make-sample`") from None
    return Split(to_float(images), torch.from_numpy(labels.astype(np.int64)))


def make_sample(path: Path = SAMPLE_PATH, per_class: int = 100, data_dir=None) -> None:
    """Write the first `per_class` test images of each class (real data, never trained on) to `path`."""
    raw, _ = load_raw(data_dir)
    images, labels = raw["test"]
    idx = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(len(CLASSES))])
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, images=images[idx], labels=labels[idx], test_index=idx)
    os.replace(tmp, path)
