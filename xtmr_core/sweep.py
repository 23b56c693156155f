"""Grids of campaigns: plans × budgets × BERs × formats → one table, with reliability improvement."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from xtmr_core.campaign import CampaignResult
from xtmr_core.errors import XtmrError
from xtmr_core.experiment import Experiment
from xtmr_core.spec import grid
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


def result_row(exp: Experiment, r: CampaignResult) -> dict:
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
    protects: Sequence[str], bers: Sequence[float], formats: Sequence[str], budgets: Sequence[float] = (), **common
) -> None:
    """Reject a sweep with any invalid point before running any of it (``grid`` checks every spec).

    Raises:
        XtmrError: a plan, format, BER, budget, mode or bit position that one of the points cannot use.
    """
    if not bers or not formats or not protects:
        raise XtmrError("a sweep needs at least one BER, one format and one plan")
    grid(protects, budgets or [0.0], bers, formats, **common)


def run_sweep(
    exp: Experiment,
    protects: Sequence[str],
    budgets: Sequence[float],
    bers: Sequence[float],
    formats: Sequence[str] = ("fp32",),
    *,
    ci_target: float | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    **common: object,
) -> pd.DataFrame:
    """Run a campaign at every point of a grid.

    Args:
        exp: the experiment (model and data).
        protects: plans (``vocabulary.PLANS``); ``none`` is added when missing, as the baseline.
        budgets: percentages for the scorer plans.
        bers: bit error rates. formats: storage formats.
        ci_target: per campaign (see ``campaign.run_campaign``).
        progress: called with ``(done, total, label)`` after each point.
        should_stop: polled between points; ``True`` returns the rows so far.
        common: the other ``CampaignSpec`` fields (trials, seed, bits, mode, fault_bits, rule, per_layer,
            int8_granularity), the same at every point.

    Returns:
        One row per point (``COLUMNS`` plus ``recovered`` and ``relative_gain`` against ``none``).

    Raises:
        XtmrError: an invalid point, found before any campaign runs.
    """
    protects = list(dict.fromkeys(["none", *protects]))
    check_sweep(protects, bers, formats, budgets, **common)
    points = grid(protects, budgets, bers, formats, **common)
    rows = []
    for i, spec in enumerate(points):
        if should_stop is not None and should_stop():
            break
        r = exp.evaluate(spec, ci_target=ci_target)
        rows.append(result_row(exp, r))
        if progress is not None:
            progress(i + 1, len(points), f"{spec.fmt} {r.plan} @ BER {spec.ber:g}")
    return add_reliability(pd.DataFrame(rows, columns=COLUMNS))


def add_reliability(table: pd.DataFrame) -> pd.DataFrame:
    """Add each row's reliability improvement over ``none`` at the same format and BER, both ways."""
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
    """Per format and BER, the smallest budget each scorer needs to reach ``target`` accuracy."""
    scored = table[table["protect"].isin(SCORERS)]
    parts = []
    for (fmt, ber), group in scored.groupby(["format", "ber"], sort=True):
        cost = iso_reliability_cost(group, target)
        cost.insert(0, "ber", ber)
        cost.insert(0, "format", fmt)
        parts.append(cost)
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["format", "ber", "protect", "min_budget", "accuracy_at_min"])
    )
