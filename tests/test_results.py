"""core.results' statistics (t quantiles, intervals, groups, the still-rising flag, where seed 42 sits) on
hand-made numbers, and the committed table's rows recomputed from the files by other code."""
import itertools
import math
import statistics

import pytest

from core import results
from core.history import layer_value
from core.methods import METHODS
from core.results import (
    GROUP_GAP,
    LEARNS_AT,
    groups,
    mean_interval,
    rank_words,
    results_rows,
    seed_runs,
    still_rising,
    t_cdf,
    t_quantile,
)
from tests.helpers import ROOT

# Student's t 0.975 quantiles as printed in any table (and by scipy.stats.t.ppf(0.975, df))
T975 = {1: 12.706204736, 2: 4.302652730, 4: 2.776445105, 9: 2.262157163, 30: 2.042272456}


@pytest.mark.parametrize("df,t", sorted(T975.items()))
def test_t_quantiles_match_the_tables(df, t):
    assert t_quantile(0.975, df) == pytest.approx(t, abs=1e-8)
    assert t_cdf(t, df) == pytest.approx(0.975, abs=1e-10) and t_cdf(-t, df) == pytest.approx(0.025, abs=1e-10)


def test_t_approaches_the_normal_and_is_symmetric():
    assert t_quantile(0.975, 10**6) == pytest.approx(1.959964, abs=1e-5)
    assert t_cdf(0.0, 3) == pytest.approx(0.5)
    assert t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi


def test_mean_and_prediction_intervals():
    values = [0.8146, 0.8380, 0.8384]  # tanh's three seeds
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    lo, hi = mean_interval(values)
    assert (hi - lo) / 2 == pytest.approx(T975[2] * sd / math.sqrt(3), rel=1e-9)
    plo, phi = mean_interval(values, prediction=True)
    assert (phi - plo) / 2 == pytest.approx(T975[2] * sd * math.sqrt(1 + 1 / 3), rel=1e-9)
    assert plo < lo < mean < hi < phi
    assert mean_interval([0.5]) is None and mean_interval([]) is None


def test_groups_split_at_gaps_wider_than_the_rule():
    accs = {1: 0.10, 2: 0.10, 3: 0.10 + GROUP_GAP * 0.9, 4: 0.5, 5: 0.52}
    assert groups(accs) == [{"n": 3, "min": 0.10, "max": 0.10 + GROUP_GAP * 0.9, "seeds": [1, 2, 3]},
                            {"n": 2, "min": 0.5, "max": 0.52, "seeds": [4, 5]}]
    assert len(groups({1: 0.8, 2: 0.81, 3: 0.82})) == 1 and groups({}) == []


def _run(vals, stages=None):
    stages = stages or [1] * len(vals)
    return {"history": [{"epoch": 0, "val_acc": 0.1}] +
            [{"epoch": i + 1, "stage": s, "val_acc": v} for i, (v, s) in enumerate(zip(vals, stages))]}


def test_still_rising_needs_the_best_at_the_end_and_a_higher_last_tenth():
    climbing = [i / 100 for i in range(100)]
    assert still_rising(_run(climbing))
    assert not still_rising(_run(climbing[:50] + [0.49] * 50))  # flat: the best came long before the end
    assert not still_rising(_run(climbing[:89] + [0.95] + [0.5] * 10))  # best in the last tenth? no, just before
    peak_then_dip = climbing[:90] + [0.99] + [0.80] * 9
    assert not still_rising(_run(peak_then_dip))  # best in the last tenth but its mean is below the tenth before
    assert still_rising(_run(climbing[:90] + [0.99] + [0.92] * 9))
    # judged within the last stage: an earlier stage's higher accuracy does not count
    assert still_rising(_run([0.9] * 100 + climbing, stages=[1] * 100 + [2] * 100))
    assert not still_rising(_run([])) and not still_rising(_run([0.3]))


def test_rank_words():
    accs = {42: 0.50, 43: 0.70, 44: 0.60}
    assert rank_words(accs, 42) == "weakest of 3" and rank_words(accs, 43) == "best of 3"
    assert rank_words(accs, 44) == "median of 3"
    assert rank_words({42: 0.6, 43: 0.7, 44: 0.5, 45: 0.4}, 42) == "2nd of 4"
    assert rank_words({42: 0.1, 43: 0.1, 44: 0.1, 45: 0.3}, 42) == "weakest of 4, tied with 2 others"
    assert rank_words({42: 0.1, 43: 0.1}, 42) == "all 2 equal" and rank_words({42: 0.1}, 42) is None


# --- the committed rows, recomputed from the files ---------------------------------------------------------

@pytest.fixture(scope="module")
def rows():
    return {r["method"]: r for r in results_rows()}


def test_learns_and_rising_are_judged_on_validation(rows):
    for name, row in rows.items():
        runs = seed_runs(name)
        assert row["learned"] == sum(r["history"][-1]["val_acc"] >= LEARNS_AT for r in runs), name
        assert row["rising_seeds"] == [r["seed"] for r in runs if still_rising(r)], name
        assert row["epochs"] == runs[0]["epochs"] == len(runs[0]["history"]) - 1
    # grad_norm's seed 46 ends at 0.2065 validation, 0.1999 test: it counts as learning, on validation
    assert rows["grad_norm"]["learned"] == 4
    assert rows["relu"]["rising"] == 10 and rows["layerwise"]["epochs"] == 700 and rows["layerwise_6"]["epochs"] == 600


def test_groups_and_intervals_of_the_committed_rows(rows):
    for name, row in rows.items():
        accs = [r["test_acc"] for r in seed_runs(name)]
        assert sum(g["n"] for g in row["groups"]) == len(accs)
        assert (row["acc_ci"] is None) == (len(row["groups"]) > 1 or len(accs) < 2), name
        if row["acc_ci"]:
            assert row["acc_ci"][0] <= statistics.fmean(accs) <= row["acc_ci"][1]
    assert [g["seeds"] for g in rows["layerwise_6"]["groups"]] == [[43, 45, 46, 47, 49], [42, 44, 48, 50, 51]]
    assert [g["n"] for g in rows["grad_norm"]["groups"]] == [6, 1, 2, 1]
    # the rule's margin (results.GROUP_GAP's comment): the 3-seed methods' widest gap is under half of it
    gaps = [b - a for row in rows.values() if len(row["seeds"]) == 3
            for a, b in itertools.pairwise(sorted(r["test_acc"] for r in seed_runs(row["method"])))]
    assert max(gaps) < GROUP_GAP / 2 and max(gaps) == pytest.approx(0.0234, abs=1e-4)
    # with n = 3, tanh's and adam's intervals overlap: they cannot be ranked
    (a, b), (c, d) = rows["tanh"]["acc_ci"], rows["adam"]["acc_ci"]
    assert a < d and c < b


def test_the_vanishing_measure_is_the_backpropagated_error(rows):
    for name, row in rows.items():
        main = seed_runs(name)[0]
        first, last = main["history"][0], main["history"][-1]
        final = layer_value(last, "hidden1", "error_mean_abs") / layer_value(last, "output", "error_mean_abs")
        assert row["error_ratio_final"] == pytest.approx(final, rel=1e-12), name
        full = all(layer_value(first, f"hidden{i + 1}", "error_mean_abs") is not None
                   for i in range(main["config"]["depth"]))
        assert (row["error_ratio_init"] is None) == (not full) == (row["error_ratio_init_note"] is not None), name
    # relu: the weight-gradient ratio hides the vanishing error at init (README, "Results")
    assert rows["relu"]["grad_ratio_init"] > 0.1 and rows["relu"]["error_ratio_init"] < 1e-3
    assert rows["relu"]["error_ratio_final"] > 0.5


def test_where_seed_42_sits_and_the_reference(rows):
    assert rows["grad_norm_lr1e3"]["seed42_rank"] == "weakest of 10"
    for name in ("batchnorm", "skip"):  # "ours lower" is inside our own prediction interval
        lo, hi = rows[name]["acc_pi"]
        assert lo <= results.REFERENCE_ACC[name] <= hi and rows[name]["reference_position"] == "inside our PI"
    assert rows["grad_norm"]["reference_position"] == "above all 10"
    assert rows["layerwise_6"]["reference_position"] == "below all 10"


# --- the method cards (core/methods.py descriptions) quote the files -------------------------------------

def _saturation(row: dict) -> float:
    """Mean saturation over a history row's hidden layers."""
    return statistics.fmean(layer["saturation"] for layer in row["layers"] if layer.get("saturation") is not None)


def _at(name: str, epoch: int, layer: str, key: str) -> float:
    return layer_value(seed_runs(name)[0]["history"][epoch], layer, key)


def test_the_cards_quote_the_files(rows):
    d = {name: " ".join(m.description.split()) for name, m in METHODS.items()}
    ratio = {name: row["error_ratio_init"] for name, row in rows.items()}
    assert f"is {ratio['baseline']:.1e} of the output layer's (per image)" in d["baseline"]
    assert f"(at init it gets ~{ratio['baseline_3']:.0e} of the output's error, not ~{ratio['baseline']:.0e})" \
        in d["baseline_3"]
    assert rows["baseline_3"]["learned"] == 10 and rows["baseline_3"]["rising"] == 6
    assert "above chance on all 10 seeds after 100 epochs" in d["baseline_3"] and "still improving on 6 of them" \
        in d["baseline_3"]
    assert rows["baseline_5"]["learned"] == 0 and rows["baseline_5"]["acc_max"] == 0.1 == rows["baseline"]["acc_max"]
    assert f"its first layer gets ~{ratio['baseline_5']:.0e} of the output's error" in d["baseline_5"]
    assert f"the first layer gets {ratio['weight_std_1']:.2f} of the output's error" in d["weight_std_1"]
    # weight_std_10: saturation at init on every seed, the first layer's gradient and steps at the end
    runs = seed_runs("weight_std_10")
    assert all(0.96 <= _saturation(r["history"][0]) < 0.97 for r in runs) and "96-97% of units on every seed" \
        in d["weight_std_10"]
    fall = _at("weight_std_10", 0, "hidden1", "grad_mean_abs") / _at("weight_std_10", -1, "hidden1", "grad_mean_abs")
    assert f"falls about {round(fall, -2):,.0f}-fold" in d["weight_std_10"]
    assert f"~{_at('weight_std_10', -1, 'hidden1', 'update_ratio'):.0e} of its weights" in d["weight_std_10"]
    assert rows["weight_std_10"]["learned"] == 1 and "learns on 1 of 10 seeds" in d["weight_std_10"]
    # relu at init, its first 30 epochs, its end
    err = {n: _at("relu", 0, n, "error_mean_abs") for n in ("hidden1", "hidden7", "output")}
    assert (f"{err['hidden1']:.1e} at hidden1, {err['hidden7']:.1e} at hidden7 and {err['output']:.2f} at the "
            "output (seed 42)") in d["relu"]
    first30 = max(r["val_acc"] for run in seed_runs("relu") for r in run["history"][:31])
    assert first30 < 0.39 and "stays below 0.39 for 30 epochs on all 10 seeds" in d["relu"]
    assert f"({rows['relu']['error_ratio_final']:.2f} of the output's after 100 epochs)" in d["relu"]
    assert rows["relu"]["rising"] == 10 and "every seed was still improving at epoch 100" in d["relu"]
    assert f"gets {ratio['tanh']:.1e} of the output's, against {ratio['baseline']:.1e} with sigmoid" in d["tanh"]
    assert f"~{_at('adam', 1, 'hidden1', 'update_ratio'):.0e} of its weights, against " \
           f"~{_at('baseline', 1, 'hidden1', 'update_ratio'):.0e}" in d["adam"]
    # grad_norm and its lr-0.001 twin
    best = max(seed_runs("grad_norm")[0]["history"], key=lambda r: r["val_acc"])
    assert f"(validation accuracy {best['val_acc']:.3f} at epoch {best['epoch']})" in d["grad_norm"]
    assert f"{rows['grad_norm']['learned']} of 10 seeds end above chance" in d["grad_norm"]
    sat = {name: [_saturation(r["history"][1]) for r in seed_runs(name)] for name in ("grad_norm", "grad_norm_lr1e3")}
    words = {name: f"{min(v):.0%}-{max(v):.0%}".replace("%-", "-") for name, v in sat.items()}
    assert f"({words['grad_norm_lr1e3']} after the first epoch, against {words['grad_norm']} at lr 0.01)" \
        in d["grad_norm_lr1e3"]
    assert f"{rows['grad_norm_lr1e3']['rising']} of 10 were still improving at epoch 100" in d["grad_norm_lr1e3"]
    assert f"It trains 7 x 100 = {rows['layerwise']['epochs']} epochs" in d["layerwise"]
    assert f"{rows['layerwise_6']['epochs']} epochs in all" in d["layerwise_6"]


# --- the README's Results prose quotes the files -------------------------------------------------------------

def _readme() -> str:
    return " ".join((ROOT / "README.md").read_text().split())


def _ci(row: dict) -> str:
    return f"{row['acc_mean']:.4f} [{row['acc_ci'][0]:.4f}, {row['acc_ci'][1]:.4f}]"


def test_the_readme_says_which_methods_got_ten_seeds_and_why(rows):
    readme = _readme()
    ten = [name for name, row in rows.items() if len(row["seeds"]) == 10]
    by_rule = [n for n in ten if statistics.stdev(r["test_acc"] for r in seed_runs(n)[:3]) > 0.02]
    assert by_rule == ["baseline_3", "weight_std_10", "relu", "layerwise_6", "grad_norm_lr1e3"]
    assert set(ten) - set(by_rule) == {"grad_norm"}
    assert [r["test_acc"] for r in seed_runs("grad_norm")[:3]] == [0.1, 0.1, 0.1]
    assert "Six have 10 (42-51): " + ", ".join(f"`{n}`" for n in by_rule[:-1]) + f" and `{by_rule[-1]}` because " \
           "their three seeds' test accuracies disagreed by more than 0.02 (sample std), and `grad_norm`, whose " \
           "three agreed exactly (0.1000 each)" in readme
    assert f"The other {len(rows) - len(ten)} methods rest on 3 seeds each." in readme
    assert all(len(row["seeds"]) in (3, 10) for row in rows.values())


def test_the_readme_quotes_the_rows(rows):
    readme = _readme()
    gn = rows["grad_norm"]
    assert [g["min"] for g in gn["groups"]] == [0.1, 0.1999, 0.2909, 0.4724]
    assert (f"test accuracies fall in {len(gn['groups'])} groups (six at 0.1000, then 0.1999, 0.2909-0.2927, "
            "0.4724)") in readme
    above = sorted(r["seed"] for r in seed_runs("grad_norm") if r["history"][-1]["val_acc"] >= LEARNS_AT)
    assert f"{gn['learned']} of 10 end above chance (final validation accuracy ≥ 0.2: seeds " \
           f"{', '.join(map(str, above[:-1]))}, {above[-1]})" in readme
    lr3 = rows["grad_norm_lr1e3"]
    assert (f"All 10 seeds learn, unevenly: test accuracies in {len(lr3['groups'])} groups from "
            f"{lr3['acc_min']:.4f} to {lr3['acc_max']:.4f} (median {lr3['acc_median']:.4f})") in readme
    assert f"on {lr3['rising']} of the 10 seeds" in readme
    flat = [r["val_acc"] for r in seed_runs("grad_norm_lr1e3")[0]["history"][40:]]
    assert 0.47 <= min(flat) and max(flat) < 0.495 and "stays at 0.47-0.49 from epoch 40 on" in readme
    w10 = rows["weight_std_10"]
    learner = [r for r in seed_runs("weight_std_10") if r["history"][-1]["val_acc"] >= LEARNS_AT]
    assert [r["seed"] for r in learner] == [44]
    assert f"(seed 44, final validation accuracy {learner[0]['history'][-1]['val_acc']:.3f}); test accuracy " \
           f"{_ci(w10)}" in readme
    b3 = [g for g in rows["baseline_3"]["groups"]]
    assert (f"test accuracies {b3[0]['min']:.4f}-{b3[0]['max']:.4f} ({b3[0]['n']} seeds) and "
            f"{b3[1]['min']:.4f}-{b3[1]['max']:.4f} ({b3[1]['n']}), and {rows['baseline_3']['rising']} of 10 were "
            "still rising") in readme
    firsts = [next(r["epoch"] for r in run["history"] if r["val_acc"] >= 0.5) for run in seed_runs("relu")]
    assert f"first reaches 0.5 at epochs {min(firsts)}-{max(firsts)}" in readme
    assert f"Test accuracy {_ci(rows['relu'])}; the reference's 0.7882 is inside" in readme
    for name in ("tanh", "adam", "custom_norm"):
        assert f"`{name}` {_ci(rows[name])}" in readme, name
    assert f"`batchnorm`'s {_ci(rows['batchnorm'])}" in readme
    others = [row for name, row in rows.items() if name != "best"]
    lo = rows["best"]["acc_ci"][0]
    assert all(lo > (r["acc_ci"][1] if r["acc_ci"] else r["acc_max"]) for r in others)
    assert f"Only `best`'s, [{rows['best']['acc_ci'][0]:.4f}, {rows['best']['acc_ci'][1]:.4f}], lies above" in readme
    assert f"so its number is optimistic: {_ci(rows['best'])} over 3 seeds" in readme
    assert rows["best"]["acc_ci"][0] > results.BENCHMARK_BEST_MLP
    # the reference against our prediction intervals
    bn, sk = rows["batchnorm"]["acc_pi"], rows["skip"]["acc_pi"]
    assert f"([{bn[0]:.4f}, {bn[1]:.4f}] and [{sk[0]:.4f}, {sk[1]:.4f}], 3 seeds each)" in readme
    inside = [n for n, r in rows.items() if r["reference_position"] == "inside our PI"]
    assert inside == ["baseline", "weight_std_1", "weight_std_10", "relu", "adam", "batchnorm", "skip"]
    assert f"for these {len(inside)} there is no difference to explain" in readme
    lw, lw6 = rows["layerwise"], rows["layerwise_6"]
    assert f"`layerwise` {_ci(lw)} over 3 seeds ({lw['epochs']} epochs)" in readme
    assert lw6["acc_max"] < lw["acc_min"]
    assert f"seed-to-seed std of its 3 seeds ({rows['custom_norm']['acc_std']:.4f})" in readme
    # relu's two ratios, quoted in the column explanation
    assert f"reads {rows['relu']['grad_ratio_init']:.2f} at init while its error ratio is " \
           f"{rows['relu']['error_ratio_init']:.1e}" in readme
