"""The results table's figures: test accuracy per method and the depth study, drawn from core.results rows.

Same conventions as core.plots, whose colours and drawing style they share: rows without a value are
listed as "not trained yet" or skipped, never raised on.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .history import finite_number
from .plots import CHANCE, LEFT_COLOR, NEUTRAL_COLOR, NOTE_COLOR, RIGHT_COLOR, new_figure, placeholder, style_axes
from .results import BENCHMARK_BEST_MLP

__all__ = ["depth_figure", "results_figure"]


# ----------------------------------------------------------------------------------------------- results

def _accuracy(row: dict) -> tuple[float | None, float]:
    """(shown accuracy, error bar): the seed mean ± std when known, else the seed-42 test accuracy."""
    mean = finite_number(row.get("acc_mean"))
    if mean is not None:
        return mean, finite_number(row.get("acc_std")) or 0.0
    return finite_number(row.get("test_acc")), 0.0


def results_figure(rows: Sequence[dict], left: str | None = None, right: str | None = None) -> Figure:
    """Test accuracy per method as horizontal bars, best at the top: the mean over seeds ± std (error bar)
    when known, else the seed-42 accuracy; a black tick marks the seed-42 run. Dashed lines at chance (0.1)
    and at the best MLP of the FashionMNIST benchmark (0.8833). The methods named `left` and `right` are
    drawn in the left/right colours; rows without an accuracy are listed last as "not trained yet"."""
    rows = list(rows)
    scored = sorted((r for r in rows if _accuracy(r)[0] is not None), key=lambda r: -_accuracy(r)[0])
    pending = [r for r in rows if _accuracy(r)[0] is None]
    ordered = scored + pending
    fig = new_figure(7.0, max(2.4, 0.3 * len(ordered) + 1.5))
    ax = fig.subplots()
    style_axes(ax, "x")
    if not ordered:
        placeholder(ax, "no results yet")
        fig.suptitle("Test accuracy per method", fontsize=11)
        return fig
    y = np.arange(len(ordered))[::-1]  # best on top
    names = [str(r.get("title") or r.get("method", "?")) for r in ordered]
    seed_marked = False
    for yi, r in zip(y, ordered):
        acc, err = _accuracy(r)
        if acc is None:
            ax.text(0.01, yi, "not trained yet", va="center", fontsize=7.5, color=NOTE_COLOR, gid="note")
            continue
        method = r.get("method")
        color = LEFT_COLOR if method is not None and method == left else \
            RIGHT_COLOR if method is not None and method == right else NEUTRAL_COLOR
        ax.barh(yi, acc, height=0.7, color=color, xerr=err if err else None, gid=str(r.get("method")),
                error_kw={"ecolor": "#333333", "elinewidth": 1, "capsize": 2.5})
        seed = finite_number(r.get("test_acc"))
        if seed is not None and finite_number(r.get("acc_mean")) is not None:
            ax.plot([seed], [yi], marker="|", markersize=9, markeredgewidth=1.6, color="black", gid="seed42")
            seed_marked = True
        text = f"{acc:.3f}" + (f" ± {err:.3f}" if err else "")
        if acc > 0.35:
            ax.text(acc - 0.015, yi, text, va="center", ha="right", fontsize=7.5, color="white",
                    fontweight="bold")
        else:
            ax.text(acc + err + 0.015, yi, text, va="center", ha="left", fontsize=7.5, color="#333333")
    ax.axvline(CHANCE, color="#888888", linestyle="--", linewidth=1, label=f"chance ({CHANCE:g})")
    ax.axvline(BENCHMARK_BEST_MLP, color="#2b8a3e", linestyle="--", linewidth=1.2,
               label=f"best MLP in the FashionMNIST benchmark ({BENCHMARK_BEST_MLP})")
    handles = ax.get_legend_handles_labels()[0]
    if seed_marked:
        handles.append(Line2D([], [], marker="|", markersize=9, markeredgewidth=1.6, color="black",
                              linestyle="none", label="seed 42 run (bar: mean ± std over seeds)"))
    ax.set_yticks(y, names, fontsize=8)
    ax.set_ylim(-0.6, len(ordered) - 0.4)
    ax.set_xlim(0, 1)
    ax.set_xlabel("test accuracy (fraction of 10,000 test images correct)", fontsize=8.5)
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=7.5, frameon=False)
    fig.suptitle("Test accuracy per method", fontsize=11)
    return fig


# ------------------------------------------------------------------------------------------------- depth

def depth_figure(rows: Sequence[dict]) -> Figure:
    """The depth study: test accuracy (mean ± std over seeds, else test_acc) vs number of hidden layers,
    and beside it first-layer / output mean|grad| at init vs depth on a log axis (how much of the gradient
    reaches the first layer). Missing or non-positive values are skipped."""
    fig = new_figure(8.0, 3.5)
    ax_acc, ax_ratio = fig.subplots(1, 2)
    for ax in (ax_acc, ax_ratio):
        style_axes(ax, "both")
    pts = sorted((r for r in rows if finite_number(r.get("depth")) is not None),
                 key=lambda r: float(r["depth"]))
    depths = [int(r["depth"]) for r in pts]
    acc = [(int(r["depth"]), *_accuracy(r)) for r in pts if _accuracy(r)[0] is not None]
    ratio = [(int(r["depth"]), finite_number(r.get("grad_ratio_init"))) for r in pts]
    ratio = [(d, v) for d, v in ratio if v is not None and v > 0]
    if acc:
        d, a, e = zip(*acc)
        bars = ax_acc.errorbar(d, a, yerr=e, color=LEFT_COLOR, marker="o", linewidth=1.8, capsize=3)
        bars.lines[0].set_gid("accuracy")
        for di, ai in zip(d, a):
            ax_acc.annotate(f"{ai:.3f}", (di, ai), textcoords="offset points", xytext=(6, 6), fontsize=7.5)
        ax_acc.hlines(CHANCE, 0, 1, transform=ax_acc.get_yaxis_transform(), colors="#999999",
                      linestyles="--", linewidth=0.9)
        ax_acc.text(0.01, CHANCE, "chance", transform=ax_acc.get_yaxis_transform(), ha="left", va="bottom",
                    fontsize=7, color="#888888")
        ax_acc.set_ylim(0, 1)
    else:
        placeholder(ax_acc, "not trained yet")
    if ratio:
        d, v = zip(*ratio)
        ax_ratio.plot(d, v, color=RIGHT_COLOR, marker="s", linewidth=1.8, gid="grad_ratio")
        ax_ratio.set_yscale("log")
        lo, hi = math.log10(min(v)), math.log10(max(v))
        ax_ratio.set_ylim(10 ** math.floor(lo - 0.5), 10 ** math.ceil(hi + 0.5))
        for di, vi in zip(d, v):
            ax_ratio.annotate(f"{vi:.1e}", (di, vi), textcoords="offset points", xytext=(6, 4), fontsize=7.5)
    else:
        placeholder(ax_ratio, "not trained yet")
    for ax in (ax_acc, ax_ratio):
        if depths:
            ax.set_xticks(sorted(set(depths)))
            ax.set_xlim(min(depths) - 0.7, max(depths) + 1.1)  # room for the point labels
        ax.set_xlabel("hidden layers (sigmoid, 128 units each)", fontsize=8.5)
    ax_acc.set_ylabel("test accuracy (fraction correct)", fontsize=8.5)
    ax_acc.set_title("Accuracy vs depth (mean ± std over seeds)", fontsize=9.5)
    ax_ratio.set_ylabel("hidden1 / output mean|grad| at init\n(log scale)", fontsize=8.5)
    ax_ratio.set_title("Gradient reaching the first layer vs depth", fontsize=9.5)
    fig.suptitle("Depth study: deeper sigmoid nets pass less gradient back", fontsize=11)
    return fig
