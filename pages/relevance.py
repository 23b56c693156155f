"""Relevance: which weights LRP finds relevant, layer by layer, for inputs, and against other scorers."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

import app_state
from xtmr_core.layers_view import relevance_sample, signed_range
from xtmr_core.relevance import layer_relevance_shares, relevance_map
from xtmr_core.vocabulary import RULES, SCORERS

#: The one diverging colour scale of the app: blue negative, white zero, red positive.
DIVERGING = "RdBu_r"
RULE_HELP = {
    "epsilon": "epsilon: the basic rule, relevance split in proportion to each contribution a·w.",
    "gamma": "gamma: favours positive contributions (w + 0.25·w⁺); smoother maps.",
    "alpha1beta0": "alpha1-beta0: positive contributions only (w⁺).",
}
OVERLAP_FRACTIONS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)

app_state.enter_page()
st.title("Relevance")
st.caption(
    "LRP sends each reference image's true-class score back through the network; the share that passes "
    "through a weight, summed over 256 correctly classified training images, is that weight's relevance. "
    "Red: positive, blue: negative, white: zero, on every map."
)
choice, exp = app_state.require_experiment()
rule = st.selectbox(
    "LRP rule",
    RULES,
    key="rule",
    persist_state="session",
    format_func=lambda r: RULE_HELP[r],
    help="The rule set on every conv and linear layer (Captum's rules). It also decides the LRP "
    "ranking the Fault lab protects by.",
)
rel = app_state.signed_relevance(choice.key, rule, exp)
names = list(exp.layout.names)

# ---------------------------------------------------------------- network overview: share per layer
shares = layer_relevance_shares({n: torch.from_numpy(rel[n]) for n in names})
sizes = exp.layout.sizes()
fig = go.Figure()
fig.add_bar(x=names, y=[100 * shares[n] for n in names], name="share of |relevance|", marker_color="#c53030")
fig.add_bar(x=names, y=100 * sizes / sizes.sum(), name="share of weights", marker_color="#a0aec0")
fig.update_layout(
    title="Each layer's share of total |relevance| (and of the weights)",
    yaxis_title="%",
    barmode="group",
    height=300,
    margin=dict(l=10, r=10, t=40, b=10),
    legend=dict(orientation="h"),
)
st.plotly_chart(fig, width="stretch", key="shares")
st.caption(
    "A layer whose relevance share is far above its weight share packs its relevance into few weights: "
    "those are the ones a small TMR budget should cover."
)

# ---------------------------------------------------------------- one layer's map
st.subheader("One layer's weight relevance")
c1, c2 = st.columns([2, 1])
layer = c1.selectbox(
    "Layer",
    names,
    key=f"rel_layer_{choice.key}",
    help="Conv layers show one tile per "
    "(output filter, input channel) kernel when that fits; linear layers show the weight matrix.",
)
show = c2.radio(
    "Show",
    ("relevance", "weight values"),
    key="rel_show",
    horizontal=True,
    help="The same map of the layer's raw weights, for comparison.",
)
li = names.index(layer)
shape = exp.layout.shapes[li]
values = rel[layer] if show == "relevance" else exp.layout.split(exp.injector("fp32").clean_values)[layer]
grid = relevance_map(torch.as_tensor(np.ascontiguousarray(values)), max_cells=4096)
lim = signed_range(grid)
fig = go.Figure(
    go.Heatmap(
        z=grid,
        colorscale=DIVERGING,
        zmid=0,
        zmin=-lim,
        zmax=lim,
        colorbar=dict(title=show.split()[0]),
        hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra></extra>",
    )
)
tiles = len(shape) == 4 and grid.shape == (shape[0] * shape[2], shape[1] * shape[3])
if tiles:
    kh, kw = shape[2], shape[3]
    for r in range(kh, grid.shape[0], kh):
        fig.add_hline(y=r - 0.5, line_width=1, line_color="#4a5568")
    for c in range(kw, grid.shape[1], kw):
        fig.add_vline(x=c - 0.5, line_width=1, line_color="#4a5568")
if tiles:  # square kernel cells, the grid as tall as it needs
    fig.update_yaxes(scaleanchor="x", scaleratio=1, constrain="domain")
    fig.update_xaxes(constrain="domain")
height = (
    min(720, max(300, int(900 * grid.shape[0] / max(grid.shape[1], 1)) + 60))
    if tiles
    else min(620, max(300, 6 * grid.shape[0] + 80))
)
fig.update_layout(height=height, yaxis_autorange="reversed", margin=dict(l=10, r=10, t=10, b=10))
st.plotly_chart(fig, width="stretch", key="layer_map")
if len(shape) == 4:
    how = (
        f"{shape[0]} output filters down × {shape[1]} input channels across, each tile the {shape[2]}×{shape[3]} kernel"
        if tiles
        else f"{shape[0]} output filters × {shape[1]} input channels, summed over the kernel"
    )
else:
    how = f"{shape[0]} outputs down × {shape[1]} inputs across"
coarse = (
    "" if tiles or grid.shape == tuple(shape[:2]) else f"; summed in blocks to {grid.shape[0]}×{grid.shape[1]} cells"
)
st.caption(f"{layer} ({'×'.join(map(str, shape))}): {how}{coarse}. The colour scale is symmetric around zero.")

# ---------------------------------------------------------------- relevance vs magnitude
st.subheader("Relevance against magnitude")
sample = relevance_sample(
    exp.layout,
    exp.injector("fp32").clean_values,
    exp.layout.flatten({n: torch.from_numpy(rel[n]) for n in names}),
    n=3000,
)
shown = sample[(sample["abs relevance"] > 0) & (sample["magnitude"] > 0)].assign(
    rank=lambda d: np.where(d["top"], "top 1% by LRP", "other")
)
fig = px.scatter(
    shown,
    x="magnitude",
    y="abs relevance",
    color="layer",
    symbol="rank",
    log_x=True,
    log_y=True,
    opacity=0.6,
    hover_data=["index", "relevance"],
    symbol_map={"top 1% by LRP": "diamond", "other": "circle"},
    labels={"magnitude": "|w|", "abs relevance": "|LRP relevance|", "rank": ""},
)
fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10))
st.plotly_chart(fig, width="stretch", key="scatter")
st.caption(
    f"{len(shown):,} sampled weights (the top 1% by |relevance| drawn first, up to a quarter of the points; "
    "weights with zero relevance or value are left out of the log axes). Large weights are not always the "
    "relevant ones: that is why a magnitude ranking protects different weights than LRP."
)

# ---------------------------------------------------------------- input relevance
st.subheader("Input relevance")
n_test = int(exp.x_test.shape[0])
i1, i2 = st.columns([3, 1])
picked = i1.multiselect(
    "Test images",
    list(range(n_test)),
    default=[0, 1, 2, 3],
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
    heat = app_state.input_heatmaps(choice.key, tuple(int(i) for i in picked), rule, target, exp)
    preds = exp.clean_predictions("fp32").cpu()
    fig = make_subplots(
        rows=2,
        cols=len(picked),
        vertical_spacing=0.06,
        horizontal_spacing=0.02,
        subplot_titles=[f"#{i}: label {int(exp.y_test[i])}, predicted {int(preds[i])}" for i in picked],
    )
    for j, i in enumerate(picked):
        img = exp.x_test[i].detach().cpu().numpy()
        if img.shape[0] == 3:
            fig.add_trace(go.Image(z=(np.transpose(img, (1, 2, 0)) * 255).astype(np.uint8)), row=1, col=j + 1)
        else:
            fig.add_trace(
                go.Heatmap(z=img[0], colorscale="gray_r", showscale=False, hoverinfo="skip"), row=1, col=j + 1
            )
        h = heat[j].sum(axis=0)
        lim = signed_range(h)
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
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor=None)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_annotations(font_size=11)
    st.plotly_chart(fig, width="stretch", key="inputs")
    st.caption(
        "Top: the image. Bottom: its pixel relevance for the chosen class (red for, blue against), each map "
        "on its own symmetric scale."
    )

# ---------------------------------------------------------------- top-k overlap
st.subheader("Do two scorers pick the same weights?")
o1, o2 = st.columns(2)
a = o1.selectbox(
    "Scorer A",
    SCORERS,
    index=SCORERS.index("lrp"),
    key="ov_a",
    help="lrp: |relevance|; magnitude: |w|; gradient: |dL/dw|; taylor: |w·dL/dw|; random.",
)
b = o2.selectbox("Scorer B", SCORERS, index=SCORERS.index("magnitude"), key="ov_b", help="The scorer to compare with.")
if a == b:
    st.info("Pick two different scorers to compare their top-k sets.")
else:
    ov = app_state.overlap(choice.key, exp, a, b, OVERLAP_FRACTIONS, rule)
    ks = [100 * f for f in OVERLAP_FRACTIONS]
    fig = go.Figure()
    fig.add_scatter(x=ks, y=[100 * v for v in ov], mode="lines+markers", name=f"{a} ∩ {b}", line_color="#c53030")
    fig.add_scatter(x=ks, y=ks, mode="lines", name="two random rankings", line=dict(dash="dot", color="#a0aec0"))
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
