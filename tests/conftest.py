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


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`python app.py` in a subprocess on a free loopback port; stopped at the end of the session."""

    def __init__(self, checkpoints: Path, log: Path):
        import os
        import subprocess
        import time
        import urllib.request
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(self.port),
               "VGL_CHECKPOINTS": str(checkpoints), "GRADIO_ANALYTICS_ENABLED": "False"}
        self.log = log
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                                     stdout=open(log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url, timeout=2)
                break
            except OSError:
                time.sleep(0.25)
        else:
            self.stop()
            raise RuntimeError(f"app.py did not serve within 120 s:\n{log.read_text()[-3000:]}")
        self.startup_seconds = time.perf_counter() - self.started

    def client(self):
        from gradio_client import Client
        return Client(self.url, verbose=False)

    def alive(self) -> bool:
        import urllib.request
        try:
            return self.proc.poll() is None and urllib.request.urlopen(self.url, timeout=5).status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except Exception:
            self.proc.kill()


BROKEN = "skip"  # the method whose checkpoint the app tests corrupt


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
    s = AppServer(app_checkpoints, tmp_path_factory.mktemp("logs") / "app.log")
    yield s
    s.stop()
