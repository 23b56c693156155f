"""The Fault lab's teaching corner: one weight, one bit. Pick a weight (by LRP rank or by index) and a bit, see the
stored word before and after the flip and what that single flip does to accuracy; then store the word three times,
flip bits in the copies (by hand or at the BER), and watch the bitwise vote.

``teaching_corner`` is its own fragment: its controls rerun it alone. It takes the session's number format and LRP
rule from the page; the live part above reruns the whole page when either changes, so the corner never shows
another format than the numbers above it.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import app_state
import ui
from app_session import ModelChoice
from xtmr_core.errors import XtmrError
from xtmr_core.format_registry import format_info

#: Underline colour of each bit role in the stored word.
ROLE_COLOURS = {"sign": "#c53030", "exponent": "#dd6b20", "mantissa": "#2b6cb0", "value": "#2b6cb0"}
HOW = ("most relevant (LRP)", "least relevant (LRP)", "by index")


@st.fragment
def teaching_corner(choice: ModelChoice, layout, fmt: str, rule: str) -> None:
    """The corner for the session's model (``layout``: its ``WeightLayout``, read for layer names and offsets) in
    number format ``fmt``, weights ranked by LRP ``rule``; an error (e.g. a model LRP cannot rank) is one line
    here, since a fragment rerun bypasses the app's own guard."""
    try:
        _corner(choice, layout, fmt, rule)
    except XtmrError as e:
        st.error(str(e))


def _corner(choice: ModelChoice, layout, fmt: str, rule: str) -> None:
    st.subheader("One weight, one bit")
    st.caption(
        "Pick a weight and a bit: see the stored word, the value before and after the flip, and what that "
        "single flip does to accuracy. Then store the word three times and watch the vote."
    )
    roles = format_info(fmt).bit_roles()  # index = bit position (0 = LSB)
    weight = pick_weight(choice, layout, rule)
    bit = st.slider(
        "Bit to flip",
        0,
        len(roles) - 1,
        value=ui.top_bit(fmt),
        key=f"t_bit_{fmt}",
        help=f"0 is the least significant bit; in {fmt}: {role_ranges(roles)}.",
    )
    out = app_state.flip(choice, weight, bit, fmt)
    show_word(out, fmt, roles)
    flip_metrics(out)
    tmr_vote(choice, weight, out, fmt)


def role_ranges(roles: list[str]) -> str:
    """Where each role sits, top role first: ``sign 31–31, exponent 23–30, mantissa 0–22``."""
    return ", ".join(
        f"{r} {min(b for b, x in enumerate(roles) if x == r)}–{max(b for b, x in enumerate(roles) if x == r)}"
        for r in dict.fromkeys(reversed(roles))
    )


def pick_weight(choice: ModelChoice, layout, rule: str) -> int:
    """A layer, and in it the most or least LRP-relevant weight (``rule``) or one by index: its flat index."""
    names = list(layout.names)
    c1, c2, c3 = st.columns([2, 3, 2])
    layer = c1.selectbox("Layer", names, key=f"t_layer_{choice.key}", help="The layer the weight belongs to.")
    how = c2.radio(
        "Which weight",
        HOW,
        key="t_how",
        horizontal=True,
        help="Rank inside this layer by |LRP relevance|, or give the index yourself.",
    )
    li = names.index(layer)
    lo, hi = int(layout.offsets[li]), int(layout.offsets[li + 1])
    if how == "by index":
        return lo + int(
            c3.number_input(
                f"Index in {layer} (0 … {hi - lo - 1})",
                min_value=0,
                max_value=hi - lo - 1,
                step=1,
                key=f"t_index_{choice.key}_{layer}",
            )
        )
    try:
        s, by = app_state.scores(choice, "lrp", rule)[lo:hi], ""
    except XtmrError as e:  # LRP cannot run on this model: rank by magnitude, and say why
        s, by = app_state.scores(choice, "magnitude")[lo:hi], " (by |w|)"
        st.caption(f"Ranked by magnitude |w| instead of LRP: {e}")
    local = int(np.argmax(s) if how.startswith("most") else np.argmin(s))
    c3.write(f"weight #{local} of {layer}{by}")
    return lo + local


def bit_row(bits: str, roles: list[str], flipped: set[int]) -> str:
    """A stored word (MSB first) as HTML: each bit underlined in its role's colour, flipped bits marked."""
    n = len(bits)
    cells = []
    for i, ch in enumerate(bits):
        pos = n - 1 - i
        style = f"border-bottom:3px solid {ROLE_COLOURS[roles[pos]]};"
        if pos in flipped:
            style += "background:#fed7d7;font-weight:700;outline:2px solid #c53030;"
        cells.append(f'<span title="bit {pos} ({roles[pos]})" style="{style}">{html.escape(ch)}</span>')
    return '<span class="xtmr-word">' + "".join(cells) + "</span>"


def show_word(out, fmt: str, roles: list[str]) -> None:
    """The flipped weight's place and bit, its stored word before and after, and what the colours mean."""
    n_bits = len(roles)
    st.markdown(f"**{out.layer}{list(out.index)}**, bit {out.bit} ({ui.role_label(fmt, out.bit, out.role)}), in {fmt}:")
    label = '<span style="display:inline-block;width:3.6em">{}</span>'
    st.markdown(
        f"<div>{label.format('before')}{bit_row(out.bits_before, roles, set())}</div>"
        f"<div>{label.format('after')}{bit_row(out.bits_after, roles, {out.bit})}</div>",
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
    if fmt == "int8" and out.bit == n_bits - 1:
        st.caption(
            ":material/info: int8 stores two's complement: bit 7 is worth −128, not a sign flag, so flipping it "
            "moves a weight by 128 steps: +127 becomes −1 and −1 becomes +127."
        )


def flip_metrics(out) -> None:
    """The weight's value before and after, the accuracy with this one flip, and the predictions it changed."""
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


def tmr_vote(choice: ModelChoice, weight: int, out, fmt: str) -> None:
    """The word stored three times, flips chosen per copy (or drawn at the BER), the bitwise vote and its
    verdict: the clean word read back, or the bits two copies got wrong at once."""
    st.markdown(
        "**Triple modular redundancy, bit by bit.** The word is stored three times; each copy can suffer "
        "its own flips; the voter keeps, at each bit, the value at least two copies agree on."
    )
    n_bits = format_info(fmt).bits
    flips = copy_flips(weight, out.bit, n_bits, fmt)
    demo = app_state.vote(int(out.bits_before, 2), n_bits, flips)
    st.plotly_chart(vote_figure(demo.table()), width="stretch", key="vote")
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


def _random_draw(keys: tuple[str, ...], draws_key: str, n_bits: int, weight: int) -> None:
    """Flip each bit of the three copies with probability BER (the slider's, now); runs before the widgets of
    the next run exist, so their state may be set. The draw's BER is kept beside its number."""
    draw = st.session_state.get(draws_key, 0) + 1
    ber = float(ui.setting("ber"))
    st.session_state[draws_key], st.session_state[f"{draws_key}_ber"] = draw, ber
    for key, f in zip(keys, app_state.draw_flips(n_bits, ber, 1000 * weight + draw)):
        st.session_state[key] = list(reversed(f))


def copy_flips(weight: int, bit: int, n_bits: int, fmt: str) -> tuple[tuple[int, ...], ...]:
    """The flipped bit positions of copies A, B and C: chosen by hand (A starts with ``bit``) or drawn at the BER."""
    options = list(range(n_bits - 1, -1, -1))
    keys = (f"t_fa_{fmt}_{bit}", f"t_fb_{fmt}_{bit}", f"t_fc_{fmt}_{bit}")
    draws_key = f"t_draws_{fmt}_{bit}"
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
    v[3].button(
        "Random flips",
        on_click=_random_draw,
        args=(keys, draws_key, n_bits, weight),
        icon=":material/casino:",
        key="t_random",
        help=f"Flip each of the {3 * n_bits} stored bits of this weight with probability BER (the slider above), "
        f"as a campaign does: on average {3 * n_bits} × BER flips, almost always none.",
    )
    if st.session_state.get(draws_key):
        ber = st.session_state[f"{draws_key}_ber"]
        st.caption(
            f"Random draw #{st.session_state[draws_key]} at BER {ui.fmt_ber(ber)}: "
            f"{sum(len(f) for f in flips)} flipped bit(s) in the three copies "
            f"({3 * n_bits * ber:.2g} expected on average)."
        )
    return flips


def vote_figure(table) -> go.Figure:
    """The vote table (clean word, copies A–C, voted word; MSB left) with every bit that differs from the clean
    word in red."""
    wrong = (table.to_numpy() != table.loc["clean"].to_numpy()).astype(float)
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
    return fig
