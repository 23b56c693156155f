"""The Model page's summary of the active model: its name and weights download, metrics, weights per layer,
clean accuracy and memory per format, training history and checkpoint details."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import app_state
import ui
from app_session import ModelChoice
from xtmr_core.vocabulary import FORMATS

#: A wrapping row of fixed-width metrics: four columns cut "240.1 KiB" to "240.1 …" at 1024 px, and ui.py's CSS
#: gives metrics container-type inline-size, so a width sized to the content would collapse to nothing.
METRIC_PX = 220
FIG_MARGIN = dict(l=10, r=10, t=40, b=10)


def model_heading(choice: ModelChoice, custom: dict | None) -> None:
    """The active model's name, and a download of its weights when this session trained or uploaded them."""
    st.subheader(f"{choice.model} on {choice.dataset} ({choice.label})")
    if choice.source == "custom" and custom:
        st.download_button(
            "Download these weights",
            custom["data"],
            file_name=custom["name"],
            help="The checkpoint as a .pt file (a state dict and its metadata), to upload again later.",
        )


def metrics(fmt: str, accuracy: float, n_weights: int, n_test: int) -> None:
    """Clean accuracy in ``fmt``, faultable weights, their memory, test images: a wrapping row of metrics."""
    with st.container(horizontal=True, gap="medium", key="model_metrics"):
        with st.container(key="model_clean_accuracy", width=METRIC_PX):
            st.metric(
                f"Clean accuracy ({fmt})",
                ui.pct(accuracy),
                help="Test accuracy of the weights stored in this format, without faults.",
            )
        st.metric(
            "Faultable weights", f"{n_weights:,}", help="Weights of every conv and linear layer.", width=METRIC_PX
        )
        memory = app_state.weight_memory_bytes(n_weights, fmt) / 1024
        st.metric(f"Weight memory ({fmt})", f"{memory:,.1f} KiB", width=METRIC_PX)
        st.metric("Test images", f"{n_test:,}", width=METRIC_PX)


def layer_chart(layers: pd.DataFrame) -> None:
    """Weights per layer as horizontal bars on a log axis, one row per layer (input side at the top)."""
    # readable for 5 layers and for mobilenetv2's ~50; whole decades only on the log axis (plotly's minor
    # labels "2, 5" read as weight counts)
    fig = go.Figure(
        go.Bar(
            y=layers["layer"],
            x=layers["weights"],
            orientation="h",
            marker_color="#4a5568",
            customdata=layers["type"],
            hovertemplate="%{y} (%{customdata}): %{x:,} weights<extra></extra>",
        )
    )
    low, high = max(1, layers["weights"].min()), layers["weights"].max() + 1
    fig.update_xaxes(
        type="log",
        dtick=1,
        range=[math.floor(math.log10(low)), math.ceil(math.log10(high))],
        tickformat="~s",
        title_text="weights (log scale)",
    )
    fig.update_yaxes(autorange="reversed", title_text="layer (input side at the top)", automargin=True)
    fig.update_layout(
        title="Weights per layer",
        height=max(260, 110 + (22 if len(layers) <= 20 else 16) * len(layers)),
        margin=FIG_MARGIN,
    )
    st.plotly_chart(fig, width="stretch", key="layer_bars")


def layer_table(layers: pd.DataFrame) -> None:
    """The per-layer table: weights, biases, share."""
    st.dataframe(
        layers,
        hide_index=True,
        width="stretch",
        height="auto" if len(layers) <= 12 else 420,
        column_config={
            "layer": st.column_config.TextColumn(width="medium"),
            "weights": st.column_config.NumberColumn(format="localized"),
            "biases": st.column_config.NumberColumn(format="localized"),
            "share %": st.column_config.NumberColumn(format="%.2f"),
        },
    )


def format_table(accuracy: dict[str, float], n_weights: int) -> None:
    """Clean accuracy and weight memory in every format."""
    st.dataframe(
        pd.DataFrame(
            {
                "format": list(FORMATS),
                "clean accuracy": [accuracy[f] for f in FORMATS],
                "weight memory (KiB)": [app_state.weight_memory_bytes(n_weights, f) / 1024 for f in FORMATS],
            }
        ),
        hide_index=True,
        column_config={
            "clean accuracy": st.column_config.NumberColumn(format="percent"),
            "weight memory (KiB)": st.column_config.NumberColumn(format="%.1f"),
        },
    )


def history_chart(history: list[dict]) -> None:
    """Loss and test accuracy per epoch of a model trained here."""
    hist = pd.DataFrame(history)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Training loss per epoch", "Test accuracy per epoch"))
    fig.add_scatter(x=hist["epoch"], y=hist["loss"], mode="lines+markers", line_color="#2b6cb0", row=1, col=1)
    fig.add_scatter(
        x=hist["epoch"], y=100 * hist["test_accuracy"], mode="lines+markers", line_color="#2f855a", row=1, col=2
    )
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text="cross-entropy", row=1, col=1)
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 100], row=1, col=2)
    fig.update_layout(height=300, showlegend=False, margin=FIG_MARGIN)
    st.plotly_chart(fig, width="stretch", key="history")


def checkpoint_details(meta: dict) -> None:
    """The checkpoint's metadata, its command last."""
    with st.expander("Checkpoint details"):
        st.json({k: v for k, v in meta.items() if k != "command"} | {"command": meta.get("command", "")})
