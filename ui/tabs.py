"""The page's method pickers and its Compare, Classify, Results and About tabs: each tab's components and its
events together, the events' functions closures over the app's Lab (the Playground tab: ui.playground_tab).

UI wiring only: what a tab shows is made by ui.compare, ui.classify and ui.figures, its words are ui.pages'.
The docstrings of compare, classify and explain are what /compare, /classify and /explain (and their MCP
tools) say about themselves.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from core import examples
from core.data import CLASSES

from . import figures, pages, widgets
from .classify import enlarged, notice, read, top_classes
from .classify import explain as gradient_maps
from .compare import DEFAULT_PAIR, comparison
from .lab import Lab
from .widgets import UploadedImage, user_errors

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEPTH_STUDY = ("baseline_3", "baseline_5", "baseline")  # the Results tab's depth figure: the same net, deeper


def chosen(lab: Lab, left, right) -> None:
    """Both pickers' values are methods here, or a ValueError naming the picker (their values arrive unchecked:
    widgets.RawDropdown)."""
    lab.entry(left, "Left method")
    lab.entry(right, "Right method")


def warn_unavailable(lab: Lab, *names: str) -> None:
    """A toast for each chosen method whose checkpoint could not be loaded (its outputs stay empty)."""
    for name in names:
        if lab.entry(name).error:
            gr.Warning(f"{lab.entry(name).method.title}: {lab.entry(name).error}")


PAIR_TABS = ("Compare", "Classify", "Results")  # the tabs that show the pickers' pair


def pickers(lab: Lab, choices) -> tuple[gr.Row, gr.Dropdown, gr.Dropdown]:
    """The title, a line per unavailable checkpoint, and the row of the two method pickers the tabs follow."""
    gr.Markdown(pages.INTRO, elem_id="intro")
    for problem in lab.problems():
        gr.Markdown(f"⚠️ {problem}")
    with gr.Row(elem_id="pickers", equal_height=True) as row:
        left = widgets.RawDropdown(choices, value=DEFAULT_PAIR[0], label="Left method", scale=1, min_width=120)
        right = widgets.RawDropdown(choices, value=DEFAULT_PAIR[1], label="Right method", scale=1, min_width=120)
    return row, left, right


def pair_from_link(demo: gr.Blocks, lab: Lab, pair: list) -> None:
    """A shared link (?left=relu&right=tanh&stat=...&epoch=..., written by the chart) opens that pair: the
    pickers are set from it when the page loads (the chart then restores the statistic and the epoch itself).
    A name that is not a method here is ignored: the page opens on its default pair."""
    def from_link(request: gr.Request):
        query = getattr(request, "query_params", None) or {}
        return [gr.update(value=query.get(side)) if query.get(side) in lab.entries else gr.skip()
                for side in ("left", "right")]
    demo.load(from_link, None, pair, api_visibility="private", queue=False, show_progress="hidden")


def pickers_follow(tabs: gr.Tabs, row: gr.Row, on_results: gr.State) -> None:
    """The pickers show only on the tabs where they act (PAIR_TABS): on Playground and About they did nothing.
    `on_results`: whether the Results tab is the one shown (results_tab draws its figure only then)."""
    def shown(evt: gr.SelectData):
        return gr.Row(visible=evt.value in PAIR_TABS), evt.value == "Results"
    tabs.select(shown, None, [row, on_results], api_visibility="private", queue=False, show_progress="hidden")
    tabs.select(None, None, None, js=FORGET_TAB, api_visibility="private")


# A link's ?tab=playground (ui.playground_tab.url_js) leaves the address when the visitor goes to another tab: a
# link copied there must open where it was copied. (Read after the tab bar has marked its new tab.)
FORGET_TAB = """() => { setTimeout(() => {
  const on = document.querySelector('[role=tab][aria-selected=true]'), q = new URLSearchParams(location.search);
  if (on && on.dataset.tabId !== q.get('tab') && q.has('tab')) {
    q.delete('tab');
    history.replaceState(null, '', `${location.pathname}?${q}`);
  }
}, 0); }"""


def _figure(elem_id: str, label: str, **more) -> gr.Image:
    """A Compare figure: shown without its label (the figure has a title of its own), found by its elem_id. The
    label is its text alternative too (an image without one is a button without a name to a screen reader)."""
    return gr.Image(elem_id=elem_id, label=label, type="pil", interactive=False, show_label=False,
                    alt_text=label, **more)


def compare_tab(lab: Lab, pair: list, pair_changes: list) -> list[gr.Button]:
    """The Compare tab; returns the Open in Playground button under each card (left, right), which
    ui.playground_tab.share wires to the Playground."""
    @user_errors
    def compare(left: str, right: str):
        """Compare two trained methods of the Vanishing Gradient Lab (a 7-layer sigmoid MLP on FashionMNIST and its
        cures): their cards, figures and every recorded epoch's per-layer diagnostics, for a baseline and a cure.

        Args:
            left: the name of a trained method, e.g. "baseline".
            right: the name of a second method, e.g. "batchnorm".

        Returns:
            Both method cards (markdown: description, recipe, test accuracy over seeds), the gradient-flow,
            training-curve and weight-change figures (PNG), both prediction grids (PNG), the epoch range, and the
            chart's data: per method and recorded epoch, each layer's gradient, error, update ratio, saturation,
            activation spread and weight change.
        """
        chosen(lab, left, right)
        c = comparison(lab, left, right)
        warn_unavailable(lab, left, right)
        return (*c.cards, c.gradient_flow, c.curves, c.weight_change, *c.predictions,
                gr.Slider(maximum=c.max_epoch, value=c.max_epoch), c.chart)

    with gr.Tab("Compare", id="compare"):
        # the chart first: the first screen shows both methods' gradient flow; what each method is comes under it
        chart = widgets.chart(None, "diagnostics", "Per-layer diagnostics and training curves (data)")
        with gr.Row():
            cards, opens = [], []
            for side in ("left", "right"):
                with gr.Column(min_width=280):
                    cards.append(gr.Markdown(elem_classes="card"))
                    opens.append(gr.Button(pages.OPEN_IN_PLAYGROUND, size="sm", elem_id=f"open-{side}"))
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

    @user_errors
    def grid_words(left: str, right: str):
        """Each prediction grid's text alternative (its image's alt: what every image is and what the method
        answered), set by a page-only event after /compare, whose outputs stay plain files for API callers."""
        chosen(lab, left, right)
        return [gr.Image(alt_text=text) for text in comparison(lab, left, right).predictions_text]

    # always_last: a change while the page's first comparison is still on its way (a shared link sets the
    # pickers as the page loads) runs after it; gr.on's default ("once") dropped it, and the page kept the
    # default pair
    gr.on(pair_changes, compare, pair, [*cards, flow, curves, weight_change, *predictions, epoch, chart],
          api_name="compare", concurrency_limit=4, trigger_mode="always_last").success(
        grid_words, pair, predictions, api_visibility="private", queue=False, show_progress="hidden")
    return opens


def example_buttons() -> list[tuple[gr.Button, str]]:
    """The examples (core.examples' files) as buttons, each its thumbnail and its name: gr.Examples' gallery
    shows thumbnails only, buttons without a name for a screen reader (axe's button-name)."""
    gr.Markdown(pages.EXAMPLES_HEADING)
    made = []
    with gr.Row(elem_id="examples"):
        for path in sorted((ASSETS / "examples").iterdir()):
            c, kind = examples.named(path.name)
            made.append((gr.Button(pages.example_label(CLASSES[c], kind), icon=str(path), size="sm",
                                   variant="secondary", min_width=76, scale=0), str(path)))
    return made


def classify_tab(lab: Lab, pair: list) -> None:
    @user_errors
    def classify(image, left: str, right: str):
        """Classify a photo of a clothing item with two trained methods (FashionMNIST classes: T-shirt/top,
        Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot). The photo is turned into what the
        models were trained on: grayscale, light item on black, cropped, 28x28.

        Args:
            image: the photo (PNG, JPEG, WebP, GIF, BMP, TIFF or AVIF; at most 10 MB).
            left: the name of a trained method, e.g. "baseline".
            right: the name of a second method, e.g. "best".

        Returns:
            Each method's five most likely classes with their probabilities.
        """
        probabilities = top_classes(read(lab, image, left, right))
        warn_unavailable(lab, left, right)
        return probabilities

    @user_errors
    def explain(image, left: str, right: str):
        """How much gradient reaches each pixel of a photo in two trained methods: the map |d logit of the
        predicted class / d pixel| of each, on one shared logarithmic colour scale. A model whose gradient vanishes
        (the sigmoid baseline) gets a map near black.

        Args:
            image: the photo (as for classify).
            left: the name of a trained method, e.g. "baseline".
            right: the name of a second method, e.g. "batchnorm".

        Returns:
            Both maps (PNG), the colour bar with its tick values, and per method its numbers: predicted class, mean
            |gradient| reaching the input and hidden layer 1's pre-activation, the shared scale (or, for a method
            whose checkpoint is unavailable, "available": false and why).
        """
        e = gradient_maps(read(lab, image, left, right))
        warn_unavailable(lab, left, right)
        return *e.images, e.colorbar, *e.numbers

    @user_errors
    def classify_and_view(image, left: str, right: str):
        """What the page shows for an image: both top-5s, the enlarged model input and both gradient maps with
        their scale, numbers and notes, from one reading (one event, so a bad upload gives one message, not one
        per output)."""
        chosen(lab, left, right)  # (read() checks them too, but a cleared image is not read)
        if image is None:  # the image was cleared: clear what it showed
            return {}, {}, None, None, None, None, None, None, "", "", "", ""
        r = read(lab, image, left, right)
        e = gradient_maps(r)
        warn_unavailable(lab, left, right)
        return (*top_classes(r), enlarged(r.preview), *e.images, e.colorbar, *e.numbers, *e.cards, e.note,
                notice(r))

    @user_errors
    def verdict(image, left: str, right: str):
        """The Classify button's notice above the answers (its answers come from /classify)."""
        return notice(read(lab, image, left, right))

    with gr.Tab("Classify", id="classify"):
        gr.Markdown(pages.CLASSIFY_HELP)
        with gr.Row():
            image = UploadedImage(label="Your image", type="filepath", sources=["upload", "clipboard"], height=320)
            seen = gr.Image(label="What the models see (28x28)", type="numpy", interactive=False, height=320,
                            alt_text="What the models see: the image as 28x28 grayscale, light item on black",
                            image_mode="L", format="png")  # exact pixels (the default WebP is lossy)
        picks = example_buttons()
        run = gr.Button("Classify", variant="primary")
        said = gr.Markdown(elem_id="classify-notice")  # not clothing; no prediction
        with gr.Row():
            labels = [widgets.Answer(num_top_classes=5, label="Left method"),
                      widgets.Answer(num_top_classes=5, label="Right method")]
        gr.Markdown(pages.GRADIENT_HELP)
        with gr.Row():
            maps, cards = [], []
            for side in ("Left", "Right"):
                with gr.Column(min_width=150):  # side by side even on a phone: the point is to compare them
                    # PNG, not the default WebP: lossy compression would blur the 28x28 squares and shift colours.
                    # No label or buttons on the map: on a phone they would cover its top rows (the card under
                    # it names the method).
                    maps.append(gr.Image(label=f"{side} method: |∂ logit / ∂ pixel|", type="numpy", format="png",
                                         alt_text=f"{side} method's map of how much gradient reaches each pixel",
                                         interactive=False, show_label=False, buttons=[]))
                    cards.append(gr.Markdown())
        # the bar has its caption and tick values drawn in; 80 px high on a wide screen, its width on a phone
        colorbar = gr.Image(label="Colour scale of both maps (logarithmic)", type="numpy", format="png",
                            alt_text="Colour scale of both maps (logarithmic)",
                            interactive=False, show_label=False, container=False, height=80, buttons=[])
        note = gr.Markdown()
        with gr.Accordion("The numbers as data (what the /explain endpoint returns)", open=False):
            with gr.Row():
                numbers = [gr.JSON(label="Left method"), gr.JSON(label="Right method")]
    explained = [*maps, colorbar, *numbers]
    shown = [*labels, seen, *explained, *cards, note, said]
    # /classify and /explain for code; the Classify button runs both, the maps once the labels have answered
    # (so a missing or bad image gives one message, not two).
    answered = run.click(classify, [image, *pair], labels, api_name="classify", concurrency_limit=8)
    answered.success(explain, [image, *pair], explained, api_name="explain", concurrency_limit=8)
    answered.success(verdict, [image, *pair], said, api_visibility="private", concurrency_limit=8)
    gr.on([image.input, *(picker.change for picker in pair)], classify_and_view, [image, *pair], shown,
          api_visibility="private", concurrency_limit=8)
    for button, path in picks:
        button.click(lambda p=path: p, None, image, api_visibility="private", queue=False,
                     show_progress="hidden").then(classify_and_view, [image, *pair], shown,
                                                  api_visibility="private", concurrency_limit=8)


def results_tab(lab: Lab, pair: list, pair_changes: list) -> gr.State:
    """The Results tab; returns the state that says whether it is the tab shown (for pickers_follow to set)."""
    @user_errors
    def results(left: str, right: str, shown: bool = True):
        # drawn when the tab is shown, once per pair (of checked names: at most 16 x 16): a new pair's figure is
        # ~0.3 s of matplotlib, which drawn on every pair change on Compare made Compare's own answer wait
        chosen(lab, left, right)
        if not shown:
            return gr.skip()
        return lab.once(("results figure", left, right),
                        lambda: figures.image(figures.results_figure(lab.rows, left, right)))

    with gr.Tab("Results", id="results") as tab:
        on_results = gr.State(False)  # (inside the tab: a State directly in gr.Tabs is drawn as a tab button)
        if lab.rows:
            gr.Markdown(pages.results_takeaway(lab.rows), elem_id="results-takeaway")
            gr.HTML(pages.results_table(lab.rows), elem_id="results-table")
            if notes := pages.results_notes(lab.rows):
                gr.Markdown(notes)
            gr.Markdown(pages.results_columns())
        else:
            gr.Markdown(pages.NO_RESULTS)
        plot = gr.Image(label="Test accuracy per method", type="pil", interactive=False,
                        alt_text="Test accuracy per method, the pair's two in colour (the table above has the numbers)")
        depth = figures.depth_figure([r for r in lab.rows if r["method"] in DEPTH_STUDY])
        gr.Image(figures.image(depth), label="Depth study", type="pil", interactive=False,
                 alt_text="Depth study: deeper sigmoid nets pass less gradient back; test accuracy and the "
                          "gradient reaching the first layer, for 3, 5 and 7 hidden layers")
    gr.on(pair_changes, results, [*pair, on_results], plot, api_visibility="private", concurrency_limit=2,
          trigger_mode="always_last")  # (as compare's)
    tab.select(results, pair, plot, api_visibility="private", concurrency_limit=2, trigger_mode="always_last")
    return on_results


def about_tab() -> None:
    with gr.Tab("About", id="about"):
        gr.Markdown(pages.about())
