"""Stratified trials: exact weights, conditional faults, pairing kept, unbiased and tighter than plain MC."""

import numpy as np
import pytest
import torch
from scipy import stats

from xtmr_core.campaign import run_point
from xtmr_core.faults import FaultModel
from xtmr_core.injection import FaultInjector, trial_rng
from xtmr_core.protection import make_plan
from xtmr_core.strata import allocate, interleave, make_strata, stratified_faults

CPU = torch.device("cpu")


def test_allocation_and_schedule_are_fixed_in_advance():
    w = np.array([0.9, 0.09, 0.009, 0.001])
    n = allocate(w, 40)
    assert n.sum() == 40 and n.min() >= 2 and n[0] > n[1] > 2
    sched = interleave(n)
    assert np.bincount(sched).tolist() == n.tolist()
    first = np.bincount(sched[:12], minlength=4)
    assert (first >= 1).all()  # a streaming prefix already sees every stratum


def test_strata_weights_are_the_exact_binomial_law():
    s = make_strata(1000, FaultModel(2e-4), 32, (30,), 40)
    assert s is not None and s.n_bits == 1000 and s.ks == (0, 1, 2, 3)
    assert s.weights[:3] == pytest.approx([stats.binom.pmf(k, 1000, 2e-4) for k in range(3)])
    assert sum(s.weights) == pytest.approx(1.0) and s.trials == 40
    assert make_strata(1000, FaultModel(1e-2), 32, (30,), 40) is None  # K = 0 too rare: plain MC
    assert make_strata(1000, FaultModel(2e-4, bits=(3,)), 32, (30,), 40) is None  # bit 30 cannot fail


def test_stratified_faults_put_exactly_k_on_the_deciding_bits_and_keep_pairing():
    fault = FaultModel(0.05)
    s = make_strata(50, FaultModel(0.002), 32, (30,), 40)
    inj_regions = {
        "none": [r for r in _regions(make_plan("none", 32), fault)],
        "full": [r for r in _regions(make_plan("full", 32), fault)],
    }
    for stratum in range(len(s.ks) - 1):
        for t in range(5):
            a = stratified_faults(inj_regions["none"], fault, s, stratum, trial_rng(0, t))
            b = stratified_faults(inj_regions["full"], fault, s, stratum, trial_rng(0, t))
            assert int(((a.bit == 30) & (a.copy == 0)).sum()) == s.ks[stratum]
            prim = b.copy == 0
            assert np.array_equal(a.weight, b.weight[prim]) and np.array_equal(a.bit, b.bit[prim])
            assert (b.copy > 0).any()
    tail = [stratified_faults(inj_regions["none"], fault, s, len(s.ks) - 1, trial_rng(1, t)) for t in range(20)]
    assert all(int((f.bit == 30).sum()) >= s.ks[-1] for f in tail)


def test_stratified_faults_keep_pairing_with_ecc_check_bits_and_bit_aware_copies(tiny_model):
    from xtmr_core.damage import damage_plan, delta_harm
    from xtmr_core.faults import CHECK_COPY

    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    fault = FaultModel(0.05)
    s = make_strata(inj.n_weights, FaultModel(0.002), 32, (30,), 40)
    damage = damage_plan(np.abs(inj.clean_values).astype(np.float64), delta_harm(inj.stored), 20, 32)
    pairs = set(zip(*(a.tolist() for a in damage.pairs)))
    for stratum in range(len(s.ks) - 1):
        for t in range(3):
            base = stratified_faults(inj.regions(make_plan("none", 32), fault), fault, s, stratum, trial_rng(0, t))
            for plan in (make_plan("ecc", 32), damage):
                f = stratified_faults(inj.regions(plan, fault), fault, s, stratum, trial_rng(0, t))
                prim = f.copy == 0
                assert np.array_equal(base.weight, f.weight[prim]) and np.array_equal(base.bit, f.bit[prim])
                extra = list(zip(f.weight[~prim].tolist(), f.bit[~prim].tolist(), f.copy[~prim].tolist()))
                assert extra
                if plan is damage:
                    assert {(w, b) for w, b, _ in extra} <= pairs
                else:
                    assert all(c == CHECK_COPY and w % 2 == 0 and 0 <= b < 8 for w, b, c in extra)


def _regions(plan, fault):
    from xtmr_core.faults import Region

    regions = [Region(None, fault.positions(32), 0, 50)]
    if plan.bits:
        regions += [Region(None, np.array(plan.bits, dtype=np.int64), c, 50) for c in (1, 2)]
    return regions


def _outcome(faults) -> float:
    """A stand-in for a trial's accuracy that a rare deciding fault ruins: a bit-30 flip of an even-indexed
    weight costs 60 points, other flips cost a little each (no model, so thousands of trials are cheap)."""
    hit = (faults.bit == 30) & (faults.copy == 0)
    return 0.95 - 0.6 * float((faults.weight[hit] % 2 == 0).any()) - 0.002 * int((~hit).sum())


def test_stratified_estimates_are_unbiased_and_tighter_than_plain_monte_carlo():
    """Rare catastrophes (K ~ Binomial(2000, 3e-5), 6% of trials): at 40 trials the stratified estimate has
    the same mean as plain sampling (both near the exact value) and a several times smaller spread."""
    from xtmr_core.faults import sample_faults

    n_w, fault, n = 2000, FaultModel(3e-5, bits=(30, 12, 13)), 40
    regions = _regions_n(make_plan("none", 32), fault, n_w)
    strata = make_strata(n_w, fault, 32, (30,), n)
    plain, strat = [], []
    for seed in range(150):
        plain.append(np.mean([_outcome(sample_faults(regions, 3e-5, trial_rng(seed, t))) for t in range(n)]))
        out = np.array(
            [
                _outcome(stratified_faults(regions, fault, strata, s, trial_rng(seed, t)))
                for t, s in enumerate(strata.schedule)
            ]
        )
        sched = np.array(strata.schedule)
        strat.append(sum(w * out[sched == k].mean() for k, w in enumerate(strata.weights)))
    # exact: P(some bit-30 fault lands on an even weight) = 1 - (1 - p)^(n_w / 2); other flips cost 0.002 each
    exact = 0.95 - 0.6 * (1 - (1 - 3e-5) ** (n_w // 2)) - 0.002 * n_w * 2 * 3e-5
    assert abs(np.mean(strat) - exact) < 3 * np.std(strat) / np.sqrt(150)
    assert abs(np.mean(plain) - exact) < 3 * np.std(plain) / np.sqrt(150)
    assert np.std(strat) < np.std(plain) / 2


def _regions_n(plan, fault, n_w):
    from xtmr_core.faults import Region

    return [Region(None, fault.positions(32), 0, n_w)]


def test_a_stratified_point_carries_its_strata_into_every_estimate(tiny_model, tiny_data):
    x, y = tiny_data
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    fault = FaultModel(6e-4)
    strata = make_strata(inj.n_weights, fault, 32, (30,), 20)
    point = run_point(inj, [make_plan("full", 32)], fault, x, y, seed=0, strata=strata)
    base = point.results[0]
    assert point.strata is strata and base.strata == list(strata.schedule) and point.trials == 20
    expect = sum(
        w * np.mean([a for a, s in zip(base.accuracies, base.strata) if s == k]) for k, w in enumerate(strata.weights)
    )
    assert base.mean_accuracy == pytest.approx(expect) and point.accuracy(0).estimate == pytest.approx(expect)
    flips = sum(
        w * np.mean([f for f, s in zip(base.flips, base.strata) if s == k]) for k, w in enumerate(strata.weights)
    )
    assert base.mean_bit_flips == pytest.approx(flips) and base.mean_bit_flips != pytest.approx(np.mean(base.flips))
    assert point.to_dict()["stratified"] and base.to_dict()["stratum_weights"] == list(strata.weights)


def test_stratified_intervals_cover_and_are_narrower_on_the_fp32_pool():
    """On real lenet5 fp32 BER 1e-5 trials (tests/data/pools.npz), each pool trial's stratum is its own
    number of primary bit-30 faults (re-drawn from its seed); 40 stratified trials (resampled within their
    strata, test images resampled too) cover the strata-weighted pool mean at >= 0.93, with intervals
    narrower than plain sampling's at the same 40 trials."""
    import sys
    from pathlib import Path

    from xtmr_core.faults import Region, sample_faults
    from xtmr_core.stats import mean_interval

    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from make_pools import load

    correct, _clean, meta = load("fp32_low")
    c, n_w, n, reps = correct[0], 61470, 40, 300  # lenet5's faultable weights
    primary = [Region(None, np.arange(32), 0, n_w)]
    k = np.array([int((sample_faults(primary, meta["ber"], trial_rng(0, t)).bit == 30).sum()) for t in range(len(c))])
    strata = make_strata(n_w, FaultModel(meta["ber"]), 32, (30,), n)
    sched = np.array(strata.schedule)
    members = [np.flatnonzero(np.minimum(k, strata.ks[-1]) == s) for s in range(len(strata.ks))]
    truth = sum(w * c[m].mean() for w, m in zip(strata.weights, members))
    rng = np.random.default_rng(0)
    hits, widths, plain = 0, [], []
    for _ in range(reps):
        t = np.empty(n, dtype=np.int64)
        for s, m in enumerate(members):
            t[sched == s] = rng.choice(m, int((sched == s).sum()))
        img = rng.integers(0, c.shape[1], c.shape[1])
        sub = c[np.ix_(t, img)]
        iv = mean_interval(sub.mean(1), sub, strata=sched, weights=strata.weights)
        hits += iv.contains(truth)
        widths.append(iv.half_width)
        flat = c[np.ix_(rng.integers(0, len(c), n), img)]
        plain.append(mean_interval(flat.mean(1), flat).half_width)
    assert hits / reps >= 0.93, hits / reps
    assert np.median(widths) < 0.9 * np.median(plain)
