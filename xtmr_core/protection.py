"""Protection plans: which (weight, bit) pairs are stored three times, and what that costs.

A plan protects the bit positions ``bits`` of the weights ``weights`` (``None`` = every weight) with
TMR. The range guard costs no copies: a weight read outside its layer's clean range, or non-finite,
is replaced by 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xtmr_core.errors import XtmrError

SCORER_PLANS = ("lrp", "magnitude", "gradient", "taylor", "random")
PLANS = ("none",) + SCORER_PLANS + ("full", "bits", "range")


@dataclass(frozen=True)
class ProtectionPlan:
    """One protection plan.

    Attributes:
        protect: the plan's kind (one of ``PLANS``).
        weights: sorted flat indices of the protected weights; ``None`` = every weight.
        bits: the protected bit positions of each protected weight (empty = no TMR).
        guard: whether the range guard is applied on read.
        budget: the percentage of weights chosen by a scorer (selective plans), else ``None``.
    """

    protect: str
    weights: np.ndarray | None
    bits: tuple[int, ...]
    guard: bool = False
    budget: float | None = None

    @property
    def label(self) -> str:
        """A short human name, e.g. ``lrp 1%`` or ``bits 30``."""
        if self.protect in SCORER_PLANS:
            return f"{self.protect} {self.budget:g}%"
        if self.protect == "bits":
            return "bits " + ",".join(str(b) for b in self.bits)
        return {"none": "no protection", "full": "full TMR", "range": "range guard"}[self.protect]

    def protected_weights(self, n_weights: int) -> int:
        """How many weights have at least one protected bit."""
        if not self.bits:
            return 0
        return n_weights if self.weights is None else int(self.weights.size)

    def protected_bits(self, n_weights: int) -> int:
        """How many stored bits are triplicated."""
        return self.protected_weights(n_weights) * len(self.bits)

    def bit_mask(self) -> int:
        """The protected bit positions as one integer mask."""
        return sum(1 << b for b in self.bits)


@dataclass(frozen=True)
class Overhead:
    """Extra memory of a plan, as % of the weight memory.

    Attributes:
        copies_pct: the two extra copies of the protected bits (the figure the paper quotes).
        index_pct: the index saying which weights are protected (a bitmap, or one 32-bit index per
            protected weight, whichever is smaller; 0 when every weight is treated alike). For the range
            guard: two bounds per layer.
        with_index_pct: the sum of both.
        protected_weights: number of weights with protected bits.
        protected_bits: number of triplicated bits.
    """

    copies_pct: float
    index_pct: float
    with_index_pct: float
    protected_weights: int
    protected_bits: int


def overhead(plan: ProtectionPlan, n_weights: int, word_bits: int, n_layers: int = 0) -> Overhead:
    """Memory overhead of ``plan`` on a model of ``n_weights`` words of ``word_bits`` bits.

    Args:
        plan: the protection plan.
        n_weights: number of faultable weights.
        word_bits: bits per stored weight.
        n_layers: number of layers (the range guard stores two bounds per layer).

    Returns:
        The ``Overhead``, both ways.
    """
    total = n_weights * word_bits
    pbits = plan.protected_bits(n_weights)
    copies = 2 * pbits
    if plan.protect == "range":
        index = 2 * word_bits * n_layers
    elif plan.weights is not None and plan.bits:
        index = min(n_weights, 32 * int(plan.weights.size))
    else:
        index = 0
    pct = 100.0 / total if total else 0.0
    return Overhead(copies * pct, index * pct, (copies + index) * pct, plan.protected_weights(n_weights), pbits)


def check_budget(budget: float) -> float:
    """Return ``budget`` (percent of weights) if it lies in [0, 100], else raise ``XtmrError``."""
    try:
        value = float(budget)
    except (TypeError, ValueError):
        raise XtmrError(f"budget must be a percentage in [0, 100], got {budget!r}") from None
    if not 0.0 <= value <= 100.0:
        raise XtmrError(f"budget must be a percentage in [0, 100], got {budget!r}")
    return value


def top_weights(scores: np.ndarray, budget: float, offsets: np.ndarray | None = None) -> np.ndarray:
    """Flat indices of the top ``budget`` % weights by score (ties: lower index first).

    Args:
        scores: one score per weight, larger = more important.
        budget: percentage of weights to choose.
        offsets: layer boundaries (``WeightLayout.offsets``) to rank within each layer instead of
            globally; ``None`` = one global ranking across layers.

    Returns:
        Sorted int64 indices, ``round(budget / 100 * n)`` of them (per layer when ranking per layer).
    """
    budget = check_budget(budget)
    bounds = [0, scores.size] if offsets is None else list(offsets)
    chosen = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        k = int(round(budget / 100.0 * (hi - lo)))
        order = np.argsort(-np.asarray(scores[lo:hi], dtype=np.float64), kind="stable")
        chosen.append(order[:k] + lo)
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, dtype=np.int64)


def make_plan(
    protect: str,
    word_bits: int,
    *,
    budget: float = 1.0,
    scores: np.ndarray | None = None,
    bits: tuple[int, ...] | None = None,
    offsets: np.ndarray | None = None,
) -> ProtectionPlan:
    """Build a protection plan.

    Args:
        protect: one of ``PLANS``.
        word_bits: bits per stored weight in the chosen format.
        budget: percent of weights to protect, for the scorer plans.
        scores: flat per-weight scores (layout order), for the scorer plans.
        bits: protected bit positions, for ``bits``.
        offsets: layer boundaries to rank per layer (``None`` = globally).

    Returns:
        The ``ProtectionPlan``.
    """
    every_bit = tuple(range(word_bits))
    if protect == "none":
        return ProtectionPlan("none", None, ())
    if protect == "full":
        return ProtectionPlan("full", None, every_bit)
    if protect == "range":
        return ProtectionPlan("range", None, (), guard=True)
    if protect == "bits":
        if not bits:
            raise XtmrError("protect=bits needs bit positions, e.g. --bits 30 or --bits 23-31")
        bad = [b for b in bits if not 0 <= b < word_bits]
        if bad:
            raise XtmrError(f"bit position {bad[0]} outside 0..{word_bits - 1} for a {word_bits}-bit format")
        return ProtectionPlan("bits", None, tuple(sorted(set(bits))))
    if protect in SCORER_PLANS:
        if scores is None:
            raise ValueError(f"protect={protect} needs scores")
        budget = check_budget(budget)
        return ProtectionPlan(protect, top_weights(scores, budget, offsets), every_bit, budget=budget)
    raise XtmrError(f"unknown protection {protect!r}: choose one of {', '.join(PLANS)}")


def parse_bits(text: str) -> tuple[int, ...]:
    """Parse bit positions like ``"30"``, ``"23-31"`` or ``"0,7,30-31"``.

    Raises:
        XtmrError: on anything else.
    """
    out: list[int] = []
    try:
        for part in str(text).replace(" ", "").split(","):
            if not part:
                continue
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise XtmrError(f"bad bit positions {text!r}: use e.g. 30, 23-31 or 0,7,30-31") from None
    if not out or min(out) < 0:
        raise XtmrError(f"bad bit positions {text!r}: use e.g. 30, 23-31 or 0,7,30-31")
    return tuple(sorted(set(out)))
