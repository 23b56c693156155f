"""The Sweeps page's first tab: accuracy against BER for several plans at one budget."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import ui
from app_views.sweeps_parts import (
    SYMBOLS,
    Setting,
    bits_input,
    colour,
    download,
    error_bars,
    last_table,
    layout,
    overheads,
    reference_line,
    run,
    thin_points,
)
from xtmr_core.errors import XtmrError
from xtmr_core.spec import grid
from xtmr_core.vocabulary import PLAN_NAMES


class BerAsk(NamedTuple):
    """The BER tab's controls: plans, their budget, the BER range and its stops, the bits plan's positions."""

    plans: list[str]
    budget: float
    lo: float
    hi: float
    bers: list[float]
    bits: tuple[int, ...] | None


def ber_controls(s: Setting) -> tuple[BerAsk, bool]:
    """The BER tab's plans, budget and BER range, what they cost, and the Run button (whether it was pressed)."""
    plans = st.multiselect(
        "Plans",
        [p for p in PLAN_NAMES if p != "none"],
        default=["lrp", "magnitude", "bits", "full"],
        key="swb_plans",
        help="No protection is always included as the baseline. ecc: SEC-DED (72, 64) code words; damage: "
        "triplicates the (weight, bit) pairs of highest expected damage, its budget in % extra memory; "
        "X+range: plan X with the zero-copy range guard on read as well.",
    )
    b1, b2, b3 = st.columns([2, 2, 1], vertical_alignment="bottom")  # the Run button in a projector's first screen
    budget = b1.select_slider(
        "Budget of the scorer plans",
        ui.BUDGET_VALUES,
        value=1.0,
        format_func=lambda v: f"{v:g}%",
        key="swb_budget",
        help="Share of weights each scorer plan protects (for damage: % extra memory, so damage 2% buys as "
        "many triplicated bits as lrp 1%).",
    )
    lo, hi = b2.select_slider(
        "BER range",
        ui.BER_VALUES,
        value=(1e-6, 1e-3),
        format_func=ui.fmt_ber,
        key="swb_bers",
        help="Every slider stop in this range is one point.",
    )
    bers = [v for v in ui.BER_VALUES if lo <= v <= hi]
    try:
        bits = bits_input("swb", plans, s.fmt)
        n_runs = len(grid(["none", *plans], [budget], bers, [s.fmt], bits=bits))
        st.caption(
            f"{n_runs} campaigns: {len(bers)} BERs × {n_runs // max(len(bers), 1)} plans (no protection included), "
            f"{s.trials} trials each."
        )
        with st.container(key="swb_overheads"):
            st.caption(overheads(s, plans, budget, bits))
    except XtmrError as e:
        st.error(str(e))
        bits, plans, n_runs = None, [], 0
    pressed = b3.button(f"Run {n_runs} campaigns", key="swb_run", type="primary", disabled=not plans, width="stretch")
    return BerAsk(plans, budget, lo, hi, bers, bits), pressed


def ber_words(s: Setting, ask: BerAsk) -> str:
    """The BER tab's settings in words (kept with a run's table, to say when it no longer matches)."""
    bits = f", bits {','.join(map(str, ask.bits))}" if ask.bits else ""
    return (
        f"{s.choice.model}, {s.fmt}, {s.trials} trials, {', '.join(ask.plans) or 'no plan'} at {ask.budget:g}%, "
        f"BER {ui.fmt_ber(ask.lo)} … {ui.fmt_ber(ask.hi)}, rule {s.rule}" + bits
    )


def ber_chart(table: pd.DataFrame) -> None:
    """Accuracy against BER, one line per plan with its 95% CI, no protection dashed on top, clean dotted."""
    fig = go.Figure()
    # the baseline last, dashed and wider: drawn on top, it stays visible where a plan's line coincides
    labels = list(dict.fromkeys(table["plan"]))
    baseline = set(table.loc[table["protect"] == "none", "plan"])
    order = [p for p in labels if p not in baseline] + [p for p in labels if p in baseline]
    protects = list(table["protect"])
    for i, plan in enumerate(order):
        g = table[table["plan"] == plan].sort_values("ber")
        base = plan in baseline
        dash = "dash" if base else "dot" if str(plan).endswith("+range") else "solid"  # X +range: X's colour, dotted
        fig.add_scatter(
            x=g["ber"],
            y=100 * g["mean_accuracy"],
            name=plan,
            mode="lines+markers",
            line=dict(color=colour(g["protect"].iloc[0], protects), width=3 if base else 2, dash=dash),
            marker=dict(symbol=SYMBOLS[i % len(SYMBOLS)], size=9 if base else 7),
            error_y=error_bars(g),
        )
    tested = sorted(table["ber"].unique())
    reference_line(fig, tested, float(table["clean_accuracy"].iloc[0]), "clean (no faults)", "#a0aec0", "dot")
    fig.update_xaxes(type="log", tickvals=tested, ticktext=[ui.fmt_ber(v) for v in tested])
    layout(fig, "bit error rate")
    st.plotly_chart(fig, width="stretch", key="swb_chart")


def ber_tab(s: Setting) -> None:
    """Accuracy against BER for several plans at one budget: controls, run, chart, table."""
    ask, pressed = ber_controls(s)
    asked = ber_words(s, ask)
    if pressed:
        run("swb", s, asked, ask.plans, [ask.budget], ask.bers, ask.bits)
    table = last_table("swb", asked)
    if table is None:
        st.info("Choose plans and a BER range, then press Run.")
        return
    thin_points(table)
    ber_chart(table)
    download("swb", table, s)
