"""What one visitor may cost everyone else: the Playground's own queue (ui.playground.RunQueue), the upload
budget, the cache's size cap and one-line refusals (ui.guard), and against the launched app: a flood from one
session leaves the others served, refusals name their control and log no traceback, private endpoints are not
in the API. bench/attacks.py replays the same attacks at full size and prints the figures."""
import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT
from ui import guard
from ui import playground as pg


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_one_run_per_visitor_by_session_or_address():
    q = pg.RunQueue()
    q.join(("session:a", "address:1.2.3.4"))
    for again in [("session:a", "address:5.6.7.8"), ("session:b", "address:1.2.3.4")]:
        with pytest.raises(pg.Refused, match="you already have a run training or waiting"):
            q.join(again)
    q.join(("session:c", "address:9.9.9.9"))  # another visitor may wait


def test_the_queue_is_bounded_and_a_refusal_says_how_busy_it_is():
    clock = Clock()
    q = pg.RunQueue(max_waiting=2, clock=clock)
    first = q.join(("session:0",))
    assert q.turn(first) == (0, 0.0)  # first in line: it takes the slot
    waiting = [q.join((f"session:{i}",)) for i in (1, 2)]
    with pytest.raises(pg.Refused, match=r"2 runs are waiting already \(the most allowed\), about 180 s"):
        q.join(("session:3",))
    # the running one's limit shrank to the shared one as soon as someone waited: 60 s left, then 60 s more
    assert first.stop.limit == pg.SHARED_LIMIT
    assert q.turn(waiting[0]) == (1, pytest.approx(60.0))
    assert q.turn(waiting[1]) == (2, pytest.approx(120.0))
    clock.now = 45.0
    assert q.turn(waiting[1]) == (2, pytest.approx(75.0))  # the running one has 15 s left
    q.leave(first)
    assert q.turn(waiting[0]) == (0, 0.0) and waiting[0].started == 45.0
    assert waiting[0].stop.limit == pg.SHARED_LIMIT  # someone still waits behind it
    assert q.turn(waiting[1]) == (1, pytest.approx(60.0))
    q.join(("session:3",))  # a place is free again


def test_a_run_keeps_its_full_limit_while_nobody_waits():
    q = pg.RunQueue()
    alone = q.join(("session:a",))
    q.turn(alone)
    assert alone.stop.limit == pg.TIME_LIMIT


def test_a_shortened_limit_stops_the_training_and_says_why():
    stop = pg.StopSwitch(limit=0.0)  # as RunQueue leaves it when someone has waited past the shared limit
    updates = list(pg.stream_training(pg.PlaygroundSettings(depth=2, width=8, epochs=3, train_size=500), stop))
    assert updates[-1].done and "stopped by the 0 s time limit" in updates[-1].stopped
    assert "who were waiting" in updates[-1].stopped
    assert len(updates) < 5


def test_the_upload_budget_refuses_what_passes_it_and_frees_as_the_window_moves():
    clock = Clock()
    budget = guard.UploadBudget(app=None, budget=10, window=60, clock=clock)
    assert budget.charge("a", 6) == 0.0
    assert budget.charge("b", 10) == 0.0  # each address has its own
    clock.now = 20.0
    assert budget.charge("a", 4) == 0.0
    assert budget.charge("a", 1) == pytest.approx(40.0)  # the first 6 leave the window at 60 s
    clock.now = 61.0
    assert budget.charge("a", 5) == 0.0
    assert budget.charge("a", 11) == 60  # more than the whole budget: never, within one window


def test_the_upload_budget_answers_429_before_reading_the_body():
    calls = []

    async def app(scope, receive, send):
        calls.append(scope["path"])

    budget = guard.UploadBudget(app, budget=100)
    sent = []

    async def send(message):
        sent.append(message)

    def request(size, path="/gradio_api/upload", headers=None):
        headers = headers if headers is not None else [(b"content-length", str(size).encode()),
                                                       (b"x-forwarded-for", b"203.0.113.9, 10.0.0.1")]
        scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "client": ("10.0.0.1", 1)}
        sent.clear()
        asyncio.run(budget(scope, None, send))
        return sent[0]["status"] if sent else None

    assert request(80) is None and calls == ["/gradio_api/upload"]  # passed on
    assert request(80) == 429 and b"Try again in" in sent[1]["body"]
    assert request(10**9, path="/gradio_api/queue/join") is None  # only uploads are counted
    assert request(0, headers=[]) == 411
    assert len(calls) == 2


def test_trim_cache_deletes_the_oldest_first(tmp_path):
    for i in range(5):
        f = tmp_path / f"d{i}" / "f.bin"
        f.parent.mkdir()
        f.write_bytes(b"x" * 1000)
        os.utime(f, (1000 + i, 1000 + i))
    assert guard.trim_cache(tmp_path, 2500) == 3000
    assert sorted(p.parent.name for p in tmp_path.rglob("*.bin")) == ["d3", "d4"]


def test_trim_cache_never_deletes_the_pages_own_files(tmp_path):
    files = []
    for i in range(5):
        f = tmp_path / f"d{i}" / "f.bin"
        f.parent.mkdir()
        f.write_bytes(b"x" * 1000)
        os.utime(f, (1000 + i, 1000 + i))
        files.append(f)
    assert guard.trim_cache(tmp_path, 2500, keep=[str(files[0])]) == 2000  # the oldest is the page's: kept
    assert sorted(p.parent.name for p in tmp_path.rglob("*.bin")) == ["d0", "d3", "d4"]


def test_the_pages_own_files_are_what_gradio_keeps_and_the_examples_are_not_in_the_cache():
    """The page's files copied at build (the Results depth figure, ...) are guard.page_files, kept by the cap;
    the example thumbnails are served from assets/ (a static path), never from the cache, so no clean-up of the
    cache can take them away (a 403 for every thumbnail once it had)."""
    import app
    kept = guard.page_files(app.demo)
    cache = Path(app.demo.GRADIO_CACHE).resolve()
    assert kept and all(Path(k).resolve().is_relative_to(cache) and Path(k).is_file() for k in kept)
    icons = [b.icon for b in app.demo.blocks.values() if getattr(b, "icon", None)]
    examples = (ROOT / "assets" / "examples").resolve()
    assert len(icons) == len(list(examples.iterdir()))
    assert all(Path(i["path"]).resolve().parent == examples for i in icons), icons[:2]


def test_a_refused_request_logs_one_short_line():
    record = logging.LogRecord("gradio", logging.ERROR, __file__, 1, "refused: %s", ("A" * 10_000,), None)
    try:
        raise ValueError("B" * 10_000)
    except ValueError:
        import sys
        record.exc_info = sys.exc_info()
    guard.OneLine().filter(record)
    line = record.getMessage()
    assert record.exc_info is None and "\n" not in line and len(line) < 260 and "traceback not logged" in line


# ------------------------------------------------------------------------------------------ the launched app

RUN = dict(depth=3, width=64, activation="sigmoid", init_std=0.05, norm="none", skips=False, grad_norm=False,
           optimizer="sgd", lr=0.01, epochs=20, train_size=20000, batch_size=64)
@pytest.mark.app
def test_a_flood_of_runs_from_one_session_leaves_the_others_served(server):
    """bench.attacks' flood, smaller: 30 runs joined from one session in a burst, while another visitor calls
    /compare. Before the Playground had its own queue, every one of those calls got "Queue is full"."""
    from bench.attacks import flood
    result = flood(server, runs=30, others=5)
    assert result["join_status"] == {"200": 30}
    assert result["other_visitor_errors"] == {} and result["other_visitor_compare_s"]["n"] == 5
    told = result["runs_answered_while_others_called"]
    assert sum(n for why, n in told.items() if "you already have a run training or waiting" in why) == 29, told
    assert server.alive()


@pytest.mark.app
def test_refusals_name_their_control_and_log_no_traceback(server):
    client = server.client()
    before = server.log.stat().st_size
    for changes, message in [({"activation": "evil"}, "Activation must be one of sigmoid, tanh, relu; got 'evil'"),
                             ({"batch_size": 7}, "Batch size must be a whole number from 16 to 4,096, got 7"),
                             ({"lr": int("9" * 400)}, "Learning rate must be a finite number, got a whole number "
                                                      "of about 400 digits")]:
        with pytest.raises(Exception) as e:
            client.predict(*{**RUN, **changes}.values(), "baseline", api_name="/playground")
        assert message in str(e.value)
    with pytest.raises(Exception, match="Reference: 'nope' is not a method here"):
        client.predict(*RUN.values(), "nope", api_name="/playground")
    time.sleep(0.5)
    logged = server.log.read_text(errors="replace")[before:]
    assert "Traceback" not in logged and "9999999999" not in logged and "evil" not in logged


@pytest.mark.app
def test_the_pages_own_endpoints_are_not_in_the_api(server):
    client = server.client()
    assert set(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == {
        "/compare", "/classify", "/explain"}
    for name in ("/classify_and_view", "/results"):
        with pytest.raises(ValueError, match="Cannot find a function"):
            client.predict("baseline", "relu", api_name=name)
