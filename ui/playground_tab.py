"""The Playground tab of the app: its settings widgets, the streamed training events (Train, Stop, a new
reference), the ended run's downloads and their layout; share() wires the ways in from outside the tab (Compare's
Open in Playground, a link with Playground settings). UI wiring only: training and export are ui.playground's,
the words ui.pages'.

The training call itself (train) is defined here, at import: on ZeroGPU, spaces.GPU needs the decorated
function to exist when the module is imported. Everything else a run shares lives in tab()'s closures: the
app's Lab, the sessions' stop switches and the app's `idle` event.
"""
from __future__ import annotations

import json
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import gradio as gr
import torch

from . import guard, pages, widgets
from . import playground as pg
from .compare import method_chart
from .lab import Lab
from .widgets import user_errors

try:  # on a ZeroGPU Space, calls decorated with spaces.GPU get a GPU; the app runs without the package too
    import spaces
except ImportError:
    spaces = None

GPU_MARGIN = 30  # seconds of GPU asked for beyond the run's time limit: loading the data, the final test pass
WAIT_POLL = 0.5  # seconds between looks at the Playground's queue while a run waits for the slot


def visitor(request: gr.Request | None) -> tuple[str, ...]:
    """Who clicked Train, as the Playground's queue counts visitors: the page's session and the client's
    address (ui.guard.first_hop). A forged header can only make one client look like several, which the
    queue's MAX_WAITING still bounds."""
    session = getattr(request, "session_hash", None)
    headers = getattr(request, "headers", None) or {}
    host = guard.first_hop(headers.get("x-forwarded-for"), getattr(getattr(request, "client", None), "host", None))
    return tuple(k for k in (f"session:{session}" if session else None, f"address:{host}" if host else None) if k)


def _train(settings: pg.PlaygroundSettings, stop: pg.StopSwitch, time_limit: float):
    """The run's epochs, on the GPU when there is one (on ZeroGPU: only inside this call), else the CPU."""
    yield from pg.stream_training(settings, stop, time_limit, "cuda" if torch.cuda.is_available() else "cpu")


def _gpu_seconds(settings: pg.PlaygroundSettings, stop: pg.StopSwitch, time_limit: float) -> int:
    """How long a run may hold a ZeroGPU GPU: its time limit (it never trains longer) and a margin."""
    return int(time_limit) + GPU_MARGIN


# The Playground's training, on the GPU when the Space has one: spaces.GPU is effect-free off ZeroGPU.
train = spaces.GPU(duration=_gpu_seconds)(_train) if spaces is not None else _train


def playground_controls() -> dict[str, gr.components.Component]:
    """The settings widgets, each under the PlaygroundSettings field it sets; their defaults are the baseline."""
    d, policy = pg.PlaygroundSettings(), pg.POLICY
    slider = lambda name, step, label: widgets.RawSlider(policy[name].lo, policy[name].hi, value=getattr(d, name),
                                                         step=step, label=label)
    return {
        "depth": slider("depth", 1, "Depth (hidden layers)"),
        "width": slider("width", 8, "Width (units per layer)"),
        "activation": widgets.RawRadio(list(policy["activation"].options), value=d.activation, label="Activation"),
        "init_std": widgets.RawNumber(d.init_std, label="Init std (weights ~ N(0, std); 0 < std ≤ "
                                                        f"{policy['init_std'].hi:g})"),
        "norm": widgets.RawRadio(list(policy["norm"].options), value=d.norm, label="Normalization"),
        "skips": gr.Checkbox(d.skips, label="Skip connections (1→3, 4→6, ...; depth ≥ 3)"),
        "grad_norm": gr.Checkbox(d.grad_norm, label="Gradient normalization"),
        "optimizer": widgets.RawRadio(list(policy["optimizer"].options), value=d.optimizer, label="Optimizer"),
        "lr": widgets.RawNumber(d.lr, label=f"Learning rate (0 < lr ≤ {policy['lr'].hi:g})"),
        "epochs": slider("epochs", 1, "Epochs"),
        "train_size": slider("train_size", 500, "Training images"),
        "batch_size": widgets.RawDropdown(list(pg.BATCH_SIZES), value=d.batch_size, label="Batch size"),
    }


@dataclass
class PlaygroundTab:
    """What share() wires from other tabs into the Playground: its settings widgets (by field name), the
    reference picker, its notice, and its gr.Tab id."""
    controls: dict[str, gr.components.Component]
    reference: gr.Dropdown
    notice: gr.Markdown
    id: str = pg.URL_TAB


def url_js(returns: str | None = None) -> str:
    """Browser code that writes the Playground's settings into the address (ui.playground.to_query's keys; the
    inputs are the widgets of URL_KEYS' settings in that order, then the reference), keeping every other
    parameter (the Compare chart's pair, statistic and epoch). It returns `returns` (a JSON value) for the
    event's output, if any."""
    keys = json.dumps(list(pg.URL_KEYS))
    back = f"return {returns};" if returns is not None else ""
    return (f"(...values) => {{ const keys = {keys}; const q = new URLSearchParams(location.search); "
            f"q.set('tab', {json.dumps(pg.URL_TAB)}); "
            "keys.forEach((k, i) => q.set(k, typeof values[i] === 'boolean' ? (values[i] ? '1' : '0') "
            ": String(values[i]))); "
            "q.set('ref', String(values[keys.length])); "
            f"history.replaceState(null, '', `${{location.pathname}}?${{q}}`); {back} }}")


def tab(lab: Lab, choices, idle: threading.Event) -> PlaygroundTab:
    """The Playground tab and its events. `lab`: the pre-trained methods a run is shown beside; `idle`: cleared
    while a run trains (the app's start-up work waits for it between steps)."""
    stops: dict[str, threading.Event] = {}  # session hash -> the stop switch of its running training
    runs = pg.RunQueue()  # the Playground's own queue: one training, a few waiting, one per visitor

    def reference_data(name: str) -> dict:
        """The pre-trained method's side of the Playground chart (its Compare chart data, made once)."""
        data = method_chart(lab, name)
        return {**data, "problem_note": "unavailable: its checkpoint could not be loaded"} if data["problem"] else data

    def status(update: pg.PlaygroundUpdate, reference: str) -> str:
        entry = lab.entry(reference)
        return pages.playground_status(update, entry.metrics, entry.method.title)

    @user_errors
    async def playground(request: gr.Request, reference: str, **controls):
        """Train the visitor's network, yielding the chart's data (ui.playground.chart: the run so far beside the
        reference, drawn in the browser) and the status after every epoch (and the run itself, for the Stop button
        and a later change of reference). `controls` are the settings widgets' values by PlaygroundSettings field
        name (the event's inputs_kwargs), never by position. An update is JSON built in a few milliseconds: no
        figure is drawn on the server, so epochs follow each other with no pause in between.

        An async generator so that a cancelled or abandoned run is noticed at once: each epoch runs in a worker
        thread that the event loop stops waiting for (abandon_on_cancel), and the finally block flips the stop
        switch train_epochs checks before every batch, so the thread ends within a batch and the concurrency
        slot is free for the next visitor."""
        settings = pg.settings_from_inputs(controls)
        lab.entry(reference, "Reference")
        ref = reference_data(reference)
        ticket = runs.join(visitor(request))  # one run per visitor; a refusal is a message, at once
        key = getattr(request, "session_hash", None) or str(id(ticket))
        stop = ticket.stop
        stops[key] = stop
        steps = None
        try:
            said = None
            while (place := runs.turn(ticket))[0] > 0 and not stop.is_set():  # waiting: say where, how long at most
                if (words := pages.playground_waiting(*place)) != said:
                    said = words
                    yield gr.skip(), words, gr.skip(), gr.skip()
                await anyio.sleep(WAIT_POLL)
            if stop.is_set():
                return
            idle.clear()
            steps = train(settings, stop, stop.limit)  # the ZeroGPU duration follows the limit it starts with
            while (update := await anyio.to_thread.run_sync(next, steps, None, abandon_on_cancel=True)) is not None:
                # `last` without the model (it is kept for every session), `finished` with it until the
                # downloads are written (offer_downloads then drops it)
                yield (pg.chart(update, ref), status(update, reference), (replace(update, model=None), reference),
                       update)
        finally:
            stop.set()  # finished, failed, cancelled or disconnected: the training thread stops within a batch
            try:
                if steps is not None:
                    steps.close()  # on ZeroGPU the switch cannot reach the worker: closing the stream stops it
            except ValueError:  # the stream is busy in its abandoned worker thread: the switch ends it there
                pass
            runs.leave(ticket)
            idle.set()
            if stops.get(key) is stop:
                del stops[key]

    def playground_ended(last):
        """The status after a Train click that led to no run, or to one cut short (the train event failed: a
        refused setting, whose message is a toast, or a cancelled run): what the page shows again, the text
        before any run or the last run's final status. A run cut short keeps its own (stop_playground's, or the
        last epoch's beside the error's toast)."""
        if last is None:
            return pages.PLAYGROUND_IDLE
        return status(*last) if last[0].done else gr.skip()

    async def stop_playground(last, request: gr.Request):
        """The Stop button: flip the session's stop switch. The button also cancels the train event, which
        drops a run still waiting in the queue and ends a running one before it can say so: the status saying
        where it stopped comes from here, from the last epoch the page showed."""
        stop = stops.get(getattr(request, "session_hash", None) or "")
        if stop is not None:
            stop.set()
        if last is None or last[0].done:  # no run going (a run waiting in the queue is dropped)
            return playground_ended(last)
        update, reference = last
        why = f"stopped at your request during epoch {update.epoch + 1}"
        return status(replace(update, stopped=why, done=True), reference)

    @user_errors
    def redraw_playground(last, reference: str):
        """A new reference: the last run redrawn beside it, or before any run the reference alone. (A run in
        progress keeps its own.)"""
        if last is not None and not last[0].done:
            return gr.skip(), gr.skip()
        if last is None:
            return pg.chart(None, reference_data(reference)), gr.skip()
        return pg.chart(last[0], reference_data(reference)), status(last[0], reference)

    @user_errors
    def offer_downloads(finished: pg.PlaygroundUpdate | None):
        """The ended run's files for the download buttons, written into a temp folder of this run
        (pg.export_run), which is removed once Gradio has copied them into its cache: after this generator's
        only update has been sent, when Gradio asks it for the next. The run's model is dropped from the
        session's state. A run Stop ended (its last update is not `done`) is exported as of its last epoch."""
        if finished is None or finished.model is None:  # no run ended since the last export
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), None
            return
        if not finished.done:
            why = f"stopped at your request during epoch {finished.epoch + 1}"
            finished = replace(finished, done=True, stopped=why)
        with tempfile.TemporaryDirectory(prefix="vgl-playground-") as folder:
            files = pg.export_run(finished, Path(folder))
            yield (gr.Column(visible=True), *(gr.DownloadButton(value=str(path)) for path in files), None)

    with gr.Tab("Playground", id=pg.URL_TAB):
        gr.Markdown(pages.PLAYGROUND_INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                controls = playground_controls()
                reference = widgets.RawDropdown(choices, value="baseline",
                                        label="Reference: a pre-trained method shown beside yours")
                with gr.Row():
                    train_button = gr.Button("Train", variant="primary")
                    stop_button = gr.Button("Stop", variant="stop")
            with gr.Column(scale=2):
                # where the settings came from (share()): shown once a link or Open in Playground set them
                notice = gr.Markdown(elem_id="playground-notice", visible=False)
                shown_status = gr.Markdown(pages.PLAYGROUND_IDLE, elem_id="playground-status")
                # your run (left) beside the reference at the same epoch, as on Compare; before a run, the
                # reference alone
                chart = widgets.chart(pg.chart(None, reference_data("baseline")), "playground-chart",
                                      "Your network vs the reference: per-layer diagnostics and training curves (data)")
                # the ended run's files, shown once a run has ended (offer_downloads)
                with gr.Column(visible=False, elem_id="playground-downloads") as downloads_box:
                    gr.Markdown(pages.DOWNLOADS_HELP)
                    with gr.Row():
                        downloads = [gr.DownloadButton(label, size="sm", min_width=120,
                                                       elem_id=f"playground-download-{i}")
                                     for i, label in enumerate(pages.DOWNLOAD_LABELS)]
        last = gr.State(None)  # (last update, reference) of the session's run: for Stop and redraws
        finished = gr.State(None)  # the run's latest update with its model, until its files are written
    shown = [chart, shown_status]
    # One Playground run at a time for everyone, but in the Playground's own queue (pg.RunQueue), not Gradio's:
    # every Train click reaches playground() at once (no concurrency limit: a waiting run is an async sleep, no
    # worker), which refuses a visitor's second run or a sixth waiting one with a message, so a flood of clicks
    # never fills Gradio's queue, which Compare and Classify share. The settings reach playground() by name; an
    # API caller sends them in the controls' order, then the reference.
    # the status says at once that the click was taken (in the browser, with no request); the run's updates
    # replace it, and if none comes (a refused setting, a run dropped from the queue) the text it replaced
    # comes back
    # The click also writes the settings into the page's address (url_js), so the address is a link to them.
    in_url = [controls[name] for name in pg.URL_KEYS.values()] + [reference]
    train_button.click(None, in_url, shown_status, js=url_js(json.dumps(pages.PLAYGROUND_STARTING)),
                       api_visibility="private")
    train_button.click(lambda: gr.Column(visible=False), None, downloads_box, api_visibility="private",
                       queue=False, show_progress="hidden")  # the previous run's files go with it
    training = train_button.click(
        playground, inputs_kwargs={**controls, "reference": reference}, outputs=[*shown, last, finished],
        api_name="playground", api_visibility="undocumented", concurrency_limit=None, concurrency_id="playground",
        show_progress_on=[chart])
    offered = [downloads_box, *downloads, finished]
    training.success(offer_downloads, finished, offered, api_visibility="private", concurrency_limit=2,
                     show_progress="hidden")
    training.failure(playground_ended, last, shown_status, api_visibility="private", concurrency_limit=None,
                     concurrency_id="playground_stop")
    stop_button.click(stop_playground, last, shown_status, api_name="playground_stop", api_visibility="undocumented",
                      cancels=[training], concurrency_limit=None, concurrency_id="playground_stop").then(
        offer_downloads, finished, offered, api_visibility="private", concurrency_limit=2, show_progress="hidden")
    reference.change(redraw_playground, [last, reference], shown, api_visibility="private", concurrency_limit=2)
    return PlaygroundTab(controls, reference, notice)


def share(demo: gr.Blocks, lab: Lab, playground: PlaygroundTab, tabs: gr.Tabs, pickers: gr.Row,
          opens: list[tuple[gr.Dropdown, gr.Button]]) -> None:
    """The ways into the Playground from outside it: each (picker, button) of `opens` (Compare's Open in
    Playground under each card) fills its settings with the picked method's recipe (pg.from_method) and makes
    that method the reference; a link with ?tab=playground&... (pg.to_query, written by Train) restores its
    settings when the page opens. Both select the Playground tab and hide the method pickers, as
    ui.tabs.pickers_follow does when a visitor selects it (a tab selected by an event sends no select)."""
    names = list(playground.controls)
    filled = [*playground.controls.values(), playground.reference, tabs, pickers, playground.notice]

    def shown(settings: pg.PlaygroundSettings, reference, notice: str) -> list:
        return [*(gr.update(value=getattr(settings, name)) for name in names), reference,
                gr.Tabs(selected=playground.id), gr.Row(visible=False), gr.Markdown(notice, visible=True)]

    @user_errors
    def open_method(name: str):
        entry = lab.entry(name, "Method")  # the picker's value arrives unchecked (widgets.RawDropdown)
        settings, left_out = pg.from_method(entry.method)
        return shown(settings, gr.update(value=name), pages.opened_from_method(entry.method.title, left_out))

    def from_link(request: gr.Request):
        query = getattr(request, "query_params", None) or {}
        if query.get("tab") != playground.id:
            return [gr.skip()] * len(filled)
        settings, ignored = pg.from_query(query)
        ref = query.get("ref")
        if ref is not None and ref not in lab.entries:
            ignored.append("ref: not one of the methods here")
        reference = gr.update(value=ref) if ref in lab.entries else gr.skip()
        return shown(settings, reference, pages.restored_from_link(ignored))

    in_url = [playground.controls[name] for name in pg.URL_KEYS.values()] + [playground.reference]
    for picker, button in opens:
        button.click(open_method, picker, filled, api_visibility="private", queue=False).success(
            None, in_url, None, js=url_js(), api_visibility="private")
    demo.load(from_link, None, filled, api_visibility="private", queue=False, show_progress="hidden")
