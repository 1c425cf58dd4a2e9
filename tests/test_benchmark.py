"""bench/benchmark.py runs end to end in --quick mode and writes every section (the script works; no figures checked)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _positive(res: dict, path: str) -> None:
    value = res
    for key in path.split("."):
        assert isinstance(value, dict) and key in value, f"{path}: missing {key!r}"
        value = value[key]
    assert isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0, f"{path} = {value!r}"


def test_quick_benchmark_writes_every_section(tmp_path):
    out = tmp_path / "benchmark.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "benchmark.py"), "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
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
                 "train_time.total_estimate_seconds", "train_time.jobs2_makespan_estimate_seconds",
                 "app.start_to_serving_s", "app.compare_cold.p50_s", "app.compare_cold.p95_s",
                 "app.compare_warm.p50_s", "app.compare_warm.p95_s", "app.classify.p50_s", "app.classify.p95_s"]:
        _positive(res, path)
    assert res["flops"]["counted_matches_analytic"] is True  # FlopCounterMode agrees with 2*M*N*K by hand
    assert isinstance(res["diagnostics_overhead"]["overhead_median"], float)  # may be < 0 by noise at this size
    for name, m in res["train_time"]["methods"].items():
        assert m["estimate_seconds"] > 0 and all(t > 0 for t in m["epoch_seconds"]), name
    assert "Vanishing Gradient Lab benchmark" in proc.stdout
