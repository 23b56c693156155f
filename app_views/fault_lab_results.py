"""What the Fault lab says under its numbers: the verdict, the point in one caption, each trial's accuracy, where
the protected weights sit, and test digits the worst unprotected trial misclassifies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state
import ui
from app_session import ModelChoice
from app_views.fault_lab_numbers import ci_text
from xtmr_core.spec import CampaignSpec

FLIPS_HELP = (
    "Faults hit every stored bit, TMR copies included, independently with probability BER; "
    "a protected bit is read as the majority of its three copies."
)
NAN_NOTE = (
    "A network whose output is NaN or infinite (an exponent flip can make one weight 10^38) predicts no class: "
    "every such image counts as wrong. That is how accuracy falls below the {chance} of guessing."
)


def verdict(point) -> str:
    """One sentence saying whether the plan beats no protection on the same faults: ``PointResult.judge``, the
    engine's one verdict rule (practical threshold, "nothing to protect", "not enough trials"), in words."""
    res, judged = point.results[-1], point.judge(-1)
    diff = judged.difference
    design = " (stratified on the faults that decide)" if point.strata is not None else ""
    if judged.verdict == "not enough trials":
        need = f"at least {judged.needed} trials" if judged.needed else "more trials"
        return (
            f":material/hourglass_top: **{res.plan}: not enough trials to tell** after {point.trials}{design}: "
            f"run {need}. No trial so far shows how often the faults that matter strike where the plans differ, "
            "so no interval can be given yet."
        )
    ci = (
        f"paired difference {ui.signed_pt(diff.estimate, 2)}, 95% CI {ui.signed_pt(diff.low, 2)} … "
        f"{ui.signed_pt(diff.high, 2)} over {point.trials} trials{design}"
    )
    if judged.verdict == "nothing to protect":
        cost = 100 * max(judged.loss, 0.0)
        return f":material/info: Nothing to protect at this BER: the faults cost {cost:.2f} pt ({ci})."
    if judged.verdict == "no practical difference":
        return (
            f":material/info: **{res.plan} makes no practical difference here**: {ci}, all of it within "
            f"±{100 * judged.threshold:.2g} pt, the practical threshold where the faults cost "
            f"{100 * judged.loss:.2f} pt."
        )
    if judged.verdict == "helps":
        return (
            f":material/check_circle: **{res.plan} helps here**: {ci} (each trial of both saw the same faults "
            "in the unprotected copy)."
        )
    if judged.verdict == "hurts":
        return f":material/warning: **{res.plan} is worse than no protection here**: {ci}."
    return (
        f":material/warning: **Within noise: {res.plan} is no better than no protection here** ({ci}). The faults "
        "that matter hit weights it leaves unprotected; compare the *bit positions* plan (e.g. bit 30 in fp32) or "
        "the *range guard*."
    )


def summary(point, spec: CampaignSpec, n_classes: int) -> None:
    """Under the numbers: a zero budget said to equal no protection, the verdict, why accuracy can fall below
    chance (``n_classes``), and the point in one caption."""
    base, res = point.results[0], point.results[-1]
    if ui.uses_budget(spec.protect) and spec.budget == 0:
        st.info("A budget of 0% protects nothing: this plan equals no protection.", icon=":material/info:")
    if res.protect != "none":
        st.markdown(verdict(point))
    chance = 1 / max(2, n_classes)
    if min(res.min_accuracy, base.min_accuracy) < chance:
        st.caption(":material/info: " + NAN_NOTE.format(chance=f"{100 * chance:.0f}%"))
    st.caption(
        f"**{res.plan}** at BER {ui.fmt_ber(res.ber)}: mean {ui.pct(res.mean_accuracy, 2)} "
        f"({ci_text(res.interval())}, {res.trials} trials, {res.mean_bit_flips:,.1f} faulty bits per trial on "
        f"average); unprotected {ui.pct(base.mean_accuracy, 2)} ({ci_text(base.interval())}). "
        f"{res.overhead.protected_weights:,} weights, {res.overhead.protected_bits:,} bits protected. {FLIPS_HELP}"
    )


def trials_and_layers(point, layers: pd.DataFrame) -> None:
    """Side by side: each trial's accuracy (unprotected and the plan), and the protected weights per layer."""
    left, right = st.columns(2)
    left.plotly_chart(trials_figure(point), width="stretch", key="hist")
    if point.strata is not None:
        left.caption(
            "Stratified: the rare trials where a fault decides are sampled far more often than they occur, so this "
            "histogram over-represents them; the means above weigh each stratum by its exact probability."
        )
    right.plotly_chart(layers_figure(layers, ui.plan_colour(point.results[-1].protect)), width="stretch", key="layers")


def trials_figure(point) -> go.Figure:
    """A histogram of the trials' accuracies, unprotected and the plan side by side."""
    base, res = point.results[0], point.results[-1]
    accs = [100 * a for a in (*base.accuracies, *res.accuracies)]
    span = max(accs) - min(accs)
    size = 0.1 if span < 2 else span / 20  # int8's trials all lie within a point: bins of 0.1 pt, not 2.5
    fig = go.Figure()
    for r, name in ((base, "unprotected"), (res, res.plan)):
        fig.add_histogram(
            x=[100 * a for a in r.accuracies],
            name=name,
            marker_color=ui.plan_colour(r.protect),
            xbins=dict(start=min(accs) - size / 2, end=max(accs) + size, size=size),
        )
    fig.update_layout(
        barmode="group",  # side by side: no blended overlap colour that the legend does not name
        title="Accuracy of each trial",
        xaxis_title="accuracy (%)",
        yaxis_title="trials",
        height=300,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.3),
    )
    return fig


def layers_figure(layers: pd.DataFrame, colour: str) -> go.Figure:
    """Protected weights per layer (``app_state.protected_layers``) in the plan's ``colour``, with each layer's
    share on hover."""
    fig = go.Figure(
        go.Bar(
            x=layers["layer"],
            y=layers["protected"],
            marker_color=colour,
            customdata=np.stack([layers["layer %"], layers["weights"]], axis=1),
            hovertemplate="%{x}: %{y:,} of %{customdata[1]:,} weights (%{customdata[0]:.2f}%)<extra></extra>",
        )
    )
    fig.update_layout(title="Where the protected weights are", yaxis_title="protected weights", height=300)
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10))
    return fig


def wrecked_digits(choice: ModelChoice, spec: CampaignSpec, point) -> None:
    """A few test digits whose prediction the worst unprotected trial of the point changed."""
    base = point.results[0]
    st.markdown("**What the faults do to predictions.**")
    if not base.accuracies or base.min_accuracy >= base.clean_accuracy:
        st.caption("No trial of the unprotected campaign above changed the accuracy: raise the BER to wreck one.")
        return
    worst = int(np.argmin(base.accuracies))
    digits = app_state.trial_digits(choice, spec.point, worst, specs=(spec,))
    st.caption(
        f"Test images the worst unprotected trial above (trial {worst}, accuracy {ui.pct(base.accuracies[worst])}) "
        "classifies differently from the clean model. “none” means the output was NaN or infinite: counted as wrong."
    )
    if digits.empty:
        return
    cols = st.columns(len(digits))
    for col, row in zip(cols, digits.itertuples()):
        col.image(np.asarray(row.image, dtype=np.float32), width=72, clamp=True)  # already in [0, 1], RGB or gray
        after = "none" if row.faulty < 0 else str(row.faulty)
        col.caption(f"label {row.label}: {row.clean} → **{after}**")
