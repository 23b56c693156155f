"""Stratified trials: deciding pairs against a slow decoder, exact weights, conditional counts, a schedule of
the design alone, pairing kept, and an estimator that stays unbiased (small stratified campaigns against a
large plain one)."""

import math
import struct

import numpy as np
import pytest
import torch
from scipy import stats

from xtmr_core.campaign import PointOptions, run_point
from xtmr_core.faults import FaultModel, Region, sample_faults
from xtmr_core.formats import encode
from xtmr_core.injection import FaultInjector, trial_rng
from xtmr_core.memory import WeightLayout
from xtmr_core.protection import ProtectionPlan, make_plan
from xtmr_core.strata import (
    DECIDING_FACTOR,
    MIN_CLEAN_SHARE,
    SPLIT_DIFFER,
    deciding_pairs,
    make_strata,
    stratified_faults,
)

CPU = torch.device("cpu")


def _layout(sizes: list[int]) -> WeightLayout:
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return WeightLayout(tuple(f"l{i}" for i in range(len(sizes))), tuple((s,) for s in sizes), offsets)


def _weights(n: int, seed: int = 0) -> np.ndarray:
    w = np.random.default_rng(seed).normal(0, 0.1, n).astype(np.float32)
    w[:4] = [0.0, 1.5, -1.5, 1.25]  # zero; magnitudes whose top-exponent-bit flip reads NaN (1.25: signalling)
    return w


def _slow_value(word: int, fmt: str) -> float:
    """Decode one stored word with struct (fp32/fp16) or by hand (bf16), independently of ``formats``."""
    if fmt == "fp32":
        return struct.unpack("<f", struct.pack("<I", word & 0xFFFFFFFF))[0]
    if fmt == "fp16":
        return struct.unpack("<e", struct.pack("<H", word & 0xFFFF))[0]
    return struct.unpack("<f", struct.pack("<I", (word & 0xFFFF) << 16))[0]


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16", "int8"])
@pytest.mark.parametrize("mode", ["flip", "stuck0", "stuck1"])
def test_deciding_pairs_match_a_slow_word_by_word_reference(fmt, mode):
    layout = _layout([40, 25])
    flat = _weights(65)
    stored = encode(flat, fmt, layout)
    w, b = deciding_pairs(stored, layout, FaultModel(1e-3, mode))
    got = set(zip(w.tolist(), b.tolist()))
    bits = stored.bits
    expect = set()
    for i in range(65):
        lo, hi = (0, 40) if i < 40 else (40, 65)
        limit = DECIDING_FACTOR * max(abs(float(v)) for v in stored.values()[lo:hi])
        word = int(stored.words[i]) & ((1 << bits) - 1)
        for bit in range(bits):
            new = {"flip": word ^ (1 << bit), "stuck0": word & ~(1 << bit), "stuck1": word | (1 << bit)}[mode]
            if new == word:
                continue
            if fmt == "int8":
                value = float(np.int8(np.uint8(new))) * float(stored.scale[i])
            else:
                value = _slow_value(new, fmt)
            if not math.isfinite(value) or value > limit:
                expect.add((i, bit))
    assert got == expect
    if fmt == "int8":
        assert not got  # an int8 fault cannot leave the format's range: int8 stays plain
    elif mode != "stuck0":
        assert (1, bits - 2) in got and (2, bits - 2) in got  # +-1.5 read NaN there, whatever their sign


def test_deciding_pairs_keep_to_the_bits_that_can_fail():
    layout = _layout([50])
    stored = encode(_weights(50), "fp32", layout)
    assert deciding_pairs(stored, layout, FaultModel(1e-3, bits=(3, 12)))[0].size == 0
    w, b = deciding_pairs(stored, layout, FaultModel(1e-3, bits=(30,)))
    assert w.size and set(b.tolist()) == {30}


def _point(n=2000, ber=3e-5, top=20, seed=0):
    layout = _layout([n // 2, n - n // 2])
    stored = encode(_weights(n, seed), "fp32", layout)
    scores = np.abs(stored.values()).astype(np.float64)
    plans = [make_plan("none", 32), make_plan("lrp", 32, budget=100 * top / n, scores=scores)]
    return layout, stored, plans, FaultModel(ber)


def test_strata_weights_are_the_exact_law_of_the_two_regions():
    layout, stored, plans, fault = _point()
    s = make_strata(stored, layout, plans, fault)
    assert s is not None and len(s.strata) == 4
    w_all, _ = deciding_pairs(stored, layout, fault)
    n_diff, n_shared = s.sizes
    assert n_diff + n_shared == w_all.size and 0 < n_diff <= 20  # the top-20 weights' deciding pairs
    p0d, p0s = (1 - 3e-5) ** n_diff, (1 - 3e-5) ** n_shared
    assert s.weights == pytest.approx([p0d * p0s, p0d * (1 - p0s), (1 - p0d) * p0s, (1 - p0d) * (1 - p0s)], rel=1e-9)
    assert sum(s.weights) == pytest.approx(1.0)
    assert s.rare == (False, True, True, True) and s.differs == (False, False, True, True)
    # int8 has no deciding pair, a high BER makes neither region rare: plain
    assert make_strata(encode(_weights(2000), "int8", layout), layout, plans, fault) is None
    assert make_strata(stored, layout, plans, FaultModel(0.2)) is None
    assert make_strata(stored, layout, plans, FaultModel(0.0)) is None


def test_a_region_is_split_only_where_it_pays():
    layout, stored, plans, _ = _point()
    _, n_shared = make_strata(stored, layout, plans, FaultModel(3e-5)).sizes
    # a BER where a shared fault is near certain: only the differ region is split
    ber = -math.log(MIN_CLEAN_SHARE / 3) / n_shared
    s = make_strata(stored, layout, plans, FaultModel(ber))
    assert s is not None and [st.label for st in s.strata] == ["differ=0", "differ>=1"]
    assert stats.binom.sf(0, s.sizes[0], ber) <= SPLIT_DIFFER
    # no plan protects anything: one region, split on its count
    s = make_strata(stored, layout, plans[:1], FaultModel(3e-5))
    assert [st.label for st in s.strata] == ["shared=0", "shared>=1"]


def test_the_schedule_is_the_designs_alone_and_gives_every_stratum_two_trials_first():
    layout, stored, plans, fault = _point()
    a, b = make_strata(stored, layout, plans, fault), make_strata(stored, layout, plans, fault)
    long = a.schedule(60)
    assert b.stratum_of(37) == long[37] and b.schedule(25) == long[:25]  # any trial count, same strata
    assert sorted(long[: a.min_trials]) == sorted(list(range(4)) * 2)
    shares = np.array([st.share for st in a.strata])
    counts = np.array(a.allocation(60))
    assert np.abs(counts - shares / shares.sum() * 60).max() <= 2 + 1e-9
    assert a.key() == b.key() and a.key() != make_strata(stored, layout, plans[:1], fault).key()


def test_conditional_counts_follow_the_exact_truncated_binomial():
    layout, stored, plans, fault = _point(ber=2e-3)
    s = make_strata(stored, layout, plans, fault)
    assert s is not None
    tail = next(i for i, st in enumerate(s.strata) if st.counts[0] == (1, None))
    rng = np.random.default_rng(3)
    draws = np.array([s.draw_count(0, tail, rng) for _ in range(4000)])
    n = s.sizes[0]
    ks = np.arange(1, 5)
    expect = stats.binom.pmf(ks, n, 2e-3) / stats.binom.sf(0, n, 2e-3)
    assert draws.min() >= 1
    assert np.allclose([(draws == k).mean() for k in ks], expect, atol=0.03)


def _regions(inj: FaultInjector, plan: ProtectionPlan, fault: FaultModel) -> list[Region]:
    return inj.regions(plan, fault)


def test_stratified_faults_honour_the_stratum_and_keep_pairing(tiny_model):
    from xtmr_core.damage import damage_plan, delta_harm

    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    fault = FaultModel(0.01)
    plans = [make_plan("none", 32), make_plan("magnitude", 32, budget=10, scores=np.abs(inj.clean_values) + 0.0)]
    s = make_strata(inj.stored, inj.layout, plans, FaultModel(4e-4))
    assert s is not None
    keys = [set((w * 32 + b).tolist()) for w, b in s.regions]
    damage = damage_plan(np.abs(inj.clean_values).astype(np.float64), delta_harm(inj.stored), 20, 32)
    for stratum, st in enumerate(s.strata):
        for t in range(6):
            base = stratified_faults(_regions(inj, plans[0], fault), fault, s, stratum, trial_rng(5, t))
            key = base.weight * 32 + base.bit
            assert len(set(key.tolist())) == key.size  # no stored bit drawn twice
            for (lo, hi), region in zip(st.counts, keys):
                k = sum(int(x) in region for x in key)
                assert k >= lo and (hi is None or k <= hi)
            for plan in (plans[1], make_plan("full", 32), make_plan("ecc", 32), damage):
                f = stratified_faults(_regions(inj, plan, fault), fault, s, stratum, trial_rng(5, t))
                prim = f.copy == 0
                assert np.array_equal(np.sort(key), np.sort(f.weight[prim] * 32 + f.bit[prim]))


def test_small_stratified_campaigns_average_to_a_large_plain_one():
    """The estimator ``sum_s w_s mean_s`` is unbiased: 400 stratified campaigns of 12 trials average to the
    same value as 12,000 plain trials of the same fault model (a model-free outcome, so trials are cheap),
    and their spread is several times smaller than plain campaigns of 12 trials."""
    layout, stored, plans, fault = _point(n=2000, ber=3e-5, top=40)
    s = make_strata(stored, layout, plans, fault)
    regions = [Region(None, fault.positions(32), 0, 2000)]
    decide = set()
    for w, b in s.regions:
        decide |= set((w * 32 + b).tolist())
    top = set(plans[1].weights.tolist())

    def outcome(f, protected: bool) -> float:
        key = f.weight * 32 + f.bit
        hit = np.array([int(k) in decide and not (protected and int(w) in top) for k, w in zip(key, f.weight)], bool)
        return 0.95 - 0.8 * float(hit.any()) - 0.001 * int((~hit).sum())

    def diff(f) -> float:
        return outcome(f, True) - outcome(f, False)

    plain = np.array([diff(sample_faults(regions, 3e-5, trial_rng(1, t))) for t in range(12000)])
    ests = []
    for seed in range(400):
        sched = np.array(s.schedule(12))
        out = np.array(
            [diff(stratified_faults(regions, fault, s, int(k), trial_rng(seed, t))) for t, k in enumerate(sched)]
        )
        ests.append(sum(w * out[sched == k].mean() for k, w in enumerate(s.weights)))
    ests = np.array(ests)
    se = math.hypot(ests.std() / math.sqrt(len(ests)), plain.std() / math.sqrt(len(plain)))
    assert abs(ests.mean() - plain.mean()) < 3 * se, (ests.mean(), plain.mean(), se)
    assert ests.std() < plain.std() / math.sqrt(12) / 3


def test_a_stratified_point_carries_its_strata_into_every_estimate(tiny_model, tiny_data):
    x, y = tiny_data
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    fault = FaultModel(6e-4)
    plans = [make_plan("none", 32), make_plan("full", 32)]
    strata = make_strata(inj.stored, inj.layout, plans, fault)
    assert strata is not None
    point = run_point(inj, plans[1:], fault, x, y, PointOptions(trials=13, seed=0, strata=strata))
    base = point.results[0]
    assert point.strata is strata and base.strata == list(strata.schedule(13)) and point.trials == 13
    expect = sum(
        w * np.mean([a for a, s in zip(base.accuracies, base.strata) if s == k]) for k, w in enumerate(strata.weights)
    )
    assert base.mean_accuracy == pytest.approx(expect) and point.accuracy(0).estimate == pytest.approx(expect)
    d = point.to_dict()
    assert d["design"] == "stratified" and [r["trials"] for r in d["strata"]] == list(strata.allocation(13))
    assert base.to_dict()["stratum_weights"] == list(strata.weights)
    # the first 8 trials of a 13-trial point are the trials of an 8-trial point: stored trials stay valid
    short = run_point(inj, plans[1:], fault, x, y, PointOptions(trials=8, seed=0, strata=strata))
    assert short.results[1].accuracies == point.results[1].accuracies[:8]
    early = point.judge(1, k=strata.min_trials - 1)  # a stratum still lacks its second trial
    assert early.verdict == "not enough trials" and early.needed == strata.min_trials
    assert point.judge(1).verdict != "not enough trials"
