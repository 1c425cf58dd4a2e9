"""core.ood: the committed "not clothing" detector matches its record, passes real items and flags the pictures of
core.nonclothing, and refuses damaged files; core.evaluate.output_spread tells the committed models that answer
the same for every image from those that learned."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from core import cli, nonclothing, ood
from core.checkpoint import load_checkpoint
from core.data import load_sample, to_images
from core.evaluate import CONSTANT_SPREAD, output_spread
from core.methods import METHODS
from tests.helpers import ROOT

# At chance, with the same answer for every image (README, Results): their top class means nothing.
CONSTANT = ("baseline", "baseline_5", "grad_norm")


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny matmuls gain nothing from threads, and on a busy CPU the thread hand-offs make them far slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def detector() -> ood.Detector:
    return ood.load(ood.FOLDER)


@pytest.fixture(scope="module")
def sample_inputs() -> torch.Tensor:
    return ood.as_uploads(to_images(load_sample().x))


def test_committed_detector_matches_its_record(detector, sample_inputs):
    record = detector.record
    assert record["command"] == "python -m core ood" and record["hidden"] == ood.HIDDEN
    flagged = detector.flags(sample_inputs)
    assert int(flagged.sum()) == record["rates"]["sample_flagged"]  # the same weights, the same threshold
    assert flagged.float().mean() <= 0.03  # real test images: nearly all pass
    assert record["rates"]["test"] <= 0.02 and record["rates"]["validation"] <= 0.011
    assert record["rates"]["not_clothing_all"] >= 0.9


def test_threshold_is_the_validation_quantile(detector, fashion):
    # chosen on the validation split alone, each image preprocessed as an upload
    scores = detector.score(ood.as_uploads(to_images(fashion.val.x))).numpy()
    assert detector.threshold == pytest.approx(float(np.quantile(scores[np.isfinite(scores)], ood.QUANTILE)),
                                               rel=1e-6)
    assert float((scores > detector.threshold).mean()) == pytest.approx(detector.record["rates"]["validation"])


def test_each_non_clothing_kind_is_mostly_flagged(detector):
    kinds, x = nonclothing.model_inputs(10, ood.REPORT_SEED)  # the first 10 of each kind of the report's 50
    flagged = detector.flags(x).numpy()
    kinds = np.array(kinds)
    per_kind = {k: flagged[kinds == k].mean() for k in nonclothing.KINDS}
    assert all(v >= 0.6 for v in per_kind.values()), per_kind
    assert flagged.mean() >= 0.85


def test_blank_input_is_flagged_and_clothing_photos_mostly_pass(detector):
    assert detector.flags(torch.zeros(3, 784)).all()  # nothing stood out of the background
    sample = load_sample()
    rng = np.random.default_rng(5)
    kinds, photos = ood.photo_inputs(to_images(sample.x), rng, 10)
    assert detector.flags(photos).float().mean() <= 0.15


def test_non_clothing_pictures_are_fixed_by_the_seed():
    first, again, other = nonclothing.pictures(2, 7), nonclothing.pictures(2, 7), nonclothing.pictures(2, 8)
    assert [k for k, _ in first] == [k for k in nonclothing.KINDS for _ in range(2)]
    assert all(p.mode == "RGB" and min(p.size) >= 200 for _, p in first)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for (_, a), (_, b) in zip(first, again))
    assert not any(np.array_equal(np.asarray(a), np.asarray(b)) for (_, a), (_, b) in zip(first, other)
                   if a.size == b.size)
    with pytest.raises(ValueError):
        nonclothing.picture("kitten", np.random.default_rng(0))


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "ood"
    shutil.copytree(ood.FOLDER, folder)
    return folder


def _rewrite_weights(folder: Path, change) -> None:
    """Replace the weights file with changed tensors, and the hash in the record to match, so that only the
    check aimed at is left to catch it."""
    state = safetensors_load((folder / ood.WEIGHTS).read_bytes())
    data = safetensors_save(change(dict(state)))
    (folder / ood.WEIGHTS).write_bytes(data)
    _edit_record(folder, weights_sha256=hashlib.sha256(data).hexdigest())


def _edit_record(folder: Path, **changes) -> None:
    record = json.loads((folder / ood.RECORD).read_text())
    (folder / ood.RECORD).write_text(json.dumps({**record, **changes}))  # NaN written as NaN, as json allows


def _nan(state):
    state["hidden.weight"][0, 0] = float("nan")
    return state


def _narrow(state):
    state["hidden.weight"] = state["hidden.weight"][:, :700].contiguous()
    return state


def _double(state):
    state["out.bias"] = state["out.bias"].double()
    return state


@pytest.mark.parametrize("damage,message", [
    (lambda f: (f / ood.WEIGHTS).write_bytes((f / ood.WEIGHTS).read_bytes()[:5000]), "not a readable safetensors"),
    (lambda f: (f / ood.WEIGHTS).unlink(), "ood/detector.safetensors: missing"),
    (lambda f: _rewrite_weights(f, _nan), "hidden.weight holds NaN or inf"),
    (lambda f: _rewrite_weights(f, _narrow), "hidden.weight is (128, 700)"),
    (lambda f: _rewrite_weights(f, _double), "out.bias is (1,) torch.float64"),
    (lambda f: (f / ood.RECORD).write_text("{ not json"), "ood/detector.json: not valid JSON"),
    (lambda f: _edit_record(f, threshold=float("nan")), "threshold must be a finite number, got NaN"),
    (lambda f: _edit_record(f, threshold="0.5"), "threshold must be a finite number, got \"0.5\""),
    (lambda f: _edit_record(f, hidden=64), "torch.float32, expected (64"),
    (lambda f: (f / ood.WEIGHTS).write_bytes(_flipped((f / ood.WEIGHTS).read_bytes())), "does not match the hash"),
], ids=["truncated", "missing", "nan", "wrong-shape", "wrong-dtype", "bad-json", "threshold-nan", "threshold-string",
        "hidden-mismatch", "bit-flip"])
def test_damaged_detector_is_refused(tmp_path, damage, message):
    folder = _copy(tmp_path)
    ood.load(folder)  # the copy itself loads
    damage(folder)
    with pytest.raises(ood.DetectorError) as refused:
        ood.load(folder)
    assert message in str(refused.value) and "rebuild it with `python -m core ood`" in str(refused.value)
    assert str(tmp_path) not in str(refused.value)  # a file named relative to its folder, never a full path


def _flipped(data: bytes) -> bytes:
    """One bit of the last weight flipped: still a valid file with finite values, only the hash tells."""
    return data[:-1] + bytes([data[-1] ^ 0x01])


def test_bad_arguments_get_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["ood", "--hidden", "3"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "unrecognized arguments" in err
    folder = _copy(tmp_path)
    (folder / ood.RECORD).write_text("[]")
    assert cli.main(["ood", "--report-only", "--out", str(folder)]) == 2  # refused before any data is read
    assert capsys.readouterr().err == ("error: ood/detector.json: not a format-1 detector record; "
                                       "rebuild it with `python -m core ood`\n")


@pytest.fixture(scope="module")
def spreads() -> dict[str, tuple[float, int]]:
    """Per committed method: its output_spread on the committed sample, and how many classes it predicts."""
    x = load_sample().x
    out = {}
    for name in METHODS:
        model = load_checkpoint(ROOT / "checkpoints" / name)[0]
        with torch.no_grad():
            out[name] = output_spread(model, x), len(set(model(x).argmax(1).tolist()))
    return out


def test_output_spread_tells_constant_models_from_learned_ones(spreads):
    constant = {n for n, (s, _) in spreads.items() if s < CONSTANT_SPREAD}
    assert constant == set(CONSTANT)
    assert all(spreads[n][1] == 1 for n in CONSTANT)  # one answer for all 1,000 images
    # with a wide margin on both sides, not a threshold squeezed between two close values
    assert max(spreads[n][0] for n in CONSTANT) * 100 < CONSTANT_SPREAD
    assert min(s for n, (s, _) in spreads.items() if n not in CONSTANT) > 10 * CONSTANT_SPREAD


def test_output_spread_restores_the_mode_and_sees_a_real_difference():
    model = load_checkpoint(ROOT / "checkpoints" / "best")[0].train()
    x = load_sample().x
    assert output_spread(model, x) > 0.2 and model.training
    assert output_spread(model, x[:1].repeat(10, 1)) == 0.0  # the same image ten times: no spread at all
