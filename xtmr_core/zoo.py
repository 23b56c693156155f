"""The LRP zoo: LRP weight relevance over every torchvision classification architecture, with its network balance.

Each architecture (up to ``max_params`` parameters, counted on the meta device without building weights) is built
with random weights for the image folder's classes, its BatchNorm statistics set from a few of the folder's images
(a deployed network's BatchNorm is calibrated; the defaults would make deep random networks' logits vanish), any
all-zero weight tensor (torchvision zero-initialises some heads) redrawn, and converted to float64. It then gets
LRP weight relevance and the network balance (``relevance.lrp_balance``) on the folder's images at 32×32, or at
the smallest of 64, 96, 224 pixels its forward accepts. One row per architecture: ``pass`` (ran, balance error
given), ``vacuous`` (ran, but the start logits are zero, so there was no relevance to balance: at random weights
squeezenet1_0's final ReLU zeroes every logit, and a balance of nothing proves nothing), ``refuse`` (one line naming
the operation and module) or ``crash`` (any other exception: a bug).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xtmr_core.errors import XtmrError

__all__ = ["ZooRow", "SIZES", "zoo_architectures", "write_image_folder", "run_zoo", "write_csv"]

#: Image sizes tried in turn: the first one the architecture's forward accepts is used.
SIZES: tuple[int, ...] = (32, 64, 96, 224)
#: Start logits (``sum |logit|``, float64) at or below this carry no relevance: the balance holds trivially.
VACUOUS_LOGITS = 1e-12
_FIELDS = ("name", "params", "status", "size", "operation", "balance_error", "logits_abs", "seconds")


@dataclass(frozen=True)
class ZooRow:
    """One architecture's result: status ``pass``/``vacuous``/``refuse``/``crash``, the refusal or crash line
    (for ``vacuous``, why), the float64 balance error and the start logits' ``sum |logit|`` it is relative to
    (``pass`` and ``vacuous``), and the seconds the LRP run took."""

    name: str
    params: int
    status: str
    size: int
    operation: str
    balance_error: float | None
    seconds: float
    logits_abs: float | None = None


def zoo_architectures(max_params: float = 100e6, num_classes: int = 3) -> list[tuple[str, int]]:
    """torchvision's classification architectures with at most ``max_params`` parameters (for ``num_classes``).

    Returns:
        ``(name, parameters)`` pairs in torchvision's order.
    """
    import torchvision.models  # type: ignore[import-untyped]  # torchvision ships no type hints

    counted = [(n, _param_count(n, num_classes)) for n in torchvision.models.list_models(module=torchvision.models)]
    return [(n, p) for n, p in counted if p <= max_params]


def _param_count(name: str, num_classes: int) -> int:
    """Parameters of a torchvision architecture, counted on the meta device (no weights allocated) where it builds."""
    import torchvision.models

    kwargs: dict[str, object] = {"weights": None, "num_classes": num_classes}
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=False)
    try:
        with torch.device("meta"):
            net = torchvision.models.get_model(name, **kwargs)
    except NotImplementedError:  # a builder that computes its widths from tensors (RegNet)
        net = torchvision.models.get_model(name, **kwargs)
    return int(sum(p.numel() for p in net.parameters()))


def write_image_folder(root: str | Path, classes: int = 3, per_class: int = 4, size: int = 32, seed: int = 0) -> Path:
    """Write a small image folder (``root/class_k/img_i.png``, random RGB noise with a class-dependent tint).

    Returns:
        ``root`` as a ``Path``.
    """
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for k in range(classes):
        folder = root / f"class_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3)).astype(np.float64)
            pixels[..., k % 3] = 0.5 * pixels[..., k % 3] + 127
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"img_{i}.png")
    return root


def _images(root: Path, size: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``count`` images of the folder at ``size``×``size`` (RGB in [0, 1], float64) and their class indices."""
    from PIL import Image

    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise XtmrError(f"the image folder {root} needs at least two class sub-folders with images")
    files = [(f, k) for k, c in enumerate(classes) for f in sorted(c.iterdir()) if f.is_file()]
    files = [files[i] for i in np.argsort([i % len(classes) for i in range(len(files))], kind="stable")]
    xs, ys = [], []
    for f, k in files:
        try:
            with Image.open(f) as im:
                xs.append(np.asarray(im.convert("RGB").resize((size, size)), dtype=np.float64) / 255.0)
        except OSError:
            continue
        ys.append(k)
        if len(xs) == count:
            break
    if not xs:
        raise XtmrError(f"no readable image in {root}")
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(ys)


def _prepare(name: str, num_classes: int, calibration: torch.Tensor) -> nn.Module:
    """The architecture with seeded random weights, calibrated BatchNorm, no all-zero weight, float64, eval mode."""
    from xtmr_core.model_source import build_from_source

    net = build_from_source(f"torchvision:{name}", (3, *calibration.shape[-2:]), num_classes, seed=0).double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not m.weight.any():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=m.weight.dtype) * 0.02)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = None  # a cumulative average over the calibration pass
        net.train()
        net(calibration)
    return net.eval()


def _one(name: str, params: int, root: Path, images: int, num_classes: int) -> ZooRow:
    from xtmr_core.relevance import lrp_balance

    size, x, y, net, why = 0, None, None, None, ""
    for size in SIZES:
        try:
            x, y = _images(root, size, images)
            net = _prepare(name, num_classes, x)
            break
        except Exception as e:  # the forward rejects this size: try a larger one
            net, why = None, " ".join(f"{type(e).__name__}: {e}".split())[:200]
    if net is None or x is None or y is None:
        return ZooRow(name, params, "crash", size, f"no size in 32-224 runs its forward ({why})", None, 0.0)
    start = time.perf_counter()
    try:
        balance = lrp_balance(net, x, y % num_classes, batch_size=images)
    except XtmrError as e:
        return ZooRow(name, params, "refuse", size, str(e), None, time.perf_counter() - start)
    except Exception as e:  # a crash is a bug: recorded, not hidden
        line = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        return ZooRow(name, params, "crash", size, line, None, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if not balance.logits_abs > VACUOUS_LOGITS:
        why = f"start logits sum to {balance.logits_abs:.1e}: no relevance to balance, the check is empty"
        return ZooRow(name, params, "vacuous", size, why, balance.error, seconds, balance.logits_abs)
    return ZooRow(name, params, "pass", size, "", balance.error, seconds, balance.logits_abs)


def run_zoo(
    image_folder: str | Path,
    names: Iterable[str] | None = None,
    *,
    max_params: float = 100e6,
    images: int = 4,
    progress: Callable[[ZooRow], None] | None = None,
) -> list[ZooRow]:
    """LRP weight relevance and its float64 balance for every architecture (or the ``names`` given).

    Args:
        image_folder: a folder of class sub-folders of images (``write_image_folder`` makes one).
        names: architectures to run (default: all up to ``max_params``).
        max_params: the largest parameter count included.
        images: reference images per architecture (relevance starts at each image's class logit).
        progress: called with each row as it is done.

    Returns:
        One ``ZooRow`` per architecture.

    Raises:
        XtmrError: a missing or empty image folder, an unknown architecture name, ``images`` < 1.
    """
    root = Path(image_folder)
    if not root.is_dir():
        raise XtmrError(f"image folder {root} does not exist")
    if int(images) < 1:
        raise XtmrError(f"images must be at least 1, got {images}")
    num_classes = len([p for p in root.iterdir() if p.is_dir()])
    _images(root, SIZES[0], 1)  # a clear error now for a folder without images
    if names is None:
        chosen = zoo_architectures(max_params, num_classes)
    else:
        import torchvision.models

        known = set(torchvision.models.list_models(module=torchvision.models))
        chosen = []
        for n in names:
            if n not in known:
                raise XtmrError(f"torchvision has no classification architecture {n!r}")
            chosen.append((n, _param_count(n, num_classes)))
    rows = []
    for name, params in chosen:
        row = _one(name, params, root, int(images), num_classes)
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def write_csv(rows: list[ZooRow], path: str | Path) -> None:
    """Write the rows as CSV (columns: name, params, status, size, operation, balance_error, seconds)."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_FIELDS)
        w.writeheader()
        for row in rows:
            d = asdict(row)
            d["balance_error"] = "" if row.balance_error is None else f"{row.balance_error:.3e}"
            d["seconds"] = f"{row.seconds:.1f}"
            d["logits_abs"] = "" if row.logits_abs is None else f"{row.logits_abs:.3e}"
            w.writerow(d)
