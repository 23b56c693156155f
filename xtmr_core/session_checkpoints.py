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
from xtmr_core.training import recipe_meta, seeded_model, train_model

__all__ = ["checkpoint_bytes", "digest", "train_checkpoint"]


def digest(data: bytes) -> str:
    """SHA-256 hex digest of checkpoint bytes (the id a model is cached under)."""
    return hashlib.sha256(data).hexdigest()


def train_checkpoint(
    model: str,
    dataset: str,
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
    batch_size: int = 64,
    width: float | None = None,
    device: torch.device | str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    splits: DataSplits | None = None,
) -> tuple[bytes, list[dict[str, Any]]]:
    """Build and train a model (``training.train_model``) and return it as checkpoint bytes.

    The model is initialised by ``training.seeded_model``, exactly as ``training.train_and_save`` does (a
    torchvision architecture too; never user code: this is the app's path).

    Args:
        model, dataset: a name from ``models.MODELS`` or ``torchvision:NAME`` / a name from ``data.DATASETS``.
        splits: already loaded data (an image folder) instead of ``dataset``, which is then only its name.
        epochs, lr, seed, batch_size, device, progress, should_stop: as in ``training.train_model``.
        width: width multiplier; ``None`` = ``models.default_width(model)``.

    Returns:
        ``(bytes, history)``: the checkpoint (meta records the recipe, the last epoch's
        ``test_accuracy`` and ``stopped``) and ``train_model``'s per-epoch history.

    Raises:
        XtmrError: as ``train_model`` (bad settings, a model that does not fit, divergence) or
            ``load_dataset``.
    """
    splits, net, width = seeded_model(model, dataset, seed, width, splits=splits)  # never user code: the app's path
    history = train_model(
        net,
        splits,
        epochs=int(epochs),
        lr=float(lr),
        batch_size=int(batch_size),
        seed=int(seed),
        device=device,
        progress=progress,
        should_stop=should_stop,
    )
    meta = {
        **recipe_meta(model, splits.name, width, splits, seed, epochs, lr, batch_size),
        "test_accuracy": float(history[-1]["test_accuracy"]) if history else None,
        "final_loss": float(history[-1]["loss"]) if history else None,
        "stopped": bool(history and history[-1].get("stopped")),
        "trained_in": "app",
        "torch": str(torch.__version__),
    }
    return checkpoint_bytes(net, meta), history
