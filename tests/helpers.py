"""What several test files share besides fixtures (those live in tests/conftest.py). The app launcher
(AppServer) and percentile are bench.common's, shared with the bench scripts: import them from there."""
from bench.common import ROOT

__all__ = ["BROKEN", "ROOT"]

BROKEN = "skip"  # the method whose checkpoint the app tests corrupt (conftest's app_checkpoints)
