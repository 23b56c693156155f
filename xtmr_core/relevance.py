"""LRP relevance of every weight, per-layer relevance maps and input heatmaps, for any supported model.

Relevance runs on the model's canonical form (``canonize.lrp_ready``): BatchNorm folded into the layer
before it, every residual add an ``Add`` module. Zennit's hook machinery propagates it backwards
(one modified-gradient pass per batch, any graph: branches, adds, grouped and depthwise convolutions),
with the project's own rules attached:

* a conv/linear layer ``z_j = sum_i a_i * w_ij + b_j`` (a convolution also sums over output positions,
  a grouped/depthwise one over its group's inputs only) passes ``R_i = sum_j a_i * rho(w_ij) * R_j / z'_j``,
  where ``rho`` is the rule's weight modification (identity for ``epsilon``, ``w + gamma * w+`` for
  ``gamma``, ``w+`` for ``alpha1beta0``) and ``z'_j = sum_i a_i * rho(w_ij) + b_j`` stabilised as
  ``z' + eps * sign(z')`` with ``sign(0) = 1`` (the rules and stabilisers of Captum's LRP, which this
  module used before and whose results it reproduces on the plain models);
* a residual add ``z = a + b`` splits ``R_z`` in proportion to the contributions: ``R_a = a / (z + eps *
  sign z) * R_z`` and the same for ``b`` (relevance is conserved through the block, not doubled);
* max and average pooling: the epsilon rule with epsilon 1e-9; element-wise activations (ReLU, ReLU6, SiLU,
  GELU, Hardswish, Sigmoid, ...) and Dropout: relevance passes (the identity rule);
* every other operation on the input's path carries its rule from ``lrp_rules`` (gates held constant,
  AttnLRP's softmax and product rules, LayerNorm/GroupNorm, added constants as bias shares, routing ops);
  ``lrp_balance`` checks that input relevance plus every bias share gives back the start logits.

The relevance message through weight ``w_ij`` is ``a_i * rho(w_ij) * R_j / z'_j``, summed over positions
and over a reference set of inputs, with relevance started at each input's true-class logit. It is
computed as ``rho(w) * d/d rho(w) sum_j z'_j * stopgrad(R_j / z'_j)``: one autograd call per batch for
all layers. Everything runs on a private canonical copy in eval mode: the caller's model is never changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

# Zennit ships no type hints: its hooks and composites are Any here.
from zennit.core import BasicHook, Composite, Hook, ParamMod, stabilize  # type: ignore[import-untyped]
from zennit.rules import Pass  # type: ignore[import-untyped]

from xtmr_core.canonize import LRP_LAYERS, LRP_PASS, LRP_POOLS, lrp_ready
from xtmr_core.errors import XtmrError
from xtmr_core.lrp_rules import Sink
from xtmr_core.models import Add, WeightLayer, weight_layers
from xtmr_core.vocabulary import RULES, check_choice

__all__ = [
    "RULES",
    "DEFAULT_EPSILON",
    "lrp_weight_relevance",
    "lrp_balance",
    "Balance",
    "layer_relevance_shares",
    "relevance_map",
    "input_relevance",
    "block_factors",
    "block_sum",
]

#: Default epsilon of the epsilon rule (Captum's default). In a ReLU network ``R_j`` is proportional to
#: the activation, so ``R_j / z_j`` stays bounded and a tiny epsilon is numerically safe.
DEFAULT_EPSILON = 1e-9
#: The fixed stabiliser of the gamma and alpha1beta0 rules, of pooling and (for those rules) of adds:
#: Captum's ``PropagationRule.STABILITY_FACTOR``.
STABILITY_FACTOR = 1e-9


def _check_rule(rule: str) -> None:
    check_choice("LRP rule", rule, RULES)


def _modified_weight(rule: str, weight: Tensor, gamma: float) -> Tensor:
    """The rule's weight modification rho(w) (the bias is never modified)."""
    if rule == "gamma":
        return weight + gamma * weight.clamp(min=0)
    if rule == "alpha1beta0":
        return weight.clamp(min=0)
    return weight


def _stabiliser(rule: str, epsilon: float) -> float:
    """The epsilon added to z' for this rule (the epsilon rule: its epsilon; the others the fixed one)."""
    if rule == "epsilon":
        return float(epsilon)
    return STABILITY_FACTOR


def _layer_forward(module: nn.Module, a: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """The layer's output for input ``a`` with the given weight and bias."""
    if isinstance(module, nn.Conv2d):
        z: Tensor = module._conv_forward(a, weight, bias)
        return z
    return nn.functional.linear(a, weight, bias)


class _AddRule(Hook):  # type: ignore[misc]  # Zennit's Hook is untyped (Any)
    """``z = a + b``: ``R_a = a / stab(z) * R_z``, ``R_b = b / stab(z) * R_z``."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, module: nn.Module, input: tuple[Tensor, ...], output: Tensor) -> None:
        self.stored_tensors["input"] = input

    def backward(
        self, module: nn.Module, grad_input: tuple[Tensor, ...], grad_output: tuple[Tensor, ...]
    ) -> tuple[Tensor, Tensor]:
        a, b = (t.detach() for t in self.stored_tensors["input"])
        ratio = grad_output[0] / stabilize(a + b, self.eps)
        return a * ratio, b * ratio

    def copy(self) -> _AddRule:
        return _AddRule(self.eps)


def _rule_hook(rule: str, eps: float, gamma: float) -> BasicHook:
    """A conv/linear/BatchNorm rule: relevance ``a * rho(w) * R / stab(z')`` through the layer."""
    modifier = ParamMod(lambda w, _name: _modified_weight(rule, w, gamma), param_keys=["weight"])
    return BasicHook(
        param_modifiers=[modifier], gradient_mapper=lambda g, outputs: [g / stabilize(o, eps) for o in outputs]
    )


def _pool_hook() -> BasicHook:
    return BasicHook(
        param_modifiers=[ParamMod(lambda w, _name: w, param_keys=[])],
        gradient_mapper=lambda g, outputs: [g / stabilize(o, STABILITY_FACTOR) for o in outputs],
    )


def _composite(rule: str, epsilon: float, gamma: float) -> Composite:
    eps = _stabiliser(rule, epsilon)
    rule_hook, pool_hook, add_hook, pass_hook = _rule_hook(rule, eps, gamma), _pool_hook(), _AddRule(eps), Pass()

    def module_map(_ctx: dict[str, Any], _name: str, module: nn.Module) -> Hook | None:
        if isinstance(module, LRP_LAYERS):
            return rule_hook
        if isinstance(module, LRP_POOLS):
            return pool_hook
        if isinstance(module, Add):
            return add_hook
        if isinstance(module, LRP_PASS):
            return pass_hook
        return None

    return Composite(module_map=module_map)


def _model_device(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the model's parameters live and their floating dtype (inputs are moved to match)."""
    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def _check_params(rule: str, epsilon: float, gamma: float, batch_size: int) -> None:
    _check_rule(rule)
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise XtmrError(f"epsilon must be a positive number, got {epsilon}")
    if not (math.isfinite(gamma) and gamma >= 0):
        raise XtmrError(f"gamma must be a number >= 0, got {gamma}")
    if int(batch_size) < 1:
        raise XtmrError(f"batch_size must be at least 1, got {batch_size}")


def _lrp_pass(
    work: nn.Module,
    composite: Composite,
    layers: Sequence[nn.Module],
    xb: Tensor,
    target: Tensor,
    logits: list[Tensor] | None = None,
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """One LRP pass started at each input's ``target`` logit (appended to ``logits`` when given).

    Returns:
        ``(input relevance, inputs of each layer, relevance at each layer's output)``.
    """
    acts: dict[int, Tensor] = {}
    r_out: dict[int, Tensor] = {}

    def make_hook(k: int) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def keep(g: Tensor | None) -> None:
            if g is not None:  # None: the output feeds only a gate, which gets no relevance
                r_out[k] = g.detach()

        def hook(_module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            acts[k] = inputs[0].detach()
            if output.requires_grad:
                output.register_hook(keep)  # type: ignore[no-untyped-call]  # torch leaves register_hook unannotated

        return hook

    inputs = xb.detach().clone().requires_grad_(True)
    with composite.context(work):
        # Registered after the composite's hooks, so they see what the composite hands on.
        handles = [m.register_forward_hook(make_hook(k)) for k, m in enumerate(layers)]
        try:
            out = work(inputs)
            start = torch.zeros_like(out)
            rows = torch.arange(out.shape[0], device=out.device)
            start[rows, target] = out[rows, target].detach()
            if logits is not None:
                logits.append(start[rows, target])
            (r_in,) = torch.autograd.grad(out, inputs, grad_outputs=start)
        finally:
            for h in handles:
                h.remove()
    # A layer whose output never reached the logits (none in a classifier) got no relevance.
    r_list = [r_out.get(k, torch.zeros(())) for k in range(len(layers))]
    return r_in.detach(), [acts[k] for k in range(len(layers))], r_list


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
    """Signed LRP relevance of every faultable weight (``models.weight_layers``), summed over a reference set.

    The model is canonized first (``canonize.lrp_ready``: BatchNorm folded, residual adds split in
    proportion to their inputs); the same rule is set on every conv/linear layer. For a model whose
    BatchNorm layers are kept (not folded), a folded layer's weights get the relevance of the folded
    weights (the same messages), and the BatchNorm's scale ``gamma`` gets the relevance of its part of the
    output, ``sum (z' - beta) * R / stab(z')`` per channel.

    Args:
        model: the network; not changed (a private canonical copy is used).
        x: reference inputs, N x ... (a batch).
        y: int labels, shape (N,): relevance starts at each input's logit of this class.
        rule: ``"epsilon"``, ``"gamma"`` or ``"alpha1beta0"`` (the latter clamps weights only, so it is
            meant for non-negative inputs: post-ReLU activations and [0, 1] images).
        epsilon: the epsilon rule's stabiliser (default 1e-9). The gamma and alpha1beta0 rules use the
            fixed stabiliser ``STABILITY_FACTOR``.
        gamma: the gamma rule's gamma.
        batch_size: inputs per LRP pass; results are summed over batches.
        return_bias: also return each layer's bias share under ``"<name>.bias"`` (zeros for a layer
            without bias), so that weights + bias add up to the relevance at the layer's output.

    Returns:
        ``{layer name: float32 CPU tensor shaped like the weight}`` in ``weight_layers`` order, plus
        ``"<name>.bias"`` entries after all weights if ``return_bias``.

    Raises:
        XtmrError: bad parameters, an empty reference set, or a model LRP cannot handle (one line naming
            the unsupported module type or operation).
    """
    _check_params(rule, epsilon, gamma, batch_size)
    if x.ndim < 2 or x.shape[0] == 0:
        raise XtmrError("the reference set is empty: give at least one input")
    y = torch.as_tensor(y)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise XtmrError(f"labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    wanted = weight_layers(model)
    if not wanted:
        raise XtmrError("the model has no Conv2d or Linear layer to score")
    sums = _relevance_sums(model, x, y, _Rule(rule, epsilon, gamma), int(batch_size), return_bias)
    folded, acc_zr, acc_r = sums.folded, sums.acc_zr, sums.acc_r
    device = sums.device
    found = {n: (sums.acc_w[k], sums.acc_b[k]) for k, n in enumerate(sums.names)}
    # Layers of the given model whose BatchNorm was folded into them, and the BatchNorm layers themselves.
    given = dict(model.named_modules())
    bn_of = {bn: layer for layer, bn in folded.items()}
    out: dict[str, Tensor] = {}
    biases: dict[str, Tensor] = {}
    for name, module in wanted:
        if name in bn_of:
            layer = bn_of[name]
            beta = _param64(module.bias, acc_r[layer])
            out[name] = acc_zr[layer] - beta * acc_r[layer]
            biases[name] = beta * acc_r[layer]
        elif name in folded:
            out[name] = found[name][0]
            bn = given[folded[name]]
            assert isinstance(bn, _BatchNorm) and bn.running_var is not None  # only such BatchNorms are folded
            scale = _param64(bn.weight, acc_r[name]) / torch.sqrt(bn.running_var.double().to(device) + bn.eps)
            biases[name] = _param64(module.bias, acc_r[name]) * scale * acc_r[name]
        else:
            out[name], biases[name] = found[name]
    result = {name: t.float().cpu() for name, t in out.items()}
    if return_bias:
        result.update({f"{name}.bias": t.float().cpu() for name, t in biases.items()})
    return result


@dataclass(frozen=True)
class Balance:
    """The network balance of one LRP run: ``input + bias shares`` against the start logits (all summed over inputs).

    ``bias`` counts every relevance that reached a constant instead of the input: the layers' biases (folded
    BatchNorm shifts included), an unfoldable BatchNorm's shift, LayerNorm's beta, added constants (position
    embeddings, attention biases, class tokens) and the softmax rule's bias term. ``error`` is
    ``|logits - input - bias| / logits_abs`` with ``logits_abs = sum |logit|``: only the stabilisers' leaks
    should remain.
    """

    logits: float
    input: float
    bias: float
    error: float
    logits_abs: float


def lrp_balance(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    rule: str = "epsilon",
    *,
    epsilon: float = DEFAULT_EPSILON,
    gamma: float = 0.25,
    batch_size: int = 64,
) -> Balance:
    """Run LRP as ``lrp_weight_relevance`` does and check that relevance is conserved through the whole network.

    Args:
        model: the network (not changed); pass a float64 copy for a check that rounding does not blur.
        x: reference inputs N × ...; y: their labels (relevance starts at each input's logit of that class).
        rule, epsilon, gamma, batch_size: as in ``lrp_weight_relevance``.

    Returns:
        The ``Balance``.

    Raises:
        XtmrError: as ``lrp_weight_relevance``.
    """
    _check_params(rule, epsilon, gamma, batch_size)
    if x.ndim < 2 or x.shape[0] == 0:
        raise XtmrError("the reference set is empty: give at least one input")
    y = torch.as_tensor(y)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise XtmrError(f"labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    sums = _relevance_sums(model, x, y, _Rule(rule, epsilon, gamma), int(batch_size), True)
    bias = sum(float(b.sum()) for b in sums.acc_b) + sums.absorbed
    error = abs(sums.logits - sums.input - bias) / max(sums.logits_abs, 1e-30)
    return Balance(logits=sums.logits, input=sums.input, bias=bias, error=error, logits_abs=sums.logits_abs)


@dataclass(frozen=True)
class _Rule:
    """An LRP rule with its two parameters (they travel together through every pass)."""

    name: str
    epsilon: float
    gamma: float

    @property
    def stab(self) -> float:
        """The epsilon added to z' (``_stabiliser``)."""
        return _stabiliser(self.name, self.epsilon)

    def weight(self, weight: Tensor) -> Tensor:
        """The modified weight rho(w) (``_modified_weight``)."""
        return _modified_weight(self.name, weight, self.gamma)

    def composite(self) -> Composite:
        """Zennit's composite that puts the rule's hooks on a canonical model (``_composite``)."""
        return _composite(self.name, self.epsilon, self.gamma)


@dataclass
class _Sums:
    """What one LRP run over a reference set accumulates (float64)."""

    folded: dict[str, str]
    names: list[str]
    device: torch.device
    dtype: torch.dtype  # the canonical model's (its passes run in it)
    acc_w: list[Tensor]
    acc_b: list[Tensor]
    acc_zr: dict[str, Tensor]
    acc_r: dict[str, Tensor]
    input: float = 0.0
    logits: float = 0.0
    logits_abs: float = 0.0
    absorbed: float = 0.0

    @staticmethod
    def zeros(
        named: list[tuple[str, WeightLayer]], folded: dict[str, str], device: torch.device, dtype: torch.dtype
    ) -> _Sums:
        """Nothing accumulated yet for the weight layers ``named`` (``folded``: as ``lrp_ready`` returns it)."""

        def zeros(*shape: int) -> Tensor:
            return torch.zeros(shape, dtype=torch.float64, device=device)

        layers = dict(named)
        sums = _Sums(
            folded=folded,
            names=[n for n, _ in named],
            device=device,
            dtype=dtype,
            acc_w=[zeros(*m.weight.shape) if m.weight is not None else zeros(_channels(m)) for _, m in named],
            acc_b=[zeros(_channels(m)) for _, m in named],
            # Per output channel of each folded layer: sum z' * R / stab(z') and sum R / stab(z').
            acc_zr={n: zeros(layers[n].weight.shape[0]) for n in folded},
            acc_r={},
        )
        sums.acc_r = {n: torch.zeros_like(v) for n, v in sums.acc_zr.items()}
        return sums


def _channels(m: WeightLayer) -> int:
    return m.num_features if isinstance(m, _BatchNorm) else m.weight.shape[0]


def _bn_affine(m: _BatchNorm, weight: Tensor | None) -> tuple[Tensor, Tensor]:
    """An evaluation BatchNorm as ``a * s + t`` per channel: ``s = w / sqrt(var + eps)``, ``t = beta - mean * s``."""
    # _weight_layers refuses a BatchNorm without running statistics
    assert m.running_var is not None and m.running_mean is not None
    std = torch.sqrt(m.running_var + m.eps)
    s = (weight if weight is not None else torch.ones_like(std)) / std
    beta = m.bias.detach() if m.bias is not None else torch.zeros_like(std)
    return s, beta - m.running_mean * s


def _weight_layers(work: nn.Module) -> list[tuple[str, WeightLayer]]:
    """The canonical model's layers that carry a rule on their weights, by name; refuses a BatchNorm without running
    statistics (its evaluation form is not an affine map)."""
    named = [(n, m) for n, m in work.named_modules() if isinstance(m, LRP_LAYERS)]
    for name, m in named:
        if isinstance(m, _BatchNorm) and (not m.track_running_stats or m.running_mean is None):
            raise XtmrError(f"LRP needs BatchNorm with running statistics (module {name}); use another scorer")
    return named


def _relevance_sums(model: nn.Module, x: Tensor, y: Tensor, rule: _Rule, batch_size: int, with_bias: bool) -> _Sums:
    """One LRP pass per batch of ``x`` started at the logits of ``y``, with every weight layer's messages summed."""
    work, folded = lrp_ready(model)
    named = _weight_layers(work)
    modules = [m for _, m in named]
    device, dtype = _model_device(work)
    composite = rule.composite()
    sink = work.lrp_sink
    assert isinstance(sink, Sink)  # lrp_ready attaches one
    sums = _Sums.zeros(named, folded, device, dtype)
    sink.total = 0.0
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size].detach().to(device=device, dtype=dtype)
        yb = y[start : start + batch_size].to(device=device, dtype=torch.long)
        logits: list[Tensor] = []
        r_in, acts, r_out = _lrp_pass(work, composite, modules, xb, yb, logits)
        sums.input += float(r_in.double().sum())
        sums.logits += float(logits[0].double().sum())
        sums.logits_abs += float(logits[0].double().abs().sum())
        messages = _Messages(sums, rule.stab, with_bias)
        for k, m in enumerate(modules):
            weight = None if m.weight is None else rule.weight(m.weight.detach())
            if isinstance(m, _BatchNorm):
                _add_batchnorm_messages(sums, k, m, weight, acts[k], r_out[k], rule.stab)
            else:
                assert weight is not None  # a conv/linear layer has a weight
                messages.add_layer(k, m, weight, acts[k], r_out[k])
        messages.collect()
    sums.absorbed = sink.total
    return sums


def _add_batchnorm_messages(
    sums: _Sums, k: int, m: _BatchNorm, weight: Tensor | None, act: Tensor, r_out: Tensor, stab: float
) -> None:
    """An unfolded BatchNorm ``z' = a * s + t``: the weight's message is ``a * s * R / z'`` (what reaches the input),
    ``t``'s a bias share."""
    s, t = _bn_affine(m, weight)
    shape = (1, -1) + (1,) * (act.ndim - 2)
    z = act * s.reshape(shape) + t.reshape(shape)
    ratio = r_out.detach() / stabilize(z.detach(), stab)
    dims = [d for d in range(z.ndim) if d != 1]
    sums.acc_w[k] += (act * s.reshape(shape) * ratio).sum(dim=dims).double()
    sums.acc_b[k] += (t.reshape(shape) * ratio).sum(dim=dims).double()


class _Messages:
    """One batch's weight messages of the conv/linear layers: ``rho(w) * d/d rho(w) sum_j z'_j * stopgrad(R_j /
    stab(z'_j))``, one autograd call for all layers (and their biases' when ``with_bias``)."""

    def __init__(self, sums: _Sums, stab: float, with_bias: bool) -> None:
        self.sums, self.stab, self.with_bias = sums, stab, with_bias
        self.leaves: list[Tensor] = []
        self.owners: list[tuple[int, str]] = []
        self.total = torch.zeros((), device=sums.device, dtype=sums.dtype)

    def add_layer(self, k: int, m: WeightLayer, weight: Tensor, act: Tensor, r_out: Tensor) -> None:
        """Layer ``k``'s term of the sum (its input ``act``, the relevance ``r_out`` at its output)."""
        rho_w = weight.clone().requires_grad_(True)
        bias = None
        if m.bias is not None:
            bias = m.bias.detach().clone().requires_grad_(self.with_bias)
        z = _layer_forward(m, act, rho_w, bias)
        ratio = r_out.detach() / stabilize(z.detach(), self.stab)
        self.total = self.total + (z * ratio).sum()
        self.leaves.append(rho_w)
        self.owners.append((k, "w"))
        if self.with_bias and bias is not None:
            self.leaves.append(bias)
            self.owners.append((k, "b"))
        name = self.sums.names[k]
        if name in self.sums.folded:
            dims = [d for d in range(z.ndim) if d != 1]
            self.sums.acc_zr[name] += (z.detach() * ratio).sum(dim=dims).double()
            self.sums.acc_r[name] += ratio.sum(dim=dims).double()

    def collect(self) -> None:
        """Add every leaf's message to the sums."""
        if not self.leaves:
            return
        grads = torch.autograd.grad(self.total, self.leaves, allow_unused=True)
        for (k, what), leaf, grad in zip(self.owners, self.leaves, grads):
            if grad is None:
                continue
            message = (leaf.detach() * grad).double()
            if what == "w":
                self.sums.acc_w[k] += message
            else:
                self.sums.acc_b[k] += message


def _param64(param: Tensor | None, like: Tensor) -> Tensor:
    """A per-channel parameter in float64 on ``like``'s device (zeros when the layer has none)."""
    if param is None:
        return torch.zeros_like(like)
    return param.detach().to(device=like.device, dtype=torch.float64)


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


def block_factors(rows: int, cols: int, max_cells: int) -> tuple[int, int]:
    """Block sizes (rows, cols) that bring a rows×cols grid to at most ``max_cells`` cells (longer axis first)."""
    fr = fc = 1
    while math.ceil(rows / fr) * math.ceil(cols / fc) > max_cells:
        if math.ceil(cols / fc) >= math.ceil(rows / fr):
            fc += 1
        else:
            fr += 1
    return fr, fc


def block_sum(m: np.ndarray, fr: int, fc: int) -> np.ndarray:
    """Sum ``m`` over fr×fc blocks in float64 (zero-padded at the far edges, so signed totals are kept)."""
    rows, cols = m.shape
    out_r, out_c = math.ceil(rows / fr), math.ceil(cols / fc)
    padded = np.zeros((out_r * fr, out_c * fc), dtype=np.float64)
    padded[:rows, :cols] = m
    blocks: np.ndarray = padded.reshape(out_r, fr, out_c, fc).sum(axis=(1, 3))
    return blocks


def _block_sum(m: np.ndarray, max_cells: int) -> np.ndarray:
    """Sum m over rectangular blocks until it has at most max_cells cells (the longer axis first)."""
    fr, fc = block_factors(m.shape[0], m.shape[1], max_cells)
    return m if (fr, fc) == (1, 1) else block_sum(m, fr, fc)


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
    grid: np.ndarray = np.ascontiguousarray(_block_sum(m, max_cells))
    return grid


def input_relevance(
    model: nn.Module,
    x: Tensor,
    target: Tensor | int,
    rule: str = "epsilon",
    *,
    epsilon: float = DEFAULT_EPSILON,
    gamma: float = 0.25,
) -> Tensor:
    """LRP heatmap(s) of the inputs, started at the target logit (the same rules as ``lrp_weight_relevance``).

    Args:
        model: the network (left unchanged: LRP runs on a private canonical copy in eval mode).
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
    work, _ = lrp_ready(model)
    device, dtype = _model_device(work)
    xb = x.detach().to(device=device, dtype=dtype)
    target_t = torch.as_tensor(target, device=device, dtype=torch.long).reshape(-1)
    if target_t.numel() == 1:
        target_t = target_t.expand(xb.shape[0])
    rel, _, _ = _lrp_pass(work, _composite(rule, epsilon, gamma), [], xb, target_t)
    return rel.float().cpu()
