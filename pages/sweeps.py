"""Sweeps: accuracy against BER and against budget for several plans; the smallest budget per scorer."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state
from xtmr_core.errors import XtmrError
from xtmr_core.spec import grid
from xtmr_core.sweep import COLUMNS, add_reliability, iso_table, result_row
from xtmr_core.vocabulary import PLANS, WORD_BITS, check_bits, parse_bits
from xtmr_core.vocabulary import SCORERS as SCORER_PLANS

PALETTE = {
    "none": "#c53030",
    "lrp": "#2b6cb0",
    "magnitude": "#dd6b20",
    "gradient": "#38a169",
    "taylor": "#805ad5",
    "random": "#718096",
    "full": "#1a202c",
    "bits": "#d69e2e",
    "range": "#319795",
}
SHOWN_COLUMNS = [
    "plan",
    "ber",
    "budget",
    "trials",
    "mean_accuracy",
    "ci_low",
    "ci_high",
    "min_accuracy",
    "recovered",
    "relative_gain",
    "overhead_pct",
    "overhead_with_index_pct",
    "mean_bit_flips",
]

app_state.enter_page()
st.title("Sweeps")
st.caption(
    "Many campaigns at once: how accuracy falls with the bit error rate for each plan, how it recovers "
    "with the budget, and what each scorer must spend to reach a target accuracy. Each point is cached, so a "
    "stopped sweep resumes where it ended. LRP ranks by the rule chosen on the Relevance page."
)
choice, exp = app_state.require_experiment()
c1, c2 = st.columns(2)
fmt = app_state.format_select(c1)
trials = c2.select_slider(
    "Trials per point",
    (2, 5, 10, 20, 50),
    value=10,
    key="sw_trials",
    persist_state="session",
    help="Fault draws per point; more trials, narrower confidence intervals, longer runs.",
)


def _bits_input(tag: str, protects: list[str]) -> tuple[int, ...] | None:
    if "bits" not in protects:
        return None
    text = st.text_input(
        "Bit positions for the 'bits' plan",
        value=str(app_state.top_bit(fmt)),
        key=f"{tag}_bits_{fmt}",
        help=f"Bits 0 (LSB) … {WORD_BITS[fmt] - 1} of every weight, e.g. 30 or 23-31.",
    )
    return check_bits(parse_bits(text), fmt)


def _run(tag: str, protects: list[str], budgets: list[float], bers: list[float], bits) -> None:
    """Run every point of the grid through the cached campaign, keeping finished rows in the session."""
    points = grid(list(dict.fromkeys(["none", *protects])), budgets, bers, [fmt], bits=bits)
    stop = st.empty()
    stop.button("Stop sweep", key=f"{tag}_stop", help="Stops after the current campaign; finished points stay cached.")
    bar = st.progress(0.0, text=f"0 of {len(points)} campaigns")
    rows: list[dict] = []
    st.session_state[f"{tag}_partial"] = (rows, len(points))
    for i, spec in enumerate(points):
        r = app_state.campaign(
            choice.key,
            exp,
            spec.protect,
            spec.budget,
            spec.ber,
            spec.fmt,
            trials=trials,
            bits=bits,
            rule=app_state.setting("rule"),
        )
        rows.append(result_row(exp, r))
        bar.progress(
            (i + 1) / len(points),
            text=f"{i + 1} of {len(points)} campaigns ({r.plan} at BER {app_state.fmt_ber(spec.ber)})",
        )
    st.session_state.pop(f"{tag}_partial", None)
    st.session_state[f"{tag}_table"] = add_reliability(pd.DataFrame(rows, columns=COLUMNS))
    bar.empty()
    stop.empty()


def _table(tag: str) -> pd.DataFrame | None:
    """The finished sweep, or the rows of one that was stopped (with a note)."""
    partial = st.session_state.pop(f"{tag}_partial", None)
    if partial is not None:
        rows, total = partial
        st.warning(
            f"Stopped after {len(rows)} of {total} campaigns; press Run again to finish (done points are cached)."
        )
        if rows:
            st.session_state[f"{tag}_table"] = add_reliability(pd.DataFrame(rows, columns=COLUMNS))
    return st.session_state.get(f"{tag}_table")


def _download(tag: str, table: pd.DataFrame) -> None:
    with st.expander("Table with reliability improvement"):
        st.caption(
            "recovered: share of the fault-induced loss a plan wins back, (plan − none) / (clean − none); "
            "relative_gain: (plan − none) / none. Overheads in % of the weight memory."
        )
        st.dataframe(table[SHOWN_COLUMNS], hide_index=True, width="stretch")
    st.download_button(
        "Download CSV",
        table.to_csv(index=False).encode(),
        file_name=f"xtmr_{tag}_{choice.model}.csv",
        mime="text/csv",
        key=f"{tag}_csv",
        help="Every column of the sweep, one row per campaign.",
    )


def _overheads(protects: list[str], budget: float, bits) -> str:
    parts = []
    for p in protects:
        o = app_state.plan_overhead(choice.key, exp, p, budget, fmt, bits=bits, rule=app_state.setting("rule"))
        parts.append(f"{p} {o.copies_pct:.2f}% ({o.with_index_pct:.2f}% with index)")
    return "Extra memory at this budget: " + "; ".join(parts) + "." if parts else "Choose at least one plan."


tab_ber, tab_budget = st.tabs(["Accuracy vs BER", "Accuracy vs budget, and the budget each scorer needs"])

with tab_ber:
    plans = st.multiselect(
        "Plans",
        [p for p in PLANS if p != "none"],
        default=["lrp", "magnitude", "bits", "full"],
        key="swb_plans",
        help="No protection is always included as the baseline.",
    )
    b1, b2 = st.columns(2)
    budget = b1.select_slider(
        "Budget of the scorer plans",
        app_state.BUDGET_VALUES,
        value=1.0,
        format_func=lambda v: f"{v:g}%",
        key="swb_budget",
        help="Share of weights each scorer plan protects.",
    )
    lo, hi = b2.select_slider(
        "BER range",
        app_state.BER_VALUES,
        value=(1e-6, 1e-3),
        format_func=app_state.fmt_ber,
        key="swb_bers",
        help="Every slider stop in this range is one point.",
    )
    bers = [v for v in app_state.BER_VALUES if lo <= v <= hi]
    try:
        bits = _bits_input("swb", plans)
        with st.container(key="swb_overheads"):
            st.caption(_overheads(plans, budget, bits))
    except XtmrError as e:
        st.error(str(e))
        bits, plans = None, []
    n_points = len(grid(["none", *plans], [budget], bers, [fmt], bits=bits))
    if st.button(f"Run {n_points} campaigns × {trials} trials", key="swb_run", type="primary", disabled=not plans):
        _run("swb", plans, [budget], bers, bits)
    table = _table("swb")
    if table is None:
        st.info("Choose plans and a BER range, then press Run.")
    else:
        fig = go.Figure()
        for protect, g in table.groupby("protect", sort=False):
            g = g.sort_values("ber")
            fig.add_scatter(
                x=g["ber"],
                y=100 * g["mean_accuracy"],
                name=g["plan"].iloc[0],
                mode="lines+markers",
                line_color=PALETTE.get(protect),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=100 * (g["ci_high"] - g["mean_accuracy"]).fillna(0),
                    arrayminus=100 * (g["mean_accuracy"] - g["ci_low"]).fillna(0),
                ),
            )
        fig.add_hline(y=100 * table["clean_accuracy"].iloc[0], line_dash="dot", annotation_text="clean")
        tested = sorted(table["ber"].unique())
        fig.update_xaxes(tickvals=tested, ticktext=[app_state.fmt_ber(v) for v in tested])
        fig.update_layout(
            xaxis_type="log",
            xaxis_title="bit error rate",
            yaxis_title="accuracy (%)",
            yaxis_range=[0, 100],
            height=420,
            margin=dict(l=10, r=10, t=10, b=10),
        )
        st.plotly_chart(fig, width="stretch", key="swb_chart")
        _download("swb", table)

with tab_budget:
    scorers = st.multiselect(
        "Scorers",
        list(SCORER_PLANS),
        default=["lrp", "magnitude", "random"],
        key="swg_plans",
        help="Each protects all bits of its top budget% weights. No protection and full TMR "
        "are drawn as reference lines.",
    )
    g1, g2 = st.columns(2)
    ber = g1.select_slider(
        "BER",
        app_state.BER_VALUES,
        value=1e-5,
        format_func=app_state.fmt_ber,
        key="swg_ber",
        help="The bit error rate of every point.",
    )
    blo, bhi = g2.select_slider(
        "Budget range",
        app_state.BUDGET_VALUES,
        value=(0.1, 10.0),
        format_func=lambda v: f"{v:g}%",
        key="swg_budgets",
        help="Every slider stop in this range is one point per scorer.",
    )
    budgets = [v for v in app_state.BUDGET_VALUES if blo <= v <= bhi]
    n_points = len(grid(["none", "full", *scorers], budgets, [ber], [fmt]))
    with st.container(key="swg_overheads"):
        st.caption(
            f"Memory cost from {blo:g}% to {bhi:g}% of the weights: {2 * blo:g}% to {2 * bhi:g}% extra "
            f"(two extra copies of every bit of each protected weight); full TMR: 200%."
        )
    if st.button(f"Run {n_points} campaigns × {trials} trials", key="swg_run", type="primary", disabled=not scorers):
        _run("swg", [*scorers, "full"], budgets, [ber], None)
    table = _table("swg")
    if table is None:
        st.info("Choose scorers, a BER and a budget range, then press Run.")
    else:
        fig = go.Figure()
        scored = table[table["protect"].isin(SCORER_PLANS)]
        for protect, g in scored.groupby("protect", sort=False):
            g = g.sort_values("budget")
            fig.add_scatter(
                x=g["budget"],
                y=100 * g["mean_accuracy"],
                name=protect,
                mode="lines+markers",
                line_color=PALETTE.get(protect),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=100 * (g["ci_high"] - g["mean_accuracy"]).fillna(0),
                    arrayminus=100 * (g["mean_accuracy"] - g["ci_low"]).fillna(0),
                ),
            )
        for protect, dash in (("none", "dash"), ("full", "dot")):
            ref = table[table["protect"] == protect]
            if len(ref):
                fig.add_hline(
                    y=100 * ref["mean_accuracy"].iloc[0],
                    line_dash=dash,
                    line_color=PALETTE[protect],
                    annotation_text=ref["plan"].iloc[0],
                )
        positive = scored["budget"][scored["budget"] > 0]
        budgets = sorted(scored["budget"].unique())
        # tick at each tested budget, labelled in %: plotly's log ticks read 0.5 as "5"
        fig.update_xaxes(tickvals=budgets, ticktext=[f"{b:g}%" for b in budgets])
        fig.update_layout(
            xaxis_type="log" if len(positive) == len(scored) and len(scored) else "linear",
            xaxis_title="budget (% of weights)",
            yaxis_title="accuracy (%)",
            yaxis_range=[0, 100],
            height=420,
            margin=dict(l=10, r=10, t=10, b=10),
        )
        st.plotly_chart(fig, width="stretch", key="swg_chart")

        st.markdown("**Iso-reliability cost**: the smallest tested budget with which each scorer reaches the target.")
        clean = float(table["clean_accuracy"].iloc[0])
        target = (
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
        iso = iso_table(table, target)
        if iso.empty:
            st.info("The sweep has no scorer points to compare.")
        else:
            reach = iso.dropna(subset=["min_budget"])
            fig = go.Figure(
                go.Bar(
                    x=reach["protect"],
                    y=reach["min_budget"],
                    marker_color=[PALETTE.get(p) for p in reach["protect"]],
                    text=[f"{v:g}%" for v in reach["min_budget"]],
                    textposition="outside",
                )
            )
            fig.update_layout(
                yaxis_title="smallest budget (% of weights)", height=300, margin=dict(l=10, r=10, t=30, b=10)
            )
            if len(reach):
                st.plotly_chart(fig, width="stretch", key="swg_iso")
            missed = iso[iso["min_budget"].isna()]["protect"].tolist()
            if missed:
                st.caption(f"Not reached within the tested budgets: {', '.join(missed)}.")
            st.dataframe(iso, hide_index=True, width="stretch")
        _download("swg", table)
