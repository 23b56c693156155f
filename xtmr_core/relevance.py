"""LRP relevance of every weight, per-layer relevance maps and input heatmaps (Captum's LRP rules).

For a layer ``z_j = sum_i a_i * w_ij + b_j`` (a convolution also sums over output positions) whose
output relevance ``R_j`` comes from Captum's LRP, the relevance message through weight ``w_ij`` is

    a_i * rho(w_ij) * R_j / z'_j

where ``rho`` is the rule's weight modification (identity for ``epsilon``, ``w + gamma * w+`` for
``gamma``, ``w+`` for ``alpha1beta0``), ``z'_j = sum_i a_i * rho(w_ij) + b_j`` is the layer's output
recomputed with the modified weights, stabilised exactly as Captum stabilises it
(``z' + eps * sign(z')`` with ``sign(0) = 1``). Summed over positions and over a reference set of
inputs, with relevance started at each input's true-class logit, that is the weight's relevance. It
is computed as ``rho(w) * d/d rho(w) sum_j z'_j * stopgrad(R_j / z'_j)``: one autograd call per
batch for all layers.

``R_j`` for every conv/linear layer comes from one ``captum.attr.LayerLRP`` call per batch, and the
layers' input activations from forward hooks on a plain forward pass. Everything runs on a private
deep copy of the model in eval mode: the caller's model is never changed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from captum.attr import LRP, LayerLRP
from captum.attr._utils.lrp_rules import (
    Alpha1_Beta0_Rule,
    EpsilonRule,
    GammaRule,
    PropagationRule,
)
from torch import Tensor, nn

from xtmr_core.errors import XtmrError
from xtmr_core.models import weight_layers
from xtmr_core.vocabulary import RULES, check_choice

__all__ = [
    "RULES",
    "DEFAULT_EPSILON",
    "lrp_weight_relevance",
    "layer_relevance_shares",
    "relevance_map",
    "input_relevance",
]


#: Default epsilon of the epsilon rule: Captum's own default (``EpsilonRule()``, also the rule Captum
#: applies to a conv/linear layer without one). In a ReLU network ``R_j`` is proportional to the
#: activation, so ``R_j / z_j`` stays bounded and a tiny epsilon is numerically safe.
DEFAULT_EPSILON = 1e-9


def _check_rule(rule: str) -> None:
    check_choice("LRP rule", rule, RULES)


def _make_rule(rule: str, epsilon: float, gamma: float) -> PropagationRule:
    """A fresh Captum rule object (rules keep per-call state, so never share one between layers)."""
    if rule == "epsilon":
        return EpsilonRule(epsilon=epsilon)
    if rule == "gamma":
        return GammaRule(gamma=gamma)
    return Alpha1_Beta0_Rule()


def _modified_weight(rule: str, weight: Tensor, gamma: float) -> Tensor:
    """The rule's weight modification rho(w), computed exactly as Captum's rule computes it."""
    if rule == "gamma":
        return weight + gamma * weight.clamp(min=0)
    if rule == "alpha1beta0":
        return weight.clamp(min=0)
    return weight


def _layer_forward(module: nn.Module, a: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """The layer's output for input ``a`` with the given weight and bias."""
    if isinstance(module, nn.Conv2d):
        return module._conv_forward(a, weight, bias)
    return nn.functional.linear(a, weight, bias)


def _private_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode whose parameters need no gradient (Captum may mutate it freely)."""
    work = copy.deepcopy(model)
    work.eval()
    for p in work.parameters():
        p.requires_grad_(False)
    return work


def _model_device(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the model's parameters live and their floating dtype (inputs are moved to match)."""
    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def _attach_rules(layers: list[tuple[str, nn.Module]], rule: str, epsilon: float, gamma: float) -> None:
    # Captum deletes every `rule` attribute at the end of each attribute() call: set them every time.
    for _, module in layers:
        module.rule = _make_rule(rule, epsilon, gamma)


def _check_params(rule: str, epsilon: float, gamma: float, batch_size: int) -> None:
    _check_rule(rule)
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise XtmrError(f"epsilon must be a positive number, got {epsilon}")
    if not (math.isfinite(gamma) and gamma >= 0):
        raise XtmrError(f"gamma must be a number >= 0, got {gamma}")
    if int(batch_size) < 1:
        raise XtmrError(f"batch_size must be at least 1, got {batch_size}")


def lrp_weight_relevance(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    rule: str = "epsilon",
    *,
    epsilon: float = DEFAULT_EPSILON,
    gamma: float = 0.25,
    batch_size: int = 64,
    return_bias: bool = False,
) -> dict[str, Tensor]:
    """Signed LRP relevance of every conv/linear weight, summed over a reference set.

    The same rule is set on every ``nn.Conv2d``/``nn.Linear`` layer; other layers keep Captum's
    defaults (max/avg pooling: epsilon rule with epsilon 1e-9; ReLU/Dropout: relevance passes
    through). The model runs in eval mode on a private deep copy; the caller's model is untouched.

    Args:
        model: the network (leaf modules must be ones Captum's LRP supports: no ``nn.Flatten``,
            ``nn.Identity``; every rule-carrying module used once per forward).
        x: reference inputs, N x ... (a batch).
        y: int labels, shape (N,): relevance starts at each input's logit of this class.
        rule: ``"epsilon"``, ``"gamma"`` or ``"alpha1beta0"`` (Captum's ``EpsilonRule``,
            ``GammaRule``, ``Alpha1_Beta0_Rule``; the latter clamps weights only, as Captum does, so
            it is meant for non-negative inputs: post-ReLU activations and [0, 1] images).
        epsilon: the epsilon rule's stabiliser (default 1e-9, Captum's default). The gamma and
            alpha1beta0 rules use Captum's fixed stabiliser ``PropagationRule.STABILITY_FACTOR``.
        gamma: the gamma rule's gamma.
        batch_size: inputs per LRP pass; results are summed over batches.
        return_bias: also return each layer's bias share under ``"<name>.bias"`` (zeros for a layer
            without bias), so that weights + bias add up to the relevance at the layer's output.

    Returns:
        ``{layer name: float32 CPU tensor shaped like the weight}`` in ``weight_layers`` order (layer
        names from ``named_modules``), plus ``"<name>.bias"`` entries after all weights if
        ``return_bias``.
    """
    _check_params(rule, epsilon, gamma, batch_size)
    if x.ndim < 2 or x.shape[0] == 0:
        raise XtmrError("the reference set is empty: give at least one input")
    y = torch.as_tensor(y)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise XtmrError(f"labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")

    work = _private_copy(model)
    layers = weight_layers(work)
    if not layers:
        raise XtmrError("the model has no Conv2d or Linear layer to score")
    device, dtype = _model_device(work)
    modules = [m for _, m in layers]

    acc_w = [torch.zeros(m.weight.shape, dtype=torch.float64, device=device) for m in modules]
    acc_b = [torch.zeros(m.weight.shape[0], dtype=torch.float64, device=device) for m in modules]

    activations: dict[int, Tensor] = {}

    def make_hook(k: int) -> Callable:
        def hook(_module: nn.Module, inputs: tuple[Tensor, ...], _output: Tensor) -> None:
            activations[k] = inputs[0].detach()

        return hook

    lrp = LayerLRP(work, modules)
    for start in range(0, x.shape[0], int(batch_size)):
        xb = x[start : start + int(batch_size)].detach().to(device=device, dtype=dtype)
        yb = y[start : start + int(batch_size)].to(device=device, dtype=torch.long)

        # 1. The layers' input activations a (plain forward, original weights).
        activations.clear()
        handles = [m.register_forward_hook(make_hook(k)) for k, m in enumerate(modules)]
        try:
            with torch.no_grad():
                work(xb)
        finally:
            for h in handles:
                h.remove()

        # 2. Relevance R_j at every layer's output (Captum, started at the target logit).
        _attach_rules(layers, rule, epsilon, gamma)
        inputs = xb.clone().requires_grad_(True)  # Captum warns if the input needs no gradient
        r_out = lrp.attribute(inputs, target=yb, attribute_to_layer_input=False)

        # 3. Weight messages: rho(w) * d/d rho(w) sum_j z'_j * stopgrad(R_j / stab(z'_j)).
        stab = _stabiliser(rule, epsilon)
        leaves: list[Tensor] = []
        total = torch.zeros((), device=device)
        for k, m in enumerate(modules):
            rho_w = _modified_weight(rule, m.weight.detach(), gamma).clone().requires_grad_(True)
            bias = None
            if m.bias is not None:
                bias = m.bias.detach().clone().requires_grad_(return_bias)
            z = _layer_forward(m, activations[k], rho_w, bias)
            sign = torch.sign(z.detach())
            sign[sign == 0] = 1
            ratio = r_out[k].detach() / (z.detach() + sign * stab)
            total = total + (z * ratio).sum()
            leaves.append(rho_w)
            if return_bias and bias is not None:
                leaves.append(bias)
        grads = torch.autograd.grad(total, leaves)
        messages = iter(leaf.detach() * grad for leaf, grad in zip(leaves, grads))
        for k, m in enumerate(modules):  # same order as the leaves were appended
            acc_w[k] += next(messages).double()
            if return_bias and m.bias is not None:
                acc_b[k] += next(messages).double()

    out = {name: acc_w[k].float().cpu() for k, (name, _) in enumerate(layers)}
    if return_bias:
        for k, (name, _) in enumerate(layers):
            out[f"{name}.bias"] = acc_b[k].float().cpu()
    return out


def _stabiliser(rule: str, epsilon: float) -> float:
    """The epsilon Captum adds to z' for this rule (EpsilonRule: its epsilon, others the class default)."""
    if rule == "epsilon":
        return float(epsilon)
    return float(PropagationRule.STABILITY_FACTOR)


def layer_relevance_shares(rel: dict[str, Tensor]) -> dict[str, float]:
    """Each layer's share of the total absolute relevance.

    Args:
        rel: ``{layer name: relevance tensor}`` (signed or not), e.g. from ``lrp_weight_relevance``.

    Returns:
        ``{layer name: sum |rel| of the layer / sum |rel| of all layers}``; the shares add up to 1
        (all 0 when the total is 0).
    """
    sums = {name: float(t.detach().abs().double().sum()) for name, t in rel.items()}
    total = sum(sums.values())
    if total == 0:
        return {name: 0.0 for name in sums}
    return {name: s / total for name, s in sums.items()}


def _block_sum(m: np.ndarray, max_cells: int) -> np.ndarray:
    """Sum m over rectangular blocks until it has at most max_cells cells (the longer axis first)."""
    rows, cols = m.shape
    fr = fc = 1
    while math.ceil(rows / fr) * math.ceil(cols / fc) > max_cells:
        if math.ceil(cols / fc) >= math.ceil(rows / fr):
            fc += 1
        else:
            fr += 1
    if fr == 1 and fc == 1:
        return m
    out_r, out_c = math.ceil(rows / fr), math.ceil(cols / fc)
    padded = np.zeros((out_r * fr, out_c * fc), dtype=m.dtype)
    padded[:rows, :cols] = m
    return padded.reshape(out_r, fr, out_c, fc).sum(axis=(1, 3))


def relevance_map(weight_rel: Tensor, max_cells: int = 4096) -> np.ndarray:
    """A 2-D array of one layer's weight relevance for a heatmap.

    Rows are always output units (linear rows, conv filters), possibly in blocks.

    * Linear weight (out x in): the matrix itself.
    * Conv weight (out x in x kh x kw): a grid of kh x kw tiles, out-channels down and in-channels
      across (``map[o*kh + r, i*kw + c] = w[o, i, r, c]``) when it fits in ``max_cells``; otherwise
      summed over the kernel (out x in).
    * Still larger than ``max_cells``: block-summed (the longer axis is coarsened first; the signed
      total is preserved).

    Args:
        weight_rel: relevance (or any score) shaped like a Linear or Conv2d weight.
        max_cells: the most cells the returned array may have (>= 1).

    Returns:
        float64 2-D numpy array.
    """
    if max_cells < 1:
        raise XtmrError(f"max_cells must be at least 1, got {max_cells}")
    w = weight_rel.detach().to("cpu", torch.float64).numpy()
    if w.ndim == 2:
        m = w
    elif w.ndim == 4:
        o, i, kh, kw = w.shape
        if o * i * kh * kw <= max_cells:
            m = w.transpose(0, 2, 1, 3).reshape(o * kh, i * kw)
        else:
            m = w.sum(axis=(2, 3))
    else:
        raise XtmrError(f"relevance_map needs a Linear (2-D) or Conv2d (4-D) weight, got shape {w.shape}")
    return np.ascontiguousarray(_block_sum(m, max_cells))


def input_relevance(
    model: nn.Module,
    x: Tensor,
    target: Tensor | int,
    rule: str = "epsilon",
    *,
    epsilon: float = DEFAULT_EPSILON,
    gamma: float = 0.25,
) -> Tensor:
    """Captum LRP heatmap(s) of the inputs, started at the target logit.

    Args:
        model: the network (left unchanged: Captum runs on a private deep copy in eval mode).
        x: a batch N x ... (pass ``x[None]`` for one input).
        target: class index for all inputs, or a tensor of N class indices (or of one).
        rule: rule set on every Conv2d/Linear layer (see ``lrp_weight_relevance``).
        epsilon: the epsilon rule's stabiliser.
        gamma: the gamma rule's gamma.

    Returns:
        float32 CPU tensor shaped like ``x``: relevance per input element (sums to about the logit).
    """
    _check_params(rule, epsilon, gamma, 1)
    if x.ndim < 2 or x.shape[0] == 0:
        raise XtmrError("input_relevance needs a non-empty batch N x ...; pass x[None] for one input")
    work = _private_copy(model)
    layers = weight_layers(work)
    device, dtype = _model_device(work)
    xb = x.detach().to(device=device, dtype=dtype)
    if isinstance(target, Tensor):
        target = target.to(device=device, dtype=torch.long).reshape(-1)
        if target.numel() == 1:
            target = int(target.item())
    _attach_rules(layers, rule, epsilon, gamma)
    rel = LRP(work).attribute(xb.clone().requires_grad_(True), target=target)
    return rel.detach().float().cpu()
