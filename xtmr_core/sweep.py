"""Grids of campaigns: plans × budgets × BERs × formats → one table, with paired reliability improvement.

A sweep runs point by point: all plans and budgets of one (format, BER) point run together on the same
trials (``Experiment.evaluate_point``), so each row's ``recovered``, ``relative_gain`` and ``diff`` (against
``none``) come from per-trial paired differences, each with its own interval (``PAIRED_COLUMNS``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from xtmr_core.campaign import CampaignResult, PointResult
from xtmr_core.distributed import Runner
from xtmr_core.errors import XtmrError
from xtmr_core.experiment import Experiment
from xtmr_core.spec import CampaignSpec, grid
from xtmr_core.stats import iso_reliability_cost, reliability_improvement
from xtmr_core.vocabulary import SCORERS

COLUMNS = [
    "model",
    "dataset",
    "format",
    "ber",
    "mode",
    "protect",
    "plan",
    "budget",
    "trials",
    "clean_accuracy",
    "mean_accuracy",
    "ci_low",
    "ci_high",
    "min_accuracy",
    "mismatch_rate",
    "mean_bit_flips",
    "protected_weights",
    "overhead_pct",
    "overhead_with_index_pct",
]


#: The paired columns of a row against the unprotected baseline of its point (NaN on the baseline row):
#: ``diff`` = mean per-trial accuracy difference, ``recovered``/``relative_gain`` as ratios, each with
#: ``_low``/``_high`` interval ends (``stats``), the ``verdict`` (``stats.judge``), the sampling ``design``
#: (``plain`` or ``stratified``) with its ``strata`` (``label:weight:trials`` joined by ``; ``) and each
#: trial's stratum, and the per-trial accuracies as a space-separated string (for distributions and later
#: paired comparisons; a stratified point's mean is ``sum_s weight_s mean_s``, not their plain mean).
PAIRED_COLUMNS = [
    "diff",
    "diff_low",
    "diff_high",
    "recovered",
    "recovered_low",
    "recovered_high",
    "relative_gain",
    "relative_gain_low",
    "relative_gain_high",
    "verdict",
    "design",
    "strata",
    "trial_strata",
    "trial_accuracies",
]


def point_rows(exp: Experiment, point: PointResult) -> list[dict[str, Any]]:
    """The table rows of one grid point: ``result_row`` plus ``PAIRED_COLUMNS`` for each plan (the
    baseline first)."""
    rows = []
    for i, r in enumerate(point.results):
        row = result_row(exp, r)
        paired: dict[str, object] = dict.fromkeys(PAIRED_COLUMNS[:9], float("nan"))
        paired["verdict"] = ""
        paired["design"] = point.design
        paired["strata"] = "" if point.strata is None else point.strata.text(point.trials)
        paired["trial_strata"] = " ".join(str(s) for s in r.strata or ())
        if i > 0:
            for name, iv in (
                ("diff", point.difference(i)),
                ("recovered", point.recovered(i)),
                ("relative_gain", point.relative_gain(i)),
            ):
                paired[name], paired[f"{name}_low"], paired[f"{name}_high"] = iv.estimate, iv.low, iv.high
            paired["verdict"] = point.verdict(i)
        paired["trial_accuracies"] = " ".join(f"{a:.6g}" for a in r.accuracies)
        rows.append({**row, **paired})
    return rows


def result_row(exp: Experiment, r: CampaignResult) -> dict[str, Any]:
    """One table row of a campaign result."""
    lo, hi = r.ci95
    return {
        "model": exp.model_name,
        "dataset": exp.dataset,
        "format": r.format,
        "ber": r.ber,
        "mode": r.mode,
        "protect": r.protect,
        "plan": r.plan,
        "budget": r.budget,
        "trials": r.trials,
        "clean_accuracy": r.clean_accuracy,
        "mean_accuracy": r.mean_accuracy,
        "ci_low": lo,
        "ci_high": hi,
        "min_accuracy": r.min_accuracy,
        "mismatch_rate": r.mismatch_rate,
        "mean_bit_flips": r.mean_bit_flips,
        "protected_weights": r.overhead.protected_weights,
        "overhead_pct": r.overhead.copies_pct,
        "overhead_with_index_pct": r.overhead.with_index_pct,
    }


def check_sweep(
    protects: Sequence[str],
    bers: Sequence[float],
    formats: Sequence[str],
    budgets: Sequence[float] = (),
    **common: Any,
) -> None:
    """Reject a sweep with any invalid point before running any of it (``grid`` checks every spec).

    Raises:
        XtmrError: a plan, format, BER, budget, mode or bit position that one of the points cannot use.
    """
    if not bers or not formats or not protects:
        raise XtmrError("a sweep needs at least one BER, one format and one plan")
    grid(protects, budgets or [0.0], bers, formats, **common)


def run_sweep(  # noqa: PLR0913 (left: a sweep grid value is next)
    exp: Experiment,
    protects: Sequence[str],
    budgets: Sequence[float],
    bers: Sequence[float],
    formats: Sequence[str] = ("fp32",),
    *,
    progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    design: str = "auto",
    evaluate_point: Callable[..., PointResult] | None = None,
    runner: Runner | None = None,
    **common: object,
) -> pd.DataFrame:
    """Run every grid point with all its plans paired (one ``Experiment.evaluate_point`` per point).

    Args:
        exp: the experiment (model and data).
        protects: plans (``vocabulary.PLANS``); ``none`` is the baseline of every point (always run).
        budgets: percentages for the scorer plans.
        bers: bit error rates. formats: storage formats.
        progress: called with ``(done, total, label)`` after each grid point (all its plans).
        should_stop: polled between trials and points; ``True`` returns the rows so far (a cancelled
            point keeps its trials so far, the same count for every plan).
        design: the sampling design of every point (``Experiment.evaluate_point``: ``auto`` or ``plain``).
        evaluate_point: runs one point, ``evaluate_point(specs, should_stop=..., design=...)``;
            ``exp.evaluate_point`` by default (the app passes its cached one, so a point is computed once).
        runner: runs the points elsewhere (a ``distributed.Runner``, e.g. a ``RayRunner``; ``should_stop`` is
            then not polled); ``None`` = here, one by one. Every runner gives the same table.
        common: the other ``CampaignSpec`` fields (trials, seed, bits, mode, fault_bits, rule, per_layer,
            int8_granularity), the same at every point.

    Returns:
        One row per plan and point: ``COLUMNS`` + ``PAIRED_COLUMNS``; every plan of a point has the same
        ``trials``.

    Raises:
        XtmrError: an invalid point, found before any campaign runs.
    """
    protects = list(dict.fromkeys(["none", *protects]))
    check_sweep(protects, bers, formats, budgets, **common)
    points: dict[CampaignSpec, list[CampaignSpec]] = {}
    for spec in grid(protects, budgets, bers, formats, **common):
        points.setdefault(spec.point, []).append(spec)
    run = exp.evaluate_point if evaluate_point is None else evaluate_point
    if runner is not None:
        for specs in points.values():  # scores are computed here, once, and travel with exp
            for spec in specs:
                exp.plan(spec)

        def report(done: int, total: int, item: tuple[list[CampaignSpec], str]) -> None:
            if progress is not None:
                progress(done, total, f"{item[0][0].fmt} @ BER {item[0][0].ber:g} ({len(item[0])} plans)")

        items = [(specs, design) for specs in points.values()]
        parts = runner(exp, paired_point_rows, items, progress=report, carry=carry_point)
        return pd.DataFrame([row for part in parts for row in part], columns=[*COLUMNS, *PAIRED_COLUMNS])
    rows: list[dict[str, Any]] = []
    for i, (base, specs) in enumerate(points.items()):
        if should_stop is not None and should_stop():
            break
        point = run(specs, should_stop=should_stop, design=design)
        rows += point_rows(exp, point)
        if progress is not None:
            progress(i + 1, len(points), f"{base.fmt} @ BER {base.ber:g} ({len(point.results)} plans)")
    return pd.DataFrame(rows, columns=[*COLUMNS, *PAIRED_COLUMNS])


def carry_point(exp: Experiment, item: tuple[list[CampaignSpec], str]) -> Any:
    """The stored trials of one grid point ``item = (specs, design)``, to travel with its task
    (``Experiment.carried``)."""
    specs, design = item
    return exp.carried(specs, design)


def paired_point_rows(exp: Experiment, item: tuple[list[CampaignSpec], str]) -> list[dict[str, Any]]:
    """The rows of one grid point, ``item = (specs, design)``, run paired (``Experiment.evaluate_point``):
    the unit of work a ``distributed`` runner sends to other processes (module-level, so it travels)."""
    specs, design = item
    return point_rows(exp, exp.evaluate_point(specs, design=design))


def add_reliability(table: pd.DataFrame) -> pd.DataFrame:
    """Add each row's reliability improvement over ``none`` at the same format and BER, both ways, from
    the rows' means alone (no intervals; for tables not built by ``run_sweep``, whose rows are already
    paired)."""
    table = table.copy()
    base = table[table["protect"] == "none"].groupby(["format", "ber"])["mean_accuracy"].first()
    rec, gain = [], []
    for _, row in table.iterrows():
        none = base.get((row["format"], row["ber"]))
        r = (
            reliability_improvement(row["mean_accuracy"], none, row["clean_accuracy"])
            if none is not None
            else (float("nan"),) * 2
        )
        rec.append(r[0])
        gain.append(r[1])
    table["recovered"] = rec
    table["relative_gain"] = gain
    return table


def iso_table(table: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per format and BER, the smallest budget each scorer needs to reach ``target`` accuracy (``min_budget``,
    ``nan`` where no budget tried reaches it) and the largest budget tried (``max_budget_tried``)."""
    guarded = table["plan"].str.endswith("+range") if "plan" in table else False  # TMR alone, not +range
    scored = table[table["protect"].isin(SCORERS) & ~guarded]
    parts = []
    for (fmt, ber), group in scored.groupby(["format", "ber"], sort=True):
        cost = iso_reliability_cost(group, target)
        cost.insert(0, "ber", float(ber))  # type: ignore[arg-type]  # groupby keys are typed Hashable
        cost.insert(0, "format", str(fmt))
        cost["max_budget_tried"] = cost["protect"].map(group.groupby("protect")["budget"].max()).astype(float)
        parts.append(cost)
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["format", "ber", "protect", "min_budget", "accuracy_at_min", "max_budget_tried"])
    )


def iso_text(iso: pd.DataFrame) -> pd.DataFrame:
    """``iso_table`` as a reader sees it: the smallest budget in %, or ``not reached (max budget tried: X%)``
    instead of NaN, and the accuracy there (``–`` where not reached)."""
    reached = iso["min_budget"].notna()
    out = iso.drop(columns="max_budget_tried").astype({"min_budget": object, "accuracy_at_min": object})
    out["min_budget"] = [
        f"{b:g}%" if ok else f"not reached (max budget tried: {m:g}%)"
        for ok, b, m in zip(reached, iso["min_budget"], iso["max_budget_tried"])
    ]
    out["accuracy_at_min"] = [f"{a:.4f}" if ok else "–" for ok, a in zip(reached, iso["accuracy_at_min"])]
    return out
