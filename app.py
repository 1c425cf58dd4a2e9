"""Vanishing Gradient Lab: the Gradio app. Only UI wiring; every computation lives in core/ (core.lab)."""
from __future__ import annotations

import functools
import inspect
import os
import shutil
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import anyio
import gradio as gr
import pandas as pd
import torch

from core import playground as pg
from core.checkpoint import ROOT
from core.lab import DEFAULT_PAIR, Lab, render
from core.methods import METHODS
from core.preprocess import MAX_BYTES, ImageError

# One intra-op thread per torch call, process-wide. The app serves several visitors at once on a small CPU;
# with more OpenMP threads than free cores they wait on each other: the Playground's default epoch took
# 0.23 s with 1 thread and 2.9 s with 2 while other processes kept both cores busy (bench/playground_speed.py).
torch.set_num_threads(int(os.environ.get("VGL_TORCH_THREADS", "1")))

ASSETS = Path(__file__).resolve().parent / "assets"
ABOUT = (ASSETS / "about.md").read_text()

# VGL_CHECKPOINTS points the app at another checkpoint folder (the tests use it for broken checkpoints).
lab = Lab(Path(os.environ.get("VGL_CHECKPOINTS", ROOT)))


class UploadedImage(gr.Image):
    """gr.Image whose event functions get the uploaded bytes untouched. gr.Image itself opens and re-encodes
    uploads with PIL first (a decompression bomb would be decoded, a 16-bit PNG turned white, a text file
    answered with a generic error); core.preprocess.open_image does that job safely and explains failures."""
    is_template = True  # rendered by the frontend as a plain Image

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):  # pasted as a data URL
            import base64
            return base64.b64decode(payload.url.split(",", 1)[-1])
        return payload.path


USER_ERRORS = (ImageError, ValueError)


def _user_errors(fn):
    """Bad input becomes one clear message on the page (gr.Error), never a traceback. Generators (sync or
    async) raise while they are iterated, not when called, so they get a wrapper of their own kind: Gradio
    looks at the function's kind to stream it. functools.wraps keeps the signature, so gr.Request and
    gr.Progress parameters are still injected."""
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def wrapped(*args, **kwargs):
            inner = fn(*args, **kwargs)
            try:
                async for item in inner:
                    yield item
            except USER_ERRORS as e:
                raise gr.Error(str(e), print_exception=False) from None
            finally:
                await inner.aclose()  # closing the wrapper (a cancelled run) closes the real generator
    elif inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except USER_ERRORS as e:
                raise gr.Error(str(e), print_exception=False) from None
    else:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except USER_ERRORS as e:
                raise gr.Error(str(e), print_exception=False) from None
    return wrapped


class RawSlider(gr.Slider):
    """gr.Slider whose value reaches the event function as sent. gr.Slider checks its own bounds first and
    answers "Value 11 is greater than maximum value 10", naming no control (and fails on a string with a
    TypeError); core.playground checks every value and says which control is wrong and what it allows."""
    is_template = True

    def preprocess(self, payload):
        return payload


class RawNumber(gr.Number):
    """gr.Number, value passed as sent, for the same reason as RawSlider."""
    is_template = True

    def preprocess(self, payload):
        return payload


def _warn_unavailable(*names: str) -> None:
    """A toast for each chosen method whose checkpoint could not be loaded (its outputs stay empty)."""
    for name in names:
        if lab.entry(name).error:
            gr.Warning(f"{METHODS[name].title}: {lab.entry(name).error}")


@_user_errors
def compare(left: str, right: str):
    c = lab.rendered_comparison(left, right)
    _warn_unavailable(left, right)
    return (*c["cards"], c["gradient_flow"], c["curves"], c["weight_change"], *c["predictions"],
            gr.Slider(maximum=c["max_epoch"], value=c["max_epoch"]))


@_user_errors
def gradient_flow_at(left: str, right: str, epoch: float):
    return render(lab.gradient_flow(left, right, int(epoch)))


@_user_errors
def classify(image, left: str, right: str):
    if image is None:
        raise ImageError("Upload, paste or pick an image first")
    probs_left, probs_right, _ = lab.classify(image, left, right)
    _warn_unavailable(left, right)
    return probs_left, probs_right


@_user_errors
def classify_and_view(image, left: str, right: str):
    """What the page shows for an image: both top-5s and the enlarged model input, from one preprocessing
    (one event, so a bad upload gives one message, not one per output)."""
    if image is None:
        return {}, {}, None
    probs_left, probs_right, preview = lab.classify(image, left, right)
    _warn_unavailable(left, right)
    return probs_left, probs_right, lab.enlarged(preview)


@_user_errors
def results(left: str, right: str):
    return render(lab.results_figure(left, right))


# --- Playground --------------------------------------------------------------------------------------
PLAYGROUND_INTRO = f"""Build your own deep network and watch its gradients flow while it trains on real FashionMNIST.
Set the controls and press **Train**: after every epoch (and at epoch 0, before any update) the page shows how
much gradient reaches each layer, the loss and accuracy curves and the test accuracy so far, beside a
pre-trained method of your choice at the same epoch. Defaults are the baseline: change one thing and watch
what it does to the first layers' gradient.

**One run at a time.** Training shares this small CPU with every visitor, so only one Playground run goes at
once. If someone else's run is going when you press Train, yours waits in the queue: the gradient-flow panel shows
your place in the queue and an estimated wait, and your run starts by itself when theirs ends (every run stops after
at most {pg.TIME_LIMIT / 60:.0f} minutes). The other tabs keep working meanwhile. **Stop** ends your run
within a batch and keeps what it has drawn."""

PLAYGROUND_IDLE = ("Press **Train** to start. The default run (10 epochs on 10,000 images) takes about ten "
                   "seconds when the server is not busy.")


_stops: dict[str, threading.Event] = {}  # session hash -> the stop switch of its running training


def _curves(update: pg.PlaygroundUpdate, reference: dict | None):
    rows = pg.curve_rows(update, reference)
    x_lim = [0, update.total_epochs]
    return (gr.LinePlot(pd.DataFrame(rows["loss"], columns=["epoch", "value", "series"]), x_lim=x_lim),
            gr.LinePlot(pd.DataFrame(rows["accuracy"], columns=["epoch", "value", "series"]), x_lim=x_lim))


def _status(update: pg.PlaygroundUpdate, reference: str) -> str:
    entry = lab.entry(reference)
    return pg.status_markdown(update, entry.metrics, entry.method.title)


@_user_errors
async def playground(depth, width, activation, init_std, norm, skips, grad_norm, optimizer, lr, epochs,
                     train_size, batch_size, reference: str, request: gr.Request):
    """Train the visitor's network, yielding the gradient flow, the curves and the status after every epoch
    (and the run itself, for the Stop button and a later change of reference).

    An async generator so that a cancelled or abandoned run is noticed at once: each epoch runs in a worker
    thread that the event loop stops waiting for (abandon_on_cancel), and the finally block flips the stop
    switch train_epochs checks before every batch, so the thread ends within a batch and the concurrency
    slot is free for the next visitor. Epochs and drawing alternate rather than overlap: in one process
    they compete for the GIL and a thread overlap measured slower (bench/playground_speed.py)."""
    settings = pg.settings_from_inputs(depth, width, activation, init_std, norm, skips, grad_norm, optimizer,
                                       lr, epochs, train_size, batch_size)
    metrics = lab.entry(reference).metrics
    stop = threading.Event()
    key = getattr(request, "session_hash", None) or str(id(stop))
    _stops[key] = stop
    steps = pg.stream_training(settings, stop)
    folder = tempfile.mkdtemp(prefix="playground_")  # this run's PNGs; Gradio copies each into its cache
    try:
        while (update := await anyio.to_thread.run_sync(next, steps, None, abandon_on_cancel=True)) is not None:
            flow = await anyio.to_thread.run_sync(pg.draw, update, metrics, folder)
            yield flow, *_curves(update, metrics), _status(update, reference), (update, reference)
    finally:
        stop.set()  # finished, failed, cancelled or disconnected: the training thread stops within a batch
        if _stops.get(key) is stop:
            del _stops[key]
        shutil.rmtree(folder, ignore_errors=True)


async def stop_playground(last, request: gr.Request):
    """The Stop button: flip the session's stop switch. The button also cancels the train event, which
    drops a run still waiting in the queue and ends a running one before it can say so: the status saying
    where it stopped comes from here, from the last epoch the page showed."""
    stop = _stops.get(getattr(request, "session_hash", None) or "")
    if stop is not None:
        stop.set()
    if last is None or last[0].done:  # nothing ran yet, or the last run had already finished
        return gr.skip()
    update, reference = last
    why = f"stopped at your request during epoch {update.epoch + 1}"
    return _status(replace(update, stopped=why, done=True), reference)


@_user_errors
def redraw_playground(last, reference: str):
    """A new reference after a run: the same run redrawn beside it. (A run in progress keeps its own.)"""
    if last is None or not last[0].done:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    update, metrics = last[0], lab.entry(reference).metrics
    return render(pg.gradient_flow(update, metrics)), *_curves(update, metrics), _status(update, reference)


def build() -> gr.Blocks:
    choices = lab.choices()
    # delete_cache: every upload and streamed figure is copied into Gradio's cache; drop them after a day.
    with gr.Blocks(title="Vanishing Gradient Lab", delete_cache=(3600, 86400)) as demo:
        gr.Markdown("# Vanishing Gradient Lab\nA 7-layer sigmoid MLP on FashionMNIST barely learns: its gradient "
                    "fades on the way back to the first layers. Pick a cure on the right and compare it with the "
                    "baseline on the left: gradient flow per layer, training curves, predictions, your own photo.")
        for problem in lab.problems():
            gr.Markdown(f"⚠️ {problem}")
        with gr.Row():
            left = gr.Dropdown(choices, value=DEFAULT_PAIR[0], label="Left method", scale=1)
            right = gr.Dropdown(choices, value=DEFAULT_PAIR[1], label="Right method", scale=1)
        with gr.Tabs():
            with gr.Tab("Compare"):
                with gr.Row():
                    card_left, card_right = gr.Markdown(), gr.Markdown()
                flow = gr.Image(elem_id="flow",
                                label="Gradient flow: mean |grad| per layer, input → output (log scale)",
                                type="pil", interactive=False, show_label=False, buttons=["download"])
                epoch = gr.Slider(0, 100, value=100, step=1, label="Epoch shown in the gradient flow (0 = init)")
                with gr.Row():
                    curves = gr.Image(elem_id="curves", label="Training curves", type="pil", interactive=False,
                                      show_label=False)
                    weight_change = gr.Image(elem_id="weight-change", label="Relative weight change per layer",
                                             type="pil",
                                             interactive=False, show_label=False)
                with gr.Row():
                    preds_left = gr.Image(elem_id="preds-left", label="Predictions (left)", type="pil",
                                          interactive=False, show_label=False)
                    preds_right = gr.Image(elem_id="preds-right", label="Predictions (right)", type="pil",
                                           interactive=False, show_label=False)
            with gr.Tab("Classify"):
                gr.Markdown("Upload or paste a photo of a clothing item (or pick an example). It is turned into "
                            "what the models were trained on: grayscale, light item on black, cropped, 28x28.")
                with gr.Row():
                    image = UploadedImage(label="Your image", type="filepath", sources=["upload", "clipboard"],
                                          height=320)
                    seen = gr.Image(label="What the models see (28x28)", type="numpy", interactive=False,
                                    height=320, image_mode="L")
                run = gr.Button("Classify", variant="primary")
                with gr.Row():
                    label_left = gr.Label(num_top_classes=5, label="Left method")
                    label_right = gr.Label(num_top_classes=5, label="Right method")
                examples = gr.Examples(sorted(str(p) for p in (ASSETS / "examples").iterdir()), inputs=image,
                                       label="Examples: real FashionMNIST test images and photo-like versions")
            with gr.Tab("Results"):
                gr.Markdown(lab.results_markdown())
                results_plot = gr.Image(label="Test accuracy per method", type="pil", interactive=False)
                gr.Image(render(lab.depth_figure()), label="Depth study", type="pil", interactive=False)
            with gr.Tab("Playground"):
                gr.Markdown(PLAYGROUND_INTRO)
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        d = pg.PlaygroundSettings()  # the defaults: the baseline
                        pg_depth = RawSlider(*pg.DEPTH, value=d.depth, step=1, label="Depth (hidden layers)")
                        pg_width = RawSlider(*pg.WIDTH, value=d.width, step=8, label="Width (units per layer)")
                        pg_activation = gr.Radio(list(pg.ACTIVATIONS), value=d.activation, label="Activation")
                        pg_init_std = RawNumber(d.init_std, label=f"Init std (weights ~ N(0, std); 0 < std ≤ "
                                                                  f"{pg.INIT_STD_MAX:g})")
                        pg_norm = gr.Radio(list(pg.NORMS), value=d.norm, label="Normalization")
                        pg_skips = gr.Checkbox(d.skips, label="Skip connections (1→3, 4→6, ...; depth ≥ 3)")
                        pg_grad_norm = gr.Checkbox(d.grad_norm, label="Gradient normalization")
                        pg_optimizer = gr.Radio(list(pg.OPTIMIZERS), value=d.optimizer, label="Optimizer")
                        pg_lr = RawNumber(d.lr, label=f"Learning rate (0 < lr ≤ {pg.LR_MAX:g})")
                        pg_epochs = RawSlider(*pg.EPOCHS, value=d.epochs, step=1, label="Epochs")
                        pg_train_size = RawSlider(*pg.TRAIN_SIZE, value=d.train_size, step=500,
                                                  label="Training images")
                        pg_batch_size = gr.Dropdown([32, 64, 128, 256, 512, 1024, 2048], value=d.batch_size,
                                                    label="Batch size")
                        pg_reference = gr.Dropdown(choices, value="baseline",
                                                   label="Reference: a pre-trained method shown beside yours")
                        with gr.Row():
                            pg_train = gr.Button("Train", variant="primary")
                            pg_stop = gr.Button("Stop", variant="stop")
                    with gr.Column(scale=2):
                        pg_status = gr.Markdown(PLAYGROUND_IDLE)
                        pg_flow = gr.Image(label="Gradient flow: yours (left) vs the reference at the same epoch",
                                           type="filepath", interactive=False, buttons=["download"])
                        # (no `height`: a fixed height cuts the colour legend off in Gradio 6.31)
                        curve_style = dict(x="epoch", y="value", color="series", color_map=pg.CURVE_COLORS)
                        with gr.Row():
                            pg_loss = gr.LinePlot(label="Loss (cross-entropy): yours in blue, the reference in "
                                                        "orange", y_title="loss", **curve_style)
                            pg_acc = gr.LinePlot(label="Accuracy: yours in blue, the reference in orange",
                                                 y_title="accuracy", y_lim=[0, 1], **curve_style)
                pg_last = gr.State(None)  # (last update, reference) of the session's run: for Stop and redraws
            with gr.Tab("About"):
                gr.Markdown(ABOUT + "\n\n" + lab.methods_markdown())

        compare_outputs = [card_left, card_right, flow, curves, weight_change, preds_left, preds_right, epoch]
        gr.on([demo.load, left.change, right.change], compare, [left, right], compare_outputs,
              api_name="compare", concurrency_limit=4)
        epoch.release(gradient_flow_at, [left, right, epoch], flow, api_visibility="private",
                      concurrency_limit=2)
        run.click(classify, [image, left, right], [label_left, label_right], api_name="classify",
                  concurrency_limit=8)
        gr.on([image.input, left.change, right.change], classify_and_view, [image, left, right],
              [label_left, label_right, seen], api_visibility="private", concurrency_limit=8)
        examples.load_input_event.then(classify_and_view, [image, left, right], [label_left, label_right, seen],
                                       api_visibility="private", concurrency_limit=8)
        gr.on([demo.load, left.change, right.change], results, [left, right], results_plot,
              api_visibility="private", concurrency_limit=2)
        # One Playground run at a time for everyone (its own concurrency group, so it never takes the other
        # tabs' workers); later visitors wait in the queue and see their position on the outputs.
        train = pg_train.click(
            playground, [pg_depth, pg_width, pg_activation, pg_init_std, pg_norm, pg_skips, pg_grad_norm,
                         pg_optimizer, pg_lr, pg_epochs, pg_train_size, pg_batch_size, pg_reference],
            [pg_flow, pg_loss, pg_acc, pg_status, pg_last], api_name="playground", api_visibility="undocumented",
            concurrency_limit=1, concurrency_id="playground", show_progress_on=[pg_flow])
        pg_stop.click(stop_playground, pg_last, pg_status, api_name="playground_stop", api_visibility="undocumented",
                      cancels=[train], concurrency_limit=None, concurrency_id="playground_stop")
        pg_reference.change(redraw_playground, [pg_last, pg_reference], [pg_flow, pg_loss, pg_acc, pg_status],
                            api_visibility="private", concurrency_limit=2)
    # No single visitor can hold more than a few workers; the rest of the queue keeps moving.
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


demo = build()

if __name__ == "__main__":
    # Render the comparisons visitors open first, off the serving thread.
    # Then load the Playground's data and warm torch up, so the first run is as quick as the next ones.
    threading.Thread(target=lambda: (lab.warm(), pg.warm()), daemon=True).start()
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                max_file_size=MAX_BYTES, show_error=True)
