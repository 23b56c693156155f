"""Protection plans: which (weight, bit) pairs are stored three times, and what that costs.

A plan protects the bit positions ``bits`` of the weights ``weights`` (``None`` = every weight) with
TMR, or, for bit-aware plans (``damage``), its own set of bit positions per protected weight (``masks``).
``ecc`` stores no copies but a SEC-DED code (``xtmr_core.ecc``; its ``read_path`` says so). The range guard
costs no copies: a weight read outside its layer's clean range, or non-finite, is replaced by 0; it can be
added to any plan (``guard``, labelled ``+range``).

Plans are built by name through builders registered with ``@register_builder(name)`` (``BUILDERS``), the
building half of the plan registry (``plan_registry`` describes each plan); a builder reads what it needs
from a ``PlanRequest``, whose scores and harms are computed only when a builder asks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from xtmr_core import ecc
from xtmr_core.errors import XtmrError
from xtmr_core.format_registry import format_info
from xtmr_core.plan_registry import plan_info
from xtmr_core.vocabulary import ECC_DOUBLE, PLANS, check_budget, check_positions, parse_bits
from xtmr_core.vocabulary import SCORERS as SCORER_PLANS

if TYPE_CHECKING:
    from xtmr_core.spec import CampaignSpec

__all__ = ["PLANS", "SCORER_PLANS", "ECC_DOUBLE", "ProtectionPlan", "Overhead", "overhead", "top_weights"]
__all__ += ["PlanRequest", "Builder", "BUILDERS", "register_builder", "build_plan", "spec_plan", "make_plan"]
__all__ += ["check_budget", "parse_bits"]  # PLANS ... parse_bits: re-exported from the vocabulary

#: How a plan's words are read back (``injection``): ``tmr`` votes the copies of the protected bits (no
#: copies: the primary alone), ``ecc`` decodes SEC-DED words. A plan with a new way of reading is the one
#: kind that needs ``injection`` changed as well.
READ_PATHS: tuple[str, ...] = ("tmr", "ecc")


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
        title: the label's name part as its builder words it (``full TMR``, ``bits 30``); ``""`` = the plan's
            kind, with its budget where it has one (``lrp 1%``).
        read_path: how its words are read back (``READ_PATHS``): ``tmr`` or ``ecc``.
    """

    protect: str
    weights: np.ndarray | None
    bits: tuple[int, ...]
    guard: bool = False
    budget: float | None = None
    masks: np.ndarray | None = None
    on_double: str = "zero"
    detail: str = ""
    title: str = ""
    read_path: str = "tmr"

    def __post_init__(self) -> None:
        if self.read_path not in READ_PATHS:  # injection has no way to read it: fail where the plan is built
            raise ValueError(f"unknown read path {self.read_path!r}: injection reads {', '.join(READ_PATHS)}")

    @property
    def label(self) -> str:
        """A short human name, e.g. ``lrp 1%``, ``bits 30``, ``ecc`` or ``lrp 1% +range``."""
        name = self.title or (self.protect if self.budget is None else f"{self.protect} {self.budget:g}%")
        if self.detail:
            name += f" ({self.detail})"
        # the range plan is the guard itself: it says so once
        return name + " +range" if self.guard and self.protect != "range" else name

    @property
    def ecc(self) -> bool:
        """Whether the plan stores a SEC-DED code instead of copies (``read_path`` ``ecc``)."""
        return self.read_path == "ecc"

    def protected_weights(self, n_weights: int) -> int:
        """How many weights have at least one protected bit (``ecc``: every weight)."""
        if self.ecc:
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
    copies = ecc.CHECK_BITS * ecc.n_code_words(n_weights, word_bits) if plan.ecc else 2 * pbits
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


@dataclass(frozen=True)
class PlanRequest:
    """What a builder may read to build one plan.

    Attributes:
        protect: the plan's name (a key of ``plan_registry.PLAN_INFO`` and of ``BUILDERS``).
        word_bits: bits per stored weight.
        budget: the plan's budget in its unit (``PlanInfo.budget_unit``).
        bits: protected bit positions (``bits``), or ``None``.
        offsets: layer boundaries to rank within each layer; ``None`` = one global ranking.
        on_double: ``ecc``: what a word with a detected error reads as (``ECC_DOUBLE``).
        scorer, harm: ``damage``: the weight scorer and the harm of a flip (``vocabulary.HARMS``).
        score_fn: per-weight scores of a scorer, computed when asked (``scores``); ``None`` = none at hand.
        harm_fn: the log2 harm of a flip at each (weight, bit), computed when asked (``harms``).
        n_weights: the model's number of faultable weights, where known (``spec_plan`` knows it).
    """

    protect: str
    word_bits: int
    budget: float = 1.0
    bits: tuple[int, ...] | None = None
    offsets: np.ndarray | None = None
    on_double: str = "zero"
    scorer: str = "lrp"
    harm: str = "delta"
    score_fn: Callable[[str], np.ndarray] | None = None
    harm_fn: Callable[[], np.ndarray] | None = None
    n_weights: int | None = None

    def scores(self, scorer: str | None = None) -> np.ndarray:
        """Flat per-weight scores of ``scorer`` (default: the scorer named like the plan)."""
        if self.score_fn is None:
            raise ValueError(f"protect={self.protect} needs scores")
        return self.score_fn(self.protect if scorer is None else scorer)

    def harms(self) -> np.ndarray:
        """The log2 harm of a flip at each (weight, bit) (``damage``)."""
        if self.harm_fn is None:
            raise ValueError(f"protect={self.protect} needs harms (damage.delta_harm or scan_harm)")
        return self.harm_fn()

    @property
    def every_bit(self) -> tuple[int, ...]:
        """Every bit position of a word."""
        return tuple(range(self.word_bits))


#: A builder: the plan a request asks for, without the range guard (``build_plan`` adds it).
Builder = Callable[[PlanRequest], ProtectionPlan]
#: The builders by plan name (the building half of the plan registry).
BUILDERS: dict[str, Builder] = {}


def register_builder(name: str) -> Callable[[Builder], Builder]:
    """Register the decorated function as the builder of plan ``name`` (which ``plan_registry`` describes)."""

    def register(builder: Builder) -> Builder:
        BUILDERS[name] = builder
        return builder

    return register


def build_plan(request: PlanRequest, guard: bool = False) -> ProtectionPlan:
    """The plan ``request`` asks for, by its registered builder, with the range guard if ``guard``.

    Raises:
        XtmrError: a plan name the registry does not know, or one without a builder.
    """
    plan_info(request.protect)
    builder = BUILDERS.get(request.protect)
    if builder is None:
        raise XtmrError(f"plan {request.protect!r} has no builder: register one with protection.register_builder")
    plan = builder(request)
    return replace(plan, guard=True) if guard and not plan.guard else plan


def spec_plan(
    spec: CampaignSpec,
    *,
    scores: Callable[[str], np.ndarray] | None = None,
    harm: Callable[[], np.ndarray] | None = None,
    offsets: np.ndarray | None = None,
) -> ProtectionPlan:
    """The protection plan of ``spec`` (``Experiment.plan`` hands over the model's scores, harms and layers).

    Args:
        spec: the campaign (its plan fields).
        scores: per-weight scores of a scorer, computed only if the plan's builder asks.
        harm: the (weight, bit) harms of ``spec.fmt`` and ``spec.harm``, computed only if asked.
        offsets: the layer boundaries (ranking per layer when ``spec.per_layer``; their last is the weight
            count a builder may read as ``n_weights``).
    """
    request = PlanRequest(
        spec.protect,
        format_info(spec.fmt).bits,
        budget=spec.budget,
        bits=spec.bits,
        offsets=offsets if spec.per_layer else None,
        on_double=spec.ecc_double,
        scorer=spec.scorer,
        harm=spec.harm,
        score_fn=scores,
        harm_fn=harm,
        n_weights=None if offsets is None else int(offsets[-1]),  # the layout's last boundary
    )
    return build_plan(request, guard=spec.guard)


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
    """Build a protection plan from numbers at hand (``spec_plan`` builds one from a ``CampaignSpec``).

    Args:
        protect: a plan name (``plan_registry.PLAN_INFO``).
        word_bits: bits per stored weight in the chosen format.
        budget: percent of weights to protect, for the scorer plans.
        scores: flat per-weight scores (layout order), for the scorer plans.
        bits: protected bit positions, for ``bits``.
        offsets: layer boundaries to rank per layer (``None`` = globally).
        guard: add the range guard on read (``+range``; it costs no copies).
        on_double: for ``ecc``: what a word with a detected error reads as (``ECC_DOUBLE``).

    Returns:
        The ``ProtectionPlan``. (``damage`` plans need harms: ``spec_plan`` or ``damage.damage_plan``.)
    """
    given = scores
    request = PlanRequest(
        protect,
        word_bits,
        budget=budget,
        bits=bits,
        offsets=offsets,
        on_double=on_double,
        score_fn=None if given is None else lambda _scorer: given,
    )
    return build_plan(request, guard=guard)


@register_builder("none")
def _none(r: PlanRequest) -> ProtectionPlan:
    return ProtectionPlan("none", None, (), title="no protection")


@register_builder("full")
def _full(r: PlanRequest) -> ProtectionPlan:
    return ProtectionPlan("full", None, r.every_bit, title="full TMR")


@register_builder("range")
def _range(r: PlanRequest) -> ProtectionPlan:
    return ProtectionPlan("range", None, (), guard=True, title="range guard")


@register_builder("bits")
def _bits(r: PlanRequest) -> ProtectionPlan:
    bits = check_positions(r.bits or (), r.word_bits)
    return ProtectionPlan("bits", None, bits, title="bits " + ",".join(str(b) for b in bits))


def _scorer_plan(r: PlanRequest) -> ProtectionPlan:
    """Every bit of the top ``budget`` % weights by the plan's scorer."""
    budget = check_budget(r.budget)
    return ProtectionPlan(r.protect, top_weights(r.scores(), budget, r.offsets), r.every_bit, budget=budget)


for _scorer in SCORER_PLANS:
    register_builder(_scorer)(_scorer_plan)


@register_builder("ecc")
def _ecc(r: PlanRequest) -> ProtectionPlan:
    if r.on_double not in ECC_DOUBLE:
        raise XtmrError(f"unknown ECC double-error policy {r.on_double!r}: choose one of {', '.join(ECC_DOUBLE)}")
    ecc.weights_per_word(r.word_bits)
    title = "ecc" if r.on_double == "zero" else "ecc (DED read)"
    return ProtectionPlan("ecc", None, (), on_double=r.on_double, title=title, read_path="ecc")


@register_builder("damage")
def _damage(r: PlanRequest) -> ProtectionPlan:
    from xtmr_core.damage import damage_plan  # damage builds on this module's ProtectionPlan: import when used

    detail = ", ".join(v for v, default in ((r.scorer, "lrp"), (r.harm, "delta")) if v != default)
    return damage_plan(r.scores(r.scorer), r.harms(), r.budget, r.word_bits, detail=detail)
