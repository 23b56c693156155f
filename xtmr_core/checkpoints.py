"""Checkpoints: safe saving and loading (``weights_only=True``), and the ones shipped in ``checkpoints/``.

A checkpoint is a ``torch.save``d dict ``{"state_dict": {name: tensor}, "meta": {...}}`` holding only
tensors and plain Python values. A bare state dict is accepted too. Pickled code is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xtmr_core.data import dataset_shape
from xtmr_core.device import default_device
from xtmr_core.errors import XtmrError
from xtmr_core.models import build_model, default_width, weight_layers
from xtmr_core.vocabulary import DATASETS, MODELS, check_choice

CHECKPOINT_DIR: Path = Path(__file__).resolve().parent.parent / "checkpoints"
MANIFEST_NAME = "MANIFEST.json"
#: The one upload limit, in decimal megabytes (50 MB = 50,000,000 bytes), as browsers count them on most systems.
MAX_UPLOAD_BYTES = 50_000_000

_PLAIN = (type(None), bool, int, float, str)


def checkpoint_bytes(model: nn.Module, meta: dict[str, Any]) -> bytes:
    """Serialise a model as ``{"state_dict": ..., "meta": ...}`` bytes, the format every loader here reads.

    Args:
        model: whose ``state_dict()`` to store; tensors are copied to the CPU first.
        meta: plain values only (None, bool, int, float, str, and lists/tuples/dicts of them).

    Returns:
        The bytes ``torch.save`` wrote.

    Raises:
        XtmrError: ``meta`` holds something a ``weights_only`` load would refuse.
    """
    _check_plain(meta, "meta")
    # clone(): a tensor that is a view (e.g. into a flat weight buffer) would otherwise drag the
    # whole underlying storage into the file.
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"state_dict": state, "meta": dict(meta)}, buf)
    return buf.getvalue()


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> str:
    """Save a model's weights and metadata, atomically (a crash never leaves half a file).

    Args:
        path: the file to write (parent folders are created).
        model: whose ``state_dict()`` to save; tensors are copied to the CPU first.
        meta: plain values only (None, bool, int, float, str, and lists/tuples/dicts of them).

    Returns:
        The sha256 hex digest of the written file.

    Raises:
        XtmrError: ``meta`` holds something a ``weights_only`` load would refuse.
    """
    data = checkpoint_bytes(model, meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a checkpoint is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint file safely (``torch.load(weights_only=True, map_location="cpu")``).

    Args:
        path: a file written by ``save_checkpoint``, or a bare ``torch.save``d state dict.

    Returns:
        ``(state_dict, meta)``; ``meta`` is ``{}`` when the file has none.

    Raises:
        XtmrError: missing file, not a PyTorch file, corrupt or truncated, pickled code, or content
            that is not a state dict.
    """
    return _parse(read_checkpoint_file(path), str(path))


def shipped_checkpoint(model: str, dataset: str) -> Path | None:
    """Return the shipped checkpoint ``checkpoints/{model}_{dataset}.pt``, or None when there is none.

    Args:
        model: one of ``models.MODELS``.
        dataset: one of ``data.DATASETS``.

    Returns:
        The path if the file exists, else None.
    """
    _check_names(model, dataset)
    path = CHECKPOINT_DIR / f"{model}_{dataset}.pt"
    return path if path.is_file() else None


def load_model(
    model: str, dataset: str = "mnist5k", checkpoint: str | Path | None = None, device: torch.device | str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Build a model and load trained weights into it, checking they fit.

    Args:
        model: one of ``models.MODELS``.
        dataset: the dataset the model will see; fixes the input shape and class count when the
            checkpoint's meta does not say them.
        checkpoint: a checkpoint file; ``None`` = the shipped one for (model, dataset).
        device: where to put the model; ``None`` = ``default_device()``.

    Returns:
        ``(model in eval mode, meta)``: the checkpoint's meta with ``model``, ``width``,
        ``in_shape`` and ``num_classes`` filled in, plus ``file`` and ``sha256`` of the checkpoint.

    Raises:
        XtmrError: no checkpoint, an unreadable one, or weights that do not fit the model.
    """
    _check_names(model, dataset)
    if checkpoint is None:
        checkpoint = shipped_checkpoint(model, dataset)
        if checkpoint is None:
            raise XtmrError(
                f"no shipped checkpoint for {model} on {dataset}; train one with: python -m "
                f"xtmr_core train --model {model} --dataset {dataset} "
                f"--out checkpoints/{model}_{dataset}.pt"
            )
    data = read_checkpoint_file(checkpoint)
    return _build(model, dataset, data, str(checkpoint), device)


def load_state_dict_bytes(
    data: bytes,
    model: str,
    dataset: str = "mnist5k",
    device: torch.device | str | None = None,
    *,
    name: str = "uploaded file",
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> tuple[nn.Module, dict[str, Any]]:
    """``load_model`` for a checkpoint held in memory (the app's upload), with a size limit.

    Args:
        data: the file's bytes (a checkpoint or a bare state dict).
        model, dataset, device: as in ``load_model``.
        name: how to call the file in error messages.
        max_bytes: larger inputs are refused before parsing.

    Returns:
        ``(model in eval mode, meta)`` as in ``load_model`` (``file`` is ``name``).

    Raises:
        XtmrError: too large, unreadable, pickled code, or weights that do not fit the model.
    """
    _check_names(model, dataset)
    _check_size(data, name, max_bytes)
    return _build(model, dataset, bytes(data), name, device)


def read_checkpoint_bytes(
    data: bytes, name: str = "uploaded file", max_bytes: int | None = MAX_UPLOAD_BYTES
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``load_checkpoint`` for a file held in memory (an upload), refused above ``max_bytes`` (``None``: no limit,
    for a file the command line named, already read by ``read_checkpoint_file``).

    Raises:
        XtmrError: too large, unreadable, pickled code, or not a state dict.
    """
    if max_bytes is not None:
        _check_size(data, name, max_bytes)
    return _parse(bytes(data), name)


def _check_size(data: bytes, name: str, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise XtmrError(
            f"{name} is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit; upload a smaller checkpoint"
        )


def _check_names(model: str, dataset: str) -> None:
    check_choice("model", model, MODELS)
    check_choice("dataset", dataset, DATASETS)


def _check_plain(value: object, where: str) -> None:
    # Exact types: a str subclass such as torch.__version__ (TorchVersion) is refused by weights_only.
    if type(value) in _PLAIN:
        return
    if type(value) in (list, tuple) and isinstance(value, (list, tuple)):  # the type narrows for mypy
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if type(value) is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise XtmrError(f"{where} keys must be strings, got {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise XtmrError(
        f"{where} holds a {type(value).__name__}; checkpoint meta may hold only "
        f"None/bool/int/float/str and lists or dicts of them"
    )


def read_checkpoint_file(path: str | Path) -> bytes:
    """A checkpoint file's bytes, or ``XtmrError`` naming the path when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise XtmrError(f"checkpoint {path} not found; check the path or train one with python -m xtmr_core train")
    return path.read_bytes()


def _parse(data: bytes, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Unpickle with ``weights_only=True`` and split into (state_dict, meta)."""
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # zip / EOF / unpickling errors of a corrupt or foreign file
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:
            # weights_only refuses any global it does not know before calling it: nothing ran.
            raise XtmrError(
                f"{name} contains pickled code or objects ({found.group(1)}), not only tensors "
                f"and plain values; refused for safety. Re-save it as "
                f"torch.save(model.state_dict(), path)"
            ) from None
        raise XtmrError(
            f"{name} is not a readable PyTorch checkpoint (corrupt, truncated or another "
            f"format: {type(e).__name__}); save it with torch.save"
        ) from None
    meta: dict[str, Any] = {}
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state, meta = obj["state_dict"], obj.get("meta") or {}
        if not isinstance(meta, dict):
            raise XtmrError(f"{name} has a 'meta' entry that is not a dict; re-save it with save_checkpoint")
    else:
        state = obj
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise XtmrError(
            f"{name} holds neither a state dict nor {{'state_dict', 'meta'}}; save it with "
            f"torch.save(model.state_dict(), path)"
        )
    return state, dict(meta)


def _build(
    model: str, dataset: str, data: bytes, name: str, device: torch.device | str | None
) -> tuple[nn.Module, dict[str, Any]]:
    state, meta = _parse(data, name)
    if meta.get("model", model) != model:
        raise XtmrError(f"{name} holds model {meta['model']}, not {model}; pick model {meta['model']}")
    in_shape, num_classes = dataset_shape(dataset)
    try:
        ck_shape = tuple(int(v) for v in meta.get("in_shape", in_shape))
        ck_classes = int(meta.get("num_classes", num_classes))
        ck_width = float(meta["width"]) if "width" in meta else None
    except (TypeError, ValueError):
        raise XtmrError(
            f"{name} has malformed meta (in_shape, num_classes or width); re-save it with save_checkpoint"
        ) from None
    if ck_shape != in_shape or ck_classes != num_classes:
        raise XtmrError(
            f"{name} expects {'×'.join(map(str, ck_shape))} inputs and {ck_classes} classes "
            f"but {dataset} has {'×'.join(map(str, in_shape))} and {num_classes}; "
            f"pick the dataset it was trained on ({meta.get('dataset', 'unknown')})"
        )
    width = default_width(model) if ck_width is None else ck_width
    net = build_model(model, in_shape, num_classes, width)
    error = state_mismatch(net, state, name)
    if error is not None and ck_width is None:
        # A bare state dict carries no width: try the one its first layer implies.
        guess = _guess_width(net, state, width)
        if guess is not None and guess != width and 0 < guess <= 4:
            other = build_model(model, in_shape, num_classes, guess)
            if state_mismatch(other, state, name) is None:
                net, width, error = other, guess, None
    if error is not None:
        raise XtmrError(error)
    net.load_state_dict(state)
    net.eval().to(torch.device(device) if device is not None else default_device())
    full = dict(meta)
    full.update(
        model=model,
        width=width,
        in_shape=list(in_shape),
        num_classes=num_classes,
        file=name,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    full.setdefault("dataset", dataset)
    return net, full


def _guess_width(net: nn.Module, state: dict[str, torch.Tensor], width: float) -> float | None:
    """The width at which ``net``'s first layer would have the checkpoint's output count."""
    first = weight_layers(net)[0][0] + ".weight"
    if first not in state or state[first].ndim < 1:
        return None
    return width * int(state[first].shape[0]) / int(net.state_dict()[first].shape[0])


def state_mismatch(net: nn.Module, state: Mapping[str, torch.Tensor], name: str) -> str | None:
    """The first key or shape that does not match, as an error message; None when all fit."""
    expected = net.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            return (
                f"{name} does not fit: it lacks {key} (the model expects shape "
                f"{_shape(tensor)}); pick the model it was trained as"
            )
        if tuple(state[key].shape) != tuple(tensor.shape):
            return (
                f"{name} does not fit: {key} has shape {_shape(state[key])} in the checkpoint but "
                f"{_shape(tensor)} in the model; pick the model and width it was trained with"
            )
    extra = [k for k in state if k not in expected]
    if extra:
        return f"{name} does not fit: unexpected key {extra[0]}; pick the model it was trained as"
    return None


def _shape(t: torch.Tensor) -> str:
    return "×".join(map(str, t.shape)) or "scalar"
