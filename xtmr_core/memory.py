"""The layout of weight memory: every faultable weight of a model laid end to end in one flat array.

The faultable weights are the ``weight`` tensors of every ``nn.Conv2d`` and ``nn.Linear`` layer, in
forward order (``models.weight_layers``). A flat index names one weight everywhere in the engine:
scores, protection plans, fault lists and the worker model's buffer all use it.
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
        names: layer names (from ``named_modules``), in forward order.
        shapes: each layer's weight shape.
        offsets: int64 array of length ``len(names) + 1``; layer ``l`` holds ``offsets[l]:offsets[l+1]``.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: np.ndarray

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
        """Global output-channel id of every weight (row of a linear layer, filter of a conv)."""
        ids = []
        base = 0
        for shape, size in zip(self.shapes, self.sizes()):
            out = shape[0]
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


def layout_of(model: nn.Module) -> WeightLayout:
    """Build the flat layout of a model's faultable weights.

    Args:
        model: any module with ``nn.Conv2d`` / ``nn.Linear`` layers.

    Returns:
        The model's ``WeightLayout``.
    """
    layers = weight_layers(model)
    names = tuple(n for n, _ in layers)
    shapes = tuple(tuple(m.weight.shape) for _, m in layers)
    sizes = [int(np.prod(s)) for s in shapes]
    return WeightLayout(names, shapes, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))


def flat_weights(model: nn.Module) -> np.ndarray:
    """A float32 copy of all faultable weights of ``model``, in layout order."""
    return np.concatenate(
        [m.weight.detach().cpu().reshape(-1).to(torch.float32).numpy() for _, m in weight_layers(model)]
    ).astype(np.float32, copy=False)
