"""Checkpoints on disk: checkpoints/<method>/{config.json, model.safetensors, metrics.json}.

Written atomically: all three files are first written to temp files, then renamed into place with SIGINT and
SIGTERM held back, so an interrupted save leaves the previous checkpoint as it was. metrics.json, renamed last,
carries the weights' SHA-256, so a set mixed by a crash between renames is still detected.

Read as untrusted input: each file within a size limit (a folder, pipe or device in its place is refused
unread), the JSON files checked in full against core.schema, the weights against the config's names, shapes
and dtypes, finite, and against the hash. Any problem, of any kind, is a CheckpointError whose message names
the file relative to the checkpoints folder (never an absolute path). Never pickle, never torch.load.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save_file

from . import schema
from .models import DeepMLP, ModelConfig

ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
CONFIG, WEIGHTS, METRICS = "config.json", "model.safetensors", "metrics.json"
MAX_BYTES = 50 * 2**20  # model.safetensors: far above any real checkpoint (0.8 MB); JSON limits: core.schema
HEADER_BYTES = 2**20  # a safetensors file may exceed its tensors' bytes by this much (its JSON header)
log = logging.getLogger(__name__)


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


def read_bytes(path: Path, label: str, limit: int) -> bytes:
    """The whole of a regular file (a symlink to one is followed), at most `limit` bytes, else CheckpointError.
    Opened without blocking and checked before reading: a folder, a pipe or a device is refused, never read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CheckpointError(f"{label}: missing") from None
    except OSError as e:
        raise CheckpointError(f"{label}: cannot be opened ({_reason(e)})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise CheckpointError(f"{label}: is a folder, expected a file")
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"{label}: is not a regular file")
        if info.st_size > limit:
            raise CheckpointError(f"{label}: {info.st_size:,} bytes, more than the {limit:,} it may have")
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, min(2**20, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise CheckpointError(f"{label}: cannot be read ({_reason(e)})") from None
    finally:
        os.close(fd)
    if size > limit:  # it grew after fstat
        raise CheckpointError(f"{label}: more than the {limit:,} bytes it may have")
    return b"".join(chunks)


def _reason(e: OSError) -> str:
    """An OSError in words, without the path it carries."""
    return (e.strerror or "input/output error").lower()


def _label(path: Path) -> str:
    """A file named relative to the checkpoints folder (the parent of its checkpoint folder): relu/config.json."""
    return f"{path.parent.name}/{path.name}"


def read_config(path: Path, label: str | None = None) -> ModelConfig:
    """config.json as a ModelConfig: unknown keys, wrong types and absurd values are refused before anything
    is built from them."""
    label = label or _label(path)
    try:
        return schema.parse_config(read_bytes(path, label, schema.MAX_CONFIG_BYTES))
    except schema.Invalid as e:
        raise CheckpointError(f"{label}: {e}") from None


def read_metrics(path: Path, label: str | None = None, checkpoint: bool = True) -> dict:
    """A checkpoint's metrics.json (checkpoint=True: with the weights' SHA-256) or a seed file, checked in full
    against core.schema, as the dict json.loads would make of it."""
    label = label or _label(path)
    try:
        return schema.parse_run(read_bytes(path, label, schema.MAX_METRICS_BYTES), checkpoint)
    except schema.Invalid as e:
        raise CheckpointError(f"{label}: {e}") from None


def _weight_bytes(config: ModelConfig) -> int:
    """A lower bound of a model's float32 bytes (its Linear weights), known before anything is allocated."""
    c = config
    return 4 * (c.in_features * c.width + (c.depth - 1) * c.width**2 + c.width * c.num_classes)


def _spec(model: DeepMLP) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


def _state_bytes(model: DeepMLP) -> int:
    return sum(v.numel() * v.element_size() for v in model.state_dict().values())


def read_weights(data: bytes, label: str, expected: dict) -> dict[str, torch.Tensor]:
    """Tensors from safetensors bytes, required to be exactly `expected`'s names, shapes and dtypes, all finite."""
    try:
        state = safetensors_load(data)
    except Exception as e:  # a damaged file may upset the parser in any way; its messages name no path
        raise CheckpointError(f"{label}: not a readable safetensors file ({_parser_reason(e)})") from None
    if set(state) != set(expected):
        extra, missing = sorted(set(state) - set(expected)), sorted(set(expected) - set(state))
        raise CheckpointError(f"{label}: tensor names do not match the config (unexpected "
                              f"[{', '.join(schema.shown(n) for n in extra[:3])}], missing {missing[:3]})")
    for key, tensor in state.items():
        shape, dtype = expected[key]
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise CheckpointError(f"{label}: {key} is {tuple(tensor.shape)} {tensor.dtype}, expected {shape} {dtype}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{label}: {key} holds NaN or inf")
    return state


def _parser_reason(e: Exception) -> str:
    """The safetensors parser's complaint in a few words ("header too large"), short and inert: it may quote
    the file's header."""
    text = (str(e).splitlines() or [""])[0]
    for prefix in ("Error while deserializing header: ", "Error while deserializing: "):
        text = text.removeprefix(prefix)
    text = text or "unreadable"
    return schema.shown(text[:80])[1:-1] + ("..." if len(text) > 80 else "")


def load_checkpoint(folder: Path, method: str | None = None) -> tuple[DeepMLP, dict]:
    """Read and check a checkpoint folder; returns the model (in eval mode) and its metrics. Every file is
    read within limits and checked in full; any problem at all is a CheckpointError naming the file relative to
    the checkpoints folder (relu/metrics.json: ...), never another exception. With `method`, the metrics must
    be that method's."""
    folder = Path(folder)
    label = lambda name: f"{folder.name}/{name}"  # noqa: E731
    current = label(CONFIG)  # the file being checked, for the message of an unexpected failure
    try:
        config = read_config(folder / CONFIG, label(CONFIG))
        if _weight_bytes(config) > MAX_BYTES:  # refused before a model that size is allocated
            raise CheckpointError(f"{label(CONFIG)}: a model of more than {MAX_BYTES:,} bytes, larger than any "
                                  "checkpoint may be")
        current = label(METRICS)
        metrics = read_metrics(folder / METRICS, label(METRICS))
        if method is not None and metrics["method"] != method:
            raise CheckpointError(f"{label(METRICS)}: method: expected {json.dumps(method)}, "
                                  f"got {schema.shown(metrics['method'])}")
        recorded, expected = schema.model_keys(metrics["config"]), config.to_dict()
        for key in expected:
            if recorded[key] != expected[key]:
                raise CheckpointError(f"{label(METRICS)}: config.{key} is {schema.shown(recorded[key])}, but "
                                      f"{label(CONFIG)} says {schema.shown(expected[key])}")
        current = label(WEIGHTS)
        model = DeepMLP(config)
        data = read_bytes(folder / WEIGHTS, label(WEIGHTS), _state_bytes(model) + HEADER_BYTES)
        state = read_weights(data, label(WEIGHTS), _spec(model))
        if hashlib.sha256(data).hexdigest() != metrics["weights_sha256"]:
            raise CheckpointError(f"{label(WEIGHTS)}: does not match the hash in {label(METRICS)} "
                                  "(a partial or mixed write?)")
        model.load_state_dict(state, strict=True)
        return model.eval(), metrics
    except CheckpointError:
        raise
    except Exception:  # whatever else a file's content may cause: still this method's problem, named by file
        log.exception("unexpected failure while loading %s", folder)
        raise CheckpointError(f"{current}: could not be read (an unexpected problem; the server log has the "
                              "details)") from None
