"""The Sweeps page's second tab: accuracy against budget for several scorers at one BER, and the iso-reliability
cost (the smallest tested budget with which each scorer reaches a target)."""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state
import ui
from app_views.sweeps_parts import (
    SYMBOLS,
    Setting,
    colour,
    download,
    error_bars,
    last_table,
    layout,
    reference_line,
    run,
    thin_points,
)
from xtmr_core.spec import grid
from xtmr_core.vocabulary import SCORERS


class BudgetAsk(NamedTuple):
    """The budget tab's controls: scorers, the BER, the budget range and its stops."""

    scorers: list[str]
    ber: float
    lo: float
    hi: float
    budgets: list[float]


def budget_controls(s: Setting) -> tuple[BudgetAsk, bool]:
    """The budget tab's scorers, BER and budget range, what they cost, and the Run button (whether pressed)."""
    scorers = st.multiselect(
        "Scorers",
        list(SCORERS),
        default=["lrp", "magnitude", "random"],
        key="swg_plans",
        help="Each protects all bits of its top budget% weights. No protection and full TMR "
        "are drawn as reference lines.",
    )
    g1, g2, g3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    ber = g1.select_slider(
        "BER",
        ui.BER_VALUES,
        value=1e-5,
        format_func=ui.fmt_ber,
        key="swg_ber",
        help="The bit error rate of every point.",
    )
    lo, hi = g2.select_slider(
        "Budget range",
        ui.BUDGET_VALUES,
        value=(0.1, 10.0),
        format_func=lambda v: f"{v:g}%",
        key="swg_budgets",
        help="Every slider stop in this range is one point per scorer.",
    )
    budgets = [v for v in ui.BUDGET_VALUES if lo <= v <= hi]
    n_runs = len(grid(["none", "full", *scorers], budgets, [ber], [s.fmt]))
    with st.container(key="swg_overheads"):
        st.caption(
            f"{n_runs} campaigns: {len(scorers)} scorers × {len(budgets)} budgets, no protection and full TMR, "
            f"{s.trials} trials each. Memory cost from {lo:g}% to {hi:g}% of the weights: {2 * lo:g}% to "
            f"{2 * hi:g}% extra (two extra copies of every bit of each protected weight); full TMR: 200%."
        )
    pressed = g3.button(f"Run {n_runs} campaigns", key="swg_run", type="primary", disabled=not scorers, width="stretch")
    return BudgetAsk(scorers, ber, lo, hi, budgets), pressed


def budget_words(s: Setting, ask: BudgetAsk) -> str:
    """The budget tab's settings in words (kept with a run's table)."""
    return (
        f"{s.choice.model}, {s.fmt}, {s.trials} trials, {', '.join(ask.scorers) or 'no scorer'}, "
        f"BER {ui.fmt_ber(ask.ber)}, budgets {ask.lo:g} … {ask.hi:g}%, rule {s.rule}"
    )


def budget_chart(table: pd.DataFrame, ask: BudgetAsk) -> list[str]:
    """Accuracy against budget, one line per scorer, no protection and full TMR as reference lines; returns the
    scorers in the order drawn (their colours follow it)."""
    fig = go.Figure()
    scored = table[table["protect"].isin(SCORERS)]
    order = list(dict.fromkeys(scored["protect"]))
    for i, (protect, g) in enumerate(scored.groupby("protect", sort=False)):
        g = g.sort_values("budget")
        fig.add_scatter(
            x=g["budget"],
            y=100 * g["mean_accuracy"],
            name=protect,
            mode="lines+markers",
            line_color=colour(protect, order),
            marker=dict(symbol=SYMBOLS[i % len(SYMBOLS)], size=7),
            error_y=error_bars(g),
        )
    tested = sorted(scored["budget"].unique()) or [ask.lo, ask.hi]
    for protect, name, dash in (("none", "no protection", "dash"), ("full", "full TMR (200%)", "dot")):
        ref = table[table["protect"] == protect]
        if len(ref):
            reference_line(fig, tested, float(ref["mean_accuracy"].iloc[0]), name, ui.plan_colour(protect), dash)
    # tick at each tested budget, labelled in %: plotly's log ticks read 0.5 as "5"
    log = bool(len(scored)) and bool((scored["budget"] > 0).all())
    fig.update_xaxes(type="log" if log else "linear", tickvals=tested, ticktext=[f"{b:g}%" for b in tested])
    layout(fig, "budget (% of weights)")
    st.plotly_chart(fig, width="stretch", key="swg_chart")
    return order


def target_slider(clean: float) -> float:
    """The target accuracy (a fraction), by default a point under the clean accuracy ``clean``, rounded down."""
    return (
        st.slider(
            "Target accuracy (%)",
            0.0,
            100.0,
            value=float(max(0, math.floor(100 * clean - 1.0))),
            step=0.5,
            key="swg_target",
            help="Typically a point or two under the clean accuracy.",
        )
        / 100
    )


def iso_bars(iso: pd.DataFrame, order: list[str]) -> None:
    """The smallest tested budget each scorer needs, as bars; the scorers that never reach it, named."""
    reach = iso.dropna(subset=["min_budget"])
    fig = go.Figure(
        go.Bar(
            x=reach["protect"],
            y=reach["min_budget"],
            marker_color=[colour(p, order) for p in reach["protect"]],
            text=[f"{v:g}%" for v in reach["min_budget"]],
            textposition="outside",
        )
    )
    fig.update_layout(yaxis_title="smallest budget (% of weights)", height=300, margin=dict(l=10, r=10, t=30, b=10))
    if len(reach):
        st.plotly_chart(fig, width="stretch", key="swg_iso")
    missed = iso[iso["min_budget"].isna()]["protect"].tolist()
    if missed:
        st.caption(f"Not reached within the tested budgets: {', '.join(missed)}.")
    st.dataframe(app_state.iso_readable(iso), hide_index=True, width="stretch")


def iso_cost(table: pd.DataFrame, ber: float, order: list[str]) -> None:
    """Iso-reliability cost: a target, and the smallest tested budget with which each scorer reaches it (or a
    note that nothing needs protecting)."""
    st.markdown("**Iso-reliability cost**: the smallest tested budget with which each scorer reaches the target.")
    target = target_slider(float(table["clean_accuracy"].iloc[0]))
    iso = app_state.iso_costs(table, target)
    unprotected = app_state.unprotected_meets(table, target)
    if unprotected is not None:
        with st.container(key="swg_verdict"):
            st.success(
                f"No protection needed: without protection the model keeps {ui.pct(unprotected)} at BER "
                f"{ui.fmt_ber(ber)}, already at or above the {100 * target:g}% target. Every scorer "
                "'reaches' it at the smallest tested budget only because nothing needs protecting."
            )
    elif iso.empty:
        st.info("The sweep has no scorer points to compare.")
    else:
        iso_bars(iso, order)


def budget_tab(s: Setting) -> None:
    """Accuracy against budget for several scorers at one BER, and the budget each needs: controls, run, charts."""
    ask, pressed = budget_controls(s)
    asked = budget_words(s, ask)
    if pressed:
        run("swg", s, asked, [*ask.scorers, "full"], ask.budgets, [ask.ber], None)
    table = last_table("swg", asked)
    if table is None:
        st.info("Choose scorers, a BER and a budget range, then press Run.")
        return
    thin_points(table)
    order = budget_chart(table, ask)
    iso_cost(table, ask.ber, order)
    download("swg", table, s)
