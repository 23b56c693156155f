"""Confidence intervals, reliability improvement and iso-reliability cost."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xtmr_core.stats import ci_half_width, iso_reliability_cost, mean_ci, paired_difference, reliability_improvement


def test_mean_ci_is_the_student_t_interval():
    v = [0.9, 0.8, 0.95, 0.85, 0.7]
    lo, hi = mean_ci(v)
    m, s, n = np.mean(v), np.std(v, ddof=1), len(v)
    t = stats.t.ppf(0.975, n - 1)
    assert lo == pytest.approx(m - t * s / math.sqrt(n)) and hi == pytest.approx(m + t * s / math.sqrt(n))
    assert ci_half_width(v) == pytest.approx(t * s / math.sqrt(n))


def test_mean_ci_with_one_trial_is_unknown():
    assert all(math.isnan(x) for x in mean_ci([0.5]))
    assert ci_half_width([0.5]) == math.inf


def test_reliability_improvement_both_ways():
    rec, gain = reliability_improvement(acc_plan=0.8, acc_none=0.4, acc_clean=0.9)
    assert rec == pytest.approx(0.8) and gain == pytest.approx(1.0)
    rec, gain = reliability_improvement(0.5, 0.9, 0.9)
    assert math.isnan(rec)
    assert math.isnan(reliability_improvement(0.5, 0.0, 0.9)[1])


def test_iso_reliability_cost_picks_the_smallest_budget_reaching_the_target():
    table = pd.DataFrame(
        {
            "protect": ["lrp"] * 3 + ["magnitude"] * 3,
            "budget": [1, 5, 10, 1, 5, 10],
            "mean_accuracy": [0.96, 0.97, 0.98, 0.5, 0.94, 0.955],
        }
    )
    out = iso_reliability_cost(table, 0.95).set_index("protect")
    assert out.loc["lrp", "min_budget"] == 1
    assert out.loc["magnitude", "min_budget"] == 10
    assert math.isnan(iso_reliability_cost(table, 0.99).set_index("protect").loc["lrp", "min_budget"])


def test_paired_difference_is_the_t_interval_of_per_trial_differences():
    plan, base = [0.5, 0.9, 0.2, 0.7], [0.4, 0.8, 0.2, 0.5, 0.99]
    mean, lo, hi = paired_difference(plan, base)
    d = [0.1, 0.1, 0.0, 0.2]
    assert mean == pytest.approx(np.mean(d)) and (lo, hi) == pytest.approx(mean_ci(d))
    assert math.isnan(paired_difference([0.5], [0.4])[1])
