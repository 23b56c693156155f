"""Do the intervals cover? Held-out pools of real trials, resampled as fresh campaigns would be.

For each point of ``POINTS`` a large *pool* of paired trials is run with the design under test (plain or
stratified). The pool's grand mean (strata-weighted for a stratified pool, over every test image) is
taken as the truth. A fresh campaign of ``n`` trials is imitated by a two-level resample: ``n`` trials
drawn with replacement (per stratum, as many as the design's schedule gives the stratum among its first
``n`` trials) and the test images drawn with replacement; the interval is computed exactly as a campaign
computes it (``stats``). Over many resamples this gives the coverage of each interval, its half-width, the
share reported as unknown ("not enough trials"), and how often the verdict rule declares a difference
that is not there (true difference within ``NOISE_TOLERANCE``, or of the other sign).

``python -m xtmr_core coverage`` runs it and prints the table that docs/DESIGN.md quotes; ``--quick`` runs
small pools for a smoke test.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xtmr_core.campaign import PointResult
from xtmr_core.spec import CampaignSpec
from xtmr_core.stats import judge, mean_interval, paired_interval  # noqa: F401
from xtmr_core.strata import Strata

if TYPE_CHECKING:  # a type only: the experiment module imports much more than this study needs
    from xtmr_core.experiment import Experiment

#: A true difference this close to 0 (accuracy, 0.1 point) counts as no difference for the verdict check.
NOISE_TOLERANCE = 0.001


@dataclass(frozen=True)
class CoveragePoint:
    """One grid point of the coverage study.

    Attributes:
        model: the shipped model. fmt: the format. ber: the bit error rate.
        plans: ``(protect, budget)`` of each plan besides the unprotected baseline.
        pairs: the paired comparisons as ``(plan index, other index)`` into ``[none, *plans]``.
    """

    model: str
    fmt: str
    ber: float
    plans: tuple[tuple[str, float], ...] = (("lrp", 1.0), ("magnitude", 1.0))
    pairs: tuple[tuple[int, int], ...] = ((1, 0), (1, 2))

    @property
    def name(self) -> str:
        """e.g. ``lenet5 fp32 1e-05``."""
        return f"{self.model} {self.fmt} {self.ber:g}"

    def specs(self, trials: int, seed: int) -> list[CampaignSpec]:
        """The point's campaigns (baseline first)."""
        base = CampaignSpec("none", ber=self.ber, fmt=self.fmt, trials=trials, seed=seed)
        return [base, *(base.replace(protect=p, budget=b) for p, b in self.plans)]


#: The points the issue asks about: fp32 where catastrophes are rare, int8 where they are common.
POINTS: tuple[CoveragePoint, ...] = (
    CoveragePoint("lenet5", "fp32", 1e-5),
    CoveragePoint("lenet5", "fp32", 1e-4),
    CoveragePoint("lenet5", "int8", 1e-2, plans=(("lrp", 1.0),), pairs=((1, 0),)),
    CoveragePoint("resnet20", "int8", 1e-2, plans=(("lrp", 1.0),), pairs=((1, 0),)),
)


@dataclass(frozen=True)
class Pool:
    """A pool of paired trials: per-image correctness of every plan, the strata of the trials (or plain).

    Attributes:
        labels: plan labels (baseline first). correct: ``plans x trials x images`` (bool).
        strata: each trial's stratum (``None`` = plain). weights: the strata's exact probabilities.
        design: the stratified design (``None`` = plain).
    """

    labels: tuple[str, ...]
    correct: np.ndarray
    strata: np.ndarray | None
    weights: np.ndarray | None
    design: Strata | None

    @staticmethod
    def of(point: PointResult) -> Pool:
        """The pool of a finished ``PointResult``."""
        correct = np.stack([np.stack(r.correct) for r in point.results])
        strata = None if point.strata is None else np.asarray(point.results[0].strata, dtype=np.int64)
        weights = None if point.strata is None else np.asarray(point.strata.weights, dtype=np.float64)
        return Pool(tuple(r.plan for r in point.results), correct, strata, weights, point.strata)

    def truth(self) -> np.ndarray:
        """Per plan: the pool's grand mean accuracy (strata-weighted), the value intervals should cover."""
        acc = self.correct.mean(axis=2)
        if self.strata is None or self.weights is None:
            grand: np.ndarray = acc.mean(axis=1)
            return grand
        weighted: np.ndarray = sum(w * acc[:, self.strata == s].mean(axis=1) for s, w in enumerate(self.weights))
        return weighted

    def resample(self, n: int, rng: np.random.Generator, plain: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """A two-level resample imitating a campaign of ``n`` trials: ``(correct, strata)``.

        With ``plain`` a stratified pool imitates a *plain* campaign of the same population: each trial's
        stratum is drawn with the strata's exact probabilities, then a trial of that stratum (so both
        designs are judged against one truth); ``strata`` is then ``None``.
        """
        m = self.correct.shape[2]
        cols = rng.integers(0, m, size=m)
        if self.design is None or self.strata is None:
            rows = rng.integers(0, self.correct.shape[1], size=n)
            return self.correct[:, rows][:, :, cols], None
        counts: Sequence[int] | np.ndarray
        if plain:
            assert self.weights is not None, "a stratified pool has stratum weights"
            counts = rng.multinomial(n, self.weights / self.weights.sum())
        else:
            counts = self.design.allocation(n)
        picks, labels = [], []
        for s, count in enumerate(counts):
            members = np.flatnonzero(self.strata == s)
            picks.append(rng.choice(members, size=count, replace=True))
            labels.append(np.full(count, s, dtype=np.int64))
        rows = np.concatenate(picks)
        return self.correct[:, rows][:, :, cols], None if plain else np.concatenate(labels)


def study(
    pool: Pool,
    pairs: Sequence[tuple[int, int]],
    ns: Sequence[int] = (10, 25, 40),
    reps: int = 1000,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    plain: bool = False,
) -> pd.DataFrame:
    """Coverage, half-widths, unknown share and false verdicts of every mean and paired interval.

    ``plain`` judges plain campaigns drawn from a stratified pool's population (``Pool.resample``).

    Returns:
        One row per (quantity, n): ``quantity``, ``n``, ``truth``, ``coverage`` (of the intervals that were
        reported), ``unknown`` (share reported as not enough trials), ``half_width`` (median, in accuracy),
        ``sd`` (the estimate's spread over resamples), ``error_q95`` (the half-width an interval centred on
        the estimate would need to cover 95%: the 95th percentile of ``|estimate - truth|``),
        ``false_verdict`` (share of resamples declaring helps/hurts where the truth is within
        ``NOISE_TOLERANCE`` or of the other sign; pairs only).
    """
    truth = pool.truth()
    names = [f"mean {label}" for label in pool.labels] + [f"{pool.labels[a]} - {pool.labels[b]}" for a, b in pairs]
    rows = []
    rng = np.random.default_rng(seed)
    weights = None if pool.weights is None else tuple(pool.weights)
    rare = None if pool.design is None else pool.design.rare
    for i, n in enumerate(ns):
        est = np.zeros((reps, len(names)))
        hit = np.zeros((reps, len(names)), dtype=bool)
        known = np.zeros((reps, len(names)), dtype=bool)
        half = np.full((reps, len(names)), np.nan)
        false = np.zeros((reps, len(names)), dtype=bool)
        for r in range(reps):
            correct, strata = pool.resample(n, rng, plain)
            acc = correct.mean(axis=2)
            design: dict[str, Any] = {} if strata is None else {"strata": strata, "weights": weights, "rare": rare}
            ivs = [mean_interval(acc[k], correct[k], **design) for k in range(len(pool.labels))]
            if strata is not None and pool.design is not None:
                design["rare"] = pool.design.differs  # a pair differs only where a differ fault fell
            ivs += [paired_interval(acc[a], acc[b], correct[a], correct[b], **design) for a, b in pairs]
            truths = list(truth) + [truth[a] - truth[b] for a, b in pairs]
            for q, (iv, t) in enumerate(zip(ivs, truths)):
                est[r, q] = iv.estimate
                known[r, q] = math.isfinite(iv.half_width)
                if known[r, q]:
                    hit[r, q] = iv.contains(t)
                    half[r, q] = iv.half_width
                if q >= len(pool.labels):
                    word = judge(iv).verdict
                    declared = word in ("helps", "hurts")
                    wrong = abs(t) <= NOISE_TOLERANCE or (word == "helps") != (t > 0)
                    false[r, q] = declared and wrong
        if progress is not None:
            progress(i + 1, len(ns))
        for q, name in enumerate(names):
            k = known[:, q]
            rows.append(
                {
                    "quantity": name,
                    "n": n,
                    "truth": truths[q],
                    "coverage": float(hit[k, q].mean()) if k.any() else math.nan,
                    "unknown": float(1 - k.mean()),
                    "half_width": float(np.nanmedian(half[:, q])) if k.any() else math.nan,
                    "sd": float(np.std(est[:, q])),
                    "error_q95": float(np.quantile(np.abs(est[:, q] - truths[q]), 0.95)),
                    "false_verdict": float(false[:, q].mean()) if q >= len(pool.labels) else math.nan,
                }
            )
    return pd.DataFrame(rows)


def build_pool(exp: Experiment, point: CoveragePoint, design: str, trials: int, seed: int) -> Pool:
    """Run ``trials`` paired trials of ``point`` on an ``Experiment`` with ``design`` (``auto``/``plain``)."""
    result = exp.evaluate_point(point.specs(trials, seed), design=design)
    return Pool.of(result)


def run_coverage(
    points: Sequence[CoveragePoint] = POINTS,
    *,
    pool_trials: int = 400,
    ns: Sequence[int] = (10, 25, 40),
    reps: int = 1000,
    seed: int = 7,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """The whole study: for each point one pool with the default design, then ``study`` of that design and,
    where it is stratified, of plain campaigns from the same population. Rows carry ``point``/``design``."""
    from xtmr_core.experiment import Experiment

    frames = []
    experiments: dict[str, Experiment] = {}
    for point in points:
        exp = experiments.setdefault(point.model, Experiment(point.model))
        t0 = time.perf_counter()
        pool = build_pool(exp, point, "auto", pool_trials, seed)
        used = "plain" if pool.design is None else "stratified"
        log(f"{point.name}: {used} pool of {pool_trials} trials in {time.perf_counter() - t0:.0f} s")
        for plain in [False, True] if pool.design is not None else [False]:
            table = study(pool, point.pairs, ns, reps, seed, plain=plain)
            table.insert(0, "design", "plain" if plain or pool.design is None else "stratified")
            table.insert(0, "point", point.name)
            frames.append(table)
    return pd.concat(frames, ignore_index=True)


def reduction(table: pd.DataFrame) -> pd.DataFrame:
    """Per stratified point, quantity and n: the variance-reduction factor ``(sd_plain / sd_stratified)^2``
    and the half-widths at equal (95%) coverage, ``error_q95`` of each design, with their ratio."""
    keys = ["point", "quantity", "n"]
    strat = table[table["design"] == "stratified"].set_index(keys)
    plain = table[table["design"] == "plain"].set_index(keys)
    both = strat.join(plain, lsuffix="_strat", rsuffix="_plain", how="inner")
    out = pd.DataFrame(
        {
            "vrf": (both["sd_plain"] / both["sd_strat"]) ** 2,
            "q95_plain": both["error_q95_plain"],
            "q95_strat": both["error_q95_strat"],
            "half_width_strat": both["half_width_strat"],
        }
    )
    out["q95_ratio"] = out["q95_plain"] / out["q95_strat"]
    return out.reset_index()


def format_table(table: pd.DataFrame) -> str:
    """The coverage table as Markdown (points in points, accuracies in points)."""
    rows = ["| point | design | quantity | n | truth | coverage | unknown | half-width | false verdicts |"]
    rows.append("|---|---|---|---|---|---|---|---|---|")
    for r in table.to_dict("records"):
        fv = "" if math.isnan(r["false_verdict"]) else f"{r['false_verdict']:.3f}"
        rows.append(
            f"| {r['point']} | {r['design']} | {r['quantity']} | {r['n']} | {100 * r['truth']:+.3f} | "
            f"{r['coverage']:.3f} | {r['unknown']:.2f} | {100 * r['half_width']:.3f} | {fv} |"
        )
    return "\n".join(rows)
