"""A three-copy majority vote laid out bit by bit, for the app's teaching corner.

One stored word is kept three times; each copy suffers its own bit flips; the voter reads the bitwise
majority (``voting.majority``). ``vote_demo`` returns every copy and the result as bit strings so the
app can show which flips the vote corrects and which it cannot (two copies wrong at the same bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from xtmr_core.errors import XtmrError
from xtmr_core.voting import majority

__all__ = ["VoteDemo", "vote_demo"]

COPY_NAMES = ("copy A", "copy B", "copy C")


@dataclass(frozen=True)
class VoteDemo:
    """The outcome of voting over three faulty copies of one word.

    Attributes:
        n_bits: bits per word.
        clean: the stored word (unsigned bit pattern).
        copies: the three words as read (each with its own flips).
        voted: their bitwise majority.
        wrong_bits: bit positions where ``voted`` differs from ``clean`` (0 = LSB), ascending.
    """

    n_bits: int
    clean: int
    copies: tuple[int, int, int]
    voted: int
    wrong_bits: tuple[int, ...]

    @property
    def corrected(self) -> bool:
        """Whether the vote reads back the clean word."""
        return self.voted == self.clean

    def table(self) -> pd.DataFrame:
        """One row per word (``clean``, the three copies, ``vote``), one column per bit, MSB first.

        Columns are the bit positions ``n_bits-1 … 0`` (ints); cells are 0/1.
        """
        rows = {"clean": self.clean, **dict(zip(COPY_NAMES, self.copies)), "vote": self.voted}
        cols = list(range(self.n_bits - 1, -1, -1))
        return pd.DataFrame([[(w >> b) & 1 for b in cols] for w in rows.values()], index=list(rows), columns=cols)


def vote_demo(word: int, n_bits: int, flips: Sequence[Sequence[int]]) -> VoteDemo:
    """Flip bits in three copies of ``word`` and vote.

    Args:
        word: the stored word (any int; only its low ``n_bits`` bits are used).
        n_bits: bits per word (1..64).
        flips: three sequences of bit positions, the flips of copy A, B and C.

    Returns:
        The ``VoteDemo``.

    Raises:
        XtmrError: not three copies, or a bit position outside ``0..n_bits-1``.
    """
    n_bits = int(n_bits)
    if not 1 <= n_bits <= 64:
        raise XtmrError(f"a word has 1..64 bits, got {n_bits}")
    if len(flips) != 3:
        raise XtmrError(f"TMR keeps three copies; got flips for {len(flips)}")
    full = (1 << n_bits) - 1
    clean = int(word) & full
    copies: list[int] = []
    for bits in flips:
        mask = 0
        for b in bits:
            if not 0 <= int(b) < n_bits:
                raise XtmrError(f"bit position {b} outside 0..{n_bits - 1}")
            mask |= 1 << int(b)
        copies.append(clean ^ mask)
    a, b, c = copies
    voted = majority(a, b, c) & full
    diff = voted ^ clean
    return VoteDemo(n_bits, clean, (a, b, c), voted, tuple(b for b in range(n_bits) if diff >> b & 1))


def random_flips(n_bits: int, ber: float, seed: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The flipped bit positions of three stored copies of one word, each bit flipped with probability ``ber``.

    Args:
        n_bits: bits per word. ber: bit error rate. seed: seed of the draw (the same seed, the same flips).

    Returns:
        Three ascending tuples of bit positions (most are empty at realistic BERs: that is the point).
    """
    hit = np.random.default_rng(int(seed)).random((3, int(n_bits))) < float(ber)
    return tuple(tuple(int(b) for b in np.flatnonzero(row)) for row in hit)  # type: ignore[return-value]
