"""Fault lab: drag the protection budget and the bit error rate, watch accuracy under faults live."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import app_state
from xtmr_core.errors import XtmrError
from xtmr_core.formats import bit_roles
from xtmr_core.stats import paired_difference
from xtmr_core.vocabulary import MODES, PLANS, WORD_BITS, check_bits, parse_bits
from xtmr_core.vocabulary import SCORERS as SCORER_PLANS
from xtmr_core.vote_view import vote_demo

PLAN_LABELS = {
    "none": "no protection",
    "lrp": "LRP: top budget% by relevance (the paper)",
    "magnitude": "magnitude: top budget% by |w|",
    "gradient": "gradient: top budget% by |dL/dw|",
    "taylor": "Taylor: top budget% by |w·dL/dw|",
    "random": "random: budget% chosen at random",
    "full": "full TMR: every bit three times",
    "bits": "bit positions: chosen bits of every weight",
    "range": "range guard: out-of-range reads → 0 (no copies)",
    "ecc": "ECC SEC-DED (72, 64): 8 check bits per 64-bit word (12.5%)",
    "damage": "damage: top (weight, bit) pairs by LRP × |Δw| (budget = % extra memory)",
}
ROLE_COLOURS = {"sign": "#c53030", "exponent": "#dd6b20", "mantissa": "#2b6cb0", "value": "#2b6cb0"}
FLIPS_HELP = (
    "Faults hit every stored bit, TMR copies included, independently with probability BER; "
    "a protected bit is read as the majority of its three copies."
)

app_state.enter_page()
st.title("Fault lab")
st.caption(
    "Random bit flips in weight memory, with and without selective TMR. Every change reruns only this "
    "panel; results are cached, so going back to a setting is instant."
)
choice, exp = app_state.require_experiment()
fmt_col, about_col = st.columns([1, 3], vertical_alignment="bottom")
_fmt = app_state.format_select(fmt_col)  # outside the live panel: a new format redraws the whole page
about_col.caption(
    f"**{choice.model}** on **{choice.dataset}** ({choice.label}): {exp.n_weights:,} weights of "
    f"{WORD_BITS[_fmt]} bits each, {exp.n_weights * WORD_BITS[_fmt]:,} stored bits that can flip. "
    f"{app_state.FORMAT_HELP[_fmt]}"
)


@st.fragment
def live_panel() -> None:
    c1, c2 = st.columns([3, 1])
    protect = c1.selectbox(
        "Protection plan",
        PLANS,
        index=PLANS.index("lrp"),
        format_func=PLAN_LABELS.get,
        key="protect",
        persist_state="session",
        help="Which (weight, bit) pairs are stored three times. The scorer plans protect all bits "
        "of the top budget% weights; 'bit positions' protects chosen bits of every weight.",
    )
    fmt = app_state.setting("fmt")
    trials = c2.select_slider(
        "Trials (at most)",
        (2, 5, 10, 20, 50, 100),
        value=10,
        key="trials",
        persist_state="session",
        help="Seeded fault draws per setting. A campaign stops early once its 95% CI is "
        "within ±0.5 points (after 5 trials).",
    )
    s1, s2 = st.columns(2)
    ber = s1.select_slider(
        "Bit error rate (BER)",
        app_state.BER_VALUES,
        value=1e-5,
        format_func=app_state.fmt_ber,
        key="ber",
        persist_state="session",
        help="Probability that one stored bit is flipped (log scale, 1e-7 … 1e-2).",
    )
    budget = s2.select_slider(
        "Protection budget (% of weights)",
        app_state.BUDGET_VALUES,
        value=1.0,
        format_func=lambda v: f"{v:g}%",
        key="budget",
        persist_state="session",
        disabled=protect not in SCORER_PLANS,
        help="Share of weights, ranked by the chosen scorer, whose bits are all stored three "
        "times. Only the scorer plans use it.",
    )
    n_bits = WORD_BITS[fmt]
    bits = None
    if protect == "bits":
        text = st.text_input(
            "Protected bit positions",
            value=str(app_state.top_bit(fmt)),
            key=f"bits_{fmt}",
            help=f"Bits 0 (LSB) … {n_bits - 1} of every weight, e.g. 30, 23-31 or 0,7,30-31.",
        )
        try:
            bits = check_bits(parse_bits(text), fmt)
        except XtmrError as e:
            st.error(str(e))
            return
    with st.expander("More fault options"):
        o1, o2, o3 = st.columns(3)
        mode = o1.selectbox(
            "Fault type",
            MODES,
            key="mode",
            persist_state="session",
            help="flip: the bit inverts; stuck0 / stuck1: the bit reads 0 / 1 whatever was stored.",
        )
        fault_text = o2.text_input(
            "Only these bit positions fail",
            value="",
            key=f"fault_bits_{fmt}",
            help="Leave empty for all bits; e.g. 23-30 for fp32's exponent.",
        )
        seed = int(
            o3.number_input(
                "Seed",
                min_value=0,
                max_value=10_000,
                value=0,
                step=1,
                key="seed",
                help="Seed of the fault draws: the same seed gives the same faults.",
            )
        )
        fault_bits = None
        if fault_text.strip():
            try:
                fault_bits = check_bits(parse_bits(fault_text), fmt, "fault bit position")
            except XtmrError as e:
                st.error(str(e))
                return
    if protect in SCORER_PLANS and budget == 0:
        st.info("A budget of 0% protects nothing: this plan equals no protection.")
    try:
        with st.spinner(f"Running up to {trials} trials at BER {app_state.fmt_ber(ber)}…", show_time=True):
            res, base, layers = _campaigns(protect, budget, ber, fmt, trials, seed, bits, mode, fault_bits)
    except XtmrError as e:
        st.error(str(e))
        return
    _draw_results(res, base, layers)


def _campaigns(protect, budget, ber, fmt, trials, seed, bits, mode, fault_bits):
    """The plan's campaign, the unprotected baseline on the same faults, and where the plan's weights sit."""
    rule = app_state.setting("rule")
    res = app_state.campaign(
        choice.key,
        exp,
        protect,
        budget,
        ber,
        fmt,
        trials=trials,
        seed=seed,
        bits=bits,
        rule=rule,
        mode=mode,
        fault_bits=fault_bits,
    )
    base = app_state.campaign(
        choice.key,
        exp,
        "none",
        0.0,
        ber,
        fmt,
        trials=trials,
        seed=seed,
        mode=mode,
        fault_bits=fault_bits,
    )
    layers = app_state.protected_layers(choice.key, exp, protect, budget, fmt, bits=bits, rule=rule)
    return res, base, layers


def _ci_text(r) -> str:
    lo, hi = r.ci95
    return "CI needs 2 trials" if not np.isfinite(lo) else f"95% CI {100 * lo:.1f} – {100 * hi:.1f}%"


def _verdict(res, base, diff: float, lo: float, hi: float, clear: bool) -> str:
    """One sentence saying whether the plan beats no protection on the same faults, with the numbers."""
    if not np.isfinite(lo):
        return f"**{res.plan}**: run at least 2 trials to tell protection from chance."
    n = min(res.trials, base.trials)
    ci = f"paired difference {100 * diff:+.1f} pt, 95% CI {100 * lo:+.1f} … {100 * hi:+.1f} over {n} trials"
    if clear and diff > 0:
        return f"✅ **{res.plan} helps here**: {ci} (each trial of both saw the same faults in the unprotected copy)."
    if clear:
        return f"⚠️ **{res.plan} is worse than no protection here**: {ci}."
    loss = res.clean_accuracy - base.mean_accuracy
    if loss < 0.005:
        return f"ℹ️ Nothing to protect at this BER: unprotected accuracy is within 0.5 pt of clean ({ci})."
    return (
        f"⚠️ **Within noise: {res.plan} is no better than no protection here** ({ci}). The faults that matter "
        f"hit weights it leaves unprotected; compare the *bit positions* plan (e.g. bit 30 in fp32) or the "
        f"*range guard*."
    )


def _draw_results(res, base, layers) -> None:
    m = st.columns(5)
    with m[0].container(key="acc_clean"):
        st.metric("Clean", app_state.pct(res.clean_accuracy), help="Accuracy without faults, weights in this format.")
    with m[1].container(key="acc_unprotected"):
        st.metric(
            "Unprotected",
            app_state.pct(base.mean_accuracy),
            delta=f"{100 * (base.mean_accuracy - res.clean_accuracy):+.1f} pt vs clean",
            delta_color="normal",
            help=f"Mean over {base.trials} trials; {_ci_text(base)}.",
        )
    diff, diff_lo, diff_hi = paired_difference(res.accuracies, base.accuracies)
    # Neutral colour unless the paired difference is clear of zero: an arrow must not suggest a win that is noise.
    clear = np.isfinite(diff_lo) and (diff_lo > 0 or diff_hi < 0)
    with m[2].container(key="acc_protected"):
        st.metric(
            f"With {res.plan}",
            app_state.pct(res.mean_accuracy),
            delta=f"{100 * (res.mean_accuracy - base.mean_accuracy):+.1f} pt vs unprotected",
            delta_color="normal" if clear else "off",
            help=f"Mean over {res.trials} trials; {_ci_text(res)}; worst trial {app_state.pct(res.min_accuracy)}.",
        )
    with m[3].container(key="overhead_copies"):
        st.metric(
            "Extra memory (copies)",
            f"{res.overhead.copies_pct:.2f}%",
            help="Two extra copies of every protected bit, as % of the weight memory (the paper's figure).",
        )
    with m[4].container(key="overhead_index"):
        st.metric(
            "… with index",
            f"{res.overhead.with_index_pct:.2f}%",
            help="Plus the record of which weights are protected: a bitmap or one 32-bit index per "
            "protected weight, whichever is smaller (range guard: two bounds per layer).",
        )
    st.caption(
        f"**{res.plan}** at BER {app_state.fmt_ber(res.ber)}: mean {app_state.pct(res.mean_accuracy, 2)} "
        f"({_ci_text(res)}, {res.trials} trials, "
        f"{res.mean_bit_flips:,.1f} faulty bits per trial on average); unprotected "
        f"{app_state.pct(base.mean_accuracy, 2)} ({_ci_text(base)}). {res.overhead.protected_weights:,} weights, "
        f"{res.overhead.protected_bits:,} bits protected. {FLIPS_HELP}"
    )

    if res.protect != "none":
        st.markdown(_verdict(res, base, diff, diff_lo, diff_hi, clear))

    left, mid, right = st.columns(3)
    names = ["clean", "unprotected", res.plan]
    means = [res.clean_accuracy, base.mean_accuracy, res.mean_accuracy]
    errs_lo, errs_hi = [0.0], [0.0]
    for r in (base, res):
        lo, hi = r.ci95
        ok = np.isfinite(lo)
        errs_lo.append(r.mean_accuracy - lo if ok else 0.0)
        errs_hi.append(hi - r.mean_accuracy if ok else 0.0)
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[100 * v for v in means],
            marker_color=["#718096", "#c53030", "#2b6cb0"],
            error_y=dict(
                type="data", symmetric=False, array=[100 * v for v in errs_hi], arrayminus=[100 * v for v in errs_lo]
            ),
        )
    )
    fig.update_layout(
        title="Mean accuracy, 95% CI",
        yaxis_title="accuracy (%)",
        yaxis_range=[0, 100],
        height=320,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    left.plotly_chart(fig, width="stretch", key="bars")

    fig = go.Figure()
    fig.add_histogram(
        x=[100 * a for a in base.accuracies],
        name="unprotected",
        marker_color="#c53030",
        opacity=0.6,
        xbins=dict(start=0, end=100.5, size=2.5),
    )
    fig.add_histogram(
        x=[100 * a for a in res.accuracies],
        name=res.plan,
        marker_color="#2b6cb0",
        opacity=0.6,
        xbins=dict(start=0, end=100.5, size=2.5),
    )
    fig.update_layout(
        barmode="overlay",
        title="Accuracy of each trial",
        xaxis_title="accuracy (%)",
        yaxis_title="trials",
        height=320,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.25),
    )
    mid.plotly_chart(fig, width="stretch", key="hist")

    fig = go.Figure(
        go.Bar(
            x=layers["layer"],
            y=layers["protected"],
            marker_color="#2b6cb0",
            customdata=np.stack([layers["layer %"], layers["weights"]], axis=1),
            hovertemplate="%{x}: %{y:,} of %{customdata[1]:,} weights (%{customdata[0]:.2f}%)<extra></extra>",
        )
    )
    fig.update_layout(
        title="Where the protected weights are",
        yaxis_title="protected weights",
        height=320,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    right.plotly_chart(fig, width="stretch", key="layers")
    with st.expander("Per-layer table and trial list"):
        st.dataframe(
            layers,
            hide_index=True,
            width="stretch",
            column_config={
                "layer %": st.column_config.NumberColumn(format="%.2f"),
                "of protected %": st.column_config.NumberColumn(format="%.1f"),
            },
        )
        st.caption(
            "Accuracy of each trial (%), trial by trial; trial t of both saw the same faults in the unprotected copy."
        )
        n = max(len(base.accuracies), len(res.accuracies))  # early stopping can end one campaign sooner

        def column(accs: list[float]) -> list[float | None]:
            return [round(100 * a, 2) for a in accs] + [None] * (n - len(accs))

        st.dataframe(
            {"trial": list(range(n)), "unprotected": column(base.accuracies), res.plan: column(res.accuracies)},
            hide_index=True,
        )


live_panel()

# ---------------------------------------------------------------- teaching corner


def _bit_row(bits: str, roles: list[str], flipped: set[int]) -> str:
    n = len(bits)
    cells = []
    for i, ch in enumerate(bits):
        pos = n - 1 - i
        colour = ROLE_COLOURS[roles[pos]]
        style = (
            f"display:inline-block;width:1.4em;text-align:center;font-family:monospace;font-size:1.05em;"
            f"border-bottom:3px solid {colour};margin:0 1px;"
        )
        if pos in flipped:
            style += "background:#fed7d7;font-weight:700;outline:2px solid #c53030;"
        cells.append(f'<span title="bit {pos} ({roles[pos]})" style="{style}">{html.escape(ch)}</span>')
    return "".join(cells)


@st.fragment
def teaching_corner() -> None:
    try:
        _teaching_corner()
    except XtmrError as e:  # a fragment rerun bypasses app.py's guard: explain here (e.g. a weak model)
        st.error(str(e))


def _teaching_corner() -> None:
    st.subheader("One weight, one bit")
    st.caption(
        "Pick a weight and a bit: see the stored word, the value before and after the flip, and what that "
        "single flip does to accuracy. Then store the word three times and watch the vote."
    )
    fmt = app_state.setting("fmt")
    n_bits = WORD_BITS[fmt]
    roles = bit_roles(fmt)
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
                value=0,
                step=1,
                key=f"t_index_{choice.key}_{layer}",
            )
        )
    else:
        s = app_state.scores(exp, "lrp", app_state.setting("rule"))[lo:hi]
        local = int(np.argmax(s) if how.startswith("most") else np.argmin(s))
        c3.write(f"weight #{local} of {layer}")
    weight = lo + local
    bit = st.slider(
        "Bit to flip",
        0,
        n_bits - 1,
        value=app_state.top_bit(fmt),
        key=f"t_bit_{fmt}",
        help=f"0 is the least significant bit; in {fmt}: "
        + ", ".join(
            f"{r} {min(b for b, x in enumerate(roles) if x == r)}–{max(b for b, x in enumerate(roles) if x == r)}"
            for r in dict.fromkeys(reversed(roles))
        )
        + ".",
    )
    try:
        out = app_state.flip(choice.key, weight, bit, fmt, exp)
    except XtmrError as e:
        st.error(str(e))
        return
    _, where = exp.layout.locate(weight)
    st.markdown(f"**{out.layer}{list(where)}**, bit {out.bit} ({out.role}), stored as {fmt}:")
    label = '<span style="display:inline-block;width:4.5em">{}</span>'
    st.markdown(
        f"{label.format('before')}{_bit_row(out.bits_before, roles, set())}<br>"
        f"{label.format('after')}{_bit_row(out.bits_after, roles, {bit})}",
        unsafe_allow_html=True,
    )
    st.caption(
        "Underline colour: "
        + ", ".join(f"<span style='color:{ROLE_COLOURS[r]}'>{r}</span>" for r in dict.fromkeys(reversed(roles))),
        unsafe_allow_html=True,
    )
    k = st.columns(4)
    k[0].metric("Value before", f"{out.value_before:.6g}")
    k[1].metric("Value after", f"{out.value_after:.6g}")
    k[2].metric(
        "Accuracy with this flip",
        app_state.pct(out.accuracy),
        delta=f"{100 * (out.accuracy - out.clean_accuracy):+.1f} pt vs clean",
    )
    k[3].metric(
        "Predictions changed",
        app_state.pct(out.mismatch),
        help="Share of test images whose predicted class differs from the clean model's.",
    )

    st.markdown(
        "**Triple modular redundancy, bit by bit.** The word is stored three times; each copy can suffer "
        "its own flips; the voter keeps, at each bit, the value at least two copies agree on."
    )
    options = list(range(n_bits - 1, -1, -1))
    v = st.columns(3)
    flips = (
        v[0].multiselect("Flips in copy A", options, default=[bit], key=f"t_fa_{fmt}_{bit}"),
        v[1].multiselect("Flips in copy B", options, default=[], key=f"t_fb_{fmt}_{bit}"),
        v[2].multiselect("Flips in copy C", options, default=[], key=f"t_fc_{fmt}_{bit}"),
    )
    demo = vote_demo(int(out.bits_before, 2), n_bits, flips)
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
    if demo.corrected:
        st.success("The vote reads back the clean word: every flipped bit was wrong in only one copy.")
    else:
        st.error(
            f"The vote is wrong at bit{'s' if len(demo.wrong_bits) > 1 else ''} "
            f"{', '.join(map(str, demo.wrong_bits))}: two copies were flipped at the "
            "same position, which TMR cannot correct (probability ≈ 3·BER² per bit)."
        )


st.divider()
teaching_corner()
