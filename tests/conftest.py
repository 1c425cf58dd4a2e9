import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data import FashionMNIST, Split, load_fashion_mnist, load_sample  # noqa: E402


@pytest.fixture(scope="session")
def fashion() -> FashionMNIST:
    """The real dataset (CI installs Debian's dataset-fashion-mnist); a missing dataset fails loudly."""
    return load_fashion_mnist()


@pytest.fixture(scope="session")
def tiny() -> FashionMNIST:
    """Real FashionMNIST images from the committed sample, split 600/200/200: fast wiring tests."""
    s = load_sample()
    perm = torch.randperm(len(s), generator=torch.Generator().manual_seed(0))
    part = lambda idx: Split(s.x[idx], s.y[idx])  # noqa: E731
    return FashionMNIST(part(perm[:600]), part(perm[600:800]), part(perm[800:]), "sample")
