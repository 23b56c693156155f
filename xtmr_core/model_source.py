"""Models from anywhere a ``--model`` can name: the built-in zoo, a torchvision architecture, or the user's
own factory function, with weights from a state-dict file.

The kinds (``vocabulary.model_kind``): ``lenet5`` … (``models.build_model``); ``torchvision:NAME`` (any
classification architecture torchvision lists, built with ``num_classes`` and no pretrained weights, its
first convolution rebuilt for the data's channel count when that is not 3); ``FILE.py:FACTORY`` and
``PACKAGE.MODULE:FACTORY`` (a function returning an ``nn.Module``, called with whichever of ``num_classes``,
``in_shape`` and ``in_channels`` it takes). Code is only imported when the caller says so
(``allow_code``): the command line does, the web app never does. Weights are always read with
``torch.load(weights_only=True)`` and must fit the model key for key and shape for shape.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xtmr_core.checkpoints import (
    load_model,
    load_state_dict_bytes,
    read_checkpoint_bytes,
    read_checkpoint_file,
    state_mismatch,
)
from xtmr_core.data import DataSplits
from xtmr_core.errors import XtmrError
from xtmr_core.models import build_model, default_width
from xtmr_core.vocabulary import TORCHVISION_PREFIX, model_kind


def torchvision_architectures() -> tuple[str, ...]:
    """The names ``torchvision:NAME`` accepts: torchvision's classification models."""
    import torchvision.models  # type: ignore[import-untyped]  # torchvision ships no type hints

    return tuple(torchvision.models.list_models(module=torchvision.models))


def build_from_source(
    ref: str,
    in_shape: tuple[int, int, int],
    num_classes: int,
    *,
    seed: int = 0,
    allow_code: bool = False,
    width: float | None = None,
) -> nn.Module:
    """Build an untrained model of any kind, initialised under ``seed`` (the caller's RNG is left alone).

    Args:
        ref: a model reference (``vocabulary.model_kind``).
        in_shape: the data's C×H×W.
        num_classes: outputs.
        seed: initialisation seed.
        allow_code: allow ``FILE.py:FACTORY`` and ``PACKAGE.MODULE:FACTORY`` (imports and runs user code).
        width: a built-in model's width multiplier (``None``: its default); ignored by the other kinds.

    Returns:
        The model in eval mode on the CPU.

    Raises:
        XtmrError: an unknown architecture, user code when not allowed, a factory that fails or does not
            return a module, or a model that does not take ``in_shape`` inputs and give ``num_classes`` outputs.
    """
    kind = model_kind(ref)
    if kind in ("file", "module") and not allow_code:
        raise XtmrError(f"model {ref!r} is user code; it can only be loaded from the command line")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if kind == "builtin":
            net = build_model(ref, in_shape, num_classes, width)
        elif kind == "torchvision":
            net = _torchvision(ref[len(TORCHVISION_PREFIX) :], in_shape[0], num_classes)
        else:
            net = _from_factory(ref, kind, in_shape, num_classes)
    net.eval()
    _check_fits(net, ref, in_shape, num_classes)
    return net


def load_from_source(
    ref: str,
    splits: DataSplits,
    checkpoint: str | Path | bytes | None = None,
    device: torch.device | str | None = None,
    *,
    num_classes: int | None = None,
    seed: int = 0,
    allow_code: bool = False,
    name: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """A model of any kind for ``splits``' images, with weights from ``checkpoint``.

    A built-in model on a built-in dataset loads as ``checkpoints.load_model`` does (the shipped checkpoint
    when none is given). Any other model without a checkpoint keeps its seeded random initialisation and its
    meta says so (``"weights": "random"``): useful for trying the tool, meaningless as a result.

    Args:
        ref: a model reference. splits: the data the model will see (fixes its input shape).
        checkpoint: a state dict or a ``save_checkpoint`` file, as a path or as the file's bytes (an upload:
            at most ``checkpoints.MAX_UPLOAD_BYTES``).
        device: where to put the model (``None``: the CPU).
        num_classes: outputs (default: the dataset's class count; more is allowed, fewer is not).
        seed: initialisation seed of a model without a checkpoint.
        allow_code: as in ``build_from_source``.
        name: how to call the checkpoint in messages and meta (default: its path, or ``uploaded file``).

    Returns:
        ``(model in eval mode, meta)`` with ``model``, ``in_shape``, ``num_classes``, ``weights`` (``file`` or
        ``random``) and, for a checkpoint, ``file`` and ``sha256``.

    Raises:
        XtmrError: as ``build_from_source``, or a checkpoint that cannot be read or does not fit.
    """
    kind = model_kind(ref)
    classes = splits.num_classes if num_classes is None else int(num_classes)
    if classes < splits.num_classes:
        raise XtmrError(f"--num-classes {classes} is fewer than the {splits.num_classes} classes of {splits.name}")
    if kind == "builtin" and not splits.info and num_classes in (None, splits.num_classes):
        # a built-in model on a built-in dataset: the zoo's own loading (its shipped weights when none given)
        if isinstance(checkpoint, (bytes, bytearray)):
            net, meta = load_state_dict_bytes(bytes(checkpoint), ref, splits.name, device, name=name or "uploaded file")
        else:
            net, meta = load_model(ref, splits.name, checkpoint, device)
        return net, {**meta, "weights": "file"}
    label, data, meta = "", b"", {}
    state: dict[str, torch.Tensor] = {}
    if isinstance(checkpoint, (bytes, bytearray)):  # an upload: size-limited
        label, data = name or "uploaded file", bytes(checkpoint)
        state, meta = read_checkpoint_bytes(data, label)
    elif checkpoint is not None:  # a file the command line named: read once, hashed and parsed from these bytes
        label, data = name or str(checkpoint), read_checkpoint_file(checkpoint)
        state, meta = read_checkpoint_bytes(data, label, max_bytes=None)
    if kind == "builtin":
        # a checkpoint without a width (a bare state dict) was built with the default
        meta = {**meta, "width": float(meta["width"]) if meta.get("width") is not None else default_width(ref)}
    net = build_from_source(ref, splits.in_shape, classes, seed=seed, allow_code=allow_code, width=meta.get("width"))
    out = {**meta, "model": ref, "in_shape": list(splits.in_shape), "num_classes": classes, "weights": "random"}
    if checkpoint is not None:
        error = state_mismatch(net, state, label)
        if error is not None:
            raise XtmrError(error)
        net.load_state_dict(state)
        out.update(weights="file", file=label, sha256=hashlib.sha256(data).hexdigest())
    else:
        out["seed"] = int(seed)
    out.setdefault("dataset", splits.name)
    return net.eval().to(torch.device(device) if device is not None else torch.device("cpu")), out


def _torchvision(name: str, channels: int, num_classes: int) -> nn.Module:
    import torchvision.models

    known = torchvision_architectures()
    if name not in known:
        raise XtmrError(
            f"torchvision has no classification architecture {name!r}; e.g. {', '.join(known[:8])}, … "
            f"({len(known)} in all)"
        )
    kwargs: dict[str, object] = {"weights": None, "num_classes": num_classes}
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=True)  # one output tensor, and no init warning
    net: nn.Module = torchvision.models.get_model(name, **kwargs)
    if channels != 3:
        _rebuild_first_conv(net, channels)
    return net


def _rebuild_first_conv(net: nn.Module, channels: int) -> None:
    """Give the first convolution ``channels`` inputs (torchvision's architectures all take RGB)."""
    for qualname, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            new = nn.Conv2d(
                channels,
                m.out_channels,
                m.kernel_size,  # type: ignore[arg-type]
                stride=m.stride,  # type: ignore[arg-type]
                padding=m.padding,  # type: ignore[arg-type]
                dilation=m.dilation,  # type: ignore[arg-type]
                groups=1 if m.groups == m.in_channels else m.groups,
                bias=m.bias is not None,
            )
            parent, _, attr = qualname.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, attr, new)
            return


def _from_factory(ref: str, kind: str, in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    source, _, name = ref.rpartition(":")
    if kind == "file":
        path = Path(source).expanduser().resolve()
        if not path.is_file():
            raise XtmrError(f"model file {source} not found")
        module_name = f"xtmr_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise XtmrError(f"cannot import {source} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            sys.modules.pop(module_name, None)
            raise XtmrError(f"importing {source} failed: {type(e).__name__}: {_line(e)}") from None
    else:
        try:
            module = importlib.import_module(source)
        except Exception as e:
            raise XtmrError(f"cannot import module {source}: {type(e).__name__}: {_line(e)}") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise XtmrError(f"{source} has no function {name}")
    offered = {"num_classes": num_classes, "in_shape": tuple(in_shape), "in_channels": in_shape[0]}
    try:
        params = inspect.signature(factory).parameters
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in offered.items() if takes_all or k in params}
    except (TypeError, ValueError):
        kwargs = {}
    try:
        net = factory(**kwargs)
    except Exception as e:
        raise XtmrError(f"{ref} failed: {type(e).__name__}: {_line(e)}") from None
    if not isinstance(net, nn.Module):
        raise XtmrError(f"{ref} returned a {type(net).__name__}, not a torch.nn.Module")
    return net


def _check_fits(net: nn.Module, ref: str, in_shape: tuple[int, int, int], num_classes: int) -> None:
    try:
        with torch.no_grad():
            out = net(torch.zeros(2, *in_shape))
    except Exception as e:
        raise XtmrError(
            f"{ref} does not take {'×'.join(map(str, in_shape))} images ({type(e).__name__}: {_line(e)}); "
            f"resize them (--image-size) or pick another model"
        ) from None
    if not isinstance(out, torch.Tensor) or out.shape != (2, num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise XtmrError(f"{ref} gives outputs of shape {shape}, not (batch, {num_classes}) logits")


def _line(e: BaseException) -> str:
    return " ".join(str(e).split())[:160]
