"""One interface for weight importance: ``lrp``, ``magnitude``, ``gradient``, ``taylor``, ``random``.

A score is one non-negative, finite float per faultable weight (the ``weight`` of every
``nn.Conv2d``/``nn.Linear`` and unfolded BatchNorm, and with ``fault_biases`` their biases:
``memory.faultable_tensors`` order and names); larger = more important.
Protection plans take them as one flat array in layout order (``Experiment.scores``,
``protection.top_weights``); ``top_k_mask`` is the per-layer view that ``topk_overlap`` compares.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from xtmr_core.errors import XtmrError
from xtmr_core.memory import faultable_tensors
from xtmr_core.relevance import lrp_weight_relevance
from xtmr_core.vocabulary import SCORERS, check_choice

__all__ = ["SCORERS", "score_weights", "top_k_mask", "flatten_scores", "topk_overlap"]


def _check_reference(x_ref: Tensor, y_ref: Tensor) -> None:
    if x_ref.ndim < 2 or x_ref.shape[0] == 0:
        raise XtmrError("the reference set is empty: give at least one input")
    if y_ref.ndim != 1 or y_ref.shape[0] != x_ref.shape[0]:
        raise XtmrError(f"reference labels must have shape ({x_ref.shape[0]},), got {tuple(y_ref.shape)}")


def _loss_gradients(
    model: nn.Module, x_ref: Tensor, y_ref: Tensor, batch_size: int, fault_biases: bool = False
) -> list[Tensor]:
    """d/dw of the mean cross-entropy over the reference set, for every faultable weight.

    Runs on a private deep copy in eval mode with ``torch.autograd.grad``: the caller's model (its
    weights, ``.grad``, ``requires_grad`` flags and train/eval mode) is not touched.
    """
    work = copy.deepcopy(model).eval()
    for p in work.parameters():
        p.requires_grad_(False)
    weights = [getattr(m, attr) for _, m, attr in faultable_tensors(work, fault_biases)]
    for w in weights:
        w.requires_grad_(True)
    device = weights[0].device
    n = x_ref.shape[0]
    total = [torch.zeros_like(w, dtype=torch.float64) for w in weights]
    for start in range(0, n, batch_size):
        xb = x_ref[start : start + batch_size].detach().to(device=device, dtype=weights[0].dtype)
        yb = y_ref[start : start + batch_size].to(device=device, dtype=torch.long)
        loss = nn.functional.cross_entropy(work(xb), yb, reduction="sum") / n
        for acc, g in zip(total, torch.autograd.grad(loss, weights)):
            acc += g.double()
    return [g.float() for g in total]


def score_weights(
    model: nn.Module,
    x_ref: Tensor,
    y_ref: Tensor,
    scorer: str = "lrp",
    *,
    rule: str = "epsilon",
    seed: int = 0,
    batch_size: int = 64,
    fault_biases: bool = False,
) -> dict[str, Tensor]:
    """Score every faultable weight of a model; larger = more important.

    Scorers:
        * ``lrp``: ``|lrp_weight_relevance|`` summed over the reference set, relevance started at
          each input's true-class logit (``rule`` picks the LRP rule, default parameters).
        * ``magnitude``: ``|w|``.
        * ``gradient``: ``|dL/dw|``, L = mean cross-entropy over the reference set (eval mode).
        * ``taylor``: ``|w * dL/dw|`` (first-order Taylor estimate of the loss change when w -> 0).
        * ``random``: uniform(0, 1) from a ``torch.Generator`` seeded with ``seed``, drawn layer by
          layer in ``weight_layers`` order (the same seed gives the same scores; the reference set
          is not used).

    Args:
        model: the network; not changed (private copies are used where a pass is needed).
        x_ref: reference inputs N x ... (unused by ``magnitude`` and ``random``).
        y_ref: their int labels, shape (N,).
        scorer: one of ``SCORERS``.
        rule: LRP rule for ``lrp`` (one of ``relevance.RULES``).
        seed: seed of ``random``.
        batch_size: inputs per pass for ``lrp``, ``gradient`` and ``taylor``.
        fault_biases: score the biases too (entries ``"<layer>.bias"``; ``lrp`` gives a bias its share).

    Returns:
        ``{entry name: float32 CPU tensor shaped like the tensor}``, in ``memory.faultable_tensors``
        order; every score finite and >= 0.

    Raises:
        XtmrError: unknown scorer or rule, an empty or mismatched reference set (for scorers that
            use it), a model without conv/linear layers, or non-finite scores.
    """
    check_choice("scorer", scorer, SCORERS)
    if int(batch_size) < 1:
        raise XtmrError(f"batch_size must be at least 1, got {batch_size}")
    entries = faultable_tensors(model, fault_biases)
    if not entries:
        raise XtmrError("the model has no Conv2d or Linear layer to score")
    names = [name for name, _, _ in entries]
    tensors = [getattr(m, attr) for _, m, attr in entries]
    y_ref = torch.as_tensor(y_ref)

    if scorer == "magnitude":
        scores = [t.detach().abs() for t in tensors]
    elif scorer == "random":
        g = torch.Generator().manual_seed(int(seed))
        scores = [torch.rand(t.shape, generator=g) for t in tensors]
    elif scorer == "lrp":
        _check_reference(x_ref, y_ref)
        rel = lrp_weight_relevance(model, x_ref, y_ref, rule, batch_size=int(batch_size), return_bias=fault_biases)
        scores = [rel[name].abs() for name in names]
    else:
        _check_reference(x_ref, y_ref)
        grads = _loss_gradients(model, x_ref, y_ref, int(batch_size), fault_biases)
        if scorer == "gradient":
            scores = [g.abs() for g in grads]
        else:
            scores = [(t.detach().float() * g).abs() for t, g in zip(tensors, grads)]

    out = {name: s.detach().to("cpu", torch.float32).clone() for name, s in zip(names, scores)}
    for name, s in out.items():
        if not torch.isfinite(s).all():
            raise XtmrError(f"scorer {scorer!r} gave non-finite scores for layer {name}: check the model's weights")
    return out


def _check_scores(scores: dict[str, Tensor]) -> None:
    if not scores or sum(s.numel() for s in scores.values()) == 0:
        raise XtmrError("no scores given")


def flatten_scores(scores: dict[str, Tensor]) -> Tensor:
    """All scores in one flat float32 CPU vector.

    Args:
        scores: ``{layer name: scores}`` as returned by ``score_weights``.

    Returns:
        The layers' scores concatenated in the dict's order (``score_weights`` builds it in
        ``weight_layers`` order, the order of ``memory.WeightLayout``), each layer flattened
        row-major.
    """
    _check_scores(scores)
    return torch.cat([s.detach().reshape(-1).to("cpu", torch.float32) for s in scores.values()])


def _top_k_flat(flat: Tensor, k: int) -> Tensor:
    """Bool mask of the k largest entries; ties go to the lower flat index (a stable sort)."""
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        order = torch.sort(flat, descending=True, stable=True).indices
        mask[order[:k]] = True
    return mask


def _check_fraction(fraction: float) -> float:
    fraction = float(fraction)
    if not (0.0 <= fraction <= 1.0):
        raise XtmrError(f"fraction must be between 0 and 1, got {fraction}")
    return fraction


def top_k_mask(scores: dict[str, Tensor], fraction: float, per_layer: bool = False) -> dict[str, Tensor]:
    """Mark the top ``fraction`` of weights by score.

    Args:
        scores: ``{layer name: scores}``.
        fraction: share of weights to mark, 0..1 (e.g. 0.01 for the top 1%).
        per_layer: rank inside each layer (``round(fraction * layer size)`` per layer) instead of
            globally across all layers (``round(fraction * total)``). ``round`` is Python's (half to
            even).

    Returns:
        ``{layer name: bool CPU tensor shaped like the scores}`` with exactly that many ``True``.
        Ties are broken deterministically: among equal scores the weight earlier in
        ``flatten_scores`` order wins.
    """
    _check_scores(scores)
    fraction = _check_fraction(fraction)
    if per_layer:
        return {
            name: _top_k_flat(s.detach().reshape(-1).to("cpu", torch.float32), round(fraction * s.numel())).reshape(
                s.shape
            )
            for name, s in scores.items()
        }
    flat = flatten_scores(scores)
    mask = _top_k_flat(flat, round(fraction * flat.numel()))
    out, offset = {}, 0
    for name, s in scores.items():
        out[name] = mask[offset : offset + s.numel()].reshape(s.shape)
        offset += s.numel()
    return out


def topk_overlap(a: dict[str, Tensor], b: dict[str, Tensor], fractions: Sequence[float]) -> list[float]:
    """How much two scorers agree on their top-k weights: ``|A ∩ B| / k`` per fraction.

    A and B are the global top-k sets (``top_k_mask``, k = ``round(fraction * total)``) of ``a``
    and ``b``. Both have exactly k members, so ``|A ∩ B| / k`` is the share of one top-k set that
    the other also picks (1 = same set; about ``fraction`` for unrelated random scores). For k = 0 the
    overlap is 1.0 (two empty sets agree).

    Args:
        a: scores of one scorer.
        b: scores of another, with the same layer names and shapes.
        fractions: the fractions (0..1) to compare at.

    Returns:
        One overlap in [0, 1] per fraction.
    """
    _check_scores(a)
    if list(a) != list(b) or any(a[n].shape != b[n].shape for n in a):
        raise XtmrError("the two score sets cover different layers or shapes: score the same model")
    fa, fb = flatten_scores(a), flatten_scores(b)
    order_a = torch.sort(fa, descending=True, stable=True).indices
    order_b = torch.sort(fb, descending=True, stable=True).indices
    result = []
    for fraction in fractions:
        k = round(_check_fraction(fraction) * fa.numel())
        if k == 0:
            result.append(1.0)
            continue
        in_a = torch.zeros(fa.numel(), dtype=torch.bool)
        in_a[order_a[:k]] = True
        result.append(float(in_a[order_b[:k]].sum()) / k)
    return result
