"""core.results_plots: the results table's figures, checked through their artists on hand-written rows
shaped like core.results.summarize()'s."""
from __future__ import annotations

import ast
import struct
from pathlib import Path

import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import same_color

from core import plots, results_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def notes(ax) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_gid() == "note"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# ----------------------------------------------------------------------------------------------- results

RESULT_ROWS = [
    {"method": "baseline", "title": "Baseline", "test_acc": 0.1, "acc_mean": 0.1, "acc_std": 0.0},
    {"method": "relu", "title": "ReLU", "test_acc": 0.87, "acc_mean": 0.868, "acc_std": 0.003},
    {"method": "tanh", "title": "Tanh", "test_acc": 0.85, "acc_mean": None, "acc_std": None},
    {"method": "adam", "title": "Adam", "test_acc": 0.86, "acc_mean": 0.875, "acc_std": 0.002},
    {"method": "skip", "title": "Skip", "test_acc": None, "acc_mean": None, "acc_std": None},
]


def test_results_sorted_with_error_bars_and_reference_lines():
    fig = results_plots.results_figure(RESULT_ROWS, left="baseline", right="relu")
    (ax,) = fig.axes
    bars_ = sorted((p for p in ax.patches if p.get_gid()), key=lambda p: -p.get_y())  # top to bottom
    assert [p.get_gid() for p in bars_] == ["adam", "relu", "tanh", "baseline"]
    assert [p.get_width() for p in bars_] == pytest.approx([0.875, 0.868, 0.85, 0.1])  # mean when known
    ticks = [t.get_text() for _, t in sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda p: p[0])]
    assert ticks == ["Skip", "Baseline", "Tanh", "ReLU", "Adam"]  # bottom to top; untrained last
    assert "not trained yet" in notes(ax)
    reference = [ln for ln in ax.lines if not ln.get_label().startswith("_")]  # the labelled lines
    vlines = {round(ln.get_xdata()[0], 4): ln.get_label() for ln in reference}
    assert vlines == {0.8833: "best MLP in the FashionMNIST benchmark (0.8833)", 0.1: "chance (0.1)"}
    assert all(ln.get_linestyle() == "--" and list(ln.get_ydata()) == [0, 1] for ln in reference)  # full height
    seed_marks = sorted(ln.get_xdata()[0] for ln in ax.lines if ln.get_gid() == "seed42")
    assert seed_marks == pytest.approx([0.1, 0.86, 0.87])  # rows with a seed mean also mark seed 42
    colors = {p.get_gid(): p.get_facecolor() for p in bars_}
    assert same_color(colors["baseline"], plots.LEFT_COLOR) and same_color(colors["relu"], plots.RIGHT_COLOR)
    assert same_color(colors["adam"], plots.NEUTRAL_COLOR)
    # error bars: one per row with a std
    assert len([c for c in ax.collections if isinstance(c, LineCollection)]) == 2
    assert ax.get_xlim() == (0, 1)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("0.8833" in t for t in legend)
    png_size(plots.figure_to_png(fig))


def test_results_empty_and_all_untrained():
    for rows in ([], [{"method": "x", "title": "X", "test_acc": None}]):
        png_size(plots.figure_to_png(results_plots.results_figure(rows)))


# ------------------------------------------------------------------------------------------------- depth

def test_depth_accuracy_and_log_gradient_ratio():
    rows = [{"depth": 7, "acc_mean": 0.1, "acc_std": 0.0, "grad_ratio_init": 5e-7},
            {"depth": 3, "acc_mean": 0.85, "acc_std": 0.01, "grad_ratio_init": 2e-3},
            {"depth": 5, "acc_mean": 0.6, "acc_std": 0.1, "grad_ratio_init": 3e-5}]
    fig = results_plots.depth_figure(rows)
    ax_acc, ax_ratio = fig.axes
    (acc_line,) = [ln for ln in ax_acc.lines if ln.get_gid() == "accuracy"]
    assert list(acc_line.get_xdata()) == [3, 5, 7]
    assert list(acc_line.get_ydata()) == pytest.approx([0.85, 0.6, 0.1])
    assert ax_ratio.get_yscale() == "log"
    (ratio_line,) = ax_ratio.lines
    assert list(ratio_line.get_ydata()) == pytest.approx([2e-3, 3e-5, 5e-7])
    lo, hi = ax_ratio.get_ylim()
    assert lo < 5e-7 and hi > 2e-3
    assert list(ax_acc.get_xticks()) == [3, 5, 7]
    png_size(plots.figure_to_png(fig))


def test_depth_skips_missing_and_non_positive():
    rows = [{"depth": 3, "acc_mean": None, "acc_std": None, "test_acc": 0.84, "grad_ratio_init": 0.0},
            {"depth": 5, "acc_mean": None, "acc_std": None, "grad_ratio_init": None},
            {"depth": 7, "acc_mean": 0.1, "acc_std": None, "grad_ratio_init": 4e-7}]
    fig = results_plots.depth_figure(rows)
    ax_acc, ax_ratio = fig.axes
    (acc_line,) = [ln for ln in ax_acc.lines if ln.get_gid() == "accuracy"]
    assert list(acc_line.get_xdata()) == [3, 7] and list(acc_line.get_ydata()) == pytest.approx([0.84, 0.1])
    assert list(ax_ratio.lines[0].get_xdata()) == [7]
    png_size(plots.figure_to_png(fig))
    png_size(plots.figure_to_png(results_plots.depth_figure([])))


# --------------------------------------------------------------------------------------------- rendering

def test_figures_render_to_png_at_web_size():
    figs = {"results": results_plots.results_figure(RESULT_ROWS),
            "depth": results_plots.depth_figure([{"depth": 3, "acc_mean": 0.8, "acc_std": 0.01,
                                                  "grad_ratio_init": 1e-3}])}
    for name, fig in figs.items():
        data = plots.figure_to_png(fig)
        assert len(data) > 5_000, name
        w, h = png_size(data)
        assert (w, h) == (round(fig.get_figwidth() * fig.dpi), round(fig.get_figheight() * fig.dpi)), name
        assert 300 <= w <= 1000 and 200 <= h <= 900, (name, w, h)


def test_module_avoids_pyplot_and_the_registry():
    tree = ast.parse(Path(results_plots.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
        {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any("pyplot" in m for m in imported) and "methods" not in imported
