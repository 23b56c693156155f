"""Fault sampling: binomial count, distinct uniform positions, exact region mapping, seeds."""

import numpy as np
import pytest
from scipy import stats

from xtmr_core.errors import XtmrError
from xtmr_core.faults import FaultModel, Region, sample_faults, sample_positions


def test_positions_are_distinct_sorted_and_in_range():
    rng = np.random.default_rng(0)
    for n, p in [(1000, 0.5), (10**6, 1e-3), (64, 1.0)]:
        pos = sample_positions(n, p, rng)
        assert np.all(np.diff(pos) > 0) and pos.min() >= 0 and pos.max() < n
    assert sample_positions(64, 1.0, rng).tolist() == list(range(64))
    assert sample_positions(10, 0.0, rng).size == 0 and sample_positions(0, 0.5, rng).size == 0


def test_count_is_binomial():
    rng = np.random.default_rng(1)
    n, p, runs = 20_000, 1e-3, 2000
    counts = np.array([sample_positions(n, p, rng).size for _ in range(runs)])
    mean, var = n * p, n * p * (1 - p)
    assert abs(counts.mean() - mean) < 4 * np.sqrt(var / runs)
    assert counts.var() == pytest.approx(var, rel=0.15)


def test_positions_are_uniform():
    rng = np.random.default_rng(2)
    pos = np.concatenate([sample_positions(100_000, 0.01, rng) for _ in range(50)])
    hist = np.bincount(pos // 10_000, minlength=10)
    assert stats.chisquare(hist).pvalue > 1e-3


def test_cost_grows_with_flips_not_bits():
    # 10^12 bits could never be drawn one by one; ~1000 faults are drawn directly.
    pos = sample_positions(10**12, 1e-9, np.random.default_rng(3))
    assert 850 < pos.size < 1150 and np.unique(pos).size == pos.size


def test_every_bit_of_every_region_fails_exactly_once_at_ber_one():
    regions = [
        Region(None, np.arange(8), 0, 5),
        Region(np.array([1, 3]), np.array([6, 7]), 1, 2),
        Region(np.array([1, 3]), np.array([6, 7]), 2, 2),
    ]
    f = sample_faults(regions, 1.0, np.random.default_rng(0))
    got = sorted(zip(f.weight.tolist(), f.bit.tolist(), f.copy.tolist()))
    want = sorted(
        [(w, b, 0) for w in range(5) for b in range(8)] + [(w, b, c) for c in (1, 2) for w in (1, 3) for b in (6, 7)]
    )
    assert got == want


def test_a_paired_region_lists_its_bits_one_by_one_and_each_fails_once_at_ber_one():
    pairs = Region(np.array([1, 1, 4]), np.array([7, 30, 2]), 1, 3, paired=True)
    assert pairs.size == 3
    f = sample_faults([Region(None, np.arange(2), 0, 5), pairs], 1.0, np.random.default_rng(0))
    got = sorted(zip(f.weight.tolist(), f.bit.tolist(), f.copy.tolist()))
    assert got == sorted([(w, b, 0) for w in range(5) for b in range(2)] + [(1, 7, 1), (1, 30, 1), (4, 2, 1)])
    f = sample_faults([pairs], 0.5, np.random.default_rng(1))
    want = [
        (int(pairs.weights[p]), int(pairs.bits[p]))
        for p in sample_positions(3, 0.5, np.random.default_rng(1).spawn(2)[1])
    ]
    assert list(zip(f.weight.tolist(), f.bit.tolist())) == want


def test_region_mapping_matches_a_loop_over_positions():
    regions = [Region(None, np.array([0, 30, 31]), 0, 7), Region(np.array([2, 5]), np.array([30, 31]), 1, 2)]
    f = sample_faults(regions, 0.4, np.random.default_rng(5))
    streams = np.random.default_rng(5).spawn(2)
    want = []
    for region, stream in zip(regions, streams):
        words = range(region.n_words) if region.weights is None else region.weights.tolist()
        table = [(w, b, region.copy) for w in words for b in region.bits.tolist()]
        want += [table[p] for p in sample_positions(region.size, 0.4, stream)]
    assert list(zip(f.weight.tolist(), f.bit.tolist(), f.copy.tolist())) == want


def test_primary_faults_do_not_depend_on_the_copies_a_plan_adds():
    primary = Region(None, np.arange(32), 0, 1000)
    alone = sample_faults([primary], 1e-3, np.random.default_rng([3, 0]))
    copies = [Region(np.arange(10), np.arange(32), c, 10) for c in (1, 2)]
    with_tmr = sample_faults([primary, *copies], 1e-3, np.random.default_rng([3, 0]))
    first = with_tmr.copy == 0
    assert np.array_equal(alone.weight, with_tmr.weight[first]) and np.array_equal(alone.bit, with_tmr.bit[first])


def test_same_seed_same_faults():
    regions = [Region(None, np.arange(32), 0, 10_000)]
    a = sample_faults(regions, 1e-3, np.random.default_rng([7, 1]))
    b = sample_faults(regions, 1e-3, np.random.default_rng([7, 1]))
    c = sample_faults(regions, 1e-3, np.random.default_rng([7, 2]))
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bit, b.bit)
    assert not (np.array_equal(a.weight, c.weight) and np.array_equal(a.bit, c.bit))


@pytest.mark.parametrize("ber", [-0.1, 1.5, float("nan"), "x"])
def test_bad_ber_is_a_clear_error(ber):
    with pytest.raises(XtmrError, match="BER"):
        FaultModel(ber)


def test_fault_bit_positions_are_checked_against_the_format():
    assert FaultModel(1e-3, bits=(30, 23)).positions(32).tolist() == [23, 30]
    with pytest.raises(XtmrError, match="outside"):
        FaultModel(1e-3, bits=(9,)).positions(8)
    with pytest.raises(XtmrError, match="mode"):
        FaultModel(1e-3, mode="burst")
