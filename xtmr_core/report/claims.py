"""The report's claims as data: each claim is a function of the rows that returns ``Claim`` records.

A ``Claim`` says which claim (``claim``, a key of ``CLAIMS``), where it was checked (``where``), its verdict
(``status``, one of ``STATUSES``) and the numbers the verdict rests on (``numbers``). The document renders
these records and the tests assert on them; no verdict is ever read back from generated text. Every
comparison is paired (the plans of a grid point ran on the same trials) and carries its 95% interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from xtmr_core.plan_registry import PLAN_INFO
from xtmr_core.report.grid import (
    PAPER_LRP_BUDGET,
    PAPER_MAGNITUDE_OVERHEAD,
    PAPER_RECOVERED,
    lrp_name,
)
from xtmr_core.report.view import BETTER, SAME, UNKNOWN, WORSE, ReportView, compare, paired, word
from xtmr_core.stats import Interval

if TYPE_CHECKING:
    import pandas as pd

HOLDS, FAILS, PARTLY, MIXED = "holds", "does not hold", "holds in part", "mixed"
NOT_SHOWN, UNTESTABLE, INCONCLUSIVE = "not shown", "not testable", "inconclusive"
#: Every status a claim can take: the verdicts, and the paired comparisons (``better`` ...).
STATUSES = (HOLDS, FAILS, PARTLY, MIXED, NOT_SHOWN, UNTESTABLE, INCONCLUSIVE, BETTER, WORSE, SAME, UNKNOWN)

#: A loss (clean − unprotected accuracy) below this is too small to share out: "not testable".
MIN_LOSS = 0.02

NONE, FULL, MAG = "no protection", "full TMR", f"magnitude {PAPER_LRP_BUDGET:g}%"

#: The claims, by key, as the document states them.
CLAIMS: dict[str, str] = {
    "recovery": f"LRP {PAPER_LRP_BUDGET:g}% gives >{100 * PAPER_RECOVERED:.0f}% reliability improvement",
    "lrp_vs_magnitude": "LRP selects the weights to protect better than magnitude does (same budget)",
    "lrp_vs_gradient": "LRP selects better than the gradient saliency |∂L/∂w| (same budget)",
    "lrp_vs_taylor": "LRP selects better than the first-order Taylor saliency |w·∂L/∂w| (same budget)",
    "matching_budget": f"magnitude selection needs {PAPER_MAGNITUDE_OVERHEAD:g}–21% overhead to match LRP "
    f"{PAPER_LRP_BUDGET:g}%",
    "overhead": f"the method costs {PAPER_LRP_BUDGET:g}% memory overhead",
    "efficiency": f"LRP {PAPER_LRP_BUDGET:g}% is more efficient than full TMR",
    "damage": f"`damage` at the memory of LRP {PAPER_LRP_BUDGET:g}% beats LRP {PAPER_LRP_BUDGET:g}%",
    "dominance": "ECC, the range guard or bit-position TMR dominate the weight-selecting plans",
    "bit30": "protecting fp32 bit 30 of every weight beats LRP 1%",
    "range_guard": "the range guard (no copies) against LRP 1%",
    "format": "storing the weights in int8 gains more accuracy than LRP 1% in fp32",
}


@dataclass(frozen=True)
class Claim:
    """One verdict on one claim at one place.

    Attributes:
        claim: which claim (a key of ``CLAIMS``).
        where: where it was checked, e.g. ``lenet5 int8 at BER 1e-02``.
        status: the verdict (one of ``STATUSES``).
        numbers: the numbers it rests on (accuracies and shares in [0, 1], overheads in %, counts), by name;
            a few entries name a plan.
    """

    claim: str
    where: str
    status: str
    numbers: Mapping[str, float | str]

    def __post_init__(self) -> None:
        if self.claim not in CLAIMS or self.status not in STATUSES:
            raise ValueError(f"unknown claim {self.claim!r} or status {self.status!r}")


def where(model: str, fmt: str | None = None, ber: float | None = None) -> str:
    """The ``where`` of a claim: ``model [fmt] [at BER b]``."""
    text = " ".join(p for p in (model, fmt) if p)
    return text + (f" at BER {ber:.0e}" if ber is not None else "")


def diff_numbers(prefix: str, d: Interval) -> dict[str, float]:
    """A paired difference as ``prefix``, ``prefix_low``, ``prefix_high`` numbers."""
    return {prefix: d.estimate, f"{prefix}_low": d.low, f"{prefix}_high": d.high}


def row_numbers(prefix: str, row: pd.Series, column: str) -> dict[str, float]:
    """A row's paired column (``diff``, ``recovered``, ...) and its interval as numbers."""
    return {
        prefix: float(row[column]),
        f"{prefix}_low": float(row[f"{column}_low"]),
        f"{prefix}_high": float(row[f"{column}_high"]),
    }


def find(claims: Iterable[Claim], claim: str, at: str | None = None) -> list[Claim]:
    """The records of one claim (at one ``where``)."""
    return [c for c in claims if c.claim == claim and (at is None or c.where == at)]


def _loss(view: ReportView, model: str, fmt: str, ber: float) -> float:
    none = view.get(model, fmt, NONE, ber)
    return math.nan if none is None else view.clean(model, fmt) - float(none["mean_accuracy"])


# --------------------------------------------------------------------------------------------------
# The paper's claims.


def recovery(view: ReportView, model: str, fmt: str, ber: float) -> Claim | None:
    """LRP 1% recovers more than 60% of the fault-induced loss (the paper's headline), by its paired 95% CI."""
    r, none = view.get(model, fmt, lrp_name(), ber), view.get(model, fmt, NONE, ber)
    if r is None or none is None:
        return None
    nums: dict[str, float | str] = {
        "clean": view.clean(model, fmt),
        "none": float(none["mean_accuracy"]),
        "plan": float(r["mean_accuracy"]),
        **row_numbers("relative_gain", r, "relative_gain"),
        **row_numbers("diff", r, "diff"),
    }
    if _loss(view, model, fmt, ber) < MIN_LOSS:
        return Claim("recovery", where(model, fmt, ber), UNTESTABLE, nums)
    nums |= row_numbers("recovered", r, "recovered")
    lo, hi = float(nums["recovered_low"]), float(nums["recovered_high"])
    status = HOLDS if lo >= PAPER_RECOVERED else FAILS if hi < PAPER_RECOVERED else INCONCLUSIVE
    return Claim("recovery", where(model, fmt, ber), status, nums)


def lrp_vs(view: ReportView, model: str, fmt: str, other: str = "magnitude") -> Claim | None:
    """LRP against another scorer at every budget and frontier BER, paired: wins, losses and ties.

    ``holds``: LRP better in at least half the cells and worse in none; ``mixed``: better and worse cells;
    ``does not hold``: only worse cells; ``not shown``: no difference beyond the intervals.
    """
    nums: dict[str, float | str] = {}
    wins = losses = total = 0
    for ber in view.sweep_bers(model, fmt):
        for budget in view.grid.budgets:
            a = view.get(model, fmt, lrp_name(budget), ber)
            b = view.get(model, fmt, f"{other} {budget:g}%", ber)
            if a is None or b is None:
                continue
            d = paired(a, b)
            total += 1
            wins += word(d) == BETTER
            losses += word(d) == WORSE
            nums |= diff_numbers(f"diff {budget:g}% @ {ber:.0e}", d)
    if not total:
        return None
    if wins and losses:
        status = MIXED
    elif wins:
        status = HOLDS if 2 * wins >= total else PARTLY
    else:
        status = FAILS if losses else NOT_SHOWN
    nums |= {"wins": wins, "losses": losses, "ties": total - wins - losses, "cells": total}
    return Claim(f"lrp_vs_{other}", where(model, fmt), status, nums)


def matching_budget(view: ReportView, model: str, fmt: str, ber: float) -> Claim | None:
    """The smallest magnitude budget not worse than LRP 1% (paired, ``stats.verdict``: the rule of
    ``stats.matching_budget``), against the paper's 16% overhead."""
    lrp, none = view.get(model, fmt, lrp_name(), ber), view.get(model, fmt, NONE, ber)
    if lrp is None or none is None:
        return None
    nums: dict[str, float | str] = {"lrp": float(lrp["mean_accuracy"]), "max_budget": max(view.grid.budgets)}
    match = None
    for budget in sorted(view.grid.budgets):
        m = view.get(model, fmt, f"magnitude {budget:g}%", ber)
        if m is not None and compare(m, lrp) in (BETTER, SAME):
            match = (budget, m)
            break
    if match is not None:
        budget, m = match
        nums |= {
            "budget": budget,
            "overhead": float(m["overhead_pct"]),
            "overhead_with_index": float(m["overhead_with_index_pct"]),
            "accuracy": float(m["mean_accuracy"]),
            **diff_numbers("diff", paired(m, lrp)),
        }
    else:
        nums["budget"] = math.nan
    if _loss(view, model, fmt, ber) < MIN_LOSS:
        status = UNTESTABLE
    elif compare(lrp, none) != BETTER:
        status = FAILS  # LRP 1% itself gains nothing measurable: there is no advantage to match
        nums |= diff_numbers("lrp_gain", paired(lrp, none))
    elif match is None:
        status = HOLDS
    else:
        status = HOLDS if float(nums["overhead"]) >= PAPER_MAGNITUDE_OVERHEAD else FAILS
    return Claim("matching_budget", where(model, fmt, ber), status, nums)


def overhead(view: ReportView, fmt: str) -> Claim | None:
    """Triplicating 1% of the weights stores two extra copies: 2% of the memory, more with the index."""
    rows = view.camp[(view.camp["format"] == fmt) & (view.camp["name"] == lrp_name())]
    if rows.empty:
        return None
    r = rows.iloc[0]
    status = FAILS if r["overhead_pct"] > PAPER_LRP_BUDGET + 1e-9 else HOLDS
    nums = {"copies": float(r["overhead_pct"]), "with_index": float(r["overhead_with_index_pct"])}
    return Claim("overhead", fmt, status, nums)


def efficiency(view: ReportView, model: str, fmt: str, ber: float) -> Claim | None:
    """LRP 1% recovers more per % of extra memory than full TMR (and really gains: better than none)."""
    r, f, none = (view.get(model, fmt, n, ber) for n in (lrp_name(), FULL, NONE))
    if r is None or f is None or none is None:
        return None
    at = where(model, fmt, ber)
    if _loss(view, model, fmt, ber) < MIN_LOSS:
        return Claim("efficiency", at, UNTESTABLE, {"loss": _loss(view, model, fmt, ber)})
    eff_l = r["recovered"] / r["overhead_with_index_pct"] if r["overhead_with_index_pct"] > 0 else math.nan
    eff_f = f["recovered"] / f["overhead_with_index_pct"]
    real = compare(r, none) == BETTER  # an efficiency of a gain that is not there is no efficiency
    nums: dict[str, float | str] = {
        "recovered": float(r["recovered"]),
        "overhead": float(r["overhead_with_index_pct"]),
        "full_recovered": float(f["recovered"]),
        "full_overhead": float(f["overhead_with_index_pct"]),
        "per_pct": float(eff_l),
        "full_per_pct": float(eff_f),
        "vs_none": compare(r, none),
        "vs_full": compare(r, f),
    }
    return Claim("efficiency", at, HOLDS if eff_l > eff_f and real else FAILS, nums)


# --------------------------------------------------------------------------------------------------
# Plans the paper does not have, and why things come out as they do.


def damage_vs_lrp(view: ReportView, model: str, fmt: str, ber: float) -> Claim | None:
    """``damage`` at LRP 1%'s extra copies against LRP 1%, paired, and against the cheapest LRP budget that costs at
    least as much memory counting the index too (``iso_total_*`` numbers; the status is the equal-copies one).
    ``None``: no such damage plan ran."""
    lrp = view.get(model, fmt, lrp_name(), ber)
    sel = view.select(model, fmt, ber)
    dam = sel[sel["protect"] == "damage"]
    if lrp is None or dam.empty:
        return None
    # the damage plan whose extra copies are closest to LRP 1%'s (they are sized to match)
    # (the first closest row, as idxmin finds it: by position, which a row selection keeps unique)
    pick = dam.iloc[int(np.nanargmin((dam["overhead_pct"] - float(lrp["overhead_pct"])).abs().to_numpy()))]
    d = paired(pick, lrp)
    status = {BETTER: HOLDS, WORSE: FAILS}.get(word(d), NOT_SHOWN)
    nums: dict[str, float | str] = {
        "plan": str(pick["name"]),
        "damage": float(pick["mean_accuracy"]),
        "lrp": float(lrp["mean_accuracy"]),
        "damage_overhead": float(pick["overhead_pct"]),
        "lrp_overhead": float(lrp["overhead_pct"]),
        "damage_total": float(pick["overhead_with_index_pct"]),
        "lrp_total": float(lrp["overhead_with_index_pct"]),
        **diff_numbers("diff", d),
    }
    # equal total memory (copies + index): damage's index (which weight, which bits) costs more than LRP's, so
    # it also meets the cheapest LRP budget that costs at least as much memory in all
    rich = sel[(sel["protect"] == "lrp") & ~sel["name"].astype(str).str.contains(r"\+range", regex=True)]
    rich = rich[rich["overhead_with_index_pct"] >= float(pick["overhead_with_index_pct"]) - 1e-9]
    if not rich.empty:
        iso = rich.iloc[int(np.nanargmin(rich["overhead_with_index_pct"].to_numpy()))]
        di = paired(pick, iso)
        nums |= {
            "iso_total_plan": str(iso["name"]),
            "iso_total_lrp": float(iso["mean_accuracy"]),
            "iso_total_overhead": float(iso["overhead_with_index_pct"]),
            "iso_total_word": word(di),
            **diff_numbers("iso_total_diff", di),
        }
    return Claim("damage", where(model, fmt, ber), status, nums)


def weight_plans() -> tuple[str, ...]:
    """The plans that spend a budget of memory on chosen weights or (weight, bit) pairs (``PlanInfo.uses_budget``,
    read live): what ECC, the guard and bit TMR face."""
    return tuple(name for name, info in PLAN_INFO.items() if info.uses_budget)


def _series(name: str) -> str:
    """A plan name without its budget (``lrp 5%`` -> ``lrp``; ``lrp+range 1%`` -> ``lrp+range``)."""
    head, _, tail = str(name).rpartition(" ")
    return head if head and tail.endswith("%") else ""


def dominance(view: ReportView, model: str, fmt: str, ber: float, name: str) -> Claim | None:
    """Whether plan ``name`` dominates the weight-selecting plans: it is significantly better (paired) than
    every one of them that costs as much extra memory (copies and index) or more.

    ``holds``: better than all of them; ``holds in part``: better than some, and no plan costing at most as
    much beats it; ``does not hold``: a cheaper-or-equal plan is significantly better (named in ``numbers``).
    """
    p = view.get(model, fmt, name, ber)
    if p is None:
        return None
    sel = view.select(model, fmt, ber)
    cost = float(p["overhead_with_index_pct"])
    rivals = sel[sel["name"].map(_series).isin(weight_plans()) & (sel["overhead_with_index_pct"] >= cost - 1e-9)]
    beaten = [r["name"] for _, r in rivals.iterrows() if compare(p, r) == BETTER]
    cheaper = sel[(sel["overhead_with_index_pct"] <= cost + 1e-9) & (sel["name"] != name)]
    better = [r for _, r in cheaper.iterrows() if compare(r, p) == BETTER]
    nums: dict[str, float | str] = {
        "accuracy": float(p["mean_accuracy"]),
        "overhead": float(p["overhead_pct"]),
        "overhead_with_index": cost,
        "beaten": len(beaten),
        "rivals": len(rivals),
    }
    if better:
        best = max(better, key=lambda r: float(r["mean_accuracy"]))
        nums |= {"beaten_by": str(best["name"]), **diff_numbers("diff_to_beater", paired(p, best))}
        status = FAILS
    elif rivals.empty:
        status = UNTESTABLE
    else:
        status = HOLDS if len(beaten) == len(rivals) else PARTLY if beaten else NOT_SHOWN
    return Claim("dominance", where(model, fmt, ber) + f": {name}", status, nums)


def dominance_plans(view: ReportView, fmt: str) -> list[str]:
    """The plans checked for dominance in one format: ECC, the range guard, the bit plans (those that ran)."""
    names = ["ecc", "range guard", "bit 30", "sign+exponent" if fmt != "int8" else "sign+top bit"]
    return [n for n in names if (view.camp["name"] == n).any()]


def _versus(claim: str, at: str, a: object, b: object, **extra: float | str) -> Claim | None:
    if a is None or b is None:
        return None
    d = paired(a, b)  # type: ignore[arg-type]
    w = word(d)
    nums = {"a": float(a["mean_accuracy"]), "b": float(b["mean_accuracy"]), **diff_numbers("diff", d), **extra}  # type: ignore[index]
    return Claim(claim, at, w if w != "n/a" else UNTESTABLE, nums)


def bit30(view: ReportView, model: str, ber: float) -> Claim | None:
    """fp32 bit 30 of every weight against LRP 1%, with what one bit-30 flip does (single-flip scan)."""
    b, r = view.get(model, "fp32", "bit 30", ber), view.get(model, "fp32", lrp_name(), ber)
    flips = view.flips[(view.flips["model"] == model) & (view.flips["format"] == "fp32")]
    extra: dict[str, float | str] = {}
    if b is not None and r is not None:
        extra = {"a_overhead": float(b["overhead_pct"]), "b_overhead": float(r["overhead_with_index_pct"])}
    one = flips[flips["bit"].astype(float) == 30]
    if not one.empty:
        n = view.n_weights(model, "fp32")
        extra |= {
            "one_flip_mean": float(one["mean_accuracy"].iloc[0]),
            "one_flip_worst": float(one["min_accuracy"].iloc[0]),
            "clean": float(one["clean_accuracy"].iloc[0]),
            "exposed_flips": n * (1 - PAPER_LRP_BUDGET / 100) * ber,
        }
    return _versus("bit30", where(model, "fp32", ber), b, r, **extra)


def range_vs_lrp(view: ReportView, model: str, fmt: str, ber: float) -> Claim | None:
    """The range guard (no copies) against LRP 1%, paired."""
    g, r = view.get(model, fmt, "range guard", ber), view.get(model, fmt, lrp_name(), ber)
    extra = {"a_overhead": float(g["overhead_with_index_pct"])} if g is not None else {}
    return _versus("range_guard", where(model, fmt, ber), g, r, **extra)


def format_vs_lrp(view: ReportView, model: str, ber: float) -> Claim | None:
    """Unprotected int8 against unprotected fp32, and what LRP 1% gains in fp32: which matters more.

    The two formats run separate trials (different stored words), so this comparison is not paired;
    the status compares the two gains' point estimates (``holds``: the format gains more).
    """
    a, b = view.get(model, "fp32", NONE, ber), view.get(model, "int8", NONE, ber)
    r = view.get(model, "fp32", lrp_name(), ber)
    if a is None or b is None or r is None:
        return None
    gain_fmt = float(b["mean_accuracy"] - a["mean_accuracy"])
    d = paired(r, a)
    nums = {
        "fp32": float(a["mean_accuracy"]),
        "int8": float(b["mean_accuracy"]),
        "format_gain": gain_fmt,
        **diff_numbers("lrp_gain", d),
    }
    return Claim("format", where(model, None, ber), HOLDS if gain_fmt > d.estimate else FAILS, nums)


def all_claims(view: ReportView) -> list[Claim]:
    """Every claim record of a report, in the order the document states them."""
    g = view.grid
    out: list[Claim | None] = []
    pairs = view.pairs()
    out += [recovery(view, m, f, b) for m, f in pairs for b in view.claim_bers(m, f)]
    for other in ("magnitude", "gradient", "taylor"):
        if other in g.scorers:
            out += [lrp_vs(view, m, f, other) for m, f in pairs]
    out += [matching_budget(view, m, f, b) for m, f in pairs for b in view.claim_bers(m, f)]
    out += [overhead(view, f) for f in g.formats]
    out += [efficiency(view, m, f, g.paper_ber) for m, f in pairs]
    out += [damage_vs_lrp(view, m, f, b) for m, f in pairs for b in view.claim_bers(m, f)]
    out += [
        dominance(view, m, f, b, n) for m, f in pairs for b in view.claim_bers(m, f) for n in dominance_plans(view, f)
    ]
    out += [bit30(view, m, g.paper_ber) for m in g.models if "fp32" in g.formats]
    out += [range_vs_lrp(view, m, f, g.paper_ber) for m, f in pairs]
    if {"fp32", "int8"} <= set(g.formats):
        out += [format_vs_lrp(view, m, g.paper_ber) for m in g.models]
    return [c for c in out if c is not None]
