"""Input attributions beside LRP: Captum's Integrated Gradients, Saliency and Input × Gradient, their top-k pixel
overlap, and one diverging scale to draw them on.

LRP stays the project's own (``relevance.input_relevance``, on Zennit hooks: Captum's LRP counts a residual add's
skip path twice). Captum computes the gradient methods, where it is strong; every method here returns the same
shape as ``input_relevance`` (float32 on the CPU, shaped like ``x``), so a page draws them side by side.

* ``saliency``: ``|d logit_t / dx|`` (Captum's ``Saliency`` with ``abs=True``): never negative.
* ``input_x_gradient``: ``x * d logit_t / dx``.
* ``integrated_gradients``: ``(x - x0) * mean over the path of d logit_t / dx`` from the baseline ``x0 = 0`` (the
  zero input: black for the built-in [0, 1] datasets, the mean image for a normalised folder) to ``x``, Gauss-
  Legendre quadrature with ``IG_STEPS`` points; it sums to about ``logit_t(x) - logit_t(0)`` (completeness).

All are deterministic (no noise, a fixed baseline and step count) and run on a private copy of the model in
eval mode: the caller's model is never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import InputXGradient, IntegratedGradients, Saliency  # type: ignore[import-untyped]  # no py.typed
from torch import Tensor, nn

from xtmr_core.errors import XtmrError
from xtmr_core.relevance import input_relevance
from xtmr_core.vocabulary import ATTRIBUTIONS, RULES, check_choice

__all__ = [
    "ATTRIBUTIONS",
    "IG_STEPS",
    "input_attribution",
    "input_attributions",
    "pixel_maps",
    "on_one_scale",
    "top_k",
    "topk_overlap",
    "overlap_table",
    "Comparison",
    "compare_maps",
]

#: Integration points of Integrated Gradients (Gauss-Legendre). Completeness error measured on the shipped
#: lenet5 (mnist5k, 16 test images): see tests/test_attribution.py.
IG_STEPS = 64


def _private_copy(model: nn.Module) -> tuple[nn.Module, torch.device, torch.dtype]:
    """The model copied and in eval mode (the caller's keeps its mode and hooks), with its device and dtype."""
    work = copy.deepcopy(model).eval()
    for p in work.parameters():
        return work, p.device, p.dtype
    return work, torch.device("cpu"), torch.float32


def _targets(target: Tensor | int, n: int, n_classes: int, device: torch.device) -> Tensor:
    """``target`` as ``n`` class indices on ``device``; one clear line for a class the model does not have."""
    t = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise XtmrError(f"give one target class or one per input ({n}), got {t.numel()}")
    if bool(((t < 0) | (t >= n_classes)).any()):
        raise XtmrError(f"target classes must lie in 0..{n_classes - 1}, got {sorted(set(t.tolist()))}")
    return t.to(device)


def input_attribution(
    model: nn.Module, x: Tensor, target: Tensor | int, method: str, *, rule: str = "epsilon"
) -> Tensor:
    """One method's attribution of each input element to the ``target`` logit.

    Args:
        model: the network (not changed).
        x: a batch N x ... (pass ``x[None]`` for one input).
        target: one class index for all inputs, or N of them.
        method: one of ``ATTRIBUTIONS``: ``lrp`` (the project's, with ``rule``), ``integrated_gradients``,
            ``saliency``, ``input_x_gradient`` (Captum's).
        rule: the LRP rule (``lrp`` only).

    Returns:
        float32 CPU tensor shaped like ``x``.

    Raises:
        XtmrError: an unknown method or rule, an empty batch, a target class the model does not have.
    """
    check_choice("attribution method", method, ATTRIBUTIONS)
    check_choice("LRP rule", rule, RULES)
    if x.ndim < 2 or x.shape[0] == 0:
        raise XtmrError("attributions need a non-empty batch N x ...; pass x[None] for one input")
    work, device, dtype = _private_copy(model)
    xb = x.detach().to(device=device, dtype=dtype)
    with torch.no_grad():
        n_classes = int(work(xb[:1]).shape[1])
    t = _targets(target, int(xb.shape[0]), n_classes, device)
    if method == "lrp":
        return input_relevance(work, xb, t, rule)
    return _CAPTUM[method](work, xb.requires_grad_(True), t).detach().float().cpu()


def _integrated_gradients(model: nn.Module, x: Tensor, t: Tensor) -> Tensor:
    ig = IntegratedGradients(model)
    out: Tensor = ig.attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=IG_STEPS, method="gausslegendre")
    return out


def _saliency(model: nn.Module, x: Tensor, t: Tensor) -> Tensor:
    out: Tensor = Saliency(model).attribute(x, target=t, abs=True)
    return out


def _input_x_gradient(model: nn.Module, x: Tensor, t: Tensor) -> Tensor:
    out: Tensor = InputXGradient(model).attribute(x, target=t)
    return out


_CAPTUM: dict[str, Callable[[nn.Module, Tensor, Tensor], Tensor]] = {
    "integrated_gradients": _integrated_gradients,
    "saliency": _saliency,
    "input_x_gradient": _input_x_gradient,
}


def input_attributions(
    model: nn.Module,
    x: Tensor,
    target: Tensor | int,
    methods: Sequence[str] = ATTRIBUTIONS,
    *,
    rule: str = "epsilon",
) -> dict[str, Tensor]:
    """``input_attribution`` of every method in ``methods``, in that order."""
    return {m: input_attribution(model, x, target, m, rule=rule) for m in methods}


def pixel_maps(attr: np.ndarray) -> np.ndarray:
    """One value per pixel: an N x C x H x W attribution summed over its channels (N x H x W), as the Relevance
    page draws an LRP heatmap; an N x H x W one is returned as it is."""
    a = np.asarray(attr, dtype=np.float64)
    if a.ndim == 4:
        return np.asarray(a.sum(axis=1))
    if a.ndim == 3:
        return a
    raise XtmrError(f"pixel_maps needs N x C x H x W or N x H x W attributions, got shape {a.shape}")


def on_one_scale(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each map divided by its own largest |value|, so all lie in [-1, 1] and one symmetric colour bar serves.

    Why per map and not one shared range: the methods measure different things. Integrated Gradients, Input ×
    Gradient and LRP are shares of the class score (logit units), Saliency is a gradient size (logit per unit of
    input), so their sizes are not comparable even where they happen to be close (on the shipped lenet5 and vgg16
    with mnist5k images in [0, 1], Saliency's peak is 1.0 to 1.8 times LRP's); on one shared range a map would
    look paler or stronger for its units alone. Divided by its own max, each keeps its sign (zero stays white, the
    colour bar reads "fraction of the map's largest |value|") and its pattern, which is what the page compares,
    and the top-k overlap, which ranks |values|, is unchanged. A map that is zero everywhere stays zero.
    """
    out = {}
    for name, m in maps.items():
        peak = float(np.abs(m).max()) if m.size else 0.0
        out[name] = np.asarray(m, dtype=np.float64) / peak if peak > 0 else np.zeros_like(m, dtype=np.float64)
    return out


def top_k(m: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the ``k`` largest |values| of ``m``; ties go to the lower flat index (deterministic)."""
    flat = np.abs(np.asarray(m, dtype=np.float64)).ravel()
    if not 1 <= k <= flat.size:
        raise XtmrError(f"k must lie in 1..{flat.size} (the pixels of one map), got {k}")
    return np.argsort(-flat, kind="stable")[:k]


def topk_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """The fraction of pixels shared by the ``k`` largest |values| of ``a`` and of ``b`` (1: the same pixels)."""
    if np.shape(a) != np.shape(b):
        raise XtmrError(f"maps to compare must have one shape, got {np.shape(a)} and {np.shape(b)}")
    return float(np.intersect1d(top_k(a, k), top_k(b, k)).size) / k


def overlap_table(maps: dict[str, np.ndarray], k: int) -> np.ndarray:
    """``topk_overlap`` of every pair of ``maps`` (one image's pixel maps), a symmetric M x M array with ones on
    the diagonal, rows and columns in the order of ``maps``."""
    names = list(maps)
    out = np.ones((len(names), len(names)))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            out[i, j] = out[j, i] = topk_overlap(maps[a], maps[names[j]], k)
    return out


@dataclass(frozen=True)
class Comparison:
    """Pixel maps of one image by several methods, ready to draw side by side.

    Attributes:
        maps: each method's map over its own largest |value| (``on_one_scale``), in [-1, 1].
        peaks: each map's largest |value| before scaling (what 1 on the colour bar stands for).
        overlap: ``overlap_table`` of the maps at ``k``, rows and columns in the order of ``maps``.
        k: the pixels compared, the top ``fraction`` of one map's pixels (at least one).
    """

    maps: dict[str, np.ndarray]
    peaks: dict[str, float]
    overlap: np.ndarray
    k: int


def compare_maps(maps: dict[str, np.ndarray], fraction: float) -> Comparison:
    """``maps`` (one image's pixel maps, one shape) on one scale, with their top-k overlap for the top
    ``fraction`` of the pixels (0 < fraction <= 1)."""
    if not maps:
        raise XtmrError("compare_maps needs at least one map")
    if not 0 < fraction <= 1:
        raise XtmrError(f"the fraction of pixels compared must lie in (0, 1], got {fraction}")
    n = int(np.asarray(next(iter(maps.values()))).size)
    k = max(1, round(fraction * n))
    peaks = {name: float(np.abs(m).max()) if np.size(m) else 0.0 for name, m in maps.items()}
    return Comparison(on_one_scale(maps), peaks, overlap_table(maps, k), k)
