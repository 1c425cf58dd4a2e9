"""Fixtures only: helpers are in tests/helpers.py, the app launcher in bench/common.py."""
from pathlib import Path

import pytest
import torch

from bench.common import AppServer
from core.data import FashionMNIST, Split, load_fashion_mnist, load_sample
from tests.helpers import BROKEN, ROOT


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


@pytest.fixture(scope="session")
def app_checkpoints(tmp_path_factory) -> Path:
    """A copy of the committed checkpoints with one corrupted: the app must serve the rest."""
    import shutil
    root = tmp_path_factory.mktemp("app_checkpoints")
    shutil.copytree(ROOT / "checkpoints", root, dirs_exist_ok=True)
    weights = root / BROKEN / "model.safetensors"
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(b"\x00" * 100)
    return root


@pytest.fixture(scope="session")
def server(app_checkpoints, tmp_path_factory):
    """`python app.py` on app_checkpoints for the whole session; tests using it are marked `app`."""
    s = AppServer(app_checkpoints, tmp_path_factory.mktemp("logs") / "app.log")
    yield s
    s.stop()
