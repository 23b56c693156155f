"""What both tabs of the Sweeps page share: the setting they run under, plan colours, the run with its progress
and Stop button, the last table and its notes, the table with its CSV, and the accuracy charts' pieces. The tabs
are ``sweeps_ber`` and ``sweeps_budget``."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state
import ui
from app_session import ModelChoice
from xtmr_core.spec import CampaignSpec, grid, split_plan_name
from xtmr_core.vocabulary import WORD_BITS, check_bits, parse_bits

#: One marker per line, so lines that coincide stay distinguishable.
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon", "triangle-down")
#: The campaign seed of every point (trial t draws its faults from (SEED, t)); written into the CSV.
SEED = 0
SHOWN_COLUMNS = [
    "plan",
    "ber",
    "budget",
    "trials",
    "mean_accuracy",
    "ci_low",
    "ci_high",
    "min_accuracy",
    "diff",
    "verdict",
    "recovered",
    "recovered_low",
    "recovered_high",
    "relative_gain",
    "overhead_pct",
    "overhead_with_index_pct",
    "mean_bit_flips",
]
#: What the page does, in the title's help (the controls and the Run button share a projector's first screen).
INTRO = (
    "Many campaigns at once: how accuracy falls with the bit error rate for each plan, how it recovers "
    "with the budget, and what each scorer must spend to reach a target accuracy. Each point is cached, so a "
    "stopped sweep resumes where it ended. LRP ranks by the rule chosen on the Relevance page."
)
TABLE_HELP = (
    "Every plan of a BER runs on the same trials as no protection, so each row is compared pair-wise: diff is the "
    "mean per-trial accuracy difference to no protection, verdict says whether its interval clears zero. "
    "recovered: share of the fault-induced loss a plan wins back, (plan − none) / (clean − none), with its "
    "interval; left blank where that loss is no larger than its own noise (the unprotected accuracy's 95% CI "
    "half-width): a share of a loss the trials cannot tell from zero means nothing. relative_gain: (plan − none) "
    "/ none. Overheads in % of the weight memory."
)


class Setting(NamedTuple):
    """What every sweep of the page shares: the active model, its format, trials per point and LRP rule."""

    choice: ModelChoice
    fmt: str
    trials: int
    rule: str


def trials_select(col) -> int:
    """Trials per point."""
    return col.select_slider(
        "Trials per point",
        (2, 5, 10, 20, 50),
        value=10,
        key="sw_trials",
        persist_state="session",
        help=f"Fault draws per point; more trials, narrower confidence intervals, longer runs. Under "
        f"{app_state.MIN_TRIALS} the page warns that a point is too thin to conclude from.",
    )


def colour(protect: str, order: list[str]) -> str:
    """A plan's colour (``ui.plan_colour``: the plan registry's, else a spare one by its place in ``order``)."""
    return ui.plan_colour(protect, order)


def bits_input(tag: str, protects: list[str], fmt: str) -> tuple[int, ...] | None:
    """The bit positions of the ``bits`` plan, when it is among ``protects``.

    Raises:
        XtmrError: positions that do not parse or do not exist in ``fmt``.
    """
    if not any(split_plan_name(p)[0] == "bits" for p in protects):
        return None
    text = st.text_input(
        "Bit positions for the 'bits' plan",
        value=str(ui.top_bit(fmt)),
        key=f"{tag}_bits_{fmt}",
        help=f"Bits 0 (LSB) … {WORD_BITS[fmt] - 1} of every weight, e.g. 30 or 23-31.",
    )
    return check_bits(parse_bits(text), fmt)


def run(tag: str, s: Setting, asked: str, protects: list[str], budgets: list[float], bers, bits) -> None:
    """``sweep.run_sweep`` through the cached campaigns, with a progress bar and a Stop button; finished rows stay
    in the session if it is stopped. ``asked``: what the run was asked, in words, kept with its table."""
    stop = st.empty()
    stop.button("Stop sweep", key=f"{tag}_stop", help="Stops after the current BER; finished campaigns stay cached.")
    bar = st.progress(0.0, text="starting…")
    done: list[dict] = []
    total = len(grid(["none", *protects], budgets, bers, [s.fmt], bits=bits))
    st.session_state[f"{tag}_partial"] = (done, total, asked)

    def progress(i: int, n: int, label: str) -> None:  # i of n BER points; done: the finished campaigns' rows
        bar.progress(len(done) / total, text=f"{len(done)} of {total} campaigns done ({i} of {n} BERs)")

    table = app_state.sweep(
        s.choice,
        protects,
        budgets,
        bers,
        s.fmt,
        done=done,
        progress=progress,
        seed=SEED,
        bits=bits,
        trials=s.trials,
        rule=s.rule,
    )
    st.session_state.pop(f"{tag}_partial", None)
    st.session_state[f"{tag}_table"] = table
    st.session_state[f"{tag}_settings"] = asked
    bar.empty()
    stop.empty()


def last_table(tag: str, asked: str) -> pd.DataFrame | None:
    """The last sweep's table (or the rows of one that was stopped), with a note when it was not run with the
    settings shown now (``asked``: them, in words) or was stopped."""
    partial = st.session_state.pop(f"{tag}_partial", None)
    if partial is not None:
        rows, total, was_asked = partial
        if rows:
            st.session_state[f"{tag}_table"] = app_state.sweep_table(rows)
            st.session_state[f"{tag}_settings"] = was_asked
        st.warning(
            f"Stopped after {len(rows)} of {total} campaigns; press Run again to finish (finished campaigns are "
            "cached)." + ("" if rows else " Nothing finished, so nothing below is from this run.")
        )
    table = st.session_state.get(f"{tag}_table")
    shown_for = st.session_state.get(f"{tag}_settings")
    if table is not None and shown_for != asked:
        st.caption(
            f":material/history: Below: an earlier run ({shown_for}), not the settings above ({asked}); "
            "press Run for these."
        )
    return table


def thin_points(table: pd.DataFrame) -> None:
    """Warn when points rest on fewer trials than a conclusion needs (``sweep_view.thin_points``)."""
    thin = app_state.thin_points(table)
    if thin is not None:
        st.warning(
            f"{thin.count} of {thin.total} points rest on fewer than {thin.minimum} trials (as few as "
            f"{thin.fewest}): their intervals are wide and a difference between plans may be chance. "
            f"Run {thin.minimum} or more trials per point before concluding."
        )


def download(tag: str, table: pd.DataFrame, s: Setting) -> None:
    """The table with its reliability columns (``recovered`` blanked where it means nothing), and its CSV."""
    shown = app_state.recovered_shown(table)
    with st.expander("Table with reliability improvement"):
        st.caption(TABLE_HELP)
        st.dataframe(shown[SHOWN_COLUMNS], hide_index=True, width="stretch")
    st.download_button(
        "Download CSV",
        app_state.sweep_csv(shown, seed=SEED, rule=s.rule, weights=f"{s.choice.label} ({s.choice.ckpt_id})"),
        file_name=f"xtmr_{tag}_{s.choice.model}_{s.fmt}.csv",
        mime="text/csv",
        key=f"{tag}_csv",
        help="Every column of the sweep, one row per campaign, with the seed, LRP rule, weights and versions "
        "that reproduce it.",
    )


def overheads(s: Setting, protects: list[str], budget: float, bits) -> str:
    """The extra memory of each plan at ``budget``, in one line."""
    parts = []
    for p in protects:  # the range guard costs no copies: X+range has X's overhead
        spec = CampaignSpec(split_plan_name(p)[0], budget, fmt=s.fmt, bits=bits, rule=s.rule)
        o = app_state.plan_overhead(s.choice, spec)
        parts.append(f"{p} {o.copies_pct:.2f}% ({o.with_index_pct:.2f}% with index)")
    return "Extra memory at this budget: " + "; ".join(parts) + "." if parts else "Choose at least one plan."


def reference_line(fig: go.Figure, x: list[float], y: float, name: str, line_colour: str, dash: str) -> None:
    """A horizontal reference drawn as a legend entry (annotations at the edge print over each other)."""
    fig.add_scatter(
        x=[min(x), max(x)],
        y=[100 * y, 100 * y],
        mode="lines",
        name=name,
        line=dict(color=line_colour, dash=dash, width=2),
        hovertemplate=f"{name}: {100 * y:.1f}%<extra></extra>",
    )


def error_bars(g: pd.DataFrame) -> dict:
    """Plotly error bars of the rows' 95% CI around their mean accuracy, in points."""
    return dict(
        type="data",
        symmetric=False,
        array=100 * (g["ci_high"] - g["mean_accuracy"]).fillna(0),
        arrayminus=100 * (g["mean_accuracy"] - g["ci_low"]).fillna(0),
    )


def layout(fig: go.Figure, x_title: str) -> None:
    """The accuracy charts' shared layout: 0–101% axis, legend under the chart."""
    fig.update_layout(
        xaxis_title=x_title,
        yaxis_title="accuracy (%)",
        yaxis_range=[0, 101],
        height=440,
        margin=dict(l=10, r=10, t=10, b=10),
        legend=dict(orientation="h", x=0, y=-0.18, xanchor="left", yanchor="top"),
    )
