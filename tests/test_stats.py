"""Intervals that cover (BCa over trials + the test-set term), paired comparisons, the verdict rule."""

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xtmr_core.stats import (
    BOOT_SEED,
    N_RESAMPLES,
    Interval,
    ci_half_width,
    expanded_level,
    image_variance,
    iso_reliability_cost,
    judge,
    matching_budget,
    mean_ci,
    mean_interval,
    paired_difference,
    paired_interval,
    practical_threshold,
    ratio_interval,
    reliability_improvement,
    verdict,
)
from xtmr_core.vocabulary import VERDICTS

sys.path.insert(0, str(Path(__file__).parent / "data"))
from make_pools import load  # noqa: E402


def test_the_trial_interval_is_the_union_of_scipys_bca_at_the_expanded_level_and_the_t_interval():
    v = np.random.default_rng(0).beta(8, 1, size=12)
    ref = stats.bootstrap(
        (v,),
        np.mean,
        method="BCa",
        n_resamples=N_RESAMPLES,
        confidence_level=expanded_level(12),
        rng=np.random.default_rng(BOOT_SEED),
    ).confidence_interval
    t = stats.t.ppf(0.975, 11) * v.std(ddof=1) / np.sqrt(12)
    iv = mean_interval(v)
    expect = (min(ref.low, v.mean() - t), max(ref.high, v.mean() + t))
    assert (iv.low, iv.high) == pytest.approx(expect) and iv.estimate == pytest.approx(v.mean())
    assert iv.high == pytest.approx(v.mean() + t) and iv.low == pytest.approx(ref.low)  # left-skewed: BCa reaches lower
    assert mean_ci(v) == pytest.approx((iv.low, iv.high)) and ci_half_width(v) == pytest.approx(iv.half_width)
    assert iv.image_se == 0 and iv.n == 12


def test_the_expanded_level_matches_the_t_interval_width():
    for n in (5, 10, 40):
        z = stats.norm.ppf(0.5 + expanded_level(n) / 2)
        assert z * math.sqrt((n - 1) / n) == pytest.approx(stats.t.ppf(0.975, n - 1))
    assert 0.98 < expanded_level(10) < 0.985 and 0.955 < expanded_level(40) < 0.96


def test_degenerate_inputs():
    one = mean_interval([0.5])
    assert one.estimate == 0.5 and math.isnan(one.low) and one.half_width == math.inf
    same = mean_interval([0.7] * 5)
    assert (same.low, same.high) == (0.7, 0.7)
    assert math.isnan(mean_interval([]).estimate)
    assert all(math.isnan(x) for x in mean_ci([0.5])) and ci_half_width([0.5]) == math.inf


def test_image_variance_recovers_a_known_image_component():
    # c[t, i] ~ Bernoulli(q_i): the image component is Var(q); the rest is interaction the trials hold
    rng = np.random.default_rng(1)
    q = rng.beta(2, 0.5, size=4000)
    c = rng.random((30, q.size)) < q
    assert image_variance(c) == pytest.approx(q.var() / q.size, rel=0.1)
    # no image component at all (every image alike): nothing to add
    flat = rng.random((30, 4000)) < 0.7
    assert image_variance(flat) < 0.05 * 0.21 / 4000
    assert image_variance(c[:1, :1]) == 0.0


def test_the_image_term_widens_each_side_in_quadrature():
    rng = np.random.default_rng(2)
    c = rng.random((10, 500)) < rng.beta(4, 1, size=500)
    acc = c.mean(axis=1)
    trials_only, both = mean_interval(acc), mean_interval(acc, c)
    z = stats.norm.ppf(0.975)
    assert both.image_se == pytest.approx(math.sqrt(image_variance(c)))
    assert both.estimate - both.low == pytest.approx(math.hypot(acc.mean() - trials_only.low, z * both.image_se))
    assert both.high - both.estimate == pytest.approx(math.hypot(trials_only.high - acc.mean(), z * both.image_se))


def test_paired_interval_is_the_interval_of_per_trial_differences():
    rng = np.random.default_rng(3)
    cb = rng.random((8, 300)) < 0.8
    cp = cb | (rng.random((8, 300)) < 0.1)
    p, b = cp.mean(1), cb.mean(1)
    assert paired_interval(p, b, cp, cb) == mean_interval(p - b, cp.astype(float) - cb)
    assert paired_difference(list(p) + [0.1], b) == pytest.approx(
        (np.mean(p - b), *mean_ci(p - b))
    )  # extra trials of the longer one are ignored


def test_ratios_are_the_reliability_improvement_with_paired_intervals():
    rng = np.random.default_rng(4)
    b = rng.uniform(0.3, 0.7, 15)
    p = np.clip(b + rng.uniform(0.0, 0.2, 15), 0, 1)
    rec, gain = reliability_improvement(p.mean(), b.mean(), 0.95)
    r = ratio_interval("recovered", p, b, 0.95)
    g = ratio_interval("relative_gain", p, b)
    assert r.estimate == pytest.approx(rec) and g.estimate == pytest.approx(gain)
    assert r.low < rec < r.high and g.low < gain < g.high and r.low > 0
    assert math.isnan(ratio_interval("recovered", p, b, 0.2).estimate)  # no loss to recover
    with pytest.raises(ValueError):
        ratio_interval("recovered", p, b)
    # the design travels as keywords (**design): a misspelt one is refused, as a named keyword would be
    st = dict(strata=[0, 1] * 7 + [0], weights=[0.5, 0.5])
    assert ratio_interval("recovered", p, b, 0.95, **st) != r
    with pytest.raises(TypeError, match="'strat'"):
        ratio_interval("recovered", p, b, 0.95, strat=st["strata"])


def test_reliability_improvement_both_ways():
    rec, gain = reliability_improvement(acc_plan=0.8, acc_none=0.4, acc_clean=0.9)
    assert rec == pytest.approx(0.8) and gain == pytest.approx(1.0)
    assert math.isnan(reliability_improvement(0.5, 0.9, 0.9)[0])
    assert math.isnan(reliability_improvement(0.5, 0.0, 0.9)[1])


def test_the_verdict_rule():
    helps, hurts, noise, same, unknown, nothing = VERDICTS
    assert verdict(Interval(0.02, 0.01, 0.03)) == helps
    assert verdict(Interval(-0.02, -0.03, -0.01)) == hurts
    assert verdict(Interval(0.0, -0.01, 0.01)) == noise
    assert verdict(Interval(0.1, math.nan, math.nan)) == unknown  # no interval: never "within noise"
    # an interval inside the practical threshold (0.5 pt) is no practical difference, excluding 0 or not
    assert verdict(Interval(0.001, 0.0002, 0.002)) == same
    assert verdict(Interval(0.0, -0.004, 0.004)) == same
    assert verdict(Interval(0.004, 0.001, 0.006)) == helps  # reaches past 0.5 pt
    # the threshold is a tenth of the loss where that is smaller; a negligible loss leaves nothing to protect
    assert judge(Interval(0.004, 0.003, 0.0045), loss=0.2).verdict == same
    assert judge(Interval(0.004, 0.003, 0.0045), loss=0.02).verdict == helps
    assert judge(Interval(0.001, 0.0005, 0.0015), loss=0.002).verdict == nothing
    assert judge(Interval(0.0, math.nan, math.nan), loss=0.002, needed=8).needed == 8
    assert practical_threshold(0.2) == pytest.approx(0.005) and practical_threshold(0.02) == pytest.approx(0.002)
    assert judge(Interval(0.02, 0.01, 0.03)).decided and not judge(Interval(0.0, -0.01, 0.01)).decided


def test_matching_budget_is_the_smallest_budget_not_worse_than_the_target():
    rng = np.random.default_rng(5)
    target = rng.uniform(0.8, 0.9, 20)
    cands = {1.0: target - 0.2, 2.0: target - 0.05, 5.0: target + np.tile([0.01, -0.01], 10), 10.0: target + 0.01}
    budget, diff = matching_budget(cands, target)
    assert budget == 5.0 and diff is not None and diff.contains(0.0)
    assert math.isnan(matching_budget({1.0: target - 0.2}, target)[0])


def test_matching_budget_takes_a_stratified_design_as_paired_interval_does():
    # PointResult.matching_budget passes a stratified point's design (strata, weights, rare): the same keywords
    # paired_interval takes, and the interval it returns is paired_interval's under that design.
    rng = np.random.default_rng(6)
    target = rng.uniform(0.8, 0.9, 12)
    design = {"strata": [0, 1] * 6, "weights": [0.9, 0.1], "rare": [False, True]}
    cands = {1.0: target - 0.2, 5.0: target + 0.01}
    budget, diff = matching_budget(cands, target, **design)
    assert budget == 5.0 and diff == paired_interval(cands[5.0], target, **design)


def test_iso_reliability_cost_picks_the_smallest_budget_reaching_the_target():
    table = pd.DataFrame(
        {
            "protect": ["lrp"] * 3 + ["magnitude"] * 3,
            "budget": [1, 5, 10, 1, 5, 10],
            "mean_accuracy": [0.96, 0.97, 0.98, 0.5, 0.94, 0.955],
        }
    )
    out = iso_reliability_cost(table, 0.95).set_index("protect")
    assert out.loc["lrp", "min_budget"] == 1
    assert out.loc["magnitude", "min_budget"] == 10
    assert math.isnan(iso_reliability_cost(table, 0.99).set_index("protect").loc["lrp", "min_budget"])


def _coverage(correct: np.ndarray, n: int, reps: int, seed: int, base: np.ndarray | None = None) -> float:
    """How often the interval from n trials and a fresh test set covers the pool's own mean.

    A two-level simulation: each replicate draws ``n`` trials (with replacement) from the pool and a
    test set of the same size (with replacement) from the pool's images, so both sources of error act.
    With ``base``, the quantity is the paired difference ``correct - base``.
    """
    rng = np.random.default_rng(seed)
    truth = correct.mean() - (base.mean() if base is not None else 0.0)
    hits = 0
    for _ in range(reps):
        t = rng.integers(0, correct.shape[0], n)
        i = rng.integers(0, correct.shape[1], correct.shape[1])
        c = correct[np.ix_(t, i)]
        if base is None:
            iv = mean_interval(c.mean(1), c)
        else:
            cb = base[np.ix_(t, i)]
            iv = paired_interval(c.mean(1), cb.mean(1), c, cb)
        hits += iv.contains(truth)
    return hits / reps


@pytest.mark.parametrize(
    ("pool", "n", "least"),
    [
        ("int8", 10, 0.93),
        ("int8", 40, 0.93),
        ("fp32", 10, 0.93),
        ("fp32", 40, 0.93),
        ("fp32_low", 40, 0.93),
        # 1 trial in 5 is ruined here, so 11% of 10-trial samples hold no ruined trial at all: no interval
        # built from them can cover; that is what stratified sampling (strata.py) is for.
        ("fp32_low", 10, 0.88),
    ],
)
def test_intervals_cover_on_pools_of_real_trials(pool, n, least):
    """Nominal 0.95, trials and test images both resampled (pools: tests/data/make_pools.py)."""
    correct, _clean, _meta = load(pool)
    cov = _coverage(correct[0], n, reps=400, seed=n)
    assert cov >= least, f"{pool} n={n}: coverage {cov:.3f}"


def test_paired_differences_cover_on_the_int8_pool():
    correct, _clean, _meta = load("int8")
    cov = _coverage(correct[1], 40, reps=400, seed=140, base=correct[0])
    assert cov >= 0.92, f"lrp - none n=40: coverage {cov:.3f}"


def test_fixed_n_means_are_unbiased_and_early_stopping_was_not():
    """The fixed-n rule's mean is unbiased (by simulation on the skewed int8 pool); the old per-plan rule
    (stop once the Student-t half-width <= 2 points, after >= 10 trials, at most 40) was biased upward."""
    correct, _clean, _meta = load("int8")
    acc = correct[0].mean(1)
    rng = np.random.default_rng(7)
    reps, n_max = 20000, 40
    draws = acc[rng.integers(0, acc.size, (reps, n_max))]
    fixed = draws.mean(axis=1)
    k = np.arange(1, n_max + 1)
    csum, csq = np.cumsum(draws, axis=1), np.cumsum(draws**2, axis=1)
    mean = csum / k
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.maximum(csq - k * mean**2, 0) / (k - 1))
        half = stats.t.ppf(0.975, np.maximum(k - 1, 1)) * sd / np.sqrt(k)
    ok = (half <= 0.02) & (k >= 10)
    ok[:, -1] = True
    stop = ok.argmax(axis=1)
    early = mean[np.arange(reps), stop]
    se = acc.std() / math.sqrt(n_max) / math.sqrt(reps)
    assert abs(fixed.mean() - acc.mean()) < 4 * se
    assert early.mean() - acc.mean() > 10 * se
