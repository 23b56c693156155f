"""Protection plans: which (weight, bit) pairs are stored three times, and what that costs.

A plan protects the bit positions ``bits`` of the weights ``weights`` (``None`` = every weight) with
TMR, or, for bit-aware plans (``damage``), its own set of bit positions per protected weight (``masks``).
``ecc`` stores no copies but a SEC-DED code (``xtmr_core.ecc``). The range guard costs no copies: a weight
read outside its layer's clean range, or non-finite, is replaced by 0; it can be added to any plan
(``guard``, labelled ``+range``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from xtmr_core import ecc
from xtmr_core.errors import XtmrError
from xtmr_core.vocabulary import ECC_DOUBLE, PLANS, check_budget, check_positions, parse_bits
from xtmr_core.vocabulary import SCORERS as SCORER_PLANS

__all__ = ["PLANS", "SCORER_PLANS", "ECC_DOUBLE", "ProtectionPlan", "Overhead", "overhead", "top_weights"]
__all__ += ["make_plan", "check_budget", "parse_bits"]  # PLANS ... parse_bits: re-exported from the vocabulary


@dataclass(frozen=True)
class ProtectionPlan:
    """One protection plan.

    Attributes:
        protect: the plan's kind (one of ``PLANS``).
        weights: sorted flat indices of the protected weights; ``None`` = every weight.
        bits: the protected bit positions of each protected weight (empty = no TMR).
        guard: whether the range guard is applied on read.
        budget: the percentage of weights chosen by a scorer (selective plans), the % extra memory of a
            ``damage`` plan, else ``None``.
        masks: for bit-aware plans, the protected bit positions of each protected weight as an int64 bit
            mask aligned with ``weights`` (``bits`` then lists every position that occurs); ``None`` = the
            same ``bits`` for every protected weight.
        on_double: ``ecc`` only: what a word with a detected (uncorrectable) error reads as, ``zero`` (its
            weights read 0) or ``read`` (its weights read as stored, uncorrected).
        detail: a qualifier shown in the label (e.g. a ``damage`` plan's scorer and harm), or ``""``.
    """

    protect: str
    weights: np.ndarray | None
    bits: tuple[int, ...]
    guard: bool = False
    budget: float | None = None
    masks: np.ndarray | None = None
    on_double: str = "zero"
    detail: str = ""

    @property
    def label(self) -> str:
        """A short human name, e.g. ``lrp 1%``, ``bits 30``, ``ecc`` or ``lrp 1% +range``."""
        if self.protect in SCORER_PLANS or self.protect == "damage":
            name = f"{self.protect} {self.budget:g}%"
        elif self.protect == "bits":
            name = "bits " + ",".join(str(b) for b in self.bits)
        elif self.protect == "ecc":
            name = "ecc" if self.on_double == "zero" else "ecc (DED read)"
        else:
            name = {"none": "no protection", "full": "full TMR", "range": "range guard"}[self.protect]
        if self.detail:
            name += f" ({self.detail})"
        return name + " +range" if self.guard and self.protect != "range" else name

    def protected_weights(self, n_weights: int) -> int:
        """How many weights have at least one protected bit (``ecc``: every weight)."""
        if self.protect == "ecc":
            return n_weights
        if not self.bits:
            return 0
        return n_weights if self.weights is None else int(self.weights.size)

    def protected_bits(self, n_weights: int) -> int:
        """How many stored bits are triplicated (``ecc``: 0, it stores check bits, no copies)."""
        if self.masks is not None:
            return int(self.pairs[1].size)
        return self.protected_weights(n_weights) * len(self.bits)

    def bit_mask(self) -> int:
        """The protected bit positions as one integer mask."""
        return sum(1 << b for b in self.bits)

    def mask_of(self, index: np.ndarray) -> np.ndarray:
        """The protected bit mask (int64) of each flat weight index in ``index`` (0 = unprotected)."""
        index = np.asarray(index, dtype=np.int64)
        if not self.bits:
            return np.zeros(index.size, dtype=np.int64)
        if self.weights is None:
            return np.full(index.size, self.bit_mask(), dtype=np.int64)
        at = np.searchsorted(self.weights, index)
        hit = at < self.weights.size
        hit[hit] = self.weights[at[hit]] == index[hit]
        out = np.zeros(index.size, dtype=np.int64)
        out[hit] = self.bit_mask() if self.masks is None else self.masks[at[hit]]
        return out

    @cached_property
    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every protected (weight, bit) pair of a bit-aware plan: ``(weights, bits)``, weight-major, bits
        ascending (computed once per plan)."""
        if self.masks is None or self.weights is None:
            raise ValueError("pairs is for plans with per-weight bit masks")
        bits = np.array(self.bits, dtype=np.int64)
        has = (self.masks[:, None] >> bits[None, :]) & 1 == 1
        rows, cols = np.nonzero(has)
        return self.weights[rows], bits[cols]


@dataclass(frozen=True)
class Overhead:
    """Extra memory of a plan, as % of the weight memory.

    Attributes:
        copies_pct: the two extra copies of the protected bits (the figure the paper quotes); for ``ecc``
            its 8 check bits per 64-bit word (12.5%).
        index_pct: the index saying which weights are protected (a bitmap, or one 32-bit index per
            protected weight, whichever is smaller; 0 when every weight is treated alike). Bit-aware plans
            add which bits: one ``word_bits`` mask of the positions that occur, plus, unless every protected
            weight has the same bits, a mask over those positions per protected weight (or one bitmap over
            all (weight, bit) pairs, if that is smaller). The range guard
            (alone or ``+range``) adds two bounds per layer.
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
    copies = ecc.CHECK_BITS * ecc.n_code_words(n_weights, word_bits) if plan.protect == "ecc" else 2 * pbits
    index = 0
    if plan.weights is not None and plan.bits:
        n_prot = int(plan.weights.size)
        index = min(n_weights, 32 * n_prot)
        if plan.masks is not None and n_prot:
            # Which bit positions occur (one word_bits mask), then, unless every protected weight has the
            # same ones, which of those each protected weight has.
            # A bitmap over every (weight, bit) pair is the alternative when most pairs are protected.
            same = bool(np.all(plan.masks == plan.masks[0]))
            index = min(index + word_bits + (0 if same else len(plan.bits) * n_prot), total)
    if plan.guard:
        index += 2 * word_bits * n_layers
    pct = 100.0 / total if total else 0.0
    return Overhead(copies * pct, index * pct, (copies + index) * pct, plan.protected_weights(n_weights), pbits)


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
    guard: bool = False,
    on_double: str = "zero",
) -> ProtectionPlan:
    """Build a protection plan.

    Args:
        protect: one of ``PLANS``.
        word_bits: bits per stored weight in the chosen format.
        budget: percent of weights to protect, for the scorer plans.
        scores: flat per-weight scores (layout order), for the scorer plans.
        bits: protected bit positions, for ``bits``.
        offsets: layer boundaries to rank per layer (``None`` = globally).
        guard: add the range guard on read (``+range``; it costs no copies).
        on_double: for ``ecc``: what a word with a detected error reads as (``ECC_DOUBLE``).

    Returns:
        The ``ProtectionPlan``. (``damage`` plans are built by ``damage.damage_plan``: they need harms.)
    """
    plan = _make_plan(protect, word_bits, budget=budget, scores=scores, bits=bits, offsets=offsets, on_double=on_double)
    if guard and not plan.guard:
        plan = replace(plan, guard=True)
    return plan


def _make_plan(
    protect: str,
    word_bits: int,
    *,
    budget: float,
    scores: np.ndarray | None,
    bits: tuple[int, ...] | None,
    offsets: np.ndarray | None,
    on_double: str,
) -> ProtectionPlan:
    """``make_plan`` without the guard."""
    every_bit = tuple(range(word_bits))
    if protect == "none":
        return ProtectionPlan("none", None, ())
    if protect == "full":
        return ProtectionPlan("full", None, every_bit)
    if protect == "range":
        return ProtectionPlan("range", None, (), guard=True)
    if protect == "bits":
        return ProtectionPlan("bits", None, check_positions(bits or (), word_bits))
    if protect in SCORER_PLANS:
        if scores is None:
            raise ValueError(f"protect={protect} needs scores")
        budget = check_budget(budget)
        return ProtectionPlan(protect, top_weights(scores, budget, offsets), every_bit, budget=budget)
    if protect == "ecc":
        if on_double not in ECC_DOUBLE:
            raise XtmrError(f"unknown ECC double-error policy {on_double!r}: choose one of {', '.join(ECC_DOUBLE)}")
        ecc.weights_per_word(word_bits)
        return ProtectionPlan("ecc", None, (), on_double=on_double)
    if protect == "damage":
        raise ValueError("protect=damage plans are built by damage.damage_plan (they need scores and harms)")
    raise XtmrError(f"unknown protection {protect!r}: choose one of {', '.join(PLANS)}")
