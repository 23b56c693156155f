"""The Sweeps page's rules: recovered shares blanked where the loss is noise, thin points, no protection needed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from xtmr_core.sweep_view import mask_recovered, thin_points, unprotected_meets


def _table() -> pd.DataFrame:
    rows = []
    # BER 1e-5: loss 0.001 inside the none accuracy's noise 0.004; BER 1e-3: loss 0.2, noise 0.01;
    # BER 1e-2: one trial, so no interval (NaN): blanked
    for ber, mean, high, trials in ((1e-5, 0.989, 0.993, 10), (1e-3, 0.79, 0.80, 10), (1e-2, 0.5, math.nan, 1)):
        rows.append(
            dict(
                protect="none",
                format="fp32",
                ber=ber,
                clean_accuracy=0.99,
                mean_accuracy=mean,
                ci_high=high,
                trials=trials,
                recovered=math.nan,
                recovered_low=math.nan,
                recovered_high=math.nan,
            )
        )
        rows.append(
            dict(
                protect="lrp",
                format="fp32",
                ber=ber,
                clean_accuracy=0.99,
                mean_accuracy=0.98,
                ci_high=0.985,
                trials=trials,
                recovered=0.5,
                recovered_low=0.4,
                recovered_high=0.6,
            )
        )
    rows.append(
        dict(
            protect="lrp",
            format="int8",
            ber=1e-3,
            clean_accuracy=0.99,
            mean_accuracy=0.98,
            ci_high=0.985,
            trials=10,
            recovered=0.5,
            recovered_low=0.4,
            recovered_high=0.6,
        )
    )  # no none row: blanked
    return pd.DataFrame(rows)


def _slow_mask(table: pd.DataFrame) -> list[bool]:
    """Row by row: is the unprotected loss at this row's format and BER larger than the none row's CI half-width?"""
    keep = []
    for _, row in table.iterrows():
        base = [
            r
            for _, r in table.iterrows()
            if r["protect"] == "none" and r["format"] == row["format"] and r["ber"] == row["ber"]
        ]
        if not base or math.isnan(base[0]["ci_high"]):
            keep.append(False)
            continue
        b = base[0]
        keep.append(b["clean_accuracy"] - b["mean_accuracy"] > b["ci_high"] - b["mean_accuracy"])
    return keep


def test_recovered_is_blanked_exactly_where_the_loss_is_noise():
    table = _table()
    shown = mask_recovered(table)
    keep = _slow_mask(table)
    assert keep == [False, False, True, True, False, False, False]
    for column in ("recovered", "recovered_low", "recovered_high"):
        np.testing.assert_array_equal(shown[column].notna().to_numpy(), np.array(keep) & table[column].notna())
    assert table["recovered"].notna().sum() == 4  # the input is left as it was
    pd.testing.assert_frame_equal(
        shown.drop(columns=["recovered", "recovered_low", "recovered_high"]),
        table.drop(columns=["recovered", "recovered_low", "recovered_high"]),
    )


def test_thin_points_count_the_points_under_the_minimum():
    thin = thin_points(_table())
    assert thin is not None and (thin.count, thin.total, thin.fewest, thin.minimum) == (2, 7, 1, 10)
    assert thin_points(_table(), minimum=1) is None


def test_no_protection_is_needed_only_where_the_unprotected_accuracy_meets_the_target():
    at_one_ber = _table()[lambda t: t["ber"] == 1e-5]
    assert unprotected_meets(at_one_ber, 0.98) == 0.989
    assert unprotected_meets(at_one_ber, 0.989) == 0.989  # at the target counts
    assert unprotected_meets(at_one_ber, 0.99) is None
    assert unprotected_meets(at_one_ber[at_one_ber["protect"] != "none"], 0.5) is None
