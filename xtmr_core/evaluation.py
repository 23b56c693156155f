"""Evaluating a model on a split: predictions, accuracy, mismatch against the clean model."""

from __future__ import annotations

import torch
from torch import nn

from xtmr_core.device import eval_batch_size, faithful_fp32


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Class predictions of ``model`` on ``x``, computed in true fp32 (no TF32 on a GPU).

    A row whose logits are not all finite is a wrong answer, never a crash: its prediction is -1.

    Args:
        model: the model (in eval mode).
        x: inputs, already on the model's device.
        batch_size: inputs per forward pass; ``None`` = ``device.eval_batch_size`` (250 on a CPU, the
            whole split on a GPU).

    Returns:
        int64 predictions on the inputs' device.
    """
    faithful_fp32()
    batch_size = eval_batch_size(x.device, x.shape[0], batch_size)
    out = []
    for start in range(0, x.shape[0], batch_size):
        logits = model(x[start : start + batch_size])
        pred = logits.argmax(dim=1)
        pred[~torch.isfinite(logits).all(dim=1)] = -1
        out.append(pred)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Share of predictions equal to the labels (0.0 for an empty split)."""
    return int((pred == y).sum()) / y.numel() if y.numel() else 0.0


def mismatch(pred: torch.Tensor, clean_pred: torch.Tensor) -> float:
    """Share of predictions that differ from the clean model's own predictions."""
    return int((pred != clean_pred).sum()) / pred.numel() if pred.numel() else 0.0
