"""The results table: every method's committed metrics summarized, for the README and the app's Results tab."""
from __future__ import annotations

import functools
import logging
import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path

from .checkpoint import METRICS, ROOT, CheckpointError, read_metrics
from .history import gradient_ratio, hidden_layer_names, layer_value, row_at
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
LEARNS_AT = 0.2  # a run "learns" when its final VALIDATION accuracy reaches twice chance (10 classes: 0.1)
BENCHMARK_BEST_MLP = 0.8833  # FashionMNIST README benchmark: MLPClassifier 256-128-100 (also drawn by ui.figures)
CONFIDENCE = 0.95  # of every interval in the table
# Test accuracies of one method that lie further apart than this, once sorted, are different groups: the table
# then gives each group's n and range instead of a mean, whose t interval assumes one roughly normal spread.
# (0.05 is over twice the widest gap between the sorted runs of any method with 3 seeds: 0.023, tanh's.)
GROUP_GAP = 0.05
# "still rising": in the run's last stage, the best validation accuracy falls in its last tenth of epochs and
# the mean of that tenth is above the mean of the tenth before (more epochs would likely have helped)
RISING_SHARE = 0.1


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


def seed_runs(name: str, root: Path = ROOT) -> list[dict]:
    """Every committed run of a method (metrics.json, then seeds/*.json), strictly: CheckpointError naming the
    first damaged file (core.experiments' analyses read every seed)."""
    runs, left_out = method_runs(name, root)
    if left_out:
        raise CheckpointError(left_out[0])
    return runs


# --------------------------------------------------------------------------------------- statistics

def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (Lentz's method): what
    Student's t distribution needs, without scipy (not among the app's requirements)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1 - _betainc(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1 + num * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + num / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1 - c * d) < 1e-15:
            break
    return front * (f - 1)


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=64)
def t_quantile(p: float, df: int) -> float:
    """The t with P(T <= t) = p (0.5 < p < 1), by bisection on t_cdf: 4.303 for p 0.975, df 2."""
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def mean_interval(values: Sequence[float], prediction: bool = False) -> tuple[float, float] | None:
    """The Student-t CONFIDENCE interval of the mean over `values` (mean ± t s / sqrt n, n - 1 degrees of
    freedom), or with `prediction` where one more run would fall (mean ± t s sqrt(1 + 1/n)); None for n < 2.
    Both assume the runs' values spread roughly normally."""
    n = len(values)
    if n < 2:
        return None
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * sd * (math.sqrt(1 + 1 / n) if prediction else 1 / math.sqrt(n))
    return mean - half, mean + half


def groups(accs: dict[int, float]) -> list[dict]:
    """The runs (seed -> accuracy) in groups, lowest first: sorted, a gap wider than GROUP_GAP starts a group."""
    ordered = sorted(accs.items(), key=lambda kv: kv[1])
    out = [[ordered[0]]] if ordered else []
    for item in ordered[1:]:
        if item[1] - out[-1][-1][1] > GROUP_GAP:
            out.append([])
        out[-1].append(item)
    return [{"n": len(g), "min": g[0][1], "max": g[-1][1], "seeds": sorted(k for k, _ in g)} for g in out]


def still_rising(run: dict) -> bool:
    """Whether validation accuracy was still rising when the run ended (RISING_SHARE above): judged within its
    last stage, whose fresh head makes the stage before incomparable."""
    hist = [r for r in run["history"] if r["epoch"] > 0]
    if not hist:
        return False
    last = [r["val_acc"] for r in hist if r.get("stage", 1) == hist[-1].get("stage", 1)]
    w = max(1, round(RISING_SHARE * len(last)))
    if len(last) < 2 * w:
        return False
    best = max(range(len(last)), key=last.__getitem__)  # (the first of equal bests)
    return best >= len(last) - w and statistics.fmean(last[-w:]) > statistics.fmean(last[-2 * w:-w])


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def rank_words(accs: dict[int, float], seed: int) -> str | None:
    """Where `seed`'s accuracy sits among all of `accs` (seed -> accuracy), in words: "best of 10",
    "median of 3", "4th of 10", "weakest of 10, tied with 5 others", "all 3 equal"; None with one run."""
    n, mine = len(accs), accs.get(seed)
    if n < 2 or mine is None:
        return None
    better = sum(a > mine for a in accs.values())
    ties = sum(a == mine for a in accs.values()) - 1
    if ties == n - 1:
        return f"all {n} equal"
    place = ("best" if better == 0 else "weakest" if better + ties == n - 1
             else "median" if not ties and n % 2 and better == n // 2 else _ordinal(better + 1))
    return f"{place} of {n}" + (f", tied with {ties} other{'s' if ties > 1 else ''}" if ties else "")


def _error_ratio_init(main: dict) -> tuple[float | None, str | None]:
    """The backpropagated-error ratio hidden1/output at epoch 0, if that row holds the whole network (a
    layer-wise run's epoch 0 holds its first stage only: then None and why)."""
    row = row_at(main, 0)
    hidden = hidden_layer_names(row)
    recorded = [n for n in hidden if layer_value(row, n, "error_mean_abs") is not None]
    if len(recorded) < len(hidden):
        return None, (f"its epoch-0 row holds the first stage only ({len(recorded)} of {len(hidden)} hidden layers "
                      "recorded), not the whole network")
    return gradient_ratio(main, 0, "error_mean_abs"), None


def _reference_position(ref: float | None, pi: tuple[float, float] | None, accs: list[float],
                        n_groups: int) -> str | None:
    """Where the reference's one run falls against ours: against our prediction interval for one more run
    when ours form one group, else against our range."""
    if ref is None or not accs:
        return None
    if n_groups == 1 and pi is not None:
        # (tolerance: a mean of equal accuracies may differ from them in the last bit)
        lo, hi = pi[0] - 1e-9, pi[1] + 1e-9
        return "inside our PI" if lo <= ref <= hi else "above our PI" if ref > hi else "below our PI"
    return (f"above all {len(accs)}" if ref > max(accs) else f"below all {len(accs)}" if ref < min(accs)
            else "within our range")


def summarize(name: str, runs: list[dict], left_out: Sequence[str] = ()) -> dict:
    """One row of the table from a method's runs (the first is the committed checkpoint, seed 42), checked
    runs as method_runs reads them; `left_out`: the notes on seed files that are not among them. Test
    accuracy is reported; every judgement ("learns", "still rising") is made on validation accuracy."""
    main = runs[0]
    accs = [r["test_acc"] for r in runs]
    by_seed = {r["seed"]: r["test_acc"] for r in runs}
    final = main["history"][-1]
    hidden = hidden_layer_names(final) or [None]  # (a checked run always has its layers)
    found = groups(by_seed)
    ci = mean_interval(accs) if len(found) == 1 else None
    pi = mean_interval(accs, prediction=True)
    ratio_init, init_note = _error_ratio_init(main)
    rising = [r["seed"] for r in runs if still_rising(r)]
    reference = REFERENCE_ACC.get(name)
    return {
        "method": name, "title": METHODS[name].title if name in METHODS else name,
        "depth": main["config"]["depth"], "test_acc": main["test_acc"],
        "acc_mean": statistics.fmean(accs), "acc_std": statistics.stdev(accs) if len(accs) > 1 else None,
        "acc_median": statistics.median(accs), "acc_min": min(accs), "acc_max": max(accs),
        "acc_ci": ci, "acc_pi": pi if len(found) == 1 else None, "groups": found,
        "seed42_rank": rank_words(by_seed, main["seed"]),
        "val_accs": [r["history"][-1]["val_acc"] for r in runs],
        "learned": sum(r["history"][-1]["val_acc"] >= LEARNS_AT for r in runs), "seeds": [r["seed"] for r in runs],
        "rising": len(rising), "rising_seeds": rising,
        "error_ratio_init": ratio_init, "error_ratio_init_note": init_note,
        "error_ratio_final": gradient_ratio(main, None, "error_mean_abs"),
        "grad_ratio_init": gradient_ratio(main, 0), "grad_ratio_final": gradient_ratio(main, None),
        "weight_change_first": layer_value(final, hidden[0], "rel_weight_change"),
        "weight_change_last": layer_value(final, hidden[-1], "rel_weight_change"),
        "train_seconds": main["train_seconds"], "epochs": main["epochs"], "stopped": main.get("stopped"),
        "reference_acc": reference,
        "reference_position": _reference_position(reference, pi, accs, len(found)),
        "left_out": list(left_out),
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


def spread_text(row: dict, fmt: str = ".4f") -> str:
    """The test accuracy over seeds in words: "mean 0.8303 [0.7966, 0.8640]" (95% t interval) for one group,
    "2 groups: 5 at 0.5516–0.5874; 5 at 0.6688–0.7367" for several, the one value for a single run."""
    n = len(row["seeds"])
    found = row.get("groups") or []
    if len(found) > 1:
        parts = [f"{g['n']} at {g['min']:{fmt}}" + (f"–{g['max']:{fmt}}" if g["max"] != g["min"] else "")
                 for g in found]
        return f"{len(found)} groups: " + "; ".join(parts)
    if n < 2 or row.get("acc_ci") is None:
        return f"{row['acc_mean']:{fmt}}"
    lo, hi = row["acc_ci"]
    return f"mean {row['acc_mean']:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def markdown_table(rows: list[dict]) -> str:
    pct = f"{CONFIDENCE:.0%}"
    lines = [(f"| method | epochs | n | test acc, seed 42 (among its seeds) | test acc over seeds: mean [{pct} CI], or "
              f"groups (gap > {GROUP_GAP}) | median [min – max] | learns (final val acc ≥ {LEARNS_AT}) | "
              f"val acc still rising at the end | reference (vs our {pct} PI) | backprop error hidden1/output, "
              "init → trained | weight change hidden1 / last hidden | train time |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = (f"{r['reference_acc']:.4f} ({r['reference_position']})" if r["reference_acc"] is not None
               else "–")
        n = len(r["seeds"])
        rank = f" ({r['seed42_rank']})" if r.get("seed42_rank") else ""
        lines.append(f"| `{r['method']}` | {r['epochs']} | {n} | {r['test_acc']:.4f}{rank} | {spread_text(r)} | "
                     f"{r['acc_median']:.4f} [{r['acc_min']:.4f} – {r['acc_max']:.4f}] | {r['learned']}/{n} | "
                     f"{r['rising']}/{n} | {ref} | "
                     f"{_sci(r['error_ratio_init'])} → {_sci(r['error_ratio_final'])} | "
                     f"{_sci(r['weight_change_first'])} / {_sci(r['weight_change_last'])} | "
                     f"{r['train_seconds'] / 60:.1f} min |")
    total = sum(r["train_seconds"] for r in rows)
    lines.append("")
    lines.append(f"Sum of the seed-42 training times: {total / 60:.1f} min (each method on one core).")
    no_init = [f"- `{r['method']}`: no init value: {r['error_ratio_init_note']}." for r in rows
               if r.get("error_ratio_init_note")]
    if no_init:
        lines += ["", "Backprop error ratio:", *no_init]
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
