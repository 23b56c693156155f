"""Tests for xtmr_core.report.claims and .view: the claim rules on hand-made paired rows whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from xtmr_core.report.claims import (
    CLAIMS,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    MIXED,
    NOT_SHOWN,
    UNTESTABLE,
    Claim,
    all_claims,
    damage_vs_lrp,
    dominance,
    efficiency,
    find,
    lrp_vs,
    matching_budget,
    overhead,
    recovery,
)
from xtmr_core.report.document import render_claim, render_claims
from xtmr_core.report.grid import CSV_COLUMNS, Grid
from xtmr_core.report.view import ReportView, compare, paired
from xtmr_core.stats import paired_interval, ratio_interval

TINY = Grid(
    models=("m",),
    formats=("fp32",),
    bers=(1e-4,),
    scorers=("lrp", "magnitude"),
    budgets=(1.0, 5.0),
    trials=10,
    sensitivity_weights=1,
    budget_bers=1,
)
N = 10
# Trial-to-trial noise shared by every plan of the point: paired differences cancel it.
NOISE = np.random.default_rng(0).normal(0, 0.02, N)
AT = "m fp32 at BER 1e-04"


def _row(name: str, protect: str, acc: float, budget: float = 0.0, overhead: float = 0.0, index: float = 0.0):
    trials = np.clip(acc + NOISE, 0, 1)
    return {
        "kind": "campaign",
        "name": name,
        "model": "m",
        "dataset": "d",
        "format": "fp32",
        "ber": 1e-4,
        "protect": protect,
        "budget": budget,
        "trials": N,
        "clean_accuracy": 0.9,
        "mean_accuracy": float(trials.mean()),
        "ci_low": float(trials.mean() - 0.01),
        "ci_high": float(trials.mean() + 0.01),
        "ci_half_width": 0.01,
        "overhead_pct": overhead,
        "overhead_with_index_pct": overhead + index,
        "trial_accuracies": " ".join(f"{a:.6g}" for a in trials),
    }


def _with_paired(table: pd.DataFrame) -> pd.DataFrame:
    """The paired columns a run writes (``sweep.PAIRED_COLUMNS``), from ``stats`` over the rows' trials."""
    t = lambda r: np.array(r["trial_accuracies"].split(), float)  # noqa: E731
    none = t(table[table["protect"] == "none"].iloc[0])
    for i, r in table.iterrows():
        for name, iv in (
            ("diff", paired_interval(t(r), none)),
            ("recovered", ratio_interval("recovered", t(r), none, 0.9)),
            ("relative_gain", ratio_interval("relative_gain", t(r), none)),
        ):
            table.loc[i, [name, f"{name}_low", f"{name}_high"]] = [iv.estimate, iv.low, iv.high]
    return table


def _view(lrp: float, mag1: float, mag5: float, none: float = 0.5, extra: tuple = ()) -> ReportView:
    rows = [
        _row("no protection", "none", none),
        _row("full TMR", "full", 0.9, overhead=200.0),
        _row("lrp 1%", "lrp", lrp, 1.0, overhead=2.0, index=1.0),
        _row("lrp 5%", "lrp", lrp, 5.0, overhead=10.0, index=3.1),
        _row("magnitude 1%", "magnitude", mag1, 1.0, overhead=2.0, index=1.0),
        _row("magnitude 5%", "magnitude", mag5, 5.0, overhead=10.0, index=3.1),
        *extra,
    ]
    table = _with_paired(pd.DataFrame(rows))
    info = {"models": {"m": {"weights": 1000}}, "budget_bers": {("m", "fp32"): [1e-4]}}
    return ReportView(table.reindex(columns=CSV_COLUMNS), TINY, info)


def test_recovery_holds_only_when_the_whole_interval_clears_sixty_percent():
    good = recovery(_view(lrp=0.8, mag1=0.6, mag5=0.85), "m", "fp32", 1e-4)  # recovers 75% of the loss
    bad = recovery(_view(lrp=0.6, mag1=0.6, mag5=0.85), "m", "fp32", 1e-4)  # recovers 25%
    assert good.status == HOLDS and good.numbers["recovered"] == pytest.approx(0.75, abs=0.02)
    assert good.numbers["recovered_low"] <= good.numbers["recovered"] <= good.numbers["recovered_high"]
    assert bad.status == FAILS and bad.numbers["recovered"] == pytest.approx(0.25, abs=0.02)
    assert bad.numbers["relative_gain"] == pytest.approx(0.2, abs=0.03)  # 0.5 -> 0.6
    noisy = _view(lrp=0.74, mag1=0.6, mag5=0.85, extra=())
    noisy.camp.loc[noisy.camp["name"] == "lrp 1%", "trial_accuracies"] = " ".join(
        f"{v:.6g}" for v in 0.5 + NOISE + np.tile([0.0, 0.5], N // 2)
    )  # half the trials recover nothing, half all of it: 50% with a wide interval
    assert recovery(noisy, "m", "fp32", 1e-4).status in (INCONCLUSIVE, FAILS)


def test_no_loss_means_not_testable_rather_than_a_verdict():
    c = recovery(_view(lrp=0.89, mag1=0.89, mag5=0.89, none=0.89), "m", "fp32", 1e-4)
    assert c.status == UNTESTABLE and c.where == AT and "recovered" not in c.numbers


def test_paired_comparison_sees_a_small_gain_that_separate_intervals_miss():
    a = pd.Series({"trial_accuracies": "0.52 0.91 0.61 0.83"})
    b = pd.Series({"trial_accuracies": "0.51 0.90 0.60 0.82"})
    assert compare(a, b) == "better" and compare(b, a) == "worse"  # +1 point every trial
    assert paired(a, b).estimate == pytest.approx(0.01)
    b["trial_accuracies"] = "0.53 0.90 0.62 0.82"
    assert compare(a, b) == "indistinguishable"
    assert compare(a, None) == "n/a"


def test_lrp_against_magnitude_counts_paired_wins_and_losses():
    c = lrp_vs(_view(lrp=0.8, mag1=0.6, mag5=0.85), "m", "fp32", "magnitude")
    assert c.status == MIXED and (c.numbers["wins"], c.numbers["losses"], c.numbers["cells"]) == (1, 1, 2)
    assert c.numbers["diff 1% @ 1e-04"] == pytest.approx(0.2, abs=1e-6)
    assert lrp_vs(_view(lrp=0.8, mag1=0.8, mag5=0.8), "m", "fp32").status == NOT_SHOWN
    assert lrp_vs(_view(lrp=0.8, mag1=0.7, mag5=0.7), "m", "fp32").status == HOLDS


def test_matching_budget_is_the_smallest_budget_reaching_lrp():
    c = matching_budget(_view(lrp=0.8, mag1=0.6, mag5=0.85), "m", "fp32", 1e-4)
    assert c.status == FAILS and c.numbers["budget"] == 5.0 and c.numbers["overhead"] == 10.0  # < the paper's 16%
    never = matching_budget(_view(lrp=0.8, mag1=0.6, mag5=0.7), "m", "fp32", 1e-4)
    assert never.status == HOLDS and math.isnan(never.numbers["budget"])


def test_overhead_claim_reports_copies_and_index():
    c = overhead(_view(lrp=0.8, mag1=0.6, mag5=0.85), "fp32")
    assert c.status == FAILS and c.numbers == {"copies": 2.0, "with_index": 3.0}


def test_efficiency_against_full_tmr_needs_a_real_gain():
    holds = efficiency(_view(lrp=0.8, mag1=0.6, mag5=0.85), "m", "fp32", 1e-4)
    assert holds.status == HOLDS and holds.numbers["vs_full"] == "worse"
    flat = efficiency(_view(lrp=0.5, mag1=0.5, mag5=0.5), "m", "fp32", 1e-4)
    # plans that never differed in any trial: no interval, and no efficiency either
    assert flat.status == FAILS and flat.numbers["vs_none"] == "not enough trials"


def test_damage_is_compared_at_lrps_memory_and_absent_without_rows():
    assert damage_vs_lrp(_view(lrp=0.8, mag1=0.6, mag5=0.85), "m", "fp32", 1e-4) is None
    dam = (_row("damage 2%", "damage", 0.85, 2.0, overhead=2.0, index=1.0), _row("damage 9%", "damage", 0.5, 9.0, 9.0))
    c = damage_vs_lrp(_view(lrp=0.8, mag1=0.6, mag5=0.85, extra=dam), "m", "fp32", 1e-4)
    assert c.status == HOLDS and c.numbers["plan"] == "damage 2%" and c.numbers["diff"] == pytest.approx(0.05)
    # equal copies (2%) but damage's index costs more: with index 2+3.5 = 5.5%, it meets lrp 5% (13.1%), the
    # cheapest LRP budget costing at least as much in all, and is compared with it too
    dear = (_row("damage 2%", "damage", 0.85, 2.0, overhead=2.0, index=3.5),)
    c = damage_vs_lrp(_view(lrp=0.8, mag1=0.6, mag5=0.85, extra=dear), "m", "fp32", 1e-4)
    assert c.numbers["damage_total"] == pytest.approx(5.5) and c.numbers["lrp_total"] == pytest.approx(3.0)
    assert c.numbers["iso_total_plan"] == "lrp 5%" and c.numbers["iso_total_overhead"] == pytest.approx(13.1)
    assert c.numbers["iso_total_word"] == "better" and c.numbers["iso_total_diff"] == pytest.approx(0.05)
    text = render_claim(c)
    assert "at equal copies" in text and "at equal total memory, against lrp 5%" in text


def test_dominance_names_the_cheaper_plan_that_beats_it():
    guard = (_row("range guard", "range", 0.87, overhead=0.0, index=0.01),)
    c = dominance(_view(lrp=0.8, mag1=0.6, mag5=0.85, extra=guard), "m", "fp32", 1e-4, "range guard")
    assert c.status == HOLDS and c.numbers["beaten"] == c.numbers["rivals"] == 4
    weak = (_row("range guard", "range", 0.55, overhead=0.0, index=0.01), _row("ecc", "ecc", 0.5, overhead=12.5))
    c = dominance(_view(lrp=0.8, mag1=0.6, mag5=0.85, extra=weak), "m", "fp32", 1e-4, "ecc")
    assert c.status == FAILS and c.numbers["beaten_by"] == "lrp 1%"  # the best of the cheaper plans that beat it


def test_every_claim_is_a_known_claim_and_renders():
    dam = (_row("damage 2%", "damage", 0.85, 2.0, overhead=2.0, index=1.0),)
    claims = all_claims(_view(lrp=0.8, mag1=0.6, mag5=0.85, extra=dam))
    assert {c.claim for c in claims} >= {"recovery", "lrp_vs_magnitude", "matching_budget", "damage", "efficiency"}
    text = "\n".join(render_claims(claims))
    assert text.count("\n* ") + text.startswith("* ") == len(claims)
    assert all(CLAIMS[c.claim] in text for c in claims)
    assert find(claims, "recovery", AT)[0].status == HOLDS
    with pytest.raises(ValueError):
        Claim("recovery", AT, "probably", {})
