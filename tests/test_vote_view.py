"""Tests for xtmr_core.vote_view: the bit-by-bit vote against counting ones per bit."""

from __future__ import annotations

import itertools

import pytest

from xtmr_core.errors import XtmrError
from xtmr_core.vote_view import random_flips, vote_demo


def _slow_vote(word, n_bits, flips):
    copies = []
    for bits in flips:
        w = [(word >> b) & 1 for b in range(n_bits)]
        for b in bits:
            w[b] ^= 1
        copies.append(w)
    return sum((1 << b) for b in range(n_bits) if sum(c[b] for c in copies) >= 2)


@pytest.mark.parametrize(
    "flips",
    [
        ((), (), ()),
        ((3,), (), ()),
        ((3,), (3,), ()),
        ((0, 7), (7,), (1,)),
        ((1, 2), (2, 3), (3, 1)),
        ((5,), (5,), (5,)),
    ],
)
def test_vote_matches_slow_majority(flips):
    word = 0b10110010
    d = vote_demo(word, 8, flips)
    assert d.voted == _slow_vote(word, 8, flips)
    assert d.corrected == (d.voted == word)
    assert d.wrong_bits == tuple(b for b in range(8) if (d.voted ^ word) >> b & 1)


def test_single_copy_faults_are_always_corrected():
    for bits in itertools.combinations(range(8), 3):
        assert vote_demo(0x5A, 8, (bits, (), ())).corrected


def test_table_layout():
    d = vote_demo(0b0001, 4, ((0,), (), (3,)))
    t = d.table()
    assert list(t.index) == ["clean", "copy A", "copy B", "copy C", "vote"]
    assert list(t.columns) == [3, 2, 1, 0]
    assert t.loc["clean"].tolist() == [0, 0, 0, 1]
    assert t.loc["copy A"].tolist() == [0, 0, 0, 0]
    assert t.loc["copy C"].tolist() == [1, 0, 0, 1]
    assert t.loc["vote"].tolist() == [0, 0, 0, 1]


def test_negative_words_use_their_bit_pattern():
    d = vote_demo(-1, 8, ((0,), (0,), ()))
    assert d.clean == 0xFF and d.voted == 0xFE and d.wrong_bits == (0,)


@pytest.mark.parametrize("args", [(0, 8, ((9,), (), ())), (0, 8, ((), ())), (0, 0, ((), (), ()))])
def test_bad_input(args):
    with pytest.raises(XtmrError):
        vote_demo(*args)


def test_random_flips_are_seeded_and_flip_each_bit_with_the_ber():
    assert random_flips(32, 0.3, 7) == random_flips(32, 0.3, 7)
    assert random_flips(32, 0.0, 1) == ((), (), ())
    assert random_flips(8, 1.0, 1) == (tuple(range(8)),) * 3
    counts = [sum(len(c) for c in random_flips(32, 0.25, s)) for s in range(200)]
    assert abs(sum(counts) / (200 * 96) - 0.25) < 0.02  # 19,200 draws: 3 standard errors is 0.009
