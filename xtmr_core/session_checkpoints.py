"""Checkpoints held as bytes in memory: the models the app trains or receives as uploads.

A model trained in the app is serialised to the same ``{"state_dict", "meta"}`` format that
``checkpoints.save_checkpoint`` writes (``checkpoints.checkpoint_bytes``), so it is loaded back exactly like an upload
(``checkpoints.load_state_dict_bytes``, ``weights_only=True``) and identified by its SHA-256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch

from xtmr_core.checkpoints import checkpoint_bytes
from xtmr_core.data import DataSplits
from xtmr_core.training import TrainingRecipe, recipe_meta, seeded_model, train_model

__all__ = ["checkpoint_bytes", "digest", "train_checkpoint"]


def digest(data: bytes) -> str:
    """SHA-256 hex digest of checkpoint bytes (the id a model is cached under)."""
    return hashlib.sha256(data).hexdigest()


def train_checkpoint(
    recipe: TrainingRecipe,
    *,
    splits: DataSplits | None = None,
    device: torch.device | str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[bytes, list[dict[str, Any]]]:
    """Build and train a model (``training.train_model``) and return it as checkpoint bytes.

    The model is initialised by ``training.seeded_model``, exactly as ``training.train_and_save`` does (a
    torchvision architecture too; never user code: this is the app's path).

    Args:
        recipe: the model (a name from ``models.MODELS`` or ``torchvision:NAME``), the dataset (a name from
            ``data.DATASETS``) and the hyper-parameters, as in ``training.train_and_save``.
        splits: already loaded data (an image folder) instead of ``recipe.dataset``, which is then only its name.
        device, progress, should_stop: as in ``training.train_model``.

    Returns:
        ``(bytes, history)``: the checkpoint (meta records the recipe, the options that differ from their
        defaults, the last epoch's ``test_accuracy`` and ``stopped``) and ``train_model``'s per-epoch history.

    Raises:
        XtmrError: as ``train_model`` (bad settings, a model that does not fit, divergence) or
            ``load_dataset``.
    """
    r = recipe
    # never user code: the app's path
    splits, net, width = seeded_model(r.model, r.dataset, r.seed, r.width, splits=splits, num_classes=r.num_classes)
    history = train_model(
        net,
        splits,
        epochs=int(r.epochs),
        lr=float(r.lr),
        batch_size=int(r.batch_size),
        seed=int(r.seed),
        device=device,
        progress=progress,
        should_stop=should_stop,
        lr_schedule=r.lr_schedule,
        optimizer=r.optimizer,
        weight_decay=r.weight_decay,
        augment=r.augment,
    )
    # The options only where they differ from the defaults, so a checkpoint trained without them keeps its bytes.
    options = {"lr_schedule": r.lr_schedule} if r.lr_schedule != "constant" else {}
    meta = {
        **recipe_meta(r.model, splits.name, width, splits, r.seed, r.epochs, r.lr, r.batch_size),
        **options,
        **r.extras(),
        "test_accuracy": float(history[-1]["test_accuracy"]) if history else None,
        "final_loss": float(history[-1]["loss"]) if history else None,
        "stopped": bool(history and history[-1].get("stopped")),
        "trained_in": "app",
        "torch": str(torch.__version__),
    }
    if r.num_classes is not None:
        meta["num_classes"] = int(r.num_classes)
    return checkpoint_bytes(net, meta), history
