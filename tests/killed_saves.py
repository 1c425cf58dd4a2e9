"""The processes tests/test_faults.py kills: real saves, ended by a real SIGKILL at a chosen point.

They run as multiprocessing children of a forkserver that has imported this module (so torch and
core.checkpoint) once: each fork takes milliseconds instead of the seconds an import of torch takes.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import torch

import core.checkpoint as C
from core.methods import METHODS
from core.models import DeepMLP
from tests.helpers import fake_run

# Every call through which a save changes the disk: killing the process just before the k-th of them, for
# every k, stops the save at every point where the folder could be seen in a different state.
DISK_CALLS = ("replace", "link", "unlink", "fsync")


def model(seed: int) -> DeepMLP:
    torch.manual_seed(seed)
    return DeepMLP(METHODS["batchnorm"].model)


def metrics(seed: int) -> dict:
    # 101 history rows (a write takes a while); the seed tells the sets apart
    return fake_run("batchnorm", METHODS["batchnorm"].model.to_dict(), epochs=100, seed=seed)


def save_killed_at(folder: str, seed: int, kill_at: int, count_file: str, calls_counted=DISK_CALLS) -> None:
    """Save model(seed) into `folder`, SIGKILLed just before its `kill_at`-th disk call (0: never) among
    `calls_counted` (os function names); writes the number of those calls the save made to `count_file` if
    it lives."""
    calls, armed = [0], [kill_at]

    def counted(real):
        def call(*args, **kwargs):
            calls[0] += 1
            if calls[0] == armed[0]:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return call
    for name in calls_counted:
        setattr(os, name, counted(getattr(os, name)))
    C.save_checkpoint(model(seed), metrics(seed), Path(folder))
    armed[0] = 0  # what follows is not the save's
    Path(count_file).write_text(str(calls[0]))


def save_forever(folder: str, seeds: tuple[int, ...], started: str) -> None:
    """Save model(seed) for each seed in turn, round and round, until killed; creates `started` after the
    first save."""
    built = [(model(s), metrics(s)) for s in seeds]
    n = 0
    while True:
        C.save_checkpoint(*built[n % len(built)], Path(folder))
        if n == 0:
            Path(started).touch()
        n += 1


def hold_the_lock(folder: str, ready: str) -> None:
    """What a live save looks like from outside: the folder's lock held and a temp file in it, until killed."""
    with C._locked(Path(folder)) as lock:
        assert lock == C.HELD
        Path(folder, ".model.safetensors.abcd1234.tmp").write_bytes(b"half a save")
        Path(ready).touch()
        signal.pause()
