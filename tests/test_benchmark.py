"""The bench scripts: `python -m bench.benchmark --quick` runs bench.training and bench.latency end to end and
writes every section, whose figures hold together (not their values: a quick run on a busy machine); the one
percentile is numpy's default."""
import json
import subprocess
import sys

import numpy as np
import pytest

from bench.common import ROOT, percentile


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


@pytest.mark.app
def test_quick_benchmark_writes_every_section(tmp_path):
    out = tmp_path / "benchmark.json"
    proc = subprocess.run([sys.executable, "-m", "bench.benchmark", "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert {"meta", "throughput", "flops", "diagnostics_overhead", "train_time", "app"} <= set(res)
    assert res["meta"]["quick"] is True and res["meta"]["torch_threads"] == 1 and res["meta"]["cpu_model"]
    for path in ["throughput.images_per_second_median.ours_no_diagnostics",
                 "throughput.images_per_second_median.ours_diagnostics",
                 "throughput.images_per_second_median.reference",
                 "throughput.speedup_vs_reference.no_diagnostics",
                 "throughput.speedup_vs_reference.with_diagnostics",
                 "flops.step_flops_counted", "flops.epoch_gflop",
                 "flops.achieved_gflops_median.ours_no_diagnostics", "flops.matmul_limit_gflops_median",
                 "flops.fraction_of_matmul_limit.ours_no_diagnostics",
                 "diagnostics_overhead.epoch_seconds_median.without", "diagnostics_overhead.epoch_seconds_median.with",
                 "diagnostics_overhead.epoch_seconds_median.with_update_ratio_every_step",
                 "train_time.total_estimate_seconds", "train_time.jobs2_makespan_estimate_seconds",
                 "app.start_to_serving_s", "app.compare_cold.p50_s", "app.compare_cold.p95_s",
                 "app.compare_warm.p50_s", "app.compare_warm.p95_s", "app.classify.p50_s", "app.classify.p95_s",
                 "app.explain_in_process.p50_s", "app.explain_in_process.cpu_p50_s"]:
        _positive(res, path)
    assert res["flops"]["counted_matches_analytic"] is True  # FlopCounterMode agrees with 2*M*N*K by hand
    for key in ("overhead_median", "update_every_step_extra_median"):  # may be < 0 by noise at this size
        assert isinstance(res["diagnostics_overhead"][key], float), key
    for name, m in res["train_time"]["methods"].items():
        assert m["estimate_seconds"] > 0 and all(t > 0 for t in m["epoch_seconds"]), name
    # the figures hold together: totals are their parts', two jobs take between the longest and the sum,
    # percentiles are ordered, and the table prints what the JSON holds
    tt = res["train_time"]
    estimates = [m["estimate_seconds"] for m in tt["methods"].values()]
    assert tt["total_estimate_seconds"] == pytest.approx(sum(estimates))
    assert max(estimates) <= tt["jobs2_makespan_estimate_seconds"] <= sum(estimates)
    app = res["app"]
    for name in ("compare_cold", "compare_warm", "classify"):
        assert app[name]["p50_s"] <= app[name]["p95_s"] <= app[name]["max_s"], name
    ips = res["throughput"]["images_per_second_median"]
    assert res["throughput"]["speedup_vs_reference"]["no_diagnostics"] == pytest.approx(
        ips["ours_no_diagnostics"] / ips["reference"], rel=0.5)  # a median of ratios, near the ratio of medians
    assert 0 < res["flops"]["fraction_of_matmul_limit"]["ours_no_diagnostics"] < 1.5
    assert f"{tt['total_estimate_seconds'] / 60:.1f} min" in proc.stdout
    assert "Vanishing Gradient Lab benchmark" in proc.stdout
    assert "update_ratio every step" in proc.stdout and "app: classify p50" in proc.stdout
