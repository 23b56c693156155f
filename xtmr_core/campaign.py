"""Fault campaigns: N seeded trials of one configuration, and paired grid points (all plans of one point on
the same trials), summarised with intervals that count trials and test images (``stats``).

A grid point is stopped as a whole, after a fixed number of trials: per-plan early stopping biased means
upward (it stopped before the rare catastrophic trial showed up) and compared plans on different trials.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from xtmr_core.batched import Job, Outcome, outcomes, trials_per_pass
from xtmr_core.evaluation import accuracy, mismatch, predict
from xtmr_core.faults import FaultModel, FaultSet
from xtmr_core.injection import FaultInjector, TrialSetup, trial_rng
from xtmr_core.protection import Overhead, ProtectionPlan, make_plan, overhead
from xtmr_core.stats import Interval, Judgement, judge, mean_interval, paired_interval, ratio_interval
from xtmr_core.stats import matching_budget as stats_matching_budget
from xtmr_core.strata import Strata, stratified_faults


@dataclass
class CampaignResult:
    """The outcome of one campaign, with its per-trial data (for distributions and paired comparisons).

    Attributes:
        protect, plan, budget, ber, format, mode: the configuration (``plan`` is the human label).
        clean_accuracy: accuracy of the clean model stored in this format, without faults.
        accuracies, mismatches, flips: per-trial accuracy, mismatch rate against the clean model's
            predictions, and number of faulty stored bits.
        correct: per-trial per-image correctness (bool arrays over the test split), for the test-set
            term of the intervals; may be empty (e.g. results built from a table), then intervals count
            trials only.
        clean_correct: the clean model's per-image correctness (for the recovered share's image term).
        overhead: the plan's memory overhead.
        seed: the campaign seed.
        strata, stratum_weights, stratum_rare: for a stratified campaign (``strata.py``), each trial's
            stratum, the strata's exact probabilities and which hold a rare fault; the mean is then
            ``sum_s w_s mean_s``, not the plain mean. ``None`` for plain Monte Carlo.
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
    correct: list[np.ndarray] = field(default_factory=list, repr=False)
    clean_correct: np.ndarray | None = field(default=None, repr=False)
    strata: list[int] | None = None
    stratum_weights: tuple[float, ...] | None = None
    stratum_rare: tuple[bool, ...] | None = None

    @property
    def trials(self) -> int:
        """Number of trials run."""
        return len(self.accuracies)

    @property
    def mean_accuracy(self) -> float:
        """Mean accuracy over trials (the strata-weighted mean for a stratified campaign)."""
        return self.interval().estimate if self.strata is not None else self.plain_mean()

    def plain_mean(self) -> float:
        """The unweighted mean of the per-trial accuracies."""
        return float(np.mean(self.accuracies)) if self.accuracies else math.nan

    def design(self, k: int | None = None) -> dict[str, Any]:
        """The ``strata``/``weights``/``rare`` keywords of the ``stats`` interval functions (first ``k`` trials)."""
        if self.strata is None:
            return {}
        k = self.trials if k is None else k
        return {"strata": self.strata[:k], "weights": self.stratum_weights, "rare": self.stratum_rare}

    def correct_matrix(self, k: int | None = None) -> np.ndarray | None:
        """Per-image correctness of the first ``k`` trials as an ``k x images`` array (``None`` if not kept)."""
        k = self.trials if k is None else min(int(k), self.trials)
        if len(self.correct) < k or k == 0:
            return None
        return np.stack(self.correct[:k])

    def interval(self, k: int | None = None, confidence: float = 0.95) -> Interval:
        """Mean accuracy of the first ``k`` trials (all by default) with its interval (trials and test
        images, ``stats.mean_interval``), clipped to [0, 1]. Cheap (~1-2 ms): the app may call it after
        every trial of a streaming campaign."""
        k = self.trials if k is None else min(int(k), self.trials)
        return mean_interval(self.accuracies[:k], self.correct_matrix(k), confidence, **self.design(k)).clipped()

    @property
    def ci95(self) -> tuple[float, float]:
        """95% interval of the mean accuracy (``interval()``'s ends), clipped to [0, 1]."""
        iv = self.interval()
        return (iv.low, iv.high)

    @property
    def min_accuracy(self) -> float:
        """Worst trial's accuracy."""
        return float(np.min(self.accuracies)) if self.accuracies else math.nan

    @property
    def mismatch_rate(self) -> float:
        """Mean share of predictions that differ from the clean model's (strata-weighted if stratified)."""
        return self._mean(self.mismatches)

    @property
    def mean_bit_flips(self) -> float:
        """Mean number of faulty stored bits per trial (strata-weighted if stratified)."""
        return self._mean(self.flips)

    def _mean(self, values: Sequence[float]) -> float:
        """The campaign's estimate of a per-trial quantity's mean: plain, or ``sum_s w_s mean_s``."""
        if not values:
            return math.nan
        if self.strata is None or self.stratum_weights is None:
            return float(np.mean(values))
        v, st = np.asarray(values, dtype=np.float64), np.asarray(self.strata[: len(values)])
        return float(sum(w * v[st == s].mean() for s, w in enumerate(self.stratum_weights) if (st == s).any()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (NaN becomes ``None``): the configuration, the per-trial lists, and
        ``interval`` (``Interval.to_dict``: estimate, low, high, half_width, confidence, n, image_se);
        ``ci95`` repeats its ends."""

        def clean(v: float) -> float | None:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        iv = self.interval()
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
            "ci95": [clean(iv.low), clean(iv.high)],
            "interval": iv.to_dict(),
            "min_accuracy": clean(self.min_accuracy),
            "mismatch_rate": clean(self.mismatch_rate),
            "mean_bit_flips": clean(self.mean_bit_flips),
            "protected_weights": self.overhead.protected_weights,
            "protected_bits": self.overhead.protected_bits,
            "overhead_pct": self.overhead.copies_pct,
            "overhead_with_index_pct": self.overhead.with_index_pct,
            "accuracies": list(self.accuracies),
            "mismatches": list(self.mismatches),
            "flips": list(self.flips),
            "strata": None if self.strata is None else list(self.strata),
            "stratum_weights": None if self.stratum_weights is None else list(self.stratum_weights),
            "design": "plain" if self.strata is None else "stratified",
        }


def trial_outcome(setup: TrialSetup, trial: int, *, skip_clean: bool = True, faults: FaultSet | None = None) -> Outcome:
    """One trial: sample faults, read the voted weights back, evaluate, restore.

    Args:
        setup: what is faulted and how, the test split and the clean predictions, the campaign seed.
        trial: which trial (its faults depend on ``(setup.seed, trial)`` alone).
        skip_clean: when every weight reads back bit-identical to the clean one (no fault, or every
            fault outvoted or masked), reuse ``setup.clean_pred`` instead of evaluating: same result, no cost.
        faults: use these faults instead of sampling trial ``(seed, trial)`` (stratified sampling).

    Returns:
        ``(accuracy, mismatch, faulty_bits, correct)``; ``correct`` is the per-image correctness (bool, numpy).
    """
    injector, clean_pred, y = setup.injector, setup.clean_pred, setup.y
    if faults is None:
        faults = setup.faults(trial)
    index, values = injector.read(faults, setup.plan, setup.fault.mode)
    if skip_clean and np.array_equal(values.view(np.uint32), injector.clean_values[index].view(np.uint32)):
        pred = clean_pred
    else:
        with injector.applied(index, values) as model:
            pred = predict(model, setup.x)
    correct = (pred == y).cpu().numpy()
    return accuracy(pred, y), mismatch(pred, clean_pred), faults.count, correct


def run_trial(setup: TrialSetup, trial: int, *, skip_clean: bool = True) -> tuple[float, float, int]:
    """``trial_outcome`` without the per-image correctness: ``(accuracy, mismatch, faulty_bits)``."""
    acc, mis, flips, _ = trial_outcome(setup, trial, skip_clean=skip_clean)
    return acc, mis, flips


def _clean_pred(injector: FaultInjector, x: torch.Tensor, clean_pred: torch.Tensor | None) -> torch.Tensor:
    if clean_pred is not None:
        return clean_pred
    with injector.clean() as model:
        return predict(model, x)


def empty_result(
    injector: FaultInjector,
    plan: ProtectionPlan,
    fault: FaultModel,
    y: torch.Tensor,
    clean_pred: torch.Tensor,
    seed: int,
) -> CampaignResult:
    """A ``CampaignResult`` with the configuration filled in and no trials yet."""
    return CampaignResult(
        protect=plan.protect,
        plan=plan.label,
        budget=plan.budget,
        ber=float(fault.ber),
        format=injector.format,
        mode=fault.mode,
        clean_accuracy=accuracy(clean_pred, y),
        overhead=overhead(plan, injector.n_weights, injector.stored.bits, len(injector.layout.names)),
        seed=int(seed),
        clean_correct=(clean_pred == y).cpu().numpy(),
    )


def _record(result: CampaignResult, outcome: tuple[float, float, int, np.ndarray]) -> None:
    acc, mis, flips, correct = outcome
    result.accuracies.append(acc)
    result.mismatches.append(mis)
    result.flips.append(flips)
    result.correct.append(correct)


@dataclass(frozen=True)
class PointOptions:
    """Which trials a grid point runs, and how (``run_point``, ``run_campaign``): the options that travel together
    from a spec to the trial loop.

    Attributes:
        trials: the fixed number of trials (no early stop: the mean is unbiased).
        seed: campaign seed; trial ``t`` draws its faults from ``trial_rng(seed, t)``.
        baseline: prepend the unprotected plan unless ``plans[0]`` already is one (``run_point``; a lone
            ``run_campaign`` never does).
        strata: stratified sampling (``strata.make_strata``): trial ``t`` belongs to stratum
            ``strata.stratum_of(t)`` (whatever ``trials`` is) and draws its faults conditionally;
            every result then carries the strata and their exact weights, and every estimate and
            interval is the stratified one. ``None`` = plain Monte Carlo.
        per_pass: weight sets evaluated per forward pass (``batched.trials_per_pass``; ``None`` = chosen per
            device: 1 on a CPU, from free memory on a GPU). Same faults and results whatever it is; with more
            than 1, ``should_stop`` is polled after each trial but the rest of a batch was already computed.
        known: outcomes already computed (a results store), one ``{trial: outcome}`` per plan of the point in
            its final order (the baseline first where ``baseline`` prepends it): those are taken as they are
            and only the other (plan, trial) pairs run. A trial's faults depend on ``(seed, trial)`` and its
            stratum alone, so the point is the one a run of every trial gives, bit for bit.
    """

    trials: int = 20
    seed: int = 0
    baseline: bool = True
    strata: Strata | None = None
    per_pass: int | None = None
    known: Sequence[Mapping[int, Outcome]] | None = None


@dataclass(frozen=True)
class PointHooks:
    """What a caller watches and steers while a point runs; each is optional.

    Attributes:
        progress: called after each trial (all plans) with ``(done, trials)``.
        should_stop: polled after each trial; ``True`` ends the point (all plans) with the trials so far
            (a user's cancel, not a statistical rule).
        on_trial: called after each trial with the partial ``PointResult`` so far (streaming display:
            ``point.difference(1)`` on it is the live paired interval).
        on_computed: called after each trial that ran anything, with the trial index and one ``(plan
            position, outcome, seconds)`` per plan that ran (what a results store keeps).
    """

    progress: Callable[[int, int], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_trial: Callable[[PointResult], None] | None = None
    on_computed: Callable[[int, list[tuple[int, Outcome, float]]], Any] | None = None

    def after_trial(
        self, point: PointResult, trial: int, trials: int, computed: list[tuple[int, Outcome, float]]
    ) -> bool:
        """Tell the caller that ``trial`` (of ``trials``) is recorded: what ran of it, the point so far, the
        count, in that order; ``True`` when the caller asks to stop."""
        if self.on_computed is not None and computed:
            self.on_computed(trial, computed)
        if self.on_trial is not None:
            self.on_trial(point)
        if self.progress is not None:
            self.progress(trial + 1, trials)
        return self.should_stop is not None and self.should_stop()


def run_campaign(
    injector: FaultInjector,
    plan: ProtectionPlan,
    fault: FaultModel,
    x: torch.Tensor,
    y: torch.Tensor,
    options: PointOptions | None = None,
    hooks: PointHooks | None = None,
    *,
    clean_pred: torch.Tensor | None = None,
) -> CampaignResult:
    """Run ``options.trials`` seeded trials of one configuration (a fixed number: no early stop, so the mean is
    unbiased). To compare plans, run them together with ``run_point`` (same trials, stopped as a whole).

    Args:
        injector: the fault injector (its format decides the stored words).
        plan: the protection plan. fault: the fault model.
        x, y: the test split, on the injector's device.
        options: trials, seed, sampling design, batching and known outcomes (``PointOptions``; default 20
            trials of seed 0); ``baseline`` is ignored: the plan runs alone.
        hooks: progress, cancel and per-trial callbacks (``PointHooks``).
        clean_pred: the clean model's predictions on ``x`` (computed if ``None``).

    Returns:
        The ``CampaignResult``.
    """
    alone = replace(options if options is not None else PointOptions(), baseline=False)
    return run_point(injector, [plan], fault, x, y, alone, hooks, clean_pred=clean_pred).results[0]


@dataclass
class PointResult:
    """All plans of one grid point, run on the same trials: the baseline first, then the plans.

    Every ``CampaignResult`` in ``results`` has the same trial count and trial ``t`` of each saw the same
    primary faults (the same ``(seed, t)``), so every comparison is formed per trial and gets its own
    interval (``stats``). Plans are addressed by their index in ``results`` (0 = the unprotected
    baseline ``none`` when the point was run with one) or by their label.

    For the live Fault lab: pass ``k`` to any method to use only the first ``k`` trials of a point that
    is still streaming (``run_point``'s ``progress`` hands over the partial ``PointResult``); each
    interval costs about 1-2 ms.
    """

    results: list[CampaignResult]
    strata: Strata | None = None

    @property
    def trials(self) -> int:
        """Number of trials every plan of the point ran."""
        return min((r.trials for r in self.results), default=0)

    @property
    def baseline(self) -> CampaignResult:
        """The unprotected baseline (``results[0]``)."""
        return self.results[0]

    @property
    def clean_accuracy(self) -> float:
        """Accuracy of the clean model in the point's format."""
        return self.results[0].clean_accuracy

    def index(self, plan: int | str | CampaignResult) -> int:
        """The position in ``results`` of a plan given by index, label or result."""
        if isinstance(plan, CampaignResult):
            return next(i for i, r in enumerate(self.results) if r is plan)
        if isinstance(plan, str):
            for i, r in enumerate(self.results):
                if r.plan == plan:
                    return i
            raise KeyError(f"no plan {plan!r} at this point: {[r.plan for r in self.results]}")
        return int(plan)

    def _pair(
        self, a: int | str | CampaignResult, b: int | str | CampaignResult, k: int | None
    ) -> tuple[CampaignResult, CampaignResult, int]:
        ra, rb = self.results[self.index(a)], self.results[self.index(b)]
        n = self.trials if k is None else min(int(k), self.trials)
        return ra, rb, n

    def _paired_design(self, result: CampaignResult, n: int) -> dict[str, Any]:
        """The design keywords of a paired statistic: a stratum is rare for a pair only where a fault fell
        in the ``differ`` region (elsewhere plans differ by non-deciding faults alone)."""
        design = result.design(n)
        if self.strata is not None:
            design["rare"] = self.strata.differs
        return design

    def accuracy(self, plan: int | str | CampaignResult, k: int | None = None) -> Interval:
        """A plan's mean accuracy with its interval (first ``k`` trials)."""
        n = self.trials if k is None else min(int(k), self.trials)
        return self.results[self.index(plan)].interval(n)

    def difference(
        self, plan: int | str | CampaignResult, other: int | str | CampaignResult = 0, k: int | None = None
    ) -> Interval:
        """Mean paired difference ``plan - other`` (accuracy; default ``other`` = the baseline)."""
        a, b, n = self._pair(plan, other, k)
        return paired_interval(
            a.accuracies[:n], b.accuracies[:n], a.correct_matrix(n), b.correct_matrix(n), **self._paired_design(a, n)
        )

    def loss(self, k: int | None = None) -> float:
        """The fault-induced loss of the point: clean accuracy minus the unprotected baseline's mean."""
        n = self.trials if k is None else min(int(k), self.trials)
        return self.clean_accuracy - self.results[0].interval(n).estimate if n else math.nan

    @property
    def design(self) -> str:
        """``stratified`` or ``plain``: how the point's trials were drawn."""
        return "plain" if self.strata is None else "stratified"

    def judge(
        self, plan: int | str | CampaignResult, other: int | str | CampaignResult = 0, k: int | None = None
    ) -> Judgement:
        """``stats.judge`` of ``difference(plan, other)`` against the point's loss: helps / hurts / within
        noise / no practical difference / not enough trials (with the trials needed) / nothing to protect."""
        n = self.trials if k is None else min(int(k), self.trials)
        needed = self.strata.min_trials if self.strata is not None and n < self.strata.min_trials else 0
        return judge(self.difference(plan, other, k), self.loss(k), needed if needed else (2 if n < 2 else 0))

    def verdict(
        self, plan: int | str | CampaignResult, other: int | str | CampaignResult = 0, k: int | None = None
    ) -> str:
        """The verdict word of ``judge(plan, other, k)``."""
        return self.judge(plan, other, k).verdict

    def recovered(self, plan: int | str | CampaignResult, k: int | None = None) -> Interval:
        """Share of the fault-induced loss the plan recovers, ``(acc_plan - acc_none) / (acc_clean -
        acc_none)``, paired, with its interval (estimate ``nan`` when there is no loss)."""
        a, b, n = self._pair(plan, 0, k)
        return ratio_interval(
            "recovered",
            a.accuracies[:n],
            b.accuracies[:n],
            a.clean_accuracy,
            a.correct_matrix(n),
            b.correct_matrix(n),
            a.clean_correct,
            **self._paired_design(a, n),
        )

    def relative_gain(self, plan: int | str | CampaignResult, k: int | None = None) -> Interval:
        """``(acc_plan - acc_none) / acc_none``, paired, with its interval."""
        a, b, n = self._pair(plan, 0, k)
        return ratio_interval(
            "relative_gain",
            a.accuracies[:n],
            b.accuracies[:n],
            None,
            a.correct_matrix(n),
            b.correct_matrix(n),
            **self._paired_design(a, n),
        )

    def matching_budget(self, scorer: str, target: int | str | CampaignResult) -> tuple[float, Interval | None]:
        """The smallest budget of ``scorer`` at this point whose paired accuracy is not below ``target``'s
        (``stats.matching_budget``); ``(nan, None)`` when none matches."""
        t = self.results[self.index(target)]
        n = self.trials
        cands = {r.budget: r.accuracies[:n] for r in self.results if r.protect == scorer and r.budget is not None}
        return stats_matching_budget(cands, t.accuracies[:n], **t.design(n))

    def iso_cost(self, scorer: str, target: float) -> tuple[float, Interval | None]:
        """The smallest budget of ``scorer`` whose mean accuracy reaches ``target`` (iso-reliability
        cost), with that plan's accuracy interval; ``(nan, None)`` when no tested budget does."""
        budgeted = [(r.budget, r) for r in self.results if r.protect == scorer and r.budget is not None]
        for budget, r in sorted(budgeted, key=lambda pair: pair[0]):
            if r.mean_accuracy >= target:
                return float(budget), r.interval(self.trials)
        return math.nan, None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``trials``, ``clean_accuracy``, and per plan its ``CampaignResult.to_dict`` plus the
        paired ``difference``, ``recovered`` and ``relative_gain`` against the baseline and ``verdict``."""
        plans = []
        for i, r in enumerate(self.results):
            d = r.to_dict()
            if i > 0:
                judged = self.judge(i)
                d["difference"] = self.difference(i).to_dict()
                d["verdict"] = judged.verdict
                d["judgement"] = judged.to_dict()
                d["recovered"] = self.recovered(i).to_dict()
                d["relative_gain"] = self.relative_gain(i).to_dict()
            plans.append(d)
        return {
            "trials": self.trials,
            "clean_accuracy": self.clean_accuracy,
            "stratified": self.strata is not None,
            "design": self.design,
            "strata": None if self.strata is None else self.strata.describe(self.trials),
            "loss": self.loss() if self.trials else None,
            "plans": plans,
        }


def run_point(
    injector: FaultInjector,
    plans: Sequence[ProtectionPlan],
    fault: FaultModel,
    x: torch.Tensor,
    y: torch.Tensor,
    options: PointOptions | None = None,
    hooks: PointHooks | None = None,
    *,
    clean_pred: torch.Tensor | None = None,
) -> PointResult:
    """Run every plan of one grid point on the same trials, stopped as a whole after ``options.trials``.

    Trial ``t`` draws its primary faults from ``(seed, t)`` alone (``faults.sample_faults`` spawns one
    stream per copy), so every plan sees the same primary faults and plans differ only by what they
    protect. A point is never stopped per plan: each trial runs every plan before the next trial starts.

    Args:
        injector: the fault injector of the point's format.
        plans: the plans to compare; with ``options.baseline`` the unprotected plan is put first (once).
        fault: the fault model. x, y: the test split.
        options: trials, seed, baseline, sampling design, batching and known outcomes (``PointOptions``;
            default 20 trials of seed 0 with the baseline).
        hooks: progress, cancel and per-trial callbacks (``PointHooks``; default none).
        clean_pred: the clean model's predictions (computed if ``None``).

    Returns:
        The ``PointResult`` (``results[0]`` is the baseline when ``options.baseline``).
    """
    options = options if options is not None else PointOptions()
    hooks = hooks if hooks is not None else PointHooks()
    trials = int(options.trials)
    if trials < 1:
        raise ValueError("a campaign needs at least one trial")
    plans = _with_baseline(injector, plans, options.baseline)
    clean_pred = _clean_pred(injector, x, clean_pred)
    point = _start_point(injector, plans, fault, y, clean_pred, options)
    done = _known(options.known, len(plans))
    # Batched (a GPU): several trials' weight sets per forward pass, the same faults, the same outcomes.
    step = trials_per_pass(injector, x, options.per_pass)
    chunk = max(1, step // len(plans)) if step > 1 else 1
    setups = [TrialSetup(injector, plan, fault, x, y, clean_pred, int(options.seed)) for plan in plans]
    for first in range(0, trials, chunk):
        ts = range(first, min(first + chunk, trials))
        ran = _run_pass(_missing_jobs(setups, ts, done, point.strata), step)
        for tt in ts:
            computed = _record_trial(point, tt, done, ran)
            if hooks.after_trial(point, tt, trials, computed):
                return point  # the chunk's later trials are dropped: the point ends where it was stopped
    return point


def _with_baseline(injector: FaultInjector, plans: Sequence[ProtectionPlan], baseline: bool) -> list[ProtectionPlan]:
    """The point's plans in order: the unprotected plan first when ``baseline`` asks and it is not there yet."""
    plans = list(plans)
    if baseline and not (plans and plans[0].protect == "none" and not plans[0].guard):
        plans = [make_plan("none", injector.stored.bits), *plans]
    return plans


def _start_point(
    injector: FaultInjector,
    plans: list[ProtectionPlan],
    fault: FaultModel,
    y: torch.Tensor,
    clean_pred: torch.Tensor,
    options: PointOptions,
) -> PointResult:
    """The point with every plan's configuration and no trials yet (its strata and their weights when stratified)."""
    point = PointResult([empty_result(injector, p, fault, y, clean_pred, options.seed) for p in plans], options.strata)
    if options.strata is not None:
        for result in point.results:
            result.strata, result.stratum_weights, result.stratum_rare = [], options.strata.weights, options.strata.rare
    return point


def _known(known: Sequence[Mapping[int, Outcome]] | None, n_plans: int) -> Sequence[Mapping[int, Outcome]]:
    """The outcomes already computed per plan (none when not given), checked to match the point's plans."""
    if known is None:
        return [{} for _ in range(n_plans)]
    if len(known) != n_plans:
        raise ValueError(f"known outcomes for {len(known)} plans, the point has {n_plans}")
    return known


def _missing_jobs(
    setups: list[TrialSetup], trials: range, done: Sequence[Mapping[int, Outcome]], strata: Strata | None
) -> list[tuple[tuple[int, int], Job]]:
    """The (trial, plan position) pairs of ``trials`` not already done, trial by trial, each with its job (its
    faults drawn from its stratum when stratified)."""
    jobs = []
    for tt in trials:
        for pi, setup in enumerate(setups):
            if tt in done[pi]:
                continue
            faults = None
            if strata is not None:
                regions = setup.injector.regions(setup.plan, setup.fault)
                faults = stratified_faults(
                    regions, setup.fault, strata, strata.stratum_of(tt), trial_rng(setup.seed, tt)
                )
            jobs.append(((tt, pi), Job(setup, tt, faults)))
    return jobs


@dataclass
class _Pass:
    """What one pass over a chunk of trials computed: each (trial, plan position) run, its outcome and seconds."""

    ran: dict[tuple[int, int], tuple[Outcome, float]]

    def get(self, trial: int, plan: int) -> tuple[Outcome, float] | None:
        """The outcome and seconds of ``plan`` at ``trial`` when this pass ran it."""
        return self.ran.get((trial, plan))


def _run_pass(jobs: list[tuple[tuple[int, int], Job]], step: int) -> _Pass:
    """Run the jobs: stacked ``step`` weight sets per forward pass (each job gets its share of the time), or one
    at a time (each job its own time)."""
    t0 = time.perf_counter()
    if step > 1 and jobs:
        outs = outcomes([job for _, job in jobs], per_pass=step)
        seconds = [(time.perf_counter() - t0) / len(jobs)] * len(jobs)
    else:
        outs, seconds = [], []
        for _, job in jobs:
            outs.append(trial_outcome(job.setup, job.trial, faults=job.faults))
            seconds.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
    return _Pass({pair: (out, sec) for (pair, _), out, sec in zip(jobs, outs, seconds, strict=True)})


def _record_trial(
    point: PointResult, trial: int, done: Sequence[Mapping[int, Outcome]], ran: _Pass
) -> list[tuple[int, Outcome, float]]:
    """Append ``trial`` to every plan of the point (its stratum, then the outcome known or just run); the
    ``(plan position, outcome, seconds)`` of the plans that ran."""
    computed = []
    for pi, result in enumerate(point.results):
        if point.strata is not None:
            result.strata.append(point.strata.stratum_of(trial))  # type: ignore[union-attr]
        got = ran.get(trial, pi)
        if got is None:
            _record(result, done[pi][trial])
        else:
            _record(result, got[0])
            computed.append((pi, got[0], got[1]))
    return computed
