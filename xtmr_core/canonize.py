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

import torch
import torch.fx as fx
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from xtmr_core.errors import XtmrError
from xtmr_core.models import Add, to_channels_last

__all__ = ["has_batchnorm", "fold_batchnorm", "deployed_model", "lrp_ready", "LRP_LAYERS", "LRP_PASS", "LRP_POOLS"]

#: Layers that carry an LRP rule on their weights (a BatchNorm that could not be folded is an elementwise layer).
LRP_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear, _BatchNorm)
#: Elementwise activations and no-ops: relevance passes through unchanged.
LRP_PASS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Dropout, nn.Identity, nn.Flatten)
#: Pooling layers: relevance is redistributed in proportion to the contributions (the epsilon rule).
LRP_POOLS: tuple[type[nn.Module], ...] = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)

# Functions and tensor methods in a traced graph that route relevance correctly by their gradient alone
# (reshapes, concatenation, shape queries, memory layout).
# ReLU and max-pooling as functions too: their gradient passes relevance where the output is non-zero, and a
# zero output carries no relevance.
_PASS_FUNCTIONS = {
    torch.flatten,
    torch.cat,
    operator.getitem,
    getattr,
    torch.relu,
    nn.functional.relu,
    nn.functional.max_pool2d,
    nn.functional.dropout,
    to_channels_last,
}
_PASS_METHODS = {"view", "reshape", "flatten", "size", "contiguous", "to", "squeeze", "unsqueeze", "dim"}
_ADDS = {operator.add, operator.iadd, torch.add}


class _Tracer(fx.Tracer):
    """fx tracer that keeps ``Add`` modules as leaves (the residual adds LRP must see)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, Add) or super().is_leaf_module(m, module_qualified_name)


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


def _fold(model: nn.Module) -> tuple[nn.Module, dict[str, str]]:
    """Fold on a private eval copy; returns (folded model, {layer name: name of the BatchNorm folded into it})."""
    work = copy.deepcopy(model).eval()
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
        _set_module(gm, prev.target, fused)
        modules[prev.target] = fused
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        folded[prev.target] = node.target
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
    """The canonical form LRP runs on: a private eval copy with BatchNorm folded and every residual add an
    ``Add`` module, checked to hold only layers and operations the LRP rules cover.

    Models built only from modules (the plain ones here) are used as they are; models with BatchNorm or
    functional adds (``a + b`` in ``forward``, as torchvision's ResNet) are traced with ``torch.fx``.

    Args:
        model: the network (not changed).

    Returns:
        ``(canonical copy, {layer name: name of the BatchNorm folded into it})``.

    Raises:
        XtmrError: one line naming the first module type or operation LRP cannot handle.
    """
    work, folded = _fold(model)
    if not isinstance(work, fx.GraphModule) and _needs_trace(work):
        work = _trace(work, "canonize it for LRP")
    if isinstance(work, fx.GraphModule):
        _modules_for_functions(work)
    _check_supported(work)
    for p in work.parameters():
        p.requires_grad_(False)
    return work, folded


def _needs_trace(model: nn.Module) -> bool:
    """Whether the forward may hide adds or other functions: anything but the project's own model classes."""
    from xtmr_core.models import Classifier

    return not isinstance(model, Classifier)


def _modules_for_functions(gm: fx.GraphModule) -> None:
    """Turn tensor adds into ``Add`` modules and functional adaptive average pooling into the module,
    so each gets its LRP rule; refuse functions LRP has no rule for."""
    count = 0
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in _ADDS:
            tensors = [a for a in node.args if isinstance(a, fx.Node)]
            if len(tensors) != 2 or node.kwargs:
                raise XtmrError("LRP cannot handle an add of a tensor and a constant in this model")
            new = _add_module(gm, f"lrp_add_{count}", Add())
            count += 1
            with gm.graph.inserting_after(node):
                call = gm.graph.call_module(new, tuple(node.args))
            node.replace_all_uses_with(call)
            gm.graph.erase_node(node)
        elif node.op == "call_function" and node.target is nn.functional.adaptive_avg_pool2d:
            size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
            new = _add_module(gm, f"lrp_pool_{count}", nn.AdaptiveAvgPool2d(size))
            count += 1
            with gm.graph.inserting_after(node):
                call = gm.graph.call_module(new, (node.args[0],))
            node.replace_all_uses_with(call)
            gm.graph.erase_node(node)
        elif node.op == "call_function" and node.target not in _PASS_FUNCTIONS:
            name = getattr(node.target, "__name__", str(node.target))
            raise XtmrError(f"LRP cannot handle the operation {name}{_where(node)}; use another scorer{_OTHERS}")
        elif node.op == "call_method" and node.target not in _PASS_METHODS:
            raise XtmrError(
                f"LRP cannot handle the tensor method .{node.target}(){_where(node)}; use another scorer{_OTHERS}"
            )
    gm.graph.lint()
    gm.recompile()


_OTHERS = " (magnitude, gradient, taylor, random)"


def _where(node: fx.Node) -> str:
    """`` in <module type> <qualified name>``: the innermost module an fx node was traced in, if known."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return " in this model"
    qualname, kind = list(stack.values())[-1]
    return f" in {getattr(kind, '__name__', kind)} {qualname}"


def _add_module(gm: fx.GraphModule, name: str, module: nn.Module) -> str:
    gm.add_submodule(name, module)
    return name


def _check_supported(model: nn.Module) -> None:
    known = (*LRP_LAYERS, *LRP_PASS, *LRP_POOLS, Add)
    for name, m in model.named_modules():
        if next(m.children(), None) is None and name and not isinstance(m, known):
            raise XtmrError(f"LRP cannot handle {type(m).__name__} layers (module {name}); use another scorer{_OTHERS}")
