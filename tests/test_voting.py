"""The voter against the truth table of a 2-of-3 majority."""

import itertools

import numpy as np
import torch

from xtmr_core.voting import majority


def test_majority_matches_the_truth_table_bit_by_bit():
    for a, b, c in itertools.product((0, 1), repeat=3):
        assert majority(a, b, c) == (1 if a + b + c >= 2 else 0)


def test_majority_of_words_matches_a_per_bit_loop():
    rng = np.random.default_rng(0)
    a, b, c = (rng.integers(0, 2**32, size=200, dtype=np.int64) for _ in range(3))
    got = majority(a, b, c)
    for i in range(200):
        want = 0
        for bit in range(32):
            votes = sum((int(w[i]) >> bit) & 1 for w in (a, b, c))
            want |= (votes >= 2) << bit
        assert int(got[i]) == want


def test_one_corrupted_copy_is_outvoted_and_two_are_not():
    w = torch.tensor([0b1010], dtype=torch.int32)
    bad = w ^ 0b0110
    assert majority(bad, w, w).item() == 0b1010
    assert majority(bad, bad, w).item() == bad.item()
