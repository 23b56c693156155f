"""Per-layer summaries the app draws: parameter counts, where protected weights sit, relevance samples.

Pure functions over a model, its ``WeightLayout`` and flat per-weight arrays; no Streamlit here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch import nn

from xtmr_core.memory import WeightLayout
from xtmr_core.models import weight_layers
from xtmr_core.protection import ProtectionPlan
from xtmr_core.relevance import block_factors, block_sum
from xtmr_core.vocabulary import WORD_BITS, check_format

__all__ = [
    "LayerMap",
    "layer_kind",
    "layer_map",
    "layer_table",
    "weight_memory_bytes",
    "protected_per_layer",
    "relevance_sample",
    "signed_range",
]


def layer_kind(m: nn.Module) -> str:
    """A faultable layer in words: ``linear``, ``conv 5×5``, ``depthwise conv 3×3`` or ``conv 3×3, 4 groups``."""
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return "batchnorm scale"
    if not isinstance(m, nn.Conv2d):
        return "linear"
    kh, kw = m.kernel_size
    if m.groups > 1 and m.in_channels == m.groups:
        return f"depthwise conv {kh}×{kw}"
    return f"conv {kh}×{kw}" + (f", {m.groups} groups" if m.groups > 1 else "")


def layer_table(model: nn.Module) -> pd.DataFrame:
    """One row per faultable layer (``weight_layers`` order) with its parameter counts.

    Args:
        model: the network.

    Returns:
        Columns ``layer``, ``type`` (``layer_kind``), ``weight shape`` (text),
        ``weights``, ``biases`` and ``share %`` (the layer's share of all faultable weights).
    """
    rows = []
    for name, m in weight_layers(model):
        shape = tuple(m.weight.shape)
        rows.append(
            {
                "layer": name,
                "type": layer_kind(m),
                "weight shape": "×".join(map(str, shape)),
                "weights": int(m.weight.numel()),
                "biases": int(m.bias.numel()) if m.bias is not None else 0,
            }
        )
    table = pd.DataFrame(rows, columns=["layer", "type", "weight shape", "weights", "biases"])
    total = int(table["weights"].sum()) if len(table) else 0
    table["share %"] = 100.0 * table["weights"] / total if total else 0.0
    return table


def weight_memory_bytes(n_weights: int, fmt: str) -> int:
    """Bytes of weight memory for ``n_weights`` words stored in ``fmt`` (without TMR copies)."""
    return int(n_weights) * WORD_BITS[check_format(fmt)] // 8


def protected_per_layer(layout: WeightLayout, plan: ProtectionPlan) -> pd.DataFrame:
    """How many of each layer's weights a plan protects (have at least one triplicated bit).

    Args:
        layout: the model's weight layout.
        plan: the protection plan (``weights=None`` means every weight).

    Returns:
        One row per layer: ``layer``, ``weights``, ``protected``, ``layer %`` (protected / the
        layer's weights) and ``of protected %`` (the layer's share of all protected weights, 0 when
        nothing is protected).
    """
    sizes = layout.sizes().astype(np.int64)
    if not plan.bits:
        counts = np.zeros(len(sizes), dtype=np.int64)
    elif plan.weights is None:
        counts = sizes.copy()
    else:
        counts = np.bincount(layout.layer_of(plan.weights), minlength=len(sizes)).astype(np.int64)
    total = int(counts.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        layer_pct = np.where(sizes > 0, 100.0 * counts / np.maximum(sizes, 1), 0.0)
    share = 100.0 * counts / total if total else np.zeros(len(sizes))
    return pd.DataFrame(
        {
            "layer": list(layout.names),
            "weights": sizes,
            "protected": counts,
            "layer %": layer_pct,
            "of protected %": share,
        }
    )


def relevance_sample(
    layout: WeightLayout,
    magnitude: np.ndarray,
    relevance: np.ndarray,
    *,
    n: int = 3000,
    top_fraction: float = 0.01,
    seed: int = 0,
) -> pd.DataFrame:
    """A sample of weights for a relevance-vs-magnitude scatter.

    Up to ``n`` weights: the global top ``top_fraction`` by ``|relevance|`` (at most a quarter of
    ``n``, the largest first) plus a seeded uniform sample of the others.

    Args:
        layout: the weight layout (for layer names).
        magnitude: flat ``|w|`` (or ``w``) per weight, layout order.
        relevance: flat relevance per weight (signed or not), layout order.
        n: the most points to return.
        top_fraction: share of weights flagged as ``top`` (by ``|relevance|``).
        seed: seed of the uniform sample.

    Returns:
        Columns ``index`` (flat), ``layer``, ``depth`` (the layer's position, 1 = first), ``magnitude``
        (``|w|``), ``relevance`` (as given),
        ``abs relevance`` and ``top`` (bool), sorted by ``index``.
    """
    magnitude = np.asarray(magnitude, dtype=np.float64).reshape(-1)
    relevance = np.asarray(relevance, dtype=np.float64).reshape(-1)
    total = layout.n_weights
    if magnitude.size != total or relevance.size != total:
        raise ValueError(f"expected {total} values per array, got {magnitude.size} and {relevance.size}")
    n = max(0, min(int(n), total))
    k_top = int(round(float(top_fraction) * total))
    order = np.argsort(-np.abs(relevance), kind="stable")
    top_all = order[:k_top]
    shown_top = top_all[: min(k_top, n // 4)]
    rest = np.setdiff1d(np.arange(total), shown_top, assume_unique=True)
    rng = np.random.default_rng(seed)
    others = rng.choice(rest, size=min(n - shown_top.size, rest.size), replace=False) if rest.size else rest
    index = np.sort(np.concatenate([shown_top, others]).astype(np.int64))
    is_top = np.zeros(total, dtype=bool)
    is_top[top_all] = True
    names = np.array(layout.names, dtype=object)
    layer_idx = layout.layer_of(index) if index.size else np.zeros(0, dtype=np.int64)
    return pd.DataFrame(
        {
            "index": index,
            "layer": names[layer_idx] if index.size else [],
            "depth": layer_idx + 1,
            "magnitude": np.abs(magnitude[index]),
            "relevance": relevance[index],
            "abs relevance": np.abs(relevance[index]),
            "top": is_top[index],
        }
    )


def signed_range(values: np.ndarray) -> float:
    """The half-range of a diverging colour scale centred on zero: ``max |v|`` (1.0 when all are 0)."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    m = float(np.max(np.abs(finite))) if finite.size else 0.0
    return m if m > 0 else 1.0


@dataclass(frozen=True)
class LayerMap:
    """One layer's weight-shaped values laid out as a heatmap, with what its axes and cells mean.

    Attributes:
        z: the 2-D grid (NaN where a cell holds nothing, e.g. past the last filter of a wrapped grid).
        hover: one text per cell naming the weights it holds (same shape as ``z``).
        x_title, y_title: axis titles.
        x_ticks, y_ticks: ``(positions, labels)`` of each axis (at most ~12 labels).
        cell: what one cell is, in words (``"one weight"``, ``"4 filters × 8 input channels, summed"``).
        tile: ``(kh, kw)`` when the grid is made of kernel tiles (draw separators every tile), else ``None``.
    """

    z: np.ndarray
    hover: np.ndarray
    x_title: str
    y_title: str
    x_ticks: tuple[tuple[float, ...], tuple[str, ...]]
    y_ticks: tuple[tuple[float, ...], tuple[str, ...]]
    cell: str
    tile: tuple[int, int] | None


def _ticks(n_cells: int, block: int, total: int, tile: int = 1) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """Up to ~12 ticks over ``n_cells`` cells; a cell holds ``block`` units (tiles of ``tile`` cells hold one)."""
    units = math.ceil(n_cells / tile)
    step = max(1, math.ceil(units / 12))
    pos, text = [], []
    for u in range(0, units, step):
        first = u * block
        last = min(total, first + block) - 1
        pos.append(u * tile + (tile - 1) / 2)
        text.append(str(first) if block == 1 else f"{first}–{last}")
    return tuple(pos), tuple(text)


def _span(name: str, first: int, n: int, total: int) -> str:
    last = min(total, first + n) - 1
    return f"{name} {first}" if last <= first else f"{name}s {first}–{last}"


def layer_map(values: np.ndarray, max_cells: int = 4096) -> LayerMap:
    """Lay out one layer's weight-shaped values (relevance or weights) as a heatmap of at most ``max_cells`` cells.

    * BatchNorm scale (one value per channel): the channels wrapped row by row into a near-square grid.
    * Linear (out × in): outputs down, inputs across; block-summed when larger than ``max_cells``.
    * Conv (out × in × kh × kw), several input channels per filter: a grid of kh×kw kernel tiles, filters
      down and input channels across (``z[o*kh + r, i*kw + c] = w[o, i, r, c]``) when it fits; otherwise each
      kernel summed to one cell (out × in), block-summed further if still too large.
    * Conv with one input channel per filter (depthwise, or a first layer on grey images): the filters'
      kernels wrapped row by row into a near-square grid of tiles (a single column of 96 tiles would be
      unreadable); kernels summed to one cell each when the tiles do not fit.

    Block sums keep the signed total, and every cell's hover text names the weights it holds.

    Args:
        values: an array shaped like a BatchNorm (1-D), Linear (2-D) or Conv2d (4-D) weight.
        max_cells: the most cells of the grid (>= 1).

    Raises:
        ValueError: another shape, or ``max_cells < 1``.
    """
    w = np.asarray(values, dtype=np.float64)
    if max_cells < 1:
        raise ValueError(f"max_cells must be at least 1, got {max_cells}")
    if w.ndim == 1:  # a BatchNorm scale kept as a layer of its own: one value per channel
        return _wrapped_map(w.reshape(-1, 1, 1), max_cells, unit="channel")
    if w.ndim == 2:
        return _matrix_map(w, max_cells, "output", "input", "weight")
    if w.ndim != 4:
        raise ValueError(f"a layer map needs a Linear (2-D) or Conv2d (4-D) weight, got shape {w.shape}")
    o, i, kh, kw = w.shape
    if kh == kw == 1:  # a pointwise conv is a matrix
        return _matrix_map(w[:, :, 0, 0], max_cells, "output filter", "input channel", "weight")
    if i == 1:
        return _wrapped_map(w[:, 0], max_cells)
    if o * i * kh * kw <= max_cells:
        z = w.transpose(0, 2, 1, 3).reshape(o * kh, i * kw)
        r, c = np.indices(z.shape)
        hover = _texts(z, lambda a, b: f"filter {a // kh}, input channel {b // kw}, kernel ({a % kh}, {b % kw})", r, c)
        return LayerMap(
            z,
            hover,
            "input channel (one kernel tile each)",
            "output filter (one kernel tile each)",
            _ticks(i * kw, 1, i, kw),
            _ticks(o * kh, 1, o, kh),
            f"one weight; each {kh}×{kw} tile is one filter's kernel on one input channel",
            (kh, kw),
        )
    return _matrix_map(w.sum(axis=(2, 3)), max_cells, "output filter", "input channel", f"{kh}×{kw} kernel")


def _texts(z: np.ndarray, name: Callable[[int, int], str], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = np.empty(z.shape, dtype=object)
    for a, b in zip(rows.ravel(), cols.ravel()):
        out[a, b] = f"{name(int(a), int(b))}: {z[a, b]:.3g}"
    return out


def _matrix_map(m: np.ndarray, max_cells: int, row_name: str, col_name: str, unit: str) -> LayerMap:
    rows, cols = m.shape
    fr, fc = block_factors(rows, cols, max_cells)
    z = block_sum(m, fr, fc) if (fr, fc) != (1, 1) else m
    grid = np.indices(z.shape)
    r, c = grid[0], grid[1]
    hover = _texts(z, lambda a, b: f"{_span(row_name, a * fr, fr, rows)} × {_span(col_name, b * fc, fc, cols)}", r, c)
    summed = unit != "weight"
    if (fr, fc) == (1, 1):
        cell = f"one {unit}" + (" (its weights summed)" if summed else "")
    else:
        cell = f"{fr} {row_name}{'s' * (fr > 1)} × {fc} {col_name}{'s' * (fc > 1)}, " + (
            f"each {unit} summed, then the block" if summed else "summed"
        )
    return LayerMap(
        z,
        hover,
        col_name + ("" if fc == 1 else f" (blocks of {fc})"),
        row_name + ("" if fr == 1 else f" (blocks of {fr})"),
        _ticks(z.shape[1], fc, cols),
        _ticks(z.shape[0], fr, rows),
        cell,
        None,
    )


def _wrapped_map(k: np.ndarray, max_cells: int, unit: str = "filter") -> LayerMap:
    """Filters with one kernel each (o × kh × kw), wrapped row-major into a near-square grid of tiles."""
    o, kh, kw = k.shape
    per_row = max(1, math.ceil(math.sqrt(o * kh / kw)))
    n_rows = math.ceil(o / per_row)
    if n_rows * kh * per_row * kw > max_cells:  # one cell per filter: its kernel summed
        k, kh, kw = k.sum(axis=(1, 2)).reshape(o, 1, 1), 1, 1
        per_row = max(1, math.ceil(math.sqrt(o)))
        n_rows = math.ceil(o / per_row)
        if n_rows * per_row > max_cells:
            raise ValueError(f"{o} {unit}s do not fit in {max_cells} cells")
        cell = "one filter (its kernel summed)"
    else:
        cell = f"one weight; each {kh}×{kw} tile is one filter's kernel"
    if unit != "filter":
        cell = f"one {unit}'s scale"
    z = np.full((n_rows * kh, per_row * kw), np.nan)
    for f in range(o):
        r0, c0 = (f // per_row) * kh, (f % per_row) * kw
        z[r0 : r0 + kh, c0 : c0 + kw] = k[f]
    r, c = np.indices(z.shape)
    hover = np.empty(z.shape, dtype=object)
    for a, b in zip(r.ravel(), c.ravel()):
        f = (a // kh) * per_row + b // kw
        where = "" if kh == kw == 1 else f", kernel ({a % kh}, {b % kw})"
        hover[a, b] = f"{unit} {f}{where}: {z[a, b]:.3g}" if f < o else ""
    x_pos, x_text = _ticks(per_row * kw, 1, per_row, kw)
    y_pos = tuple(float(p) for p in np.arange(n_rows) * kh + (kh - 1) / 2)
    step = max(1, math.ceil(n_rows / 12))
    return LayerMap(
        z,
        hover,
        f"{unit} within the row (+0 … +{per_row - 1})",
        f"{unit}s, {per_row} per row (label: the row's first)",
        (x_pos, tuple(f"+{t}" for t in x_text)),
        (y_pos[::step], tuple(str(row * per_row) for row in range(0, n_rows, step))),
        cell,
        (kh, kw) if kh * kw > 1 else None,
    )
