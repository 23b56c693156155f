"""Which model a session works on, and what a page shows when that model cannot be loaded.

A session's model is a ``ModelChoice``: a frozen, hashable value (model, dataset, where the weights come from,
their version or SHA-256, how an image folder is read) that ``app_state`` takes as the key of every cached call.
This module reads it from the session's settings (``ui.setting``) and its trained or uploaded checkpoint
(``st.session_state``), hands trained/uploaded bytes to ``app_state``'s shared store, and, in
``require_experiment``, draws the one-line error and hint of a model that cannot load, then stops the page.
It holds no cache of its own and calls the engine only through ``app_state``.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import app_state
import ui
from xtmr_core.checkpoints import MAX_UPLOAD_BYTES as MAX_UPLOAD_BYTES  # "X as X": re-exported for the pages
from xtmr_core.checkpoints import shipped_checkpoint
from xtmr_core.errors import XtmrError
from xtmr_core.experiment import Experiment
from xtmr_core.image_folder import ImageFolderSpec
from xtmr_core.session_checkpoints import digest as digest  # "X as X": re-exported for the pages
from xtmr_core.vocabulary import DATASETS, MODELS, model_kind


@dataclass(frozen=True)
class ModelChoice:
    """The active model of a session, and the cache key of everything derived from it.

    Attributes:
        model: a builtin name or ``torchvision:NAME`` (never user code). dataset: a builtin name or
            ``imagefolder:PATH``. source: ``shipped`` or ``custom`` (trained here or uploaded).
        ckpt_id: the shipped file's version (mtime/size) or the custom checkpoint's SHA-256.
        folder: how the image folder is read (size, channels, normalisation), ``None`` for a builtin dataset:
            part of the key, so another size or normalisation is another model.
    """

    model: str
    dataset: str
    source: str
    ckpt_id: str
    folder: ImageFolderSpec | None = None

    @property
    def key(self) -> str:
        """The identity as one string (model, dataset, source, checkpoint id, and how a folder is read)."""
        extra = "" if self.folder is None else f"|{self.folder.size}|{self.folder.channels}|{self.folder.normalize}"
        return f"{self.model}|{self.dataset}|{self.source}|{self.ckpt_id}{extra}"

    @property
    def label(self) -> str:
        """Where the weights come from, in a few words (for this session)."""
        custom = custom_checkpoint()
        if self.source != "custom":
            return "shipped checkpoint"
        if custom and custom["sha"] == self.ckpt_id:
            return "trained here" if custom["origin"] == "train" else "uploaded " + custom["name"]
        return "custom weights"


def custom_checkpoint() -> dict | None:
    """The session's trained/uploaded checkpoint: ``{origin, model, dataset, folder, sha, name, data, history}``."""
    return st.session_state.get("custom_ckpt")


def forget_custom_checkpoint() -> None:
    """Drop the session's trained/uploaded checkpoint (the shipped one is used again)."""
    st.session_state.pop("custom_ckpt", None)


def adopt_checkpoint(
    model: str,
    dataset: str,
    data: bytes,
    name: str,
    origin: str,
    history: list[dict] | None = None,
    folder: ImageFolderSpec | None = None,
) -> ModelChoice:
    """Check checkpoint bytes as ``model`` on ``dataset`` (the image folder ``folder``, when given) and make
    them the session's custom model.

    The ``Experiment`` is built once, under the checkpoint's SHA-256 (the display name is no part of the key), so
    the pages that follow find it in the cache.

    Raises:
        XtmrError: weights that do not fit, or a file that is not a plain checkpoint.
    """
    sha = digest(data)
    app_state.hold_weights(sha, data, name)
    choice = ModelChoice(model, dataset, "custom", sha, folder)
    app_state.experiment(choice)
    st.session_state["custom_ckpt"] = {
        "origin": origin,
        "model": model,
        "dataset": dataset,
        "folder": folder,
        "sha": sha,
        "name": name,
        "data": data,
        "history": history,
    }
    return choice


def current_folder() -> ImageFolderSpec | None:
    """The image folder the session's settings name (``None``: a builtin dataset, or no path typed yet).

    Only a path the user typed on the Model page gets here: the folder settings never come from a URL.
    """
    if not ui.uses_folder():
        return None
    path = str(ui.setting("folder_path")).strip()
    if not path:
        return None
    size = int(ui.setting("folder_size"))
    return ImageFolderSpec(
        path, size=(size, size), channels=int(ui.setting("folder_channels")), normalize=str(ui.setting("folder_norm"))
    )


def current_dataset() -> str:
    """The dataset the session's settings name, as the engine calls it (a builtin name or ``imagefolder:PATH``)."""
    folder = current_folder()
    return folder.name if folder is not None else str(ui.setting("dataset"))


def current_choice() -> ModelChoice:
    """The model the session works on: its custom checkpoint when chosen and fitting, else the shipped one."""
    model, source = ui.model_ref(), ui.setting("weights_source")
    folder = current_folder()
    dataset = current_dataset()
    custom = custom_checkpoint()
    if (
        source in ("train", "upload")
        and custom
        and custom["origin"] == source
        and custom["model"] == model
        and custom["dataset"] == dataset
        and custom.get("folder") == folder
    ):
        app_state.hold_weights(custom["sha"], custom["data"], custom["name"], replace=False)
        return ModelChoice(model, dataset, "custom", custom["sha"], folder)
    return shipped_choice(model, dataset, folder)


def weights_origin(choice: ModelChoice) -> str | None:
    """``trained`` or ``uploaded`` when the choice rests on weights held only by this session (a link cannot
    carry them), else ``None``."""
    if choice.source != "custom":
        return None
    custom = custom_checkpoint()
    return "trained" if custom and custom["sha"] == choice.ckpt_id and custom["origin"] == "train" else "uploaded"


def matches_custom(custom: dict | None, origin: str | None = None) -> bool:
    """Whether the session's trained/uploaded checkpoint fits the model and data chosen now (and ``origin``)."""
    if not custom or (origin is not None and custom["origin"] != origin):
        return False
    return (
        custom["model"] == ui.model_ref()
        and custom["dataset"] == current_dataset()
        and custom.get("folder") == current_folder()
    )


def has_shipped_weights(model: str, dataset: str) -> bool:
    """Whether weights ship for ``model`` on ``dataset`` (never for a torchvision model or an image folder)."""
    return (
        model_kind(model) == "builtin" and dataset in DATASETS and shipped_choice(model, dataset).ckpt_id != "missing"
    )


def shipped_choice(model: str, dataset: str, folder: ImageFolderSpec | None = None) -> ModelChoice:
    """The shipped checkpoint of (model, dataset); its id changes when the file does (``missing`` if none:
    always for a torchvision architecture or an image folder)."""
    path = None
    if folder is None and model in MODELS and dataset in DATASETS:
        try:
            path = shipped_checkpoint(model, dataset)
        except XtmrError:
            path = None
    ckpt_id = f"{path.stat().st_mtime_ns}-{path.stat().st_size}" if path is not None else "missing"
    return ModelChoice(model, dataset, "shipped", ckpt_id, folder)


def require_experiment(on_model_page: bool = False) -> tuple[ModelChoice, Experiment]:
    """The active choice and its experiment; on failure explain in one sentence and stop the page.

    Args:
        on_model_page: the caller is the Model page, whose controls are right above: the hint says so instead of
            sending the reader to the page they are on.
    """
    choice = current_choice()
    try:
        return choice, app_state.experiment(choice)
    except XtmrError as e:
        st.error(_failure_line(e, choice))
        st.info(_failure_hint(e, choice, "Above" if on_model_page else "On the **Model** page"))
        st.stop()
        raise  # unreachable: st.stop() ends the run


def _failure_line(e: XtmrError, choice: ModelChoice) -> str:
    """The error line of a model that cannot load."""
    if choice.source == "shipped" and str(e).startswith("no shipped checkpoint"):
        return f"No weights are shipped for {choice.model} on {choice.dataset}."
    return str(e)


def _failure_hint(e: XtmrError, choice: ModelChoice, where: str) -> str:
    """What to do about a model that cannot load (``where``: how the sentence points at the Model page's controls)."""
    if str(e).startswith("no shipped weights for"):
        return (
            f"{where}, choose *Upload a .pt file* under Weights (a state dict of this architecture) or "
            "*Train one here*."
        )
    if choice.source == "shipped" and str(e).startswith("no shipped checkpoint"):
        return (
            f"{where}, choose *Train one here* under Weights (a minute or two on a CPU) or upload a .pt file; "
            "or pick mnist5k, for which every built-in architecture but mlp is shipped."
        )
    return f"{where}, pick another dataset or architecture, or train / upload weights."
