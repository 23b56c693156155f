"""What the Sweeps page decides before it draws a sweep's table: which recovered shares mean something, which
points are too thin to conclude from, and whether a target needs protection at all.

Pure pandas over the table of ``sweep.run_sweep`` (columns ``sweep.COLUMNS`` + ``sweep.PAIRED_COLUMNS``); no
Streamlit here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

__all__ = ["MIN_TRIALS", "ThinPoints", "mask_recovered", "thin_points", "unprotected_meets"]

#: Fewer trials than this per point: a point too thin to conclude from.
MIN_TRIALS = 10
#: The columns ``mask_recovered`` blanks together.
RECOVERED_COLUMNS = ("recovered", "recovered_low", "recovered_high")


def mask_recovered(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with ``recovered`` (and its interval) blanked where the unprotected loss (clean − none)
    at that format and BER is no larger than the unprotected accuracy's own noise (its 95% CI half-width;
    unknown, so blanked, with fewer than two trials): a share of a loss the trials cannot tell from zero means
    nothing. Rows of a (format, BER) without a ``none`` row are blanked too."""
    t = table.copy()
    none = t[t["protect"] == "none"].set_index(["format", "ber"])
    loss = none["clean_accuracy"] - none["mean_accuracy"]
    noise = (none["ci_high"] - none["mean_accuracy"]).fillna(math.inf)
    real = (loss > noise).to_dict()
    keep = pd.Series([bool(real.get((f, b), False)) for f, b in zip(t["format"], t["ber"])], index=t.index)
    for column in RECOVERED_COLUMNS:
        if column in t:
            t[column] = t[column].where(keep)
    return t


@dataclass(frozen=True)
class ThinPoints:
    """How many of a table's points rest on fewer than ``minimum`` trials, and the fewest trials of any of them."""

    count: int
    total: int
    fewest: int
    minimum: int


def thin_points(table: pd.DataFrame, minimum: int = MIN_TRIALS) -> ThinPoints | None:
    """The points of ``table`` with fewer than ``minimum`` trials (``None``: every point has enough)."""
    thin = table[table["trials"] < minimum]
    if not len(thin):
        return None
    return ThinPoints(len(thin), len(table), int(thin["trials"].min()), minimum)


def unprotected_meets(table: pd.DataFrame, target: float) -> float | None:
    """The unprotected accuracy when it is already at or above ``target`` (nothing needs protecting: every scorer
    "reaches" the target at its smallest budget), else ``None`` (also without a ``none`` row)."""
    none = table[table["protect"] == "none"]
    if not len(none):
        return None
    accuracy = float(none["mean_accuracy"].iloc[0])
    return accuracy if accuracy >= target else None
