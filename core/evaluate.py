"""Re-evaluate committed checkpoints: recorded vs measured accuracy on the full test set and the sample."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from .checkpoint import ROOT, CheckpointError, load_checkpoint
from .data import DatasetError, Split, load_fashion_mnist, load_sample, to_images
from .methods import METHODS
from .models import DeepMLP
from .train import OneLineParser


@torch.no_grad()
def accuracy(model: DeepMLP, split: Split) -> float:
    model.eval()
    return (model(split.x).argmax(1) == split.y).sum().item() / len(split)


def sample_accuracy(model: DeepMLP) -> float:
    """Accuracy on the committed sample (assets/fashion_mnist_sample.npz): a fingerprint of the weights
    that any machine can check without the full dataset."""
    return accuracy(model, load_sample())


def photo_check(model: DeepMLP, per_kind: int = 30, seed: int = 0) -> dict:
    """core.preprocess.photo_robustness on the committed sample (real test images, never trained on)."""
    import numpy as np

    from .preprocess import photo_robustness
    sample = load_sample()
    images = to_images(sample.x)
    model.eval()
    with torch.no_grad():
        return photo_robustness(lambda x: model(x).argmax(1), images, np.asarray(sample.y), per_kind, seed)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m core.evaluate", description=__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--method", nargs="+", metavar="NAME", help="method(s) (see python -m core.train --list)")
    what.add_argument("--all", action="store_true", help="every method with a checkpoint")
    parser.add_argument("--checkpoints", default=str(ROOT), help="folder of checkpoints (default: %(default)s)")
    parser.add_argument("--data-dir", help="folder with the FashionMNIST IDX files")
    parser.add_argument("--photos", action="store_true",
                        help="instead: how often photo-like versions of sample images keep their prediction")
    args = parser.parse_args(argv)
    unknown = [n for n in args.method or [] if n not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; valid: {', '.join(METHODS)}")
    names = list(METHODS) if args.all else args.method
    if args.photos:
        return _photos(names, Path(args.checkpoints))
    try:
        test = load_fashion_mnist(args.data_dir).test
    except DatasetError as e:
        print(f"note: {e}\n      measuring on the committed sample only", file=sys.stderr)
        test = None
    print(f"{'method':14s} {'recorded':>9s} {'measured':>9s} {'sample rec':>10s} {'sample now':>10s}")
    failed = 0
    for name in names:
        try:
            model, metrics = load_checkpoint(Path(args.checkpoints) / name)
        except CheckpointError as e:
            print(f"{name:14s} error: {e}")
            failed += 1
            continue
        measured = f"{accuracy(model, test):9.4f}" if test is not None else f"{'-':>9s}"
        print(f"{name:14s} {metrics['test_acc']:9.4f} {measured} {metrics.get('sample_acc', float('nan')):10.4f} "
              f"{sample_accuracy(model):10.4f}")
    return 1 if failed else 0


def _photos(names: list[str], root: Path) -> int:
    from .preprocess import KINDS
    print(f"{'method':14s} {'n':>4s} {'agree':>6s} {'acc orig':>8s} {'acc photo':>9s} {'relative':>8s}  "
          + " ".join(f"{k[:8]:>8s}" for k in KINDS))
    for name in names:
        try:
            model, _ = load_checkpoint(root / name)
        except CheckpointError as e:
            print(f"{name:14s} error: {e}")
            continue
        r = photo_check(model)
        print(f"{name:14s} {r['n']:4d} {r['agreement']:6.3f} {r['accuracy_original']:8.3f} "
              f"{r['accuracy_photo']:9.3f} {r['relative']:8.3f}  "
              + " ".join(f"{r['per_kind'][k]:8.3f}" for k in KINDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
