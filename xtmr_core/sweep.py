"""Grids of campaigns: plans × budgets × BERs × formats → one table, with reliability improvement."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import pandas as pd

from xtmr_core.campaign import CampaignResult
from xtmr_core.errors import XtmrError
from xtmr_core.experiment import Experiment
from xtmr_core.faults import FaultModel
from xtmr_core.formats import WORD_BITS, check_format
from xtmr_core.protection import SCORER_PLANS, check_budget, make_plan
from xtmr_core.stats import iso_reliability_cost, reliability_improvement

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


def grid(
    protects: Sequence[str], budgets: Sequence[float], bers: Sequence[float], formats: Sequence[str]
) -> list[tuple[str, str, float, float]]:
    """The (format, protect, budget, ber) points of a sweep; plans without a budget run once.

    Repeated values are run once (``1e-4`` and ``0.0001`` are one BER).
    """
    points = []
    for fmt, protect, ber in itertools.product(
        dict.fromkeys(formats), dict.fromkeys(protects), dict.fromkeys(float(b) for b in bers)
    ):
        for budget in dict.fromkeys(float(check_budget(b)) for b in budgets) if protect in SCORER_PLANS else [0.0]:
            points.append((fmt, protect, budget, ber))
    return points


def check_sweep(
    protects: Sequence[str],
    bers: Sequence[float],
    formats: Sequence[str],
    *,
    bits: tuple[int, ...] | None = None,
    mode: str = "flip",
    fault_bits: tuple[int, ...] | None = None,
) -> None:
    """Reject a sweep with any invalid point before running any of it.

    Raises:
        XtmrError: a plan, format, BER, mode or bit position that one of the points cannot use.
    """
    if not bers or not formats or not protects:
        raise XtmrError("a sweep needs at least one BER, one format and one plan")
    for ber in bers:
        FaultModel(ber, mode)
    for fmt in formats:
        FaultModel(0.0, mode, tuple(fault_bits) if fault_bits else None).positions(WORD_BITS[check_format(fmt)])
        for protect in protects:
            if protect not in SCORER_PLANS:  # scorer plans only need scores, checked when computed
                make_plan(protect, WORD_BITS[fmt], bits=bits)


def run_sweep(
    exp: Experiment,
    protects: Sequence[str],
    budgets: Sequence[float],
    bers: Sequence[float],
    formats: Sequence[str] = ("fp32",),
    *,
    trials: int = 20,
    seed: int = 0,
    bits: tuple[int, ...] | None = None,
    ci_target: float | None = None,
    mode: str = "flip",
    fault_bits: tuple[int, ...] | None = None,
    rule: str = "epsilon",
    per_layer: bool = False,
    int8_granularity: str = "channel",
    progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> pd.DataFrame:
    """Run a campaign at every point of a grid.

    Args:
        exp: the experiment (model and data).
        protects: plans (``protection.PLANS``); ``none`` is added when missing, as the baseline.
        budgets: percentages for the scorer plans.
        bers: bit error rates. formats: storage formats.
        trials, seed, ci_target: per campaign (see ``campaign.run_campaign``).
        bits: protected bit positions for the ``bits`` plan.
        mode, fault_bits, rule, per_layer, int8_granularity: as in ``Experiment.evaluate``, for every point.
        progress: called with ``(done, total, label)`` after each point.
        should_stop: polled between points; ``True`` returns the rows so far.

    Returns:
        One row per point (``COLUMNS`` plus ``recovered`` and ``relative_gain`` against ``none``).

    Raises:
        XtmrError: an invalid point, found before any campaign runs.
    """
    protects = list(dict.fromkeys(["none", *protects]))
    check_sweep(protects, bers, formats, bits=bits, mode=mode, fault_bits=fault_bits)
    points = grid(protects, budgets, bers, formats)
    rows = []
    for i, (fmt, protect, budget, ber) in enumerate(points):
        if should_stop is not None and should_stop():
            break
        r = exp.evaluate(
            protect,
            budget,
            ber,
            fmt,
            trials=trials,
            seed=seed,
            bits=bits,
            ci_target=ci_target,
            mode=mode,
            fault_bits=fault_bits,
            rule=rule,
            per_layer=per_layer,
            int8_granularity=int8_granularity,
        )
        rows.append(result_row(exp, r))
        if progress is not None:
            progress(i + 1, len(points), f"{fmt} {r.plan} @ BER {ber:g}")
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
    scored = table[table["protect"].isin(SCORER_PLANS)]
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
