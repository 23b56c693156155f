"""Adding a plan takes its registry entry and its builder, nothing else: a toy plan, defined here, runs
through the CLI's ``evaluate`` (the worked example of docs/ARCHITECTURE.md, "Adding a plan")."""

import json

import numpy as np
import pytest

from xtmr_core import protection
from xtmr_core.cli import main
from xtmr_core.plan_registry import PlanInfo, plan_names, register_plan, unregister_plan
from xtmr_core.protection import PlanRequest, ProtectionPlan, register_builder


@pytest.fixture
def every_kth():
    """The toy plan ``every_kth``: every bit of every k-th weight, k = 100 / budget (no scores needed)."""
    # 1. describe it (xtmr_core/plan_registry.py: one PLAN_INFO entry)
    register_plan(
        PlanInfo(
            name="every_kth",
            label="every k-th weight: every bit of one weight in 100/budget",
            budget_unit="% of weights",
            needs_reference=False,
            spec_fields=("budget", "guard"),
            colour="#2c7a7b",
        )
    )

    # 2. build it (xtmr_core/protection.py: one builder)
    @register_builder("every_kth")
    def _every_kth(r: PlanRequest) -> ProtectionPlan:
        step = max(1, round(100 / r.budget)) if r.budget > 0 else 0
        n = r.n_weights or 0
        weights = np.arange(0, n, step, dtype=np.int64) if step else np.zeros(0, dtype=np.int64)
        return ProtectionPlan("every_kth", weights, r.every_bit, budget=r.budget)

    yield
    unregister_plan("every_kth")
    protection.BUILDERS.pop("every_kth")


BER = "3e-5"


def _evaluate(capsys, *argv):
    base = ["evaluate", "--model", "lenet5", "--ber", BER, "--trials", "4", "--design", "plain", "--json"]
    assert main([*base, "--store", "none", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_toy_plan_runs_through_evaluate(every_kth, capsys):
    toy = _evaluate(capsys, "--protect", "every_kth", "--budget", "50")
    none = toy["baseline"]
    assert toy["protect"] == "every_kth" and toy["plan"] == "every_kth 50%" and toy["trials"] == 4
    # every other weight, every bit: two extra copies of half the memory
    assert toy["overhead_pct"] == pytest.approx(100.0, abs=0.01)
    assert toy["protected_bits"] == 32 * toy["protected_weights"]
    # on the same trials it keeps at least the unprotected accuracy, and the faults it outvotes show
    assert none["accuracies"] != toy["accuracies"]
    assert all(a >= b for a, b in zip(toy["accuracies"], none["accuracies"]))
    assert toy["mean_accuracy"] >= none["mean_accuracy"]
    assert toy["mean_bit_flips"] > none["mean_bit_flips"]  # its copies fail too
    guarded = _evaluate(capsys, "--protect", "every_kth+range", "--budget", "50")
    assert guarded["plan"] == "every_kth 50% +range"


def test_the_toy_plan_is_gone_after_the_test(capsys):
    assert "every_kth" not in plan_names()
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--protect", "every_kth"])
    assert exit_.value.code == 2
    assert "every_kth" in capsys.readouterr().err
