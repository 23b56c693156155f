"""Sweeps: the grid, reliability improvement against the none baseline, the iso-cost table."""
import math

import pandas as pd
import pytest

from xtmr_core.sweep import add_reliability, grid, iso_table


def test_grid_runs_budgetless_plans_once():
    points = grid(["none", "lrp", "full"], [1, 5], [1e-4, 1e-3], ["fp32"])
    assert len(points) == 2 * (1 + 2 + 1)
    assert ("fp32", "lrp", 5.0, 1e-3) in points and ("fp32", "full", 0.0, 1e-4) in points


def test_reliability_is_computed_against_none_at_the_same_point():
    table = pd.DataFrame({
        "format": ["fp32"] * 3, "ber": [1e-4] * 3, "protect": ["none", "lrp", "full"],
        "mean_accuracy": [0.5, 0.8, 0.9], "clean_accuracy": [0.9] * 3, "budget": [0, 1, 0],
    })
    out = add_reliability(table).set_index("protect")
    assert out.loc["lrp", "recovered"] == pytest.approx(0.75) and out.loc["lrp", "relative_gain"] == pytest.approx(0.6)
    assert out.loc["full", "recovered"] == pytest.approx(1.0)
    assert math.isnan(out.loc["none", "recovered"]) or out.loc["none", "recovered"] == 0


def test_iso_table_per_format_and_ber():
    table = pd.DataFrame({
        "format": ["fp32"] * 4, "ber": [1e-4] * 4, "protect": ["lrp", "lrp", "magnitude", "magnitude"],
        "budget": [1, 5, 1, 5], "mean_accuracy": [0.96, 0.97, 0.9, 0.96],
    })
    iso = iso_table(table, 0.95).set_index("protect")
    assert iso.loc["lrp", "min_budget"] == 1 and iso.loc["magnitude", "min_budget"] == 5
