"""The app's Gradio parts that are not Gradio's own: components that pass a visitor's value on untouched, so
that core/ checks it and explains what is wrong, and the wrapper that turns those explanations into a message
on the page."""
from __future__ import annotations

import base64
import functools
import inspect
from pathlib import Path

import gradio as gr
from gradio.components.label import LabelData

from core.upload import ImageError

USER_ERRORS = (ImageError, ValueError)


class UploadedImage(gr.Image):
    """gr.Image whose event functions get the uploaded bytes untouched. gr.Image itself opens and re-encodes
    uploads with PIL first (a decompression bomb would be decoded, a 16-bit PNG turned white, a text file
    answered with a generic error); core.preprocess.open_image does that job safely and explains failures."""
    is_template = True  # rendered by the frontend as a plain Image

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):  # pasted as a data URL
            return base64.b64decode(payload.url.split(",", 1)[-1])
        return payload.path


class RawSlider(gr.Slider):
    """gr.Slider whose value reaches the event function as sent. gr.Slider checks its own bounds first and
    answers "Value 11 is greater than maximum value 10", naming no control (and fails on a string with a
    TypeError); ui.playground checks every value and says which control is wrong and what it allows."""
    is_template = True

    def preprocess(self, payload):
        return payload


class RawNumber(gr.Number):
    """gr.Number, value passed as sent, for the same reason as RawSlider."""
    is_template = True

    def preprocess(self, payload):
        return payload


class RawRadio(gr.Radio):
    """gr.Radio, value passed as sent: gr.Radio answers an unknown value with "is not in the list of choices",
    naming no control; the app's own check names it and its choices."""
    is_template = True

    def preprocess(self, payload):
        return payload


class RawDropdown(gr.Dropdown):
    """gr.Dropdown, value passed as sent, for the same reason as RawRadio."""
    is_template = True

    def preprocess(self, payload):
        return payload


class Answer(gr.Label):
    """gr.Label whose headline may be words instead of the top class: a model that answers the same for every
    image gets "No prediction" above its (meaningless) probabilities (ui.classify.top_classes)."""
    is_template = True

    def postprocess(self, value):
        if isinstance(value, dict) and "headline" in value:
            shown = super().postprocess(value["confidences"])
            return LabelData(label=value["headline"], confidences=shown.confidences)
        return super().postprocess(value)


def user_errors(fn):
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


# The per-layer chart is drawn in the browser (assets/charts.js): the statistic selector, the epoch slider and
# the player redraw there from the data /compare sends once per pair (or /playground after every epoch), with
# no request to the server.
CHART_JS, CHART_CSS = ((Path(__file__).resolve().parent.parent / "assets" / f"charts.{ext}").read_text()
                      for ext in ("js", "css"))


def chart(value, elem_id: str, label: str) -> gr.HTML:
    """The per-layer chart of Compare and the Playground: `value` is ui.chart_data.pair_data's JSON."""
    return gr.HTML(value, elem_id=elem_id, label=label, html_template='<div class="vgl"></div>',
                   css_template=CHART_CSS, js_on_load=CHART_JS, apply_default_css=False)
