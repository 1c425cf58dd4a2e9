"""Checkpoints on disk: checkpoints/<method>/{config.json, model.safetensors, metrics.json}.

Written atomically: all three files are first written to temp files, then renamed into place with SIGINT and
SIGTERM held back, so an interrupted save leaves the previous checkpoint as it was. metrics.json, renamed last,
carries the weights' SHA-256, so a set mixed by a crash between renames is still detected. Read with strict
checks; never pickle, never torch.load.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .models import DeepMLP, ModelConfig

ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
CONFIG, WEIGHTS, METRICS = "config.json", "model.safetensors", "metrics.json"
METRICS_KEYS = ("method", "seed", "config", "epochs", "train_seconds", "test_acc", "test_loss", "history")
MAX_BYTES = 50 * 2**20  # far above any real checkpoint; refuse before reading a giant file


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt or inconsistent; the message names the file."""


def rebuild_command(method: str) -> str:
    return f"python -m core train --method {method}"


def _stage(path: Path, write) -> Path:
    """`write` a temp file beside `path` and return it (removed again if writing fails or is interrupted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; checkpoints are meant to be shared
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


@contextmanager
def _signals_deferred():
    """SIGINT and SIGTERM that arrive inside the block are delivered when it ends (main thread only: Python
    runs signal handlers there, and only there can they be installed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {s: signal.signal(s, lambda number, frame: caught.append(number))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for number in caught:
            signal.raise_signal(number)


def _commit(staged: list[tuple[Path, Path]]) -> None:
    """Rename every staged temp file onto its target, in order, as one uninterruptible step."""
    try:
        with _signals_deferred():
            for tmp, path in staged:
                os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def _json_writer(obj, compact: bool = False):
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, allow_nan=False, **({"separators": (",", ":")} if compact else {"indent": 1}))
            f.write("\n")
    return write


def write_json(path: Path, obj, compact: bool = False) -> None:
    _commit([(_stage(path, _json_writer(obj, compact)), path)])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_checkpoint(model: DeepMLP, metrics: dict, folder: Path) -> Path:
    """Write the three files of a checkpoint into `folder` (created if needed)."""
    folder = Path(folder)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    staged = []  # (temp file, target): nothing of the previous checkpoint is replaced until all three exist
    try:
        weights = _stage(folder / WEIGHTS, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
        staged.append((weights, folder / WEIGHTS))
        staged.append((_stage(folder / CONFIG, _json_writer(model.config.to_dict())), folder / CONFIG))
        metrics = {**metrics, "weights_sha256": sha256(weights)}
        staged.append((_stage(folder / METRICS, _json_writer(metrics, compact=True)), folder / METRICS))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    _commit(staged)  # metrics.json last
    return folder


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    if path.stat().st_size > MAX_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size} bytes, too large to be a checkpoint file")
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_config(path: Path) -> ModelConfig:
    """config.json as a ModelConfig: unknown keys, wrong types and absurd values are refused before anything
    is built from them."""
    try:
        return ModelConfig.from_dict(_read_json(path))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: {e}") from None


def load_weights(path: Path, model: DeepMLP) -> None:
    """Load safetensors into `model`, requiring exactly its keys, shapes and dtypes."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    if path.stat().st_size > MAX_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size} bytes, too large for this model")
    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    expected = model.state_dict()
    if set(state) != set(expected):
        extra, missing = sorted(set(state) - set(expected)), sorted(set(expected) - set(state))
        raise CheckpointError(f"{path}: tensor names do not match the config (unexpected {extra[:3]}, "
                              f"missing {missing[:3]})")
    for key, tensor in state.items():
        want = expected[key]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise CheckpointError(f"{path}: {key} is {tuple(tensor.shape)} {tensor.dtype}, "
                                  f"expected {tuple(want.shape)} {want.dtype}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: {key} holds NaN or inf")
    model.load_state_dict(state, strict=True)


def load_checkpoint(folder: Path) -> tuple[DeepMLP, dict]:
    """Read and check a checkpoint folder; returns the model (in eval mode) and its metrics."""
    folder = Path(folder)
    config = read_config(folder / CONFIG)
    metrics = _read_json(folder / METRICS)
    missing = [k for k in METRICS_KEYS if k not in metrics]
    if missing:
        raise CheckpointError(f"{folder / METRICS}: missing keys {missing}")
    expected = config.to_dict()
    recorded = {k: v for k, v in metrics["config"].items() if k in expected}
    if recorded != {k: expected[k] for k in recorded} or not recorded:
        raise CheckpointError(f"{folder / METRICS}: its config does not match {folder / CONFIG}")
    model = DeepMLP(config)
    load_weights(folder / WEIGHTS, model)
    if metrics.get("weights_sha256") and sha256(folder / WEIGHTS) != metrics["weights_sha256"]:
        raise CheckpointError(f"{folder / WEIGHTS}: does not match the hash in {METRICS} "
                              "(a partial or mixed write?)")
    return model.eval(), metrics
