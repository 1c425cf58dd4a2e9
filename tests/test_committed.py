"""The committed checkpoints are the full-spec runs the README reports, and still match their metrics."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT
from core.checkpoint import load_checkpoint
from core.evaluate import photo_check, sample_accuracy
from core.methods import METHODS
from core.results import markdown_table, results_rows, seed_runs

CHECKPOINTS = ROOT / "checkpoints"


@pytest.mark.parametrize("name", list(METHODS))
def test_checkpoint_is_the_full_spec_run(name):
    model, metrics = load_checkpoint(CHECKPOINTS / name)  # strict names, shapes, dtypes, hash
    method = METHODS[name]
    config = json.loads((CHECKPOINTS / name / "config.json").read_text())
    assert config == method.model_config() and {k: metrics["config"][k] for k in config} == config
    assert metrics["config"] == {**method.model_config(), **method.hyperparameters()}
    assert metrics["seed"] == 42 and metrics["limit"] is None and metrics["stopped"] is None
    assert metrics["epochs"] == method.epochs * max(1, len(method.stages))
    assert len(metrics["history"]) == metrics["epochs"] + 1
    assert (CHECKPOINTS / name / "model.safetensors").stat().st_size < 1_000_000  # the Hub's non-LFS limit
    # a stale or mismatched checkpoint shows up as a different accuracy on the committed sample
    assert sample_accuracy(model) == metrics["sample_acc"]


@pytest.mark.parametrize("name", list(METHODS))
def test_three_seeds_of_every_method(name):
    runs = seed_runs(name)
    assert [r["seed"] for r in runs] == [42, 43, 44]
    strip = lambda c: {k: v for k, v in c.items() if k != "seed"}  # noqa: E731
    assert all(strip(r["config"]) == strip(runs[0]["config"]) and r["limit"] is None for r in runs)


def test_readme_table_is_generated_from_the_metrics():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table(results_rows()) in readme, "run: python -m core.results --write-readme"


def test_photos_are_classified_like_the_originals():
    # photo-like versions (enlarged, inverted, tinted, shifted, noisy, JPEG) of sample test images
    result = photo_check(load_checkpoint(CHECKPOINTS / "best")[0], per_kind=10)
    assert result["n"] >= 50 and result["relative"] >= 0.85, result


def test_evaluate_cli_measures_the_recorded_accuracy():
    run = subprocess.run([sys.executable, "-m", "core.evaluate", "--method", "relu", "best"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for line in run.stdout.splitlines()[1:]:
        name, recorded, measured, sample_recorded, sample_now = line.split()
        assert recorded == measured and sample_recorded == sample_now, line
