"""The results table: every method's committed metrics summarized, for the README and the app's Results tab."""
from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Sequence
from pathlib import Path

from .checkpoint import METRICS, ROOT, CheckpointError, read_metrics
from .history import gradient_ratio, hidden_layer_names, layer_value
from .methods import METHODS
from .schema import shown

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
# Test accuracy printed by the public reference notebooks (NamNguyenWork27/Vanishing-Gradient), one run each:
# the same 7x128 sigmoid MLP, batch 512, 100 epochs, FashionMNIST, SGD lr 0.01 (adam: Adam lr 0.001). Its
# layer-wise notebook follows the 6-training schedule of `layerwise_6`, not our 7 stages; its 0.4202 most likely
# comes from the model after its training 3 (see README).
REFERENCE_ACC = {"baseline": 0.1000, "weight_std_1": 0.7361, "weight_std_10": 0.1927, "relu": 0.7882,
                 "adam": 0.8591, "batchnorm": 0.8785, "skip": 0.6756, "layerwise_6": 0.4202, "grad_norm": 0.5373}
LEARNS_AT = 0.2  # a run "learns" when its test accuracy reaches twice chance (10 classes: 0.1)
BENCHMARK_BEST_MLP = 0.8833  # FashionMNIST README benchmark: MLPClassifier 256-128-100 (also drawn by ui.figures)


SEEDS = "seeds"
log = logging.getLogger(__name__)


def method_runs(name: str, root: Path = ROOT) -> tuple[list[dict], list[str]]:
    """A method's committed runs, checked in full (core.schema): its metrics.json (seed 42) first, then every
    seeds/<seed>.json, and a note for each seed file left out (damaged, or not a run of the same recipe),
    naming it relative to the checkpoints folder. ([], []) when the method has no metrics.json; a damaged
    metrics.json raises CheckpointError."""
    folder = root / name
    if not os.path.lexists(folder / METRICS):
        return [], []
    main = read_metrics(folder / METRICS, f"{name}/{METRICS}")
    if main["method"] != name:
        raise CheckpointError(f"{name}/{METRICS}: method: expected {shown(name)}, got {shown(main['method'])}")
    runs, left_out = [main], []
    try:
        files = sorted((f for f in os.listdir(folder / SEEDS) if f.endswith(".json")), key=_seed_order)
    except FileNotFoundError:
        files = []
    except OSError as e:
        files, left_out = [], [f"{name}/{SEEDS}: cannot be listed ({(e.strerror or 'input/output error').lower()})"]
    for file in files:
        label = f"{name}/{SEEDS}/{file}"
        try:
            runs.append(_same_recipe(read_metrics(folder / SEEDS / file, label, checkpoint=False), main, label))
        except CheckpointError as e:
            left_out.append(str(e))
        except Exception:  # whatever else a file may cause: that file is left out, the others count
            log.exception("unexpected failure while reading %s", folder / SEEDS / file)
            left_out.append(f"{label}: could not be read (an unexpected problem; the server log has the details)")
    return runs, left_out


def _seed_order(file: str) -> tuple:
    stem = file[:-len(".json")]
    return (0, int(stem), file) if stem.isdigit() and len(stem) < 20 else (1, 0, file)


def _same_recipe(run: dict, main: dict, label: str) -> dict:
    """`run` if it is another seed of `main`'s method and recipe (its file named after its seed), else
    CheckpointError: a seed of something else would be mixed into the row's mean."""
    stem = label.rsplit("/", 1)[-1][:-len(".json")]
    if run["method"] != main["method"]:
        raise CheckpointError(f"{label}: method: expected {shown(main['method'])}, got {shown(run['method'])}")
    if str(run["seed"]) != stem:
        raise CheckpointError(f"{label}: seed: expected {shown(stem)[1:-1]} (the file's name), "
                              f"got {shown(run['seed'])}")
    if run["seed"] == main["seed"]:
        raise CheckpointError(f"{label}: seed {run['seed']} is the checkpoint's own run, counted once already")
    for key in sorted(set(run["config"]) & set(main["config"]) - {"seed"}):
        if run["config"][key] != main["config"][key]:
            raise CheckpointError(f"{label}: config.{key} is {shown(run['config'][key])}, but the checkpoint's "
                                  f"is {shown(main['config'][key])} (another recipe)")
    if run.get("limit") != main.get("limit"):
        raise CheckpointError(f"{label}: limit is {shown(run.get('limit'))}, but the checkpoint's is "
                              f"{shown(main.get('limit'))} (trained on other data)")
    return run


def summarize(name: str, runs: list[dict], left_out: Sequence[str] = ()) -> dict:
    """One row of the table from a method's runs (the first is the committed checkpoint, seed 42), checked
    runs as method_runs reads them; `left_out`: the notes on seed files that are not among them."""
    main = runs[0]
    accs = [r["test_acc"] for r in runs]
    final = main["history"][-1]
    hidden = hidden_layer_names(final) or [None]  # (a checked run always has its layers)
    return {
        "method": name, "title": METHODS[name].title if name in METHODS else name,
        "depth": main["config"]["depth"], "test_acc": main["test_acc"],
        "acc_mean": statistics.fmean(accs), "acc_std": statistics.stdev(accs) if len(accs) > 1 else None,
        "acc_median": statistics.median(accs), "acc_min": min(accs), "acc_max": max(accs),
        "learned": sum(a >= LEARNS_AT for a in accs), "seeds": [r["seed"] for r in runs],
        "grad_ratio_init": gradient_ratio(main, 0), "grad_ratio_final": gradient_ratio(main, None),
        "weight_change_first": layer_value(final, hidden[0], "rel_weight_change"),
        "weight_change_last": layer_value(final, hidden[-1], "rel_weight_change"),
        "train_seconds": main["train_seconds"], "epochs": main["epochs"], "stopped": main.get("stopped"),
        "reference_acc": REFERENCE_ACC.get(name), "left_out": list(left_out),
    }


def results_rows(root: Path = ROOT, strict: bool = True) -> list[dict]:
    """A row per registry method that has a committed checkpoint, in registry order, from checked files only.
    strict=True (the README, the CLI): any damaged file raises CheckpointError. strict=False (the app): a
    method whose metrics.json is damaged has no row (its method card says what is wrong), a damaged seed file
    is left out of its method's row with a note in the row's "left_out" (shown under the table), and nothing
    a file holds can raise out of here: one damaged file must not stop the app from starting."""
    rows = []
    for name in METHODS:
        try:
            runs, left_out = method_runs(name, root)
            if strict and left_out:
                raise CheckpointError(left_out[0])
            if runs:
                rows.append(summarize(name, runs, left_out))
        except CheckpointError:
            if strict:
                raise
        except Exception:
            if strict:
                raise
            log.exception("unexpected failure while summarizing %s", name)
    return rows


def _sci(x) -> str:
    return "–" if x is None else f"{x:.1e}"


def markdown_table(rows: list[dict]) -> str:
    lines = [(f"| method | test acc (seed 42) | n | mean ± std | median [min – max] | learns (≥ {LEARNS_AT}) | "
              "reference | hidden1/output mean\\|grad\\| init → trained | weight change hidden1 / last hidden | "
              "train time |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        spread = f"{r['acc_mean']:.4f} ± {r['acc_std']:.4f}" if r["acc_std"] is not None else f"{r['acc_mean']:.4f}"
        ref = f"{r['reference_acc']:.4f}" if r["reference_acc"] is not None else "–"
        n = len(r["seeds"])
        lines.append(f"| `{r['method']}` | {r['test_acc']:.4f} | {n} | {spread} | "
                     f"{r['acc_median']:.4f} [{r['acc_min']:.4f} – {r['acc_max']:.4f}] | {r['learned']}/{n} | {ref} | "
                     f"{_sci(r['grad_ratio_init'])} → {_sci(r['grad_ratio_final'])} | "
                     f"{_sci(r['weight_change_first'])} / {_sci(r['weight_change_last'])} | "
                     f"{r['train_seconds'] / 60:.1f} min |")
    total = sum(r["train_seconds"] for r in rows)
    lines.append("")
    lines.append(f"Sum of the seed-42 training times: {total / 60:.1f} min (each method on one core).")
    notes = [f"- `{r['method']}`: left out of its row: {note}" for r in rows for note in r.get("left_out") or []]
    if notes:
        lines += ["", "Seed files left out of the table (damaged, or not a run of the same recipe):", *notes]
    return "\n".join(lines)


def write_readme(rows: list[dict], readme: Path = README) -> bool:
    """Replace the table between the markers in the README; True if it changed."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme}: markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{markdown_table(rows)}\n{END}{tail}"
    if new != text:
        readme.write_text(new)
    return new != text
