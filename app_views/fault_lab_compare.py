"""The Fault lab's comparison of several plans at the live point, on the same seeded trials.

``compare_plans`` is its own fragment inside the live part: choosing plans or switching the comparison on reruns
it alone; a new live setting reruns it with the new point.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state
import ui
from app_session import ModelChoice
from xtmr_core.spec import CampaignSpec
from xtmr_core.vocabulary import PLANS

#: The plans compared by default (those of them the vocabulary has).
DEFAULT_PLANS = ("lrp", "magnitude", "bits", "range", "ecc", "full")


@st.fragment
def compare_plans(choice: ModelChoice, spec: CampaignSpec) -> None:
    """Chosen plans at ``spec``'s point (budget, format, BER, trials, seed): mean accuracy with 95% CI whiskers and
    a table of paired differences against unprotected, with verdicts and extra memory."""
    st.subheader("Compare plans at this point")
    chosen = st.multiselect(
        "Plans",
        [p for p in PLANS if p != "none"],
        default=[p for p in DEFAULT_PLANS if p in PLANS],
        format_func=ui.plan_label,
        key="fl_compare",
        help=f"Each at budget {spec.budget:g}% (scorer plans), bit {ui.top_bit(spec.fmt)} (bits plan), on the same "
        "seeded faults as above.",
    )
    if not st.toggle(
        "Run the comparison", key="fl_compare_on", help="All chosen plans on the same trials as above (cached)."
    ):
        return
    specs = tuple(spec.replace(protect=p, bits=(ui.top_bit(spec.fmt),) if p == "bits" else spec.bits) for p in chosen)
    if not specs:
        return
    bar = st.progress(0.0)
    many = app_state.point(
        choice,
        specs,
        on_trial=lambda part: bar.progress(part.trials / spec.trials, text=f"trial {part.trials} of {spec.trials}"),
    )
    bar.empty()
    diffs = [many.difference(i) for i in range(1, len(many.results))]
    st.plotly_chart(compare_figure(many, diffs, spec), width="stretch", key="compare")
    st.dataframe(compare_table(many, diffs), hide_index=True)


def compare_table(many, diffs: list) -> pd.DataFrame:
    """Each compared plan: mean accuracy, paired difference against unprotected with its CI, verdict, memory."""
    plans = range(1, len(many.results))
    return pd.DataFrame(
        {
            "plan": [many.results[i].plan for i in plans],
            "mean accuracy %": [round(100 * many.results[i].mean_accuracy, 2) for i in plans],
            # + 0.0: a difference that rounds to zero reads 0, never -0
            "paired diff pt": [round(100 * d.estimate, 2) + 0.0 for d in diffs],
            "CI low": [round(100 * d.low, 2) + 0.0 for d in diffs],
            "CI high": [round(100 * d.high, 2) + 0.0 for d in diffs],
            "verdict": [many.verdict(i) for i in plans],
            "extra memory %": [round(many.results[i].overhead.copies_pct, 2) for i in plans],
        }
    )


def compare_figure(many, diffs: list, spec: CampaignSpec) -> go.Figure:
    """Mean accuracy of each plan of ``many`` (the unprotected baseline first) with its 95% CI as whiskers."""
    ivs = [many.accuracy(i) for i in range(len(many.results))]
    means = [100 * iv.estimate for iv in ivs]
    fig = go.Figure(
        go.Bar(
            x=[r.plan if i else "unprotected" for i, r in enumerate(many.results)],
            y=means,
            marker_color=[ui.plan_colour(r.protect) for r in many.results],
            error_y=dict(
                type="data",
                symmetric=False,
                array=[100 * iv.high - m if math.isfinite(iv.high) else 0.0 for iv, m in zip(ivs, means)],
                arrayminus=[m - 100 * iv.low if math.isfinite(iv.low) else 0.0 for iv, m in zip(ivs, means)],
            ),
            customdata=[[0.0, 0.0]]
            + [[r.overhead.copies_pct, 100 * d.estimate] for r, d in zip(many.results[1:], diffs)],
            hovertemplate="%{x}: %{y:.1f}%<br>extra memory %{customdata[0]:.2f}%<br>"
            "paired difference %{customdata[1]:+.1f} pt<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Mean accuracy with its 95% CI at BER {ui.fmt_ber(spec.ber)} ({spec.fmt}, {many.trials} trials)",
        yaxis_title="accuracy (%)",
        yaxis_range=[0, 100],
        height=320,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    return fig
