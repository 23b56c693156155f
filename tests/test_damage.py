"""Bit-aware plans: harms against struct, pair ranking against a sort, and what the plan discovers."""

import struct

import numpy as np
import pytest
import torch

from xtmr_core.damage import NON_FINITE_LOG2, damage_plan, delta_harm, scan_harm, top_pairs
from xtmr_core.formats import encode
from xtmr_core.injection import FaultInjector
from xtmr_core.memory import flat_weights, layout_of
from xtmr_core.protection import make_plan, overhead


def test_top_pairs_matches_a_sort_with_ties_broken_by_position():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 6, size=(40, 8)).astype(np.float32)
    keys[3, 2] = -np.inf
    order = sorted(range(keys.size), key=lambda i: (-keys.ravel()[i], i))
    for k in (0, 1, 17, 100, 319, 320, 400):
        got = np.flatnonzero(top_pairs(keys, k).ravel()).tolist()
        assert got == sorted(order[:k])


def test_delta_harm_matches_struct(tiny_model):
    flat = flat_weights(tiny_model)
    for fmt, code in (("fp32", "<f"), ("fp16", "<e")):
        stored = encode(flat, fmt)
        harm = delta_harm(stored)
        nb = stored.bits
        for w in (0, 7, 50):
            word = int(stored.words[w]) & ((1 << nb) - 1)
            pack = "<I" if nb == 32 else "<H"
            clean = struct.unpack(code, struct.pack(pack, word))[0]
            for b in range(nb):
                after = struct.unpack(code, struct.pack(pack, word ^ (1 << b)))[0]
                d = abs(after - clean)
                want = NON_FINITE_LOG2 if not np.isfinite(d) else np.log2(d)
                assert harm[w, b] == pytest.approx(want, rel=1e-6), (fmt, w, b)
    stored = encode(flat, "int8", layout_of(tiny_model))
    harm = delta_harm(stored)
    want = np.log2(stored.scale.astype(np.float64))[:, None] + np.arange(8)[None, :]
    assert np.allclose(harm, want, rtol=0, atol=1e-3)  # a flip of bit b moves q by 2^b steps


def test_budget_is_extra_memory_so_damage_2_costs_the_copies_of_lrp_1():
    n, nb = 10_000, 32
    scores = np.random.default_rng(1).random(n)
    harm = np.tile(np.arange(nb, dtype=np.float32) / 8, (n, 1))  # several bits of the top weights
    plan = damage_plan(scores, harm, 2, nb)
    lrp = make_plan("lrp", nb, budget=1, scores=scores)
    assert plan.protected_bits(n) == round(0.01 * n * nb) == lrp.protected_bits(n)
    o = overhead(plan, n, nb)
    assert o.copies_pct == pytest.approx(2.0) == overhead(lrp, n, nb).copies_pct and plan.label == "damage 2%"
    # index: which weights (bitmap or 32-bit indices), which positions occur, which of them each weight has
    k, used = plan.protected_weights(n), {b for m in plan.masks.tolist() for b in range(nb) if m >> b & 1}
    assert len(set(plan.masks.tolist())) > 1 and len(used) == len(plan.bits) < nb
    assert o.index_pct == pytest.approx(100 * (min(n, 32 * k) + nb + len(used) * k) / (n * nb))
    same = damage_plan(scores, np.tile(np.eye(nb, dtype=np.float32)[3] * 50, (n, 1)), 0.5, nb)
    assert same.bits == (3,) and overhead(same, n, nb).index_pct == pytest.approx(
        100 * (min(n, 32 * same.weights.size) + nb) / (n * nb)
    )
    assert overhead(make_plan("none", nb), n, nb).copies_pct == 0
    every = damage_plan(scores, harm, 200, nb)
    assert every.protected_bits(n) == n * nb  # every weight has the same (full) mask: no per-weight masks
    assert overhead(every, n, nb).index_pct == pytest.approx(100 * (n + nb) / (n * nb))
    scores[: n // 100] = 0  # 1% of the weights unprotected: masks differ, most pairs protected
    mixed = damage_plan(scores, np.random.default_rng(5).random((n, nb), dtype=np.float32) * 9, 190, nb)
    k = mixed.protected_weights(n)
    assert min(n, 32 * k) + nb + nb * k > n * nb  # so one bitmap over all pairs is the smaller index
    assert overhead(mixed, n, nb).index_pct == pytest.approx(100.0)


def test_pairs_are_chosen_by_score_times_harm():
    rng = np.random.default_rng(2)
    scores = rng.random(300) ** 3
    scores[:5] = 0
    harm = np.log2(rng.random((300, 8)) * 10).astype(np.float32)
    plan = damage_plan(scores, harm, 30, 8)
    chosen = np.zeros((300, 8), dtype=bool)
    for w, b in zip(*plan.pairs):
        chosen[w, b] = True
    damage = scores[:, None] * np.exp2(harm.astype(np.float64))
    assert chosen.sum() == round(0.15 * 300 * 8)
    assert damage[chosen].min() >= damage[~chosen].max() * (1 - 1e-5)
    assert not chosen[:5].any()  # no expected damage, not protected


def test_in_fp32_it_discovers_the_top_exponent_bit(tiny_model):
    inj = FaultInjector(tiny_model, "fp32", device=torch.device("cpu"))
    n = inj.n_weights
    assert np.abs(inj.clean_values).max() < 2  # bit 30 is 0 everywhere: flipping it multiplies by 2^128
    scores = np.random.default_rng(3).random(n)
    plan = damage_plan(scores, delta_harm(inj.stored), 2, 32)
    assert plan.bits == (30,)
    # one bit per weight (6.25% of copies) buys bit 30 of every weight, nothing else
    every = damage_plan(scores, delta_harm(inj.stored), 6.25, 32)
    assert every.bits == (30,) and every.weights.tolist() == list(range(n))
    wide = damage_plan(scores, delta_harm(inj.stored), 12.5, 32)  # two bits per weight
    assert set(wide.bits) <= set(range(23, 32)) and 30 in wide.bits  # exponent (and sign) before mantissa


def test_in_int8_it_protects_the_top_bits_of_the_most_relevant_weights(tiny_model):
    inj = FaultInjector(tiny_model, "int8", int8_granularity="tensor", device=torch.device("cpu"))
    n = inj.n_weights
    scores = np.random.default_rng(4).random(n)
    plan = damage_plan(scores, delta_harm(inj.stored), 8, 8)  # 4% of bits: 0.32 bits per weight
    assert set(plan.bits) <= {5, 6, 7} and 7 in plan.bits
    top7 = {int(w) for w, b in zip(*plan.pairs) if b == 7}
    conv = set(range(18))  # the conv layer (its own int8 scale): rank the fc layer's weights alone
    fc_scores = {w: scores[w] for w in range(18, n)}
    fc7 = top7 - conv
    assert fc7 and min(fc_scores[w] for w in fc7) >= max(fc_scores[w] for w in set(fc_scores) - fc7)


def test_scan_harm_ranks_bit_positions_by_measured_loss():
    harm = scan_harm(np.array([0.0, 0.0, 0.5, -0.1, 0.01, 0, 0, 0.2]), 50)
    assert harm.shape == (50, 8) and np.isneginf(harm[0, 0]) and np.isneginf(harm[0, 3])
    scores = np.linspace(1, 2, 50)
    plan = damage_plan(scores, harm, 2 * 100 * 60 / 400, 8)  # 60 pairs: bit 2 of all 50, bit 7 of the top 10
    pairs = list(zip(*(a.tolist() for a in plan.pairs)))
    assert {(w, 2) for w in range(50)} <= set(pairs) and {(w, 7) for w in range(40, 50)} <= set(pairs)


def test_a_flip_into_a_signalling_nan_ranks_as_non_finite_without_a_warning():
    from xtmr_core.damage import NON_FINITE_LOG2, delta_harm
    from xtmr_core.formats import encode

    harm = delta_harm(encode(np.array([1.25, 0.5], dtype=np.float32), "fp32"))  # 1.25's bit-30 flip: an sNaN
    assert harm[0, 30] == NON_FINITE_LOG2 and harm[1, 30] < NON_FINITE_LOG2
