"""Fault campaigns: N seeded trials of one configuration, summarised with a confidence interval."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from xtmr_core.evaluation import accuracy, mismatch, predict
from xtmr_core.faults import FaultModel, FaultSet
from xtmr_core.injection import FaultInjector
from xtmr_core.protection import Overhead, ProtectionPlan, overhead
from xtmr_core.stats import ci_half_width, mean_ci


def trial_rng(seed: int, trial: int) -> np.random.Generator:
    """The random generator of one trial: trial ``t`` of seed ``s`` draws the same faults every time,
    whatever other trials ran before it."""
    return np.random.default_rng([int(seed), int(trial)])


def trial_faults(injector: FaultInjector, plan: ProtectionPlan, fault: FaultModel, seed: int, trial: int) -> FaultSet:
    """The exact faults of trial ``trial`` of a campaign with ``seed`` (for export and inspection)."""
    return injector.sample(plan, fault, trial_rng(seed, trial))


@dataclass
class CampaignResult:
    """The outcome of one campaign.

    Attributes:
        protect, plan, budget, ber, format, mode: the configuration (``plan`` is the human label).
        clean_accuracy: accuracy of the clean model stored in this format, without faults.
        accuracies, mismatches, flips: per-trial accuracy, mismatch rate against the clean model's
            predictions, and number of faulty stored bits.
        overhead: the plan's memory overhead.
        seed: the campaign seed. stopped_early: whether the CI target ended it before ``trials``.
    """

    protect: str
    plan: str
    budget: float | None
    ber: float
    format: str
    mode: str
    clean_accuracy: float
    overhead: Overhead
    seed: int
    accuracies: list[float] = field(default_factory=list)
    mismatches: list[float] = field(default_factory=list)
    flips: list[int] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def trials(self) -> int:
        """Number of trials run."""
        return len(self.accuracies)

    @property
    def mean_accuracy(self) -> float:
        """Mean accuracy over trials."""
        return float(np.mean(self.accuracies)) if self.accuracies else math.nan

    @property
    def ci95(self) -> tuple[float, float]:
        """95% confidence interval of the mean accuracy, clipped to [0, 1] (accuracy cannot leave it)."""
        lo, hi = mean_ci(self.accuracies)
        return (lo, hi) if math.isnan(lo) else (max(0.0, lo), min(1.0, hi))

    @property
    def min_accuracy(self) -> float:
        """Worst trial's accuracy."""
        return float(np.min(self.accuracies)) if self.accuracies else math.nan

    @property
    def mismatch_rate(self) -> float:
        """Mean share of predictions that differ from the clean model's."""
        return float(np.mean(self.mismatches)) if self.mismatches else math.nan

    @property
    def mean_bit_flips(self) -> float:
        """Mean number of faulty stored bits per trial."""
        return float(np.mean(self.flips)) if self.flips else math.nan

    def to_dict(self) -> dict:
        """A JSON-ready summary (NaN becomes ``None``)."""

        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "protect": self.protect,
            "plan": self.plan,
            "budget": self.budget,
            "ber": self.ber,
            "format": self.format,
            "mode": self.mode,
            "seed": self.seed,
            "trials": self.trials,
            "clean_accuracy": self.clean_accuracy,
            "mean_accuracy": clean(self.mean_accuracy),
            "ci95": [clean(v) for v in self.ci95],
            "min_accuracy": clean(self.min_accuracy),
            "mismatch_rate": clean(self.mismatch_rate),
            "mean_bit_flips": clean(self.mean_bit_flips),
            "protected_weights": self.overhead.protected_weights,
            "protected_bits": self.overhead.protected_bits,
            "overhead_pct": self.overhead.copies_pct,
            "overhead_with_index_pct": self.overhead.with_index_pct,
            "stopped_early": self.stopped_early,
            "accuracies": list(self.accuracies),
            "flips": list(self.flips),
        }


def run_trial(
    injector: FaultInjector,
    plan: ProtectionPlan,
    fault: FaultModel,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_pred: torch.Tensor,
    seed: int,
    trial: int,
    *,
    skip_clean: bool = True,
) -> tuple[float, float, int]:
    """One trial: sample faults, read the voted weights back, evaluate, restore.

    Args:
        injector, plan, fault: what is faulted, how it is protected, how it fails.
        x, y: the test split. clean_pred: the clean model's predictions on ``x``.
        seed, trial: which trial (its faults depend on these alone).
        skip_clean: when every weight reads back bit-identical to the clean one (no fault, or every
            fault outvoted or masked), reuse ``clean_pred`` instead of evaluating: same result, no cost.

    Returns:
        ``(accuracy, mismatch, faulty_bits)``.
    """
    faults = trial_faults(injector, plan, fault, seed, trial)
    index, values = injector.read(faults, plan, fault.mode)
    if skip_clean and np.array_equal(values.view(np.uint32), injector.clean_values[index].view(np.uint32)):
        return accuracy(clean_pred, y), 0.0, faults.count
    with injector.applied(index, values) as model:
        pred = predict(model, x)
    return accuracy(pred, y), mismatch(pred, clean_pred), faults.count


def _may_stop(accuracies: list[float], ci_target: float, min_trials: int) -> bool:
    """Whether a campaign has a narrow enough CI to stop.

    Identical trials give a zero-width CI that says little about rare catastrophic flips (after n clean
    trials an event of rate 3/n is still plausible, the rule of three), so such a run needs 3x the trials.
    """
    n = len(accuracies)
    needed = min_trials if min(accuracies) != max(accuracies) else 3 * min_trials
    return n >= needed and ci_half_width(accuracies) <= ci_target


def run_campaign(
    injector: FaultInjector,
    plan: ProtectionPlan,
    fault: FaultModel,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    trials: int = 20,
    seed: int = 0,
    clean_pred: torch.Tensor | None = None,
    ci_target: float | None = None,
    min_trials: int = 10,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CampaignResult:
    """Run up to ``trials`` seeded trials of one configuration.

    Args:
        injector: the fault injector (its format decides the stored words).
        plan: the protection plan. fault: the fault model.
        x, y: the test split, on the injector's device.
        trials: maximum number of trials.
        seed: campaign seed; trial ``t`` uses ``trial_rng(seed, t)``.
        clean_pred: the clean model's predictions on ``x`` (computed if ``None``).
        ci_target: stop early once the 95% CI half-width of the accuracy is below this (after
            ``min_trials`` trials; after ``3 * min_trials`` when every trial so far gave the same accuracy).
        progress: called with ``(done, trials)`` after each trial.
        should_stop: polled after each trial; ``True`` ends the campaign with the trials run so far.

    Returns:
        The ``CampaignResult``.
    """
    if int(trials) < 1:
        raise ValueError("a campaign needs at least one trial")
    if clean_pred is None:
        with injector.clean() as model:
            clean_pred = predict(model, x)
    result = CampaignResult(
        protect=plan.protect,
        plan=plan.label,
        budget=plan.budget,
        ber=float(fault.ber),
        format=injector.format,
        mode=fault.mode,
        clean_accuracy=accuracy(clean_pred, y),
        overhead=overhead(plan, injector.n_weights, injector.stored.bits, len(injector.layout.names)),
        seed=int(seed),
    )
    for t in range(int(trials)):
        acc, mis, flips = run_trial(injector, plan, fault, x, y, clean_pred, seed, t)
        result.accuracies.append(acc)
        result.mismatches.append(mis)
        result.flips.append(flips)
        if progress is not None:
            progress(t + 1, int(trials))
        if ci_target is not None and t + 1 < trials and _may_stop(result.accuracies, ci_target, min_trials):
            result.stopped_early = True
            break
        if should_stop is not None and should_stop():
            break
    return result
