"""The Relevance page's parts: LRP's share per layer, one layer's weight relevance, relevance against magnitude,
input heatmaps with Captum's gradient methods beside LRP, and the top-k overlap of two weight scorers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import app_state
import ui
from app_session import ModelChoice
from xtmr_core.errors import XtmrError
from xtmr_core.vocabulary import ATTRIBUTIONS, RULES, SCORERS

#: The one diverging colour scale for relevance: blue negative, white zero, red positive. Red and blue mean
#: nothing else on this page: layers and scorers are drawn in greys and a sequential scale.
DIVERGING = "RdBu_r"
#: Weight values (signed, but not relevance) get their own diverging scale, so red never means "weight > 0".
WEIGHT_SCALE = "PuOr_r"
INK, MUTED = "#2d3748", "#a0aec0"
#: Layer depth in the scatter: sequential, with neither the red nor the blue end of the relevance scale.
DEPTH_SCALE = "Viridis"
#: Agreement between methods (a fraction, not a relevance): greys, so red and blue keep their one meaning.
AGREEMENT_SCALE = "Greys"
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
#: The input attribution methods as the page names them.
METHOD_LABELS = {
    "lrp": "LRP",
    "integrated_gradients": "Integrated Gradients",
    "saliency": "Saliency",
    "input_x_gradient": "Input × Gradient",
}
#: The fractions of an image's pixels whose top sets the methods are compared on.
PIXEL_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2)
METHODS_TEXT = (
    "**Integrated Gradients** averages the gradient along the straight path from a black image (all zeros) to "
    "this one, times the pixel, so the map adds up to the change of the class score; **Saliency** is the size of "
    "the gradient (how much a tiny change of the pixel moves the score: never negative, so never blue); "
    "**Input × Gradient** is the pixel times its gradient. Captum computes all three."
)


# ---------------------------------------------------------------- LRP at all


def rule_select() -> str:
    """The LRP rule set on every conv and linear layer."""
    rule: str = st.selectbox(
        "LRP rule",
        RULES,
        key="rule",
        persist_state="session",
        format_func=lambda r: ui.RULE_HELP.get(r, r),
        help="The rule set on every conv and linear layer. It also decides the LRP ranking the Fault lab protects by.",
    )
    return rule


def lrp_shares(choice: ModelChoice, rule: str, caption: st.delta_generator.DeltaGenerator) -> pd.DataFrame | None:
    """Each layer's share of |relevance|, or ``None`` after saying in one line why LRP cannot run here.

    LRP needs layers it has rules for and a model that classifies enough reference images correctly; when it
    cannot run (a torchvision network with a squeeze-excitation product, untrained weights), the parts of the
    page that need no LRP still show. ``caption`` (a placeholder above the rule) says what LRP summed over.
    """
    try:
        shares = app_state.relevance_shares(choice, rule)
    except XtmrError as e:
        st.error(str(e))
        st.info(
            "The maps of this page need LRP; the test images and the scorer comparison below still show. The "
            "Fault lab and Sweeps can still protect by magnitude or random, which need no reference images."
        )
        return None
    caption.caption(
        "LRP sends each reference image's true-class score back through the network; the share that passes "
        f"through a weight, summed over {app_state.reference_size(choice):,} correctly classified training images, "
        "is that weight's relevance. On every relevance map red is positive, blue negative and white zero."
    )
    return shares


# ---------------------------------------------------------------- network overview: share per layer


def shares_figure(shares: pd.DataFrame) -> go.Figure:
    """Horizontal bars, one row per layer in forward order (readable from 5 layers to 60: mobilenetv2 has ~50),
    the legend above the plot where it covers no label."""
    names = list(shares["layer"])
    row_px = 22 if len(names) <= 20 else 16
    fig = go.Figure()
    bars = (
        ("relevance %", "share of |relevance|", "|relevance|", INK),
        ("weights %", "share of weights", "the weights", MUTED),
    )
    for column, name, of, colour in bars:
        fig.add_bar(
            y=names,
            x=shares[column],
            orientation="h",
            name=name,
            marker_color=colour,
            customdata=shares["type"],
            hovertemplate=f"%{{y}} (%{{customdata}}): %{{x:.2f}}% of {of}<extra></extra>",
        )
    fig.update_yaxes(autorange="reversed", title_text="layer (input side at the top)", tickfont_size=11)
    fig.update_yaxes(automargin=True)
    fig.update_xaxes(title_text="% of the network's total", rangemode="tozero")
    fig.update_layout(
        title=dict(text="Each layer's share of total |relevance| and of the weights", y=0.99, yanchor="top"),
        barmode="group",
        bargap=0.25,
        height=max(280, 130 + row_px * len(names)),
        margin=dict(l=10, r=10, t=70, b=10),
        legend=dict(orientation="h", x=0, y=1.0, xanchor="left", yanchor="bottom"),
    )
    return fig


def layer_shares(shares: pd.DataFrame) -> None:
    """The share chart, what it means, the layers no relevance reaches, and LRP's rule per layer type."""
    st.plotly_chart(shares_figure(shares), width="stretch", key="shares")
    st.caption(
        "A layer whose relevance share is far above its weight share packs its relevance into few weights: "
        "those are the ones a small TMR budget should cover."
    )
    silent = [n for n, r in zip(shares["layer"], shares["relevance %"]) if r == 0]
    if silent:
        st.caption(
            f"**No relevance** reaches {', '.join(silent)}: their output only scales another signal (a "
            "squeeze-excitation gate), and LRP holds a gate constant. This is not an importance of zero: the LRP "
            "ranking simply puts them last, and the Fault lab's other scorers still rank them."
        )
    with st.expander("What LRP does at each layer type"):
        st.markdown(LRP_RULES_TEXT)


# ---------------------------------------------------------------- one layer's map


def layer_controls(shares: pd.DataFrame, choice_key: str) -> tuple[str, str]:
    """The layer to map and whether to show its relevance or its weight values."""
    st.subheader("One layer's weight relevance")
    c1, c2 = st.columns([2, 1])
    types = dict(zip(shares["layer"], shares["type"]))
    layer: str = c1.selectbox(
        "Layer",
        list(types),
        key=f"rel_layer_{choice_key}",
        format_func=lambda n: f"{n} ({types[n]})",
        help="Conv layers show one tile per (output filter, input channel) kernel when that fits; depthwise "
        "convs one tile per filter; linear layers the weight matrix. Large layers are summed in blocks.",
    )
    show: str = c2.radio(
        "Show",
        ("relevance", "weight values"),
        key="rel_show",
        horizontal=True,
        help="The same map of the layer's raw fp32 weights, for comparison (on its own purple–orange scale).",
    )
    return layer, show


def layer_map_figure(lm: app_state.LayerMap, show: str) -> go.Figure:
    """One layer's map on a symmetric scale; a conv's kernels as tiles with grid lines and square cells."""
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
    rows, cols = lm.z.shape
    if lm.tile:
        kh, kw = lm.tile
        for r in range(kh, rows, kh):
            fig.add_hline(y=r - 0.5, line_width=1, line_color="#4a5568")
        for c in range(kw, cols, kw):
            fig.add_vline(x=c - 0.5, line_width=1, line_color="#4a5568")
        # square cells, the grid as tall as it needs
        fig.update_yaxes(scaleanchor="x", scaleratio=1, constrain="domain")
        fig.update_xaxes(constrain="domain")
        height = min(720, max(320, int(900 * rows / max(cols, 1)) + 100))
    else:
        height = min(640, max(320, 6 * rows + 120))
    fig.update_xaxes(title_text=lm.x_title, tickvals=list(lm.x_ticks[0]), ticktext=list(lm.x_ticks[1]), side="top")
    fig.update_yaxes(title_text=lm.y_title, tickvals=list(lm.y_ticks[0]), ticktext=list(lm.y_ticks[1]))
    fig.update_layout(height=height, yaxis_autorange="reversed", margin=dict(l=10, r=10, t=10, b=10))
    return fig


def layer_map(lm: app_state.LayerMap, show: str, layer: str, shape: Sequence[int]) -> None:
    """The layer's map and what one cell of it holds."""
    st.plotly_chart(layer_map_figure(lm, show), width="stretch", key="layer_map")
    st.caption(
        f"{layer}, weight {'×'.join(map(str, shape))}: one cell is {lm.cell}. "
        "The colour scale is symmetric around zero; hover a cell to see which weights it holds."
    )


# ---------------------------------------------------------------- relevance vs magnitude


def relevance_scatter(sample: pd.DataFrame, names: Sequence[str]) -> None:
    """Sampled weights' |relevance| against |w| on log axes, coloured by layer depth, the top 1% as diamonds."""
    st.subheader("Relevance against magnitude")
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


def image_controls(n_test: int, dataset: str) -> tuple[list[int], str]:
    """The test images to explain (up to six) and the class relevance starts at (``true`` or ``predicted``)."""
    st.subheader("Input relevance")
    i1, i2 = st.columns([3, 1])
    picked = i1.multiselect(
        "Test images",
        list(range(n_test)),
        default=list(range(min(4, n_test))),
        max_selections=6,
        key=f"rel_images_{dataset}",
        help="Indices into the test split (up to six).",
    )
    target: str = i2.radio(
        "Start relevance at",
        ("true", "predicted"),
        key="rel_target",
        format_func=lambda t: f"the {t} class",
        help="Which logit LRP explains.",
    )
    return [int(i) for i in picked], target


def lrp_heatmaps(choice: ModelChoice, indices: tuple[int, ...], rule: str, target: str) -> np.ndarray | None:
    """LRP's input heatmaps of the images, or ``None`` after saying in one line why they cannot be computed."""
    try:
        return app_state.input_heatmaps(choice, indices, rule, target)
    except XtmrError as e:
        st.error(str(e))
        return None


def square_pixels(fig: go.Figure, rows: int, cols: int) -> None:
    """Every subplot's pixels square (an image and its relevance map then have the same shape): each y axis is
    tied to its own x axis, subplots numbered row by row as ``make_subplots`` does."""
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c + 1
            fig.update_yaxes(
                scaleanchor="x" if i == 1 else f"x{i}", scaleratio=1, constrain="domain", row=r + 1, col=c + 1
            )
            fig.update_xaxes(constrain="domain", row=r + 1, col=c + 1)


def image_trace(img: np.ndarray) -> go.Image | go.Heatmap:
    """A test image in [0, 1] as a screen shows it: RGB (H×W×3) as an image, one channel (H×W) in greys."""
    if img.ndim == 3:
        return go.Image(z=(img * 255).round().astype(np.uint8), hoverinfo="skip")
    return go.Heatmap(z=img, colorscale="gray_r", showscale=False, hoverinfo="skip")


def input_maps_figure(images: Sequence[np.ndarray], heat: np.ndarray | None, titles: Sequence[str]) -> go.Figure:
    """The images in the top row and, when LRP ran, each one's pixel relevance (channels summed) below it."""
    rows, cols = (1 if heat is None else 2), len(images)
    fig = make_subplots(rows=rows, cols=cols, vertical_spacing=0.06, horizontal_spacing=0.02, subplot_titles=titles)
    for j, img in enumerate(images):
        fig.add_trace(image_trace(img), row=1, col=j + 1)
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
    square_pixels(fig, rows, cols)
    fig.update_yaxes(title_text="image", row=1, col=1)
    if heat is not None:
        fig.update_yaxes(title_text="pixel relevance", row=2, col=1)
    fig.update_layout(height=420 if heat is not None else 240, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_annotations(font_size=11)
    return fig


def input_maps(
    images: Sequence[np.ndarray], heat: np.ndarray | None, picked: Sequence[int], classes: Sequence[tuple[int, int]]
) -> None:
    """The images with their LRP heatmaps, titled by index, label and prediction, and what the maps show."""
    titles = [f"#{i}: label {label}, predicted {pred}" for i, (label, pred) in zip(picked, classes)]
    st.plotly_chart(input_maps_figure(images, heat, titles), width="stretch", key="inputs")
    blank = [] if heat is None else [f"#{i}" for i, h in zip(picked, heat) if not h.any()]
    if blank:
        st.caption(
            f":material/info: No relevance reached the pixels of {', '.join(blank)}: LRP sent nothing back (a model "
            "that barely learned, or a class score of zero), so those maps are blank, not white by colour."
        )
    bottom = (
        " Bottom: its pixel relevance for the chosen class (red for, blue against), each map on its own "
        "symmetric scale."
    )
    st.caption("Top: the image (normalised pixels mapped back for display)." + ("" if heat is None else bottom))


# ---------------------------------------------------------------- Captum's gradient methods beside LRP


def attribution_controls(picked: Sequence[int]) -> tuple[int, float]:
    """Which of the picked images to compare the methods on, and the fraction of its pixels compared."""
    st.subheader("LRP beside gradient methods")
    c1, c2 = st.columns([1, 2])
    index = int(
        c1.selectbox(
            "Image", list(picked), key="attr_image", format_func=lambda i: f"#{i}", help="One of the test images above."
        )
    )
    fraction = float(
        c2.select_slider(
            "Pixels compared",
            PIXEL_FRACTIONS,
            value=0.05,
            key="attr_k",
            format_func=lambda f: f"top {f:.0%}",
            help="Two methods agree on a pixel when it is among the top fraction of both maps by |value|.",
        )
    )
    return index, fraction


def attribution_figure(image: np.ndarray, comparison: app_state.Comparison) -> go.Figure:
    """The image, then each method's map on one diverging scale (each over its own largest |value|, one colour
    bar for all)."""
    names = list(comparison.maps)
    titles = ["image", *(METHOD_LABELS[n] for n in names)]
    fig = make_subplots(rows=1, cols=len(names) + 1, horizontal_spacing=0.02, subplot_titles=titles)
    fig.add_trace(image_trace(image), row=1, col=1)
    for j, name in enumerate(names):
        fig.add_trace(
            go.Heatmap(
                z=comparison.maps[name],
                coloraxis="coloraxis",
                customdata=comparison.maps[name] * comparison.peaks[name],
                hovertemplate="%{z:.2f} of the largest |value| (%{customdata:.3g})<extra>"
                + METHOD_LABELS[name]
                + "</extra>",
            ),
            row=1,
            col=j + 2,
        )
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    square_pixels(fig, 1, len(names) + 1)
    fig.update_layout(
        coloraxis=dict(
            colorscale=DIVERGING,
            cmin=-1,
            cmax=1,
            cmid=0,
            colorbar=dict(title="÷ the map's<br>largest |value|", tickvals=[-1, -0.5, 0, 0.5, 1], len=0.9),
        ),
        height=260,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    fig.update_annotations(font_size=12)
    return fig


def agreement_figure(comparison: app_state.Comparison) -> go.Figure:
    """The top-k overlap of every pair of methods as a table of shares, in greys (not a relevance)."""
    labels = [METHOD_LABELS[n] for n in comparison.maps]
    fig = go.Figure(
        go.Heatmap(
            z=comparison.overlap,
            x=labels,
            y=labels,
            zmin=0,
            zmax=1,
            colorscale=AGREEMENT_SCALE,
            showscale=False,
            texttemplate="%{z:.0%}",
            hovertemplate="%{y} and %{x}: %{z:.0%} of the top pixels shared<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=80 + 55 * len(labels), margin=dict(l=10, r=10, t=10, b=10))
    return fig


def attribution_comparison(image: np.ndarray, comparison: app_state.Comparison, index: int, start: int) -> None:
    """The methods' maps of one image side by side, how much their top pixels agree, and what each method is."""
    st.plotly_chart(attribution_figure(image, comparison), width="stretch", key="attr_maps")
    c1, c2 = st.columns([1, 1])
    c1.plotly_chart(agreement_figure(comparison), width="stretch", key="attr_agree")
    peaks = ", ".join(f"{METHOD_LABELS[n]} {p:.3g}" for n, p in comparison.peaks.items())
    c2.caption(
        f"Image #{index}, every map started at class {start}. Each map is divided by its own largest |value| "
        f"({peaks}): Saliency measures a gradient, the others shares of the class score, so their sizes do not "
        "compare; where each map puts its weight does. The table: the share of the top "
        f"{comparison.k:,} pixels by |value| two maps have in common (100%: the same pixels)."
    )
    c2.caption(METHODS_TEXT)
    if "lrp" in comparison.maps and "input_x_gradient" in comparison.maps:
        c2.caption(
            "Where a network is linear layers, ReLU and max-pooling (residual adds and folded BatchNorm "
            "included), LRP's epsilon rule gives Input × Gradient (Ancona et al., 2018), so those two maps match; "
            "the gamma and alpha-beta rules, and LRP's rules for gates, attention and normalisation, are where "
            "they part."
        )


def captum_methods(lrp_ok: bool) -> tuple[str, ...]:
    """The methods to compare: all of them, or Captum's alone where LRP cannot run."""
    return ATTRIBUTIONS if lrp_ok else tuple(m for m in ATTRIBUTIONS if m != "lrp")


# ---------------------------------------------------------------- top-k overlap of weight scorers


def scorer_controls(lrp_ok: bool) -> tuple[str, str]:
    """The two weight scorers to compare; without LRP, magnitude and random first (they need no reference
    images; gradient and taylor do, and an untrained model may classify too few of them correctly)."""
    st.subheader("Do two scorers pick the same weights?")
    o1, o2 = st.columns(2)
    rest = (s for s in SCORERS if s not in ("lrp", "magnitude", "random"))
    scorers = list(SCORERS) if lrp_ok else ["magnitude", "random", *rest]
    a: str = o1.selectbox(
        "Scorer A",
        scorers,
        index=0,
        key="ov_a" if lrp_ok else "ov_a_no_lrp",
        help="lrp: |relevance|; magnitude: |w|; gradient: |dL/dw|; taylor: |w·dL/dw|; random.",
    )
    b: str = o2.selectbox(
        "Scorer B", scorers, index=1, key="ov_b" if lrp_ok else "ov_b_no_lrp", help="The scorer to compare with."
    )
    return a, b


def scorer_overlap(ov: Sequence[float], a: str, b: str) -> None:
    """The overlap of two scorers' top-k weight sets against k, beside two random rankings' (k itself)."""
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
