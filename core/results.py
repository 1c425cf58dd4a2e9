"""The results table: every method's committed metrics summarized, for the README and the app's Results tab."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from .checkpoint import ROOT, METRICS
from .methods import METHODS
from .plots import gradient_ratio

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
# Test accuracy reported by the public reference notebooks (NamNguyenWork27/Vanishing-Gradient):
# the same 7x128 sigmoid MLP, SGD lr 0.01, batch 512, 100 epochs, FashionMNIST. One run each.
REFERENCE_ACC = {"baseline": 0.1000, "weight_std_1": 0.7361, "weight_std_10": 0.1927, "relu": 0.7882,
                 "adam": 0.8591, "batchnorm": 0.8785, "skip": 0.6756, "layerwise": 0.4202, "grad_norm": 0.5373}
BENCHMARK_BEST_MLP = 0.8833  # FashionMNIST README benchmark: MLPClassifier 256-128-100


def _layer(row: dict, name: str, key: str):
    return next((l[key] for l in row["layers"] if l["name"] == name), None)


def seed_runs(name: str, root: Path = ROOT) -> list[dict]:
    """metrics of every committed run of a method: checkpoints/<name>/metrics.json, then seeds/*.json."""
    folder = root / name
    paths = [folder / METRICS] + sorted((folder / "seeds").glob("*.json"))
    return [json.loads(p.read_text()) for p in paths if p.is_file()]


def summarize(name: str, runs: list[dict]) -> dict:
    """One row of the table from a method's runs (the first is the committed checkpoint, seed 42)."""
    main = runs[0]
    accs = [r["test_acc"] for r in runs]
    last_hidden = f"hidden{main['config']['depth']}"
    final = main["history"][-1]
    return {
        "method": name, "title": METHODS[name].title if name in METHODS else name,
        "depth": main["config"]["depth"], "test_acc": main["test_acc"],
        "acc_mean": statistics.fmean(accs), "acc_std": statistics.stdev(accs) if len(accs) > 1 else None,
        "seeds": [r["seed"] for r in runs],
        "grad_ratio_init": gradient_ratio(main, 0), "grad_ratio_final": gradient_ratio(main, None),
        "weight_change_first": _layer(final, "hidden1", "rel_weight_change"),
        "weight_change_last": _layer(final, last_hidden, "rel_weight_change"),
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
    lines = ["| method | test acc (seed 42) | mean ± std (seeds) | reference | hidden1/output mean\\|grad\\| "
             "init → trained | weight change hidden1 / last hidden | train time |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        spread = f"{r['acc_mean']:.4f} ± {r['acc_std']:.4f} ({len(r['seeds'])})" if r["acc_std"] is not None \
            else f"{r['acc_mean']:.4f} (1)"
        ref = f"{r['reference_acc']:.4f}" if r["reference_acc"] is not None else "–"
        lines.append(f"| `{r['method']}` | {r['test_acc']:.4f} | {spread} | {ref} | "
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.results", description=__doc__)
    parser.add_argument("--write-readme", action="store_true", help="update the table in README.md")
    args = parser.parse_args(argv)
    rows = results_rows()
    if args.write_readme:
        print("README.md updated" if write_readme(rows) else "README.md already up to date")
    else:
        print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
