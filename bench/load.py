"""Load test: many concurrent gradio_client users calling /classify on a local app.

    python -m bench.load                          # launch app.py on a free port, 20 clients x 10 calls
    python -m bench.load --clients 20 --calls 50  # 1000 calls
    python -m bench.load --url http://127.0.0.1:7860/ --pid 1234

Every thread has its own gradio_client.Client and uploads the same image for every call (as a visitor
would: upload + queue + result). Prints p50/p95/max latency, the error count, and the server's resident
memory (VmRSS) after the first 10 calls, during the run and after the last one; writes the same as JSON.
Percentiles are bench.common.percentile's (linear interpolation, as numpy's default).
Before the first call it waits for the server's memory to settle (app.py renders comparisons in the background
for a while after start-up), so that growth during the run is the run's.
Bounded: at most 64 clients and 5,000 calls, and no new call starts after --max-seconds. Loopback only:
any --url whose host is not 127.0.0.1, localhost or ::1 is refused.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from bench.common import RESULTS, ROOT, AppServer, percentile

DEFAULT_IMAGE = ROOT / "assets" / "examples" / "7_sneaker.png"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_CLIENTS, MAX_CALLS = 64, 5000
RSS_AFTER = 10  # the "after the first N calls" memory sample


def check_url(url: str) -> str:
    host = urlparse(url).hostname
    if urlparse(url).scheme not in ("http", "https") or host not in LOOPBACK:
        raise ValueError(f"refusing {url!r}: this load test only targets 127.0.0.1, localhost or ::1")
    return url if url.endswith("/") else url + "/"


def rss_kib(pid: int | None) -> int | None:
    """VmRSS of a process in KiB (None when it cannot be read)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on a local TCP port, from /proc (Linux; same user or root)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A = LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def wait_until_settled(pid: int | None, quiet: float = 10.0, tolerance_kib: int = 2048,
                       max_seconds: float = 180.0) -> float:
    """Wait until the server's RSS has stayed within `tolerance_kib` for `quiet` seconds, so that the memory
    figures measure the load and not the warm-up: after start-up app.py loads the Playground's copy of
    FashionMNIST (~0.3 GB), then renders every method's comparisons, in a background thread, with pauses of a
    few seconds in between on a busy CPU. Returns the seconds waited."""
    start = time.monotonic()
    if rss_kib(pid) is None:
        return 0.0
    base, since = rss_kib(pid), time.monotonic()
    while time.monotonic() - start < max_seconds:
        time.sleep(0.5)
        now = rss_kib(pid)
        if now is None:
            break
        if abs(now - base) > tolerance_kib:
            base, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return time.monotonic() - start


class Tally:
    """What the client threads report, under one lock: latencies, errors by kind, and the server's RSS
    after the first RSS_AFTER calls and every `every` calls."""

    def __init__(self, pid: int | None, every: int):
        self.pid, self.every = pid, every
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.rss_samples: list[tuple[int, int | None]] = [(0, rss_kib(pid))]
        self.done = 0

    def record(self, latency: float | None, error: str | None = None) -> None:
        with self.lock:
            if error is None:
                self.latencies.append(latency)
            else:
                self.errors[error] = self.errors.get(error, 0) + 1
            self.done += 1
            if self.done == RSS_AFTER or self.done % self.every == 0:
                self.rss_samples.append((self.done, rss_kib(self.pid)))

    def finish(self) -> None:
        if self.rss_samples[-1][0] != self.done:
            self.rss_samples.append((self.done, rss_kib(self.pid)))


def _user(url: str, calls: int, image: Path, methods: tuple[str, str], deadline: float, gate: threading.Barrier,
          tally: Tally) -> None:
    """One visitor: its own Client, then `calls` /classify calls, each recorded in `tally`."""
    from gradio_client import Client, handle_file
    try:
        client = Client(url, verbose=False, download_files=False)
    except Exception as e:  # a client that cannot even connect counts as `calls` errors
        for _ in range(calls):
            tally.record(None, f"connect: {type(e).__name__}: {str(e)[:200]}")
        gate.abort()
        return
    try:
        gate.wait(timeout=120)  # every client connected: the calls really are concurrent
    except threading.BrokenBarrierError:
        pass
    for _ in range(calls):
        if time.monotonic() > deadline:
            tally.record(None, "not started: --max-seconds reached")
            continue
        t = time.perf_counter()
        try:
            left, right = client.predict(handle_file(str(image)), *methods, api_name="/classify")
            if len(left["confidences"]) != 5 or len(right["confidences"]) != 5:
                raise ValueError(f"unexpected result {left!r} {right!r}")
            tally.record(time.perf_counter() - t)
        except Exception as e:
            tally.record(None, f"{type(e).__name__}: {str(e)[:200]}")
    client.close()


def run_load(url: str, clients: int = 20, calls: int = 10, pid: int | None = None, image: Path = DEFAULT_IMAGE,
             methods: tuple[str, str] = ("baseline", "relu"), max_seconds: float = 600.0,
             log=None) -> dict:
    """`clients` threads, each with its own Client, each making `calls` /classify calls. Returns a summary."""
    url = check_url(url)
    if not 1 <= clients <= MAX_CLIENTS or not 1 <= clients * calls <= MAX_CALLS:
        raise ValueError(f"at most {MAX_CLIENTS} clients and {MAX_CALLS} calls in all")
    image = Path(image)
    tally = Tally(pid, every=max(RSS_AFTER, clients * calls // 10))
    deadline = time.monotonic() + max_seconds
    gate = threading.Barrier(clients)
    wall = time.perf_counter()
    threads = [threading.Thread(target=_user, args=(url, calls, image, tuple(methods), deadline, gate, tally),
                                name=f"client-{i}", daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + 120))
    wall = time.perf_counter() - wall
    hung = sum(t.is_alive() for t in threads)
    if hung:
        tally.errors[f"{hung} client threads still running at the end"] = hung
    tally.finish()
    result = {"url": url, "clients": clients, "calls_per_client": calls, "calls": clients * calls,
              **_figures(tally, wall), "image": str(image), "methods": list(methods)}
    if log:
        log(summary(result))
    return result


def _figures(tally: Tally, wall: float) -> dict:
    lat, rss = tally.latencies, tally.rss_samples
    return {
        "ok": len(lat), "errors": sum(tally.errors.values()), "error_kinds": tally.errors,
        "wall_seconds": round(wall, 2), "throughput_per_s": round(len(lat) / wall, 2) if wall else None,
        "latency_s": {"p50": round(percentile(lat, 50), 3), "p95": round(percentile(lat, 95), 3),
                      "max": round(max(lat), 3), "mean": round(statistics.fmean(lat), 3)} if lat else None,
        "server_pid": tally.pid,
        "rss_mib": {"start": _mib(rss[0][1]),
                    f"after_{RSS_AFTER}": _mib(next((r for n, r in rss if n == RSS_AFTER), None)),
                    f"after_{tally.done}": _mib(rss[-1][1])},
        "rss_series_mib": [[n, _mib(r)] for n, r in rss],
        "cpu_count": os.cpu_count(), "loadavg_1min": round(os.getloadavg()[0], 2),
    }


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def summary(r: dict) -> str:
    lat = r["latency_s"] or {}
    rss = r["rss_mib"]
    lines = [f"{r['clients']} clients x {r['calls_per_client']} calls = {r['calls']} /classify calls "
             f"in {r['wall_seconds']} s ({r['throughput_per_s']}/s), load average {r['loadavg_1min']} "
             f"on {r['cpu_count']} CPUs",
             f"latency p50 {lat.get('p50')} s, p95 {lat.get('p95')} s, max {lat.get('max')} s",
             f"errors {r['errors']}" + "".join(f"\n  {n} x {kind}" for kind, n in r["error_kinds"].items()),
             "server RSS " + ", ".join(f"{k.replace('_', ' ')} {v} MiB" for k, v in rss.items()),
             "RSS series (calls done, MiB): " + " ".join(f"{n}:{v}" for n, v in r["rss_series_mib"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running app on loopback (default: launch app.py on a free port)")
    parser.add_argument("--pid", type=int, help="the server's pid for memory figures (default: found from the "
                                                "--url port, or the launched app)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default: %(default)s)")
    parser.add_argument("--calls", type=int, default=10, help="calls per client (default: %(default)s)")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="the uploaded image")
    parser.add_argument("--methods", nargs=2, default=["baseline", "relu"], metavar=("LEFT", "RIGHT"))
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints",
                        help="checkpoint folder for the launched app (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="no call starts after this long")
    parser.add_argument("--no-settle", action="store_true",
                        help="start at once instead of waiting for the server's memory to settle after start-up")
    parser.add_argument("--json", type=Path, help="where to write the result (default: bench/results/"
                                                  "load-<clients>x<calls>-<time>.json)")
    args = parser.parse_args(argv)
    if args.url:
        try:
            url = check_url(args.url)
        except ValueError as e:
            parser.error(str(e))
    if not 1 <= args.clients <= MAX_CLIENTS or not 1 <= args.clients * args.calls <= MAX_CALLS:
        parser.error(f"at most {MAX_CLIENTS} clients and {MAX_CALLS} calls in all")

    server = None
    if args.url:
        pid = args.pid or listening_pid(urlparse(url).port or 80)
    else:
        log_file = Path(tempfile.mkstemp(prefix="load-app-", suffix=".log")[1])
        server = AppServer(args.checkpoints, log_file)
        url, pid = server.url, server.proc.pid
        print(f"launched app.py at {url} (pid {pid}) in {server.startup_seconds:.1f} s; log {log_file}",
              flush=True)
    try:
        if not args.no_settle and pid is not None:
            waited = wait_until_settled(pid)
            print(f"server memory settled at {_mib(rss_kib(pid))} MiB after {waited:.0f} s", flush=True)
        result = run_load(url, args.clients, args.calls, pid, args.image, tuple(args.methods), args.max_seconds,
                          log=lambda text: print(text, flush=True))
        if server is not None:
            result["server_alive_after"] = server.alive()
    finally:
        if server is not None:
            server.stop()
    out = args.json or RESULTS / (
        f"load-{args.clients}x{args.calls}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
