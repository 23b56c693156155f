"""Stratified trials for rare catastrophes: sample where the plans of a point differ, weigh by exact law.

In fp32 one fault on a *deciding* bit (a flip that blows a weight up, e.g. exponent bit 30) can wreck a
network, and at a low BER such a fault reaches only a few trials in a hundred. Plain Monte Carlo then
either misses it (a mean that looks clean, a paired difference of exactly 0 with a zero-width interval)
or sees one or two (a wide interval). Which stored bits decide is known before any trial runs, and so is
the exact probability of a fault among them. This module turns that into a sampling design:

* **Deciding pairs** (``deciding_pairs``): the (weight, bit) pairs of the primary copy where a fault of the
  point's mode reads a value that is non-finite or more than ``DECIDING_FACTOR`` times the largest clean
  magnitude of the weight's layer, upwards. Taken from the format's encoding, exact per weight: in fp32
  that is bit 30 of every positive weight (x 2^128) and of every weight of magnitude 1 or more (inf/NaN);
  in int8 no fault can leave ``[-128, 127] x scale``, so there are none and int8 stays plain.
* **Two rare regions**: the deciding pairs that some plan of the point protects (``differ``: a paired
  difference exists only in a trial with a fault here) and those no plan protects (``shared``: they
  decide the plans' means alike). Each region's fault count ``K`` is exactly ``Binomial(size, ber)``,
  independent of every other stored bit.
* **Strata** over the two counts (``0`` or ``>= 1`` each; a region is split only where that is rare
  enough to pay, see ``make_strata``), each with its exact probability as weight. A trial of a stratum
  draws each region's ``K`` from its conditional law, places the faults uniformly in the region, and
  samples every other stored bit (other primary bits, TMR copies, ECC check bits) as usual. The estimate
  ``sum_s w_s mean_s`` is unbiased for any allocation fixed in advance.
* **Allocation by value, not probability**: every stratum gets two trials first (round robin, so a spread
  can be estimated as soon as possible), then trials go to the strata in fixed shares: the mean of two
  Neyman allocations (``n_s`` proportional to ``w_s sigma_s``), one for the plans' means (prior spread
  ``SPREAD_RARE`` where a rare fault fell, ``SPREAD_CALM`` elsewhere) and one for the paired differences
  (spread only where a ``differ`` fault fell). At lenet5 fp32, BER 1e-5 a ``differ`` stratum of
  probability 0.6% gets about a quarter of the trials.
* **Replayable**: trial ``t``'s stratum is ``Strata.stratum_of(t)``, a fixed sequence of the design alone
  (never of the trial count), and its faults come from ``(seed, t)``: a stored trial stays valid for any
  later trial count. Pairing is kept: every plan of the point draws the same primary faults in trial ``t``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import stats as _st  # type: ignore[import-untyped]  # scipy's hints (scipy-stubs) are not in the lock

from xtmr_core.faults import FaultModel, FaultSet, Region, sample_positions
from xtmr_core.formats import StoredWeights
from xtmr_core.memory import WeightLayout
from xtmr_core.protection import ProtectionPlan

#: A fault decides when the value read exceeds this many times the layer's largest clean magnitude
#: (or is not finite): far outside anything the layer was trained with.
DECIDING_FACTOR = 16.0
#: Split on the ``differ`` region only while a fault there is rare, ``P(K >= 1) <= SPLIT_DIFFER``.
SPLIT_DIFFER = 0.5
#: Split on the ``shared`` region only while a trial without a fault there is common enough to matter.
MIN_CLEAN_SHARE = 0.01
#: Trials each stratum gets before any gets a third (the least that estimates a spread).
FIRST_ROUNDS = 2
#: Prior spreads of a trial's accuracy (for the allocation only; any allocation fixed in advance is
#: unbiased): a stratum with a rare fault is a coin between wrecked and fine (0.5), one without barely
#: varies (0.05).
SPREAD_RARE, SPREAD_CALM = 0.5, 0.05
#: The names of the rare regions, in the order strata list their counts.
REGIONS = ("differ", "shared")


def deciding_pairs(stored: StoredWeights, layout: WeightLayout, fault: FaultModel) -> tuple[np.ndarray, np.ndarray]:
    """The (weight, bit) pairs of the primary copy where one fault of ``fault.mode`` decides.

    A fault decides when the value read back is non-finite or ``v' > DECIDING_FACTOR * max |layer|``: blown up
    *upwards*. A weight blown up negative mostly silences its neuron behind a ReLU (on lenet5, fp32 bit 30:
    0 of 137 such single flips took accuracy below 50%, against 142 of 163 positive ones), so it is
    sampled with the other bits; which pairs are called deciding changes only the variance, never the mean.
    Only bit positions that can fail (``fault.bits``) are considered; ``stuck0``/``stuck1`` faults on a bit
    that already holds that value change nothing and never decide.

    Returns:
        ``(weights, bits)``: int64 arrays, sorted by weight then bit.
    """
    wb = stored.bits
    full = (1 << wb) - 1
    unsigned = stored.unsigned
    words = stored.words.astype(np.int64) & full
    clean = np.abs(stored.values().astype(np.float64))
    starts = layout.offsets[:-1]
    layer_max = np.maximum.reduceat(clean, starts) if clean.size else np.zeros(0)
    limit = DECIDING_FACTOR * layer_max[layout.layer_of(np.arange(clean.size))]
    hits = []
    for b in fault.positions(wb):
        mask = 1 << int(b)
        if fault.mode == "flip":
            faulty, changed = words ^ mask, np.ones(words.size, dtype=bool)
        elif fault.mode == "stuck1":
            faulty, changed = words | mask, (words & mask) == 0
        else:
            faulty, changed = words & ~mask, (words & mask) != 0
        # a float32 signalling NaN (a flip into an all-ones exponent) raises "invalid" when widened: it is
        # exactly the non-finite value looked for here
        with np.errstate(invalid="ignore", over="ignore"):
            value = stored.decode(faulty.astype(unsigned).view(stored.words.dtype)).astype(np.float64)
            bad = changed & (~np.isfinite(value) | (value > limit))
        hits.append(np.flatnonzero(bad) * wb + int(b))
    keys = np.sort(np.concatenate(hits)) if hits else np.zeros(0, dtype=np.int64)
    return (keys // wb).astype(np.int64), (keys % wb).astype(np.int64)


def protects(plan: ProtectionPlan, weights: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Whether ``plan`` changes what a fault at each (weight, bit) pair reads: TMR on that bit, ECC on every
    word, or the range guard (a deciding value always lies outside its layer's range)."""
    if plan.ecc or plan.guard:
        return np.ones(weights.size, dtype=bool)
    hit: np.ndarray = ((plan.mask_of(weights) >> bits) & 1).astype(bool)
    return hit


@dataclass(frozen=True)
class Stratum:
    """One stratum: a count range per rare region and its exact probability.

    Attributes:
        counts: per region of ``REGIONS``, ``(lo, hi)`` with ``hi = None`` for no upper bound.
        weight: the exact probability of the stratum.
        share: its long-run share of trials (relative).
    """

    counts: tuple[tuple[int, int | None], ...]
    weight: float
    share: float

    @property
    def rare(self) -> bool:
        """Whether the stratum holds a fault in a rare region (its trials are few of their kind)."""
        return any(lo > 0 for lo, _ in self.counts)

    @property
    def label(self) -> str:
        """e.g. ``differ=0, shared>=1``; a region without bounds is left out."""
        parts = []
        for name, (lo, hi) in zip(REGIONS, self.counts):
            if hi is None and lo == 0:
                continue
            parts.append(f"{name}={lo}" if hi == lo else f"{name}>={lo}" if hi is None else f"{name} {lo}..{hi}")
        return ", ".join(parts) or "all"


@dataclass(frozen=True)
class Strata:
    """The sampling design of one stratified grid point.

    Attributes:
        ber: the bit error rate.
        word_bits: bits per stored word.
        regions: per region of ``REGIONS``, its ``(weights, bits)`` pairs.
        strata: the strata, with their exact weights (they sum to 1).
    """

    ber: float
    word_bits: int
    regions: tuple[tuple[np.ndarray, np.ndarray], ...]
    strata: tuple[Stratum, ...]
    _schedule: list[int] = field(default_factory=list, compare=False, repr=False)

    @property
    def weights(self) -> tuple[float, ...]:
        """The strata's exact probabilities."""
        return tuple(s.weight for s in self.strata)

    @property
    def rare(self) -> tuple[bool, ...]:
        """Per stratum: whether it holds a rare fault (``stats`` bounds what such a stratum may hide)."""
        return tuple(s.rare for s in self.strata)

    @property
    def differs(self) -> tuple[bool, ...]:
        """Per stratum: whether it holds a fault in the ``differ`` region, the only place where paired plans
        can differ by more than a non-deciding fault does (the rare strata of a paired difference)."""
        return tuple(s.counts[0][0] > 0 for s in self.strata)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Stored bits per rare region."""
        return tuple(int(w.size) for w, _ in self.regions)

    @property
    def min_trials(self) -> int:
        """Trials before every stratum has two (fewer cannot estimate every spread)."""
        return FIRST_ROUNDS * len(self.strata)

    def stratum_of(self, t: int) -> int:
        """The stratum of trial ``t``: a fixed sequence of the design, independent of the trial count."""
        while len(self._schedule) <= t:
            self._schedule.append(self._next(len(self._schedule)))
        return self._schedule[t]

    def schedule(self, n: int) -> tuple[int, ...]:
        """The strata of trials ``0 .. n-1``."""
        if n > 0:
            self.stratum_of(n - 1)
        return tuple(self._schedule[:n])

    def _next(self, t: int) -> int:
        s = len(self.strata)
        if t < FIRST_ROUNDS * s:
            return t % s
        share = np.array([st.share for st in self.strata], dtype=np.float64)
        target = share / share.sum() * (t + 1)
        done = np.bincount(np.asarray(self._schedule[:t], dtype=np.int64), minlength=s)
        return int(np.argmax(target - done))

    def allocation(self, n: int) -> tuple[int, ...]:
        """Trials per stratum among the first ``n``."""
        return tuple(
            int(c) for c in np.bincount(np.asarray(self.schedule(n), dtype=np.int64), minlength=len(self.strata))
        )

    def key(self) -> str:
        """A fingerprint of the design (regions, BER, strata): equal keys give equal trials for equal seeds."""
        h = hashlib.sha256(f"{self.ber!r}|{self.word_bits}".encode())
        for w, b in self.regions:
            h.update(np.asarray(w, dtype=np.int64).tobytes())
            h.update(np.asarray(b, dtype=np.int64).tobytes())
            h.update(b"|")
        h.update(repr([(s.counts, s.share) for s in self.strata]).encode())
        return h.hexdigest()[:16]

    def describe(self, n: int | None = None) -> list[dict[str, object]]:
        """The strata as rows for JSON and CSV: label, exact weight, and trials among the first ``n``."""
        alloc = self.allocation(n) if n is not None else (None,) * len(self.strata)
        return [{"stratum": s.label, "weight": s.weight, "trials": a} for s, a in zip(self.strata, alloc)]

    @cached_property
    def _rare_keys(self) -> np.ndarray:
        """Every rare pair as ``weight * word_bits + bit``, sorted (built once per design, not per trial)."""
        return np.sort(np.concatenate([w * self.word_bits + b for w, b in self.regions]))

    def is_rare(self, keys: np.ndarray) -> np.ndarray:
        """Whether each ``weight * word_bits + bit`` key is a pair of a rare region."""
        at = np.searchsorted(self._rare_keys, keys)
        hit = at < self._rare_keys.size
        hit[hit] = self._rare_keys[at[hit]] == keys[hit]
        return hit

    def text(self, n: int) -> str:
        """The strata as one CSV cell, ``label:weight:trials`` joined by ``; `` (``parse_text`` reads it)."""
        return "; ".join(f"{d['stratum']}:{d['weight']!r}:{d['trials']}" for d in self.describe(n))

    def draw_count(self, region: int, stratum: int, rng: np.random.Generator) -> int:
        """``K`` of a region for a trial of ``stratum``: from ``Binomial(size, ber)`` conditioned on the
        stratum's range (exact; the tail is enumerated, never rounded away)."""
        n, p = self.sizes[region], self.ber
        lo, hi = self.strata[stratum].counts[region]
        if lo == 0 and hi is None:
            return int(rng.binomial(n, p)) if n else 0
        if hi is not None and hi == lo:
            return lo
        mean = n * p
        top = min(n, (hi if hi is not None else lo + int(math.ceil(mean + 12.0 * math.sqrt(mean + 1.0) + 30))))
        ks = np.arange(lo, top + 1)
        pmf = _st.binom.pmf(ks, n, p)
        return int(rng.choice(ks, p=pmf / pmf.sum()))


def parse_text(text: str) -> tuple[tuple[float, ...], tuple[bool, ...]] | None:
    """The weights and ``differs`` flags of the strata written by ``Strata.text`` (``None`` for ``""``)."""
    if not isinstance(text, str) or not text.strip():
        return None
    cells = [part.rsplit(":", 2) for part in text.split("; ")]
    return tuple(float(w) for _, w, _ in cells), tuple(label.startswith("differ>=") for label, _, _ in cells)


def _law(n: int, p: float, lo: int, hi: int | None) -> float:
    """``P(lo <= K <= hi)`` for ``K ~ Binomial(n, p)``, accurate for tiny probabilities."""
    upper = 1.0 if hi is None else float(_st.binom.cdf(hi, n, p))
    if hi is None:
        return float(_st.binom.sf(lo - 1, n, p)) if lo > 0 else 1.0
    return upper - (float(_st.binom.cdf(lo - 1, n, p)) if lo > 0 else 0.0)


def make_strata(
    stored: StoredWeights,
    layout: WeightLayout,
    plans: list[ProtectionPlan],
    fault: FaultModel,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> Strata | None:
    """The stratified design of a point, or ``None`` where it would not pay (plain Monte Carlo then).

    The ``differ`` region is split (``0`` / ``>= 1`` faults) when it is non-empty and a fault there is rare
    (``P(K >= 1) <= SPLIT_DIFFER``); the ``shared`` region when it is non-empty and a trial without a fault
    there is common enough (``P(K = 0) >= MIN_CLEAN_SHARE``). With both split the strata are
    ``differ=0, shared=0`` / ``differ=0, shared>=1`` / ``differ>=1, shared=0`` / ``differ>=1, shared>=1``.

    Args:
        stored, layout: the point's stored weights and their layout (the injector's).
        plans: every plan of the point (the baseline included).
        fault: the fault model.
        pairs: ``deciding_pairs(stored, layout, fault)`` when the caller already has them (they depend on the
            stored words and the fault's mode and bits, not on the plans or the BER).
    """
    p = float(fault.ber)
    if p <= 0.0:
        return None
    weights, bits = deciding_pairs(stored, layout, fault) if pairs is None else pairs
    if weights.size == 0:
        return None
    prot = np.zeros(weights.size, dtype=bool)
    for plan in plans:
        prot |= protects(plan, weights, bits)
    regions = ((weights[prot], bits[prot]), (weights[~prot], bits[~prot]))
    n_differ, n_shared = (int(w.size) for w, _ in regions)
    split = (
        n_differ > 0 and _law(n_differ, p, 1, None) <= SPLIT_DIFFER,
        n_shared > 0 and _law(n_shared, p, 0, 0) >= MIN_CLEAN_SHARE,
    )
    if not any(split):
        return None
    levels = [((0, 0), (1, None)) if s else ((0, None),) for s in split]
    counts = [(a, b) for a in levels[0] for b in levels[1]]
    w = np.array([_law(n_differ, p, *a) * _law(n_shared, p, *b) for a, b in counts])
    sizes = (n_differ, n_shared)
    # a stratum may hold a rare fault where it asks for one, or leaves a non-empty region unsplit
    wild = [any(lo > 0 or (hi is None and n > 0) for (lo, hi), n in zip(c, sizes)) for c in counts]
    mean_value = w * np.where(wild, SPREAD_RARE, SPREAD_CALM)
    diff_value = w * np.array([SPREAD_RARE if a[0] else 0.0 for a, _ in counts])
    share = mean_value / mean_value.sum()
    if diff_value.sum() > 0:
        share = (share + diff_value / diff_value.sum()) / 2
    strata = tuple(Stratum(c, float(wi), float(si)) for c, wi, si in zip(counts, w, share))
    return Strata(p, stored.bits, regions, strata)


def stratified_faults(
    regions: list[Region], fault: FaultModel, strata: Strata, stratum: int, rng: np.random.Generator
) -> FaultSet:
    """One trial's faults conditional on its stratum.

    Args:
        regions: the injector's stored bit blocks for the plan (``FaultInjector.regions``): the primary
            copy first (every weight), then any TMR copies or ECC check bits.
        fault: the fault model. strata: the design. stratum: this trial's stratum.
        rng: the trial's generator (``injection.trial_rng(seed, t)``); streams are spawned by role, so the
            primary faults do not depend on the plan (pairing).

    Returns:
        The ``FaultSet``.
    """
    p = float(fault.ber)
    # streams: 0 other primary bits, 1/2 TMR copies, 3 ECC check bits, 4 + r rare region r
    streams = rng.spawn(4 + len(strata.regions))
    wb = strata.word_bits
    weight, bit, copy = [], [], []
    for r, (rw, rb) in enumerate(strata.regions):
        k = strata.draw_count(r, stratum, streams[4 + r])
        if k:
            local = np.sort(streams[4 + r].choice(rw.size, size=k, replace=False))
            weight.append(rw[local])
            bit.append(rb[local])
            copy.append(np.zeros(k, dtype=np.int8))
    primary = regions[0]
    local = sample_positions(primary.size, p, streams[0])
    w, b = primary.locate(local)
    keep = ~strata.is_rare(np.asarray(w, dtype=np.int64) * wb + b)
    weight.append(np.asarray(w)[keep])
    bit.append(np.asarray(b)[keep])
    copy.append(np.zeros(int(keep.sum()), dtype=np.int8))
    for region in regions[1:]:
        local = sample_positions(region.size, p, streams[region.copy])
        w, b = region.locate(local)
        weight.append(w)
        bit.append(b)
        copy.append(np.full(local.size, region.copy, dtype=np.int8))
    return FaultSet(np.concatenate(weight).astype(np.int64), np.concatenate(bit).astype(np.int64), np.concatenate(copy))
