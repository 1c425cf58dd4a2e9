"""Vanishing Gradient Lab: the Gradio app. Only UI wiring: the event functions, then one builder per tab (its
components and their events). What the app computes lives in core/ (core.lab, core.playground), the words it
shows in core.pages, the components that pass a visitor's values on unchecked in widgets.py."""
from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from pathlib import Path

import anyio
import gradio as gr
import torch

from core import pages
from core import playground as pg
from core.checkpoint import ROOT
from core.lab import DEFAULT_PAIR, Lab, render
from core.methods import METHODS
from core.upload import MAX_BYTES, ImageError
from widgets import RawNumber, RawSlider, UploadedImage, user_errors

# One intra-op thread per torch call, process-wide. The app serves several visitors at once on a small CPU, and
# when torch calls together ask for more OpenMP threads than there are free cores, the threads wait on each other
# and every call gets slower (bench/playground_speed.py --threads N measures it on this machine).
torch.set_num_threads(int(os.environ.get("VGL_TORCH_THREADS", "1")))

ASSETS = Path(__file__).resolve().parent / "assets"

# VGL_CHECKPOINTS points the app at another checkpoint folder (the tests use it for broken checkpoints).
lab = Lab(Path(os.environ.get("VGL_CHECKPOINTS", ROOT)))


def _warn_unavailable(*names: str) -> None:
    """A toast for each chosen method whose checkpoint could not be loaded (its outputs stay empty)."""
    for name in names:
        if lab.entry(name).error:
            gr.Warning(f"{METHODS[name].title}: {lab.entry(name).error}")


# --- Compare, Classify, Results ----------------------------------------------------------------------
@user_errors
def compare(left: str, right: str):
    """The pair's cards, PNG figures and epoch range (the outputs /compare has always had, in that order),
    then the browser chart's data (core.charts.pair_data): all of it composed from per-method parts made
    once, so any pair answers in milliseconds."""
    c = lab.rendered_comparison(left, right)
    _warn_unavailable(left, right)
    return (*c.cards, c.gradient_flow, c.curves, c.weight_change, *c.predictions,
            gr.Slider(maximum=c.max_epoch, value=c.max_epoch), c.chart)


@user_errors
def classify(image, left: str, right: str):
    if image is None:
        raise ImageError("Upload, paste or pick an image first")
    probs_left, probs_right, _ = lab.classify(image, left, right)
    _warn_unavailable(left, right)
    return probs_left, probs_right


@user_errors
def explain(image, left: str, right: str):
    """/explain: each method's input-gradient map |d logit of its predicted class / d pixel| for the image, both
    on one shared logarithmic colour scale; that scale as a colour bar with its tick values; and each side's
    numbers as JSON (Lab.explain: predicted class, mean |gradient| reaching the input and hidden layer 1's
    pre-activation, the scale; a method whose checkpoint is unavailable: "available": false and why)."""
    if image is None:
        raise ImageError("Upload, paste or pick an image first")
    e = lab.explain(image, left, right)
    _warn_unavailable(left, right)
    return *e.images, e.colorbar, *e.numbers


@user_errors
def classify_and_view(image, left: str, right: str):
    """What the page shows for an image: both top-5s, the enlarged model input and both gradient maps with
    their scale, numbers and notes, from one preprocessing (one event, so a bad upload gives one message,
    not one per output)."""
    if image is None:  # the image was cleared: clear what it showed
        return {}, {}, None, None, None, None, None, None, "", "", ""
    x, preview = lab.model_input(image, left, right)
    e = lab.explain_input(x, left, right)
    _warn_unavailable(left, right)
    return (lab.probabilities(left, x), lab.probabilities(right, x), lab.enlarged(preview),
            *e.images, e.colorbar, *e.numbers, *e.cards, e.note)


@user_errors
def results(left: str, right: str):
    return render(lab.results_figure(left, right))


# --- Playground --------------------------------------------------------------------------------------
_stops: dict[str, threading.Event] = {}  # session hash -> the stop switch of its running training
# Cleared while a Playground run trains: the app's start-up work (lab.warm) waits for it between steps.
_no_training = threading.Event()
_no_training.set()
# The status from the Train click to the run's first epoch: a moment, or the wait for another visitor's run.
PLAYGROUND_STARTING = ("Starting… If another visitor's run is going, yours waits for it and starts by itself when "
                       "it ends: your place in the queue and the estimated wait show on the chart below.")


def _reference(name: str) -> dict:
    """The pre-trained method's side of the Playground chart (its Compare chart data, made once)."""
    data = lab.chart_data(name)
    return {**data, "problem_note": "unavailable: its checkpoint could not be loaded"} if data["problem"] else data


def _status(update: pg.PlaygroundUpdate, reference: str) -> str:
    entry = lab.entry(reference)
    return pages.playground_status(update, entry.metrics, entry.method.title)


@user_errors
async def playground(request: gr.Request, reference: str, **controls):
    """Train the visitor's network, yielding the chart's data (core.playground.chart: the run so far beside the
    reference, drawn in the browser) and the status after every epoch (and the run itself, for the Stop button
    and a later change of reference). `controls` are the settings widgets' values by PlaygroundSettings field
    name (the event's inputs_kwargs), never by position. An update is JSON built in a few milliseconds: no
    figure is drawn on the server, so epochs follow each other with no pause in between.

    An async generator so that a cancelled or abandoned run is noticed at once: each epoch runs in a worker
    thread that the event loop stops waiting for (abandon_on_cancel), and the finally block flips the stop
    switch train_epochs checks before every batch, so the thread ends within a batch and the concurrency
    slot is free for the next visitor."""
    settings = pg.settings_from_inputs(controls)
    ref = _reference(reference)
    stop = threading.Event()
    key = getattr(request, "session_hash", None) or str(id(stop))
    _stops[key] = stop
    steps = pg.stream_training(settings, stop)
    _no_training.clear()
    try:
        while (update := await anyio.to_thread.run_sync(next, steps, None, abandon_on_cancel=True)) is not None:
            yield pg.chart(update, ref), _status(update, reference), (update, reference)
    finally:
        stop.set()  # finished, failed, cancelled or disconnected: the training thread stops within a batch
        _no_training.set()
        if _stops.get(key) is stop:
            del _stops[key]


def playground_ended(last):
    """The status after a Train click that led to no run, or to one cut short (the train event failed: a
    refused setting, whose message is a toast, or a cancelled run): what the page shows again, the text before
    any run or the last run's final status. A run cut short keeps its own (stop_playground's, or the last
    epoch's beside the error's toast)."""
    if last is None:
        return pages.PLAYGROUND_IDLE
    return _status(*last) if last[0].done else gr.skip()


async def stop_playground(last, request: gr.Request):
    """The Stop button: flip the session's stop switch. The button also cancels the train event, which
    drops a run still waiting in the queue and ends a running one before it can say so: the status saying
    where it stopped comes from here, from the last epoch the page showed."""
    stop = _stops.get(getattr(request, "session_hash", None) or "")
    if stop is not None:
        stop.set()
    if last is None or last[0].done:  # no run going (a run waiting in the queue is dropped)
        return playground_ended(last)
    update, reference = last
    why = f"stopped at your request during epoch {update.epoch + 1}"
    return _status(replace(update, stopped=why, done=True), reference)


@user_errors
def redraw_playground(last, reference: str):
    """A new reference: the last run redrawn beside it, or before any run the reference alone. (A run in
    progress keeps its own.)"""
    if last is not None and not last[0].done:
        return gr.skip(), gr.skip()
    if last is None:
        return pg.chart(None, _reference(reference)), gr.skip()
    return pg.chart(last[0], _reference(reference)), _status(last[0], reference)


# --- The page: the method pickers, then one builder per tab (its components, then its events) --------------
def pickers(choices) -> tuple[gr.Dropdown, gr.Dropdown]:
    """The title, a line per unavailable checkpoint, and the two method pickers the tabs follow."""
    gr.Markdown(pages.INTRO)
    for problem in lab.problems():
        gr.Markdown(f"⚠️ {problem}")
    with gr.Row():
        left = gr.Dropdown(choices, value=DEFAULT_PAIR[0], label="Left method", scale=1)
        right = gr.Dropdown(choices, value=DEFAULT_PAIR[1], label="Right method", scale=1)
    return left, right


def _figure(elem_id: str, label: str, **more) -> gr.Image:
    """A Compare figure: shown without its label (the figure has a title of its own), found by its elem_id."""
    return gr.Image(elem_id=elem_id, label=label, type="pil", interactive=False, show_label=False, **more)


# The per-layer chart is drawn in the browser (assets/charts.js): the statistic selector, the epoch slider and
# the player redraw there from the data /compare sends once per pair (or /playground after every epoch), with
# no request to the server.
CHART_JS, CHART_CSS = ((ASSETS / f"charts.{ext}").read_text() for ext in ("js", "css"))


def _chart(value, elem_id: str, label: str) -> gr.HTML:
    return gr.HTML(value, elem_id=elem_id, label=label, html_template='<div class="vgl"></div>',
                   css_template=CHART_CSS, js_on_load=CHART_JS, apply_default_css=False)


def compare_tab(pair: list, pair_changes: list) -> None:
    with gr.Tab("Compare"):
        with gr.Row():
            cards = [gr.Markdown(), gr.Markdown()]
        chart = _chart(None, "diagnostics", "Per-layer diagnostics and training curves (data)")
        with gr.Row():
            # min_width: one grid per row on a phone, where two side by side would be too small to read
            predictions = [_figure("preds-left", "Predictions (left)", min_width=360, buttons=["fullscreen"]),
                           _figure("preds-right", "Predictions (right)", min_width=360, buttons=["fullscreen"])]
        with gr.Accordion("The figures as images (PNG, to download)", open=False):
            flow = _figure("flow", "Gradient flow: mean |grad| per layer, input → output (log scale)",
                           buttons=["download"])
            with gr.Row():
                curves = _figure("curves", "Training curves", buttons=["download"])
                weight_change = _figure("weight-change", "Relative weight change per layer", buttons=["download"])
            # /compare's epoch range, kept for API callers; the page's epoch slider is the chart's own
            epoch = gr.Slider(0, 100, value=100, step=1, label="Epochs recorded", visible=False)
    gr.on(pair_changes, compare, pair, [*cards, flow, curves, weight_change, *predictions, epoch, chart],
          api_name="compare", concurrency_limit=4)


def classify_tab(pair: list) -> None:
    with gr.Tab("Classify"):
        gr.Markdown(pages.CLASSIFY_HELP)
        with gr.Row():
            image = UploadedImage(label="Your image", type="filepath", sources=["upload", "clipboard"], height=320)
            seen = gr.Image(label="What the models see (28x28)", type="numpy", interactive=False, height=320,
                            image_mode="L", format="png")  # exact pixels (the default WebP is lossy)
        examples = gr.Examples(sorted(str(p) for p in (ASSETS / "examples").iterdir()), inputs=image,
                               label="Examples: real FashionMNIST test images and photo-like versions")
        run = gr.Button("Classify", variant="primary")
        with gr.Row():
            labels = [gr.Label(num_top_classes=5, label="Left method"),
                      gr.Label(num_top_classes=5, label="Right method")]
        gr.Markdown(pages.GRADIENT_HELP)
        with gr.Row():
            maps, cards = [], []
            for side in ("Left", "Right"):
                with gr.Column(min_width=150):  # side by side even on a phone: the point is to compare them
                    # PNG, not the default WebP: lossy compression would blur the 28x28 squares and shift colours.
                    # No label or buttons on the map: on a phone they would cover its top rows (the card under
                    # it names the method).
                    maps.append(gr.Image(label=f"{side} method: |∂ logit / ∂ pixel|", type="numpy", format="png",
                                         interactive=False, show_label=False, buttons=[]))
                    cards.append(gr.Markdown())
        # the bar has its caption and tick values drawn in; 80 px high on a wide screen, its width on a phone
        colorbar = gr.Image(label="Colour scale of both maps (logarithmic)", type="numpy", format="png",
                            interactive=False, show_label=False, container=False, height=80, buttons=[])
        note = gr.Markdown()
        with gr.Accordion("The numbers as data (what the /explain endpoint returns)", open=False):
            with gr.Row():
                numbers = [gr.JSON(label="Left method"), gr.JSON(label="Right method")]
    explained = [*maps, colorbar, *numbers]
    shown = [*labels, seen, *explained, *cards, note]
    # /classify and /explain for code; the Classify button runs both, the maps once the labels have answered
    # (so a missing or bad image gives one message, not two).
    run.click(classify, [image, *pair], labels, api_name="classify", concurrency_limit=8).success(
        explain, [image, *pair], explained, api_name="explain", concurrency_limit=8)
    gr.on([image.input, *(picker.change for picker in pair)], classify_and_view, [image, *pair], shown,
          api_visibility="private", concurrency_limit=8)
    examples.load_input_event.then(classify_and_view, [image, *pair], shown, api_visibility="private",
                                   concurrency_limit=8)


def results_tab(pair: list, pair_changes: list) -> None:
    with gr.Tab("Results"):
        gr.Markdown(lab.results_markdown())
        plot = gr.Image(label="Test accuracy per method", type="pil", interactive=False)
        gr.Image(render(lab.depth_figure()), label="Depth study", type="pil", interactive=False)
    gr.on(pair_changes, results, pair, plot, api_visibility="private", concurrency_limit=2)


def playground_controls() -> dict[str, gr.components.Component]:
    """The settings widgets, each under the PlaygroundSettings field it sets; their defaults are the baseline."""
    d = pg.PlaygroundSettings()
    return {
        "depth": RawSlider(*pg.DEPTH, value=d.depth, step=1, label="Depth (hidden layers)"),
        "width": RawSlider(*pg.WIDTH, value=d.width, step=8, label="Width (units per layer)"),
        "activation": gr.Radio(list(pg.ACTIVATIONS), value=d.activation, label="Activation"),
        "init_std": RawNumber(d.init_std, label=f"Init std (weights ~ N(0, std); 0 < std ≤ {pg.INIT_STD_MAX:g})"),
        "norm": gr.Radio(list(pg.NORMS), value=d.norm, label="Normalization"),
        "skips": gr.Checkbox(d.skips, label="Skip connections (1→3, 4→6, ...; depth ≥ 3)"),
        "grad_norm": gr.Checkbox(d.grad_norm, label="Gradient normalization"),
        "optimizer": gr.Radio(list(pg.OPTIMIZERS), value=d.optimizer, label="Optimizer"),
        "lr": RawNumber(d.lr, label=f"Learning rate (0 < lr ≤ {pg.LR_MAX:g})"),
        "epochs": RawSlider(*pg.EPOCHS, value=d.epochs, step=1, label="Epochs"),
        "train_size": RawSlider(*pg.TRAIN_SIZE, value=d.train_size, step=500, label="Training images"),
        "batch_size": gr.Dropdown([32, 64, 128, 256, 512, 1024, 2048], value=d.batch_size, label="Batch size"),
    }


def playground_tab(choices) -> None:
    with gr.Tab("Playground"):
        gr.Markdown(pages.PLAYGROUND_INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                controls = playground_controls()
                reference = gr.Dropdown(choices, value="baseline",
                                        label="Reference: a pre-trained method shown beside yours")
                with gr.Row():
                    train_button = gr.Button("Train", variant="primary")
                    stop_button = gr.Button("Stop", variant="stop")
            with gr.Column(scale=2):
                status = gr.Markdown(pages.PLAYGROUND_IDLE, elem_id="playground-status")
                # your run (left) beside the reference at the same epoch, as on Compare; before a run, the
                # reference alone
                chart = _chart(pg.chart(None, _reference("baseline")), "playground-chart",
                               "Your network vs the reference: per-layer diagnostics and training curves (data)")
        last = gr.State(None)  # (last update, reference) of the session's run: for Stop and redraws
    shown = [chart, status]
    # One Playground run at a time for everyone (its own concurrency group, so it never takes the other
    # tabs' workers); later visitors wait in the queue and see their position on the chart. The settings
    # reach playground() by name; an API caller sends them in the controls' order, then the reference.
    # the status says at once that the click was taken (in the browser, with no request); the run's updates
    # replace it, and if none comes (a refused setting, a run dropped from the queue) the text it replaced
    # comes back
    train_button.click(None, None, status, js=f"() => {json.dumps(PLAYGROUND_STARTING)}", api_visibility="private")
    train = train_button.click(
        playground, inputs_kwargs={**controls, "reference": reference}, outputs=[*shown, last], api_name="playground",
        api_visibility="undocumented", concurrency_limit=1, concurrency_id="playground", show_progress_on=[chart])
    train.failure(playground_ended, last, status, api_visibility="private", concurrency_limit=None,
                  concurrency_id="playground_stop")
    stop_button.click(stop_playground, last, status, api_name="playground_stop", api_visibility="undocumented",
                      cancels=[train], concurrency_limit=None, concurrency_id="playground_stop")
    reference.change(redraw_playground, [last, reference], shown, api_visibility="private", concurrency_limit=2)


def about_tab() -> None:
    with gr.Tab("About"):
        gr.Markdown(pages.about())


def build() -> gr.Blocks:
    choices = lab.choices()
    # delete_cache: every upload and streamed figure is copied into Gradio's cache; drop them after a day.
    with gr.Blocks(title=pages.TITLE, delete_cache=(3600, 86400)) as demo:
        pair = list(pickers(choices))
        pair_changes = [demo.load, *(picker.change for picker in pair)]
        with gr.Tabs():
            compare_tab(pair, pair_changes)
            classify_tab(pair)
            results_tab(pair, pair_changes)
            playground_tab(choices)
            about_tab()
    # No single visitor can hold more than a few workers; the rest of the queue keeps moving.
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


demo = build()

if __name__ == "__main__":
    # The pair every visitor's page opens with, drawn before serving (~1-2 s), so that its answer is instant.
    # Then, off the serving thread: the Playground's data and torch's warm-up first (pg.warm, ~2 s), so that
    # a run started as soon as the page opens is as quick as the next ones; then every method's Compare panels
    # (any pair is then instant too, ~15-30 s), held back while a Playground run trains: drawing them beside
    # a run made it three times slower.
    lab.warm(pairs=[DEFAULT_PAIR])
    threading.Thread(target=lambda: (pg.warm(), lab.warm(pause=_no_training.wait)), daemon=True).start()
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                max_file_size=MAX_BYTES, show_error=True, head=f"<style>{(ASSETS / 'page.css').read_text()}</style>")
