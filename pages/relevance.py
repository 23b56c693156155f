"""Relevance: which weights LRP finds relevant, layer by layer, for inputs, and against other scorers."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import app_session
import app_state
import ui
from xtmr_core.errors import XtmrError
from xtmr_core.vocabulary import RULES, SCORERS

#: The one diverging colour scale for relevance: blue negative, white zero, red positive. Red and blue mean
#: nothing else on this page: layers and scorers are drawn in greys and a sequential scale.
DIVERGING = "RdBu_r"
#: Weight values (signed, but not relevance) get their own diverging scale, so red never means "weight > 0".
WEIGHT_SCALE = "PuOr_r"
INK, MUTED = "#2d3748", "#a0aec0"
#: Layer depth in the scatter: sequential, with neither the red nor the blue end of the relevance scale.
DEPTH_SCALE = "Viridis"
#: One sentence per layer type: the rule LRP uses there (docs/DESIGN.md, section 5, has the formulas and sources).
LRP_RULES_TEXT = """
- **Conv and linear layers** split the relevance of each output among the inputs in proportion to their
  contributions `a·w` (the rule chosen above); the bias keeps its own share.
- **BatchNorm** is folded into the conv before it; one that cannot be folded is a per-channel scale whose shift
  keeps a share like a bias.
- **Residual adds** split relevance in proportion to the two branches.
- **Activations** (ReLU, ReLU6, SiLU, GELU, Hardswish, Sigmoid, Tanh) pass relevance through unchanged.
- **Gates** (squeeze-excitation `x · g`) are held constant: relevance follows `x`, and the gate's layers get none.
- **LayerNorm / GroupNorm** hold the standard deviation constant and treat the rest as a linear layer.
- **Attention**: the softmax gets AttnLRP's rule and each product of two activations (`q·kᵀ`, weights · `v`)
  splits its relevance half and half between its factors.
- **Pooling** splits relevance in proportion (average) or gives it to the winner (max); reshapes and
  permutations only move it.
"""
OVERLAP_FRACTIONS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def _square_pixels(fig: go.Figure, rows: int, cols: int) -> None:
    """Every subplot's pixels square (an image and its relevance map then have the same shape): each y axis is
    tied to its own x axis, subplots numbered row by row as ``make_subplots`` does."""
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c + 1
            fig.update_yaxes(
                scaleanchor="x" if i == 1 else f"x{i}", scaleratio=1, constrain="domain", row=r + 1, col=c + 1
            )
            fig.update_xaxes(constrain="domain", row=r + 1, col=c + 1)


ui.enter_page()
st.title("Relevance")
ui.link_notes(app_session.current_choice())
choice, exp = app_session.require_experiment()
caption = st.empty()  # says how many reference images once LRP has run on them
rule = st.selectbox(
    "LRP rule",
    RULES,
    key="rule",
    persist_state="session",
    format_func=lambda r: ui.RULE_HELP.get(r, r),
    help="The rule set on every conv and linear layer. It also decides the LRP ranking the Fault lab protects by.",
)
# LRP needs layers it has rules for and a model that classifies enough reference images correctly; when it cannot
# run (a torchvision network with a squeeze-excitation product, untrained weights), say why in one line and keep
# the parts of the page that need no LRP.
try:
    shares = app_state.relevance_shares(choice, rule)
    lrp_error = None
    caption.caption(
        "LRP sends each reference image's true-class score back through the network; the share that passes "
        f"through a weight, summed over {app_state.reference_size(choice):,} correctly classified training images, "
        "is that weight's relevance. On every relevance map red is positive, blue negative and white zero."
    )
except XtmrError as e:
    shares, lrp_error = None, str(e)
    st.error(lrp_error)
    st.info(
        "The maps of this page need LRP; the test images and the scorer comparison below still show. The "
        "Fault lab and Sweeps can still protect by magnitude or random, which need no reference images."
    )
if shares is not None:
    names = list(shares["layer"])

    # ---------------------------------------------------------------- network overview: share per layer
    # Horizontal bars, one row per layer in forward order: readable from 5 layers to 60 (mobilenetv2 has ~50),
    # with the legend above the plot where it covers no label.
    row_px = 22 if len(names) <= 20 else 16
    fig = go.Figure()
    fig.add_bar(
        y=names,
        x=shares["relevance %"],
        orientation="h",
        name="share of |relevance|",
        marker_color=INK,
        customdata=shares["type"],
        hovertemplate="%{y} (%{customdata}): %{x:.2f}% of |relevance|<extra></extra>",
    )
    fig.add_bar(
        y=names,
        x=shares["weights %"],
        orientation="h",
        name="share of weights",
        marker_color=MUTED,
        customdata=shares["type"],
        hovertemplate="%{y} (%{customdata}): %{x:.2f}% of the weights<extra></extra>",
    )
    fig.update_yaxes(
        autorange="reversed", title_text="layer (input side at the top)", tickfont_size=11, automargin=True
    )
    fig.update_xaxes(title_text="% of the network's total", rangemode="tozero")
    fig.update_layout(
        title=dict(text="Each layer's share of total |relevance| and of the weights", y=0.99, yanchor="top"),
        barmode="group",
        bargap=0.25,
        height=max(280, 130 + row_px * len(names)),
        margin=dict(l=10, r=10, t=70, b=10),
        legend=dict(orientation="h", x=0, y=1.0, xanchor="left", yanchor="bottom"),
    )
    st.plotly_chart(fig, width="stretch", key="shares")
    st.caption(
        "A layer whose relevance share is far above its weight share packs its relevance into few weights: "
        "those are the ones a small TMR budget should cover."
    )
    silent = [n for n, r in zip(names, shares["relevance %"]) if r == 0]
    if silent:
        st.caption(
            f"**No relevance** reaches {', '.join(silent)}: their output only scales another signal (a "
            "squeeze-excitation gate), and LRP holds a gate constant. This is not an importance of zero: the LRP "
            "ranking simply puts them last, and the Fault lab's other scorers still rank them."
        )
    with st.expander("What LRP does at each layer type"):
        st.markdown(LRP_RULES_TEXT)

    # ---------------------------------------------------------------- one layer's map
    st.subheader("One layer's weight relevance")
    c1, c2 = st.columns([2, 1])
    layer = c1.selectbox(
        "Layer",
        names,
        key=f"rel_layer_{choice.key}",
        format_func=lambda n: f"{n} ({shares.set_index('layer').at[n, 'type']})",
        help="Conv layers show one tile per (output filter, input channel) kernel when that fits; depthwise "
        "convs one tile per filter; linear layers the weight matrix. Large layers are summed in blocks.",
    )
    show = c2.radio(
        "Show",
        ("relevance", "weight values"),
        key="rel_show",
        horizontal=True,
        help="The same map of the layer's raw fp32 weights, for comparison (on its own purple–orange scale).",
    )
    shape = exp.layout.shapes[names.index(layer)]
    lm = app_state.layer_heatmap(choice, rule, layer, show)
    lim = app_state.signed_range(lm.z)
    fig = go.Figure(
        go.Heatmap(
            z=lm.z,
            text=lm.hover,
            colorscale=DIVERGING if show == "relevance" else WEIGHT_SCALE,
            zmid=0,
            zmin=-lim,
            zmax=lim,
            colorbar=dict(title="relevance" if show == "relevance" else "weight"),
            hovertemplate="%{text}<extra></extra>",
            hoverongaps=False,
        )
    )
    if lm.tile:
        kh, kw = lm.tile
        for r in range(kh, lm.z.shape[0], kh):
            fig.add_hline(y=r - 0.5, line_width=1, line_color="#4a5568")
        for c in range(kw, lm.z.shape[1], kw):
            fig.add_vline(x=c - 0.5, line_width=1, line_color="#4a5568")
        # square cells, the grid as tall as it needs
        fig.update_yaxes(scaleanchor="x", scaleratio=1, constrain="domain")
        fig.update_xaxes(constrain="domain")
    rows, cols = lm.z.shape
    height = min(720, max(320, int(900 * rows / max(cols, 1)) + 100)) if lm.tile else min(640, max(320, 6 * rows + 120))
    fig.update_xaxes(title_text=lm.x_title, tickvals=list(lm.x_ticks[0]), ticktext=list(lm.x_ticks[1]), side="top")
    fig.update_yaxes(title_text=lm.y_title, tickvals=list(lm.y_ticks[0]), ticktext=list(lm.y_ticks[1]))
    fig.update_layout(height=height, yaxis_autorange="reversed", margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(fig, width="stretch", key="layer_map")
    st.caption(
        f"{layer}, weight {'×'.join(map(str, shape))}: one cell is {lm.cell}. "
        "The colour scale is symmetric around zero; hover a cell to see which weights it holds."
    )

    # ---------------------------------------------------------------- relevance vs magnitude
    st.subheader("Relevance against magnitude")
    sample = app_state.relevance_points(choice, rule)
    shown = sample[(sample["abs relevance"] > 0) & (sample["magnitude"] > 0)].assign(
        rank=lambda d: np.where(d["top"], "top 1% by LRP", "other")
    )
    fig = px.scatter(
        shown,
        x="magnitude",
        y="abs relevance",
        color="depth",
        symbol="rank",
        log_x=True,
        log_y=True,
        opacity=0.6,
        color_continuous_scale=DEPTH_SCALE,
        range_color=(1, max(len(names), 2)),
        hover_data=["layer", "index", "relevance"],
        symbol_map={"top 1% by LRP": "diamond", "other": "circle"},
        labels={"magnitude": "|w|", "abs relevance": "|LRP relevance|", "rank": "", "depth": "layer"},
    )
    ends = sorted({1, len(names)})
    fig.update_coloraxes(
        colorbar=dict(title="layer", tickvals=ends, ticktext=[f"{i}: {names[i - 1]}" for i in ends], len=0.8)
    )
    # whole decades only, written as powers of ten: plotly's own log ticks add "2 5" minor labels and "100μ"
    fig.update_xaxes(dtick=1, exponentformat="power")
    fig.update_yaxes(dtick=1, exponentformat="power")
    fig.update_layout(
        height=400,
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", x=0, y=1.0, xanchor="left", yanchor="bottom"),
    )
    st.plotly_chart(fig, width="stretch", key="scatter")
    st.caption(
        f"{len(shown):,} sampled weights, coloured by their layer's position ({names[0]} first, {names[-1]} last; "
        "hover for the name); diamonds are the top 1% by |relevance| (drawn first, up to a quarter of the points). "
        "Weights with zero relevance or value are left out of the log axes. Large weights are not always the "
        "relevant ones: that is why a magnitude ranking protects different weights than LRP."
    )

# ---------------------------------------------------------------- input relevance
st.subheader("Input relevance")
n_test = int(exp.x_test.shape[0])
i1, i2 = st.columns([3, 1])
picked = i1.multiselect(
    "Test images",
    list(range(n_test)),
    default=list(range(min(4, n_test))),
    max_selections=6,
    key=f"rel_images_{choice.dataset}",
    help="Indices into the test split (up to six).",
)
target = i2.radio(
    "Start relevance at",
    ("true", "predicted"),
    key="rel_target",
    format_func=lambda t: f"the {t} class",
    help="Which logit LRP explains.",
)
if not picked:
    st.info("Pick at least one test image to see its relevance map.")
else:
    heat = None
    if lrp_error is None:
        try:
            heat = app_state.input_heatmaps(choice, tuple(int(i) for i in picked), rule, target)
        except XtmrError as e:
            st.error(str(e))
    images = app_state.display_images(choice, tuple(int(i) for i in picked))
    preds = exp.clean_predictions("fp32").cpu()
    rows = 1 if heat is None else 2
    fig = make_subplots(
        rows=rows,
        cols=len(picked),
        vertical_spacing=0.06,
        horizontal_spacing=0.02,
        subplot_titles=[f"#{i}: label {int(exp.y_test[i])}, predicted {int(preds[i])}" for i in picked],
    )
    for j in range(len(picked)):
        img = images[j]  # in [0, 1]: H×W×3 for RGB (normalised data mapped back), H×W for one channel
        if img.ndim == 3:
            fig.add_trace(go.Image(z=(img * 255).round().astype(np.uint8), hoverinfo="skip"), row=1, col=j + 1)
        else:
            fig.add_trace(go.Heatmap(z=img, colorscale="gray_r", showscale=False, hoverinfo="skip"), row=1, col=j + 1)
        if heat is None:
            continue
        h = heat[j].sum(axis=0)
        lim = app_state.signed_range(h)
        fig.add_trace(
            go.Heatmap(
                z=h,
                colorscale=DIVERGING,
                zmid=0,
                zmin=-lim,
                zmax=lim,
                showscale=False,
                hovertemplate="relevance %{z:.3g}<extra></extra>",
            ),
            row=2,
            col=j + 1,
        )
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    _square_pixels(fig, rows, len(picked))
    fig.update_yaxes(title_text="image", row=1, col=1)
    if heat is not None:
        fig.update_yaxes(title_text="pixel relevance", row=2, col=1)
    fig.update_layout(height=420 if heat is not None else 240, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_annotations(font_size=11)
    st.plotly_chart(fig, width="stretch", key="inputs")
    blank = [] if heat is None else [f"#{i}" for i, h in zip(picked, heat) if not h.any()]
    if blank:
        st.caption(
            f":material/info: No relevance reached the pixels of {', '.join(blank)}: LRP sent nothing back (a model "
            "that barely learned, or a class score of zero), so those maps are blank, not white by colour."
        )
    st.caption(
        "Top: the image (normalised pixels mapped back for display)."
        + (
            ""
            if heat is None
            else " Bottom: its pixel relevance for the chosen class (red for, blue against), each map on its own "
            "symmetric scale."
        )
    )

# ---------------------------------------------------------------- top-k overlap
st.subheader("Do two scorers pick the same weights?")
o1, o2 = st.columns(2)
# Without LRP, magnitude and random first: they need no reference images (gradient and taylor do, and an untrained
# model may classify too few of them correctly).
scorers = (
    list(SCORERS)
    if lrp_error is None
    else ["magnitude", "random", *(s for s in SCORERS if s not in ("lrp", "magnitude", "random"))]
)
a = o1.selectbox(
    "Scorer A",
    scorers,
    index=0,
    key="ov_a" if lrp_error is None else "ov_a_no_lrp",
    help="lrp: |relevance|; magnitude: |w|; gradient: |dL/dw|; taylor: |w·dL/dw|; random.",
)
b = o2.selectbox(
    "Scorer B",
    scorers,
    index=1,
    key="ov_b" if lrp_error is None else "ov_b_no_lrp",
    help="The scorer to compare with.",
)
if a == b:
    st.info("Pick two different scorers to compare their top-k sets.")
else:
    try:
        ov = app_state.overlap(choice, a, b, OVERLAP_FRACTIONS, rule)
    except XtmrError as e:  # e.g. gradient scores of a model that classifies too few reference images
        st.error(str(e))
        st.stop()
    ks = [100 * f for f in OVERLAP_FRACTIONS]
    fig = go.Figure()
    fig.add_scatter(x=ks, y=[100 * v for v in ov], mode="lines+markers", name=f"{a} ∩ {b}", line_color=INK)
    fig.add_scatter(x=ks, y=ks, mode="lines", name="two random rankings", line=dict(dash="dot", color=MUTED))
    fig.update_xaxes(tickvals=ks, ticktext=[f"{k:g}%" for k in ks])
    fig.update_layout(
        xaxis_type="log",
        xaxis_title="k (% of weights)",
        yaxis_title="overlap of the top-k sets (%)",
        yaxis_range=[0, 102],
        height=340,
        margin=dict(l=10, r=10, t=10, b=10),
        legend=dict(orientation="h"),
    )
    st.plotly_chart(fig, width="stretch", key="overlap")
    at1 = ov[OVERLAP_FRACTIONS.index(0.01)]
    st.caption(f"At k = 1%, {100 * at1:.0f}% of {a}'s top weights are also in {b}'s top 1%.")
