"""Protection plans and their memory overhead."""

from dataclasses import replace

import numpy as np
import pytest

from xtmr_core.errors import XtmrError
from xtmr_core.plan_registry import PLAN_INFO, PlanInfo, register_plan, unregister_plan
from xtmr_core.protection import BUILDERS, ProtectionPlan, make_plan, overhead, spec_plan, top_weights
from xtmr_core.spec import CampaignSpec
from xtmr_core.vocabulary import parse_bits


def test_top_weights_picks_the_highest_scores_with_stable_ties():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.0, 0.3, 0.2, 0.8, 0.4, 0.6])
    assert top_weights(scores, 30).tolist() == [1, 3, 7]
    assert top_weights(scores, 10).tolist() == [1]
    assert top_weights(scores, 0).size == 0 and top_weights(scores, 100).size == 10
    # per layer: 20% of each 5-weight layer = the best one of each
    assert top_weights(scores, 20, offsets=np.array([0, 5, 10])).tolist() == [1, 7]


def test_selective_plan_overhead_counts_two_extra_copies_and_the_smaller_index():
    n = 10_000
    plan = make_plan("lrp", 32, budget=1, scores=np.arange(n, dtype=float))
    assert plan.weights.tolist() == list(range(n - 100, n)) and plan.label == "lrp 1%"
    o = overhead(plan, n, 32)
    assert o.protected_weights == 100 and o.protected_bits == 3200
    assert o.copies_pct == pytest.approx(2.0)
    # bitmap = 10,000 bits; 32-bit indices = 3,200 bits -> the indices win
    assert o.index_pct == pytest.approx(100 * 3200 / (n * 32))
    big = overhead(make_plan("magnitude", 32, budget=50, scores=np.arange(n, dtype=float)), n, 32)
    assert big.index_pct == pytest.approx(100 * n / (n * 32))  # the bitmap is smaller
    assert big.with_index_pct == pytest.approx(big.copies_pct + big.index_pct)


def test_full_bits_none_and_range_overheads():
    n = 1000
    assert overhead(make_plan("full", 32), n, 32).copies_pct == pytest.approx(200.0)
    assert overhead(make_plan("full", 32), n, 32).index_pct == 0
    bits = make_plan("bits", 32, bits=(30,))
    assert overhead(bits, n, 32).copies_pct == pytest.approx(200 / 32)
    assert overhead(make_plan("none", 32), n, 32).with_index_pct == 0
    guard = overhead(make_plan("range", 8), n, 8, n_layers=2)
    assert guard.copies_pct == 0 and guard.index_pct == pytest.approx(100 * 2 * 8 * 2 / (n * 8))


def test_ecc_overhead_is_eight_check_bits_per_64_bit_word_partial_last_word_included():
    for nb, n in ((32, 1000), (16, 1000), (8, 1000), (8, 1001)):
        plan = make_plan("ecc", nb)
        o = overhead(plan, n, nb)
        words = -(-n // (64 // nb))
        assert o.copies_pct == pytest.approx(100 * 8 * words / (n * nb)) and o.index_pct == 0
        assert o.protected_weights == n
    assert overhead(make_plan("ecc", 32), 1000, 32).copies_pct == pytest.approx(12.5)
    assert make_plan("ecc", 8).label == "ecc" and make_plan("ecc", 8, on_double="read").label == "ecc (DED read)"
    with pytest.raises(XtmrError, match="double-error"):
        make_plan("ecc", 8, on_double="drop")


def test_range_guard_combines_with_any_plan_at_the_cost_of_its_bounds():
    n, layers = 10_000, 4
    scores = np.arange(n, dtype=float)
    for protect in ("lrp", "full", "bits", "ecc"):
        plain = make_plan(protect, 32, budget=1, scores=scores, bits=(30,))
        guarded = make_plan(protect, 32, budget=1, scores=scores, bits=(30,), guard=True)
        assert guarded.guard and not plain.guard and replace(plain, guard=True).label == guarded.label
        assert guarded.label == plain.label + " +range"
        a, b = overhead(plain, n, 32, layers), overhead(guarded, n, 32, layers)
        assert b.copies_pct == a.copies_pct
        assert b.index_pct - a.index_pct == pytest.approx(100 * 2 * 32 * layers / (n * 32))
    assert make_plan("lrp", 32, budget=1, scores=scores, guard=True).label == "lrp 1% +range"
    assert make_plan("range", 32, guard=True).label == "range guard"


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(protect="lrp", budget=101, scores=np.ones(4)), "budget"),
        (dict(protect="lrp", budget=-1, scores=np.ones(4)), "budget"),
        (dict(protect="bits", bits=(32,)), "outside"),
        (dict(protect="bits"), "no bit positions given"),
        (dict(protect="best"), "unknown protection"),
    ],
)
def test_bad_plans_are_clear_errors(kwargs, msg):
    protect = kwargs.pop("protect")
    with pytest.raises(XtmrError, match=msg):
        make_plan(protect, 32, **kwargs)


def test_parse_bits():
    assert parse_bits("30") == (30,)
    assert parse_bits("23-25,31") == (23, 24, 25, 31)
    for bad in ("", "a", "5-3", "-1"):
        with pytest.raises(XtmrError):
            parse_bits(bad)


def test_spec_plan_asks_for_scores_and_harms_only_when_its_builder_needs_them():
    n, asked = 400, []

    def scores(scorer):
        asked.append(scorer)
        return np.arange(n, dtype=float)

    def harm():
        asked.append("harm")
        return np.tile(np.arange(32, dtype=np.float32), (n, 1))

    offsets = np.array([0, 100, n])
    for spec, wanted in [
        (CampaignSpec("full"), []),
        (CampaignSpec("bits", bits=(30,)), []),
        (CampaignSpec("ecc"), []),
        (CampaignSpec("magnitude", 5), ["magnitude"]),
        (CampaignSpec("lrp", 5, per_layer=True), ["lrp"]),
        (CampaignSpec("damage", 2, scorer="taylor"), ["taylor", "harm"]),
    ]:
        asked.clear()
        plan = spec_plan(spec, scores=scores, harm=harm, offsets=offsets)
        assert asked == wanted and plan.protect == spec.protect
    # per layer ranks within [0, 100) and [100, 400): the top 5% of each
    assert spec_plan(CampaignSpec("lrp", 5, per_layer=True), scores=scores, offsets=offsets).weights.tolist() == [
        *range(95, 100),
        *range(385, 400),
    ]
    damage = spec_plan(CampaignSpec("damage", 2, scorer="taylor", harm="scan"), scores=scores, harm=harm)
    assert damage.label == "damage 2% (taylor, scan)" and damage.masks is not None
    with pytest.raises(ValueError, match="needs harms"):
        make_plan("damage", 32, budget=2, scores=np.ones(4))
    with pytest.raises(ValueError, match="needs scores"):
        spec_plan(CampaignSpec("lrp", 1))


def test_a_plan_with_a_read_path_injection_lacks_is_refused_when_built():
    assert make_plan("ecc", 32).ecc and not make_plan("full", 32).ecc
    with pytest.raises(ValueError, match="unknown read path 'hamming'"):
        ProtectionPlan("x", None, (), read_path="hamming")


def test_every_registered_plan_has_a_builder_and_a_plan_without_one_says_so():
    assert set(BUILDERS) == set(PLAN_INFO)
    register_plan(PlanInfo("unbuilt", "not built", None, False, (), "#010203"))
    try:
        with pytest.raises(XtmrError, match="'unbuilt' has no builder"):
            make_plan("unbuilt", 32)
    finally:
        unregister_plan("unbuilt")
