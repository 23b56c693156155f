"""The report's figures, drawn from its rows (matplotlib's object API with the Agg canvas: no pyplot state,
no GUI backend)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from xtmr_core.report.grid import ber_plans
from xtmr_core.report.view import ReportView

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn, not when the report package loads
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _figure(
    ncols: int, nrows: int = 1, width: float = 5.0, height: float = 3.6
) -> tuple[Figure, np.ndarray[Any, np.dtype[np.object_]]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _band(ax: Axes, x: npt.ArrayLike, rows: pd.DataFrame, label: str, band: bool = True, **kw: Any) -> None:
    y = 100 * rows["mean_accuracy"].to_numpy(float)
    (line,) = ax.plot(x, y, marker="o", ms=3, label=label, **kw)
    if not band:
        return
    lo, hi = 100 * rows["ci_low"].to_numpy(float), 100 * rows["ci_high"].to_numpy(float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(np.asarray(x, float)[ok], lo[ok], hi[ok], color=line.get_color(), alpha=0.12, lw=0)


def _zoom(ax: Axes, rows: pd.DataFrame) -> None:
    """y from a little below the lowest mean or CI bound shown to 100: small differences stay visible."""
    vals = 100 * pd.concat([rows["mean_accuracy"], rows["ci_low"]]).astype(float)
    vals = vals[np.isfinite(vals)]
    low = max(0.0, float(vals.min()) - 3.0) if len(vals) else 0.0
    ax.set_ylim(low, 100.5)


def series_of(name: str) -> str:
    """The line a plan belongs to: its name without a trailing budget (``lrp+range 1%`` -> ``lrp+range``)."""
    head, _, tail = name.rpartition(" ")
    return head if head and tail.endswith("%") else ""


def figure_ber(view: ReportView, model: str, fmt: str, path: Path) -> None:
    """Accuracy vs BER of every plan of the BER sweep, with 95% CI bands."""
    fig, axes = _figure(1, width=6.5, height=4.2)
    ax = axes[0, 0]
    for spec in ber_plans(fmt):
        rows = view.select(model, fmt)
        rows = rows[rows["name"] == spec.name].sort_values("ber")
        if not rows.empty:
            _band(ax, rows["ber"].to_numpy(float), rows, spec.name)
    ax.axhline(100 * view.clean(model, fmt), color="k", ls=":", lw=1, label="clean")
    ax.set_xscale("log")
    ax.set(
        xlabel="bit error rate", ylabel="test accuracy (%)", title=f"{model}, {fmt}: accuracy vs BER", ylim=(0, 100.5)
    )
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


def figure_budget(view: ReportView, model: str, fmt: str, path: Path) -> None:
    """Accuracy vs budget of every scorer at each budget-sweep BER, with 95% CI bands."""
    bers = view.sweep_bers(model, fmt)
    fig, axes = _figure(max(1, len(bers)), width=5.0, height=4.0)
    for ax, ber in zip(axes[0], bers):
        sel = view.select(model, fmt, ber)
        for scorer in view.grid.scorers:
            rows = sel[(sel["protect"] == scorer) & (sel["name"].map(series_of) == scorer)].sort_values("budget")
            if not rows.empty:
                _band(ax, rows["budget"].to_numpy(float), rows, scorer)
        for name, style in (("no protection", "--"), ("full TMR", "-.")):
            acc = view.acc(model, fmt, name, ber)
            if math.isfinite(acc):
                ax.axhline(100 * acc, color="gray", ls=style, lw=1, label=name)
        ax.set(
            xlabel="budget (% of weights, all bits TMR)",
            ylabel="test accuracy (%)",
            title=f"{model}, {fmt}, BER {ber:.0e}",
        )
        _zoom(ax, sel[sel["protect"].isin(view.grid.scorers) | sel["protect"].isin(["none", "full"])])
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


def pareto(rows: pd.DataFrame, col: str) -> pd.DataFrame:
    """The rows no cheaper-or-equal row beats on mean accuracy, by extra memory ``col`` (the frontier)."""
    best, keep = -math.inf, []
    for i, r in rows.sort_values([col, "mean_accuracy"], ascending=[True, False], kind="stable").iterrows():
        if float(r["mean_accuracy"]) > best:
            best = float(r["mean_accuracy"])
            keep.append(i)
    return rows.loc[keep]


def figure_frontier(view: ReportView, model: str, fmt: str, path: Path) -> None:
    """Accuracy against extra memory (copies; copies and index) of every plan, one row per frontier BER.

    Plans with a budget are lines (one per scorer or combination; their intervals are in the tables), the others
    markers with their 95% CI; the grey steps are the frontier: the best mean accuracy within that much memory.
    """
    bers = view.sweep_bers(model, fmt)
    fig, axes = _figure(2, max(1, len(bers)), width=6.0, height=4.2)
    markers = "sDv^<>pPXh*"
    for row_axes, ber in zip(axes, bers):
        sel = view.select(model, fmt, ber)
        series = sel["name"].map(series_of)
        for ax, col, what in zip(row_axes, ("overhead_pct", "overhead_with_index_pct"), ("copies", "copies + index")):
            for s in dict.fromkeys(series[series != ""]):
                rows = sel[series == s].sort_values(col)
                _band(ax, rows[col].to_numpy(float), rows, s, band=False, ls="--" if "+" in s else "-")
            for k, (_, r) in enumerate(sel[series == ""].iterrows()):
                lo, hi = float(r["ci_low"]), float(r["ci_high"])
                err = [[100 * (r["mean_accuracy"] - lo)], [100 * (hi - r["mean_accuracy"])]]
                ax.errorbar(
                    [r[col]],
                    [100 * r["mean_accuracy"]],
                    fmt=markers[k % len(markers)],
                    ms=6,
                    capsize=2,
                    yerr=err if math.isfinite(lo) and math.isfinite(hi) else None,
                    label=r["name"],
                )
            front = pareto(sel, col)
            ax.step(front[col], 100 * front["mean_accuracy"], where="post", color="gray", lw=3, alpha=0.35, zorder=0)
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_xlim(-0.1, 210)
            ax.set_xticks([0, 1, 2, 5, 10, 20, 50, 100, 200])
            ax.set_xticklabels(["0", "1", "2", "5", "10", "20", "50", "100", "200"])
            ax.set(
                xlabel=f"extra memory, {what} (%)",
                ylabel="test accuracy (%)",
                title=f"{model}, {fmt}, BER {ber:.0e}: {what}",
            )
            _zoom(ax, sel)
            if col == "overhead_with_index_pct":
                ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
            ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


def figure_bits(view: ReportView, model: str, path: Path) -> None:
    """Mean (and worst) accuracy after one flip at each bit position, per format."""
    flips = view.flips[view.flips["model"] == model]
    fmts = [f for f in view.grid.formats if (flips["format"] == f).any()]
    fig, axes = _figure(len(fmts), width=5.5 if len(fmts) > 1 else 7.0, height=3.6)
    colours = {"sign": "tab:red", "exponent": "tab:orange", "mantissa": "tab:blue", "value": "tab:blue"}
    for ax, fmt in zip(axes[0], fmts):
        rows = flips[flips["format"] == fmt].sort_values("bit")
        bits = rows["bit"].to_numpy(int)
        mean = 100 * rows["mean_accuracy"].to_numpy(float)
        ax.bar(bits, mean, color=[colours.get(r, "gray") for r in rows["role"]])
        for role in dict.fromkeys(rows["role"]):  # one legend entry per bit role, in bit order
            ax.bar([], [], color=colours.get(role, "gray"), label=role)
        ax.plot(bits, 100 * rows["min_accuracy"].to_numpy(float), "kv", ms=3, label="worst weight")
        ax.axhline(100 * float(rows["clean_accuracy"].iloc[0]), color="k", ls=":", lw=1, label="clean")
        ax.set(
            xlabel="bit position (0 = LSB)",
            ylabel="test accuracy after one flip (%)",
            title=f"{model}, {fmt}",
            ylim=(0, 100.5),
        )
        ax.legend(fontsize=7, loc="lower left")
        ax.grid(alpha=0.3, axis="y")
    fig.savefig(path, dpi=100)
