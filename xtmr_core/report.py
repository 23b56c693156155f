"""The reproduction report: run the paper's experiment grid and write ``docs/REPRODUCTION.md``.

``run_report`` runs fault campaigns over models × formats × BERs × protection plans, a per-bit
sensitivity scan, and writes three things into one folder: ``REPRODUCTION.md``, ``figures/*.png`` and
``reproduction.csv`` (every campaign point and every single-flip row). Every number in the Markdown
is formatted from the rows of that CSV by code; the conclusions are rules over the same rows.

Each campaign point runs at least ``min_trials`` trials and stops once the 95% CI half-width of the
mean accuracy is at most ``ci_target``, or at ``max_trials``; the CSV records per point the trials
used and whether the target was met. A point shared by two sections (the no-protection baseline, LRP
1% at the paper's BER, ...) runs once.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xtmr_core.checkpoints import shipped_checkpoint
from xtmr_core.errors import XtmrError
from xtmr_core.experiment import Experiment
from xtmr_core.formats import WORD_BITS, sign_exponent_bits
from xtmr_core.sensitivity import bit_sensitivity
from xtmr_core.spec import CampaignSpec
from xtmr_core.stats import ci_half_width, iso_reliability_cost, mean_ci
from xtmr_core.sweep import COLUMNS, add_reliability, result_row

REPORT_NAME = "REPRODUCTION.md"
CSV_NAME = "reproduction.csv"
FIGURES = "figures"

# The paper's headline numbers, quoted so that each conclusion can be checked against them by rule.
PAPER_BER = 1e-4
PAPER_RECOVERED = 0.60  # ">60% reliability improvement at BER 1e-4"
PAPER_LRP_BUDGET = 1.0  # top 1% of the weights
PAPER_MAGNITUDE_OVERHEAD = 16.0  # "magnitude-based methods (16-21% overhead)", lower end, in %

CSV_COLUMNS = [
    "kind",
    "name",
    *COLUMNS,
    "recovered",
    "relative_gain",
    "bits",
    "max_trials",
    "ci_half_width",
    "ci_target_met",
    "stopped_early",
    "seconds",
    "trial_accuracies",
    "bit",
    "role",
]


@dataclass(frozen=True)
class PlanSpec:
    """One protection plan of the grid.

    Attributes:
        name: the short label used in the CSV's ``name`` column, tables and figures.
        protect: the engine's plan kind (``protection.PLANS``).
        budget: percent of weights, for scorer plans.
        bits: protected bit positions, for ``bits``.
    """

    name: str
    protect: str
    budget: float = 0.0
    bits: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Grid:
    """What a report runs.

    Attributes:
        models: architectures. formats: storage formats. bers: the BER sweep.
        paper_ber: the BER of the paper's table (also the first BER of the budget sweep).
        scorers, budgets: the budget sweep (every scorer at every budget).
        budget_bers: at how many BERs the budget sweep runs: the paper's, then the one where the
            unprotected accuracy is closest to halfway between clean and chance (the most informative).
        max_trials, min_trials, ci_target: per campaign point (see ``campaign.run_campaign``).
        sensitivity_weights: weights flipped per bit position in the per-bit scan.
    """

    models: tuple[str, ...]
    formats: tuple[str, ...]
    bers: tuple[float, ...]
    scorers: tuple[str, ...]
    budgets: tuple[float, ...]
    max_trials: int
    min_trials: int
    sensitivity_weights: int
    paper_ber: float = PAPER_BER
    budget_bers: int = 2
    ci_target: float = 0.02


# Sized for about 11 minutes on an idle 2-core CPU (10.5 measured, docs/REPRODUCTION.md): ~150 points per
# model; points whose accuracy varies little stop after 10 trials, bimodal ones (a rare catastrophic fp32
# exponent flip) run to 40. 1e-2 extends the paper's 1e-7..1e-3 because int8 storage barely degrades by 1e-3.
FULL_GRID = Grid(
    models=("lenet5", "alexnet", "vgg16"),
    formats=("fp32", "int8"),
    bers=(1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2),
    scorers=("lrp", "magnitude", "gradient", "taylor", "random"),
    budgets=(1.0, 5.0, 10.0, 20.0),
    max_trials=40,
    min_trials=10,
    sensitivity_weights=16,
)
QUICK_GRID = Grid(
    models=("lenet5",),
    formats=("fp32", "int8"),
    bers=(1e-6, 1e-4, 1e-3),
    scorers=("lrp", "magnitude", "random"),
    budgets=(1.0, 5.0),
    max_trials=4,
    min_trials=4,
    sensitivity_weights=2,
    budget_bers=1,
)


def ber_plans(fmt: str) -> list[PlanSpec]:
    """The plans run at every BER of the sweep, for one format."""
    plans = [
        PlanSpec("no protection", "none"),
        PlanSpec(f"lrp {PAPER_LRP_BUDGET:g}%", "lrp", PAPER_LRP_BUDGET),
        PlanSpec(f"magnitude {PAPER_LRP_BUDGET:g}%", "magnitude", PAPER_LRP_BUDGET),
        PlanSpec("full TMR", "full"),
    ]
    if fmt == "fp32":
        plans.append(PlanSpec("bit 30", "bits", bits=(30,)))
    # For int8 the engine's "sign + exponent" is the sign and the top value bit (no exponent exists).
    plans.append(PlanSpec("sign+exponent" if fmt != "int8" else "sign+top bit", "bits", bits=sign_exponent_bits(fmt)))
    plans.append(PlanSpec("range guard", "range"))
    return plans


def budget_plans(grid: Grid) -> list[PlanSpec]:
    """The plans of the budget sweep: every scorer at every budget."""
    return [PlanSpec(f"{s} {b:g}%", s, float(b)) for s in grid.scorers for b in grid.budgets]


def _key(model: str, fmt: str, spec: PlanSpec, ber: float, trials: int = 1) -> tuple[str, CampaignSpec]:
    """A campaign point of the report: the model and its ``CampaignSpec`` (seed 0)."""
    return model, CampaignSpec(spec.protect, spec.budget, ber, fmt, trials=trials, bits=spec.bits)


class _Runner:
    """Runs campaign points once each (a cache keyed by configuration) and collects their rows."""

    def __init__(self, grid: Grid, bar) -> None:
        self.grid, self.bar = grid, bar
        self.rows: dict[tuple, dict] = {}

    def point(self, exp: Experiment, fmt: str, spec: PlanSpec, ber: float) -> dict:
        key = _key(exp.model_name, fmt, spec, ber, self.grid.max_trials)
        if key not in self.rows:
            self.bar.set_postfix_str(f"{exp.model_name} {fmt} {spec.name} @ {ber:g}")
            t0 = time.perf_counter()
            r = exp.evaluate(key[1])  # a fixed number of trials (issue 9: early stopping biased means)
            half = ci_half_width(r.accuracies)
            row = {
                "kind": "campaign",
                "name": spec.name,
                **result_row(exp, r),
                "bits": " ".join(map(str, spec.bits)) if spec.bits else "",
                "max_trials": self.grid.max_trials,
                "ci_half_width": half,
                "ci_target_met": bool(half <= self.grid.ci_target),
                "stopped_early": False,
                "seconds": time.perf_counter() - t0,
                # per-trial accuracies, so that two plans can be compared trial by trial (paired)
                "trial_accuracies": " ".join(f"{a:.6g}" for a in r.accuracies),
            }
            self.rows[key] = row
            self.bar.update(1)
        return self.rows[key]


def _second_ber(rows: pd.DataFrame, grid: Grid, chance: float) -> float | None:
    """The BER (other than the paper's) whose unprotected accuracy is closest to halfway between the
    clean accuracy and chance: where protection has the most room to show a difference."""
    none = rows[(rows["protect"] == "none") & (rows["ber"] != grid.paper_ber)]
    if none.empty:
        return None
    mid = (none["clean_accuracy"] + chance) / 2
    order = (none["mean_accuracy"] - mid).abs().sort_values(kind="stable")
    return float(none.loc[order.index[0], "ber"])


def n_points(grid: Grid) -> int:
    """Number of distinct campaign points the grid runs (shared points counted once)."""
    total = 0
    for fmt in grid.formats:
        keys = {_key("", fmt, s, b) for s in ber_plans(fmt) for b in grid.bers}
        sweep_bers = [grid.paper_ber] + [b for b in grid.bers if b != grid.paper_ber][: grid.budget_bers - 1]
        keys |= {_key("", fmt, s, b) for s in budget_plans(grid) for b in sweep_bers}
        total += len(keys)
    return total * len(grid.models)


def require_checkpoints(models: Sequence[str], dataset: str, checkpoints: dict | None = None) -> None:
    """Raise ``XtmrError`` (with the command that fixes it) unless every model has a checkpoint.

    Args:
        models: architectures. dataset: the dataset.
        checkpoints: explicit checkpoint files per model (these count as present).
    """
    given = checkpoints or {}
    missing = [m for m in models if m not in given and shipped_checkpoint(m, dataset) is None]
    if missing:  # fail before an hour of work, not in the middle of it
        raise XtmrError(
            f"no checkpoint for {', '.join(missing)} on {dataset}; train one with: python -m xtmr_core "
            f"train --model {missing[0]} --dataset {dataset} --out checkpoints/{missing[0]}_{dataset}.pt"
        )


def run_grid(
    grid: Grid, dataset: str = "mnist5k", checkpoints: dict[str, str | Path] | None = None, *, progress: bool = True
) -> tuple[pd.DataFrame, dict]:
    """Run every campaign point and the per-bit scan of a grid.

    Args:
        grid: what to run.
        dataset: the dataset (its shipped checkpoints are used unless ``checkpoints`` names one).
        checkpoints: a checkpoint file per model name, overriding the shipped one.
        progress: show a tqdm progress bar on stderr.

    Returns:
        ``(table, info)``: one row per campaign point and per (model, format, bit) of the scan
        (``CSV_COLUMNS``), and run facts (per-model checkpoint, weights, budget-sweep BERs, timing).

    Raises:
        XtmrError: a model without a checkpoint, or a dataset that is not present.
    """
    from tqdm import tqdm

    checkpoints = dict(checkpoints or {})
    require_checkpoints(grid.models, dataset, checkpoints)
    scan = sum(WORD_BITS[f] for f in grid.formats) * grid.sensitivity_weights * len(grid.models)
    bar = tqdm(
        total=n_points(grid) + scan,
        desc="report",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
        leave=False,
    )
    runner = _Runner(grid, bar)
    info: dict = {"models": {}, "budget_bers": {}}
    flips: list[dict] = []
    try:
        for model in grid.models:
            t0 = time.perf_counter()
            exp = Experiment(model, dataset, checkpoints.get(model))
            chance = 1.0 / exp.splits.num_classes
            info["models"][model] = {
                "file": Path(str(exp.meta.get("file", ""))).name,
                "sha256": str(exp.meta.get("sha256", ""))[:12],
                "weights": exp.n_weights,
                "chance": chance,
            }
            for fmt in grid.formats:
                for spec in ber_plans(fmt):
                    for ber in grid.bers:
                        runner.point(exp, fmt, spec, ber)
                done = pd.DataFrame([r for r in runner.rows.values() if r["model"] == model and r["format"] == fmt])
                sweep_bers = [grid.paper_ber]
                if grid.budget_bers > 1:
                    second = _second_ber(done, grid, chance)
                    sweep_bers += [second] if second is not None else []
                info["budget_bers"][(model, fmt)] = sweep_bers
                for ber in sweep_bers:
                    for spec in budget_plans(grid):
                        runner.point(exp, fmt, spec, ber)
            for fmt in grid.formats:
                bar.set_postfix_str(f"{model} {fmt} one flip per bit")
                sens = bit_sensitivity(
                    exp, fmt, trials=grid.sensitivity_weights, seed=0, progress=lambda done, total: bar.update(1)
                )
                for rec in sens.to_dict("records"):
                    flips.append(
                        {
                            "kind": "bit_flip",
                            "name": f"one flip at bit {rec['bit']}",
                            "model": model,
                            "dataset": dataset,
                            "format": fmt,
                            "protect": "none",
                            **rec,
                        }
                    )
            info["models"][model]["seconds"] = time.perf_counter() - t0
            del exp
    finally:
        bar.close()
    campaigns = pd.DataFrame(list(runner.rows.values()))
    # Reliability improvement is relative to "none" of the same model, format and BER.
    campaigns = pd.concat([add_reliability(g) for _, g in campaigns.groupby("model", sort=False)], ignore_index=True)
    table = pd.concat([campaigns, pd.DataFrame(flips)], ignore_index=True)
    return table.reindex(columns=CSV_COLUMNS), info


# --------------------------------------------------------------------------------------------------
# Formatting: every number of the document goes through these.


def fmt_acc(v: float) -> str:
    """An accuracy in [0, 1] as percent with two decimals (``n/a`` when missing)."""
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.2f}"


def fmt_share(v: float) -> str:
    """A ratio (recovered share, relative gain) as a percentage with one decimal."""
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f}%"


def fmt_overhead(v: float) -> str:
    """A memory overhead already in percent."""
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.3g}%" if v >= 0.01 or v == 0 else f"{v:.2g}%"


def fmt_ber(v: float) -> str:
    """A bit error rate, e.g. ``1e-04``."""
    return f"{v:.0e}"


def _pm(row: pd.Series) -> str:
    """Accuracy with its 95% CI half-width (the unclipped t interval), e.g. ``97.30 ±0.52``."""
    half = float(row["ci_half_width"])
    acc = fmt_acc(row["mean_accuracy"])
    return f"{acc} ±{100 * half:.2f}" if math.isfinite(half) else acc


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


# --------------------------------------------------------------------------------------------------
# Looking rows up.


@dataclass
class ReportView:
    """The campaign rows of one report, with lookups by (model, format, plan name, BER)."""

    table: pd.DataFrame
    grid: Grid
    info: dict
    camp: pd.DataFrame = field(init=False)
    flips: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.camp = self.table[self.table["kind"] == "campaign"]
        self.flips = self.table[self.table["kind"] == "bit_flip"]

    def select(self, model: str, fmt: str, ber: float | None = None) -> pd.DataFrame:
        c = self.camp
        rows = c[(c["model"] == model) & (c["format"] == fmt)]
        return rows if ber is None else rows[np.isclose(rows["ber"].astype(float), ber, rtol=1e-9, atol=0)]

    def get(self, model: str, fmt: str, name: str, ber: float) -> pd.Series | None:
        rows = self.select(model, fmt, ber)
        rows = rows[rows["name"] == name]
        return None if rows.empty else rows.iloc[0]

    def acc(self, model: str, fmt: str, name: str, ber: float) -> float:
        r = self.get(model, fmt, name, ber)
        return math.nan if r is None else float(r["mean_accuracy"])

    def pairs(self) -> list[tuple[str, str]]:
        return [(m, f) for m in self.grid.models for f in self.grid.formats if not self.select(m, f).empty]

    def clean(self, model: str, fmt: str) -> float:
        r = self.select(model, fmt)
        return float(r["clean_accuracy"].iloc[0]) if not r.empty else math.nan

    def sweep_bers(self, model: str, fmt: str) -> list[float]:
        return list(self.info["budget_bers"].get((model, fmt), []))


def matching_budget(view: ReportView, model: str, fmt: str, ber: float, scorer: str = "magnitude") -> float:
    """The smallest tested budget at which ``scorer`` reaches LRP 1%'s mean accuracy (``nan``: none does)."""
    lrp = view.acc(model, fmt, f"lrp {PAPER_LRP_BUDGET:g}%", ber)
    rows = view.select(model, fmt, ber)
    rows = rows[rows["protect"] == scorer]
    if rows.empty or not math.isfinite(lrp):
        return math.nan
    cost = iso_reliability_cost(rows, lrp)
    return float(cost["min_budget"].iloc[0])


def _fmt_budget(b: float, tested: Sequence[float]) -> str:
    return f"{b:g}%" if math.isfinite(b) else f"> {max(tested):g}% (not reached)"


def _trial_accuracies(row: pd.Series) -> np.ndarray | None:
    text = row.get("trial_accuracies")
    return np.array(text.split(), dtype=float) if isinstance(text, str) and text.strip() else None


def compare(a: pd.Series | None, b: pd.Series | None) -> str:
    """``better``, ``worse`` or ``indistinguishable``: ``a``'s accuracy against ``b``'s.

    Trial ``t`` of every point uses the same seed, so the two are compared trial by trial: the verdict is
    ``better``/``worse`` when the 95% CI of the mean per-trial difference (over the trials both ran)
    excludes zero. Rows without per-trial data fall back to whether their own 95% CIs overlap.

    Returns:
        The verdict, or ``n/a`` when a row or its spread is missing.
    """
    if a is None or b is None:
        return "n/a"
    ta, tb = _trial_accuracies(a), _trial_accuracies(b)
    if ta is not None and tb is not None and min(ta.size, tb.size) >= 2:
        n = min(ta.size, tb.size)
        lo, hi = mean_ci(ta[:n] - tb[:n])
    elif all(math.isfinite(v) for v in (a["ci_low"], a["ci_high"], b["ci_low"], b["ci_high"])):
        lo, hi = a["ci_low"] - b["ci_high"], a["ci_high"] - b["ci_low"]
    else:
        return "n/a"
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "indistinguishable"


def _vs(a: pd.Series | None, b: pd.Series | None) -> str:
    """``compare`` as words that read before a plan name: ``better than``, ``indistinguishable from``..."""
    c = compare(a, b)
    return {"better": "better than", "worse": "worse than", "indistinguishable": "indistinguishable from"}.get(
        c, "not comparable (no CI) with"
    )


# --------------------------------------------------------------------------------------------------
# Figures (matplotlib's object API with the Agg canvas: no pyplot state, no GUI backend).


def _figure(ncols: int, nrows: int = 1, width: float = 5.0, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _band(ax, x, rows: pd.DataFrame, label: str, **kw) -> None:
    y = 100 * rows["mean_accuracy"].to_numpy(float)
    (line,) = ax.plot(x, y, marker="o", ms=3, label=label, **kw)
    lo, hi = 100 * rows["ci_low"].to_numpy(float), 100 * rows["ci_high"].to_numpy(float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(np.asarray(x, float)[ok], lo[ok], hi[ok], color=line.get_color(), alpha=0.15, lw=0)


def _zoom(ax, rows: pd.DataFrame) -> None:
    """y from a little below the lowest mean or CI bound shown to 100: small differences stay visible."""
    vals = 100 * pd.concat([rows["mean_accuracy"], rows["ci_low"]]).astype(float)
    vals = vals[np.isfinite(vals)]
    low = max(0.0, float(vals.min()) - 3.0) if len(vals) else 0.0
    ax.set_ylim(low, 100.5)


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
            rows = sel[sel["protect"] == scorer].sort_values("budget")
            if not rows.empty:
                _band(ax, rows["budget"].to_numpy(float), rows, scorer)
        for name, style in (("no protection", "--"), ("full TMR", "-.")):
            acc = view.acc(model, fmt, name, ber)
            if math.isfinite(acc):
                ax.axhline(100 * acc, color="gray", ls=style, lw=1, label=name)
        ax.set(
            xlabel="budget (% of weights, all bits TMR)",
            ylabel="test accuracy (%)",
            title=f"{model}, {fmt}, BER {fmt_ber(ber)}",
        )
        _zoom(ax, sel[sel["protect"].isin(view.grid.scorers) | sel["protect"].isin(["none", "full"])])
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


def figure_overhead(view: ReportView, model: str, path: Path) -> None:
    """Accuracy at the paper's BER against extra memory, copies only and with index, per format."""
    fmts = [f for m, f in view.pairs() if m == model]
    fig, axes = _figure(2, len(fmts), width=5.0, height=3.8)
    ber = view.grid.paper_ber
    for row_axes, fmt in zip(axes, fmts):
        sel = view.select(model, fmt, ber)
        for ax, col, what in zip(row_axes, ("overhead_pct", "overhead_with_index_pct"), ("copies only", "with index")):
            for scorer in view.grid.scorers:
                rows = sel[sel["protect"] == scorer].sort_values(col)
                if not rows.empty:
                    _band(ax, rows[col].to_numpy(float), rows, scorer)
            for _, r in sel[~sel["protect"].isin(view.grid.scorers)].iterrows():
                err = [[100 * (r["mean_accuracy"] - r["ci_low"])], [100 * (r["ci_high"] - r["mean_accuracy"])]]
                ax.errorbar(
                    [r[col]],
                    [100 * r["mean_accuracy"]],
                    fmt="s",
                    ms=5,
                    yerr=err if math.isfinite(r["ci_low"]) else None,
                    label=r["name"],
                )
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set(
                xlabel=f"extra memory, {what} (%)",
                ylabel="test accuracy (%)",
                title=f"{model}, {fmt}, BER {fmt_ber(ber)}: {what}",
            )
            _zoom(ax, sel)
            ax.legend(fontsize=6, loc="lower right")
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


# --------------------------------------------------------------------------------------------------
# The document.


def _section_run(view: ReportView, meta: dict) -> list[str]:
    g, camp = view.grid, view.camp
    met = int(camp["ci_target_met"].astype(bool).sum())
    halves = camp["ci_half_width"].astype(float)
    finite_max = float(halves[np.isfinite(halves)].max()) if np.isfinite(halves).any() else math.nan
    zero = int(((camp["ci_half_width"] == 0) & (camp["trials"] < g.max_trials)).sum())
    lines = [
        "## 1. What was run",
        "",
        f"Command: `{meta['command']}` (from the repository root). Duration: **{meta['duration_s'] / 60:.1f} "
        f"minutes** of wall-clock time on {meta['machine']}; load average at start {meta['load']}.",
        "",
        f"Dataset `{meta['dataset']}`; fault model: every stored weight bit flips independently with the given "
        f"BER (biases are not faulted); seed 0 for every point (trial *t* uses the seed pair (0, *t*)).",
        "",
    ]
    rows = []
    for model in g.models:
        m = view.info["models"].get(model)
        if m is None:
            continue
        sel = camp[camp["model"] == model]
        per_trial = sel["seconds"].sum() / max(1, sel["trials"].sum())
        rows.append(
            [
                model,
                f"`{m['file']}` (sha256 {m['sha256']}…)",
                f"{m['weights']:,}",
                " / ".join(f"{fmt_acc(view.clean(model, f))} ({f})" for f in g.formats),
                f"{len(sel)}",
                f"{int(sel['trials'].sum()):,}",
                f"{per_trial:.3f}",
                f"{m['seconds'] / 60:.1f}",
            ]
        )
    lines += _table(
        [
            "model",
            "checkpoint",
            "faultable weights",
            "clean accuracy (%)",
            "campaign points",
            "trials",
            "s / trial",
            "minutes",
        ],
        rows,
    )
    plans = ", ".join(s.name for s in ber_plans("fp32"))
    int8_plans = ", ".join(s.name for s in ber_plans("int8"))
    sweep = "; ".join(f"{m} {f}: " + ", ".join(fmt_ber(b) for b in view.sweep_bers(m, f)) for m, f in view.pairs())
    lines += [
        "The grid:",
        "",
        f"* formats: {', '.join(g.formats)}; BERs: {', '.join(fmt_ber(b) for b in g.bers)}"
        + (" (the paper's range is 1e-07 to 1e-03; the grid extends beyond it)." if max(g.bers) > 1e-3 else "."),
        f"* at every BER: {plans} (fp32); {int8_plans} (int8). fp32 bit 30 (the top exponent bit) has no int8 "
        f"counterpart, so int8 has no `bit 30` plan; its `sign+top bit` plan protects bits "
        f"{', '.join(map(str, sign_exponent_bits('int8')))}.",
        f"* budget sweep: {', '.join(g.scorers)} at {', '.join(f'{b:g}%' for b in g.budgets)} of the weights "
        f"(all bits of each chosen weight stored three times), at the paper's BER {fmt_ber(g.paper_ber)}"
        + (
            " and at the BER whose unprotected accuracy lies closest to halfway between clean and chance "
            "(chosen by that rule from the BER sweep)"
            if g.budget_bers > 1
            else ""
        )
        + f" — {sweep}.",
        f"* per point: at least {min(g.min_trials, g.max_trials)} and at most {g.max_trials} trials, stopping once the "
        f"95% CI half-width of the mean accuracy is at most {100 * g.ci_target:g} accuracy points. "
        f"**{met} of {len(camp)} points met that target**; the others stopped at {g.max_trials} trials with a "
        f"half-width of up to {100 * finite_max:.1f} points (median trials per point "
        f"{camp['trials'].median():g}). The CSV gives per point `trials`, `ci_half_width` and `ci_target_met`. "
        f"Caveat: {zero} points met the target with zero spread (every trial gave the same accuracy) at the "
        f"minimum; a catastrophic flip rarer than about one trial in {min(g.min_trials, g.max_trials)} can hide in "
        "such a point, which its neighbours on the BER curve show.",
        f"* per-bit scan: {g.sensitivity_weights} uniformly chosen weights per model, each bit position flipped "
        f"alone in each of them.",
        "",
        f"Raw data: [`{CSV_NAME}`]({CSV_NAME}) (`kind` = `campaign` for fault campaigns, `bit_flip` for the "
        "single-flip scan). Accuracies below are test accuracy in %, ± the 95% CI half-width.",
        "",
    ]
    return lines


def _recovered(view: ReportView, row: pd.Series | None) -> str:
    """A row's recovered share; a dash where the unprotected loss is below the CI target (then the share
    is noise divided by noise)."""
    if row is None:
        return "n/a"
    none = view.get(row["model"], row["format"], "no protection", float(row["ber"]))
    if none is None or float(row["clean_accuracy"]) - float(none["mean_accuracy"]) < view.grid.ci_target:
        return f"— (loss < {100 * view.grid.ci_target:g} pts)"
    return fmt_share(row["recovered"])


def _paper_rows(view: ReportView, ber_of: Callable[[str, str], float | None]) -> tuple[list[str], list[list[str]]]:
    """The paper's table: header and one row per (model, format), each at the BER ``ber_of`` gives it."""
    lrp, mag = f"lrp {PAPER_LRP_BUDGET:g}%", f"magnitude {PAPER_LRP_BUDGET:g}%"
    header = [
        "model",
        "format",
        "BER",
        "clean",
        "no protection",
        lrp,
        mag,
        "full TMR",
        f"{lrp} recovered",
        f"{lrp} relative gain",
        f"{mag} recovered",
        f"magnitude budget matching {lrp}",
    ]
    rows = []
    for model, fmt in view.pairs():
        ber = ber_of(model, fmt)
        if ber is None:
            continue
        cells = [model, fmt, fmt_ber(ber), fmt_acc(view.clean(model, fmt))]
        for name in ("no protection", lrp, mag, "full TMR"):
            r = view.get(model, fmt, name, ber)
            cells.append(_pm(r) if r is not None else "n/a")
        r_lrp, r_mag = view.get(model, fmt, lrp, ber), view.get(model, fmt, mag, ber)
        cells += [
            _recovered(view, r_lrp),
            fmt_share(r_lrp["relative_gain"]) if r_lrp is not None else "n/a",
            _recovered(view, r_mag),
            _fmt_budget(matching_budget(view, model, fmt, ber), view.grid.budgets),
        ]
        rows.append(cells)
    return header, rows


def _section_paper(view: ReportView) -> list[str]:
    ber = view.grid.paper_ber
    lrp = f"lrp {PAPER_LRP_BUDGET:g}%"
    lines = [
        "## 2. The paper's table",
        "",
        f"Accuracy (%) at BER {fmt_ber(ber)}. *Recovered* = (plan − none) / (clean − none), the share of the "
        "fault-induced loss the plan wins back; *relative gain* = (plan − none) / none "
        "([DESIGN.md](DESIGN.md) gives both; "
        'the paper\'s "reliability improvement" is one of them). The matching budget is the smallest tested '
        f"magnitude budget whose mean accuracy reaches {lrp}'s.",
        "",
    ]
    lines += _table(*_paper_rows(view, lambda m, f: ber))

    def second(model: str, fmt: str) -> float | None:
        others = [b for b in view.sweep_bers(model, fmt) if b != ber]
        return others[0] if others else None

    header, rows = _paper_rows(view, second)
    if rows:
        lines += [
            "The same table at the budget sweep's second BER of each model and format (where the unprotected "
            "accuracy lies closest to halfway between clean and chance):",
            "",
        ]
        lines += _table(header, rows)
    return lines


def _section_figures(view: ReportView, figs: dict) -> list[str]:
    lines = [
        "## 3. Accuracy vs BER and vs budget",
        "",
        "Lines are mean accuracy, shaded bands the 95% confidence interval of the mean. Accuracy-vs-BER plots "
        "span 0–100%; budget plots zoom to the range of their data (read the axis).",
        "",
    ]
    for model, fmt in view.pairs():
        lines += [
            f"### {model}, {fmt}",
            "",
            f"![accuracy vs BER, {model} {fmt}]({figs[(model, fmt, 'ber')]})",
            "",
            f"![accuracy vs budget, {model} {fmt}]({figs[(model, fmt, 'budget')]})",
            "",
        ]
    return lines


_CEILINGS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)


def _section_overhead(view: ReportView, figs: dict) -> list[str]:
    ber = view.grid.paper_ber
    lines = [
        "## 4. Iso-overhead comparison",
        "",
        f"Every plan at BER {fmt_ber(ber)} against the extra memory it costs. *Copies* = the two extra copies of "
        "the protected bits (what the paper quotes as overhead); *with index* adds the record of which weights "
        "are protected (one bit per weight or one 32-bit index per protected weight, whichever is smaller; "
        "for the range guard, two bounds per layer). Protecting a share *b* of the weights therefore costs 2*b* in "
        "copies, plus its index.",
        "",
    ]
    for model in view.grid.models:
        if (model, "overhead") in figs:
            lines += [f"![accuracy vs extra memory, {model}]({figs[(model, 'overhead')]})", ""]
    for model, fmt in view.pairs():
        sel = view.select(model, fmt, ber)
        sel = sel.sort_values(["overhead_pct", "overhead_with_index_pct", "name"], kind="stable")
        rows = [
            [
                r["name"],
                fmt_overhead(r["overhead_pct"]),
                fmt_overhead(r["overhead_with_index_pct"]),
                _pm(r),
                _recovered(view, r),
                f"{int(r['trials'])}" + (" ✓" if r["ci_target_met"] else " ✗"),
            ]
            for _, r in sel.iterrows()
        ]
        lines += [f"### {model}, {fmt}", ""]
        lines += _table(["plan", "copies", "with index", "accuracy (%)", "recovered", "trials (CI target met)"], rows)
        best = []
        for ceiling in _CEILINGS:
            cells = [f"≤ {ceiling:g}%"]
            for col in ("overhead_pct", "overhead_with_index_pct"):
                ok = sel[sel[col] <= ceiling + 1e-9]
                if ok.empty:
                    cells += ["—"]
                else:
                    r = ok.loc[ok["mean_accuracy"].idxmax()]
                    cells += [f"{r['name']}: {fmt_acc(r['mean_accuracy'])}"]
            best.append(cells)
        lines += ["Best plan within an extra-memory ceiling (highest mean accuracy):", ""]
        lines += _table(["ceiling", "counting copies only", "counting copies and index"], best)
    return lines


def _section_bits(view: ReportView, figs: dict) -> list[str]:
    lines = [
        "## 5. Per-bit sensitivity",
        "",
        f"Test accuracy (%) after flipping one bit position in one weight, averaged over the same "
        f"{view.grid.sensitivity_weights} uniformly chosen weights for every position (worst weight in "
        "brackets).",
        "",
    ]
    models = [m for m in view.grid.models if not view.flips[view.flips["model"] == m].empty]
    for model in models:
        if (model, "bits") in figs:
            lines += [f"![accuracy after one flip per bit, {model}]({figs[(model, 'bits')]})", ""]
    for fmt in view.grid.formats:
        sel = view.flips[view.flips["format"] == fmt]
        if sel.empty:
            continue
        rows = []
        for bit in sorted(sel["bit"].astype(int).unique(), reverse=True):
            b = sel[sel["bit"].astype(int) == bit]
            cells = [str(bit), str(b["role"].iloc[0])]
            for model in models:
                r = b[b["model"] == model]
                cells.append(
                    f"{fmt_acc(r['mean_accuracy'].iloc[0])} ({fmt_acc(r['min_accuracy'].iloc[0])})"
                    if not r.empty
                    else "n/a"
                )
            rows.append(cells)
        lines += [f"### {fmt}", ""] + _table(["bit", "role", *models], rows)
    return lines


def _claim_bers(view: ReportView, model: str, fmt: str) -> list[float]:
    """The BERs a claim is checked at: the paper's first, then the budget sweep's others."""
    return list(dict.fromkeys([view.grid.paper_ber, *view.sweep_bers(model, fmt)]))


def conclusions(view: ReportView) -> list[str]:
    """The plain conclusions: each a rule over the table, stating the number it rests on.

    Args:
        view: the report's rows.

    Returns:
        Markdown bullet lines.
    """
    g, ber = view.grid, view.grid.paper_ber
    lrp, mag = f"lrp {PAPER_LRP_BUDGET:g}%", f"magnitude {PAPER_LRP_BUDGET:g}%"
    out: list[str] = []
    # Claim 1: LRP 1% recovers more than 60% of the loss at BER 1e-4.
    out += [
        f"**Claim: LRP 1% gives >{100 * PAPER_RECOVERED:.0f}% reliability improvement at BER {fmt_ber(ber)}** "
        "(checked at the paper's BER, then by the same rule at the budget sweep's second BER).",
        "",
    ]
    for model, fmt in view.pairs():
        for b in _claim_bers(view, model, fmt):
            r, none = view.get(model, fmt, lrp, b), view.get(model, fmt, "no protection", b)
            if r is None or none is None:
                continue
            clean = view.clean(model, fmt)
            where = f"{model} {fmt} at BER {fmt_ber(b)}"
            if clean - float(none["mean_accuracy"]) < g.ci_target:
                out.append(
                    f"* {where}: not testable — unprotected accuracy is {fmt_acc(none['mean_accuracy'])} "
                    f"against {fmt_acc(clean)} clean, a loss below the {100 * g.ci_target:g}-point CI target, "
                    f"so there is nothing measurable to recover."
                )
                continue
            # Both definitions of DESIGN.md: they can disagree (a near-zero baseline inflates the relative gain).
            by_rec = "holds" if r["recovered"] >= PAPER_RECOVERED else "does not hold"
            by_gain = "holds" if r["relative_gain"] >= PAPER_RECOVERED else "does not hold"
            out.append(
                f"* {where}: **{by_rec} as recovered share, {by_gain} as relative gain** — {lrp} recovers "
                f"{fmt_share(r['recovered'])} of the loss, a relative gain of {fmt_share(r['relative_gain'])} "
                f"({fmt_acc(none['mean_accuracy'])} → {fmt_acc(r['mean_accuracy'])}, clean {fmt_acc(clean)}); "
                f"{lrp} is {_vs(r, none)} no protection."
            )
    # Claim 2: LRP selects better than magnitude at the same budget.
    out += ["", "**Claim: LRP selects the weights to protect better than magnitude does (same budget).**", ""]
    for model, fmt in view.pairs():
        parts, wins, losses, total = [], 0, 0, 0
        for b in view.sweep_bers(model, fmt):
            for budget in g.budgets:
                a = view.get(model, fmt, f"lrp {budget:g}%", b)
                m = view.get(model, fmt, f"magnitude {budget:g}%", b)
                if a is None or m is None:
                    continue
                c = compare(a, m)
                total += 1
                wins += c == "better"
                losses += c == "worse"
            a, m = view.get(model, fmt, lrp, b), view.get(model, fmt, mag, b)
            if a is not None and m is not None:
                parts.append(
                    f"at BER {fmt_ber(b)} {lrp} {fmt_acc(a['mean_accuracy'])} vs {mag} "
                    f"{fmt_acc(m['mean_accuracy'])} ({compare(a, m)})"
                )
        if not total:
            continue
        if wins and losses:
            verdict = "mixed"
        elif wins:
            verdict = "holds" if 2 * wins >= total else "holds only in part"
        elif losses:
            verdict = "does not hold (magnitude is better)"
        else:
            verdict = "not shown (no difference beyond the CIs)"
        out.append(
            f"* {model} {fmt}: **{verdict}** — LRP is better in {wins}, worse in {losses} and "
            f"indistinguishable in {total - wins - losses} of {total} (budget, BER) pairs; " + "; ".join(parts) + "."
        )
    # Claim 3: magnitude needs 16-21% overhead to match LRP 1%.
    out += ["", f"**Claim: magnitude selection needs {PAPER_MAGNITUDE_OVERHEAD:g}–21% overhead to match LRP 1%.**", ""]
    for model, fmt in view.pairs():
        for ber_ in _claim_bers(view, model, fmt):
            none, r = view.get(model, fmt, "no protection", ber_), view.get(model, fmt, lrp, ber_)
            if none is None or r is None:
                continue
            b = matching_budget(view, model, fmt, ber_)
            where = f"{model} {fmt} at BER {fmt_ber(ber_)}"
            if view.clean(model, fmt) - float(none["mean_accuracy"]) < g.ci_target:
                out.append(
                    f"* {where}: not testable — no measurable loss (magnitude matches {lrp} at "
                    f"{_fmt_budget(b, g.budgets)})."
                )
            elif compare(r, none) != "better":
                out.append(
                    f"* {where}: **does not hold** — {lrp} itself ({fmt_acc(r['mean_accuracy'])}) is "
                    f"{_vs(r, none)} no protection ({fmt_acc(none['mean_accuracy'])}), so there is no advantage "
                    f"for magnitude to match; it matches at {_fmt_budget(b, g.budgets)} of the weights."
                )
            elif not math.isfinite(b):
                out.append(
                    f"* {where}: **holds** — no tested magnitude budget up to {max(g.budgets):g}% of the "
                    f"weights ({2 * max(g.budgets):g}% copies) reaches {lrp}'s {fmt_acc(r['mean_accuracy'])}."
                )
            else:
                m = view.get(model, fmt, f"magnitude {b:g}%", ber_)
                verdict = "holds" if m["overhead_pct"] >= PAPER_MAGNITUDE_OVERHEAD else "does not hold"
                out.append(
                    f"* {where}: **{verdict}** — magnitude reaches {lrp}'s {fmt_acc(r['mean_accuracy'])} at "
                    f"{b:g}% of the weights ({fmt_overhead(m['overhead_pct'])} copies, "
                    f"{fmt_overhead(m['overhead_with_index_pct'])} with index; accuracy "
                    f"{fmt_acc(m['mean_accuracy'])})."
                )
    # Claim 4: the overhead is 1%.
    out += ["", "**Claim: the method costs 1% memory overhead.**", ""]
    for fmt in g.formats:
        rows = view.camp[(view.camp["format"] == fmt) & (view.camp["name"] == lrp)]
        if rows.empty:
            continue
        r = rows.iloc[0]
        verdict = "does not hold as stated" if r["overhead_pct"] > PAPER_LRP_BUDGET + 1e-9 else "holds"
        out.append(
            f"* {fmt}: **{verdict}** — triplicating {PAPER_LRP_BUDGET:g}% of the weights stores two extra "
            f"copies: {fmt_overhead(r['overhead_pct'])} of the weight memory, "
            f"{fmt_overhead(r['overhead_with_index_pct'])} with the index of the protected weights."
        )
    # Claim 5: better than full TMR (in efficiency).
    out += ["", "**Claim: LRP 1% is more efficient than full TMR.**", ""]
    for model, fmt in view.pairs():
        r, f = view.get(model, fmt, lrp, ber), view.get(model, fmt, "full TMR", ber)
        if r is None or f is None:
            continue
        if _recovered(view, r).startswith("—") or not math.isfinite(r["recovered"]):
            out.append(f"* {model} {fmt}: not testable — no measurable loss at BER {fmt_ber(ber)} to recover.")
            continue
        eff_l = r["recovered"] / r["overhead_with_index_pct"] if r["overhead_with_index_pct"] > 0 else math.nan
        eff_f = f["recovered"] / f["overhead_with_index_pct"]
        none = view.get(model, fmt, "no protection", ber)
        # An efficiency of a gain that is not there is no efficiency: require LRP to beat no protection.
        real = compare(r, none) == "better"
        verdict = "holds" if eff_l > eff_f and real else "does not hold"
        why = "" if real else f" ({lrp} is {_vs(r, none)} no protection, so its gain is not shown)"
        out.append(
            f"* {model} {fmt}: **{verdict} per unit of memory**{why}; in accuracy {lrp} is {_vs(r, f)} full "
            f"TMR — it recovers {fmt_share(r['recovered'])} for "
            f"{fmt_overhead(r['overhead_with_index_pct'])} of extra memory, full TMR "
            f"{fmt_share(f['recovered'])} for {fmt_overhead(f['overhead_with_index_pct'])} "
            f"({100 * eff_l:.2f} vs {100 * eff_f:.2f} points recovered per % of memory)."
        )
    # Why: what a single flip does, and what the cheapest bit-level plans do.
    out += ["", "**Why (what the bit-level data says).**", ""]
    for model in g.models:
        flips = view.flips[(view.flips["model"] == model) & (view.flips["format"] == "fp32")]
        if not flips.empty and (flips["bit"].astype(int) == 30).any():
            b30 = flips[flips["bit"].astype(int) == 30].iloc[0]
            n = view.info["models"][model]["weights"]
            exposed = n * (1 - PAPER_LRP_BUDGET / 100) * ber
            out.append(
                f"* {model} fp32: one flip of bit 30 in one random weight leaves "
                f"{fmt_acc(b30['mean_accuracy'])} accuracy on average (worst "
                f"{fmt_acc(b30['min_accuracy'])}, clean {fmt_acc(b30['clean_accuracy'])}). At BER "
                f"{fmt_ber(ber)} the {100 - PAPER_LRP_BUDGET:g}% "
                f"unprotected weights still take {exposed:.2f} bit-30 flips per trial on average, whichever "
                f"weights are chosen."
            )
            b, r = view.get(model, "fp32", "bit 30", ber), view.get(model, "fp32", lrp, ber)
            if b is not None and r is not None:
                out.append(
                    f"* {model} fp32: protecting bit 30 of every weight ({fmt_overhead(b['overhead_pct'])} "
                    f"copies) gives {fmt_acc(b['mean_accuracy'])} at BER {fmt_ber(ber)}, {_vs(b, r)} "
                    f"{lrp}'s {fmt_acc(r['mean_accuracy'])} ({fmt_overhead(r['overhead_with_index_pct'])} "
                    "with index)."
                )
        for fmt in g.formats:
            rg, r = view.get(model, fmt, "range guard", ber), view.get(model, fmt, lrp, ber)
            if rg is not None and r is not None:
                out.append(
                    f"* {model} {fmt}: the range guard (no copies, "
                    f"{fmt_overhead(rg['overhead_with_index_pct'])} for its bounds) gives "
                    f"{fmt_acc(rg['mean_accuracy'])} at BER {fmt_ber(ber)}, "
                    f"{_vs(rg, r)} {lrp}'s {fmt_acc(r['mean_accuracy'])}."
                )
        if set(g.formats) >= {"fp32", "int8"}:
            a, b = view.get(model, "fp32", "no protection", ber), view.get(model, "int8", "no protection", ber)
            r = view.get(model, "fp32", lrp, ber)
            if a is not None and b is not None and r is not None:
                gain_fmt = float(b["mean_accuracy"] - a["mean_accuracy"])
                gain_lrp = float(r["mean_accuracy"] - a["mean_accuracy"])
                which = (
                    "the storage format matters more than the choice of protected weights"
                    if gain_fmt > gain_lrp
                    else "LRP 1% matters more than the storage format"
                )
                out.append(
                    f"* {model}: unprotected, int8 storage keeps {fmt_acc(b['mean_accuracy'])} at BER "
                    f"{fmt_ber(ber)} against {fmt_acc(a['mean_accuracy'])} for fp32 ({_vs(b, a)} fp32): "
                    f"storing in int8 gains {100 * gain_fmt:.2f} points, {lrp} in fp32 gains "
                    f"{100 * gain_lrp:.2f} — {which} here."
                )
    # The other scorers at the paper's budget.
    out += ["", f"**LRP against the other scorers at {PAPER_LRP_BUDGET:g}% (BER {fmt_ber(ber)}).**", ""]
    for model, fmt in view.pairs():
        accs = {s: view.get(model, fmt, f"{s} {PAPER_LRP_BUDGET:g}%", ber) for s in g.scorers}
        accs = {s: r for s, r in accs.items() if r is not None}
        if "lrp" not in accs or len(accs) < 2:
            continue
        order = sorted(accs, key=lambda s: -float(accs[s]["mean_accuracy"]))
        better = [s for s in accs if s != "lrp" and compare(accs["lrp"], accs[s]) == "better"]
        out.append(
            f"* {model} {fmt}: LRP ranks {order.index('lrp') + 1} of {len(order)} by mean accuracy ("
            + ", ".join(f"{s} {fmt_acc(accs[s]['mean_accuracy'])}" for s in order)
            + f"); significantly better than {', '.join(better) if better else 'none of them'}."
        )
    return out


def write_document(view: ReportView, out_dir: Path, figs: dict, meta: dict) -> Path:
    """Write ``REPRODUCTION.md`` from the report's rows.

    Args:
        view: the rows. out_dir: the folder. figs: figure paths relative to ``out_dir``.
        meta: ``command``, ``duration_s``, ``machine``, ``load``, ``dataset``, ``quick``.

    Returns:
        The document's path.
    """
    title = "# Reproducing arXiv 2507.08829: LRP-selected TMR against weight bit flips"
    intro = [
        "Generated by `python -m xtmr_core report`; do not edit by hand — every number below is computed "
        "from the CSV beside this file, and the conclusions are rules over the same data."
    ]
    if meta["quick"]:
        intro.append(
            "**This is a `--quick` run: a reduced grid with few trials, for testing the pipeline; its numbers "
            "are not a result.**"
        )
    lines = [title, "", *intro, ""]
    lines += _section_run(view, meta)
    lines += _section_paper(view)
    lines += _section_figures(view, figs)
    lines += _section_overhead(view, figs)
    lines += _section_bits(view, figs)
    lines += [
        "## 6. Conclusions",
        "",
        'Each verdict below is produced by a fixed rule from the rows above. "Better"/"worse": trial *t* '
        "of every point uses the same seed, so two plans are compared trial by trial, and one is better when the "
        "95% CI of the mean per-trial accuracy difference excludes zero (plans that protect the same number of "
        "bits see exactly the same faults in the primary copy of the weights). Where the paper's claim does not "
        "hold here, that is the result.",
        "",
    ]
    lines += conclusions(view)
    lines += [
        "",
        "## Other datasets",
        "",
        "The same command runs on the full datasets when their files are present under `data_cache/` "
        "(nothing is downloaded unless `XTMR_DOWNLOAD=1`) and checkpoints exist for them, e.g.:",
        "",
        "```",
        "python -m xtmr_core train --model alexnet --dataset cifar10 --out checkpoints/alexnet_cifar10.pt",
        "python -m xtmr_core report --dataset cifar10 --models alexnet,vgg16 --out docs/cifar10",
        "```",
        "",
        "This is documented, not run in CI.",
        "",
    ]
    path = out_dir / REPORT_NAME
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _command(quick: bool, dataset: str, models: Sequence[str] | None, out_dir: str | Path) -> str:
    parts = ["python -m xtmr_core report"]
    if quick:
        parts.append("--quick")
    if dataset != "mnist5k":
        parts.append(f"--dataset {dataset}")
    if models:
        parts.append("--models " + ",".join(models))
    if str(out_dir) != "docs":
        parts.append(f"--out {out_dir}")
    return " ".join(parts)


def run_report(
    out_dir: str | Path = "docs",
    quick: bool = False,
    dataset: str = "mnist5k",
    models: Sequence[str] | None = None,
    *,
    checkpoints: dict[str, str | Path] | None = None,
    grid: Grid | None = None,
    progress: bool = True,
) -> Path:
    """Run the reproduction grid and write the report, its figures and its CSV.

    Args:
        out_dir: the folder for ``REPRODUCTION.md``, ``figures/`` and ``reproduction.csv`` (created).
        quick: run ``QUICK_GRID`` (lenet5, few points and trials: a few minutes) instead of ``FULL_GRID``.
        dataset: the dataset.
        models: architectures to run (default: the grid's).
        checkpoints: a checkpoint file per model, overriding the shipped ones.
        grid: a custom grid (overrides ``quick``).
        progress: show a progress bar on stderr.

    Returns:
        The path of the written ``REPRODUCTION.md``.

    Raises:
        XtmrError: a missing checkpoint or dataset, or an output folder that cannot be written.
    """
    start = time.perf_counter()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    base = grid or (QUICK_GRID if quick else FULL_GRID)
    if models:
        base = Grid(**{**base.__dict__, "models": tuple(models)})
    require_checkpoints(base.models, dataset, checkpoints)
    out = Path(out_dir)
    try:
        (out / FIGURES).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise XtmrError(f"cannot create {out / FIGURES} ({e.strerror}); choose another --out") from None
    table, info = run_grid(base, dataset, checkpoints, progress=progress)
    table.to_csv(out / CSV_NAME, index=False)
    view = ReportView(table, base, info)
    figs: dict = {}
    for model, fmt in view.pairs():
        for kind, draw in (("ber", figure_ber), ("budget", figure_budget)):
            rel = f"{FIGURES}/{model}_{fmt}_{kind}.png"
            draw(view, model, fmt, out / rel)
            figs[(model, fmt, kind)] = rel
    for model in base.models:
        for kind, draw in (("overhead", figure_overhead), ("bits", figure_bits)):
            rel = f"{FIGURES}/{model}_{kind}.png"
            draw(view, model, out / rel)
            figs[(model, kind)] = rel
    machine = (
        f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads" + (", CUDA" if torch.cuda.is_available() else ", no GPU")
    )
    meta = {
        "command": _command(bool(quick) and grid is None, dataset, models, out_dir),
        "duration_s": time.perf_counter() - start,
        "machine": machine,
        "load": load,
        "dataset": dataset,
        "quick": base is QUICK_GRID or (quick and grid is None),
    }
    return write_document(view, out, figs, meta)
