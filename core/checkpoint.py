"""Checkpoints on disk: checkpoints/<method>/{config.json, model.safetensors, metrics.json}.

Written so that a complete, consistent set is on disk at every instant, even if the process is killed (SIGKILL,
power loss) at any point of a save:
  1. the folder is locked (flock on the folder itself: one writer at a time; the kernel drops the lock of a
     dead process) and left over business of an earlier, killed save is settled (recover below);
  2. the three new files are written to temp files beside their targets (.model.safetensors.XXXXXXXX.tmp)
     and fsynced;
  3. each current file is hard-linked as .<name>.prev: the previous set stays whole under those names;
  4. the temp files are renamed onto the targets (weights, config, metrics.json last), then the .prev links
     are removed. Steps 3-4 run with SIGINT and SIGTERM held back.
metrics.json carries the weights' SHA-256 and the config, so a live set mixed by a crash in step 4 is detected;
while .prev files exist, the previous set is "each file's .prev if it has one, else the file itself", which is
complete and consistent at every point of steps 3-4. load_checkpoint falls back to it (read-only, with a
warning in the log) when the live set does not load; the next save into the folder, or recover/clean_orphans at
start-up, restores it (or drops the .prev links when the live set is the complete new one) and removes temp
files no live writer holds.

Read as untrusted input: each file within a size limit (a folder, pipe or device in its place is refused
unread), the JSON files checked in full against core.schema, the weights against the config's names, shapes
and dtypes, finite, and against the hash. Any problem, of any kind, is a CheckpointError whose message names
the file relative to the checkpoints folder (never an absolute path). Never pickle, never torch.load.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from . import schema
from .models import DeepMLP, ModelConfig

ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
CONFIG, WEIGHTS, METRICS = "config.json", "model.safetensors", "metrics.json"
MAX_BYTES = 50 * 2**20  # model.safetensors: far above any real checkpoint (0.8 MB); JSON limits: core.schema
HEADER_BYTES = 2**20  # a safetensors file may exceed its tensors' bytes by this much (its JSON header)
FILES = (WEIGHTS, CONFIG, METRICS)  # the order they are renamed in: metrics.json, with the hash, last
# Temp files a killed writer leaves: _stage's (mkstemp: .config.json.k2j8x_0a.tmp), and those of safetensors'
# save_file (Rust's tempfile: .tmpA1b2C3), which wrote the weights before this module wrote their bytes itself.
TEMP = re.compile(r"^(\..+\.[a-z0-9_]{8}\.tmp|\.tmp[A-Za-z0-9]{6})$")
# Where the folder cannot be locked (a filesystem without flock), a temp file is taken for a dead save's only
# once it is this old: a live save renames its temp files within a second of writing them.
ORPHAN_AGE_S = 600
SAVED: list[Path] = []  # folders saved by this process, in order (what an interrupted CLI run reports)
log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt or inconsistent; the message names the file."""


def rebuild_command(method: str) -> str:
    return f"python -m core train --method {method}"


def _prev(path: Path) -> Path:
    return path.with_name(f".{path.name}.prev")


def _stage(path: Path, write) -> Path:
    """`write` a temp file beside `path`, on disk (fsync), and return it (removed again if writing fails or is
    interrupted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; checkpoints are meant to be shared
        os.fsync(fd)  # the bytes written through another descriptor are this inode's: a rename must not land first
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return Path(tmp)


def _fsync_dir(folder: Path) -> None:
    """Make the renames and links in `folder` durable (they are entries of the folder, not of the files)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


HELD, BUSY, NO_LOCKS = "held", "busy", "no locks"


@contextmanager
def _locked(folder: Path, wait: bool = True):
    """An exclusive flock on `folder` itself for the block. Yields HELD; BUSY when `wait` is False and another
    writer has it; NO_LOCKS on a filesystem without flock. Every writer here takes it before it creates a temp
    file, so whoever holds it knows that every temp file in the folder is a dead writer's; the kernel drops
    the lock of a process that dies, however it dies."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            state = HELD
        except BlockingIOError:
            state = BUSY
        except OSError:  # ENOLCK, EINVAL...: this filesystem has no flock
            state = NO_LOCKS
        yield state
    finally:
        os.close(fd)  # (releases the lock)


def _remove_orphans(folder: Path, lock: str) -> list[str]:
    """Delete the temp files of dead writers in `folder` (all of them when we hold its lock, else only those
    older than ORPHAN_AGE_S); returns their names."""
    removed = []
    for entry in os.scandir(folder):
        if not TEMP.match(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if lock == HELD or time.time() - entry.stat(follow_symlinks=False).st_mtime > ORPHAN_AGE_S:
                os.unlink(entry.path)
                removed.append(entry.name)
        except FileNotFoundError:
            pass
    return removed


def _loads(folder: Path, paths: dict[str, Path]) -> bool:
    try:
        _load_files(folder, paths)
        return True
    except CheckpointError:
        return False


def _recover(folder: Path, lock: str = HELD) -> list[str]:
    """Settle what a killed save left in `folder` (call with its lock held): .prev links are either dropped
    (the live set is complete and consistent: the save had got past its last rename) or renamed back over the
    live files (it had not); orphan temp files are removed. Returns what was done, in words."""
    done = []
    prevs = {name: _prev(folder / name) for name in FILES if _prev(folder / name).is_file()}
    if prevs:
        live = {name: folder / name for name in FILES}
        if _loads(folder, live):
            for prev in prevs.values():
                prev.unlink(missing_ok=True)
            done.append("dropped the previous checkpoint's links (the interrupted save had completed)")
        elif _loads(folder, {**live, **prevs}):
            for name, prev in prevs.items():
                if (folder / name).is_file() and os.path.samefile(prev, folder / name):
                    prev.unlink()  # not replaced yet; and rename() of a hard link onto itself does nothing
                else:
                    os.replace(prev, folder / name)
            _fsync_dir(folder)
            done.append("restored the previous checkpoint (a save was interrupted between its renames)")
        else:
            done.append("left .prev files alone: neither the live nor the previous set loads")
    orphans = _remove_orphans(folder, lock)
    if orphans:
        done.append(f"removed {len(orphans)} temp file(s) of a killed save ({', '.join(sorted(orphans))})")
    return done


def recover(folder: Path) -> list[str]:
    """Settle an interrupted save in one checkpoint folder now (save_checkpoint does it before every save):
    what was done, in words; nothing if nothing was left over or another writer holds the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    with _locked(folder, wait=False) as lock:
        return [] if lock == BUSY else _recover(folder, lock)


def clean_orphans(root: Path = ROOT) -> list[str]:
    """At start-up (the app, the CLI): recover every checkpoint folder under `root` and its seeds/ folder. A
    folder another process is saving into is skipped (its temp files are alive). Returns one line per folder
    where something was done ("relu: restored the previous checkpoint (...)"); a folder that cannot be
    written (a read-only checkout) is reported, not raised: load_checkpoint reads around what is left."""
    root = Path(root)
    lines = []
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    folders += [p / "seeds" for p in folders[1:] if (p / "seeds").is_dir()]
    for folder in folders:
        try:
            done = recover(folder)
        except OSError as e:
            done = [f"could not be cleaned ({_reason(e)})"]
        name = folder.relative_to(root).as_posix() if folder != root else "."
        lines += [f"{name}: {what}" for what in done]
    for line in lines:
        log.warning("checkpoints: %s", line)
    return lines


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


def _keep_previous(path: Path) -> None:
    """The current `path`, also under its .prev name (a hard link: no copy, the same bytes)."""
    prev = _prev(path)
    try:
        os.link(path, prev)
    except FileExistsError:  # (recover removed any; a racing non-locking writer could not)
        prev.unlink()
        os.link(path, prev)
    except OSError:  # a filesystem without hard links: a copy, itself written whole before it takes the name
        os.replace(_stage(prev, lambda tmp: shutil.copyfile(path, tmp)), prev)


def _commit(staged: list[tuple[Path, Path]]) -> None:
    """Rename every staged temp file onto its target, in order, as one uninterruptible step (SIGINT and SIGTERM
    are delivered after it). With several files, the previous ones are kept as .prev links until all are in
    place, so a process killed in between leaves a previous set that load_checkpoint and recover can use."""
    folder = staged[0][1].parent
    keep, complete = len(staged) > 1, False
    try:
        with _signals_deferred():
            if keep:
                for _, path in staged:
                    if path.is_file():
                        _keep_previous(path)
                _fsync_dir(folder)
            for tmp, path in staged:
                os.replace(tmp, path)
            _fsync_dir(folder)
            if keep:
                for _, path in staged:
                    _prev(path).unlink(missing_ok=True)
            SAVED.append(folder if keep else staged[0][1])
            complete = True
    except BaseException:
        if keep and not complete:  # an error (a full disk...) part way: put the previous set back, as the next
            # save would after a crash (a signal held back until the end is no reason: the save is complete)
            try:
                _recover(folder)
            except Exception:
                log.exception("could not restore the previous checkpoint in %s", folder)
        raise
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
    """One JSON file, replaced atomically (a seed file); the temp files of killed writers beside it go first."""
    path = Path(path)
    with _locked(path.parent) as lock:
        _remove_orphans(path.parent, lock)
        _commit([(_stage(path, _json_writer(obj, compact)), path)])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_checkpoint(model: DeepMLP, metrics: dict, folder: Path) -> Path:
    """Write the three files of a checkpoint into `folder` (created if needed); the module docstring says how
    a complete set stays on disk throughout."""
    folder = Path(folder)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with _locked(folder) as lock:
        for line in _recover(folder, lock):  # what a killed save left here
            log.warning("%s: %s", folder, line)
        staged = []  # (temp file, target): nothing of the previous checkpoint is replaced until all three exist
        try:
            # (the bytes, then our own write: save_file would put a temp file of its own in the folder)
            data = safetensors_save(state, metadata={"format": "pt"})
            weights = _stage(folder / WEIGHTS, lambda tmp: Path(tmp).write_bytes(data))
            staged.append((weights, folder / WEIGHTS))
            staged.append((_stage(folder / CONFIG, _json_writer(model.config.to_dict())), folder / CONFIG))
            metrics = {**metrics, "weights_sha256": sha256(weights)}
            staged.append((_stage(folder / METRICS, _json_writer(metrics, compact=True)), folder / METRICS))
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        _commit(staged)  # in FILES order: metrics.json last
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
    for key, (shape, dtype) in expected.items():  # in `expected`'s order: the parser's is not fixed
        tensor = state[key]
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


def _stamp(folder: Path) -> tuple:
    """What identifies the folder's checkpoint files as they are now (a writer replacing one changes it)."""
    def one(path):
        try:
            info = path.stat()
            return info.st_ino, info.st_mtime_ns, info.st_size
        except OSError:
            return None
    return tuple(one(p) for name in FILES for p in (folder / name, _prev(folder / name)))


def load_checkpoint(folder: Path, method: str | None = None) -> tuple[DeepMLP, dict]:
    """Read and check a checkpoint folder; returns the model (in eval mode) and its metrics. Every file is
    read within limits and checked in full; any problem at all is a CheckpointError naming the file relative to
    the checkpoints folder (relu/metrics.json: ...), never another exception. With `method`, the metrics must
    be that method's.

    When the live files do not load and a save was interrupted (or is under way in another process), the
    previous set (.prev links, see the module docstring) is loaded instead, with a warning in the log; the
    error raised is always the live files'. Nothing is written: recover() repairs."""
    folder = Path(folder)
    live = {name: folder / name for name in FILES}
    for _ in range(3):  # again only if a writer changed the files meanwhile
        before = _stamp(folder)
        try:
            return _load_files(folder, live, method)
        except CheckpointError as e:
            error = e
        prevs = {name: _prev(path) for name, path in live.items() if _prev(path).is_file()}
        if prevs:
            try:
                loaded = _load_files(folder, {**live, **prevs}, method)
                log.warning("%s: %s; loaded the previous checkpoint, which an interrupted save left as .prev "
                            "files (the next save, or core.checkpoint.recover, puts it back in place)",
                            folder, error)
                return loaded
            except CheckpointError:
                pass
        if _stamp(folder) == before:
            break
    raise error


def _load_files(folder: Path, paths: dict[str, Path], method: str | None = None) -> tuple[DeepMLP, dict]:
    """load_checkpoint's checks on one set of files (paths by their names in FILES); messages name each file by
    its name in the set."""
    label = lambda name: f"{folder.name}/{name}"  # noqa: E731
    current = label(CONFIG)  # the file being checked, for the message of an unexpected failure
    try:
        config = read_config(paths[CONFIG], label(CONFIG))
        if _weight_bytes(config) > MAX_BYTES:  # refused before a model that size is allocated
            raise CheckpointError(f"{label(CONFIG)}: a model of more than {MAX_BYTES:,} bytes, larger than any "
                                  "checkpoint may be")
        current = label(METRICS)
        metrics = read_metrics(paths[METRICS], label(METRICS))
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
        data = read_bytes(paths[WEIGHTS], label(WEIGHTS), _state_bytes(model) + HEADER_BYTES)
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
