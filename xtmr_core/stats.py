"""Statistics over trials: confidence intervals, reliability improvement, iso-reliability cost."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean of per-trial values.

    Args:
        values: per-trial values (e.g. accuracies).
        confidence: the interval's confidence level.

    Returns:
        ``(low, high)``; ``(nan, nan)`` with fewer than two values (no spread can be estimated).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return (math.nan, math.nan)
    mean = float(v.mean())
    half = float(_st.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return (mean - half, mean + half)


def ci_half_width(values: Sequence[float], confidence: float = 0.95) -> float:
    """Half the width of ``mean_ci`` (``inf`` with fewer than two values)."""
    lo, hi = mean_ci(values, confidence)
    return math.inf if math.isnan(lo) else (hi - lo) / 2


def paired_difference(
    plan: Sequence[float], base: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean per-trial difference ``plan - base`` of two campaigns run with the same seed, and its CI.

    Trial ``t`` of both campaigns saw the same faults in the primary copy, so the trials pair up and the
    difference is far less noisy than two separate intervals suggest.

    Args:
        plan, base: per-trial values of the two campaigns (paired by trial index; extra trials ignored).
        confidence: the interval's confidence level.

    Returns:
        ``(mean, low, high)``; low/high are ``nan`` with fewer than two pairs.
    """
    n = min(len(plan), len(base))
    d = np.asarray(plan[:n], dtype=np.float64) - np.asarray(base[:n], dtype=np.float64)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    lo, hi = mean_ci(d, confidence)
    return (float(d.mean()), lo, hi)


def reliability_improvement(acc_plan: float, acc_none: float, acc_clean: float) -> tuple[float, float]:
    """Reliability improvement of a plan over no protection, both ways.

    Args:
        acc_plan: mean accuracy under faults with the plan.
        acc_none: mean accuracy under the same faults without protection.
        acc_clean: accuracy without faults.

    Returns:
        ``(recovered, relative_gain)``: the share of the fault-induced loss the plan recovers,
        ``(plan - none) / (clean - none)``, and ``(plan - none) / none``. Each is ``nan`` where its
        denominator is 0 (no loss to recover; unprotected accuracy 0).
    """
    loss = acc_clean - acc_none
    recovered = (acc_plan - acc_none) / loss if loss > 0 else math.nan
    gain = (acc_plan - acc_none) / acc_none if acc_none > 0 else math.nan
    return (recovered, gain)


def iso_reliability_cost(
    table: pd.DataFrame, target: float, by: str = "protect", budget: str = "budget", value: str = "mean_accuracy"
) -> pd.DataFrame:
    """The smallest budget each scorer needs to reach a target accuracy.

    Args:
        table: one row per (scorer, budget) with the mean accuracy (a sweep's rows at one BER).
        target: the accuracy to reach (same units as ``value``).
        by, budget, value: column names.

    Returns:
        One row per scorer: ``by``, ``min_budget`` (``nan`` if no tested budget reaches the target),
        ``accuracy_at_min``.
    """
    rows = []
    for name, group in table.groupby(by, sort=True):
        ok = group[group[value] >= target].sort_values(budget)
        if ok.empty:
            rows.append({by: name, "min_budget": math.nan, "accuracy_at_min": math.nan})
        else:
            rows.append(
                {by: name, "min_budget": float(ok[budget].iloc[0]), "accuracy_at_min": float(ok[value].iloc[0])}
            )
    return pd.DataFrame(rows, columns=[by, "min_budget", "accuracy_at_min"])
