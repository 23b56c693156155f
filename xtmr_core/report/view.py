"""The rows of one report and the lookups and paired comparisons every claim, table and figure uses.

Every plan of a grid point ran on the same trials, so two plans of a point compare trial by trial: the
difference of their means is the mean of per-trial differences, with the interval of the paired differences
(``stats.paired_interval``), far narrower than two separate intervals suggest; ``stats.verdict`` says which
is better. Differences to the unprotected baseline and recovered shares come with the run (CSV columns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from xtmr_core.report.grid import Grid
from xtmr_core.stats import Interval, paired_interval, verdict
from xtmr_core.strata import parse_text
from xtmr_core.vocabulary import VERDICTS

BETTER, WORSE, SAME, UNKNOWN = "better", "worse", "indistinguishable", "not enough trials"
#: ``stats.verdict`` (the one paired-verdict rule) in the words of a comparison of two plans: a difference
#: within the practical threshold is indistinguishable too; a point with no difference to compare, n/a.
_WORDS = dict(zip(VERDICTS, (BETTER, WORSE, SAME, SAME, UNKNOWN, SAME)))


def trial_accuracies(row: pd.Series) -> np.ndarray:
    """The per-trial accuracies of a campaign row."""
    text = row.get("trial_accuracies")
    return np.array(text.split(), dtype=float) if isinstance(text, str) and text.strip() else np.array([])


def paired(a: pd.Series | None, b: pd.Series | None) -> Interval:
    """``a - b`` trial by trial (rows of the same grid point) with its interval (``stats.paired_interval`` over
    trials, stratified where the point was: ``strata``/``trial_strata`` columns; the per-image data is not in
    the CSV); all ``nan`` when a row is missing."""
    if a is None or b is None:
        return Interval(math.nan, math.nan, math.nan)
    plan, base = list(trial_accuracies(a)), list(trial_accuracies(b))
    parsed = parse_text(a.get("strata", ""))
    labels = a.get("trial_strata")
    if parsed is not None and isinstance(labels, str) and labels.strip():
        strata = [int(s) for s in labels.split()]
        return paired_interval(plan, base, strata=strata, weights=parsed[0], rare=parsed[1])
    return paired_interval(plan, base)


def word(d: Interval) -> str:
    """``stats.verdict`` of a paired difference as ``better``/``worse``/``indistinguishable`` (``n/a``: none)."""
    return "n/a" if not math.isfinite(d.estimate) else _WORDS[verdict(d)]


def compare(a: pd.Series | None, b: pd.Series | None) -> str:
    """``better``, ``worse`` or ``indistinguishable`` (``stats.verdict`` of ``paired(a, b)``); ``n/a``: missing."""
    return word(paired(a, b))


@dataclass
class ReportView:
    """The rows of one report, with lookups by (model, format, plan name, BER)."""

    table: pd.DataFrame
    grid: Grid
    info: dict[str, Any]
    camp: pd.DataFrame = field(init=False)
    flips: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.camp = self.table[self.table["kind"] == "campaign"]
        self.flips = self.table[self.table["kind"] == "bit_flip"]

    def select(self, model: str, fmt: str, ber: float | None = None) -> pd.DataFrame:
        """The campaign rows of one model and format (at one BER)."""
        c = self.camp
        rows = c[(c["model"] == model) & (c["format"] == fmt)]
        return rows if ber is None else rows[np.isclose(rows["ber"].astype(float), ber, rtol=1e-9, atol=0)]

    def get(self, model: str, fmt: str, name: str, ber: float) -> pd.Series | None:
        """One plan's row at one point (``None``: not run)."""
        rows = self.select(model, fmt, ber)
        rows = rows[rows["name"] == name]
        return None if rows.empty else rows.iloc[0]

    def acc(self, model: str, fmt: str, name: str, ber: float) -> float:
        """One plan's mean accuracy at one point (``nan``: not run)."""
        r = self.get(model, fmt, name, ber)
        return math.nan if r is None else float(r["mean_accuracy"])

    def pairs(self) -> list[tuple[str, str]]:
        """The (model, format) pairs that have rows, in grid order."""
        return [(m, f) for m in self.grid.models for f in self.grid.formats if not self.select(m, f).empty]

    def clean(self, model: str, fmt: str) -> float:
        """The clean accuracy of one model stored in one format."""
        r = self.select(model, fmt)
        return float(r["clean_accuracy"].iloc[0]) if not r.empty else math.nan

    def n_weights(self, model: str, fmt: str) -> float:
        """The number of faultable weights, read from the CSV (full TMR protects every one; ``nan``: not run)."""
        r = self.select(model, fmt)
        full = r[r["protect"] == "full"]
        return float(full["protected_weights"].iloc[0]) if not full.empty else math.nan

    def sweep_bers(self, model: str, fmt: str) -> list[float]:
        """The BERs of the budget sweep and frontier: the paper's first."""
        return list(self.info["budget_bers"].get((model, fmt), []))

    def claim_bers(self, model: str, fmt: str) -> list[float]:
        """The BERs a claim is checked at: the paper's first, then the budget sweep's others."""
        return list(dict.fromkeys([self.grid.paper_ber, *self.sweep_bers(model, fmt)]))

    def high_ber(self, model: str, fmt: str) -> float | None:
        """The frontier's second BER (``None``: only the paper's)."""
        others = [b for b in self.sweep_bers(model, fmt) if b != self.grid.paper_ber]
        return others[0] if others else None
