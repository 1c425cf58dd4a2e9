"""The results table: every method's committed metrics summarized, for the README and the app's Results tab."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from .checkpoint import METRICS, ROOT
from .history import gradient_ratio, hidden_layer_names, layer_value
from .methods import METHODS

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
# Test accuracy printed by the public reference notebooks (NamNguyenWork27/Vanishing-Gradient), one run each:
# the same 7x128 sigmoid MLP, batch 512, 100 epochs, FashionMNIST, SGD lr 0.01 (adam: Adam lr 0.001). Its
# layer-wise notebook follows the 6-training schedule of `layerwise_6`, not our 7 stages; its 0.4202 most likely
# comes from the model after its training 3 (see README).
REFERENCE_ACC = {"baseline": 0.1000, "weight_std_1": 0.7361, "weight_std_10": 0.1927, "relu": 0.7882,
                 "adam": 0.8591, "batchnorm": 0.8785, "skip": 0.6756, "layerwise_6": 0.4202, "grad_norm": 0.5373}
LEARNS_AT = 0.2  # a run "learns" when its test accuracy reaches twice chance (10 classes: 0.1)
BENCHMARK_BEST_MLP = 0.8833  # FashionMNIST README benchmark: MLPClassifier 256-128-100 (also drawn by plots)


def seed_runs(name: str, root: Path = ROOT) -> list[dict]:
    """metrics of every committed run of a method: checkpoints/<name>/metrics.json, then seeds/*.json."""
    folder = root / name
    paths = [folder / METRICS] + sorted((folder / "seeds").glob("*.json"))
    return [json.loads(p.read_text()) for p in paths if p.is_file()]


def summarize(name: str, runs: list[dict]) -> dict:
    """One row of the table from a method's runs (the first is the committed checkpoint, seed 42)."""
    main = runs[0]
    accs = [r["test_acc"] for r in runs]
    final = main["history"][-1]
    hidden = hidden_layer_names(final)  # a run without layers raises IndexError below, as a damaged file
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
        "reference_acc": REFERENCE_ACC.get(name),
    }


def results_rows(root: Path = ROOT, strict: bool = True) -> list[dict]:
    """A row per registry method that has a committed checkpoint, in registry order. With strict=False (the
    app) a method whose metrics files cannot be read or summarized is left out instead of raising: its method
    card already says what is wrong, and one damaged file must not stop the app from starting."""
    rows = []
    for name in METHODS:
        try:
            if runs := seed_runs(name, root):
                rows.append(summarize(name, runs))
        except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
            if strict:
                raise
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
