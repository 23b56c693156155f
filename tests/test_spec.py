"""CampaignSpec: normalised, hashable, checked before any work."""

import pytest

from xtmr_core.errors import XtmrError
from xtmr_core.plan_registry import plan_info
from xtmr_core.spec import CampaignSpec, grid, split_plan_name
from xtmr_core.vocabulary import PLANS


def test_fields_a_plan_ignores_are_normalised_so_equal_campaigns_share_a_key():
    a = CampaignSpec("none", budget=5.0, rule="gamma", bits=(30,), per_layer=True)
    b = CampaignSpec("none")
    assert a == b and hash(a) == hash(b)
    assert CampaignSpec("full", fmt="fp32", int8_granularity="tensor") == CampaignSpec("full")
    assert CampaignSpec("lrp", 1, rule="gamma") != CampaignSpec("lrp", 1)
    assert CampaignSpec("magnitude", 1, rule="gamma") == CampaignSpec("magnitude", 1)
    assert CampaignSpec("bits", bits=(30, 30, 23)).bits == (23, 30)
    assert CampaignSpec("range", guard=True) == CampaignSpec("range")


@pytest.mark.parametrize("protect", PLANS)
def test_every_plan_builds_and_its_point_has_no_protection(protect):
    spec = CampaignSpec(protect, budget=2, bits=(30,), ber=1e-3, trials=7, seed=3)
    point = spec.point
    assert point.protect == "none" and (point.ber, point.trials, point.seed) == (1e-3, 7, 3)
    assert (spec.budget == 2.0) == plan_info(protect).uses_budget  # which are: tests/test_plan_registry.py


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ber": 2},
        {"ber": -1e-3},
        {"budget": 101, "protect": "lrp"},
        {"trials": 0},
        {"trials": 2.5},
        {"seed": -1},
        {"seed": 2**63},
        {"protect": "bits"},
        {"protect": "bits", "bits": (32,)},
        {"protect": "bits", "bits": (8,), "fmt": "int8"},
        {"fault_bits": (40,)},
        {"fmt": "fp64"},
        {"protect": "tmr"},
        {"mode": "stuck2"},
        {"rule": "zplus", "protect": "lrp"},
    ],
)
def test_bad_fields_are_one_line_errors(kwargs):
    with pytest.raises(XtmrError) as err:
        CampaignSpec(**kwargs)
    assert "\n" not in str(err.value)


def test_numpy_integers_are_accepted_and_stored_as_int():
    np = pytest.importorskip("numpy")
    spec = CampaignSpec(trials=np.int64(5), seed=np.int32(2))
    assert type(spec.trials) is int and type(spec.seed) is int


def test_new_plan_fields_are_normalised_when_the_plan_ignores_them():
    assert CampaignSpec("lrp", budget=1, ecc_double="read", scorer="taylor", harm="scan") == CampaignSpec(
        "lrp", budget=1
    )
    assert CampaignSpec("ecc", ecc_double="read").ecc_double == "read"
    d = CampaignSpec("damage", budget=150, scorer="magnitude", harm="scan", rule="gamma")
    assert (d.budget, d.scorer, d.harm, d.rule) == (150.0, "magnitude", "scan", "epsilon")
    assert CampaignSpec("damage", budget=2, rule="gamma").rule == "gamma"  # scored by lrp: the rule counts
    assert CampaignSpec("none", guard=True) == CampaignSpec("range")
    assert CampaignSpec("lrp", budget=1, guard=True).point == CampaignSpec("lrp", budget=1).point
    for bad in ({"ecc_double": "drop"}, {"scorer": "best"}, {"harm": "max"}):
        with pytest.raises(XtmrError):
            CampaignSpec("damage", budget=2, **bad)
    with pytest.raises(XtmrError, match="200"):
        CampaignSpec("damage", budget=201)


def test_grid_gives_damage_its_budgets_and_reads_plus_range_as_the_guard():
    specs = grid(["none", "lrp+range", "damage", "ecc"], [1, 2], [1e-4], ["fp32"], trials=3)
    got = [(s.protect, s.budget, s.guard) for s in specs]
    assert got == [
        ("none", 0.0, False),
        ("lrp", 1.0, True),
        ("lrp", 2.0, True),
        ("damage", 1.0, False),
        ("damage", 2.0, False),
        ("ecc", 0.0, False),
    ]
    assert split_plan_name("ecc+range") == ("ecc", True) and split_plan_name("range") == ("range", False)
