"""The words the app shows: page text, method cards, hyperparameter summaries, the Playground's status.

Markdown strings only, no Gradio and no computation: the numbers come from ui.lab, ui.classify and
ui.playground.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from core.methods import BASELINE, METHODS, Method
from core.results import CONFIDENCE, GROUP_GAP, LEARNS_AT, spread_text

from . import playground as pg

if TYPE_CHECKING:
    from .lab import Entry

ASSETS = Path(__file__).resolve().parent.parent / "assets"

TITLE = "Vanishing Gradient Lab"

INTRO = (f"# {TITLE}\nA 7-layer sigmoid MLP barely learns: its gradient fades on the way back to the first layers. "
         "Left: the baseline; right: a cure. Press ▶ Play to watch them train.")

CLASSIFY_HELP = ("Upload or paste a photo of a clothing item (or pick an example). It is turned into what the "
                 "models were trained on: grayscale, light item on black, cropped, 28x28.")

PLAYGROUND_INTRO = f"""Build your own deep network and watch its gradients flow while it trains on real FashionMNIST.
Set the controls and press **Train**: after every epoch (and at epoch 0, before any update) the page shows how
much gradient reaches each layer, the loss and accuracy curves and the test accuracy so far, beside a
pre-trained method of your choice at the same epoch. Defaults are the baseline: change one thing and watch
what it does to the first layers' gradient.

**One run at a time, one per visitor.** Training shares this small CPU with every visitor, so one Playground
run trains at once and at most {pg.MAX_WAITING} wait for it; each visitor may have one run training or waiting.
If someone else's run is going when you press Train, yours waits: the status above the chart says how many runs
are ahead and at most how long they may take, and your run starts by itself when theirs end. A run stops after
{pg.TIME_LIMIT / 60:.0f} minutes, or after {pg.SHARED_LIMIT:.0f} s while another visitor is waiting (so the wait
is at most {pg.SHARED_LIMIT:.0f} s per run ahead). The other tabs keep working meanwhile. **Stop** ends your run
within a batch and keeps what it has drawn."""

# The status from the Train click to the run's first epoch: a moment, or the wait for another visitor's run.
PLAYGROUND_STARTING = ("Starting… If another visitor's run is going, yours waits for it and starts by itself when "
                       "it ends: this line then says how many runs are ahead and how long they may take.")


def playground_waiting(ahead: int, seconds: float) -> str:
    """The status while a run waits for the Playground's slot (ui.playground.RunQueue.turn's figures)."""
    runs = "1 run" if ahead == 1 else f"{ahead} runs"
    return (f"**Busy: {runs} ahead of yours, about {seconds:.0f} s at most** (each stops after at most "
            f"{pg.SHARED_LIMIT:.0f} s while someone waits). Yours starts by itself; Stop leaves the queue.")

PLAYGROUND_IDLE = ("Press **Train** to start. The default run (10 epochs on 10,000 images) takes about three "
                   "seconds when the server is not busy.")

NO_RESULTS = "No trained checkpoints yet: run `python -m core train --all`."


def hyperparameters(method: Method, train_size: int | None = None) -> str:
    """A method's model and recipe in one line ("7x128 sigmoid · init N(0, 0.05) · sgd lr 0.01 · ..."): on the
    method cards, and for a Playground run, whose `train_size` (training images) ends the line."""
    c = method.model
    parts = [f"{c.depth}x{c.width} {c.activation}", f"init N(0, {c.init_std:g})",
             f"{method.optimizer} lr {method.lr:g}", f"batch {method.batch_size}"]
    if c.norm != "none":
        parts.append(f"{c.norm} norm")
    if c.skips:
        parts.append("skips " + ", ".join(f"{a}→{b}" for a, b in c.skips))
    if c.grad_norm:
        parts.append("gradient normalization")
    if method.weight_decay:
        parts.append(f"weight decay {method.weight_decay:g}")
    if method.schedule != "constant":
        parts.append(f"{method.schedule} lr schedule")
    word = "epoch" if method.epochs == 1 else "epochs"
    epochs = f"{len(method.stages)} stages x {method.epochs} {word}" if method.stages else f"{method.epochs} {word}"
    parts.append(epochs if train_size is None else f"{epochs} on {train_size:,} images")
    return " · ".join(parts)


def settings_summary(settings: pg.PlaygroundSettings) -> str:
    """The Playground's settings in one line, as the cards summarize a registry method."""
    return hyperparameters(pg.to_method(settings), settings.train_size)


def card(entry: Entry, row: dict | None = None) -> str:
    """A method's card on the Compare tab: title, description, hyperparameters, then its test accuracy or why
    its checkpoint is unavailable, and with `row` (its results-table row) what every committed seed reached."""
    m = entry.method
    head = f"### {m.title}\n{m.description}\n\n*{hyperparameters(m)}*\n\n"
    if entry.error:
        return head + f"**Unavailable:** {entry.error}"
    r = entry.metrics
    stopped = f" · stopped early: {r['stopped']}" if r.get("stopped") else ""
    text = head + (f"**Test accuracy {r['test_acc']:.2%}** (10,000 test images, seed {r['seed']}) · "
                   f"trained {r['epochs']} epochs in {r['train_seconds'] / 60:.1f} min{stopped}")
    return text + seeds_line(row) + left_out_line(row) if row is not None else text


def predictions_text(title: str, truth: list[str], predicted: list[str] | None) -> str:
    """A prediction grid in words, for a screen reader (its image's alt text): how many it got right, then each
    image's class and the answer, as the grid's captions show them."""
    n = len(truth)
    if predicted is None:
        return f"{title} is not trained yet: {n} test images, " + ", ".join(truth)
    right = sum(p == t for p, t in zip(predicted, truth))
    each = ", ".join(f"{t} → {p} ✓" if p == t else f"{t} → {p} ✗" for t, p in zip(truth, predicted))
    return f"{title}'s predictions on {n} test images: {right} of {n} right; {each}"


EXAMPLES_HEADING = "**Examples:** real FashionMNIST test images and photo-like versions (click one to classify it)"


def example_label(class_name: str, kind: str | None) -> str:
    """An example button's name: the item's class, and for a photo-like version what was done to it."""
    return class_name if kind is None else f"{class_name}, photo-like ({kind.replace('_', ' ')})"


def left_out_line(row: dict) -> str:
    """The seed files the results row leaves out (damaged, or another recipe; the Results tab says why)."""
    files = [note.split(": ", 1)[0] for note in row.get("left_out") or []]
    return f"\n\nLeft out of these numbers: {', '.join(files)} (see the Results tab)." if files else ""


def seeds_line(row: dict) -> str:
    """What every committed seed of a method reached (core.results' row): this checkpoint is one draw of them."""
    n = len(row["seeds"])
    if n < 2:
        return ""
    found = row.get("groups") or []
    if len(found) > 1:
        spread = f"in {len(found)} groups (" + ", ".join(
            f"{g['n']} at {g['min']:.1%}" + (f" – {g['max']:.1%}" if g["max"] != g["min"] else "") for g in found) + ")"
    else:
        lo, hi = row["acc_ci"] or (row["acc_mean"], row["acc_mean"])
        spread = f"mean {row['acc_mean']:.1%} ({CONFIDENCE:.0%} confidence interval {lo:.1%} – {hi:.1%})"
    rank = f" Where this checkpoint (seed {row['seeds'][0]}) sits: {row['seed42_rank']}." if row.get("seed42_rank") \
        else ""
    return (f"\n\nOver {n} seeds ({min(row['seeds'])}–{max(row['seeds'])}), each with its own split, init and "
            f"batch order, the test accuracy is {spread}, median {row['acc_median']:.1%}, "
            f"range {row['acc_min']:.1%} – {row['acc_max']:.1%}.{rank} It learns (final validation accuracy ≥ "
            f"{LEARNS_AT:.0%}) on {row['learned']} of {n}.")


def methods_list() -> str:
    """Every registry method, one bullet each: title, name, description."""
    return "\n".join(f"- **{m.title}** (`{m.name}`): {m.description}" for m in METHODS.values())


def about() -> str:
    """The About tab: assets/about.md, then the list of methods."""
    return (ASSETS / "about.md").read_text() + "\n\n" + methods_list()


# --- Classify: the gradient on the visitor's image (ui.classify.explain) ------------------------------------
GRADIENT_HELP = (
    "### Gradient on your image\n"
    "How strongly each of the 28x28 pixels the models see moves the score (logit) of the class the model "
    "predicts: |∂ logit / ∂ pixel|. Both maps share one **logarithmic** colour scale, so their colours compare: "
    "the darker map gets less gradient, and the bar under them gives the values. Next to a cure, the baseline's "
    "map is **nearly black: its gradient has all but vanished** before reaching the pixels. Every pixel, "
    "background included, feeds every unit of these fully connected networks, so a map need not trace the "
    "item's outline: read its brightness. Under each map: the mean |gradient| reaching the input and the first "
    "hidden layer.")

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(value: float, digits: int = 2) -> str:
    """3.88e-08 -> "3.9 × 10⁻⁸" ("0" for zero): a value spanning decades, written for people."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa} × 10{str(int(exponent)).translate(SUPERSCRIPT)}"


def gradient_card(entry: Entry, numbers: dict) -> str:
    """Under one gradient map: the method, what it predicts and the two mean |gradient|s (ui.classify.explain's
    numbers), or why the side has no map."""
    head = f"**{entry.method.title}**"
    if not numbers["available"]:
        return f"{head}: **no map**, its checkpoint is unavailable. {entry.error}"
    return (f"{head} predicts **{numbers['predicted']}**  \n"
            f"mean \\|gradient\\| reaching the input: **{power_of_ten(numbers['input_grad_mean_abs'])}**  \n"
            f"reaching hidden layer 1 (before its activation): "
            f"**{power_of_ten(numbers['hidden1_grad_mean_abs'])}**")


def _pct(x: float) -> str:
    return f"{x:.1%}"


def results_takeaway(rows: list[dict]) -> str:
    """Three lines on top of the Results tab, each from the committed results rows (core.results)."""
    by = {r["method"]: r for r in rows}
    one = [r for r in rows if len(r.get("groups") or []) <= 1]
    lines = []
    if "baseline" in by:
        b = by["baseline"]
        lines.append(f"**The deep sigmoid baseline does not learn**: {_pct(b['acc_mean'])} test accuracy (chance) on "
                     f"all {len(b['seeds'])} seeds; at init its first layer gets {b['error_ratio_init']:.0e} of the "
                     "error the output layer gets.")
    top = sorted(one, key=lambda r: -r["acc_mean"])[:3]
    if top:
        lines.append("**Best cures**: " + ", ".join(f"{r['title']} {spread_text(r, '.1%')}" for r in top) +
                     " (95% confidence intervals over the seeds).")
    split = [r["title"] for r in rows if len(r.get("groups") or []) > 1]
    if split:
        lines.append(f"**Seed lotteries**: {', '.join(split)} land in separate groups depending on the seed, so "
                     "one run says little about them.")
    return "\n\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))


RESULTS_COLUMNS = [  # (header, what it means)
    ("Method", "the network and the one thing changed from the baseline (the method cards on Compare say more)"),
    ("Epochs", "how long it trained: 100, except the layer-wise methods (600-700: one training per stage)"),
    ("Seeds", "how many training runs, each with its own data split, initial weights and batch order"),
    ("Test accuracy", f"mean over the seeds and its {CONFIDENCE:.0%} confidence interval (Student's t); where the "
                      f"runs split into groups more than {GROUP_GAP * 100:.0f} points apart, each group's range "
                      "instead"),
    ("Shown run", "the seed-42 run the other tabs show, and where it sits among the seeds"),
    ("Learns", f"runs whose final validation accuracy reaches {LEARNS_AT:.0%}, twice chance"),
    ("Error reaching layer 1", "the backpropagated error at the first hidden layer over the output layer's, at "
                               "init → after training: near 1 the error arrives; 1e-07 means it vanished"),
    ("Still rising", "runs whose validation accuracy was still climbing when training stopped"),
]


def results_table(rows: list[dict]) -> str:
    """The Results tab's table as HTML: names, not ids; it scrolls sideways inside its own box on a phone (the
    box is focusable, so a keyboard can scroll it too)."""
    def esc(x) -> str:
        return html.escape(str(x))
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h, _ in RESULTS_COLUMNS)
    body = []
    for r in rows:
        n = len(r["seeds"])
        ratio = "–" if r["error_ratio_init"] is None else f"{r['error_ratio_init']:.0e}"
        final = "–" if r["error_ratio_final"] is None else f"{r['error_ratio_final']:.0e}"
        cells = [f'<th scope="row">{esc(r["title"])}</th>', f"<td>{r['epochs']}</td>", f"<td>{n}</td>",
                 f"<td>{esc(spread_text(r, '.1%'))}</td>",
                 f"<td>{_pct(r['test_acc'])} ({esc(r['seed42_rank'])})</td>",
                 f"<td>{r['learned']} of {n}</td>", f"<td>{ratio} → {final}</td>", f"<td>{r['rising']} of {n}</td>"]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="results-box" tabindex="0" role="region" aria-label="Results per method (scrolls '
            f'sideways)"><table class="results"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            "</table></div>")


def results_notes(rows: list[dict]) -> str:
    """Under the table: each row's notes, as the README's table has them (a method with no init value, seed files
    left out of its row because they are damaged or not a run of the same recipe)."""
    lines = [f"- {r['title']} (`{r['method']}`): no init value: {r['error_ratio_init_note']}." for r in rows
             if r.get("error_ratio_init_note")]
    lines += [f"- {r['title']} (`{r['method']}`): left out of its row: {note}" for r in rows
              for note in r.get("left_out") or []]
    return "\n".join(lines)


def results_columns() -> str:
    return "**The columns.** " + " ".join(f"*{h}*: {w}." for h, w in RESULTS_COLUMNS) + (
        " The README's table has every figure to four digits, the reference notebooks' numbers and each "
        "method's training time (`python -m core results`).")


def classify_notice(unlike_clothing: bool | None, titles: tuple[str, str], constant: tuple[bool, bool],
                    rates: dict) -> str:
    """Above the two answers: whether the picture looks like a FashionMNIST item (core.ood's detector and its
    measured rates, `rates`: detector.json's), and which model gives no prediction because it answers the same
    for every image."""
    lines = []
    if unlike_clothing:
        lines.append(
            "⚠️ **This does not look like a FashionMNIST clothing item**, so neither answer below means much: the "
            "models only know 10 kinds of clothing, centred, light on black, and name one of them whatever they "
            f"are shown. (The detector flags {rates['not_clothing_all']:.0%} of {rates['n_not_clothing']} "
            f"non-clothing test pictures, and also {rates['test']:.1%} of the {rates['n_test']:,} real FashionMNIST "
            "test images: a faint or unusual item can be flagged too.) What they would say anyway:")
    for title, same in zip(titles, constant, strict=True):
        if same:
            lines.append(f"**{title}: no prediction.** It gives the same probabilities to every image (its answer "
                         "does not depend on the picture), so its top class says nothing about this one.")
    return "\n\n".join(lines)


def gradient_note(methods: list[Method]) -> str:
    """Under the maps: what a map means for the methods that have one. Every model is evaluated as deployed
    (eval mode) on this one image; normalisation changes what that means (core.explain.gradient_map says
    more). A map alone has the colour scale to itself, which says nothing about its size: the note says so."""
    lines = ["*Every model runs as deployed (eval mode) on this one image.*"]
    if len(methods) == 1:
        lines[0] += (" *Only one map: the colour scale spans its own values, so its colours show where its "
                     "gradient is larger, not how large: read that on the bar.*")
    for kind, note in _NORM_NOTES.items():
        chosen = [m for m in dict.fromkeys(methods) if _norm_kind(m) == kind]
        if chosen:
            titles = " and ".join(m.title for m in chosen)
            lines.append(f"**{titles}:** " + note.format(width=chosen[0].model.width))
    return "\n\n".join(lines)


def _norm_kind(m: Method) -> str | None:
    """Which of _NORM_NOTES applies to a method, if any."""
    c = m.model
    return "batchnorm" if c.norm == "batchnorm" else "custom" if c.norm == "custom" else \
        "grad_norm" if c.grad_norm else None


_NORM_NOTES = {
    "batchnorm": ("in eval mode each BatchNorm is a fixed per-unit scale and shift (the running mean and variance "
                  "from training), so the map is the exact derivative of the deployed model at this image, "
                  "whatever other images exist."),
    "custom": ("its layers standardise over the whole batch, so on one image each layer is standardised with this "
               "image's own mean and std over its {width} units (in training: over the batch). The map is the exact "
               "derivative of the model as it runs on this image alone, including how each pixel shifts those "
               "statistics; its prediction can differ from one made inside a batch (on the committed sample of "
               "1,000 test images the two agree on 96.5%)."),
    "grad_norm": ("it rescales the gradient at every hidden layer, but only while training. The map shows the raw "
                  "derivative: the only one that says how much a pixel moves the prediction, and the only one "
                  "comparable with other methods on a shared scale."),
}


def playground_status(update: pg.PlaygroundUpdate, reference: dict | None, reference_title: str) -> str:
    """The status above the Playground's figures: a progress bar, the accuracies so far, elapsed time, how it
    ended, the reference (metrics.json of a pre-trained method) at the same epoch and what the data is."""
    head = (f"<progress value=\"{update.epoch}\" max=\"{update.total_epochs}\" style=\"width: 100%\"></progress>\n\n"
            f"**Epoch {update.epoch}/{update.total_epochs}** · validation accuracy **{update.val_acc:.1%}** · "
            f"test accuracy **{update.test_acc:.1%}** ({update.test_images:,} test images) · {update.seconds:.1f} s")
    if update.stopped:
        head += f"\n\n⏹ Training {update.stopped}."
    elif update.done:
        head += "\n\n✔ Done."
    else:
        head += " · training…"
    ref_row = next((r for r in (reference or {}).get("history") or [] if r.get("epoch") == update.epoch), None)
    if ref_row is not None:
        # an epoch of the reference is more steps than one of yours: it saw all of the training split
        ref_images = reference.get("limit") or pg.POLICY["train_size"].hi
        ref_batch = (reference.get("config") or {}).get("batch_size", BASELINE.batch_size)
        steps = -(-update.config["train_size"] // update.settings.batch_size)
        head += (f"\n\nReference **{reference_title}** at epoch {ref_row['epoch']}: validation accuracy "
                 f"{ref_row['val_acc']:.1%} (trained on {ref_images:,} images, {-(-ref_images // ref_batch)} "
                 f"steps per epoch; yours takes {steps}).")
    return head + f"\n\n*{settings_summary(update.settings)}. {update.note}*"


# --- Playground: share and take away (Open in Playground, the address, the downloads) -------------------------

OPEN_IN_PLAYGROUND = "Open in Playground"
DOWNLOAD_LABELS = ("Metrics (JSON)", "Model (safetensors)", "Config (JSON)")  # ui.playground.EXPORT_NAMES' order
DOWNLOADS_HELP = ("**Take it away:** the run's metrics, weights and model config, written as a checkpoint of this "
                  "project. Saved in one folder as `metrics.json`, `model.safetensors` and `config.json`, they load "
                  "with `core.checkpoint.load_checkpoint(folder)` (no pickle). The files stay on the server for "
                  "about 15 minutes.")


def _plain(phrase: str) -> str:
    """A phrase that may quote a visitor's value (a link's parameter) as plain text: no markup survives."""
    return "".join(c if c.isalnum() or c in " .,:;=()'/+-…→" else "?" for c in phrase)


def opened_from_method(title: str, left_out: list[str]) -> str:
    """The Playground's notice after Open in Playground: whose recipe the settings are, and what of it they
    could not carry (ui.playground.from_method)."""
    text = f"**Opened from Compare: {title}.** Its network and recipe are set below; press **Train** to run it."
    if left_out:
        text += " Not carried over: " + "; ".join(left_out) + "."
    return text


def restored_from_link(ignored: list[str]) -> str:
    """The Playground's notice after a link set its settings (ui.playground.from_query)."""
    text = "**Settings from the link.** Press **Train** to run them."
    if ignored:
        text += " Ignored (the default kept): " + "; ".join(_plain(p) for p in ignored) + "."
    return text
