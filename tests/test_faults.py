"""Tampering and faults: tampered checkpoints are refused by the running app with the file named, no code path
unpickles anything, and interrupted training (signals, or an interruption in the middle of a write) never
leaves a half-written or mixed checkpoint behind."""
from __future__ import annotations

import ast
import hashlib
import io
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tokenize
from pathlib import Path

import pytest
import torch
from gradio_client import handle_file
from safetensors.torch import save_file

import core.checkpoint as C
from bench.common import ROOT, AppServer
from core.checkpoint import load_checkpoint, rebuild_command, save_checkpoint, write_json
from core.methods import METHODS
from core.models import DeepMLP, ModelConfig
from tests import killed_saves as K
from tests.helpers import fake_run


def _fresh_checkpoint(folder: Path, name: str) -> None:
    """A valid checkpoint of an untrained model, for a method whose real one is not trained yet."""
    save_checkpoint(DeepMLP(METHODS[name].model), fake_run(name), folder)


def _state(folder: Path) -> dict:
    return DeepMLP(ModelConfig.from_dict(json.loads((folder / "config.json").read_text()))).state_dict()


def _wrong_shape(folder: Path) -> None:
    state = _state(folder)
    state["linears.0.weight"] = torch.zeros(64, 784)
    save_file(state, folder / "model.safetensors")


def _wrong_dtype(folder: Path) -> None:
    state = _state(folder)
    state["head.bias"] = state["head.bias"].double()
    save_file(state, folder / "model.safetensors")


def _truncated(folder: Path) -> None:
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:5000])


def _edit_config(change):
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))
    return damage


# method -> (damage, the file the card must name, what it must say)
TAMPERED = {
    "relu": (_wrong_shape, "model.safetensors", "linears.0.weight is (64, 784) torch.float32, expected (128, 784)"),
    "adam": (_wrong_dtype, "model.safetensors", "head.bias is (10,) torch.float64, expected (10,) torch.float32"),
    "tanh": (_truncated, "model.safetensors", "not a readable safetensors file"),
    "custom_norm": (_edit_config(lambda c: c.update(evil="os.system")), "config.json", 'unknown key "evil"'),
    "weight_std_1": (_edit_config(lambda c: c.update(depth=10**9)), "config.json",
                     "depth: expected a whole number 1..32, got 1000000000"),
    "grad_norm": (_edit_config(lambda c: c.update(width=10**6)), "config.json",
                  "width: expected a whole number 1..4096, got 1000000"),
    "skip": (_edit_config(lambda c: c.update(init_std=float("nan"))), "config.json",
             "init_std: expected a number in (0, 1000], got NaN"),
    "weight_std_10": (lambda f: (f / "metrics.json").write_text("{not json"), "metrics.json", "not valid JSON"),
}
UNTOUCHED = ("baseline", "batchnorm", "layerwise")


@pytest.fixture(scope="module")
def tampered(tmp_path_factory):
    """A second app, on a copy of the checkpoints where every TAMPERED method is damaged in its own way."""
    import shutil
    root = tmp_path_factory.mktemp("tampered_checkpoints")
    shutil.copytree(ROOT / "checkpoints", root, dirs_exist_ok=True)
    for name, (damage, _, _) in TAMPERED.items():
        if not (root / name / "metrics.json").is_file():
            _fresh_checkpoint(root / name, name)
        damage(root / name)
    server = AppServer(root, tmp_path_factory.mktemp("logs") / "tampered_app.log")
    yield server, root
    server.stop()


@pytest.mark.app
def test_tampered_checkpoints_are_unavailable_naming_the_file(tampered):
    server, root = tampered
    client = server.client()
    for (name, (_, bad_file, message)), other in zip(TAMPERED.items(), UNTOUCHED * 3):
        card, other_card, *_ = client.predict(name, other, api_name="/compare")
        assert card.startswith(f"### {METHODS[name].title}")
        assert f"**Unavailable:** {name}/{bad_file}: " in card and str(root) not in card, card
        assert message in card, card
        assert f"Rebuild it with `{rebuild_command(name)}`" in card and "python -m core train" in card
        assert "**Test accuracy" in other_card, other_card
    # a tampered model is never run: its side of /classify is empty, the untouched side answers
    left, right = client.predict(handle_file(str(ROOT / "assets" / "examples" / "1_trouser.png")), "relu",
                                 "batchnorm", api_name="/classify")
    assert left == {} and right["label"] == "Trouser" and len(right["confidences"]) == 5
    assert server.alive()


# --- nothing is ever unpickled ---

SCANNED = [ROOT / "app.py", *sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "bench").rglob("*.py"))]
FORBIDDEN = [
    (re.compile(r"pickle", re.I), "pickle"),  # pickle, cPickle, cloudpickle, read_pickle ...
    (re.compile(r"\btorch\s*\.\s*(jit\s*\.\s*)?load\b"), "torch.load"),
    (re.compile(r"\bweights_only\s*=\s*False\b"), "weights_only=False"),
    (re.compile(r"\b(joblib|dill|shelve|marshal)\b"), "another unpickler"),
]


STRINGS = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def _code_only(source: str) -> str:
    """The source with comments and string literals blanked out: docstrings may say "never pickle"."""
    lines = source.splitlines(keepends=True)
    out = [list(line) for line in lines]
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in STRINGS:
            (r0, c0), (r1, c1) = tok.start, tok.end
            for r in range(r0, r1 + 1):
                row = out[r - 1]
                for c in range(c0 if r == r0 else 0, c1 if r == r1 else len(row)):
                    if row[c] != "\n":
                        row[c] = " "
    return "".join("".join(row) for row in out)


def unpickling_problems(source: str, name: str = "<source>") -> list[str]:
    problems = []
    for number, line in enumerate(_code_only(source).splitlines(), 1):
        line = re.sub(r"\ballow_pickle\s*=\s*False\b", "", line)  # the one allowed spelling
        problems += [f"{name}:{number}: {what}: {line.strip()}" for pattern, what in FORBIDDEN if pattern.search(line)]
    for node in ast.walk(ast.parse(source)):  # every np.load / numpy.load call refuses pickles explicitly
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in ("np", "numpy"):
            safe = any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant) and k.value.value is False
                       for k in node.keywords)
            if not safe:
                problems.append(f"{name}:{node.lineno}: np.load without allow_pickle=False")
    return problems


def test_no_code_path_unpickles_anything():
    assert ROOT / "app.py" in SCANNED and len(SCANNED) > 5
    problems = [p for path in SCANNED for p in unpickling_problems(path.read_text(), str(path.relative_to(ROOT)))]
    assert not problems, "\n".join(problems)


def test_the_unpickling_scan_catches_what_it_should():
    bad = ("import pickle\nfrom joblib import load\nx = torch.load(p)\ny = torch.load(p, weights_only=False)\n"
           "a = np.load(p)\nb = np.load(p, allow_pickle=True)\nc = numpy.load(p, mmap_mode='r')\n"
           "d = pd.read_pickle(p)\n")
    found = {(int(p.split(":")[1]), p.split(": ")[1]) for p in unpickling_problems(bad)}
    assert found == {(1, "pickle"), (2, "another unpickler"), (3, "torch.load"), (4, "torch.load"),
                     (4, "weights_only=False"), (5, "np.load without allow_pickle=False"), (6, "pickle"),
                     (6, "np.load without allow_pickle=False"), (7, "np.load without allow_pickle=False"),
                     (8, "pickle")}
    fine = ('"""Never pickle, never torch.load."""\nimport numpy as np  # no pickle here\n'
            'a = np.load(p, allow_pickle=False)\ns = "torch.load"\n')
    assert unpickling_problems(fine) == []


# --- interrupted training leaves the previous checkpoint intact ---

def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]


def _train(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", "train", "--method", "baseline_3", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.fixture
def default_sigint():
    """Ctrl-C raises KeyboardInterrupt in this process, whatever the handler the test run inherited: a shell
    that starts the suite in the background (`bash tests/run.sh &`) hands it SIGINT ignored. Children started
    meanwhile get SIGINT's default disposition too: exec resets a handled signal to the default, where an
    ignored one would stay ignored. The previous handler is restored afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """A finished short run: the checkpoint an interrupted run must not damage."""
    out = tmp_path_factory.mktemp("interrupted")
    proc = _train("--epochs", "1", "--limit", "2000", "--out", str(out))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()
    load_checkpoint(out / "baseline_3")
    return out


TRAINING = "checkpoints already on disk are intact; baseline_3 was being trained and was not saved"


@pytest.mark.slow
@pytest.mark.parametrize("sig,code,message", [
    (signal.SIGINT, 130, f"interrupted: {TRAINING}"),
    (signal.SIGTERM, 143, f"terminated (SIGTERM): {TRAINING}"),
], ids=["SIGINT", "SIGTERM"])
def test_interrupted_training_keeps_the_previous_checkpoint(previous, default_sigint, sig, code, message):
    folder = previous / "baseline_3"
    before = _hashes(folder)
    proc = _train("--epochs", "50", "--limit", "20000", "--out", str(previous))  # SIGINT: default, see the fixture
    err = bytearray()
    training = threading.Event()

    def read_stderr():
        while chunk := proc.stderr.read1(4096):
            err.extend(chunk)
            if b"baseline_3:" in err:  # tqdm's bar: the data is loaded and epochs are running
                training.set()
    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert training.wait(300), f"training did not start:\n{err.decode()}"  # (a loaded CI machine is slow)
        time.sleep(1.0)
        assert proc.poll() is None, "finished before it could be interrupted"
        proc.send_signal(sig)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    stderr = err.decode(errors="replace")
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert stderr.rstrip().splitlines()[-1].startswith(message), stderr[-500:]  # one line, the last
    assert _hashes(folder) == before  # byte-identical
    assert not _leftovers(previous), _leftovers(previous)


# --- an interruption in the middle of save_checkpoint (in-process: a signal cannot be timed that finely) ---

def _model(seed: int) -> DeepMLP:
    torch.manual_seed(seed)
    return DeepMLP(METHODS["batchnorm"].model)


def _metrics(model: DeepMLP) -> dict:
    return fake_run("batchnorm", model.config.to_dict(), epochs=100, seed=1)  # 101 rows: a write takes a while


@pytest.fixture
def old_checkpoint(tmp_path):
    folder = tmp_path / "m"
    old = _model(0)
    save_checkpoint(old, _metrics(old), folder)
    return folder, _hashes(folder)


def _assert_old_or_new(folder: Path, old_hashes: dict, new: DeepMLP | None = None) -> None:
    """After an interrupted save, the folder holds the old checkpoint byte for byte (or, if the interruption
    came after the last byte was written, the new one), loads cleanly, and holds no temp files."""
    assert not _leftovers(folder), _leftovers(folder)
    if _hashes(folder) == old_hashes:
        return
    assert new is not None, "the previous checkpoint was changed"
    loaded, _ = load_checkpoint(folder)
    x = torch.rand(3, 784)
    torch.testing.assert_close(loaded(x), new.eval()(x), rtol=0, atol=0)


def test_interrupt_while_writing_weights(old_checkpoint, monkeypatch):
    folder, old_hashes = old_checkpoint
    real = Path.write_bytes

    def half_then_interrupt(path, data):
        if path.name.startswith(".model.safetensors."):
            real(path, data[: len(data) // 2])
            raise KeyboardInterrupt
        return real(path, data)
    monkeypatch.setattr(Path, "write_bytes", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_model(1), _metrics(_model(1)), folder)
    _assert_old_or_new(folder, old_hashes)


def test_interrupt_while_writing_metrics(old_checkpoint, monkeypatch):
    folder, old_hashes = old_checkpoint
    real = json.dump

    def half_then_interrupt(obj, f, **kw):
        if isinstance(obj, dict) and "weights_sha256" in obj:  # metrics.json
            text = json.dumps(obj, **kw)
            f.write(text[: len(text) // 2])
            raise KeyboardInterrupt
        return real(obj, f, **kw)
    monkeypatch.setattr(json, "dump", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_model(1), _metrics(_model(1)), folder)
    _assert_old_or_new(folder, old_hashes)


@pytest.mark.parametrize("after", [1, 2], ids=["SIGINT-after-rename-1", "SIGINT-after-rename-2"])
def test_signal_between_renames(old_checkpoint, default_sigint, monkeypatch, after):
    folder, old_hashes = old_checkpoint
    real, renames = C.os.replace, []

    def replace_then_signal(src, dst):
        real(src, dst)
        renames.append(dst)
        if len(renames) == after:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C right after this rename
    monkeypatch.setattr(C.os, "replace", replace_then_signal)
    new = _model(1)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(new, _metrics(new), folder)
    _assert_old_or_new(folder, old_hashes, new)



def test_an_error_between_renames_puts_the_previous_checkpoint_back(old_checkpoint, monkeypatch):
    folder, old_hashes = old_checkpoint
    real, renames = C.os.replace, []

    def replace_then_fail(src, dst):
        renames.append(dst)
        if len(renames) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)
    monkeypatch.setattr(C.os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(_model(1), _metrics(_model(1)), folder)
    monkeypatch.undo()
    assert _hashes(folder) == old_hashes and not _leftovers(folder)  # the previous set, back under its names


def test_a_write_clears_what_killed_writers_left_and_nothing_else(tmp_path):
    seeds = tmp_path / "relu" / "seeds"
    seeds.mkdir(parents=True)
    orphans = [seeds / ".43.json.k2j8x_0a.tmp", seeds / ".tmpA1b2C3"]  # ours (mkstemp), safetensors' save_file's
    others = [seeds / ".keep", seeds / "notes.tmp", seeds / "44.json"]
    for path in orphans + others:
        path.write_text("x")
    write_json(seeds / "43.json", {"a": 1})
    assert not any(p.exists() for p in orphans) and all(p.exists() for p in others)
    assert json.loads((seeds / "43.json").read_text()) == {"a": 1}
    save_checkpoint(_model(0), _metrics(_model(0)), tmp_path / "relu")  # a checkpoint folder: the same
    (tmp_path / "relu" / ".model.safetensors.abcdefgh.tmp").write_text("x")
    assert C.clean_orphans(tmp_path) == [
        "relu: removed 1 temp file(s) of a killed save (.model.safetensors.abcdefgh.tmp)"]
    assert C.clean_orphans(tmp_path) == []

# --- a save killed (SIGKILL, a real signal to a real process) at every point of it ---

@pytest.fixture(scope="module")
def forks():
    """Processes forked from a forkserver that imported tests.killed_saves (and torch) once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.killed_saves"])
    return context


def _run(forks, target, *args) -> int:
    child = forks.Process(target=target, args=args)
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"{target.__name__}{args} did not finish")
    return child.exitcode


SETS = {seed: K.model(seed).eval() for seed in (1, 2, 3)}  # old, new, and the save after that
LIVE = {name: name for name in C.FILES}


def _served(folder: Path) -> int:
    """Which set load_checkpoint serves: its weights exactly that seed's model, its metrics that seed's, and
    the metrics.json the results table reads the same (never a mix)."""
    model, metrics = load_checkpoint(folder)
    seed = metrics["seed"]
    x = torch.rand(3, 784)
    assert seed in SETS and torch.equal(model(x), SETS[seed](x)), seed
    assert C.read_metrics(folder / "metrics.json")["seed"] == seed
    return seed


def _live_loads(folder: Path) -> bool:
    """Whether the live files load by themselves (not through the .prev fallback)."""
    return C._loads(folder, {name: folder / name for name in C.FILES})


@pytest.fixture
def old_set(tmp_path):
    base = tmp_path / "base"
    save_checkpoint(K.model(1), K.metrics(1), base / "m")
    return base


def _disk_calls(forks, old_set, tmp_path, calls=K.DISK_CALLS) -> int:
    root = shutil.copytree(old_set, tmp_path / "count")
    count = tmp_path / "count.txt"
    assert _run(forks, K.save_killed_at, str(root / "m"), 2, 0, str(count), calls) == 0
    assert _served(root / "m") == 2
    return int(count.read_text())


def test_a_save_killed_at_any_point_leaves_the_previous_or_the_new_checkpoint(forks, old_set, tmp_path):
    n = _disk_calls(forks, old_set, tmp_path)
    assert n >= 13  # 3 temp files fsynced, 3 .prev links, 3 renames, 3 links removed, the folder fsynced
    served, mixed = {}, {}
    for k in range(1, n + 1):
        root = shutil.copytree(old_set, tmp_path / f"kill{k}")
        folder = root / "m"
        assert _run(forks, K.save_killed_at, str(folder), 2, k, "", K.DISK_CALLS) == -signal.SIGKILL
        served[k], mixed[k] = _served(folder), not _live_loads(folder)  # what the app would serve now
        if k % 2:  # the app or CLI starting up settles it...
            assert any(line.startswith("m: ") for line in C.clean_orphans(root)) or not _leftovers(root)
            assert _served(folder) == served[k] and _live_loads(folder)
        else:  # ...or the next save into the folder does
            save_checkpoint(K.model(3), K.metrics(3), folder)
            assert _served(folder) == 3
        assert not _leftovers(root), (k, _leftovers(root))
    order = [served[k] for k in range(1, n + 1)]
    assert order[0] == 1 and order[-1] == 2 and order == sorted(order), order  # old until the switch, then new
    # killed between renames, the live files are a mix the loader alone would refuse: the .prev links save it
    assert any(mixed.values()) and all(served[k] == 1 for k in mixed if mixed[k]), (served, mixed)


@pytest.mark.parametrize("renamed", [1, 2], ids=["after-weights", "after-weights-and-config"])
def test_a_crash_between_renames_keeps_the_previous_checkpoint(forks, old_set, tmp_path, renamed):
    before = _hashes(old_set / "m")
    assert _disk_calls(forks, old_set, tmp_path, ("replace",)) == 3
    root = shutil.copytree(old_set, tmp_path / "crashed")
    folder = root / "m"
    code = _run(forks, K.save_killed_at, str(folder), 2, renamed + 1, "", ("replace",))  # killed before the next
    assert code == -signal.SIGKILL
    assert not _live_loads(folder)  # new weights beside the old metrics: mixed
    with pytest.raises(C.CheckpointError, match="does not match the hash"):
        C._load_files(folder, {name: folder / name for name in C.FILES})
    assert _served(folder) == 1  # the previous checkpoint, from its .prev links, at once and read-only
    done = C.recover(folder)  # the next start (or save): the previous set back under the live names
    assert done[0] == "restored the previous checkpoint (a save was interrupted between its renames)", done
    assert done[1].startswith(f"removed {3 - renamed} temp file(s) of a killed save"), done  # the unrenamed ones
    assert _hashes(folder) == before and not _leftovers(root)  # byte for byte the previous checkpoint


def test_saves_killed_at_random_moments(forks, old_set, tmp_path):
    folder = old_set / "m"
    rng = random.Random(0)
    seen = set()
    for i in range(20):
        started = tmp_path / f"started{i}"
        child = forks.Process(target=K.save_forever, args=(str(folder), (2, 1), str(started)))
        child.start()
        deadline = time.monotonic() + 120
        while not started.exists() and child.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert started.exists(), "the saving child did not start"
        time.sleep(rng.uniform(0, 0.08))  # some saves later, somewhere inside one
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        assert child.exitcode == -signal.SIGKILL
        seen.add(_served(folder))
        if i % 4 == 3:
            C.clean_orphans(old_set)
            assert not _leftovers(old_set) and _live_loads(folder)
    assert seen == {1, 2}, seen  # both sets were caught on disk, and nothing else ever was


def test_a_live_saves_temp_file_is_not_an_orphan(forks, old_set, tmp_path):
    folder = old_set / "m"
    ready = tmp_path / "ready"
    child = forks.Process(target=K.hold_the_lock, args=(str(folder), str(ready)))
    child.start()
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready.exists()
        temp = folder / ".model.safetensors.abcd1234.tmp"
        assert C.clean_orphans(old_set) == [] and C.recover(folder) == [] and temp.exists()  # its writer is alive
    finally:
        child.kill()
        child.join(30)
    assert C.clean_orphans(old_set) == ["m: removed 1 temp file(s) of a killed save (.model.safetensors.abcd1234.tmp)"]
    assert not temp.exists() and not _leftovers(old_set)
    assert _served(folder) == 1


# --- the CLI's last line when a real signal reaches it at start-up or in the middle of a save ---

def _handles(pid: int, number: int) -> bool:
    """Whether process `pid` has a handler installed for signal `number` (SigCgt in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (number - 1) & 1)
    return False


@pytest.mark.parametrize("sig,code,how", [(signal.SIGINT, 130, "interrupted"),
                                          (signal.SIGTERM, 143, "terminated (SIGTERM)")], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_start_up_ends_with_one_line(default_sigint, tmp_path, sig, code, how):
    proc = _train("--epochs", "1", "--limit", "500", "--out", str(tmp_path))
    try:
        deadline = time.monotonic() + 60
        # core/__main__.py's first act is to handle SIGTERM; what follows is importing torch (seconds)
        while not _handles(proc.pid, signal.SIGTERM) and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, stderr.decode()
    assert stderr.decode() == f"{how} during start-up: nothing was read or written\n" and stdout == b""
    assert list(tmp_path.iterdir()) == []


# A real SIGTERM at an exact point of the save: the CLI run in a process that sends it to itself from inside
# the save (a signal from outside cannot be timed to a millisecond window).
SIGNAL_INSIDE = """
import os, runpy, signal, sys
import core.checkpoint as C
point = sys.argv.pop(1)
if point == "rename":  # as the first file is renamed into place
    real = os.replace
    def replace(src, dst):
        if str(dst).endswith("model.safetensors"):
            os.kill(os.getpid(), signal.SIGTERM)
        return real(src, dst)
    os.replace = replace
else:  # while the temp files are being written (between the weights and metrics.json)
    real = C.sha256
    def sha256(path):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(path)
    C.sha256 = sha256
sys.argv[0] = "core"
runpy.run_module("core", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("point", ["rename", "staging"])
def test_sigterm_during_a_save_says_what_is_on_disk(previous, tmp_path, point):
    out = shutil.copytree(previous, tmp_path / "out")
    folder = out / "baseline_3"
    before = _hashes(folder)
    run = subprocess.run([sys.executable, "-c", SIGNAL_INSIDE, point, "train", "--method", "baseline_3",
                          "--epochs", "1", "--limit", "500", "--seed", "7", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    last = run.stderr.rstrip().splitlines()[-1]
    assert run.returncode == 143, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == "", run.stderr
    assert not _leftovers(out), _leftovers(out)
    model, metrics = load_checkpoint(folder)
    if point == "rename":  # held back until the three files were in place: the new checkpoint, complete
        assert last == ("terminated (SIGTERM): checkpoints already on disk are intact; baseline_3 was saved "
                        f"completely (to {folder}) just before it stopped")
        assert metrics["seed"] == 7 and _hashes(folder) != before
    else:  # before anything was replaced: the previous one, byte for byte
        assert last == ("terminated (SIGTERM): checkpoints already on disk are intact; it stopped while saving "
                        f"baseline_3, before anything was replaced: {folder} holds its previous checkpoint, if it "
                        "had one")
        assert _hashes(folder) == before
