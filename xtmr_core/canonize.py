"""Canonization: the deployed form of a model (BatchNorm folded into the layer before it) and the form
LRP runs on (BatchNorm folded, every residual add an ``Add`` module, only layer types LRP has a rule for).

A device stores a BatchNorm network folded: ``conv(x) * s + t`` with ``s = gamma / sqrt(var + eps)`` and
``t = beta - mean * s`` is the convolution with weights ``w * s`` and bias ``b * s + t``. Folding is done
on a ``torch.fx`` trace, so it finds the conv feeding each BatchNorm in any traceable model (torchvision's
included), keeps every module's qualified name, and never changes the model it is given.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.fx as fx
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from xtmr_core.errors import XtmrError
from xtmr_core.lrp_rules import (
    RULE_MODULES,
    AddConstRule,
    ConstRouteRule,
    EpsilonRule,
    GateRule,
    IdentityRule,
    LrpSelfAttention,
    NormRule,
    ProductRule,
    Sink,
    SoftmaxRule,
    lrp_attention_swap,
)
from xtmr_core.models import Add, to_channels_last

__all__ = [
    "has_batchnorm",
    "fold_batchnorm",
    "deployed_model",
    "lrp_ready",
    "LRP_LAYERS",
    "LRP_PASS",
    "LRP_POOLS",
    "LRP_ROUTE",
]

#: Layers that carry an LRP rule on their weights (a BatchNorm that could not be folded is an elementwise layer).
LRP_LAYERS: tuple[type[nn.Conv2d], type[nn.Linear], type[_BatchNorm]] = (nn.Conv2d, nn.Linear, _BatchNorm)
#: Elementwise activations and no-ops: relevance passes through unchanged (the identity rule).
LRP_PASS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.ELU,
    nn.Mish,
    nn.Softplus,
    nn.modules.dropout._DropoutNd,
)
#: Layers that only route their input (reshape, no-op): no hook, the gradient routes relevance exactly.
LRP_ROUTE: tuple[type[nn.Module], ...] = (nn.Identity, nn.Flatten, nn.Unflatten)
#: Pooling layers: relevance is redistributed in proportion to the contributions (the epsilon rule).
LRP_POOLS: tuple[type[nn.Module], ...] = (
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)

F = nn.functional
# Operations whose gradient routes relevance exactly (reshapes, permutations, selections, concatenation,
# padding with zeros, memory layout; ReLU and max-pooling: the gradient passes relevance where the output is
# the input, and a zero output carries no relevance).
_ROUTE_FUNCTIONS = {
    torch.flatten,
    torch.cat,
    torch.concat,
    torch.stack,
    torch.reshape,
    torch.permute,
    torch.transpose,
    torch.swapaxes,
    torch.chunk,
    torch.split,
    torch.unbind,
    torch.roll,
    torch.squeeze,
    torch.unsqueeze,
    torch.narrow,
    torch.flip,
    torch.channel_shuffle,
    operator.getitem,
    F.pad,
    torch.relu,
    F.relu,
    F.max_pool2d,
    F.adaptive_max_pool2d,
    F.dropout,
    F.dropout2d,
    to_channels_last,
}
_ROUTE_METHODS = {
    "view",
    "view_as",
    "reshape",
    "reshape_as",
    "flatten",
    "unflatten",
    "contiguous",
    "to",
    "type_as",
    "float",
    "double",
    "clone",
    "squeeze",
    "unsqueeze",
    "permute",
    "transpose",
    "swapaxes",
    "chunk",
    "split",
    "unbind",
    "expand",
    "expand_as",
    "repeat",
    "flip",
    "roll",
    "narrow",
    "relu",
}
# Route functions of torchvision, known by qualified name (torchvision is not imported here).
_ROUTE_NAMED = {"torchvision.models.swin_transformer._patch_merging_pad"}
# Element-wise non-linearities and normalisations: the identity rule.
_IDENTITY_FUNCTIONS = {
    F.gelu,
    F.silu,
    F.hardswish,
    F.hardsigmoid,
    torch.sigmoid,
    F.sigmoid,
    torch.tanh,
    F.tanh,
    F.relu6,
    F.hardtanh,
    F.leaky_relu,
    F.elu,
    F.mish,
    F.softplus,
    F.normalize,
    torch.neg,
    operator.neg,
}
_IDENTITY_METHODS = {"sigmoid", "tanh", "neg"}
_GATES = {torch.sigmoid, F.sigmoid, F.hardsigmoid, "sigmoid"}
# Parameter-free linear maps: the epsilon rule.
_EPSILON_FUNCTIONS = {torch.mean, torch.sum, F.avg_pool2d, F.avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool1d}
_EPSILON_METHODS = {"mean", "sum"}
_ADDS = {operator.add, operator.iadd, torch.add, "add"}
_SUBS = {operator.sub, operator.isub, torch.sub, "sub"}
_MULS = {operator.mul, operator.imul, torch.mul, "mul"}
_DIVS = {operator.truediv, torch.div, "div"}
_PRODUCTS = {operator.matmul, torch.matmul, torch.bmm, torch.einsum, "matmul", "bmm"}
_SOFTMAX = {F.softmax, torch.softmax, "softmax"}
# Calls whose result does not depend on the input's values (shapes, constant tensors shaped like it).
_CONSTANT_METHODS = {"size", "dim", "numel", "ndimension", "new_zeros", "new_ones", "new_full", "new_empty"}
_CONSTANT_FUNCTIONS = {getattr, len, torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like}


class _Tracer(fx.Tracer):
    """fx tracer that keeps ``Add`` modules as leaves (the residual adds LRP must see)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        leaf = isinstance(m, (Add, nn.LayerNorm, nn.GroupNorm, LrpSelfAttention, *RULE_MODULES))
        return leaf or getattr(m, "_xtmr_leaf", False) or super().is_leaf_module(m, module_qualified_name)


def has_batchnorm(model: nn.Module) -> bool:
    """Whether the model has any BatchNorm layer."""
    return any(isinstance(m, _BatchNorm) for m in model.modules())


def _trace(model: nn.Module, why: str) -> fx.GraphModule:
    """An fx GraphModule over ``model`` (which it shares submodules with: pass a copy)."""
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # fx raises TraceError, TypeError, NotImplementedError... for dynamic code
        detail = " ".join(str(e).split())[:120] or type(e).__name__
        raise XtmrError(f"cannot trace {type(model).__name__} with torch.fx to {why} ({detail})") from None
    return fx.GraphModule(model, graph, class_name=type(model).__name__)


def _set_module(root: nn.Module, qualname: str, module: nn.Module) -> None:
    parent, _, name = qualname.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def _fold(model: nn.Module, private: bool = False) -> tuple[nn.Module, dict[str, str]]:
    """Fold on a private eval copy (``model`` itself when ``private``); returns (folded model, {layer name: name
    of the BatchNorm folded into it})."""
    work = (model if private else copy.deepcopy(model)).eval()
    if not has_batchnorm(work):
        return work, {}
    gm = _trace(work, "fold its BatchNorm layers")
    modules = dict(gm.named_modules())
    folded: dict[str, str] = {}
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], _BatchNorm):
            continue
        prev = node.args[0] if node.args else None
        if not (isinstance(prev, fx.Node) and prev.op == "call_module" and len(prev.users) == 1):
            continue
        layer, bn = modules[prev.target], modules[node.target]
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        if isinstance(layer, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            fused: nn.Module = fuse_conv_bn_eval(layer, bn)
        elif isinstance(layer, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
            fused = fuse_linear_bn_eval(layer, bn)
        else:
            continue
        fused.weight.requires_grad_(layer.weight.requires_grad)
        name = str(prev.target)  # a call_module node's target is the module's qualified name
        _set_module(gm, name, fused)
        modules[name] = fused
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        folded[name] = str(node.target)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm, folded


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every BatchNorm that directly follows a Conv2d (Linear) folded
    into it; the model given is not changed.

    A BatchNorm is folded when its input is the output of a ``Conv2d`` (``BatchNorm2d``) or ``Linear``
    (``BatchNorm1d``) that nothing else reads. Layer names stay those of ``model`` (the folded layers gain a
    bias). A BatchNorm that cannot be folded (e.g. one after a ReLU) stays as it is.

    Args:
        model: any fx-traceable module; one without BatchNorm comes back as a plain eval copy.

    Returns:
        The folded copy (an ``fx.GraphModule`` when something was folded).

    Raises:
        XtmrError: the model has BatchNorm but cannot be traced by ``torch.fx``.
    """
    return _fold(model)[0]


def deployed_model(model: nn.Module, keep_batchnorm: bool = False) -> nn.Module:
    """The model a device stores: BatchNorm folded (default) or kept as layers of their own.

    Args:
        model: the trained model (not changed).
        keep_batchnorm: keep BatchNorm layers separate instead of folding them.

    Returns:
        ``model`` itself when there is nothing to fold or ``keep_batchnorm``; else ``fold_batchnorm(model)``.
    """
    if keep_batchnorm or not has_batchnorm(model):
        return model
    return fold_batchnorm(model)


def lrp_ready(model: nn.Module) -> tuple[nn.Module, dict[str, str]]:
    """The canonical form LRP runs on: a private eval copy, traced with ``torch.fx``, BatchNorm folded, every
    residual add an ``Add`` module and every other operation on the input's path replaced by its LRP rule
    (``lrp_rules``); attention modules get eager versions with the rules inside.

    Args:
        model: the network (not changed).

    Returns:
        ``(canonical copy, {layer name: name of the BatchNorm folded into it})``. The copy's ``lrp_sink``
        attribute (a ``lrp_rules.Sink``) collects the bias shares of the rules during a pass.

    Raises:
        XtmrError: one line naming the first module type or operation LRP cannot handle, and where it is.
    """
    sink = Sink()
    base = copy.deepcopy(model).eval()
    for m in base.modules():
        if isinstance(getattr(m, "inplace", None), bool):
            # Zennit's hooks and the rules keep the tensors they see. (nn.Module's __setattr__ is typed for
            # tensors and modules only; a plain attribute is what torch stores for anything else.)
            m.inplace = False  # type: ignore[assignment]
    lrp_attention_swap(base, sink)
    work, folded = _fold(base, private=True)
    if not isinstance(work, fx.GraphModule):
        work = _trace(work, "canonize it for LRP")
    _refuse_shared_layers(work)
    _rules_for_operations(work, sink)
    for p in work.parameters():
        p.requires_grad_(False)
    work.lrp_sink = sink  # type: ignore[assignment]  # a plain attribute (nn.Module's __setattr__ is typed narrower)
    return work, folded


def _refuse_shared_layers(work: fx.GraphModule) -> None:
    """Refuse a weight layer applied more than once in one forward pass (weight sharing).

    Zennit's hooks keep one input per module, so the relevance of a layer used twice would silently hold its
    last use only (issue 15 measured a conv used twice: relevance 0.00154 against 0.02299 over both uses).
    """
    uses: dict[str, int] = {}
    for node in work.graph.nodes:
        if node.op == "call_module" and isinstance(work.get_submodule(str(node.target)), (nn.Conv2d, nn.Linear)):
            uses[str(node.target)] = uses.get(str(node.target), 0) + 1
    for name, count in uses.items():
        if count > 1:
            kind = type(work.get_submodule(name)).__name__
            raise XtmrError(
                f"LRP cannot explain {kind} {name}: it is applied {count} times in one forward pass (shared "
                "weights); use another scorer (magnitude, gradient, taylor, random)"
            )


def _flat_nodes(args: fx.node.Argument) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(args, lambda n: out.append(n) or n)  # type: ignore[func-returns-value]
    return out


def _live_nodes(gm: fx.GraphModule) -> set[fx.Node]:
    """Nodes whose value depends on the values of the network's input (the path relevance flows along)."""
    live: set[fx.Node] = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            live.add(node)
        elif node.op in ("call_function", "call_method", "call_module"):
            if not any(a in live for a in _flat_nodes((node.args, node.kwargs))):
                continue
            if node.op == "call_method" and node.target in _CONSTANT_METHODS:
                continue
            if node.op == "call_function" and node.target in _CONSTANT_FUNCTIONS:
                continue
            if node.op == "call_function" and node.target is operator.getitem and node.args[0] not in live:
                continue
            live.add(node)
    return live


class _Method:
    """``x.name(*args, **kwargs)`` as a function (a graph's method call handed to a rule)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        out: torch.Tensor = getattr(x, self.name)(*args, **kwargs)
        return out


def _label(node: fx.Node) -> str:
    if node.op == "call_method":
        return f".{node.target}()"
    return getattr(node.target, "__name__", str(node.target))


def _qualname(target: object) -> str:
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', '')}"


class _Rewrite:
    """One graph being rewritten: the nodes on the input's path, the gates seen so far, and how rules go in."""

    def __init__(self, gm: fx.GraphModule, sink: Sink) -> None:
        self.gm = gm
        self.sink = sink
        self.live = _live_nodes(gm)
        self.modules = dict(gm.named_modules())
        self.gates: set[fx.Node] = set()  # sigmoid outputs and what routes them: the gate of a gated product
        self.count = 0

    def put(self, node: fx.Node, module: nn.Module, kind: str) -> None:
        """Replace ``node`` by a call of ``module`` (a rule) on the same arguments."""
        name = f"lrp_{kind}_{self.count}"
        self.count += 1
        self.gm.add_submodule(name, module)
        with self.gm.graph.inserting_after(node):
            call = self.gm.graph.call_module(name, tuple(node.args), dict(node.kwargs))
        self.live.add(call)
        if node in self.gates:
            self.gates.add(call)
        node.replace_all_uses_with(call)
        self.gm.graph.erase_node(node)


@dataclass(frozen=True)
class _Op:
    """A live function or method call: what it calls and which of its positional arguments are on the input's path."""

    node: fx.Node
    key: fx.node.Target  # the function object, or the method's name
    is_method: bool
    fn: Callable[..., Any]  # the call as a function (a method call wrapped in ``_Method``)
    positions: list[int]
    label: str

    @staticmethod
    def of(node: fx.Node, live: set[fx.Node]) -> _Op:
        key = node.target
        is_method = node.op == "call_method"
        fn: Callable[..., Any]
        if is_method:
            fn = _Method(str(key))
        else:
            assert callable(key), key  # a live node here is a call_function, whose target is the function
            fn = key
        positions = [i for i, a in enumerate(node.args) if isinstance(a, fx.Node) and a in live]
        return _Op(node, key, is_method, fn, positions, _label(node))

    def among(self, methods: set[str], functions: set[Any]) -> bool:
        """Whether the call is one of ``methods`` (a method call) or ``functions`` (a function call)."""
        return self.key in methods if self.is_method else self.key in functions


def _rules_for_operations(gm: fx.GraphModule, sink: Sink) -> None:
    """Replace every operation on the input's path by its LRP rule; refuse the ones no rule covers."""
    rw = _Rewrite(gm, sink)
    for node in list(gm.graph.nodes):
        if node not in rw.live or node.op == "placeholder":
            continue
        if node.op == "call_module":
            _module_rule(rw, node)
            continue
        op = _Op.of(node, rw.live)
        if op.key in _GATES:
            rw.gates.add(node)
        # The first handler that takes the operation rewrites it (or keeps it: a routing operation); order matters.
        if not any(handler(rw, op) for handler in _HANDLERS):
            what = f"the tensor method {op.label}" if op.is_method else f"the operation {op.label}"
            raise XtmrError(f"LRP cannot handle {what}{_where(node)}; use another scorer{_OTHERS}")
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()


def _module_rule(rw: _Rewrite, node: fx.Node) -> None:
    """A layer on the input's path: a norm or softmax gets its rule in place, a layer LRP knows stays, any other
    is refused."""
    m = rw.modules[node.target]
    if isinstance(m, (nn.Sigmoid, nn.Hardsigmoid)):
        rw.gates.add(node)
    if isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
        _set_module(rw.gm, str(node.target), NormRule(m, rw.sink))
    elif isinstance(m, nn.Softmax):
        _set_module(rw.gm, str(node.target), SoftmaxRule(m.dim if m.dim is not None else -1, rw.sink))
    elif not isinstance(
        m, (*LRP_LAYERS, *LRP_PASS, *LRP_POOLS, *LRP_ROUTE, Add, *RULE_MODULES, LrpSelfAttention)
    ) and not (getattr(m, "_xtmr_leaf", False)):
        raise XtmrError(
            f"LRP cannot handle {type(m).__name__} layers (module {node.target}); use another scorer{_OTHERS}"
        )


def _route(rw: _Rewrite, op: _Op) -> bool:
    """A routing operation: the gradient routes relevance (a concatenation with constant parts is a rule, which
    gives the constants their share); a routed gate stays a gate."""
    if not op.among(_ROUTE_METHODS, _ROUTE_FUNCTIONS):
        return False
    node = op.node
    if op.key in (torch.cat, torch.concat, torch.stack):
        # (fx types an argument as any value; the tensors of a concatenation are a sequence)
        parts = cast(Sequence[fx.node.Argument], node.args[0] if node.args else node.kwargs.get("tensors"))
        frozen = [(0, j) for j, a in enumerate(parts) if isinstance(a, fx.Node) and a not in rw.live]
        if frozen and node.args:
            tensors = cast(Sequence[fx.node.Argument], node.args[0])
            moving = [(0, j) for j, a in enumerate(tensors) if isinstance(a, fx.Node) and a in rw.live]
            rule = ConstRouteRule(op.fn, tuple(frozen), tuple(moving), sink=rw.sink, label=op.label)
            rw.put(node, rule, "route")
    if node.args and node.args[0] in rw.gates:
        rw.gates.add(node)
    return True


def _route_named(rw: _Rewrite, op: _Op) -> bool:
    """A torchvision routing function (known by name): left as it is."""
    return not op.is_method and _qualname(op.key) in _ROUTE_NAMED


def _stochastic_depth(rw: _Rewrite, op: _Op) -> bool:
    """torchvision's stochastic depth at evaluation (``training=False``) is the identity: removed."""
    node = op.node
    if op.is_method or not _qualname(op.key).endswith("stochastic_depth"):
        return False
    if node.kwargs.get("training", node.args[3] if len(node.args) > 3 else True) is not False:
        return False
    node.replace_all_uses_with(cast(fx.Node, node.args[0]))  # its input tensor
    rw.gm.graph.erase_node(node)
    return True


def _identity(rw: _Rewrite, op: _Op) -> bool:
    """An element-wise non-linearity or normalisation: the identity rule."""
    if not op.among(_IDENTITY_METHODS, _IDENTITY_FUNCTIONS):
        return False
    rw.put(op.node, IdentityRule(op.fn, (op.positions[0],), rw.sink, op.label), "identity")
    return True


def _epsilon(rw: _Rewrite, op: _Op) -> bool:
    """A parameter-free linear map (mean, sum, average pooling): the epsilon rule."""
    if not op.among(_EPSILON_METHODS, _EPSILON_FUNCTIONS):
        return False
    rw.put(op.node, EpsilonRule(op.fn, (op.positions[0],), rw.sink, op.label), "epsilon")
    return True


def _softmax(rw: _Rewrite, op: _Op) -> bool:
    """A softmax over a dimension given as a number: AttnLRP's softmax rule."""
    if op.key not in _SOFTMAX:
        return False
    node = op.node
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if not isinstance(dim, int):
        raise XtmrError(f"LRP needs the softmax dimension as a number{_where(node)}")
    rw.put(node, SoftmaxRule(dim, rw.sink), "softmax")
    return True


def _add(rw: _Rewrite, op: _Op) -> bool:
    """A sum of two tensors on the input's path: an ``Add`` module (a residual add), or of one and a constant:
    the constant takes its share (subtraction: a negated constant)."""
    plain = len(op.node.args) == 2 and not op.node.kwargs
    if op.key in _ADDS and len(op.positions) == 2 and not op.node.kwargs:
        rw.put(op.node, Add(), "add")
    elif op.key in (_ADDS | _SUBS) and len(op.positions) == 1 and plain:
        sign = -1.0 if op.key in _SUBS else 1.0
        rw.put(op.node, AddConstRule(op.positions[0], sign, rw.sink, op.label), "addconst")
    else:
        return False
    return True


def _scale(rw: _Rewrite, op: _Op) -> bool:
    """A tensor on the input's path times (divided by) a constant: the identity rule."""
    if not ((op.key in (_MULS | _DIVS) and op.positions == [0]) or (op.key in _MULS and op.positions == [1])):
        return False
    rw.put(op.node, IdentityRule(op.fn, (op.positions[0],), rw.sink, op.label), "identity")
    return True


def _product(rw: _Rewrite, op: _Op) -> bool:
    """A product of two tensors on the input's path: a gate times a signal is the gate rule (the gate held
    constant), any other the product rule; a matrix product with one constant factor: the identity rule."""
    node, positions = op.node, op.positions
    if op.key in _MULS and len(positions) == 2:
        a, b = node.args[0], node.args[1]
        if (a in rw.gates) != (b in rw.gates):
            signal, gate = (1, 0) if a in rw.gates else (0, 1)
            rw.put(node, GateRule(op.fn, signal, gate, rw.sink, op.label), "gate")
        else:
            rw.put(node, ProductRule(op.fn, tuple(positions), rw.sink, op.label), "product")
    elif op.key in _PRODUCTS and len(positions) == 2:
        rw.put(node, ProductRule(op.fn, tuple(positions), rw.sink, op.label), "product")
    elif op.key in _PRODUCTS and len(positions) == 1:
        rw.put(node, IdentityRule(op.fn, (positions[0],), rw.sink, op.label), "identity")
    else:
        return False
    return True


# Each takes an operation (and returns True) or leaves it to the next; the order is the order of precedence.
_HANDLERS: tuple[Callable[[_Rewrite, _Op], bool], ...] = (
    _route,
    _route_named,
    _stochastic_depth,
    _identity,
    _epsilon,
    _softmax,
    _add,
    _scale,
    _product,
)


_OTHERS = " (magnitude, gradient, taylor, random)"


def _where(node: fx.Node) -> str:
    """`` in <module type> <qualified name>``: the innermost module an fx node was traced in, if known."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        owner = node.graph.owning_module
        return f" in {type(owner).__name__} (its forward)" if owner is not None else " in this model"
    qualname, kind = list(stack.values())[-1]
    return f" in {getattr(kind, '__name__', kind)} {qualname}"
