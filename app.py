"""Vanishing Gradient Lab: the Gradio app. Only UI wiring; every computation lives in core/ (core.lab)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import gradio as gr

from core.checkpoint import ROOT
from core.lab import DEFAULT_PAIR, Lab, render
from core.methods import METHODS
from core.preprocess import MAX_BYTES, ImageError

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


def _user_errors(fn):
    """Bad input becomes one clear message on the page (gr.Error), never a traceback."""
    def wrapped(*args):
        try:
            return fn(*args)
        except (ImageError, ValueError) as e:
            raise gr.Error(str(e), print_exception=False) from None
    wrapped.__name__ = fn.__name__
    return wrapped


@_user_errors
def compare(left: str, right: str):
    c = lab.rendered_comparison(left, right)
    for name in (left, right):
        if lab.entry(name).error:
            gr.Warning(f"{METHODS[name].title}: {lab.entry(name).error}")
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
    for name, probs in ((left, probs_left), (right, probs_right)):
        if not probs:
            gr.Warning(f"{METHODS[name].title}: {lab.entry(name).error}")
    return probs_left, probs_right


@_user_errors
def classify_if_any(image, left: str, right: str):
    return classify(image, left, right) if image is not None else ({}, {})


@_user_errors
def model_view(image, left: str, right: str):
    if image is None:
        return None
    return lab.classify(image, left, right)[2]


@_user_errors
def results(left: str, right: str):
    return lab.results_figure(left, right)


def build() -> gr.Blocks:
    choices = lab.choices()
    with gr.Blocks(title="Vanishing Gradient Lab") as demo:
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
                flow = gr.Image(label="Gradient flow: mean |grad| per layer, input → output (log scale)",
                                type="pil", interactive=False, buttons=["download"])
                epoch = gr.Slider(0, 100, value=100, step=1, label="Epoch shown in the gradient flow (0 = init)")
                with gr.Row():
                    curves = gr.Image(label="Training curves", type="pil", interactive=False)
                    weight_change = gr.Image(label="Relative weight change per layer", type="pil",
                                             interactive=False)
                with gr.Row():
                    preds_left = gr.Image(label="Predictions (left)", type="pil", interactive=False)
                    preds_right = gr.Image(label="Predictions (right)", type="pil", interactive=False)
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
                gr.Examples(sorted(str(p) for p in (ASSETS / "examples").glob("*.png")), inputs=image,
                            label="Examples: real FashionMNIST test images and photo-like versions")
            with gr.Tab("Results"):
                gr.Markdown(lab.results_markdown())
                results_plot = gr.Image(label="Test accuracy per method", type="pil", interactive=False)
                gr.Image(render(lab.depth_figure()), label="Depth study", type="pil", interactive=False)
            with gr.Tab("About"):
                gr.Markdown(ABOUT + "\n\n" + lab.methods_markdown())

        compare_outputs = [card_left, card_right, flow, curves, weight_change, preds_left, preds_right, epoch]
        gr.on([demo.load, left.change, right.change], compare, [left, right], compare_outputs,
              api_name="compare", concurrency_limit=4)
        epoch.release(gradient_flow_at, [left, right, epoch], flow, api_visibility="private",
                      concurrency_limit=2)
        run.click(classify, [image, left, right], [label_left, label_right], api_name="classify",
                  concurrency_limit=8)
        gr.on([image.change, left.change, right.change], classify_if_any, [image, left, right],
              [label_left, label_right], api_visibility="private", concurrency_limit=8)
        image.change(model_view, [image, left, right], seen, api_visibility="private", concurrency_limit=8)
        gr.on([demo.load, left.change, right.change], results, [left, right], results_plot,
              api_visibility="private", concurrency_limit=2)
    # No single visitor can hold more than a few workers; the rest of the queue keeps moving.
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


demo = build()

if __name__ == "__main__":
    # Render the comparisons visitors open first, off the serving thread.
    threading.Thread(target=lab.warm, daemon=True).start()
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                max_file_size=MAX_BYTES, show_error=True)
