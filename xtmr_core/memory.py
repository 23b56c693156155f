"""The layout of weight memory: every faultable weight of a model laid end to end in one flat array.

The faultable tensors are the ``weight`` of every ``nn.Conv2d`` (grouped and depthwise included) and
``nn.Linear`` layer, and of every BatchNorm still a layer of its own (``models.weight_layers``, in forward
order); with ``fault_biases`` each such layer's ``bias`` follows its weight. A deployed model has its
BatchNorm folded into the conv before it (``canonize.deployed_model``), so by default BatchNorm is faulted
through the folded weights. A flat index names one weight everywhere in the engine: scores, protection
plans, fault lists and the worker model's buffer all use it.

Entry names: a layer's weight is named by the layer (``"features.0"``), its bias ``"<layer>.bias"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from xtmr_core.models import weight_layers


@dataclass(frozen=True)
class WeightLayout:
    """Where each layer's weights sit in the flat weight array.

    Attributes:
        names: entry names (a layer's name for its weight, ``"<layer>.bias"`` for its bias), in forward order.
        shapes: each entry's tensor shape.
        offsets: int64 array of length ``len(names) + 1``; entry ``l`` holds ``offsets[l]:offsets[l+1]``.
        params: each entry's parameter name in the model (``"features.0.weight"``); empty = every entry
            is a layer's weight.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: np.ndarray
    params: tuple[str, ...] = ()

    @property
    def param_names(self) -> tuple[str, ...]:
        """Each entry's parameter name in the model (for ``state_dict`` / ``functional_call``)."""
        return self.params or tuple(f"{n}.weight" for n in self.names)

    @property
    def n_weights(self) -> int:
        """Total number of faultable weights."""
        return int(self.offsets[-1])

    def sizes(self) -> np.ndarray:
        """Number of weights in each layer."""
        return np.diff(self.offsets)

    def layer_of(self, index: np.ndarray) -> np.ndarray:
        """Layer number of each flat weight index."""
        return np.searchsorted(self.offsets, np.asarray(index, dtype=np.int64), side="right") - 1

    def locate(self, index: int) -> tuple[str, tuple[int, ...]]:
        """Layer name and index inside that layer's weight tensor of one flat index."""
        if not 0 <= index < self.n_weights:
            raise IndexError(f"weight index {index} outside 0..{self.n_weights - 1}")
        layer = int(self.layer_of(np.array([index]))[0])
        local = int(index - self.offsets[layer])
        return self.names[layer], tuple(int(i) for i in np.unravel_index(local, self.shapes[layer]))

    def channel_ids(self) -> np.ndarray:
        """Global output-channel id of every weight (row of a linear layer, filter of a conv; a 1-D tensor,
        a bias or a BatchNorm scale, is one channel)."""
        ids = []
        base = 0
        for shape, size in zip(self.shapes, self.sizes()):
            out = shape[0] if len(shape) > 1 else 1
            ids.append(base + np.repeat(np.arange(out, dtype=np.int64), int(size) // out))
            base += out
        return np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)

    def flatten(self, per_layer: dict[str, torch.Tensor]) -> np.ndarray:
        """Concatenate per-layer tensors (keyed by layer name) into one flat float array."""
        missing = [n for n in self.names if n not in per_layer]
        if missing:
            raise KeyError(f"no values for layer {missing[0]}")
        return np.concatenate([per_layer[n].detach().cpu().reshape(-1).to(torch.float64).numpy() for n in self.names])

    def split(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Cut a flat array back into per-layer arrays of the weights' shapes."""
        return {
            n: flat[self.offsets[i] : self.offsets[i + 1]].reshape(self.shapes[i]) for i, n in enumerate(self.names)
        }


def faultable_tensors(model: nn.Module, fault_biases: bool = False) -> list[tuple[str, nn.Module, str]]:
    """The faultable tensors of a model, in layout order.

    Args:
        model: any module.
        fault_biases: include each weight layer's bias (right after its weight).

    Returns:
        ``(entry name, module, attribute)`` triples: ``(layer, module, "weight")`` for every layer of
        ``models.weight_layers`` and, with ``fault_biases``, ``(layer + ".bias", module, "bias")`` for
        those that have a bias.
    """
    out: list[tuple[str, nn.Module, str]] = []
    for name, module in weight_layers(model):
        out.append((name, module, "weight"))
        if fault_biases and getattr(module, "bias", None) is not None:
            out.append((f"{name}.bias", module, "bias"))
    return out


def layout_of(model: nn.Module, fault_biases: bool = False) -> WeightLayout:
    """Build the flat layout of a model's faultable tensors.

    Args:
        model: any module with ``nn.Conv2d`` / ``nn.Linear`` layers.
        fault_biases: biases are faultable too (see ``faultable_tensors``).

    Returns:
        The model's ``WeightLayout``.
    """
    tensors = faultable_tensors(model, fault_biases)
    names = tuple(n for n, _, _ in tensors)
    shapes = tuple(tuple(getattr(m, attr).shape) for _, m, attr in tensors)
    sizes = [int(np.prod(s)) for s in shapes]
    layer = {id(m): n for n, m in model.named_modules()}
    params = tuple(f"{layer[id(m)]}.{attr}" for _, m, attr in tensors)
    return WeightLayout(names, shapes, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), params)


def flat_weights(model: nn.Module, fault_biases: bool = False) -> np.ndarray:
    """A float32 copy of all faultable tensors of ``model``, in layout order."""
    tensors = faultable_tensors(model, fault_biases)
    if not tensors:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(
        [getattr(m, attr).detach().cpu().reshape(-1).to(torch.float32).numpy() for _, m, attr in tensors]
    ).astype(np.float32, copy=False)
