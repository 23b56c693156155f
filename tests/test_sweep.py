"""Sweeps: the grid, reliability improvement against the none baseline, the iso-cost table."""

import math

import pandas as pd
import pytest

from xtmr_core.errors import XtmrError
from xtmr_core.spec import CampaignSpec
from xtmr_core.sweep import add_reliability, check_sweep, grid, iso_table, run_sweep


def test_grid_runs_budgetless_plans_once_and_repeated_values_once():
    points = grid(["none", "lrp", "full"], [1, 5], [1e-4, 1e-3], ["fp32"])
    assert len(points) == 2 * (1 + 2 + 1)
    assert CampaignSpec("lrp", 5.0, 1e-3) in points and CampaignSpec("full", 0.0, 1e-4) in points
    assert grid(["none", "none"], [1], [1e-4, 0.0001], ["fp32", "fp32"]) == [CampaignSpec("none", 0.0, 1e-4)]
    assert grid(["lrp"], [1], [1e-4], ["int8"], trials=3, rule="gamma") == [
        CampaignSpec("lrp", 1.0, 1e-4, "int8", trials=3, rule="gamma")
    ]


def test_a_sweep_applies_the_fault_mode_and_bits_to_every_point():
    from xtmr_core.experiment import Experiment

    exp = Experiment("lenet5", "mnist5k")
    # stuck-at-0 on bit 0 only: a mantissa LSB, harmless, and about n * p faults per trial
    table = run_sweep(exp, ["none"], [], [1e-3], trials=2, mode="stuck0", fault_bits=(0,))
    row = table.iloc[0]
    assert row["mode"] == "stuck0" and row["mean_accuracy"] == row["clean_accuracy"]
    assert row["mean_bit_flips"] < 0.1 * exp.n_weights * 32 * 1e-3


def test_an_invalid_point_is_refused_before_anything_runs():
    with pytest.raises(XtmrError, match="outside 0..7"):
        check_sweep(["none", "bits"], [1e-4], ["fp32", "int8"], bits=(30,))
    with pytest.raises(XtmrError, match="BER"):
        check_sweep(["none"], [1e-4, 2.0], ["fp32"])


def test_reliability_is_computed_against_none_at_the_same_point():
    table = pd.DataFrame(
        {
            "format": ["fp32"] * 3,
            "ber": [1e-4] * 3,
            "protect": ["none", "lrp", "full"],
            "mean_accuracy": [0.5, 0.8, 0.9],
            "clean_accuracy": [0.9] * 3,
            "budget": [0, 1, 0],
        }
    )
    out = add_reliability(table).set_index("protect")
    assert out.loc["lrp", "recovered"] == pytest.approx(0.75) and out.loc["lrp", "relative_gain"] == pytest.approx(0.6)
    assert out.loc["full", "recovered"] == pytest.approx(1.0)
    assert math.isnan(out.loc["none", "recovered"]) or out.loc["none", "recovered"] == 0


def test_iso_table_per_format_and_ber():
    table = pd.DataFrame(
        {
            "format": ["fp32"] * 4,
            "ber": [1e-4] * 4,
            "protect": ["lrp", "lrp", "magnitude", "magnitude"],
            "budget": [1, 5, 1, 5],
            "mean_accuracy": [0.96, 0.97, 0.9, 0.96],
        }
    )
    iso = iso_table(table, 0.95).set_index("protect")
    assert iso.loc["lrp", "min_budget"] == 1 and iso.loc["magnitude", "min_budget"] == 5


def test_a_sweep_runs_each_point_paired_with_one_baseline():
    from xtmr_core.experiment import Experiment

    exp = Experiment("lenet5", "mnist5k")
    table = run_sweep(exp, ["magnitude", "full"], [1, 5], [3e-3], ["int8"], trials=3)
    assert list(table["protect"]) == ["none", "magnitude", "magnitude", "full"] and set(table["trials"]) == {3}
    point = exp.evaluate_point([CampaignSpec("magnitude", 5.0, 3e-3, "int8", trials=3)])
    row = table[(table["protect"] == "magnitude") & (table["budget"] == 5.0)].iloc[0]
    assert row["recovered"] == pytest.approx(point.recovered(1).estimate)
    assert (row["diff_low"], row["diff_high"]) == pytest.approx((point.difference(1).low, point.difference(1).high))
    assert row["trial_accuracies"].split() == [f"{a:.6g}" for a in point.results[1].accuracies]
    assert math.isnan(table.iloc[0]["diff"]) and table.iloc[0]["verdict"] == ""
