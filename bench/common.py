"""What the bench scripts share with each other and with the test suite: the one percentile, the one app
launcher (AppServer), clocks, machine facts and the report helpers. Imports nothing heavy at module level."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


# ------------------------------------------------------------------------------------------------ statistics
def percentile(values, q: float) -> float | None:
    """The q-th percentile (q in 0..100) of `values` by linear interpolation between the two nearest ranks:
    numpy's default (method="linear", Hyndman & Fan type 7), so p50 is the median and p100 the maximum.
    None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in 0..100, got {q}")
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def latency_stats(samples: list[float]) -> dict:
    """n, p50, p95 and max of latencies in seconds, with the samples."""
    return {"n": len(samples), "p50_s": percentile(samples, 50), "p95_s": percentile(samples, 95),
            "max_s": max(samples) if samples else None, "samples_s": samples}


# ---------------------------------------------------------------------------------------------------- clocks
def timed(fn):
    """(wall seconds, result of fn())."""
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def clocked(fn):
    """(wall seconds, CPU seconds of this process, result). CPU time does not count the time other processes
    hold the core, so it is the contention-proof cross-check; with several torch threads it sums over them."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


# ------------------------------------------------------------------------------------------- machine, report
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state() -> dict:
    def run(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": run("rev-parse", "HEAD") or None,
            "dirty": bool(run("status", "--porcelain", "--", "core", "app.py"))}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_meta(quick: bool, settings: dict) -> dict:
    """Where and with what a benchmark ran: the "meta" section of its JSON."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None
    return {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torchvision": installed("torchvision"),
            "gradio": installed("gradio"), "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(), "quick": quick, "settings": settings,
            "loadavg_start": loadavg(), "git": git_state(),
            "command": " ".join([Path(sys.executable).name, *sys.argv])}


def fmt(x, spec=".2f", unit=""):
    return "n/a" if x is None else f"{x:{spec}}{unit}"


ROW = "{:<46s} {:>16s} {:>12s}"  # measure, value, target: the table every bench script prints


def header(meta: dict, title: str) -> list[str]:
    """The table's first lines: what ran where, then the column heads."""
    return [f"{title}  {meta['date']}  {meta['cpu_model']} ({meta['cpu_count']} cpu), torch {meta['torch']}, "
            f"{meta['torch_threads']} thread(s){'  [quick]' if meta['quick'] else ''}",
            f"load average at start {meta['loadavg_start']}, at end {meta.get('loadavg_end')}",
            ROW.format("measure", "value", "target"), "-" * 76]


def write_json(path: Path, obj) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    return path


# ------------------------------------------------------------------------------------------------------ app
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`python app.py` in a subprocess on a free loopback port, serving / when the constructor returns.

    checkpoints: the folder the app serves (VGL_CHECKPOINTS); None = the app's default, the committed ones.
    log: where the server's output goes; None = a temp file, removed by stop() (its tail kept in log_tail()).
    env: extra environment variables. app: another app.py to run (from its own folder: another version of the
    app, to compare with this one); None = this repository's. python: the interpreter (another environment's,
    e.g. the Space build's); None = this one. Stop it with stop(), or use it as a context manager.
    """

    def __init__(self, checkpoints: Path | None = None, log: Path | None = None, env: dict | None = None,
                 timeout: float = 120.0, app: Path | None = None, python: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        full_env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(self.port),
                    "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        full_env.pop("VGL_CHECKPOINTS", None)
        if checkpoints is not None:
            full_env["VGL_CHECKPOINTS"] = str(checkpoints)
        self._own_log = log is None
        self.log = Path(log) if log is not None else Path(tempfile.mkstemp(prefix="app-", suffix=".log")[1])
        self._log_file = open(self.log, "w")
        self._tail = ""
        self.started = time.perf_counter()
        app = Path(app).resolve() if app is not None else ROOT / "app.py"
        self.proc = subprocess.Popen([str(python or sys.executable), str(app)], cwd=app.parent, env=full_env,
                                     stdout=self._log_file, stderr=subprocess.STDOUT)
        try:
            self._wait_until_serving(timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - self.started

    def _wait_until_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"app.py did not serve within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return self._tail[-chars:]

    def client(self):
        from gradio_client import Client
        return Client(self.url, verbose=False)

    def alive(self) -> bool:
        try:
            return self.proc.poll() is None and urllib.request.urlopen(self.url, timeout=5).status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()
        if self._own_log and self.log.exists():
            self._tail = self.log_tail(10_000)
            self.log.unlink()

    def __enter__(self) -> AppServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
