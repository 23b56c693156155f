"""Per-layer summaries the app draws: parameter counts, where protected weights sit, relevance samples.

Pure functions over a model, its ``WeightLayout`` and flat per-weight arrays; no Streamlit here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from torch import nn

from xtmr_core.memory import WeightLayout
from xtmr_core.models import weight_layers
from xtmr_core.protection import ProtectionPlan
from xtmr_core.vocabulary import WORD_BITS, check_format

__all__ = ["layer_table", "weight_memory_bytes", "protected_per_layer", "relevance_sample", "signed_range"]


def layer_table(model: nn.Module) -> pd.DataFrame:
    """One row per faultable layer (``weight_layers`` order) with its parameter counts.

    Args:
        model: the network.

    Returns:
        Columns ``layer``, ``type`` (e.g. ``conv 5×5`` or ``linear``), ``weight shape`` (text),
        ``weights``, ``biases`` and ``share %`` (the layer's share of all faultable weights).
    """
    rows = []
    for name, m in weight_layers(model):
        shape = tuple(m.weight.shape)
        kind = f"conv {shape[2]}×{shape[3]}" if isinstance(m, nn.Conv2d) else "linear"
        rows.append(
            {
                "layer": name,
                "type": kind,
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
        Columns ``index`` (flat), ``layer``, ``magnitude`` (``|w|``), ``relevance`` (as given),
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
    return pd.DataFrame(
        {
            "index": index,
            "layer": names[layout.layer_of(index)] if index.size else [],
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
