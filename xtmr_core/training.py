"""Training: a seeded Adam loop with progress reports and clean cancellation, and train-then-save."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xtmr_core.checkpoints import CHECKPOINT_DIR, MANIFEST_NAME, save_checkpoint
from xtmr_core.data import DataSplits, load_dataset
from xtmr_core.device import default_device
from xtmr_core.errors import XtmrError
from xtmr_core.model_source import build_from_source
from xtmr_core.models import default_width
from xtmr_core.vocabulary import LR_SCHEDULES, OPTIMIZERS, model_kind


def train_model(  # noqa: C901, PLR0912, PLR0913, PLR0915 (left: to take the TrainingRecipe and split per epoch)
    model: nn.Module,
    splits: DataSplits,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    lr_schedule: str = "constant",
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    augment: int = 0,
) -> list[dict[str, Any]]:
    """Train a classifier in place with Adam (or SGD) and cross-entropy on ``splits``' train part.

    Deterministic on the CPU for a given seed: the batch order comes from a private generator and
    dropout from torch's global RNG, seeded inside ``torch.random.fork_rng`` so the caller's RNG state
    is left untouched. The model ends in eval mode on ``device``.

    Args:
        model: the model to train (moved to ``device``).
        splits: the dataset; the test accuracy after each epoch is recorded.
        epochs: passes over the training images (>= 1).
        lr: Adam learning rate (> 0).
        batch_size: images per step.
        seed: seed of the batch order and dropout.
        device: where to train; ``None`` = ``default_device()``.
        progress: called after every step with ``{"epoch", "step", "total_steps", "loss",
            "test_accuracy": None}`` and after every epoch with that epoch's history record.
        should_stop: polled after every step; ``True`` ends training after that step (the weights
            are those of a completed optimiser step) and records the partial epoch.
        lr_schedule: ``constant``, or ``cosine`` (the rate decays to 0 along a half cosine over all
            steps, which lets the BatchNorm models settle instead of ending on a noisy step).
        optimizer: ``adam``, or ``sgd`` (Nesterov momentum 0.9).
        weight_decay: L2 penalty of the optimiser (>= 0).
        augment: shift each training image by up to this many pixels in each direction (zero fill),
            drawn per image from the seeded generator; 0 = no augmentation.

    Returns:
        One record per (possibly partial) epoch: ``{"epoch", "step", "total_steps", "loss" (mean
        training loss of the epoch), "test_accuracy", "stopped"}``.

    Raises:
        XtmrError: invalid epochs/lr/batch size, a model that does not fit the data, or a diverging loss.
    """
    epochs, batch_size = int(epochs), int(batch_size)
    if epochs < 1:
        raise XtmrError(f"epochs must be at least 1, got {epochs}")
    if not (math.isfinite(lr) and lr > 0):
        raise XtmrError(f"learning rate must be a positive number, got {lr}; try --lr 1e-3")
    if batch_size < 1:
        raise XtmrError(f"batch size must be at least 1, got {batch_size}")
    if lr_schedule not in LR_SCHEDULES:
        raise XtmrError(f"unknown learning-rate schedule {lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
    if optimizer not in OPTIMIZERS:
        raise XtmrError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise XtmrError(f"weight decay must be a number >= 0, got {weight_decay}")
    if int(augment) < 0:
        raise XtmrError(f"augment (pixels of shift) must be >= 0, got {augment}")
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    _check_fits(model, splits, device)

    n = len(splits.y_train)
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    history: list[dict[str, Any]] = []
    step = 0
    order_gen = torch.Generator().manual_seed(int(seed))
    opt: torch.optim.Optimizer
    if optimizer == "sgd":
        opt = torch.optim.SGD(
            model.parameters(), lr=float(lr), momentum=0.9, nesterov=True, weight_decay=float(weight_decay)
        )
    else:
        opt = torch.optim.Adam(model.parameters(), lr=float(lr), weight_decay=float(weight_decay))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total) if lr_schedule == "cosine" else None
    loss_fn = nn.CrossEntropyLoss()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(n, generator=order_gen)
            loss_sum, seen, stopped = 0.0, 0, False
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                x, y = splits.x_train[idx], splits.y_train[idx]
                if augment:
                    x = shifted(x, int(augment), order_gen)
                x, y = x.to(device), y.to(device)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                if not torch.isfinite(loss):
                    model.eval()
                    raise XtmrError(
                        f"training diverged (loss {loss.item()}) at step {step + 1}; lower the learning rate (now {lr})"
                    )
                loss.backward()
                opt.step()
                if scheduler is not None:
                    scheduler.step()
                step += 1
                loss_sum += loss.item() * len(idx)
                seen += len(idx)
                if progress is not None:
                    progress(
                        {"epoch": epoch, "step": step, "total_steps": total, "loss": loss.item(), "test_accuracy": None}
                    )
                if should_stop is not None and should_stop():
                    stopped = True
                    break
            record = {
                "epoch": epoch,
                "step": step,
                "total_steps": total,
                "loss": loss_sum / seen,
                "test_accuracy": accuracy_on_test(model, splits, device),
                "stopped": stopped,
            }
            history.append(record)
            if progress is not None:
                progress(dict(record))
            if stopped:
                break
    model.eval()
    return history


def shifted(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of a batch N×C×H×W moved by its own random (dy, dx) in [-pixels, pixels], zero fill."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (pixels, pixels, pixels, pixels))
    offsets = torch.randint(0, 2 * pixels + 1, (n, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])


def accuracy_on_test(
    model: nn.Module, splits: DataSplits, device: torch.device | str | None = None, batch_size: int = 500
) -> float:
    """Return the share of test images the model classifies correctly (eval mode, no gradients).

    Args:
        model: the classifier; left in eval mode.
        splits: the dataset.
        device: where to evaluate; ``None`` = where the model's parameters are.
        batch_size: images per forward pass.

    Returns:
        correct / total as a float; a non-finite output row counts as wrong.
    """
    if device is None:
        device = next(model.parameters()).device
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(splits.y_test), batch_size):
            out = model(splits.x_test[start : start + batch_size].to(device)).cpu()
            ok = (out.argmax(dim=1) == splits.y_test[start : start + batch_size]) & torch.isfinite(out).all(1)
            correct += int(ok.sum())
    return correct / len(splits.y_test)


def recipe_meta(
    model: str,
    dataset: str,
    width: float | None,
    splits: DataSplits,
    seed: int,
    epochs: int,
    lr: float,
    batch_size: int,
) -> dict[str, Any]:
    """The training recipe a checkpoint's meta records first, in this order (the CLI and the app share it)."""
    return {
        "model": model,
        "dataset": dataset,
        "width": width,
        "in_shape": list(splits.in_shape),
        "num_classes": splits.num_classes,
        "seed": int(seed),
        "epochs": int(epochs),
        "lr": float(lr),
        "batch_size": int(batch_size),
    }


def seeded_model(
    model: str,
    dataset: str,
    seed: int = 0,
    width: float | None = None,
    *,
    splits: DataSplits | None = None,
    num_classes: int | None = None,
    allow_code: bool = False,
) -> tuple[DataSplits, nn.Module, float | None]:
    """Load a dataset and build an untrained model for it, initialised from ``seed``.

    The seed is applied inside ``fork_rng``, so the caller's random state is left alone and the same
    seed always gives the same initial weights.

    Args:
        model: one of ``models.MODELS``, or a model from outside the zoo (``model_source``).
        dataset: one of ``data.DATASETS`` (only a name when ``splits`` is given).
        seed: initialisation seed. width: a built-in model's width multiplier; ``None`` = ``default_width(model)``.
        splits: already loaded data (an image folder) instead of loading ``dataset``.
        num_classes: outputs (default: the data's class count).
        allow_code: allow a model from user code (``model_source.build_from_source``).

    Returns:
        ``(splits, model, width)``; ``width`` is ``None`` for a model from outside the zoo.
    """
    splits = load_dataset(dataset) if splits is None else splits
    classes = splits.num_classes if num_classes is None else int(num_classes)
    if model_kind(model) == "builtin":
        width = default_width(model) if width is None else float(width)
    else:
        width = None
    net = build_from_source(model, splits.in_shape, classes, seed=seed, allow_code=allow_code, width=width)
    return splits, net, width


@dataclass(frozen=True)
class TrainingRecipe:
    """What decides a trained model's weights, recorded in its checkpoint: the model, the data and how it is
    trained (``train_and_save``; the hyper-parameters as in ``train_model``).

    Attributes:
        model: a model reference (``vocabulary.model_kind``). dataset: a dataset name (or an image folder's).
        epochs, lr, seed, batch_size: as in ``train_model``.
        width: width multiplier; ``None`` = ``default_width(model)``.
        lr_schedule, optimizer, weight_decay, augment: as in ``train_model`` (recorded when not the default).
        num_classes: outputs of a model from outside the zoo (default: the data's class count).
    """

    model: str
    dataset: str
    epochs: int
    lr: float
    seed: int = 0
    width: float | None = None
    batch_size: int = 64
    lr_schedule: str = "constant"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    augment: int = 0
    num_classes: int | None = None

    def extras(self) -> dict[str, str | float | int]:
        """The newer recipe options that differ from their defaults (a checkpoint trained without them keeps its
        bytes: its meta never names them)."""
        return {
            name: value
            for name, value, default in (
                ("optimizer", self.optimizer, "adam"),
                ("weight_decay", self.weight_decay, 0.0),
                ("augment", self.augment, 0),
            )
            if value != default
        }


def train_and_save(
    recipe: TrainingRecipe,
    out: str | Path,
    *,
    splits: DataSplits | None = None,
    command: str = "",
    progress: bool = True,
    device: torch.device | str | None = None,
    allow_code: bool = False,
) -> dict[str, Any]:
    """Build, train (on ``device``, default ``default_device()``), evaluate and save a model.

    The model is initialised under ``torch.manual_seed(recipe.seed)`` (inside ``fork_rng``), trained with
    ``train_model``, evaluated on the test split on the CPU, and saved with ``save_checkpoint``.
    When ``out`` lies in ``CHECKPOINT_DIR`` the manifest ``checkpoints/MANIFEST.json`` gets its entry.

    Args:
        recipe: the model, the data and the training hyper-parameters.
        out: the checkpoint path to write.
        splits: already loaded data (an image folder) instead of ``recipe.dataset``, which is then only its name.
        command: the command line that reproduces this run, recorded in meta and manifest.
        progress: show a tqdm progress bar on stderr.
        device: where to train (``None`` = ``default_device()``); the test accuracy is measured on the CPU.
        allow_code: allow a model from user code (``model_source.build_from_source``).

    Returns:
        The manifest entry: ``{"file", "model", "dataset", "width", "in_shape", "num_classes",
        "seed", "epochs", "lr", "batch_size", "test_accuracy", "params", "bytes", "sha256",
        "command", "torch"}``.
    """
    r = recipe
    model, dataset, seed, epochs, lr, batch_size = r.model, r.dataset, r.seed, r.epochs, r.lr, r.batch_size
    num_classes = r.num_classes
    splits, net, width_used = seeded_model(
        model, dataset, seed, r.width, splits=splits, num_classes=num_classes, allow_code=allow_code
    )
    classes = splits.num_classes if num_classes is None else int(num_classes)

    bar = None
    callback = None
    if progress:
        from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm's hints (types-tqdm) are not in the lock

        bar = tqdm(
            total=epochs * math.ceil(len(splits.y_train) / batch_size), desc=f"{model} on {dataset}", unit="step"
        )

        def callback(rec: dict[str, Any]) -> None:
            if rec["test_accuracy"] is None:
                bar.update(1)
                bar.set_postfix(loss=f"{rec['loss']:.3f}", refresh=False)
            else:
                bar.set_postfix(epoch=rec["epoch"], test_acc=f"{rec['test_accuracy']:.4f}")

    try:
        history = train_model(
            net,
            splits,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            progress=callback,
            lr_schedule=r.lr_schedule,
            optimizer=r.optimizer,
            weight_decay=r.weight_decay,
            augment=r.augment,
            device=device,
        )
    finally:
        if bar is not None:
            bar.close()
    # Evaluated on the CPU so the recorded accuracy is what a CPU-only user reproduces exactly.
    net.to("cpu")
    accuracy = accuracy_on_test(net, splits, "cpu")
    # The newer recipe options only when used, so checkpoints trained without them keep their bytes.
    extras = r.extras()
    meta = {
        **recipe_meta(model, splits.name, width_used, splits, seed, epochs, lr, batch_size),
        "lr_schedule": r.lr_schedule,
        **extras,
        "test_accuracy": accuracy,
        "final_loss": history[-1]["loss"],
        "command": command,
        "torch": str(torch.__version__),
    }
    meta["num_classes"] = classes
    if splits.info:
        meta["data"] = splits.info
    out = Path(out)
    digest = save_checkpoint(out, net, meta)
    entry = {
        "file": out.name,
        **{
            k: meta[k]
            for k in (
                "model",
                "dataset",
                "width",
                "in_shape",
                "num_classes",
                "seed",
                "epochs",
                "lr",
                "batch_size",
                "lr_schedule",
                *extras,
                "test_accuracy",
            )
        },
        "params": sum(p.numel() for p in net.parameters()),
        "bytes": out.stat().st_size,
        "sha256": digest,
        "command": command,
        "torch": str(torch.__version__),
    }
    if out.resolve().parent == CHECKPOINT_DIR.resolve() and model_kind(model) == "builtin" and not splits.info:
        _update_manifest(CHECKPOINT_DIR / MANIFEST_NAME, entry)
    return entry


def _check_fits(model: nn.Module, splits: DataSplits, device: torch.device) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(splits.x_train[:1].to(device))
    except RuntimeError:
        raise XtmrError(
            f"the model does not accept {splits.name} images of shape "
            f"{'×'.join(map(str, splits.in_shape))}; build it with that in_shape"
        ) from None
    finally:
        model.train(was_training)
    if out.shape != (1, splits.num_classes):
        raise XtmrError(
            f"the model has {out.shape[-1]} outputs but {splits.name} has "
            f"{splits.num_classes} classes; build it with num_classes={splits.num_classes}"
        )


def _update_manifest(path: Path, entry: dict[str, Any]) -> None:
    """Set the manifest's entry for ``entry['file']``, keeping the others; written atomically."""
    manifest: dict[str, Any] = {"checkpoints": {}}
    if path.is_file():
        manifest = json.loads(path.read_text())
    manifest.setdefault("checkpoints", {})[entry["file"]] = entry
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
    os.replace(tmp, path)
