"""core.experiments: each experiment on a tiny budget gives a well-formed result; the committed results
(checkpoints/experiments/*.json) are what the code produces, hold together, and are what the README, the
method cards and the About tab quote."""
import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from core import experiments as ex
from core.data import load_fashion_mnist
from core.methods import METHODS
from core.results import LEARNS_AT, seed_runs
from core.train import train_epochs
from tests.helpers import ROOT

README = " ".join((ROOT / "README.md").read_text().split())


def committed(name: str) -> dict:
    return ex.load_result(name)


def cards() -> str:
    return " ".join(" ".join(m.description for m in METHODS.values()).split())


# --- tiny budgets: well-formed results ---------------------------------------------------------------------

def test_grad_norm_fate_on_a_tiny_budget():
    r = ex.grad_norm_fate(init_seeds=[1, 2], order_seeds=[3], lrs=[0.01, 0.002], epochs=1, limit=512)
    assert len(r["runs"]) == 4 and r["reproduces_seed_42"] is None  # not the spec's budget: nothing to compare
    assert {(x["lr"], x["init_seed"], x["order_seed"]) for x in r["runs"]} == {(a, b, 3) for a in (0.01, 0.002)
                                                                                for b in (1, 2)}
    for run in r["runs"]:
        assert [h["epoch"] for h in run["history"]] == [0, 1]
        assert run["history"][1]["output_rel_weight_change"] > 0 and 0 <= run["history"][1]["val_acc"] <= 1
    assert [(s["lr"], s["epoch"], s["runs"]) for s in r["summary"]] == [(0.01, 1, 2), (0.002, 1, 2)]
    for s in r["summary"]:
        losses = [x["history"][1]["train_loss"] for x in r["runs"] if x["lr"] == s["lr"]]
        assert s["left_chance"] == sum(v < ex.LEFT_CHANCE_LOSS for v in losses)
    assert "lr 0.002" in ex.grad_norm_fate_table(r)


def test_layerwise_fate_on_a_tiny_budget():
    r = ex.layerwise_fate(base_seeds=[1], head_seeds=[2], order_seeds=[3, 4], epochs=1, limit=512)
    (base,) = r["bases"]
    assert base["seed"] == 1 and base["reproduced"] is None and 0 <= base["val_acc_after_training_3"] <= 1
    assert [(x["base_seed"], x["head_seed"], x["order_seed"]) for x in r["reruns"]] == [(1, 2, 3), (1, 2, 4)]
    for x in r["reruns"]:
        assert len(x["val_acc"]) == 1 and x["group"] == ("upper" if x["val_acc"][-1] >= ex.LAYERWISE_SPLIT else "lower")
    assert "reproduced" in ex.layerwise_fate_table(r)


def test_shares_find_a_row_effect_and_not_a_column_effect():
    rows, cols = [0, 1, 2, 3], [0, 1, 2, 3]
    values = {(r, c): 10.0 * r + 0.1 * ((r * 7 + c * 3) % 5) for r in rows for c in cols}
    s = ex._shares(values, rows, cols)
    assert s["rows"] > 0.99 and s["columns"] < 0.01 and s["p_rows"] < 0.01 and s["p_columns"] > 0.05
    assert s["no_effect_rows"] == pytest.approx(3 / 15)
    assert ex._shares({(r, c): 1.0 for r in rows for c in cols}, rows, cols)["rows"] is None


def test_the_experiment_command(tmp_path):
    run = subprocess.run([sys.executable, "-m", "core", "experiment", "grad-norm-signature", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    written = json.loads((tmp_path / "grad-norm-signature.json").read_text())
    assert written["command"] == "python -m core experiment grad-norm-signature"
    assert "17 of 59 statistics separate" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "core", "experiment", "nope"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1


# --- the committed results: the code's, consistent -------------------------------------------------------

def test_every_experiment_is_committed():
    for name in ex.EXPERIMENTS:
        r = committed(name)
        assert r["experiment"] == name and r["command"] == f"python -m core experiment {name}"
        assert r["torch_threads"] == 1


def test_the_committed_signature_is_what_the_seed_files_give():
    fresh = ex.grad_norm_signature()
    r = committed("grad-norm-signature")
    assert {k: r[k] for k in fresh} == json.loads(json.dumps(fresh))
    g = r["grad_norm"]
    runs = seed_runs("grad_norm")
    assert g["ends_above_chance"] == sorted(x["seed"] for x in runs if x["history"][-1]["val_acc"] >= LEARNS_AT)
    assert g["ends_above_chance"] == [45, 46, 48, 50]


def test_the_committed_grid_is_the_code_s():
    r = committed("grad-norm-fate")
    s = r["settings"]
    assert r["reproduces_seed_42"] is True and s["left_chance_loss"] == ex.LEFT_CHANCE_LOSS
    assert len(r["runs"]) == len(s["lrs"]) * len(s["init_seeds"]) * len(s["order_seeds"])
    assert r["summary"] == ex.fate_summary(r["runs"], s["init_seeds"], s["order_seeds"], s["lrs"], s["epochs"])
    # one cell rerun (the split, init and order of the grid, 2 epochs) gives exactly the committed numbers
    cell = next(x for x in r["runs"] if (x["lr"], x["init_seed"], x["order_seed"]) == (0.005, 44, 43))
    torch.set_num_threads(1)
    method = replace(METHODS["grad_norm"], seed=44, lr=0.005, epochs=s["epochs"])
    data = load_fashion_mnist(seed=s["split_seed"])
    again = [ex._curves(u.record) for u in train_epochs(method, data, order_seed=43)]
    assert again == cell["history"]
    # the threshold sits in the gap between the runs at chance and the others, both signatures agreeing
    at_chance = []
    for run in r["runs"]:
        h = run["history"][1]
        assert not ex.LEFT_CHANCE_LOSS - 0.02 < h["train_loss"] < ex.LEFT_CHANCE_LOSS + 0.01
        if run["lr"] == 0.01:  # (smaller steps move the weights less whatever the fate)
            assert (h["train_loss"] < ex.LEFT_CHANCE_LOSS) == (h["output_rel_weight_change"] > 0.05)
        if h["train_loss"] >= ex.LEFT_CHANCE_LOSS:
            at_chance.append(h["train_loss"])
    assert f"the runs still at chance end epoch 1 at {min(at_chance):.3f}-{max(at_chance):.3f}" in README


def test_the_committed_layerwise_reruns_start_from_the_committed_runs():
    r = committed("layerwise-fate")
    runs = {x["seed"]: x for x in seed_runs("layerwise_6")}
    per = r["settings"]["epochs_per_training"]
    for b in r["bases"]:
        assert b["reproduced"] is True
        assert b["val_acc_after_training_3"] == runs[b["seed"]]["history"][3 * per]["val_acc"]
        assert b["committed_after_training_4"] == runs[b["seed"]]["history"][4 * per]["val_acc"]
    # the groups' threshold sits in the committed seeds' gap at the end of training 4
    at_400 = [x["history"][ex.LAYERWISE_GROUP_EPOCH]["val_acc"] for x in runs.values()]
    assert min(a for a in at_400 if a > ex.LAYERWISE_SPLIT) - max(a for a in at_400 if a < ex.LAYERWISE_SPLIT) > 0.05
    for x in r["reruns"]:
        assert len(x["val_acc"]) == per
        assert x["group"] == ("upper" if x["val_acc"][-1] >= ex.LAYERWISE_SPLIT else "lower")


def test_the_committed_forward_signal_and_batching_are_measured_again():
    signal = ex.forward_signal(images=2000)
    mine = committed("forward-signal")
    assert mine["images"] == 10_000 and set(mine["methods"]) == set(signal["methods"]) == set(METHODS)
    for name in ("baseline", "grad_norm", "batchnorm"):
        a, b = signal["methods"][name]["layers"], mine["methods"][name]["layers"]
        assert [x["unit_std"] for x in a] == pytest.approx([x["unit_std"] for x in b], rel=0.2, abs=1e-12)
    assert signal["methods"]["grad_norm"]["distinct_logits"] == mine["methods"]["grad_norm"]["distinct_logits"] == 1
    batching = ex.eval_batching(methods=("custom_norm",), batch_sizes=(4096, 512))
    committed_batching = committed("eval-batching")["methods"]
    for size in ("4096", "512"):
        assert batching["methods"]["custom_norm"]["test_acc"][size] == \
            committed_batching["custom_norm"]["test_acc"][size]
    for name, m in committed_batching.items():
        assert m["test_acc"]["4096"] == m["recorded_test_acc"], name  # the recorded test_acc is 4096-batched
    assert len(set(committed_batching["batchnorm"]["test_acc"].values())) == 1


# --- the words that quote them -----------------------------------------------------------------------------

def _f(x, digits=3):
    return f"{x:.{digits}f}"


def test_the_readme_quotes_the_grad_norm_signature():
    g = committed("grad-norm-signature")["grad_norm"]
    e0, e1, e2 = g["by_epoch"]
    assert f"Of the {e1['recorded']} statistics that every one of its seed files records after epoch 1, " \
           f"{e1['separating']} split the four seeds" in README
    assert f"probability 2/210 = {e1['chance_per_statistic']:.4f}" in README
    top = {f["statistic"]: f for f in e1["statistics"]}
    assert e1["statistics"][0]["statistic"] == "output.rel_weight_change"
    rwc = top["output.rel_weight_change"]
    assert f"relative weight change ({_f(rwc['group'][0])}-{_f(rwc['group'][1])} against " \
           f"{_f(rwc['others'][0])}-{_f(rwc['others'][1])})" in README
    loss = top["train_loss"]
    assert f"train loss ({loss['group'][0]:.2f}-{loss['group'][1]:.2f} against {_f(loss['others'][0])}-" \
           f"{_f(loss['others'][1])}:" in README
    assert [f["statistic"] for f in e1["statistics"][:4]] == ["output.rel_weight_change", "train_acc", "val_loss",
                                                               "train_loss"]
    assert f"none of the {e0['recorded']} recorded statistics separates them, after epoch 2 " \
           f"{['no', 'one', 'two', 'three', 'four', 'five', 'six'][e2['separating']]} do" in README
    seeds = {s["seed"]: s for s in g["seeds"]}
    assert f"validation accuracy {_f(seeds[42]['best_val_acc'])} at epoch {seeds[42]['best_val_epoch']}" in README
    assert f"seed 49 reached {_f(seeds[49]['best_val_acc'])} at epoch {seeds[49]['best_val_epoch']}" in README
    assert all(seeds[s]["final_train_loss"] == pytest.approx(2.3026, abs=0.0015) for s in (42, 49))


def test_the_readme_quotes_the_layerwise_signature():
    lw = committed("grad-norm-signature")["layerwise_6"]
    e1, t1, t2, t3 = lw["by_epoch"]
    assert (e1["separating"], t1["separating"], t3["separating"]) == (0, 0, 0) and e1["recorded"] == t1["recorded"]
    assert f"none of the {e1['recorded']} statistics every seed file records" in README
    assert f"after training 2 two of {t2['recorded']} do" in README and t2["separating"] == 2
    f = t2["statistics"][0]
    assert f"(train loss {_f(f['group'][0])}-{_f(f['group'][1])} against {_f(f['others'][0])}-{_f(f['others'][1])})" \
        in README
    assert f"none of {t3['recorded']} (for one statistic by chance: 2/252 = {t3['chance_per_statistic']:.4f})" in README
    assert f"part for good at epoch {lw['parting_epoch']}, in training 4" in README
    assert 300 < lw["parting_epoch"] <= 400


def test_the_readme_quotes_the_forward_signal():
    m = committed("forward-signal")["methods"]
    base, bn, gn = (m[k]["layers"] for k in ("baseline", "batchnorm", "grad_norm"))
    assert f"from {base[0]['unit_std']:.1e} at hidden1 to {base[-1]['unit_std']:.1e} at hidden7" in README
    assert f"(std across images {m['baseline']['logit_std']:.1e})" in README
    factors = [b["unit_std"] / a["unit_std"] for a, b in zip(base, base[1:])]
    assert all(0.13 < f < 0.15 for f in factors) and "about 0.14 per layer" in README
    assert f"BatchNorm keeps {bn[0]['unit_std']:.2f} at hidden1-6 ({bn[-1]['unit_std']:.2f} at hidden7)" in README
    assert all(round(x["unit_std"], 2) == 0.21 for x in bn[:6])
    assert m["grad_norm"]["distinct_logits"] == 1 and gn[-1]["constant_units"] == 1.0
    shares = [f"{gn[i]['constant_units']:.0%} of hidden{i + 1}'s" for i in (1, 3, 5)]
    assert f"({shares[0]}, {shares[1]}, {shares[2]})" in README
    assert f"{gn[3]['unit_std']:.1e} at hidden4" in README


def test_the_readme_and_card_quote_the_batching():
    b = committed("eval-batching")["methods"]
    acc = b["custom_norm"]["test_acc"]
    sentence = (f"scores {acc['10000']:.4f} with all 10,000 test images in one batch, {acc['4096']:.4f} in batches "
                f"of 4096 (what `core.evaluate` and the table use), {acc['512']:.4f} in batches of 512, "
                f"{acc['64']:.4f} in batches of 64 and {acc['1']:.4f} one image at a time")
    assert sentence in README
    assert f"scores {b['batchnorm']['test_acc']['1']:.4f} at every batch size" in README
    spread = max(acc.values()) - min(acc.values())
    assert f"That spread, {spread:.4f}," in README
    assert f"{acc['10000']:.4f} with the whole test set in one batch" in cards()
    assert f"{acc['1']:.4f} one image at a time" in cards()


def test_the_readme_quotes_the_grad_norm_fate():
    r = committed("grad-norm-fate")
    s = {(x["lr"], x["epoch"]): x for x in r["summary"]}
    first = s[0.01, 1]
    sh = first["loss_variance_share"]
    assert sh["no_effect_rows"] == sh["no_effect_columns"]
    assert (f"The init seeds account for {sh['rows']:.2f} (p = {sh['p_rows']:.3f}) of the variance of the epoch-1 "
            f"train loss and the order seeds for {sh['columns']:.2f} (p = {sh['p_columns']:.2f}), against "
            f"{sh['no_effect_rows']:.2f} each expected with no effect") in README
    assert sh["p_rows"] < 0.01 < 0.1 < sh["p_columns"] and sh["rows"] > 2 * sh["no_effect_rows"] > sh["columns"]
    for x in r["summary"]:
        assert (f"| {x['lr']:g} | {x['epoch']} | {x['left_chance']}/{x['runs']} | {x['uniform_init_seeds']} of 5 | "
                f"{x['uniform_order_seeds']} of 5 |") in README
    for lr in (0.005, 0.002):
        assert s[lr, 1]["left_chance"] == s[lr, 1]["runs"] == 25
    assert "at lr 0.005 and 0.002 all 50 runs leave chance in epoch 1" in README
    assert "at lr 0.005 or 0.002 every run leaves chance in the first epoch" in cards()
    assert "that first-epoch fate follows mostly the initial weights, partly the batch order" in cards()
    rows = {i: sum(x["history"][1]["train_loss"] < ex.LEFT_CHANCE_LOSS for x in r["runs"]
                   if x["lr"] == 0.01 and x["init_seed"] == i) for i in r["settings"]["init_seeds"]}
    assert rows == {42: 3, 43: 4, 44: 1, 45: 5, 46: 0}
    assert "init 45 leaves chance with all 5 batch orders and init 46 with none" in README
    unindented = "\n".join(line.strip() for line in (ROOT / "README.md").read_text().splitlines())
    assert fate_grid(r, 0.01) in unindented


def fate_grid(r: dict, lr: float) -> str:
    """The README's table of grad-norm-fate's epoch-1 train losses at `lr` (init seed x batch-order seed)."""
    orders = r["settings"]["order_seeds"]
    lines = ["| init \\ order | " + " | ".join(str(o) for o in orders) + " |", "|---" * (len(orders) + 1) + "|"]
    for i in r["settings"]["init_seeds"]:
        cells = sorted((x for x in r["runs"] if x["lr"] == lr and x["init_seed"] == i), key=lambda x: x["order_seed"])
        losses = [x["history"][1]["train_loss"] for x in cells]
        lines.append(f"| {i} | " + " | ".join(f"{v:.3f}" + ("*" if v < ex.LEFT_CHANCE_LOSS else "") for v in losses)
                     + " |")
    return "\n".join(lines)


def test_the_about_tab_and_cards_quote_the_forward_signal():
    from ui import pages
    about = " ".join(pages.about().split())
    m = committed("forward-signal")["methods"]
    base, bn = m["baseline"]["layers"], m["batchnorm"]["layers"]
    assert (f"the baseline's signal fades from {pages.power_of_ten(base[0]['unit_std'])} at hidden layer 1 to "
            f"{pages.power_of_ten(base[-1]['unit_std'])} at hidden layer 7") in about
    stds = [x["unit_std"] for x in bn]
    assert f"BatchNorm's stays at {min(stds):.2f}–{max(stds):.2f}" in about
    assert m["grad_norm"]["distinct_logits"] == 1 and "gives every image the same output" in about
    factors = [b["unit_std"] / a["unit_std"] for a, b in zip(base, base[1:])]
    assert all(round(f, 2) in (0.13, 0.14) for f in factors)
    assert "each layer passes on about 0.14 of the image-to-image variation" in cards()
    assert "now gives every image the same logits" in cards()
    assert "part for good at epoch " + str(committed("grad-norm-signature")["layerwise_6"]["parting_epoch"]) \
        in cards()


def test_the_readme_and_card_quote_the_layerwise_reruns():
    r = committed("layerwise-fate")
    bases = {b["seed"]: b for b in r["bases"]}
    assert set(bases) == {42, 43}
    assert f"(validation accuracy {bases[42]['val_acc_after_training_3']:.4f} and " \
           f"{bases[43]['val_acc_after_training_3']:.4f} at epoch 300, as in their seed files)" in README
    ends = {s: [x["val_acc"][-1] for x in r["reruns"] if x["base_seed"] == s] for s in bases}
    upper = {s for s, b in bases.items() if b["committed_after_training_4"] >= ex.LAYERWISE_SPLIT}
    assert upper == {42}
    for s, values in ends.items():  # every rerun in its seed's group, the reruns of one seed close together
        assert len(values) == 4 and all((v >= ex.LAYERWISE_SPLIT) == (s in upper) for v in values)
        assert max(values) - min(values) < 0.02
        assert f"{min(values):.4f}-{max(values):.4f}" in README
    assert min(ends[42]) - max(ends[43]) >= 0.11 and "0.11 or more apart from the other seed's" in README
    table = (ROOT / "README.md").read_text()
    for s, b in bases.items():
        runs = sorted((x for x in r["reruns"] if x["base_seed"] == s), key=lambda x: (x["head_seed"], x["order_seed"]))
        group = "upper" if s in upper else "lower"
        line = f"| seed {s} ({group}) | " + " | ".join(f"{x['val_acc'][-1]:.4f}" for x in runs) + \
            f" | {b['committed_after_training_4']:.4f} |"
        assert line in table, line
    assert f"{r['seconds']:,.0f} s on this busy machine" in README
    # the caveat: seed 42 was ahead after training 3, but that accuracy does not separate all ten seeds
    runs = {x["seed"]: x for x in seed_runs("layerwise_6")}
    after3 = {s: x["history"][300]["val_acc"] for s, x in runs.items()}
    assert f"seed 48, upper, had {after3[48]:.3f}; seed 46, lower, {after3[46]:.3f}" in README
    assert after3[48] < after3[46]
    assert "4 reruns each), the fourth ends in that seed's group every time" in cards()
    t2 = committed("grad-norm-signature")["layerwise_6"]["by_epoch"][2]
    assert f"({t2['separating']} of {t2['recorded']} statistics after the second, by slim margins)" in cards()
