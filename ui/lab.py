"""The app's trained methods, loaded once: every registry method's checkpoint (or why it could not be loaded),
the results-table rows, the committed sample they are shown on, and a store of what is made from them, once."""
from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

from core import limits
from core.checkpoint import ROOT, CheckpointError, load_checkpoint, rebuild_command
from core.data import Split, load_sample
from core.methods import METHODS, Method
from core.models import DeepMLP
from core.results import results_rows


@dataclass(frozen=True)
class Entry:
    """A registry method with its checkpoint, or the reason it could not be loaded."""
    method: Method
    model: DeepMLP | None
    metrics: dict | None
    error: str | None = None


def load_entry(method: Method, root: Path = ROOT) -> Entry:
    try:
        model, metrics = load_checkpoint(root / method.name, method.name)
    except CheckpointError as e:
        return Entry(method, None, None, f"{e}. Rebuild it with `{rebuild_command(method.name)}`.")
    return Entry(method, model, metrics)


class Once:
    """Values made once per key, thread-safe: a second caller of a key being made waits for it instead of
    making it again (the start-up thread and the first visitor often want the same figure)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._slots: dict[Hashable, list] = {}  # key -> [lock, done, value]

    def get(self, key: Hashable, make: Callable[[], object]):
        with self._lock:
            slot = self._slots.setdefault(key, [threading.Lock(), False, None])
        with slot[0]:
            if not slot[1]:
                slot[2], slot[1] = make(), True
        return slot[2]

    def put(self, key: Hashable, value) -> None:
        """`value` for `key` unless it was made already (a value kept on disk, ui.figure_cache)."""
        self.get(key, lambda: value)

    def made(self) -> dict:
        """Every value made so far, by key."""
        with self._lock:
            slots = list(self._slots.items())
        return {key: slot[2] for key, slot in slots if slot[1]}


class Lab:
    """Every method the app shows. A broken checkpoint is an entry with its error, never a failed start."""

    def __init__(self, root: Path = ROOT, sample: Split | None = None):
        self.root = Path(root)
        self.entries = {name: load_entry(m, self.root) for name, m in METHODS.items()}
        self.sample = sample if sample is not None else load_sample()
        self.rows = results_rows(self.root, strict=False)
        self.figure_dir = Path(tempfile.mkdtemp(prefix="vgl-figures-"))  # the PNG files the page is sent
        self._made = Once()

    def entry(self, name: str, label: str = "method") -> Entry:
        """The method `name`'s entry; a ValueError naming the control (`label`) and every choice for any other
        value (a picker's value reaches the app unchecked: widgets.RawDropdown)."""
        if not isinstance(name, str) or name not in self.entries:
            raise ValueError(f"{label}: {limits.shown(name)} is not a method here; choose one of: "
                             f"{', '.join(self.entries)}.")
        return self.entries[name]

    def row(self, name: str) -> dict | None:
        """The method's row of the results table (every committed seed), if it has one."""
        self.entry(name)
        return next((r for r in self.rows if r["method"] == name), None)

    def choices(self) -> list[tuple[str, str]]:
        """(label, name) pairs for the method pickers; a broken checkpoint is marked."""
        return [(e.method.title + ("" if e.error is None else " (unavailable)"), name)
                for name, e in self.entries.items()]

    def problems(self) -> list[str]:
        return [f"`{name}`: {e.error}" for name, e in self.entries.items() if e.error]

    def once(self, key: Hashable, make: Callable[[], object]):
        """make(), the first time `key` is asked for; its value from then on (figures and data are pure
        functions of the committed files)."""
        return self._made.get(key, make)

    def keep(self, key: Hashable, value) -> None:
        """`value` as what once(key) gives, unless that was made already."""
        self._made.put(key, value)

    def made(self) -> dict:
        """What once() has made so far, by key."""
        return self._made.made()

    def png_file(self, name: str, data: bytes) -> str:
        """`data` written as figure_dir/<name>.png, whole: a concurrent reader never sees half a file."""
        path = self.figure_dir / f"{name}.png"
        tmp = path.with_name(f"{name}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return str(path)
