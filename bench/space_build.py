"""Build the Space as the Hugging Face Hub builds it, then call the app it serves.

    python -m bench.space_build [--keep DIR]

The Hub builds a Gradio-SDK Space with its own pip command on the Python the README's front matter names. This
reads `sdk_version` and `python_version` from that front matter, finds that Python among this machine's (pyenv's
versions, then python3.X on PATH), makes a fresh virtual environment with it, runs the builder's command
(BUILDER below, with the front matter's sdk_version), `pip check`, then launches `python app.py` from that
environment and calls /compare, /classify and one short Playground run through gradio_client. Prints each step's
outcome and the size of what the build installed; exits 1 at the first failure. tests/test_space_build.py runs it.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, AppServer

# The Hub's build step for a Gradio-SDK Space (as public Space build logs show it), {sdk_version} from the README.
BUILDER = ('pip install -r requirements.txt "gradio[oauth,mcp]=={sdk_version}" "uvicorn>=0.14.0" '
           '"websockets>=10.4" spaces')
SHORT_RUN = {"depth": 2, "width": 16, "activation": "relu", "init_std": 0.05, "norm": "none", "skips": False,
             "grad_norm": False, "optimizer": "adam", "lr": 0.005, "epochs": 2, "train_size": 1000,
             "batch_size": 64}


class BuildFailed(RuntimeError):
    """A step of the build or of the calls failed; the message says which and shows its output's tail."""


def front_matter(readme: Path = ROOT / "README.md") -> dict:
    from huggingface_hub.repocard import metadata_load
    meta = metadata_load(readme) or {}
    for key in ("sdk", "sdk_version", "python_version", "app_file"):
        if key not in meta:
            raise BuildFailed(f"{readme.name}: the front matter has no {key}")
    return meta


def builder_command(meta: dict) -> list[str]:
    return shlex.split(BUILDER.format(sdk_version=meta["sdk_version"]))


def find_python(version: str) -> Path:
    """The newest interpreter on this machine whose version starts with `version` ("3.12" or "3.12.1")."""
    wanted = [int(p) for p in str(version).split(".")]
    found = []
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    for folder in sorted(Path(root, "versions").glob("*")):
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", folder.name)
        exe = folder / "bin" / "python"
        if m and exe.is_file() and [int(g) for g in m.groups()][:len(wanted)] == wanted:
            found.append(([int(g) for g in m.groups()], exe))
    on_path = shutil.which(f"python{wanted[0]}.{wanted[1]}") if len(wanted) >= 2 else None
    if not found and on_path:
        return Path(on_path)
    if not found:
        raise BuildFailed(f"no Python {version} on this machine (looked in {root}/versions and PATH): the "
                          f"front matter's python_version is what the Hub builds with; install it (pyenv install "
                          f"{version}) to check the build")
    return max(found)[1]


def run(cmd: list[str], what: str, cwd: Path = ROOT, timeout: float = 1800) -> str:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(line for line in out.splitlines() if "is ignored" not in line)[-4000:]
        raise BuildFailed(f"{what} failed (exit {proc.returncode}):\n{tail}")
    print(f"{what}: ok in {time.perf_counter() - t:.0f} s", flush=True)
    return out


def folder_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def build(venv: Path, meta: dict) -> Path:
    """A fresh virtual environment built as the Hub builds the Space; returns its python."""
    python = find_python(meta["python_version"])
    run([str(python), "-m", "venv", str(venv)], f"venv with {python} ({meta['python_version']})")
    bin_dir = venv / "bin"
    cmd = builder_command(meta)
    print("builder:", shlex.join(cmd), flush=True)
    out = run([str(bin_dir / cmd[0]), *cmd[1:]], "builder's pip install")
    installed = next((line for line in out.splitlines() if line.startswith("Successfully installed")), "")
    print(installed[:2000])
    print(run([str(bin_dir / "pip"), "check"], "pip check").strip())
    print(f"installed: {folder_mib(venv):,.0f} MiB in the environment", flush=True)
    return bin_dir / "python"


def call_app(python: Path) -> dict:
    """Launch app.py with `python` and make the three calls; returns what they answered, in brief."""
    from gradio_client import handle_file
    t = time.perf_counter()
    with AppServer(python=python, timeout=300) as server:
        print(f"app.py serving after {server.startup_seconds:.1f} s", flush=True)
        client = server.client()
        card_l, card_r, *_ = client.predict("baseline", "batchnorm", api_name="/compare")
        if not (card_l.startswith("### Baseline") and "Test accuracy" in card_r):
            raise BuildFailed(f"/compare answered unexpected cards: {card_l[:80]!r} / {card_r[:80]!r}")
        left, right = client.predict(handle_file(str(ROOT / "assets" / "examples" / "7_sneaker.png")),
                                     "baseline", "best", api_name="/classify")
        if right["label"] != "Sneaker":
            raise BuildFailed(f"/classify: best called the example sneaker {right['label']!r}")
        status = client.predict(*SHORT_RUN.values(), "baseline", api_name="/playground")[1]
        if "✔ Done" not in status:
            raise BuildFailed(f"/playground did not finish its short run: {status[:300]!r}")
        answers = {"compare": card_r.splitlines()[0], "classify": {"baseline": left["label"], "best": right["label"]},
                   "playground": status.split("\n\n")[1] if "\n\n" in status else status[:200]}
    print(f"calls: ok in {time.perf_counter() - t:.0f} s (start included)", flush=True)
    for k, v in answers.items():
        print(f"  /{k}: {v}")
    return answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the environment in DIR and keep it (default: a temp dir)")
    args = parser.parse_args(argv)
    meta = front_matter()
    print(f"front matter: sdk {meta['sdk']} {meta['sdk_version']}, python {meta['python_version']}", flush=True)
    tmp = None if args.keep else tempfile.mkdtemp(prefix="space-build-")
    venv = args.keep or Path(tmp) / "venv"
    try:
        call_app(build(venv, meta))
    except BuildFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
