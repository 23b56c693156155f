"""The fault model and exact sampling of faulty stored bits.

Every stored bit fails independently with probability ``ber``. A trial over ``n`` bits therefore has
``k ~ Binomial(n, ber)`` faulty bits at ``k`` distinct, uniformly placed positions: ``k`` is drawn first,
then the positions, so the cost grows with ``k`` and not with ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xtmr_core.memory import WeightLayout
from xtmr_core.vocabulary import MODES, check_ber, check_choice, check_positions

#: The copy number of ECC check bits (0 is the primary copy, 1 and 2 TMR's extra copies).
CHECK_COPY = 3


@dataclass(frozen=True)
class FaultModel:
    """What fails, and how often.

    Attributes:
        ber: bit error rate, the probability that one stored bit is faulty, in [0, 1].
        mode: ``flip`` (bit inverted), ``stuck0`` or ``stuck1`` (bit reads as 0 / 1).
        bits: the bit positions that can fail (``None`` = every position).
    """

    ber: float
    mode: str = "flip"
    bits: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_ber(self.ber)
        check_choice("fault mode", self.mode, MODES)

    def positions(self, word_bits: int) -> np.ndarray:
        """The bit positions that can fail in a word of ``word_bits`` bits."""
        if self.bits is None:
            return np.arange(word_bits, dtype=np.int64)
        return np.array(check_positions(self.bits, word_bits, "fault bit position"), dtype=np.int64)


@dataclass(frozen=True)
class Region:
    """A block of stored bits: some words, some bit positions of each, in one copy.

    Attributes:
        weights: flat weight indices of the words (``None`` = all ``n_words`` weights, in order).
        bits: the bit positions of each word that belong to the block.
        copy: 0 for the primary copy, 1 and 2 for TMR's extra copies, ``CHECK_COPY`` for ECC check bits
            (then ``weights`` holds the first weight of each 64-bit data word and ``bits`` the check bits).
        n_words: number of words (for a ``paired`` region: number of bits).
        paired: the block lists its bits one by one, bit ``i`` being bit ``bits[i]`` of weight
            ``weights[i]`` (a different set of bit positions per weight, as bit-aware plans protect).
    """

    weights: np.ndarray | None
    bits: np.ndarray
    copy: int
    n_words: int
    paired: bool = False

    @property
    def size(self) -> int:
        """Number of stored bits in the block."""
        return self.n_words if self.paired else self.n_words * len(self.bits)

    def locate(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(weight, bit)`` of the block's stored bits numbered ``local`` (0 .. ``size`` - 1)."""
        if self.paired:
            assert self.weights is not None, "a paired region lists its weights"
            return self.weights[local], self.bits[local]
        nb = len(self.bits)
        word = local // nb
        return (word if self.weights is None else self.weights[word]), self.bits[local % nb]


@dataclass(frozen=True)
class FaultSet:
    """The faulty stored bits of one trial, one entry per bit.

    Attributes:
        weight: flat weight index. bit: bit position. copy: 0 primary, 1/2 TMR copies, ``CHECK_COPY`` an
            ECC check bit (``weight`` is then the first weight of its 64-bit word, ``bit`` the check bit).
    """

    weight: np.ndarray
    bit: np.ndarray
    copy: np.ndarray

    @property
    def count(self) -> int:
        """Number of faulty bits."""
        return int(self.weight.size)

    def to_frame(self, layout: WeightLayout) -> pd.DataFrame:
        """The fault list as a table: layer, index inside the layer's tensor, bit, copy."""
        layer = layout.layer_of(self.weight)
        rows = {
            "layer": [layout.names[i] for i in layer],
            "flat_index": self.weight,
            "index": [
                str(tuple(int(v) for v in np.unravel_index(int(w - layout.offsets[li]), layout.shapes[li])))
                for w, li in zip(self.weight, layer)
            ],
            "bit": self.bit,
            "copy": self.copy,
        }
        return pd.DataFrame(rows).sort_values(["flat_index", "copy", "bit"]).reset_index(drop=True)


def sample_positions(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Sample the faulty positions among ``n`` bits that each fail with probability ``p``.

    Args:
        n: number of bits.
        p: per-bit failure probability.
        rng: the random generator (seeded by the caller).

    Returns:
        Sorted int64 array of ``k ~ Binomial(n, p)`` distinct positions in ``[0, n)``.
    """
    if n <= 0 or p <= 0.0:
        return np.zeros(0, dtype=np.int64)
    k = int(rng.binomial(n, p))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    # Generator.choice without replacement uses a set-based (Floyd) draw for k << n: O(k), not O(n).
    return np.sort(rng.choice(n, size=k, replace=False, shuffle=False).astype(np.int64))


def sample_faults(regions: list[Region], p: float, rng: np.random.Generator) -> FaultSet:
    """Sample one trial's faulty bits in each of ``regions``.

    Each region draws from its own stream, spawned from ``rng`` by copy number, so the primary copy's
    faults do not depend on how many TMR copies a plan adds: every plan of a campaign sees the same
    primary faults, and plans differ only by what they protect (common random numbers). Drawing the
    regions separately is exact: disjoint blocks of independent bits.

    Args:
        regions: the stored bit blocks (primary weights, TMR copies), at most one per copy number.
        p: bit error rate.
        rng: the trial's random generator (a fresh one per trial; only its spawned children are used).

    Returns:
        The ``FaultSet``: every faulty bit with its weight, bit position and copy.
    """
    copies = [r.copy for r in regions]
    if len(set(copies)) != len(copies):
        raise ValueError("at most one region per copy number")
    streams = rng.spawn(max(copies, default=0) + 1)
    weight, bit, copy = [], [], []
    for region in regions:
        local = sample_positions(region.size, p, streams[region.copy])
        w, b = region.locate(local)
        weight.append(w)
        bit.append(b)
        copy.append(np.full(local.size, region.copy, dtype=np.int8))
    if not regions:
        return FaultSet(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8))
    return FaultSet(np.concatenate(weight).astype(np.int64), np.concatenate(bit).astype(np.int64), np.concatenate(copy))
