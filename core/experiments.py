"""The experiments and analyses behind the README's claims: `python -m core experiment <name>` runs one and writes
checkpoints/experiments/<name>.json (committed: the README quotes it, tests/test_experiments.py checks the quotes).

    grad-norm-fate       grad_norm's first epochs with the init, the batch order and the step size varied apart
    layerwise-fate       layerwise_6's training 4 rerun from the saved state after training 3, new head/order seeds
    grad-norm-signature  which recorded statistics separate the seeds that end above chance from the others
    forward-signal       how much each hidden layer's output varies across the test images (committed checkpoints)
    eval-batching        test accuracy against the batch size it is evaluated in (custom_norm pools the batch)
"""
from __future__ import annotations

import copy
import itertools
import math
import random
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .checkpoint import ROOT, load_checkpoint
from .data import load_fashion_mnist
from .evaluate import evaluate
from .history import finite_number, row_at
from .methods import METHODS
from .results import LEARNS_AT, seed_runs
from .train import Resume, train_epochs

OUT = ROOT / "experiments"
# A grad_norm run "leaves chance" in an epoch when its train loss ends that epoch below this: a run still at
# chance sits at ln 10 = 2.3026 (the loss of a uniform guess) or just above. In the committed seed files the
# four seeds that end above chance are at 2.10-2.20 after epoch 1, the six others at 2.303-2.308
# (grad-norm-signature); in grad-norm-fate's grid the runs at chance end epoch 1 at 2.302-2.309 and the others
# at 2.26 or less, and the output layer's relative weight change (the other signature) sorts them the same.
LEFT_CHANCE_LOSS = 2.29
PERMUTATIONS = 10_000  # for the p-values of the grid's variance shares
# layerwise_6's two groups at the end of training 4 (epoch 400): the committed seeds are at 0.617-0.675 (upper)
# and 0.526-0.544 (lower) validation accuracy; the threshold sits in the gap.
LAYERWISE_SPLIT = 0.58
LAYERWISE_GROUP_EPOCH = 400


def _curves(record: dict) -> dict:
    """What the fate experiments keep of a history row: the curves and the two statistics that mark a fate."""
    sats = [finite_number(layer.get("saturation")) for layer in record.get("layers") or []]
    sats = [s for s in sats if s is not None]
    out = next((layer for layer in record.get("layers") or [] if layer.get("name") == "output"), {})
    return {"epoch": record["epoch"], "train_loss": record["train_loss"], "val_acc": record["val_acc"],
            "output_rel_weight_change": finite_number(out.get("rel_weight_change")),
            "saturation_mean": statistics.fmean(sats) if sats else None}


def _committed(name: str, root: Path = ROOT) -> dict[int, dict]:
    """Every committed run of a method, by seed."""
    return {r["seed"]: r for r in seed_runs(name, root)}


def _shares(values: dict[tuple, float], rows: list, cols: list) -> dict:
    """How much of the spread of a grid of values (row x column) lines up with the rows, with the columns, and
    with neither (their interaction and noise): the two-way sums of squares over the total, each in [0, 1].
    With no row effect the rows' share would be about (rows - 1) / (cells - 1) ("no_effect"); "p_rows" and
    "p_columns": the share of PERMUTATIONS random reshuffles of the same values (seeded) whose share is as
    large or larger: a permutation test of "the rows (columns) make no difference"."""
    def split(v: dict) -> tuple[float, float, float]:
        grand = statistics.fmean(v.values())
        total = sum((x - grand) ** 2 for x in v.values())
        if total == 0:
            return 0.0, 0.0, 0.0
        by_rows = len(cols) * sum((statistics.fmean(v[r, c] for c in cols) - grand) ** 2 for r in rows) / total
        by_cols = len(rows) * sum((statistics.fmean(v[r, c] for r in rows) - grand) ** 2 for c in cols) / total
        return by_rows, by_cols, total

    by_rows, by_cols, total = split(values)
    if total == 0:
        return {"rows": None, "columns": None, "neither": None, "no_effect_rows": None, "no_effect_columns": None,
                "p_rows": None, "p_columns": None}
    rng, keys, pool = random.Random(0), list(values), list(values.values())
    as_large = [0, 0]
    for _ in range(PERMUTATIONS):
        rng.shuffle(pool)
        r, c, _ = split(dict(zip(keys, pool)))
        as_large[0] += r >= by_rows - 1e-12
        as_large[1] += c >= by_cols - 1e-12
    cells = len(rows) * len(cols)
    return {"rows": by_rows, "columns": by_cols, "neither": max(0.0, 1 - by_rows - by_cols),
            "no_effect_rows": (len(rows) - 1) / (cells - 1), "no_effect_columns": (len(cols) - 1) / (cells - 1),
            "p_rows": (as_large[0] + 1) / (PERMUTATIONS + 1), "p_columns": (as_large[1] + 1) / (PERMUTATIONS + 1)}


# ------------------------------------------------------------------------------------------ grad-norm-fate

def grad_norm_fate(data_dir=None, init_seeds: Iterable[int] = range(42, 47), order_seeds: Iterable[int] = range(42, 47),
                   lrs: Iterable[float] = (0.01, 0.005, 0.002), epochs: int = 2, split_seed: int = 42,
                   limit: int | None = None, root: Path = ROOT) -> dict:
    """grad_norm (the registry's recipe, `epochs` epochs) for every init seed x batch-order seed x learning rate,
    on one split: does its first epoch's fate (train loss below LEFT_CHANCE_LOSS) follow the init, the batch
    order or the step size? The run with init = order = split = 42 at lr 0.01 must repeat the committed
    seed 42's first epoch exactly ("reproduces"; None when the budget is not the spec's)."""
    init_seeds, order_seeds, lrs = list(init_seeds), list(order_seeds), list(lrs)
    data = load_fashion_mnist(data_dir, seed=split_seed, limit=limit)
    base = METHODS["grad_norm"]
    runs = []
    for lr, init, order in itertools.product(lrs, init_seeds, order_seeds):
        method = replace(base, seed=init, lr=lr, epochs=epochs)
        history = [_curves(u.record) for u in train_epochs(method, data, order_seed=order)]
        runs.append({"lr": lr, "init_seed": init, "order_seed": order, "history": history})
    summary = fate_summary(runs, init_seeds, order_seeds, lrs, epochs)
    reproduces = None
    if limit is None and epochs >= 1 and split_seed == 42 and 0.01 in lrs and 42 in init_seeds and 42 in order_seeds:
        mine = next(r for r in runs if (r["lr"], r["init_seed"], r["order_seed"]) == (0.01, 42, 42))
        reproduces = mine["history"][1]["train_loss"] == _committed("grad_norm", root)[42]["history"][1]["train_loss"]
    return {"settings": {"method": "grad_norm", "split_seed": split_seed, "init_seeds": init_seeds,
                         "order_seeds": order_seeds, "lrs": lrs, "epochs": epochs, "limit": limit,
                         "left_chance_loss": LEFT_CHANCE_LOSS},
            "reproduces_seed_42": reproduces, "summary": summary, "runs": runs}


def fate_summary(runs: list[dict], init_seeds: list[int], order_seeds: list[int], lrs: list[float],
                 epochs: int) -> list[dict]:
    """Per learning rate and epoch: how many runs left chance (train loss below LEFT_CHANCE_LOSS), how many
    init seeds (rows) and order seeds (columns) gave all their runs one fate, and how the variance of the
    train loss and of the fate (0/1) splits between the init, the order and neither (_shares)."""
    summary = []
    for lr, epoch in itertools.product(lrs, range(1, epochs + 1)):
        cells = {(r["init_seed"], r["order_seed"]): r["history"][epoch]["train_loss"] for r in runs if r["lr"] == lr}
        left = {k: loss < LEFT_CHANCE_LOSS for k, loss in cells.items()}
        summary.append({
            "lr": lr, "epoch": epoch, "runs": len(cells), "left_chance": sum(left.values()),
            "uniform_init_seeds": sum(len({left[i, o] for o in order_seeds}) == 1 for i in init_seeds),
            "uniform_order_seeds": sum(len({left[i, o] for i in init_seeds}) == 1 for o in order_seeds),
            "loss_variance_share": _shares(cells, init_seeds, order_seeds),
            "left_variance_share": _shares({k: float(v) for k, v in left.items()}, init_seeds, order_seeds)})
    return summary


def grad_norm_fate_table(result: dict) -> str:
    s = result["settings"]
    lines = [f"grad_norm, split seed {s['split_seed']}, {s['epochs']} epochs; cell: train loss after epoch 1 "
             f"(* = below {s['left_chance_loss']}: left chance); rows: init seed, columns: batch-order seed"]
    for lr in s["lrs"]:
        lines += ["", f"lr {lr:g}", "init\\order " + " ".join(f"{o:>7d}" for o in s["order_seeds"])]
        for i in s["init_seeds"]:
            cells = [next(r for r in result["runs"] if (r["lr"], r["init_seed"], r["order_seed"]) == (lr, i, o))
                     for o in s["order_seeds"]]
            losses = [c["history"][1]["train_loss"] for c in cells]
            marks = [f"{v:6.3f}{'*' if v < s['left_chance_loss'] else ' '}" for v in losses]
            lines.append(f"{i:>11d} " + " ".join(marks))
    lines += ["", "lr      epoch  left chance  uniform rows / columns  loss variance share: init (p) / order (p) / "
              "neither  [no effect: ~init / ~order]"]
    fmt = lambda v, f=".2f": "–" if v is None else f"{v:{f}}"  # noqa: E731
    for x in result["summary"]:
        sh = x["loss_variance_share"]
        lines.append(f"{x['lr']:<7g} {x['epoch']:>5d}  {x['left_chance']:>4d}/{x['runs']:<5d}  "
                     f"{x['uniform_init_seeds']:>8d} / {x['uniform_order_seeds']:<12d}  "
                     f"{fmt(sh['rows'])} ({fmt(sh['p_rows'], '.4f')}) / {fmt(sh['columns'])} "
                     f"({fmt(sh['p_columns'], '.4f')}) / {fmt(sh['neither'])}  "
                     f"[{fmt(sh['no_effect_rows'])} / {fmt(sh['no_effect_columns'])}]")
    lines.append(f"reproduces the committed seed 42's epoch 1: {result['reproduces_seed_42']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- layerwise-fate

def layerwise_fate(data_dir=None, base_seeds: Iterable[int] = (42, 43), head_seeds: Iterable[int] = (1, 2),
                   order_seeds: Iterable[int] = (1, 2), epochs: int | None = None, limit: int | None = None,
                   root: Path = ROOT) -> dict:
    """layerwise_6's training 4 rerun from the state after training 3 of each base seed, with every head seed x
    batch-order seed: is the group a seed ends training 4 in inherited from trainings 1-3 or decided in 4?
    Trainings 1-3 of a base seed are its committed run's first 3 x `epochs` epochs (same split, init and batch
    order): "reproduced" says whether the validation accuracy at their end equals the committed file's."""
    method = METHODS["layerwise_6"] if epochs is None else replace(METHODS["layerwise_6"], epochs=epochs)
    per = method.epochs
    spec = epochs is None and limit is None
    committed = _committed("layerwise_6", root) if spec else {}
    bases, reruns = [], []
    for seed in base_seeds:
        data = load_fashion_mnist(data_dir, seed=seed, limit=limit)
        *_, update = train_epochs(replace(method, seed=seed, stages=method.stages[:3]), data)
        saved, val = update.model, update.record["val_acc"]
        file = committed.get(seed)
        after = [file["history"][t * per]["val_acc"] if file else None for t in range(7)]  # after training t
        bases.append({"seed": seed, "val_acc_after_training_3": val, "committed_after_training_3": after[3],
                      "reproduced": (val == after[3]) if file else None,
                      "committed_after_training_4": after[4]})
        for head, order in itertools.product(head_seeds, order_seeds):
            resume = Resume(copy.deepcopy(saved), stage=3, epoch=3 * per)
            curve = [u.record["val_acc"] for u in train_epochs(replace(method, seed=head, stages=method.stages[:4]),
                                                                 data, diagnostics=False, order_seed=order,
                                                                 resume=resume)]
            reruns.append({"base_seed": seed, "head_seed": head, "order_seed": order, "val_acc": curve,
                           "group": "upper" if curve[-1] >= LAYERWISE_SPLIT else "lower"})
    return {"settings": {"method": "layerwise_6", "epochs_per_training": per, "limit": limit,
                         "base_seeds": list(base_seeds), "head_seeds": list(head_seeds),
                         "order_seeds": list(order_seeds), "split": LAYERWISE_SPLIT},
            "bases": bases, "reruns": reruns}


def layerwise_fate_table(result: dict) -> str:
    per = result["settings"]["epochs_per_training"]
    lines = ["base seed  after training 3 (committed)  committed after training 4  reproduced"]
    for b in result["bases"]:
        fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(f"{b['seed']:>9d}  {b['val_acc_after_training_3']:.4f} ({fmt(b['committed_after_training_3'])})"
                     f"{'':>10s}{fmt(b['committed_after_training_4']):>10s}  {b['reproduced']}")
    lines += ["", f"training 4 rerun: validation accuracy at its end (epoch {4 * per}), group at {LAYERWISE_SPLIT}",
              "base  head  order  val acc  group"]
    for r in result["reruns"]:
        lines.append(f"{r['base_seed']:>4d}  {r['head_seed']:>4d}  {r['order_seed']:>5d}  {r['val_acc'][-1]:.4f}   "
                     f"{r['group']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ grad-norm-signature

def row_statistics(row: dict) -> dict[str, float]:
    """Every number a history row records, by name: the four curves and each layer's statistics ("output.
    rel_weight_change"); a value not recorded or not finite is left out."""
    stats = {k: float(row[k]) for k in ("train_loss", "train_acc", "val_loss", "val_acc")
             if finite_number(row.get(k)) is not None}
    for layer in row.get("layers") or []:
        for key, value in layer.items():
            if key != "name" and finite_number(value) is not None:
                stats[f"{layer.get('name')}.{key}"] = float(value)
    return stats


def separating(runs: list[dict], group: set[int], epoch: int) -> dict:
    """The statistics recorded after `epoch` in every one of `runs` that split the seeds in `group` from the
    others: every value of one side below every value of the other. "clearest" first: the gap between the
    sides over the whole range of the statistic. "chance": how likely one statistic is to split them so
    for seeds assigned to the sides at random (2 of the C(n, k) ways to pick the group)."""
    stats = {r["seed"]: row_statistics(row_at(r, epoch)) for r in runs}
    common = sorted(set.intersection(*(set(s) for s in stats.values())))
    found = []
    for name in common:
        a = [s[name] for seed, s in stats.items() if seed in group]
        b = [s[name] for seed, s in stats.items() if seed not in group]
        gap = max(min(a) - max(b), min(b) - max(a))
        if gap > 0:
            span = max(a + b) - min(a + b)
            found.append({"statistic": name, "group": [min(a), max(a)], "others": [min(b), max(b)],
                          "margin": gap / span})
    found.sort(key=lambda f: -f["margin"])
    k = len([r for r in runs if r["seed"] in group])
    return {"epoch": epoch, "recorded": len(common), "separating": len(found),
            "chance_per_statistic": 2 / math.comb(len(runs), k), "statistics": found}


def parting_epoch(runs: list[dict], group: set[int], last: int) -> int | None:
    """The first epoch from which the group's validation accuracies stay apart from the others' (every one
    above, or every one below) at every epoch up to `last`; None if they are not apart at `last`."""
    part = None
    for epoch in range(last, -1, -1):
        a = [row_at(r, epoch)["val_acc"] for r in runs if r["seed"] in group]
        b = [row_at(r, epoch)["val_acc"] for r in runs if r["seed"] not in group]
        if not (min(a) > max(b) or min(b) > max(a)):
            break
        part = epoch
    return part


def grad_norm_signature(root: Path = ROOT, data_dir=None) -> dict:
    """grad_norm's seeds that end above chance (final validation accuracy >= LEARNS_AT) against those that do
    not: the statistics that separate them at init and after epochs 1 and 2, and when each seed's train loss
    left ln 10 and came back. The same for layerwise_6's two groups (validation accuracy at the end of
    training 4 above or below LAYERWISE_SPLIT), after epoch 1 and each of trainings 1-3, and when they part."""
    runs = list(_committed("grad_norm", root).values())
    learners = {r["seed"] for r in runs if r["history"][-1]["val_acc"] >= LEARNS_AT}
    seeds = []
    for r in runs:
        h = r["history"]
        best = max(h, key=lambda x: x["val_acc"])
        below = [x["epoch"] for x in h if x["train_loss"] < LEFT_CHANCE_LOSS]
        seeds.append({"seed": r["seed"], "ends_above_chance": r["seed"] in learners,
                      "final_val_acc": h[-1]["val_acc"], "test_acc": r["test_acc"],
                      "best_val_acc": best["val_acc"], "best_val_epoch": best["epoch"],
                      "epoch_1_train_loss": h[1]["train_loss"], "final_train_loss": h[-1]["train_loss"],
                      "first_epoch_below": below[0] if below else None,
                      "last_epoch_below": below[-1] if below else None})
    lw = list(_committed("layerwise_6", root).values())
    per = lw[0]["config"]["epochs"]
    upper = {r["seed"] for r in lw if row_at(r, LAYERWISE_GROUP_EPOCH)["val_acc"] >= LAYERWISE_SPLIT}
    return {"grad_norm": {"ends_above_chance": sorted(learners), "seeds": seeds,
                          "by_epoch": [separating(runs, learners, e) for e in (0, 1, 2)]},
            "layerwise_6": {"upper": sorted(upper), "group_epoch": LAYERWISE_GROUP_EPOCH,
                            "final_test_acc": {str(r["seed"]): r["test_acc"] for r in lw},
                            "by_epoch": [separating(lw, upper, e) for e in (1, per, 2 * per, 3 * per)],
                            "parting_epoch": parting_epoch(lw, upper, LAYERWISE_GROUP_EPOCH)}}


def grad_norm_signature_table(result: dict) -> str:
    g = result["grad_norm"]
    lines = [f"grad_norm: seeds ending above chance (final val acc >= {LEARNS_AT}): {g['ends_above_chance']}",
             "seed  above  epoch-1 loss  left ln10 (first-last epoch)  best val (epoch)  final val  test"]
    for s in g["seeds"]:
        span = "never" if s["first_epoch_below"] is None else f"{s['first_epoch_below']}-{s['last_epoch_below']}"
        above = "yes" if s["ends_above_chance"] else "no"
        lines.append(f"{s['seed']:>4d}  {above:>5s}  {s['epoch_1_train_loss']:12.4f}  {span:>28s}  "
                     f"{s['best_val_acc']:.3f} ({s['best_val_epoch']:>3d})  {s['final_val_acc']:9.3f}  "
                     f"{s['test_acc']:.4f}")
    for label, part in (("grad_norm", g), ("layerwise_6 (upper vs lower group)", result["layerwise_6"])):
        lines.append("")
        for e in part["by_epoch"]:
            lines.append(f"{label}, after epoch {e['epoch']}: {e['separating']} of {e['recorded']} statistics "
                         f"separate the groups (chance per statistic {e['chance_per_statistic']:.4f})")
            for f in e["statistics"][:6]:
                lines.append(f"    {f['statistic']:32s} group {f['group'][0]:.4g}-{f['group'][1]:.4g}  "
                             f"others {f['others'][0]:.4g}-{f['others'][1]:.4g}  margin {f['margin']:.2f}")
    lines.append(f"layerwise_6: validation accuracies part for good (to epoch "
                 f"{result['layerwise_6']['group_epoch']}) at epoch {result['layerwise_6']['parting_epoch']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- forward-signal

@torch.no_grad()
def forward_signal(root: Path = ROOT, data_dir=None, images: int | None = None) -> dict:
    """Each committed checkpoint (seed 42) on the test images (the first `images`; all 10,000 by default), in
    eval mode and one batch: per hidden layer the std of each unit's output across the images, averaged over
    the units ("unit_std") and the share of units whose output is the same for every image; for the logits
    the std across images averaged over the classes, and how many distinct logit vectors there are."""
    test = load_fashion_mnist(data_dir).test
    x = test.x[:images]
    methods = {}
    for name in METHODS:
        if not (root / name / "metrics.json").is_file():
            continue
        model, _ = load_checkpoint(root / name)
        model.eval()
        layers = []
        for depth in range(1, model.config.depth + 1):
            std = model.features(x, depth).std(0)
            layers.append({"name": f"hidden{depth}", "unit_std": std.mean().item(),
                           "constant_units": (std == 0).float().mean().item()})
        logits = model(x)
        methods[name] = {"layers": layers, "logit_std": logits.std(0).mean().item(),
                         "distinct_logits": len(torch.unique(logits, dim=0)),
                         "distinct_predictions": len(torch.unique(logits.argmax(1)))}
    return {"images": len(x), "methods": methods}


def forward_signal_table(result: dict) -> str:
    depth = max(len(m["layers"]) for m in result["methods"].values())
    lines = [f"mean over units of each unit's output std across {result['images']} test images (seed-42 checkpoints)",
             f"{'method':16s}" + "".join(f"{f'hidden{i + 1}':>9s}" for i in range(depth))
             + "   logit std  distinct logits"]
    for name, m in result["methods"].items():
        lines.append(f"{name:16s}" + "".join(f"{layer['unit_std']:9.2g}" for layer in m["layers"])
                     + " " * 9 * (depth - len(m["layers"])) + f"   {m['logit_std']:9.3g}  {m['distinct_logits']:>15d}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- eval-batching

def eval_batching(root: Path = ROOT, data_dir=None, methods: Iterable[str] = ("custom_norm", "batchnorm"),
                  batch_sizes: Iterable[int] = (10_000, 4096, 512, 64, 1)) -> dict:
    """Test accuracy of committed checkpoints with the test set evaluated in batches of each size (4096 is what
    core.evaluate and the recorded test_acc use). custom_norm standardizes each layer over the whole batch
    tensor, so its predictions depend on the batch; batchnorm in eval mode uses its running statistics."""
    test = load_fashion_mnist(data_dir).test
    out = {}
    for name in methods:
        model, metrics = load_checkpoint(root / name)
        out[name] = {"recorded_test_acc": metrics["test_acc"],
                     "test_acc": {str(b): evaluate(model, test, batch_size=b)[1] for b in batch_sizes}}
    return {"images": len(test), "batch_sizes": list(batch_sizes), "methods": out}


def eval_batching_table(result: dict) -> str:
    lines = [f"test accuracy ({result['images']} images) by evaluation batch size",
             f"{'method':16s}" + "".join(f"{b:>9d}" for b in result["batch_sizes"]) + "   recorded"]
    for name, m in result["methods"].items():
        lines.append(f"{name:16s}" + "".join(f"{m['test_acc'][str(b)]:9.4f}" for b in result["batch_sizes"])
                     + f"   {m['recorded_test_acc']:.4f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- run

@dataclass(frozen=True)
class Experiment:
    run: Callable[..., dict]  # called with data_dir=...; returns the JSON-ready result
    table: Callable[[dict], str]


EXPERIMENTS = {
    "grad-norm-fate": Experiment(grad_norm_fate, grad_norm_fate_table),
    "layerwise-fate": Experiment(layerwise_fate, layerwise_fate_table),
    "grad-norm-signature": Experiment(grad_norm_signature, grad_norm_signature_table),
    "forward-signal": Experiment(forward_signal, forward_signal_table),
    "eval-batching": Experiment(eval_batching, eval_batching_table),
}


def run_experiment(name: str, data_dir=None) -> dict:
    """Run one experiment and wrap its result with what reproduces it: the command, torch, the time taken."""
    start = time.perf_counter()
    result = EXPERIMENTS[name].run(data_dir=data_dir)
    return {"experiment": name, "command": f"python -m core experiment {name}", "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - start, 1), **result}


def load_result(name: str, folder: Path = OUT) -> dict:
    """A committed experiment's JSON."""
    import json
    return json.loads((folder / f"{name}.json").read_text())
