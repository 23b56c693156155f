"""Fault lab: drag the protection budget and the bit error rate, watch accuracy under faults live.

Live means: the first estimate appears after the first two trials of the plan and its unprotected baseline,
then is refined as trials complete, with the trial count on screen; numbers of an older setting are dimmed
while a run is in flight; a new slider value reruns the page, which cancels the old run at its next trial.
"""

from __future__ import annotations

import html
import math
import re
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state
import ui
from xtmr_core.errors import XtmrError
from xtmr_core.spec import CampaignSpec
from xtmr_core.vocabulary import MODES, PLANS, RULES, WORD_BITS, check_bits, parse_bits

ROLE_COLOURS = {"sign": "#c53030", "exponent": "#dd6b20", "mantissa": "#2b6cb0", "value": "#2b6cb0"}
FLIPS_HELP = (
    "Faults hit every stored bit, TMR copies included, independently with probability BER; "
    "a protected bit is read as the majority of its three copies."
)
NAN_NOTE = (
    "A network whose output is NaN or infinite (an exponent flip can make one weight 10^38) predicts no class: "
    "every such image counts as wrong. That is how accuracy falls below the {chance} of guessing."
)

ui.enter_page()
st.title("Fault lab")
ui.link_notes(app_state.current_choice())
choice, exp = app_state.require_experiment()

# ---------------------------------------------------------------- controls (left) beside the numbers and chart

ctrl, nums, chart = st.columns([4, 4, 4], gap="medium")
with ctrl:
    protect = st.selectbox(
        "Protection plan",
        PLANS,
        format_func=ui.plan_label,
        key="protect",
        persist_state="session",
        help="Which (weight, bit) pairs are stored three times. The scorer plans protect all bits "
        "of the top budget% weights; 'bit positions' protects chosen bits of every weight.",
    )
    ber = st.select_slider(
        "Bit error rate (BER)",
        ui.BER_VALUES,
        format_func=ui.fmt_ber,
        key="ber",
        persist_state="session",
        help="Probability that one stored bit is flipped (log scale, 1e-7 … 1e-2).",
    )
    budget = st.select_slider(
        "Protection budget (% of weights)",
        ui.BUDGET_VALUES,
        format_func=lambda v: f"{v:g}%",
        key="budget",
        persist_state="session",
        disabled=not ui.uses_budget(protect),
        help="Share of weights, ranked by the chosen scorer, whose bits are all stored three "
        "times (the scorer plans); for 'damage', the extra memory in % of the weight memory.",
    )
    t_col, f_col = st.columns(2)
    trials = t_col.select_slider(
        "Trials (at most)",
        ui.TRIAL_VALUES,
        key="trials",
        persist_state="session",
        help="Seeded fault draws per setting; the plan and the unprotected baseline run the same trials. "
        "The first estimate shows after one trial and is refined as trials complete.",
    )
    fmt = ui.format_select(f_col)
    guard = st.toggle(
        "+ range guard on read",
        key="guard",
        persist_state="session",
        disabled=protect == "range",
        help="Also read every weight outside its layer's clean range as 0 (two bounds per layer, no copies).",
    )
    n_bits = WORD_BITS[fmt]
    bits = None
    if protect == "bits":
        text = st.text_input(
            "Protected bit positions",
            key=ui.format_key("bits", fmt),  # its value comes from the session (the link, or the format's top bit)
            help=f"Bits 0 (LSB) … {n_bits - 1} of every weight, e.g. 30, 23-31 or 0,7,30-31.",
        )
num_box, status_box = nums.empty(), nums.empty()
chart_box = chart.empty()

with st.expander(ui.options_label(), key="fl_options"):
    o1, o2, o3, o4 = st.columns(4)
    mode = o1.selectbox(
        "Fault type",
        MODES,
        key="mode",
        persist_state="session",
        help="flip: the bit inverts; stuck0 / stuck1: the bit reads 0 / 1 whatever was stored.",
    )
    fault_text = o2.text_input(
        "Only these bit positions fail",
        key=ui.format_key("fault_bits", fmt),
        help="Leave empty for all bits; e.g. 23-30 for fp32's exponent.",
    )
    seed = int(
        o3.number_input(
            "Seed",
            min_value=0,
            max_value=10_000,
            step=1,
            key="seed",
            help="Seed of the fault draws: the same seed gives the same faults.",
        )
    )
    rule = o4.selectbox(
        "LRP rule",
        RULES,
        key="rule",
        persist_state="session",
        help="How LRP ranks the weights the lrp and damage plans protect (the Relevance page draws it): "
        + " ".join(ui.RULE_HELP.values()),
    )
    st.caption(
        f"**{choice.model}** on **{choice.dataset}** ({choice.label}): {exp.n_weights:,} weights of "
        f"{n_bits} bits, {exp.n_weights * n_bits:,} stored bits that can flip. {ui.FORMAT_HELP[fmt]}"
    )

try:
    spec = CampaignSpec(
        protect,
        budget,
        ber,
        fmt,
        trials,
        seed,
        mode,
        fault_bits=check_bits(parse_bits(fault_text), fmt, "failing bit position") if fault_text.strip() else None,
        bits=check_bits(parse_bits(text), fmt) if protect == "bits" else None,
        rule=rule,
        guard=guard,
    )
except XtmrError as e:
    num_box.error(str(e))
    st.stop()


# ---------------------------------------------------------------- drawing


def _numbers(point, *, k: int, n: int, stale: bool = False) -> None:
    """The headline numbers of the first ``k`` trials of ``point`` into ``num_box``: unprotected and the plan
    big, clean and overheads small; a caption says the BER and the trial count (``estimate`` while running)."""
    base, res = point.results[0], point.results[-1]
    acc_b, acc_p = point.accuracy(0, k), point.accuracy(-1, k)
    diff = point.difference(-1, 0, k) if len(point.results) > 1 else None
    clear = diff is not None and point.judge(-1, 0, k).decided
    with num_box.container(key=f"{'stale' if stale else 'live'}_{n}"):
        if stale:
            st.caption(f":material/hourglass_top: previous setting (BER {ui.fmt_ber(base.ber)}), running the new one…")
        else:
            running = " · estimate, running…" if k < spec.trials else ""
            st.caption(f"BER {ui.fmt_ber(base.ber)} · {k} of {spec.trials} trials{running}")
        a, b = st.columns(2)
        with a.container(key=f"head_unprotected_{n}"):
            st.metric(
                "Unprotected",
                ui.pct(acc_b.estimate),
                delta=ui.pt(acc_b.estimate - base.clean_accuracy),
                help=f"Mean over {k} trials; {_ci_text(acc_b)}. The arrow: change against clean.",
            )
        with b.container(key=f"head_protected_{n}"):
            st.metric(
                f"With {res.plan}",
                ui.pct(acc_p.estimate),
                delta=None if diff is None else ui.pt(diff.estimate),
                # neutral unless the paired difference is clear of zero: an arrow must not suggest a win that is noise
                delta_color="normal" if clear else "off",
                help=f"Mean over {k} trials; {_ci_text(acc_p)}; worst trial {ui.pct(min(res.accuracies[:k]))}. "
                "The arrow: paired difference against unprotected, on the same faults.",
            )
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
        if diff is not None and math.isfinite(diff.low):
            st.markdown(
                f"Paired: **{ui.signed_pt(diff.estimate)}**, 95% CI {ui.signed_pt(diff.low, unit=False)} … "
                f"{ui.signed_pt(diff.high, unit=False)}",
                help="Plan minus unprotected, trial by trial: trial t of both saw the same faults in the "
                "unprotected copy, so the difference is far less noisy than the two separate intervals.",
            )


def _bars(point, *, k: int, n: int, stale: bool = False) -> None:
    """Mean accuracy with its 95% CI: clean, unprotected, the plan (``stale``: dimmed, an older setting's)."""
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
            marker_color=["#718096", "#c53030", "#2b6cb0"],
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
    with chart_box.container(key=f"{'stale_chart' if stale else 'chart'}_{n}"):
        st.plotly_chart(fig, width="stretch", key=f"bars_{n}")


def _ci_text(iv) -> str:
    return (
        "no interval yet (not enough trials)"
        if not math.isfinite(iv.low)
        else f"95% CI {100 * iv.low:.1f} – {100 * iv.high:.1f}%"
    )


# ---------------------------------------------------------------- streaming the point


def _run():
    """The plan and its unprotected baseline on the same trials (one grid point), drawn as trials complete."""
    specs = (spec,)
    n = [0]  # how many times the numbers were drawn in this run: each drawing gets its own element keys
    if not app_state.is_cached(choice, specs):
        shown = st.session_state.get("fl_shown")
        if shown is not None:  # the previous setting's numbers and chart, dimmed until the first estimate
            _numbers(shown, k=shown.trials, n=n[0], stale=True)
            _bars(shown, k=shown.trials, n=n[0], stale=True)
            n[0] += 1
        status_box.caption(":material/hourglass_top: running the first trial…")
    last = [0.0]

    def on_trial(partial) -> None:
        k = partial.trials
        now = time.perf_counter()
        status_box.caption(f":material/hourglass_top: trial {k} of {spec.trials}…")  # also where a rerun cancels
        if k < spec.trials and (k <= 2 or now - last[0] > 0.25):
            _numbers(partial, k=k, n=n[0])
            if k <= 2:
                _bars(partial, k=k, n=n[0])
            n[0] += 1
            last[0] = time.perf_counter()

    point = app_state.point(choice, specs, on_trial=on_trial)
    _numbers(point, k=point.trials, n=n[0])
    _bars(point, k=point.trials, n=n[0])
    status_box.caption(
        f":material/check_circle: {point.trials} trials, each of both plans on the same faults"
        + (" (stratified)" if point.strata is not None else "")
    )
    st.session_state["fl_shown"] = point
    return point


try:
    point = _run()
except XtmrError as e:
    num_box.error(str(e))
    if protect in ("lrp", "gradient", "taylor", "damage"):  # the plans that rank weights on reference images
        status_box.info("Plans that need no reference images: magnitude, random, full, bits, range, ecc.")
    st.stop()
base, res = point.results[0], point.results[-1]


def _signed_pt(v: float) -> str:
    """A difference in points with two decimals (fp32 differences are fractions of a point), never "-0.00"."""
    text = f"{100 * v:+.2f}"
    return ("±0.00" if text in ("+0.00", "-0.00") else text) + " pt"


def _verdict(point) -> str:
    """One sentence saying whether the plan beats no protection on the same faults (``PointResult.judge``:
    the one verdict rule, with the practical threshold and "not enough trials")."""
    res = point.results[-1]
    judged = point.judge(-1)
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
        f"paired difference {_signed_pt(diff.estimate)}, 95% CI {_signed_pt(diff.low)} … {_signed_pt(diff.high)} "
        f"over {point.trials} trials{design}"
    )
    if judged.verdict == "nothing to protect":
        return f":material/info: Nothing to protect at this BER: the faults cost under 0.5 pt ({ci})."
    if judged.verdict == "no practical difference":
        return (
            f":material/info: **{res.plan} makes no practical difference here**: {ci}, all of it within "
            f"±{100 * judged.threshold:.2g} pt (the smaller of 0.5 pt and a tenth of what the faults cost)."
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


if ui.uses_budget(protect) and budget == 0:
    st.info("A budget of 0% protects nothing: this plan equals no protection.", icon=":material/info:")
if res.protect != "none":
    st.markdown(_verdict(point))
chance = 1 / max(2, int(exp.y_test.max()) + 1)
if min(res.min_accuracy, base.min_accuracy) < chance:
    st.caption(":material/info: " + NAN_NOTE.format(chance=f"{100 * chance:.0f}%"))
st.caption(
    f"**{res.plan}** at BER {ui.fmt_ber(res.ber)}: mean {ui.pct(res.mean_accuracy, 2)} "
    f"({_ci_text(res.interval())}, {res.trials} trials, {res.mean_bit_flips:,.1f} faulty bits per trial on "
    f"average); unprotected {ui.pct(base.mean_accuracy, 2)} ({_ci_text(base.interval())}). "
    f"{res.overhead.protected_weights:,} weights, {res.overhead.protected_bits:,} bits protected. {FLIPS_HELP}"
)

# ---------------------------------------------------------------- trials and where the protection sits

layers = app_state.protected_layers(choice, spec)
left, right = st.columns(2)
accs = [100 * a for a in (*base.accuracies, *res.accuracies)]
span = max(accs) - min(accs)
size = 0.1 if span < 2 else span / 20  # int8's trials all lie within a point: bins of 0.1 pt, not 2.5
fig = go.Figure()
for r, name, colour in ((base, "unprotected", "#c53030"), (res, res.plan, "#2b6cb0")):
    fig.add_histogram(
        x=[100 * a for a in r.accuracies],
        name=name,
        marker_color=colour,
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
left.plotly_chart(fig, width="stretch", key="hist")
if point.strata is not None:
    left.caption(
        "Stratified: the rare trials where a fault decides are sampled far more often than they occur, so this "
        "histogram over-represents them; the means above weigh each stratum by its exact probability."
    )

fig = go.Figure(
    go.Bar(
        x=layers["layer"],
        y=layers["protected"],
        marker_color="#2b6cb0",
        customdata=np.stack([layers["layer %"], layers["weights"]], axis=1),
        hovertemplate="%{x}: %{y:,} of %{customdata[1]:,} weights (%{customdata[0]:.2f}%)<extra></extra>",
    )
)
fig.update_layout(title="Where the protected weights are", yaxis_title="protected weights", height=300)
fig.update_layout(margin=dict(l=10, r=10, t=40, b=10))
right.plotly_chart(fig, width="stretch", key="layers")


def _meta(choice, spec: CampaignSpec, point, rule: str) -> dict:
    """Columns that make every exported CSV reproduce its run: the model and its weights, the grid point (format,
    BER, fault type, failing bits, trials, seed, sampling design), the LRP rule and the versions."""
    return {
        "model": choice.model,
        "dataset": choice.dataset,
        "weights": choice.label,
        "checkpoint": choice.ckpt_id,
        "format": spec.fmt,
        "ber": spec.ber,
        "mode": spec.mode,
        "fault_bits": "all" if spec.fault_bits is None else " ".join(map(str, spec.fault_bits)),
        "trials": spec.trials,
        "seed": spec.seed,
        "design": point.design,
        "lrp_rule": rule,
        **app_state.versions(),
    }


def _plan_columns(s: CampaignSpec, label: str) -> dict:
    """A plan as the command line takes it (``--protect P --budget B [--guard] [--bits ...]``), beside its label."""
    bits = "" if s.bits is None else " ".join(map(str, s.bits))
    return {"plan": label, "protect": s.protect, "budget": s.budget, "guard": s.guard, "bits": bits}


def _file_name(kind: str, model: str, spec: CampaignSpec, plan: str, tail: str = "") -> str:
    """An export's file name: what it holds, the model, the plan and the grid point (no two exports share one)."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "_", f"{model}_{plan}").strip("_")
    return f"xtmr_{kind}_{slug}_{spec.fmt}_{ui.fmt_ber(spec.ber)}_seed{spec.seed}{tail}.csv"


def _trial_table() -> pd.DataFrame:
    n = point.trials  # every plan of the point ran the same trials

    def column(values: list) -> list:
        return [round(v, 6) for v in values[:n]]

    table = pd.DataFrame(
        {
            "trial": range(n),
            "unprotected_accuracy": column(base.accuracies),
            "unprotected_faulty_bits": column(base.flips),
            "plan": res.plan,
            "plan_accuracy": column(res.accuracies),
            "plan_faulty_bits": column(res.flips),
            "plan_overhead_pct": res.overhead.copies_pct,
        }
    )
    if point.strata is not None:  # a stratified point: each trial's stratum and its exact probability
        labels = [point.strata.strata[s].label for s in base.strata[:n]]
        weights = [point.strata.strata[s].weight for s in base.strata[:n]]
        table = table.assign(stratum=labels, stratum_weight=weights)
    return table.assign(**_plan_columns(spec, res.plan), **_meta(choice, spec, point, rule))


with st.expander("Trials, per-layer table and exports (CSV)", icon=":material/download:"):
    trial_table = _trial_table()
    st.caption("Accuracy of each trial; trial t of both saw the same faults in the unprotected copy.")
    st.dataframe(
        trial_table[["trial", "unprotected_accuracy", "plan_accuracy", "unprotected_faulty_bits", "plan_faulty_bits"]],
        hide_index=True,
        height=200,
    )
    e1, e2, e3 = st.columns([2, 1, 2], vertical_alignment="bottom")
    e1.download_button(
        "Per-trial results (CSV)",
        trial_table.to_csv(index=False).encode(),
        file_name=_file_name("trials", choice.model, spec, res.plan),
        mime="text/csv",
        icon=":material/table_view:",
        key="csv_trials",
        help="One row per trial, with the plan (as --protect, --budget, --guard, --bits take it), the grid point, "
        "the seed, the sampling design, the LRP rule and the versions in every row.",
    )
    pick = int(e2.number_input("Trial", 0, max(0, res.trials - 1), 0, key="fl_fault_trial"))
    which = e3.radio("Fault list of", ("unprotected", "the plan"), horizontal=True, key="fl_fault_of")
    fspec, label = (spec.point, "unprotected") if which == "unprotected" else (spec, res.plan)
    faults = app_state.fault_list(choice, fspec, pick, (spec,)).assign(trial=pick, **_plan_columns(fspec, label))
    e1.download_button(
        f"Fault list of trial {pick} (CSV, {len(faults):,} faults)",
        faults.assign(**_meta(choice, spec, point, rule)).to_csv(index=False).encode(),
        file_name=_file_name("faults", choice.model, spec, label, f"_trial{pick}"),
        mime="text/csv",
        icon=":material/list:",
        key="csv_faults",
        help="Every faulty stored bit of that trial: layer, index, bit, copy (0 primary, 1/2 TMR copies).",
    )
    st.dataframe(
        layers,
        hide_index=True,
        width="stretch",
        column_config={
            "layer %": st.column_config.NumberColumn(format="%.2f"),
            "of protected %": st.column_config.NumberColumn(format="%.1f"),
        },
    )

# ---------------------------------------------------------------- several plans at this point


@st.fragment
def compare_plans() -> None:
    st.subheader("Compare plans at this point")
    chosen = st.multiselect(
        "Plans",
        [p for p in PLANS if p != "none"],
        default=[p for p in ("lrp", "magnitude", "bits", "range", "ecc", "full") if p in PLANS],
        format_func=ui.plan_label,
        key="fl_compare",
        help=f"Each at budget {budget:g}% (scorer plans), bit {ui.top_bit(fmt)} (bits plan), on the same "
        "seeded faults as above.",
    )
    if not st.toggle(
        "Run the comparison", key="fl_compare_on", help="All chosen plans on the same trials as above (cached)."
    ):
        return
    specs = tuple(spec.replace(protect=p, bits=(ui.top_bit(fmt),) if p == "bits" else spec.bits) for p in chosen)
    if not specs:
        return
    bar = st.progress(0.0)
    many = app_state.point(
        choice,
        specs,
        on_trial=lambda part: bar.progress(part.trials / spec.trials, text=f"trial {part.trials} of {spec.trials}"),
    )
    bar.empty()
    plans = range(1, len(many.results))
    diffs = [many.difference(i) for i in plans]
    fig = _compare_figure(many, diffs, spec)
    st.plotly_chart(fig, width="stretch", key="compare")
    st.dataframe(
        pd.DataFrame(
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
        ),
        hide_index=True,
    )


def _compare_figure(many, diffs: list, spec: CampaignSpec) -> go.Figure:
    """Mean accuracy of each plan of ``many`` (the unprotected baseline first) with its 95% CI as whiskers."""
    ivs = [many.accuracy(i) for i in range(len(many.results))]
    means = [100 * iv.estimate for iv in ivs]
    fig = go.Figure(
        go.Bar(
            x=[r.plan if i else "unprotected" for i, r in enumerate(many.results)],
            y=means,
            marker_color=["#c53030"] + ["#2b6cb0"] * len(diffs),
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


compare_plans()

# ---------------------------------------------------------------- teaching corner


def _bit_row(bits: str, roles: list[str], flipped: set[int]) -> str:
    n = len(bits)
    cells = []
    for i, ch in enumerate(bits):
        pos = n - 1 - i
        style = f"border-bottom:3px solid {ROLE_COLOURS[roles[pos]]};"
        if pos in flipped:
            style += "background:#fed7d7;font-weight:700;outline:2px solid #c53030;"
        cells.append(f'<span title="bit {pos} ({roles[pos]})" style="{style}">{html.escape(ch)}</span>')
    return '<span class="xtmr-word">' + "".join(cells) + "</span>"


@st.fragment
def teaching_corner() -> None:
    try:
        _teaching_corner()
    except XtmrError as e:  # a fragment rerun bypasses app.py's guard: explain here (e.g. a weak model)
        st.error(str(e))


def _roles(fmt: str, n_bits: int) -> list[str]:
    """Role of each bit position (0 = LSB), as the word rows colour them."""
    if fmt == "int8":
        return ["value"] * (n_bits - 1) + ["sign"]
    top = ui.top_bit(fmt)
    lo = {"fp32": 23, "fp16": 10, "bf16": 7}[fmt]
    return ["mantissa" if b < lo else "exponent" if b <= top else "sign" for b in range(n_bits)]


def _teaching_corner() -> None:
    st.subheader("One weight, one bit")
    st.caption(
        "Pick a weight and a bit: see the stored word, the value before and after the flip, and what that "
        "single flip does to accuracy. Then store the word three times and watch the vote."
    )
    fmt = ui.setting("fmt")
    n_bits = WORD_BITS[fmt]
    roles = _roles(fmt, n_bits)
    names = list(exp.layout.names)
    c1, c2, c3 = st.columns([2, 3, 2])
    layer = c1.selectbox("Layer", names, key=f"t_layer_{choice.key}", help="The layer the weight belongs to.")
    how = c2.radio(
        "Which weight",
        ("most relevant (LRP)", "least relevant (LRP)", "by index"),
        key="t_how",
        horizontal=True,
        help="Rank inside this layer by |LRP relevance|, or give the index yourself.",
    )
    li = names.index(layer)
    lo, hi = int(exp.layout.offsets[li]), int(exp.layout.offsets[li + 1])
    if how == "by index":
        local = int(
            c3.number_input(
                f"Index in {layer} (0 … {hi - lo - 1})",
                min_value=0,
                max_value=hi - lo - 1,
                step=1,
                key=f"t_index_{choice.key}_{layer}",
            )
        )
    else:
        try:
            s, by = app_state.scores(choice, "lrp", ui.setting("rule"))[lo:hi], ""
        except XtmrError as e:  # LRP cannot run on this model: rank by magnitude, and say why
            s, by = app_state.scores(choice, "magnitude")[lo:hi], " (by |w|)"
            st.caption(f"Ranked by magnitude |w| instead of LRP: {e}")
        local = int(np.argmax(s) if how.startswith("most") else np.argmin(s))
        c3.write(f"weight #{local} of {layer}{by}")
    weight = lo + local
    bit = st.slider(
        "Bit to flip",
        0,
        n_bits - 1,
        value=ui.top_bit(fmt),
        key=f"t_bit_{fmt}",
        help=f"0 is the least significant bit; in {fmt}: "
        + ", ".join(
            f"{r} {min(b for b, x in enumerate(roles) if x == r)}–{max(b for b, x in enumerate(roles) if x == r)}"
            for r in dict.fromkeys(reversed(roles))
        )
        + ".",
    )
    out = app_state.flip(choice, weight, bit, fmt)
    _, where = exp.layout.locate(weight)
    st.markdown(f"**{out.layer}{list(where)}**, bit {out.bit} ({ui.role_label(fmt, out.bit, out.role)}), in {fmt}:")
    label = '<span style="display:inline-block;width:3.6em">{}</span>'
    st.markdown(
        f"<div>{label.format('before')}{_bit_row(out.bits_before, roles, set())}</div>"
        f"<div>{label.format('after')}{_bit_row(out.bits_after, roles, {bit})}</div>",
        unsafe_allow_html=True,
    )
    st.caption(
        "Underline colour: "
        + ", ".join(
            f"<span style='color:{ROLE_COLOURS[r]}'>{ui.role_label(fmt, n_bits - 1, r) if r == 'sign' else r}</span>"
            for r in dict.fromkeys(reversed(roles))
        ),
        unsafe_allow_html=True,
    )
    if fmt == "int8" and bit == n_bits - 1:
        st.caption(
            ":material/info: int8 stores two's complement: bit 7 is worth −128, not a sign flag, so flipping it "
            "moves a weight by 128 steps: +127 becomes −1 and −1 becomes +127."
        )
    k = st.columns(4)
    with k[0].container(key="small_value_before"):
        st.metric("Value before", ui.sci(out.value_before))
    with k[1].container(key="small_value_after"):
        st.metric("Value after", ui.sci(out.value_after))
    with k[2].container(key="small_flip_accuracy"):
        st.metric(
            "Accuracy with this flip",
            ui.pct(out.accuracy),
            delta=(d := ui.pt(out.accuracy - out.clean_accuracy)) and f"{d} vs clean",
        )
    with k[3].container(key="small_flip_changed"):
        st.metric(
            "Predictions changed",
            ui.pct(out.mismatch),
            help="Share of test images whose predicted class differs from the clean model's.",
        )

    st.markdown(
        "**Triple modular redundancy, bit by bit.** The word is stored three times; each copy can suffer "
        "its own flips; the voter keeps, at each bit, the value at least two copies agree on."
    )
    options = list(range(n_bits - 1, -1, -1))
    keys = (f"t_fa_{fmt}_{bit}", f"t_fb_{fmt}_{bit}", f"t_fc_{fmt}_{bit}")
    draws_key = f"t_draws_{fmt}_{bit}"

    def random_draw() -> None:  # before the widgets exist in the next run, so their state may be set
        draw = st.session_state.get(draws_key, 0) + 1
        st.session_state[draws_key] = draw
        flips = app_state.draw_flips(n_bits, ui.setting("ber"), 1000 * weight + draw)
        for key, f in zip(keys, flips):
            st.session_state[key] = list(reversed(f))

    v = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
    flips = tuple(
        tuple(
            v[i].multiselect(
                f"Flips in copy {c}",
                options,
                # once a random draw has set the state, the state is the value (a default beside it would warn)
                default=None if keys[i] in st.session_state else [bit] if i == 0 else [],
                key=keys[i],
            )
        )
        for i, c in enumerate("ABC")
    )
    ber_now = ui.setting("ber")
    v[3].button(
        "Random flips",
        on_click=random_draw,
        icon=":material/casino:",
        key="t_random",
        help=f"Flip each of the {3 * n_bits} stored bits of this weight with probability BER = {ui.fmt_ber(ber_now)} "
        "(the slider above), as a campaign does "
        f"(on average {3 * n_bits * ber_now:.2g} flips: almost always none).",
    )
    if st.session_state.get(draws_key):
        st.caption(
            f"Random draw #{st.session_state[draws_key]} at BER {ui.fmt_ber(ber_now)}: "
            f"{sum(len(f) for f in flips)} flipped bit(s) in the three copies."
        )
    demo = app_state.vote(int(out.bits_before, 2), n_bits, flips)
    table = demo.table()
    clean_row = table.loc["clean"].to_numpy()
    wrong = (table.to_numpy() != clean_row).astype(float)
    fig = go.Figure(
        go.Heatmap(
            z=wrong,
            x=[str(c) for c in table.columns],
            y=list(table.index),
            text=table.to_numpy(),
            texttemplate="%{text}",
            colorscale=[[0, "#edf2f7"], [1, "#fc8181"]],
            zmin=0,
            zmax=1,
            showscale=False,
            xgap=2,
            ygap=2,
            hovertemplate="%{y}, bit %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_xaxes(type="category")  # keep MSB left, as in the stored word above
    fig.update_layout(
        height=230,
        margin=dict(l=10, r=10, t=10, b=30),
        yaxis_autorange="reversed",
        xaxis_title="bit position (MSB left); red = differs from the clean word",
    )
    st.plotly_chart(fig, width="stretch", key="vote")
    voted = app_state.word_value(choice, weight, demo.voted, fmt)
    if demo.corrected:
        st.success(
            f"The vote reads back the clean word, value {ui.sci(voted)}: every flipped bit was wrong in only one copy.",
            icon=":material/check_circle:",
        )
    else:
        st.error(
            f"The vote reads {ui.sci(voted)} instead of {ui.sci(out.value_before)}: it is wrong at "
            f"bit{'s' if len(demo.wrong_bits) > 1 else ''} {', '.join(map(str, demo.wrong_bits))}, where two copies "
            "were flipped at the same position, which TMR cannot correct (probability ≈ 3·BER² per bit).",
            icon=":material/error:",
        )
    _wrecked_digits()


def _wrecked_digits() -> None:
    """A few test digits whose prediction the worst unprotected trial of the live panel changed."""
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


st.divider()
teaching_corner()
