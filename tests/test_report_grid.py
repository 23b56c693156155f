"""The report's grid: trial counts sized by a time budget count stored trials as free (a second run adds
trials), and a report rerun with nothing changed reads every trial and writes the same CSV."""

from __future__ import annotations

import pandas as pd
import pytest

from xtmr_core.report.grid import RESERVE_S, SAFETY, Grid, point_plans, size_grid

GRID = Grid(
    models=("lenet5",),
    formats=("fp32",),
    bers=(1e-4, 1e-3),
    scorers=("lrp",),
    budgets=(1.0,),
    trials=40,
    sensitivity_weights=1,
    budget_bers=1,
    minutes=10.0,
    min_trials=4,
    accumulate=True,
)
FRONTS = {("lenet5", "fp32"): [1e-4]}
#: 0.01 s per unprotected trial at each BER
PROBE = pd.DataFrame([{"model": "lenet5", "format": "fp32", "ber": b, "seconds": 0.02, "trials": 2} for b in GRID.bers])


def cost(n_front: int, n_sweep: int, have_front: int = 0, have_sweep: int = 0) -> float:
    """The obvious cost of the trials not yet stored, plan by plan."""
    front = len(point_plans(GRID, "fp32", True)) * 0.01 * max(0, n_front - have_front)
    sweep = len(point_plans(GRID, "fp32", False)) * 0.01 * max(0, n_sweep - have_sweep)
    return SAFETY * (front + sweep)


@pytest.mark.parametrize("seconds", [RESERVE_S + 5, RESERVE_S + 12, RESERVE_S + 1000])
def test_the_largest_count_that_fits_is_chosen(seconds):
    g = size_grid(GRID, PROBE, FRONTS, seconds)
    n = g.trials
    assert g.sweep_trials == max(GRID.min_trials, n // 2)
    assert n == GRID.trials or cost(n + 1, max(GRID.min_trials, (n + 1) // 2)) > seconds - RESERVE_S
    assert n == GRID.min_trials or cost(n, g.sweep_trials) <= seconds - RESERVE_S


def test_a_second_run_with_the_same_budget_adds_trials_to_the_stored_ones():
    seconds = RESERVE_S + 8
    first = size_grid(GRID, PROBE, FRONTS, seconds)
    stored = {("lenet5", "fp32", 1e-4): first.trials, ("lenet5", "fp32", 1e-3): first.sweep_trials}
    second = size_grid(GRID, PROBE, FRONTS, seconds, stored)
    assert second.trials > first.trials  # the stored trials are free: the budget buys new ones
    new = cost(second.trials, second.sweep_trials, first.trials, first.sweep_trials)
    assert 0 < new <= seconds - RESERVE_S
    # everything stored up to the cap: nothing left to buy, the counts stay at what is stored + trials
    full = {k: 10_000 for k in stored}
    assert size_grid(GRID, PROBE, FRONTS, seconds, full).trials == 10_000 + GRID.trials
    assert size_grid(GRID, PROBE, FRONTS, seconds, {}).trials == first.trials


def test_without_a_budget_the_grid_is_kept():
    g = Grid(**{**GRID.__dict__, "minutes": 0.0})
    assert size_grid(g, PROBE, FRONTS, 5.0, {("lenet5", "fp32", 1e-4): 99}) is g


@pytest.mark.slow
def test_a_report_rerun_reads_every_trial_and_writes_the_same_csv(tmp_path, monkeypatch):
    from xtmr_core.report import CSV_NAME, REPORT_NAME, run_report

    monkeypatch.setenv("XTMR_STORE", str(tmp_path / "s.sqlite"))
    small = Grid(("lenet5",), ("int8",), (1e-4, 1e-2), ("lrp",), (1.0,), trials=3, sensitivity_weights=1, budget_bers=1)
    run_report(tmp_path / "a", grid=small, progress=False)
    run_report(tmp_path / "b", grid=small, progress=False)
    assert (tmp_path / "a" / CSV_NAME).read_bytes() == (tmp_path / "b" / CSV_NAME).read_bytes()
    text = (tmp_path / "b" / REPORT_NAME).read_text()
    assert "Results store: 0 trials read" not in text and ", 0 run (" in text


def test_a_sized_point_gets_at_least_min_trials_even_above_the_grids_count():
    few = Grid(**{**GRID.__dict__, "trials": 3, "min_trials": 6})  # report --quick --minutes M
    first = size_grid(few, PROBE, FRONTS, RESERVE_S + 1000)
    assert (first.trials, first.sweep_trials) == (6, 6)
    stored = {("lenet5", "fp32", 1e-4): 6, ("lenet5", "fp32", 1e-3): 6}
    assert size_grid(few, PROBE, FRONTS, RESERVE_S + 1000, stored).trials == 12


def test_without_accumulate_a_rerun_takes_the_stored_counts():
    fixed = Grid(**{**GRID.__dict__, "accumulate": False})
    first = size_grid(fixed, PROBE, FRONTS, RESERVE_S + 8)
    stored = {("lenet5", "fp32", 1e-4): first.trials, ("lenet5", "fp32", 1e-3): first.sweep_trials}
    again = size_grid(fixed, PROBE, FRONTS, RESERVE_S + 1000, stored)  # more time left: still the same counts
    assert (again.trials, again.sweep_trials) == (first.trials, first.sweep_trials)
    few = {k: 1 for k in stored}  # fewer than min_trials stored: sized afresh
    assert size_grid(fixed, PROBE, FRONTS, RESERVE_S + 8, few).trials == first.trials
