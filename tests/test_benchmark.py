"""The bench scripts: `python -m bench.training --quick` measures the three epochs side by side and its figures
are consistent with each other; `python -m bench.benchmark --quick` runs training and latency end to end and
writes every section; the recorder/replayer replays what it recorded; the one percentile is numpy's default."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from bench.common import ROOT, percentile
from bench.training import OpRecorder, analytic_step_flops, mm_flops, replayer


def _positive(res: dict, path: str) -> None:
    value = res
    for key in path.split("."):
        assert isinstance(value, dict) and key in value, f"{path}: missing {key!r}"
        value = value[key]
    assert isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0, f"{path} = {value!r}"


def test_percentile_is_linear_interpolation_as_numpy():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 10, 41):
        xs = list(rng.random(n))
        for q in (0, 5, 50, 90, 95, 99, 100):
            assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)), abs=1e-12), (n, q)
    assert percentile([], 95) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_the_recorded_matmuls_of_a_step_are_its_flops_by_hand():
    """OpRecorder sees every mm/addmm autograd issues (forward, both backward products, none for the images'
    gradient); replayed on fresh tensors of the same layouts they give tensors of the recorded shapes."""
    from core.methods import BASELINE
    from core.models import DeepMLP
    torch.manual_seed(0)
    model = DeepMLP(BASELINE.model)
    x, y = torch.rand(64, 784), torch.randint(0, 10, (64,))
    rec = OpRecorder()
    with rec:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    assert mm_flops(rec.calls) == analytic_step_flops(BASELINE.model.to_dict(), 64)["total"]
    matmuls = [c for c in rec.calls if c[1] in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default)]
    assert len(matmuls) == 8 + 8 + 7  # forward per Linear, a weight gradient per Linear, input gradients but one
    run, skipped = replayer(matmuls, share=False)
    assert skipped == 0
    run()  # replays without error, on tensors laid out as recorded


def test_quick_training_bench_figures_are_consistent(tmp_path):
    out = tmp_path / "training.json"
    proc = subprocess.run([sys.executable, "-m", "bench.training", "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    ep = res["epoch"]
    assert ep["counted_matches_analytic"] is True and ep["steps"] == 4  # --quick: 2,048 images, batch 512
    for clock in ("median_seconds", "median_cpu_seconds"):
        t = ep[clock]
        assert all(t[k] > 0 for k in ("ours", "ours_no_diagnostics", "limit", "reference")), t
        # the matmuls alone are a lower bound on any loop that does them, ours and the reference alike
        assert t["limit"] <= t["ours"] and t["limit"] <= t["ours_no_diagnostics"] and t["limit"] <= t["reference"], t
    for suffix in ("", "_cpu"):
        assert 0 < ep["fraction_of_limit" + suffix] <= 1.1
        assert 0 < ep["fraction_of_limit_no_diagnostics" + suffix] <= 1.1
        assert math.isfinite(ep["diagnostics_overhead" + suffix])
        assert ep["reference_over_limit" + suffix] >= 1
    # the fraction is the limit over our epoch, round by round
    rounds = range(len(ep["cpu_seconds"]["ours"]))
    per_round = sorted(ep["cpu_seconds"]["limit"][i] / ep["cpu_seconds"]["ours"][i] for i in rounds)
    assert ep["fraction_of_limit_cpu"] == pytest.approx(float(np.median(per_round)))
    bd = res["breakdown"]
    assert bd["ops_recorded"] > 100 and bd["ops_not_replayable"] == 0
    assert sum(bd["seconds"].values()) == pytest.approx(bd["epoch_cpu_seconds"])
    assert all(v >= 0 for k, v in bd["seconds"].items() if not k.startswith("the rest")), bd["seconds"]
    assert bd["seconds"]["matmul kernels (mm, addmm)"] == max(bd["seconds"].values())
    assert {"validation pass (per epoch)", "diagnostics: recorder (per step)",
            "optimizer step + zero_grad"} <= set(bd["seconds"])
    tt = res["train_time"]
    assert tt["jobs2_makespan_estimate_seconds"] >= tt["total_estimate_seconds"] / 2
    assert tt["jobs2_makespan_estimate_seconds"] >= max(m["estimate_seconds"] for m in tt["methods"].values())
    assert "fraction of the matmul limit" in proc.stdout and "breakdown of one epoch" in proc.stdout


@pytest.mark.app
def test_quick_benchmark_writes_every_section(tmp_path):
    out = tmp_path / "benchmark.json"
    proc = subprocess.run([sys.executable, "-m", "bench.benchmark", "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert {"meta", "epoch", "breakdown", "train_time", "app"} <= set(res)
    assert res["meta"]["quick"] is True and res["meta"]["torch_threads"] == 1 and res["meta"]["cpu_model"]
    for path in ["epoch.median_seconds.ours", "epoch.median_seconds.ours_no_diagnostics",
                 "epoch.median_seconds.limit", "epoch.median_seconds.reference",
                 "epoch.fraction_of_limit", "epoch.fraction_of_limit_cpu", "epoch.flops_per_step",
                 "epoch.limit_gflops", "breakdown.epoch_cpu_seconds",
                 "train_time.total_estimate_seconds", "train_time.jobs2_makespan_estimate_seconds",
                 "app.start_to_serving_s", "app.compare_cold.p50_s", "app.compare_cold.p95_s",
                 "app.compare_warm.p50_s", "app.compare_warm.p95_s", "app.classify.p50_s", "app.classify.p95_s",
                 "app.early_compare.p50_s", "app.early_compare.max_s", "app.browser.pair_change.p50_s",
                 "app.explain_in_process.p50_s", "app.explain_in_process.cpu_p50_s"]:
        _positive(res, path)
    assert res["epoch"]["counted_matches_analytic"] is True
    for name, m in res["train_time"]["methods"].items():
        assert m["estimate_seconds"] > 0 and all(t > 0 for t in m["epoch_seconds"]), name
    # the figures hold together: totals are their parts', two jobs take between the longest and the sum,
    # percentiles are ordered, and the table prints what the JSON holds
    tt = res["train_time"]
    estimates = [m["estimate_seconds"] for m in tt["methods"].values()]
    assert tt["total_estimate_seconds"] == pytest.approx(sum(estimates))
    assert max(estimates) <= tt["jobs2_makespan_estimate_seconds"] <= sum(estimates)
    app = res["app"]
    assert app["early_compare"]["n"] == 2 and app["browser"]["pair_change"]["n"] == 2  # the quick mode's counts
    for name in ("compare_cold", "compare_warm", "classify", "early_compare"):
        assert app[name]["p50_s"] <= app[name]["p95_s"] <= app[name]["max_s"], name
    t = res["epoch"]["median_seconds"]  # a median of ratios, near the ratio of medians
    assert res["epoch"]["fraction_of_limit"] == pytest.approx(t["limit"] / t["ours"], rel=0.5)
    assert f"{tt['total_estimate_seconds'] / 60:.1f} min" in proc.stdout
    assert "Vanishing Gradient Lab benchmark" in proc.stdout
    assert "fraction of the matmul limit" in proc.stdout and "app: classify p50" in proc.stdout
    assert "app: never-seen pairs right after" in proc.stdout and "app: pair change to chart drawn" in proc.stdout
