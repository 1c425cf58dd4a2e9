"""What several test files share besides fixtures (those live in tests/conftest.py). The app launcher
(AppServer) and percentile are bench.common's, shared with the bench scripts: import them from there."""
from bench.common import ROOT

__all__ = ["BROKEN", "ROOT", "fake_run"]

BROKEN = "skip"  # the method whose checkpoint the app tests corrupt (conftest's app_checkpoints)


def fake_run(name: str, model_config: dict | None = None, epochs: int = 1, seed: int = 42) -> dict:
    """A metrics dict that core.schema accepts, for a checkpoint or seed file of an untrained model in tests:
    method `name`'s recipe, its model config replaced by `model_config`, epochs 0..`epochs`, every layer with every
    key core.diagnostics records."""
    from core.diagnostics import LAYER_KEYS
    from core.methods import METHODS
    config = {**METHODS[name].hyperparameters(), **(model_config or {}), "seed": seed}
    layers = [f"hidden{i + 1}" for i in range(config["depth"])] + ["output"]
    stats = {"grad_mean_abs": 1e-3, "grad_max_abs": 1e-2, "grad_norm": 0.1, "error_mean_abs": 0.5, "weight_std": 0.05,
             "rel_weight_change": 0.0, "signal_std": 0.1}  # every other key of LAYER_KEYS null
    hidden = {"activation_std": 0.2, "derivative_mean": 0.25}  # (the output has no activation)
    history = [{"epoch": e, "stage": 1, "train_loss": 2.3, "train_acc": 0.1, "val_loss": 2.3, "val_acc": 0.1,
                "layers": [{"name": n, **dict.fromkeys(LAYER_KEYS), **stats, **(hidden if n != "output" else {})}
                           for n in layers]} for e in range(epochs + 1)]
    return {"method": name, "seed": seed, "config": config, "epochs": epochs, "train_seconds": 0.0,
            "test_acc": 0.1, "test_loss": 2.3, "stopped": None, "history": history}
