"""The Experiment facade on the shipped default: caching, plans, concurrency, the golden rule."""

import threading

import numpy as np
import pytest

from xtmr_core.experiment import Experiment
from xtmr_core.spec import CampaignSpec


@pytest.fixture(scope="module")
def exp():
    return Experiment("lenet5", "mnist5k")


def test_scores_are_cached_and_plans_use_them(exp):
    s = exp.scores("magnitude")
    assert s is exp.scores("magnitude") and s.size == exp.n_weights
    plan = exp.plan(CampaignSpec("magnitude", 1.0))
    assert plan.weights.size == round(0.01 * exp.n_weights)
    assert np.all(s[plan.weights] >= np.sort(s)[-plan.weights.size])
    per_layer = exp.plan(CampaignSpec("magnitude", 10.0, per_layer=True))
    counts = np.bincount(exp.layout.layer_of(per_layer.weights), minlength=len(exp.layout.names))
    assert counts.tolist() == [round(0.1 * n) for n in exp.layout.sizes()]


def test_int8_clean_accuracy_is_close_to_fp32(exp):
    assert abs(exp.clean_accuracy("int8") - exp.clean_accuracy("fp32")) < 0.02
    assert exp.clean_accuracy("fp32") >= 0.95


def test_faults_of_trial_are_the_faults_the_campaign_draws(exp):
    spec = CampaignSpec("lrp", 1.0, 1e-4, trials=2, seed=3)
    a, b = exp.faults_of_trial(spec, 1), exp.faults_of_trial(spec, 1)
    assert a.count > 0 and np.array_equal(a.weight, b.weight) and np.array_equal(a.bit, b.bit)
    assert exp.evaluate(spec).flips == [exp.faults_of_trial(spec, t).count for t in range(2)]


def test_full_tmr_beats_no_protection_at_a_high_ber(exp):
    none = exp.evaluate(CampaignSpec("none", ber=1e-3, trials=4))
    full = exp.evaluate(CampaignSpec("full", ber=1e-3, trials=4))
    assert full.mean_accuracy > none.mean_accuracy + 0.2


def test_concurrent_campaigns_match_sequential_ones_and_leave_the_model_alone(exp):
    before = exp.weights_checksum()
    want = {p: exp.evaluate(CampaignSpec(p, 1.0, 1e-4, trials=3, seed=7)).accuracies for p in ("none", "lrp")}
    got, errors = {}, []

    def work(protect):
        try:
            got[protect] = exp.evaluate(CampaignSpec(protect, 1.0, 1e-4, trials=3, seed=7)).accuracies
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(p,)) for p in ("none", "lrp")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == want
    assert exp.weights_checksum() == before and exp.injector("fp32").is_clean()
