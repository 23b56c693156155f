"""The Fault lab's headline numbers and its accuracy chart, for the first ``k`` trials of a point.

Each drawing goes into a box (an ``st.empty``) under element keys numbered by ``n``, so a point streamed trial by
trial redraws its numbers in place; ``stale`` marks an older setting's numbers, shown dimmed until the first trial
of a new one (the browser test and the CSS find them by the ``live_`` / ``stale_`` key prefixes).
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
import streamlit as st

import ui

#: The clean bar's colour (not a plan: the plans' colours come from the plan registry, ``ui.plan_colour``).
CLEAN_COLOUR = "#a0aec0"


def ci_text(iv) -> str:
    """An accuracy interval in words: ``95% CI 97.1 – 98.0%``, or why there is none yet."""
    return (
        "no interval yet (not enough trials)"
        if not math.isfinite(iv.low)
        else f"95% CI {100 * iv.low:.1f} – {100 * iv.high:.1f}%"
    )


def draw_numbers(box, point, k: int, total: int, *, n: int, stale: bool = False) -> None:
    """The headline numbers of the first ``k`` of ``total`` trials of ``point`` into ``box``: unprotected and the
    plan big, clean and overheads small, the paired difference; a caption says the BER and the trial count
    (``estimate`` while running, ``previous setting`` when ``stale``)."""
    base = point.results[0]
    with box.container(key=f"{'stale' if stale else 'live'}_{n}"):
        if stale:
            st.caption(f":material/hourglass_top: previous setting (BER {ui.fmt_ber(base.ber)}), running the new one…")
        else:
            running = " · estimate, running…" if k < total else ""
            st.caption(f"BER {ui.fmt_ber(base.ber)} · {k} of {total} trials{running}")
        # the paired difference once (its judgement carries it): each interval is a bootstrap of a few ms
        judged = point.judge(-1, 0, k) if len(point.results) > 1 else None
        _headline(point, k, n, judged)
        _small_numbers(point.results[-1], n)
        diff = None if judged is None else judged.difference
        if diff is not None and math.isfinite(diff.low):
            st.markdown(
                f"Paired: **{ui.signed_pt(diff.estimate)}**, 95% CI {ui.signed_pt(diff.low, unit=False)} … "
                f"{ui.signed_pt(diff.high, unit=False)}",
                help="Plan minus unprotected, trial by trial: trial t of both saw the same faults in the "
                "unprotected copy, so the difference is far less noisy than the two separate intervals.",
            )


def _headline(point, k: int, n: int, judged) -> None:
    """Unprotected and the plan, big: mean accuracy over ``k`` trials, with arrows against clean and, for the
    plan, the paired difference of ``judged`` (its ``Judgement`` against unprotected; ``None``: no plan)."""
    base, res = point.results[0], point.results[-1]
    acc_b, acc_p = point.accuracy(0, k), point.accuracy(-1, k)
    diff = None if judged is None else judged.difference
    clear = judged is not None and judged.decided
    a, b = st.columns(2)
    with a.container(key=f"head_unprotected_{n}"):
        st.metric(
            "Unprotected",
            ui.pct(acc_b.estimate),
            delta=ui.pt(acc_b.estimate - base.clean_accuracy),
            help=f"Mean over {k} trials; {ci_text(acc_b)}. The arrow: change against clean.",
        )
    with b.container(key=f"head_protected_{n}"):
        st.metric(
            f"With {res.plan}",
            ui.pct(acc_p.estimate),
            delta=None if diff is None else ui.pt(diff.estimate),
            # neutral unless the paired difference is clear of zero: an arrow must not suggest a win that is noise
            delta_color="normal" if clear else "off",
            help=f"Mean over {k} trials; {ci_text(acc_p)}; worst trial {ui.pct(min(res.accuracies[:k]))}. "
            "The arrow: paired difference against unprotected, on the same faults.",
        )


def _small_numbers(res, n: int) -> None:
    """Clean accuracy and the plan's extra memory, without and with its index, small."""
    c, m, i = st.columns(3)
    with c.container(key=f"small_clean_{n}"):
        st.metric("Clean", ui.pct(res.clean_accuracy), help="Accuracy without faults, weights in this format.")
    with m.container(key=f"small_copies_{n}"):
        st.metric(
            "Extra memory",
            f"{res.overhead.copies_pct:.2f}%",
            help="Two extra copies of every protected bit, as % of the weight memory (the paper's figure).",
        )
    with i.container(key=f"small_index_{n}"):
        st.metric(
            "with index",
            f"{res.overhead.with_index_pct:.2f}%",
            help="Extra memory plus the record of which weights are protected: a bitmap or one 32-bit index per "
            "protected weight, whichever is smaller (range guard: two bounds per layer).",
        )


def draw_bars(box, point, *, k: int, n: int, stale: bool = False) -> None:
    """Mean accuracy with its 95% CI into ``box``: clean, unprotected, the plan (``stale``: an older setting's)."""
    with box.container(key=f"{'stale_chart' if stale else 'chart'}_{n}"):
        st.plotly_chart(bars_figure(point, k), width="stretch", key=f"bars_{n}")


def bars_figure(point, k: int) -> go.Figure:
    """Clean, unprotected and the plan's mean accuracy over the first ``k`` trials, each value under its bar."""
    res = point.results[-1]
    ivs = [point.accuracy(0, k), point.accuracy(-1, k)]
    means = [res.clean_accuracy] + [iv.estimate for iv in ivs]
    lo_err = [0.0] + [iv.estimate - iv.low if math.isfinite(iv.low) else 0.0 for iv in ivs]
    hi_err = [0.0] + [iv.high - iv.estimate if math.isfinite(iv.high) else 0.0 for iv in ivs]
    names = ["clean", "unprotected", res.plan]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[100 * v for v in means],
            marker_color=[CLEAN_COLOUR, ui.plan_colour("none"), ui.plan_colour(res.protect)],
            error_y=dict(
                type="data", symmetric=False, array=[100 * v for v in hi_err], arrayminus=[100 * v for v in lo_err]
            ),
            hovertemplate="%{x}: %{y:.2f}%<extra></extra>",
        )
    )
    # each value under its bar, where no whisker crosses it (inside the bar, a whisker drew over the label)
    fig.update_xaxes(tickvals=names, ticktext=[f"{name}<br><b>{ui.pct(v)}</b>" for name, v in zip(names, means)])
    fig.update_layout(
        title=f"Mean accuracy, 95% CI ({k} trials)",
        yaxis_title="accuracy (%)",
        yaxis_range=[0, 100],
        height=300,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    return fig
