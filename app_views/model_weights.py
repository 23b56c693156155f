"""The Model page's weights parts: train a model here (form, live loss, adopting the result) or upload a state
dict; either becomes the session's model through ``app_session.adopt_checkpoint``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import plotly.graph_objects as go
import streamlit as st

import app_session
import app_state
from app_state import ImageFolderSpec
from xtmr_core.errors import XtmrError

FIG_MARGIN = dict(l=10, r=10, t=40, b=10)


class Recipe(NamedTuple):
    """What the Train form asks: epochs, learning rate, batch size, seed."""

    epochs: int
    lr: float
    batch: int
    seed: int


def train_form() -> Recipe | None:
    """The Train form; the recipe once Train is pressed, else ``None``."""
    with st.form("train_form"):
        f1, f2, f3, f4 = st.columns(4)
        epochs = f1.number_input("Epochs", 1, 50, 2, key="train_epochs", help="Passes over the training images.")
        lr = f2.select_slider(
            "Learning rate",
            (1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
            value=1e-3,
            key="train_lr",
            help="Adam's step size; 1e-3 is a safe default.",
        )
        batch = f3.selectbox(
            "Batch size", (32, 64, 128, 256), index=1, key="train_batch", help="Images per optimiser step."
        )
        seed = f4.number_input(
            "Seed", 0, 10_000, 0, key="train_seed", help="Seeds the initial weights, batch order and dropout."
        )
        pressed = st.form_submit_button(
            "Train",
            type="primary",
            key="train_submit",
            help="Runs in this session; another page or the Stop button interrupts it "
            "and leaves the previous model active.",
        )
    return Recipe(int(epochs), float(lr), int(batch), int(seed)) if pressed else None


def loss_chart(losses: list[tuple[int, float]]) -> go.Figure:
    """The training loss so far (``losses``: (step, loss) pairs)."""
    fig = go.Figure(go.Scatter(x=[s for s, _ in losses], y=[v for _, v in losses], mode="lines"))
    fig.update_layout(
        title="Training loss", xaxis_title="step", yaxis_title="cross-entropy", height=260, margin=FIG_MARGIN
    )
    return fig


def training_display() -> Callable[[dict], None]:
    """A Stop button, a progress bar and a live loss chart; returns the progress callback that updates them
    (at most twice a second, and at each epoch's end)."""
    st.button("Stop training", key="stop_training", help="Stops at the next step; the previous model stays.")
    bar = st.progress(0.0, text="starting…")
    chart = st.empty()
    losses: list[tuple[int, float]] = []
    state = {"last": 0.0, "draws": 0}

    def on_progress(rec: dict) -> None:
        if rec["test_accuracy"] is None:
            losses.append((rec["step"], rec["loss"]))
        now = time.time()
        if rec["test_accuracy"] is None and now - state["last"] <= 0.5:
            return
        state["last"] = now
        text = (
            f"epoch {rec['epoch']}, step {rec['step']} of {rec['total_steps']}, loss {losses[-1][1]:.3f}"
            if losses
            else "training…"
        )
        bar.progress(rec["step"] / rec["total_steps"], text=text)
        # a fresh key per redraw: two identical figures in one run would share an auto-generated id
        state["draws"] += 1
        chart.plotly_chart(loss_chart(losses), width="stretch", key=f"loss_chart_{state['draws']}")

    return on_progress


def train(model: str, dataset: str, folder: ImageFolderSpec | None, recipe: Recipe) -> None:
    """Train ``model`` on the data with ``recipe``, showing its progress, and make it the session's model (the
    page reruns); a failure is one line and leaves the previous model active."""
    st.session_state["training_started"] = time.time()
    progress = training_display()
    try:
        data, history = app_state.train_weights(
            model,
            dataset,
            folder,
            epochs=recipe.epochs,
            lr=recipe.lr,
            seed=recipe.seed,
            batch_size=recipe.batch,
            progress=progress,
        )
        # one Experiment, built and cached under the checkpoint's SHA-256 (the name is only a label)
        stem = f"{model.replace(':', '_')}_{'imagefolder' if folder is not None else dataset}"
        app_session.adopt_checkpoint(model, dataset, data, f"{stem}_trained.pt", "train", history, folder)
    except XtmrError as e:
        st.session_state.pop("training_started", None)
        st.error(str(e))
    else:
        st.session_state.pop("training_started", None)
        st.rerun()


def train_section(model: str, dataset: str, folder: ImageFolderSpec | None, data_label: str, until: str) -> None:
    """Train a model here: the form, and the run once it is submitted; a note while nothing is trained yet."""
    st.subheader("Train a model")
    if st.session_state.pop("training_started", None) is not None:
        st.warning("Training was interrupted; nothing changed: the previous model stays active.")
    recipe = train_form()
    if recipe is not None:
        train(model, dataset, folder, recipe)
    elif not app_session.matches_custom(app_session.custom_checkpoint(), "train"):
        st.info(f"No {model} trained here on {data_label} yet: press Train. Until then {until}")


def upload_section(model: str, dataset: str, folder: ImageFolderSpec | None, data_label: str, until: str) -> None:
    """Upload weights: the file input, checked and adopted as the session's model once a new file arrives."""
    st.subheader("Upload weights")
    limit_mb = app_session.MAX_UPLOAD_BYTES / 1e6
    up = st.file_uploader(
        f"A .pt / .pth file of at most {limit_mb:g} MB: a state dict, or {{'state_dict', 'meta'}}",
        type=["pt", "pth"],
        key="upload",
        # The browser's own cap (decimal or binary MB, by platform) is set well above the app's limit, so a
        # file just over it reaches the check below and its message is shown on the page, not in a tooltip.
        max_upload_size=int(2 * limit_mb),
        help=f"At most {limit_mb:g} MB ({app_session.MAX_UPLOAD_BYTES:,} bytes). Loaded with "
        "torch.load(weights_only=True): a file holding pickled code is refused, and no uploaded file is ever "
        "run as Python. It must fit the architecture and dataset chosen above.",
    )
    custom = app_session.custom_checkpoint()
    if up is None:
        if not app_session.matches_custom(custom, "upload"):
            st.info(f"No weights uploaded for {model} on {data_label} yet; until then {until}")
        return
    data = up.getvalue()
    if custom and custom["sha"] == app_session.digest(data) and app_session.matches_custom(custom):
        return
    try:
        app_session.adopt_checkpoint(model, dataset, data, up.name, "upload", folder=folder)
    except XtmrError as e:
        st.error(str(e))
    else:
        st.rerun()
