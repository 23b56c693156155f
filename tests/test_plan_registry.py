"""The plan registry: one description per plan that vocabulary, spec and the CLI's checks read live."""

import pytest

from xtmr_core import vocabulary
from xtmr_core.errors import XtmrError
from xtmr_core.plan_registry import (
    PLAN_INFO,
    PLAN_SPEC_FIELDS,
    PlanInfo,
    plan_info,
    plan_names,
    register_plan,
    unregister_plan,
)
from xtmr_core.spec import PLAN_FIELDS, CampaignSpec, grid


def test_registry_agrees_with_vocabulary_and_spec():
    assert vocabulary.PLANS == tuple(PLAN_INFO) == plan_names()
    assert vocabulary.PLAN_NAMES == vocabulary.plan_names(guarded=True)
    assert "none+range" not in vocabulary.PLAN_NAMES and "range+range" not in vocabulary.PLAN_NAMES
    assert "lrp+range" in vocabulary.PLAN_NAMES and "ecc+range" in vocabulary.PLAN_NAMES
    assert set(PLAN_SPEC_FIELDS) == set(PLAN_FIELDS) - {"protect"}
    assert set(vocabulary.SCORERS) <= set(PLAN_INFO)  # every scorer is also a plan ranking by it


#: The plans the registry was built from, as the code before it spelled them (a plan added later is not held to these).
BUILT_IN = ("none", "lrp", "magnitude", "gradient", "taylor", "random", "full", "bits", "range", "ecc", "damage")


def test_budgets_units_and_colours():
    assert tuple(PLAN_INFO)[: len(BUILT_IN)] == BUILT_IN
    budgeted = {name for name in BUILT_IN if PLAN_INFO[name].uses_budget}
    assert budgeted == {*vocabulary.SCORERS, "damage"}
    assert {PLAN_INFO[s].budget_unit for s in vocabulary.SCORERS} == {"% of weights"}
    assert plan_info("damage").budget_unit == "% extra memory" and plan_info("damage").budget_max == 200
    colours = [info.colour for info in PLAN_INFO.values()]
    assert len(set(colours)) == len(colours) and all(c.startswith("#") and len(c) == 7 for c in colours)
    assert {n for n in BUILT_IN if PLAN_INFO[n].needs_reference} == {"lrp", "gradient", "taylor", "damage"}


def test_spec_fields_decide_what_a_spec_keeps():
    """A field a plan does not list is normalised away; one it lists is kept."""
    changed = {
        "budget": 3.0,
        "bits": (30,),
        "rule": "gamma",
        "per_layer": True,
        "guard": True,
        "ecc_double": "read",
        "scorer": "magnitude",
        "harm": "scan",
    }
    for name, info in PLAN_INFO.items():
        if name in ("none", "range"):
            continue  # none + the guard is range; range is the guard
        for field, value in changed.items():
            base = {"bits": (31,)} if name == "bits" else {}  # a bits plan needs some bits
            spec = CampaignSpec(name, **{**base, field: value})
            kept = getattr(spec, field) == value
            assert kept == (field in info.spec_fields), (name, field)
    # the LRP rule applies only where the plan ranks by LRP
    assert CampaignSpec("damage", 2, scorer="magnitude", rule="gamma").rule == "epsilon"
    assert CampaignSpec("damage", 2, rule="gamma").rule == "gamma"


def test_unknown_plan_names_the_known_ones():
    with pytest.raises(XtmrError, match="unknown protection 'nope': choose one of none, lrp"):
        plan_info("nope")
    with pytest.raises(XtmrError, match="choose one of"):
        CampaignSpec("nope")


def test_malformed_plan_infos_are_refused():
    with pytest.raises(XtmrError, match="budget unit"):
        PlanInfo("x", "x", "% of weights", False, ("guard",), "#000000")
    with pytest.raises(XtmrError, match="unknown spec field"):
        PlanInfo("x", "x", None, False, ("colour",), "#000000")
    with pytest.raises(XtmrError, match="hex code"):
        PlanInfo("x", "x", None, False, (), "red")
    with pytest.raises(XtmrError, match="plain word"):
        register_plan(PlanInfo("a b", "x", None, False, (), "#000000"))


def test_a_registered_plan_is_a_name_everywhere_at_once():
    info = PlanInfo("every_kth", "every k-th weight", "% of weights", False, ("budget", "guard"), "#123456")
    register_plan(info)
    try:
        assert "every_kth" in plan_names() and "every_kth+range" in vocabulary.plan_names(guarded=True)
        spec = CampaignSpec("every_kth", budget=5, bits=(3,), rule="gamma", guard=True)
        assert (spec.budget, spec.bits, spec.rule, spec.guard) == (5.0, None, "epsilon", True)
        assert [s.budget for s in grid(["every_kth", "full"], [1, 2], [1e-4], ["fp32"])] == [1.0, 2.0, 0.0]
        with pytest.raises(XtmrError, match="budget must be"):
            CampaignSpec("every_kth", budget=120)
    finally:
        unregister_plan("every_kth")
    assert "every_kth" not in plan_names()
    with pytest.raises(XtmrError):
        CampaignSpec("every_kth")
