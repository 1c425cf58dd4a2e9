"""The committed checkpoints are the full-spec runs the README reports, and still match their metrics."""
import json
import statistics
import subprocess
import sys

import pytest

from core.checkpoint import load_checkpoint
from core.evaluate import photo_check, sample_accuracy
from core.methods import METHODS
from core.results import markdown_table, method_runs, results_rows
from tests.helpers import ROOT

CHECKPOINTS = ROOT / "checkpoints"


@pytest.mark.parametrize("name", list(METHODS))
def test_checkpoint_is_the_full_spec_run(name):
    model, metrics = load_checkpoint(CHECKPOINTS / name)  # strict names, shapes, dtypes, hash
    method = METHODS[name]
    config = json.loads((CHECKPOINTS / name / "config.json").read_text())
    assert config == method.model.to_dict() and {k: metrics["config"][k] for k in config} == config
    recorded = {k: v for k, v in method.hyperparameters().items() if k in metrics["config"]}
    assert metrics["config"] == recorded
    assert metrics["seed"] == 42 and metrics["limit"] is None and metrics["stopped"] is None
    assert metrics["epochs"] == method.epochs * max(1, len(method.stages))
    assert len(metrics["history"]) == metrics["epochs"] + 1
    last = metrics["history"][-1]["layers"]  # every diagnostic the Compare tab offers is recorded
    assert all(layer["error_mean_abs"] > 0 for layer in last)
    assert all(layer["activation_std"] >= 0 for layer in last[:-1]) and last[-1]["activation_std"] is None
    assert (CHECKPOINTS / name / "model.safetensors").stat().st_size < 1_000_000  # the Hub's non-LFS limit
    # a stale or mismatched checkpoint shows up as a different accuracy on the committed sample
    assert sample_accuracy(model) == metrics["sample_acc"]


# Ten seeds (42-51) where the first three disagree by more than 0.02 (sample std): a claim about such a method
# needs the wider sample. And grad_norm, whose three agree exactly (all at chance), but far from the reference's
# 0.537: it got seven more to see whether that was the seed (the README says so; tests/test_results.py checks it).
TEN_SEEDS = ("baseline_3", "weight_std_10", "relu", "grad_norm", "grad_norm_lr1e3", "layerwise_6")
# Spread past 0.02 on three seeds, seven more seeds not trained yet: the README must say so beside its row.
PENDING_SEEDS: tuple[str, ...] = ()


@pytest.mark.parametrize("name", list(METHODS))
def test_enough_seeds_of_every_method(name):
    runs, left_out = method_runs(name)
    assert left_out == []  # every committed seed file is a good run of the method's recipe
    seeds = [r["seed"] for r in runs]
    assert seeds[:3] == [42, 43, 44], seeds
    if name in TEN_SEEDS:
        assert seeds == list(range(42, 52)), f"{name} needs seeds 42-51, has {seeds}"
    spread = statistics.stdev(r["test_acc"] for r in runs[:3])
    assert spread <= 0.02 or name in TEN_SEEDS + PENDING_SEEDS, f"{name}: 3-seed std {spread:.3f} needs 10 seeds"
    if name in PENDING_SEEDS:
        readme = (ROOT / "README.md").read_text()
        assert f"`{name}` has {len(seeds)} seeds so far" in readme
    # the same recipe on every seed; a file written before a recipe key existed lacks it (then: its default)
    later = {"seed", "head_init"}
    for r in runs:
        assert r["limit"] is None and set(runs[0]["config"]) - set(r["config"]) <= later, r["seed"]
        assert all(r["config"][k] == v for k, v in runs[0]["config"].items() if k in r["config"] and k != "seed")


def test_readme_table_is_generated_from_the_metrics():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table(results_rows()) in readme, "run: python -m core results --write-readme"


def test_photos_are_classified_like_the_originals():
    # photo-like versions (enlarged, inverted, tinted, shifted, noisy, JPEG) of sample test images
    result = photo_check(load_checkpoint(CHECKPOINTS / "best")[0], per_kind=10)
    assert result["n"] >= 50 and result["relative"] >= 0.85, result


def test_evaluate_cli_measures_the_recorded_accuracy():
    run = subprocess.run([sys.executable, "-m", "core", "evaluate", "--method", "relu", "best"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for line in run.stdout.splitlines()[1:]:
        name, recorded, measured, sample_recorded, sample_now = line.split()
        assert recorded == measured and sample_recorded == sample_now, line


@pytest.mark.slow
def test_committed_weights_retrain_bit_for_bit(tmp_path):
    """The README's reproducibility claim: `python -m core train --method baseline_3` (one torch thread by
    default) rebuilds the committed weights exactly with the pinned torch (the checkpoints may have been trained
    with another release: the README says which ones were measured to agree)."""
    run = subprocess.run([sys.executable, "-m", "core", "train", "--method", "baseline_3", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr
    committed = json.loads((CHECKPOINTS / "baseline_3" / "metrics.json").read_text())
    rebuilt = json.loads((tmp_path / "baseline_3" / "metrics.json").read_text())
    pinned = next(line.split("==")[1].split()[0] for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("torch=="))
    assert rebuilt["torch_version"].split("+")[0] == pinned
    assert rebuilt["weights_sha256"] == committed["weights_sha256"], (rebuilt["torch_version"],
                                                                       committed["torch_version"])
    assert rebuilt["test_acc"] == committed["test_acc"]
