"""No single file can take the app down: real committed checkpoint files, mutated at random (truncated,
bit-flipped, values swapped at random JSON paths, nested deep, numbers huge or not finite, lists of the wrong
length, emptied, or replaced by folders, symlinks and pipes), go through the loading code the app runs at
start (ui.lab.load_entry, core.results.results_rows, the method cards). It never raises; the mutated method
is either loaded with the same weights and exactly what its files say (a change the schema accepts, e.g. a
number nudged within its range, is not damage), or unavailable with a message naming the file relative to the
checkpoints folder, without an absolute path or an exception name; a damaged seed file leaves the method
loaded and is left out of its results row with a note; every other method is untouched.

300 examples, derandomized (the same ones on every run), about 50 s on a busy 2-core machine (marked slow; the
quick set runs 20): each loads the mutated method and one other (not all 16), the way Lab does."""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import urllib.request
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from core.methods import METHODS
from core.results import results_rows, summarize
from tests.helpers import ROOT
from ui import pages
from ui.lab import load_entry

CHECKPOINTS = ROOT / "checkpoints"
# each mutated in turn: a plain 7-layer net, a 3-layer one, BatchNorm buffers, skips, 7-stage layer-wise (1 MB)
MUTATED = ("relu", "baseline_3", "batchnorm", "skip", "layerwise")
OTHER = "baseline"  # loaded beside the mutated method each time: it must come out untouched
FILES = ("config.json", "model.safetensors", "metrics.json", "seeds/43.json")
SENTINEL = "@@fuzz@@"
# raw JSON put in place of a value: other types, numbers the parser or float() cannot hold, deep nesting, sizes
RAW_VALUES = [
    '"x"', "null", "true", "false", "0", "-1", "1.5", "[]", "{}", '""', "1e999", "-1e999", "NaN", "Infinity",
    "-Infinity", "1e-400", "1" + "0" * 5000, "-1" + "0" * 400, "9" * 4300, "[" * 100_000 + "]" * 100_000,
    "[" * 300 + "]" * 300, '{"a":' * 150 + "1" + "}" * 150, '"' + "a" * 1_000_000 + '"', "[" + "0," * 100_000 + "0]",
    '"\\ud800"', '"\u00e9\u2028\U0001f600"', '"hidden99"', '"output"', "7", "128", "1000000000",
]
EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception|Warning)\b|Traceback")


class Chooser:
    """The random choices a mutation makes, drawn through Hypothesis (so failures shrink and replay)."""

    def __init__(self, data):
        self.data = data

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def pick(self, seq):
        return seq[self.int(0, len(seq) - 1)]


# --- mutations ----------------------------------------------------------------------------------------------

def _mutate_tree(obj, c: Chooser) -> tuple[object, str | None]:
    """obj with one change at a random path: a value swapped, a key dropped or added, a list resized or
    reordered. Returns (new obj, raw JSON text to put where the sentinel string is, or None)."""
    path = []
    node = obj
    while isinstance(node, (dict, list)) and node and c.int(0, 5):  # mostly go deeper
        key = c.pick(sorted(node)) if isinstance(node, dict) else c.int(0, len(node) - 1)
        path.append(key)
        node = node[key]
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    action = c.int(0, 9)
    if not path:  # the root itself
        return (SENTINEL, c.pick(RAW_VALUES)) if action < 3 else (obj, None)
    key = path[-1]
    if action <= 4:
        parent[key] = SENTINEL
        return obj, c.pick(RAW_VALUES)
    if action == 5:
        del parent[key]
    elif action == 6 and isinstance(node, dict):
        node["unexpected_" + str(c.int(0, 9))] = 1
    elif action == 6 and isinstance(node, list) and node:
        node.insert(c.int(0, len(node)), node[c.int(0, len(node) - 1)])  # one item too many
    elif action == 7 and isinstance(node, list) and node:
        del node[c.int(0, len(node) - 1)]  # one item too few
    elif action == 7 and isinstance(node, list):
        node.reverse()
    elif action == 8 and isinstance(node, (int, float)) and not isinstance(node, bool):
        parent[key] = c.pick([-node, node + 1, node * 1e300, node - 1e-9, 2 * node])
    elif action == 9 and isinstance(parent, list) and len(parent) > 1:
        parent.reverse()  # rows or layers out of order
    else:
        parent[key] = c.pick([None, "x", [], {}, 0, -1])
    return obj, None


def _json_text(obj, raw: str | None) -> str:
    text = json.dumps(obj, separators=(",", ":"))
    return text if raw is None else text.replace(json.dumps(SENTINEL), raw, 1)


def _mutate_json(data: bytes, c: Chooser) -> bytes:
    obj, raw = _mutate_tree(json.loads(data), c)
    return _json_text(obj, raw).encode()


def _mutate_safetensors_header(data: bytes, c: Chooser) -> bytes:
    """A change to the JSON header (dtypes, shapes, offsets, names), the tensor bytes kept; or a lying length."""
    (n,) = struct.unpack("<Q", data[:8])
    if c.int(0, 4) == 0:
        return struct.pack("<Q", c.pick([0, 1, n - 1, n + 1, len(data), 2**63, 2**64 - 1])) + data[8:]
    header = _json_text(*_mutate_tree(json.loads(data[8:8 + n]), c)).encode()
    return struct.pack("<Q", len(header)) + header + data[8 + n:]


def mutate(path: Path, other_file: Path, c: Chooser) -> str:
    """Damage the file at `path` in one way chosen by `c`; returns what was done (for the failure report)."""
    data = path.read_bytes()
    kind = c.pick(["truncate", "flip", "tree", "tree", "tree", "empty", "folder", "symlink", "fifo"])
    if kind == "truncate":
        path.write_bytes(data[:c.int(0, len(data) - 1)])
    elif kind == "flip":
        flipped = bytearray(data)
        for _ in range(c.int(1, 8)):
            flipped[c.int(0, len(data) - 1)] ^= c.int(1, 255)
        path.write_bytes(bytes(flipped))
    elif kind == "tree":
        new = _mutate_safetensors_header(data, c) if path.suffix == ".safetensors" else _mutate_json(data, c)
        path.write_bytes(new)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.unlink()
        path.mkdir()
        (path / "inside.json").write_bytes(data)
    elif kind == "symlink":
        target = c.pick([path.name + ".nowhere", path.name, str(other_file), "/dev/zero", str(path.parent)])
        path.unlink()
        path.symlink_to(target)
        kind += f" -> {Path(target).name}"
    else:
        path.unlink()
        os.mkfifo(path)
    return kind


# --- what the app makes of a checkpoints folder -----------------------------------------------------------

def _state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def load(root: Path, names) -> tuple[dict, dict]:
    """The app's start-up, for `names` only: the entries (load_entry, as Lab does) and the results rows."""
    entries = {name: load_entry(METHODS[name], root) for name in names}
    rows = {r["method"]: r for r in results_rows(root, strict=False) if r["method"] in names}
    for entry in entries.values():
        pages.card(entry)  # the card is built from what was loaded
    return entries, rows


def _same_model(entry, good) -> bool:
    state, want = entry.model.state_dict(), good.model.state_dict()
    return state.keys() == want.keys() and all(torch.equal(v, want[k]) for k, v in state.items())


def _same_entry(entry, good) -> bool:
    return entry.error is None and entry.metrics == good.metrics and _same_model(entry, good)


def _content(path: Path):
    """What a test, independently of the app, reads in a JSON file: None if it is no regular file or not JSON."""
    try:
        if not path.is_file() or path.stat().st_size > 50 * 2**20:
            return None
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError, OSError):
        return None


def _sane(obj) -> bool:
    """Only finite floats and ints of modest size, all the way down."""
    if isinstance(obj, dict):
        return all(_sane(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_sane(v) for v in obj)
    if isinstance(obj, float):
        return obj == obj and abs(obj) != float("inf")
    return not isinstance(obj, int) or abs(obj) < 2**63


def _usable(run, name: str, seed: int | None = None) -> bool:
    """What the results row takes from a run is there and makes sense."""
    return (isinstance(run, dict) and _sane(run) and run.get("method") == name
            and isinstance(run.get("test_acc"), (int, float)) and 0 <= run["test_acc"] <= 1
            and isinstance(run.get("seed"), int) and (seed is None or run["seed"] == seed))


def _clean_message(message: str, root: Path) -> bool:
    return str(root) not in message and "/tmp" not in message and not EXCEPTION_NAME.search(message)


def _without_notes(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "left_out"}


def check(root: Path, name: str, file: str, pristine: dict) -> str:
    """The invariant for one mutated file of `name` in `root` (beside an untouched OTHER); returns the outcome:
    "unavailable", "left out" (a seed file) or "loaded" (the same weights and exactly what the files say)."""
    entries, rows = load(root, (name, OTHER))  # must not raise, whatever the file holds
    good_entries, good_rows = pristine["entries"], pristine["rows"]
    label = f"{name}/{file}"

    # the other method: exactly as before
    assert _same_entry(entries[OTHER], good_entries[OTHER]), f"{OTHER} changed: {entries[OTHER].error}"
    assert rows.get(OTHER) == good_rows[OTHER], f"{OTHER}'s results row changed"

    # the mutated method: loaded with the same weights and exactly what its files say (still sane), or
    # unavailable with a message naming the file relative to the checkpoints folder
    entry = entries[name]
    if file.startswith("seeds/"):
        assert _same_entry(entry, good_entries[name]), f"a damaged seed file made {name} unavailable: {entry.error}"
    elif entry.error is not None:
        assert entry.model is None and entry.metrics is None
        assert label in entry.error, f"the message does not name {label}: {entry.error}"
        assert _clean_message(entry.error, root), f"the message shows a path or an exception: {entry.error}"
    else:
        assert _same_model(entry, good_entries[name]), f"{label} was damaged, yet {name} loaded other weights"
        assert entry.metrics == _content(root / name / "metrics.json") and _sane(entry.metrics), \
            f"{label} was damaged, yet {name} loaded metrics that are not what its metrics.json says"

    # its results row: what summarize makes of exactly the runs it did not leave out, each left out run named
    # in a note; no row only when its metrics.json is what is damaged (the method's card says why)
    row = rows.get(name)
    if row is None:
        assert file == "metrics.json" and entry.error is not None, f"{name}'s results row disappeared"
        return "unavailable"
    notes = row.get("left_out") or []
    assert all(n.startswith(f"{name}/seeds/") and _clean_message(n, root) for n in notes), notes
    used = [_content(root / name / "metrics.json")]
    assert _usable(used[0], name), f"{name}'s results row was made from a damaged metrics.json"
    seeds = root / name / "seeds"
    for seed_file in sorted(seeds.glob("*.json")) if seeds.is_dir() else []:
        if not any(n.startswith(f"{name}/seeds/{seed_file.name}:") for n in notes):
            run = _content(seed_file)
            assert _usable(run, name, int(seed_file.stem)), \
                f"{name}/seeds/{seed_file.name} is damaged, yet it was used or left out silently"
            used.append(run)
    if file != "metrics.json":
        assert all(label in n for n in notes), f"an intact file was left out: {notes}"
    assert _without_notes(row) == _without_notes(summarize(name, used)), \
        f"{name}'s results row is not made of the runs it lists (damaged: {label})"
    return "unavailable" if entry.error else "left out" if notes else "loaded"


# --- the property ------------------------------------------------------------------------------------------

class Pristine(dict):
    """What the app makes of the undamaged copy: "entries" and "rows" (short in a failure report)."""

    def __repr__(self) -> str:
        return "<the undamaged checkpoints, loaded>"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, Pristine]:
    """A copy of the methods the test uses, and what the app makes of them undamaged."""
    source = tmp_path_factory.mktemp("pristine")
    for name in (*MUTATED, OTHER):
        shutil.copytree(CHECKPOINTS / name, source / name, ignore=shutil.ignore_patterns(".*"))  # (a run's temp files)
    entries, rows = load(source, (*MUTATED, OTHER))
    assert all(e.error is None for e in entries.values()), [e.error for e in entries.values()]
    return source, Pristine(entries=entries, rows=rows)


def fuzzed(examples: int):
    """The test below with `examples` derandomized examples (the same ones on every run)."""
    # deadline (ms): a hang-catcher
    return settings(max_examples=examples, deadline=10_000, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


@pytest.mark.slow
@fuzzed(300)
@given(data=st.data())
def test_no_single_file_takes_the_app_down(pristine, tmp_path_factory, data):
    damage_one_file(pristine, tmp_path_factory, data)


@fuzzed(20)
@given(data=st.data())
def test_no_single_file_takes_the_app_down_quick(pristine, tmp_path_factory, data):
    """The same on 20 examples, for the quick set (-m "not slow"): a smoke test, the 300 above are the test."""
    damage_one_file(pristine, tmp_path_factory, data)


def damage_one_file(pristine, tmp_path_factory, data) -> None:
    """One method's file damaged at random: the app's start-up still stands (see the module docstring)."""
    source, reference = pristine
    c = Chooser(data)
    name, file = c.pick(MUTATED), c.pick(FILES)
    root = tmp_path_factory.mktemp("fuzz", numbered=True)
    for method in (name, OTHER):
        shutil.copytree(source / method, root / method)
    try:
        what = mutate(root / name / file, root / OTHER / file, c)
        note(f"mutated {name}/{file}: {what}")
        event(f"{file}: {what.split(' ')[0]} -> {check(root, name, file, reference)}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- the launched app, on a folder with damaged files ----------------------------------------------------

DEEP = '{"method":' + "[" * 100_000 + "]" * 100_000 + "}"  # parses to a RecursionError in Python's json


@pytest.mark.app
def test_the_app_serves_beside_a_damaged_checkpoint(tmp_path):
    from bench.common import AppServer
    root = tmp_path / "checkpoints"
    shutil.copytree(CHECKPOINTS, root, ignore=shutil.ignore_patterns(".*"))
    (root / "relu" / "metrics.json").write_text(DEEP)
    (root / "tanh" / "seeds" / "43.json").write_text('{"method": "tanh", "test_acc": 1' + "0" * 5000 + "}")
    with AppServer(root, tmp_path / "app.log") as server:
        client = server.client()
        card, other, *_ = client.predict("relu", "baseline", api_name="/compare")
        assert card.startswith(f"### {METHODS['relu'].title}\n"), card
        assert "**Unavailable:** relu/metrics.json: not valid JSON (recursion limit exceeded at line 1 column" in card
        assert "Rebuild it with `python -m core train --method relu`" in card
        assert str(root) not in card and not EXCEPTION_NAME.search(card), card
        assert "**Test accuracy" in other, other
        for left, right in (("baseline", "tanh"), ("layerwise", "batchnorm")):  # the other pairs answer
            cards = client.predict(left, right, api_name="/compare")[:2]
            assert all("**Test accuracy" in c for c in cards), cards
            # tanh loads (its checkpoint is intact); its card says which seed file its numbers leave out
            assert ("Left out of these numbers: tanh/seeds/43.json" in cards[1]) == (right == "tanh"), cards
        # the page: the problem listed at the top, the damaged seed file named under the results table,
        # and no absolute path or exception name anywhere in what the page is built from
        page = urllib.request.urlopen(server.url + "config", timeout=30).read().decode()
        assert "relu/metrics.json: not valid JSON" in page
        assert "left out of its row: tanh/seeds/43.json: not valid JSON (number out of range" in page
        assert str(root) not in page and str(tmp_path) not in page
        assert not re.search(r"(RecursionError|ValueError|Traceback)", page)
        assert server.alive()
