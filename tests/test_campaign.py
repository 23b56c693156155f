"""Campaigns: seeded, summarised honestly, non-finite outputs wrong, the clean model untouched."""

import math

import numpy as np
import pytest
import torch
from conftest import same_state, state_bytes

from xtmr_core import campaign as campaign_mod
from xtmr_core.campaign import PointHooks, PointOptions, run_campaign, run_point
from xtmr_core.faults import FaultModel
from xtmr_core.injection import FaultInjector, TrialSetup, trial_faults
from xtmr_core.protection import make_plan
from xtmr_core.stats import mean_interval, paired_interval, ratio_interval

CPU = torch.device("cpu")


def test_zero_ber_gives_the_clean_accuracy_in_every_trial(tiny_model, tiny_data):
    x, y = tiny_data
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    r = run_campaign(inj, make_plan("none", 32), FaultModel(0.0), x, y, PointOptions(trials=3))
    assert r.clean_accuracy == pytest.approx(0.9)
    assert r.accuracies == [r.clean_accuracy] * 3 and r.flips == [0, 0, 0] and r.mismatch_rate == 0


def test_campaign_summary_matches_its_trials_and_is_reproducible(tiny_model, tiny_data):
    x, y = tiny_data
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    plan, fault = make_plan("none", 32), FaultModel(0.01)
    a = run_campaign(inj, plan, fault, x, y, PointOptions(trials=12, seed=4))
    b = run_campaign(inj, plan, fault, x, y, PointOptions(trials=12, seed=4))
    c = run_campaign(inj, plan, fault, x, y, PointOptions(trials=12, seed=5))
    assert a.accuracies == b.accuracies and a.flips == b.flips and a.accuracies != c.accuracies
    d = a.to_dict()
    assert d["mean_accuracy"] == pytest.approx(np.mean(a.accuracies))
    iv = mean_interval(a.accuracies, np.stack(a.correct)).clipped()
    assert d["ci95"] == pytest.approx([iv.low, iv.high]) and d["interval"]["half_width"] == pytest.approx(iv.half_width)
    assert np.allclose([c.mean() for c in a.correct], a.accuracies)
    assert d["min_accuracy"] == min(a.accuracies) and d["trials"] == 12
    assert d["mean_bit_flips"] == pytest.approx(
        np.mean([trial_faults(inj, plan, fault, 4, t).count for t in range(12)])
    )
    assert 0 < d["mean_bit_flips"] and d["mean_accuracy"] < d["clean_accuracy"]


def test_non_finite_outputs_count_as_wrong_not_a_crash(tiny_model, tiny_data):
    x, y = tiny_data
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    r = run_campaign(
        inj,
        make_plan("none", 32),
        FaultModel(1.0, mode="stuck1", bits=(23, 24, 25, 26, 27, 28, 29, 30)),
        x,
        y,
        PointOptions(trials=2),
    )
    assert r.accuracies == [0.0, 0.0] and r.mismatches == [1.0, 1.0]


def test_full_tmr_recovers_what_no_protection_loses(tiny_model, tiny_data):
    x, y = tiny_data
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    fault = FaultModel(0.02, bits=(30,))
    none = run_campaign(inj, make_plan("none", 32), fault, x, y, PointOptions(trials=10))
    full = run_campaign(inj, make_plan("full", 32), fault, x, y, PointOptions(trials=10))
    assert none.mean_accuracy < full.mean_accuracy
    assert full.overhead.copies_pct == pytest.approx(200)


def test_a_campaign_runs_a_fixed_number_of_trials_unless_cancelled(tiny_model, tiny_data):
    x, y = tiny_data
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    r = run_campaign(inj, make_plan("none", 32), FaultModel(1e-6), x, y, PointOptions(trials=15))
    assert r.trials == 15 and not hasattr(r, "stopped_early")
    stopped = run_campaign(
        inj,
        make_plan("none", 32),
        FaultModel(1e-6),
        x,
        y,
        PointOptions(trials=100),
        PointHooks(should_stop=lambda: True),
    )
    assert stopped.trials == 1


def test_a_point_runs_every_plan_on_the_same_trials_and_pairs_them(tiny_model, tiny_data):
    x, y = tiny_data
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    fault = FaultModel(0.01)
    plans = [make_plan("lrp", 32, budget=20, scores=np.abs(inj.clean_values)), make_plan("full", 32)]
    seen = []
    point = run_point(
        inj, plans, fault, x, y, PointOptions(trials=12, seed=3), PointHooks(on_trial=lambda p: seen.append(p.trials))
    )
    assert [r.protect for r in point.results] == ["none", "lrp", "full"] and seen == list(range(1, 13))
    assert {r.trials for r in point.results} == {12}
    # each plan alone gives exactly its column of the point: same (seed, trial), same primary faults
    for plan, r in zip([make_plan("none", 32), *plans], point.results):
        assert run_campaign(inj, plan, fault, x, y, PointOptions(trials=12, seed=3)).accuracies == r.accuracies
    for t in range(12):
        prim = [trial_faults(inj, p, fault, 3, t) for p in [make_plan("none", 32), *plans]]
        assert all(np.array_equal(f.weight[f.copy == 0], prim[0].weight) for f in prim)
    base, lrp = point.results[0], point.results[1]
    diff = point.difference("lrp 20%")
    assert diff == paired_interval(lrp.accuracies, base.accuracies, np.stack(lrp.correct), np.stack(base.correct))
    assert diff.estimate == pytest.approx(np.mean(np.subtract(lrp.accuracies, base.accuracies)))
    assert point.recovered(1) == ratio_interval(
        "recovered",
        lrp.accuracies,
        base.accuracies,
        base.clean_accuracy,
        np.stack(lrp.correct),
        np.stack(base.correct),
        base.clean_correct,
    )
    assert point.verdict(2) == "helps" and point.results[2].mean_accuracy > base.mean_accuracy
    assert point.difference(1, k=5).n == 5
    d = point.to_dict()
    assert d["trials"] == 12 and [p["trials"] for p in d["plans"]] == [12] * 3 and "difference" in d["plans"][1]
    stopped = run_point(inj, plans, fault, x, y, PointOptions(trials=50), PointHooks(should_stop=lambda: True))
    assert [r.trials for r in stopped.results] == [1, 1, 1]


def test_clean_model_is_bit_identical_after_a_campaign_that_raised(tiny_model, tiny_data, monkeypatch):
    x, y = tiny_data
    saved = state_bytes(tiny_model)
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    calls = {"n": 0}
    real = campaign_mod.predict

    def flaky(model, data):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("trial crashed")
        return real(model, data)

    monkeypatch.setattr(campaign_mod, "predict", flaky)
    with pytest.raises(RuntimeError):
        run_campaign(
            inj,
            make_plan("lrp", 32, budget=10, scores=np.abs(inj.clean_values)),
            FaultModel(0.2),
            x,
            y,
            PointOptions(trials=5),
        )
    assert inj.is_clean() and same_state(tiny_model, saved)
    assert math.isclose(
        run_campaign(inj, make_plan("none", 32), FaultModel(0.0), x, y, PointOptions(trials=1)).mean_accuracy, 0.9
    )


def test_a_trial_whose_faults_are_all_outvoted_skips_evaluation_with_the_same_result(
    tiny_model, tiny_data, monkeypatch
):
    x, y = tiny_data
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    plan, fault = make_plan("full", 32), FaultModel(0.002)
    full = run_campaign(inj, plan, fault, x, y, PointOptions(trials=20, seed=1))
    assert sum(full.flips) > 0
    evaluated = []
    real = campaign_mod.predict
    monkeypatch.setattr(campaign_mod, "predict", lambda m, d: evaluated.append(1) or real(m, d))
    slow = [
        campaign_mod.run_trial(TrialSetup(inj, plan, fault, x, y, real(inj.worker, x), 1), t, skip_clean=False)
        for t in range(20)
    ]
    assert [a for a, _, _ in slow] == full.accuracies and len(evaluated) == 20


@pytest.mark.parametrize("per_pass", [1, 4])
def test_known_outcomes_are_taken_as_they_are_and_only_the_rest_run(tiny_model, tiny_data, per_pass):
    x, y = tiny_data
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    plans, fault = [make_plan("full", 32)], FaultModel(0.01)
    full = run_point(inj, plans, fault, x, y, PointOptions(trials=6, seed=2, per_pass=per_pass))

    # the baseline's even trials and the plan's first are known; a marker accuracy shows they were not rerun
    def outcome(r, t):
        return r.accuracies[t], r.mismatches[t], r.flips[t], r.correct[t]

    known = [{t: (-1.0, *outcome(full.results[0], t)[1:]) for t in (0, 2, 4)}, {0: outcome(full.results[1], 0)}]
    calls = []
    hooks = PointHooks(
        progress=lambda done, n: calls.append(("progress", done, n)),
        on_trial=lambda p: calls.append(("trial", p.trials)),
        on_computed=lambda t, ran: calls.append(("computed", t, [pi for pi, _, _ in ran])),
    )
    options = PointOptions(trials=6, seed=2, per_pass=per_pass, known=known)
    part = run_point(inj, plans, fault, x, y, options, hooks)
    assert part.results[0].accuracies == [-1.0 if t % 2 == 0 else a for t, a in enumerate(full.results[0].accuracies)]
    assert part.results[1].accuracies == full.results[1].accuracies
    assert calls[:3] == [("trial", 1), ("progress", 1, 6), ("computed", 1, [0, 1])]  # trial 0 ran nothing
    assert [c[1:] for c in calls if c[0] == "computed"] == [(1, [0, 1]), (2, [1]), (3, [0, 1]), (4, [1]), (5, [0, 1])]
    with pytest.raises(ValueError, match="known outcomes for 1 plans, the point has 2"):
        run_point(inj, plans, fault, x, y, PointOptions(trials=2, known=known[:1]))


def test_a_lone_campaign_runs_its_plan_without_the_baseline_whatever_the_options_say(tiny_model, tiny_data):
    x, y = tiny_data
    inj = FaultInjector(tiny_model, "fp32", device=CPU)
    plan, fault = make_plan("full", 32), FaultModel(0.01)
    alone = run_campaign(inj, plan, fault, x, y, PointOptions(trials=4, seed=1, baseline=True))
    assert alone.protect == "full"
    assert alone.accuracies == run_point(inj, [plan], fault, x, y, PointOptions(trials=4, seed=1)).results[1].accuracies
