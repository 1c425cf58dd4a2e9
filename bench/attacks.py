"""A hostile visitor's attacks on a launched app, replayed on loopback, with what they cost everyone else.

    python -m bench.attacks                      # this tree's app.py, every attack (~3 min)
    python -m bench.attacks --app /tmp/old/app.py   # another version of the app (its own folder), for before/after
    python -m bench.attacks --only flood,upload  # some of them

Each attack is bounded in count and time, and only ever targets the app it launched on 127.0.0.1:
- flood: one session sends FLOOD_RUNS Playground runs at once, while another visitor calls /compare
  OTHER_CALLS times: that visitor's p50/p95 and errors ("Queue is full"), and how the runs were answered.
- monopoly: MONOPOLY_SESSIONS visitors (own clients and addresses) press Train; what each is told.
- upload: one client posts UPLOAD_FILE_MB files to /gradio_api/upload for UPLOAD_SECONDS: MB stored and refused.
- sessions: SESSION_CALLS /compare calls, each from a new session (raw HTTP), then a mixed soak: the server's
  RSS and its cache folder's size before/after.
- logs: refused inputs (a bad Radio value, a 400-digit number, a 60 MB JSON body, an unknown method): log bytes,
  lines and tracebacks they caused, and what the caller was told.
- private: the page's own endpoints called from gradio_client and by raw fn_index, and the time of one call.
Prints one block per attack and writes bench/results/attacks-<time>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from bench.common import RESULTS, ROOT, AppServer, percentile
from bench.load import rss_kib

FLOOD_RUNS, OTHER_CALLS = 65, 20
MONOPOLY_SESSIONS = 7
UPLOAD_FILE_MB, UPLOAD_SECONDS = 5, 5.0
SESSION_CALLS = 1600  # past the app's state_session_capacity (500), to see whether memory plateaus
EXAMPLE = ROOT / "assets" / "examples" / "1_trouser.png"
# A Playground run that takes a while (~10-20 s on one core): long enough for the others to queue behind it.
RUN = dict(depth=3, width=64, activation="sigmoid", init_std=0.05, norm="none", skips=False, grad_norm=False,
           optimizer="sgd", lr=0.01, epochs=20, train_size=20000, batch_size=64)


def _client(url: str, address: str | None = None):
    """A gradio_client Client; `address`: the visitor's address as the Space's proxy would give it."""
    from gradio_client import Client
    headers = {"X-Forwarded-For": address} if address else None
    return Client(url, verbose=False, download_files=False, headers=headers)


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e)[:110]}"


def _tally(errors: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in errors:
        out[e] = out.get(e, 0) + 1
    return out


def _lat(values: list[float]) -> dict:
    return {"n": len(values), "p50": round(percentile(values, 50), 3), "p95": round(percentile(values, 95), 3),
            "max": round(max(values), 3)} if values else {"n": 0}


def _compare_calls(url: str, n: int, pair=("baseline", "relu")) -> tuple[list[float], list[str]]:
    client, lat, errors = _client(url), [], []
    for _ in range(n):
        t = time.perf_counter()
        try:
            client.predict(*pair, api_name="/compare")
            lat.append(time.perf_counter() - t)
        except Exception as e:  # noqa: BLE001 - what the other visitor is told is the measurement
            errors.append(_error(e))
    client.close()
    return lat, errors


def _fn_index(url: str, api_name: str) -> int:
    config = httpx.get(url + "config", timeout=30).json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)


def flood(server: AppServer, runs: int = FLOOD_RUNS, others: int = OTHER_CALLS) -> dict:
    """FLOOD_RUNS Playground runs joined by raw HTTP from one session in a burst, as a script would, while
    another visitor calls /compare; then the session's event stream read for what each run was told."""
    fn, session = _fn_index(server.url, "playground"), uuid.uuid4().hex
    events, joins = [], {}
    with httpx.Client(timeout=30) as http:
        t = time.perf_counter()
        for _ in range(runs):
            r = http.post(server.url + "gradio_api/queue/join",
                          json={"data": [*RUN.values(), "baseline"], "fn_index": fn, "session_hash": session})
            joins[str(r.status_code)] = joins.get(str(r.status_code), 0) + 1
            if r.status_code == 200:
                events.append(r.json()["event_id"])
        sent = time.perf_counter() - t
        told: list[str] = []
        done = threading.Event()

        def listen():
            with httpx.Client(timeout=httpx.Timeout(30, read=None)) as listener, listener.stream(
                    "GET", server.url + "gradio_api/queue/data", params={"session_hash": session}) as s:
                for line in s.iter_lines():
                    if done.is_set():
                        return
                    if line.startswith("data:") and "process_completed" in line:
                        msg = json.loads(line[5:])
                        out = msg.get("output") or {}
                        told.append("finished" if msg.get("success") else str(out.get("error"))[:110])

        threading.Thread(target=listen, daemon=True).start()
        time.sleep(1.0)
        lat, errors = _compare_calls(server.url, others)
        done.set()
        for event in events:  # end the runs, queued or running, so the next attack starts on a quiet server
            http.post(server.url + "gradio_api/cancel", json={"session_hash": session, "fn_index": fn,
                                                               "event_id": event})
    return {"runs_sent": runs, "sent_in_s": round(sent, 2), "join_status": joins,
            "runs_answered_while_others_called": _tally(told), "other_visitor_compare_s": _lat(lat),
            "other_visitor_errors": _tally(errors)}


def monopoly(server: AppServer) -> dict:
    clients = [_client(server.url, f"198.51.100.{i + 1}") for i in range(MONOPOLY_SESSIONS)]  # 7 visitors
    jobs = [c.submit(*RUN.values(), "baseline", api_name="/playground") for c in clients]
    time.sleep(6.0)
    told = []
    for job in jobs:
        outputs = job.outputs()  # the streamed (chart, status, state) so far
        status = next((o[1] for o in reversed(outputs) if isinstance(o, (list, tuple)) and isinstance(o[1], str)),
                      None)
        try:
            job.result(timeout=0.2)
            told.append("finished")
        except TimeoutError:
            told.append((status or "no update yet")[:110])
        except Exception as e:  # noqa: BLE001
            told.append(_error(e))
    for job in jobs:
        job.cancel()
    for c in clients:
        c.close()
    return {"sessions": MONOPOLY_SESSIONS, "told": _tally(told)}


def upload(server: AppServer, cache: Path) -> dict:
    before = _size(cache)
    stored = refused = 0
    codes: dict[str, int] = {}
    deadline = time.monotonic() + UPLOAD_SECONDS
    with httpx.Client(timeout=30) as http:
        while time.monotonic() < deadline:
            body = os.urandom(UPLOAD_FILE_MB * 1_000_000)  # a new file each time: Gradio stores equal files once
            r = http.post(server.url + "gradio_api/upload", files={"files": ("photo.png", body, "image/png")})
            codes[str(r.status_code)] = codes.get(str(r.status_code), 0) + 1
            if r.status_code == 200:
                stored += len(body)
            else:
                refused += 1
    return {"seconds": UPLOAD_SECONDS, "file_mb": UPLOAD_FILE_MB, "stored_mb": round(stored / 1e6, 1),
            "stored_mb_per_s": round(stored / 1e6 / UPLOAD_SECONDS, 1), "refused": refused, "status_codes": codes,
            "cache_mb_before": round(before / 1e6, 1), "cache_mb_after": round(_size(cache) / 1e6, 1)}


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _raw_call(http: httpx.Client, url: str, endpoint: str, data: list, session: str | None = None) -> str:
    """POST /gradio_api/call/<endpoint>, then read its event stream to the end: the last event's name."""
    r = http.post(f"{url}gradio_api/call/{endpoint}", json={"data": data, "session_hash": session})
    if r.status_code != 200:
        return f"HTTP {r.status_code}"
    event = r.json()["event_id"]
    last = "none"
    with http.stream("GET", f"{url}gradio_api/call/{endpoint}/{event}") as s:
        for line in s.iter_lines():
            if line.startswith("event:"):
                last = line.split(":", 1)[1].strip()
    return last


def sessions(server: AppServer, cache: Path) -> dict:
    """SESSION_CALLS /compare calls by raw HTTP, each from a new session (4 at a time): the server's RSS every
    quarter of the way, so a plateau (Gradio forgetting the oldest sessions) shows as flat steps."""
    rss0, cache0 = rss_kib(server.proc.pid), _size(cache)
    events: list[str] = []
    series = [[0, round(rss0 / 1024, 1)]]
    t = time.perf_counter()

    def worker(n):
        with httpx.Client(timeout=60) as http:
            for _ in range(n):
                events.append(_raw_call(http, server.url, "compare", ["baseline", "relu"], uuid.uuid4().hex))

    for _ in range(4):
        threads = [threading.Thread(target=worker, args=(SESSION_CALLS // 16,)) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        series.append([len(events), round(rss_kib(server.proc.pid) / 1024, 1)])
    wall = time.perf_counter() - t
    rss1 = rss_kib(server.proc.pid)
    half = series[2][1]
    return {"calls": len(events), "seconds": round(wall, 1), "events": _tally(events),
            "rss_mib_series": series, "rss_mib_before": round(rss0 / 1024, 1), "rss_mib_after": round(rss1 / 1024, 1),
            "rss_kib_per_call_first_half": round((half * 1024 - rss0) / series[2][0], 1),
            "rss_kib_per_call_second_half": round((rss1 - half * 1024) / (len(events) - series[2][0]), 1),
            "cache_mb_before": round(cache0 / 1e6, 1), "cache_mb_after": round(_size(cache) / 1e6, 1)}


def logs(server: AppServer) -> dict:
    size0 = server.log.stat().st_size
    told = {}
    bad = {"radio": {**RUN, "activation": "evil"}, "huge_int": {**RUN, "lr": int("9" * 400)}}
    c = _client(server.url)
    for name, settings in bad.items():
        try:
            c.predict(*settings.values(), "baseline", api_name="/playground")
            told[name] = "accepted?!"
        except Exception as e:  # noqa: BLE001
            told[name] = str(e)[:160]
    try:
        c.predict("nope", "relu", api_name="/compare")
    except Exception as e:  # noqa: BLE001
        told["unknown_method"] = str(e)[:160]
    c.close()
    with httpx.Client(timeout=60) as http:
        told["json_60mb"] = _raw_call(http, server.url, "compare", ["A" * 60_000_000, "relu"])
    time.sleep(1.0)
    text = server.log.read_text(errors="replace")[size0:]
    lines = text.splitlines()
    return {"told": told, "log_bytes": len(text), "log_lines": len(lines), "tracebacks": text.count("Traceback"),
            "longest_line": max((len(line) for line in lines), default=0),
            "mentions_server_path": str(ROOT) in text}


def private(server: AppServer) -> dict:
    out = {}
    c = _client(server.url)
    for name, args in (("classify_and_view", (None, "baseline", "relu")), ("results", ("baseline", "relu"))):
        try:
            c.predict(*args, api_name=f"/{name}")
            out[f"gradio_client /{name}"] = "answered"
        except Exception as e:  # noqa: BLE001
            out[f"gradio_client /{name}"] = _error(e)
    # the page's own call: by fn_index through the queue, as the browser sends it
    config = httpx.get(server.url + "config", timeout=30).json()
    fn = next((d["id"] for d in config["dependencies"] if "results" in json.dumps(d.get("api_name"))
               or d.get("api_name") == "results"), None)
    times = []
    if fn is not None:
        with httpx.Client(timeout=60) as http:
            for _ in range(5):
                t = time.perf_counter()
                r = http.post(server.url + "gradio_api/queue/join",
                              json={"data": ["baseline", "relu"], "fn_index": fn, "session_hash": uuid.uuid4().hex})
                event = r.json().get("event_id")
                with http.stream("GET", server.url + "gradio_api/queue/data",
                                 params={"session_hash": json.loads(r.request.content)["session_hash"]}) as s:
                    for line in s.iter_lines():
                        if "process_completed" in line:
                            break
                times.append(time.perf_counter() - t)
        out["raw fn_index results: seconds per call"] = [round(x, 3) for x in times]
        out["raw event"] = bool(event)
    c.close()
    return out


ATTACKS = ("flood", "monopoly", "upload", "sessions", "logs", "private")


def run(app: Path | None = None, only=ATTACKS) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="vgl-cache-"))
    result = {"app": str(app or ROOT / "app.py"), "loadavg_1min": round(os.getloadavg()[0], 2)}
    with AppServer(app=app, env={"GRADIO_TEMP_DIR": str(cache)}) as server:
        time.sleep(15)  # past the Compare warm-up
        result["rss_mib_start"] = round(rss_kib(server.proc.pid) / 1024, 1)
        for name in only:
            t = time.perf_counter()
            fn = globals()[name]
            figures = fn(server, cache) if name in ("upload", "sessions") else fn(server)
            figures["attack_seconds"] = round(time.perf_counter() - t, 1)
            figures["rss_mib_peak_after"] = round(rss_kib(server.proc.pid) / 1024, 1)
            result[name] = figures
            print(f"== {name}\n{json.dumps(figures, indent=1)}", flush=True)
            time.sleep(3)  # let cancelled runs end before the next attack
        result["alive_at_end"] = server.alive()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attacks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", type=Path, help="another app.py (its own folder) to attack instead of this one")
    parser.add_argument("--only", default=",".join(ATTACKS), help="comma-separated: " + ", ".join(ATTACKS))
    parser.add_argument("--json", type=Path, help="where to write the figures")
    args = parser.parse_args(argv)
    only = [a.strip() for a in args.only.split(",") if a.strip()]
    unknown = [a for a in only if a not in ATTACKS]
    if unknown:
        parser.error(f"unknown attack {unknown[0]!r}; choose from {', '.join(ATTACKS)}")
    result = run(args.app, only)
    out = args.json or RESULTS / f"attacks-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"alive at the end: {result['alive_at_end']}; figures in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
