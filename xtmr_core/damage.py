"""Bit-aware protection: spend the memory budget on (weight, bit) pairs ranked by expected damage.

The expected damage of a fault at bit ``b`` of weight ``w`` is ``score(w) x harm(w, b)``: the weight's
importance (any scorer) times what a flip of that bit does. Two harms:

- ``delta``: ``|w' - w|``, the change of the weight when bit ``b`` of its stored word flips (exact per weight
  and bit; a flip that reads as inf or NaN ranks above every finite change). In fp32 that is bit 30 first
  (x 2^128), then the exponent bits that grow the weight; in int8 it is ``2^b x scale``: the top bits.
- ``scan``: the accuracy lost at bit position ``b`` in the single-flip scan (``sensitivity.bit_sensitivity``),
  the same for every weight: measured rather than assumed, and blind to which weight was hit.

Budget convention: a ``damage`` budget is percent *extra memory* (two copies of each protected bit), so
``damage 2%`` triplicates ``0.01 x n_weights x word_bits`` bits, exactly as many as ``lrp 1%`` (whose copies
also cost 2%): the two are compared at equal copies.
"""

from __future__ import annotations

import numpy as np

from xtmr_core.formats import StoredWeights
from xtmr_core.protection import ProtectionPlan
from xtmr_core.vocabulary import check_damage_budget

#: log2 harm given to a flip that reads as inf or NaN: above any finite change (at most ~2^129 in fp32).
NON_FINITE_LOG2 = 1024.0


def delta_harm(stored: StoredWeights) -> np.ndarray:
    """log2 |delta w| of a flip at each bit of each weight: float32, shape ``(n_weights, word_bits)``.

    A flip that does not change the value read (e.g. the sign of 0) gives ``-inf``.
    """
    wb = stored.bits
    full = (1 << wb) - 1
    unsigned = stored.unsigned
    words = stored.words.astype(np.int64) & full
    clean = stored.values().astype(np.float64)
    out = np.empty((words.size, wb), dtype=np.float32)
    for b in range(wb):
        # widening a float32 signalling NaN raises "invalid": that flip reads NaN and ranks as non-finite
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            flipped = stored.decode((words ^ (1 << b)).astype(unsigned).view(stored.words.dtype)).astype(np.float64)
            d = np.abs(flipped - clean)
            out[:, b] = np.where(np.isfinite(d), np.log2(d), NON_FINITE_LOG2)
    return out


def scan_harm(loss_per_bit: np.ndarray, n_weights: int) -> np.ndarray:
    """log2 harm from a single-flip scan: ``loss_per_bit[b]`` (accuracy lost at bit ``b``, clipped at 0) for
    every weight, shape ``(n_weights, word_bits)`` (a broadcast view, no copy)."""
    loss = np.clip(np.asarray(loss_per_bit, dtype=np.float64), 0.0, None)
    with np.errstate(divide="ignore"):
        row = np.log2(loss).astype(np.float32)
    return np.broadcast_to(row, (int(n_weights), row.size))


def top_pairs(keys: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest entries of a ``(n_weights, word_bits)`` key array as a boolean array of its shape.

    Ties are broken by position: lower weight index first, then lower bit.
    """
    flat = np.ascontiguousarray(keys, dtype=np.float32).ravel()
    chosen = np.zeros(flat.size, dtype=bool)
    k = int(min(max(k, 0), flat.size))
    if k == flat.size:
        chosen[:] = True
    elif k > 0:
        threshold = np.partition(flat, flat.size - k)[flat.size - k]
        above = flat > threshold
        chosen |= above
        chosen[np.flatnonzero(flat == threshold)[: k - int(above.sum())]] = True
    return chosen.reshape(keys.shape)


def damage_plan(
    scores: np.ndarray, harm_log2: np.ndarray, budget: float, word_bits: int, *, detail: str = ""
) -> ProtectionPlan:
    """The bit-aware plan: triplicate the (weight, bit) pairs of highest ``score x harm``.

    Args:
        scores: one non-negative score per weight (layout order); 0 = no expected damage.
        harm_log2: log2 harm per (weight, bit), shape ``(n_weights, word_bits)`` (``delta_harm``, ``scan_harm``).
        budget: percent extra memory (0..200): ``round(budget / 200 * n_weights * word_bits)`` pairs.
        word_bits: bits per stored weight.
        detail: the label's qualifier (e.g. a non-default scorer or harm).

    Returns:
        A ``ProtectionPlan`` with per-weight bit masks.
    """
    budget = check_damage_budget(budget)
    scores = np.asarray(scores, dtype=np.float64)
    if harm_log2.shape != (scores.size, word_bits):
        raise ValueError(f"harm must have shape ({scores.size}, {word_bits}), got {harm_log2.shape}")
    k = int(round(budget / 200.0 * scores.size * word_bits))
    with np.errstate(divide="ignore"):
        log_score = np.log2(np.where(scores > 0, scores, 0.0)).astype(np.float32)
    chosen = top_pairs(log_score[:, None] + harm_log2, k)
    weights = np.flatnonzero(chosen.any(axis=1)).astype(np.int64)
    sel = chosen[weights]
    masks = (sel.astype(np.int64) << np.arange(word_bits, dtype=np.int64)[None, :]).sum(axis=1)
    bits = tuple(int(b) for b in np.flatnonzero(sel.any(axis=0)))
    return ProtectionPlan("damage", weights, bits, budget=budget, masks=masks, detail=detail)
