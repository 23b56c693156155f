"""Statistics over trials: intervals that cover, paired comparisons, the verdict rule, iso-reliability cost.

Where the numbers come from. A campaign runs ``n`` seeded trials; trial ``t`` gives a 0/1 correctness
per test image, ``c[t, i]``, and its accuracy is the row mean. The quantity reported is the mean accuracy
over *faults* and over *images*: both are samples, so an interval must count both.

The interval (``mean_interval``, ``paired_interval``, ``ratio_interval``) is a stated variance
decomposition, not a full two-level bootstrap, because the app computes it live:

1. **Trials** — ``scipy.stats.bootstrap`` BCa over trials (vectorised mean, 999 resamples, fixed seed:
   about 1 ms for n <= 40). Per-trial accuracy is heavily left-skewed (a rare catastrophic trial), which
   is why BCa and not Student-t. With small ``n`` a bootstrap interval is too narrow (it uses the plug-in
   variance, a factor (n-1)/n, and no t quantile), so the level passed to BCa is *expanded* as
   Hesterberg's expanded bootstrap does: ``2 Phi(sqrt(n/(n-1)) t_{n-1}) - 1`` (0.983 at n = 10, 0.956
   at n = 40 for a nominal 0.95).
2. **Images** — the two-way random-effects ANOVA of the ``trials x images`` matrix: the trial
   bootstrap already holds the trial and trial-x-image variance, the missing term is the image
   component ``sigma2_I / m`` (``image_variance``). It is added in quadrature to each side of the BCa
   interval (``lo = est - sqrt((est - lo_bca)^2 + (z se_I)^2)``), so the skew of step 1 is kept.

Why not a two-level bootstrap: resampling images means re-reducing a ``B x n x m`` array (40 x 10,000 for
cifar) per interval, 100x slower, and the test-set term is nearly Gaussian anyway (a mean of
thousands of images), so the decomposition loses nothing measurable. ``tests/test_stats.py`` checks
coverage by a genuinely two-level simulation (trials *and* images resampled from pools of real trials).

Comparisons are always paired: trial ``t`` of every plan at one grid point saw the same primary
faults, so differences are formed per trial (and per image) and bootstrapped as one sample. Ratios
(recovered share, relative gain) are bootstrapped as a paired multi-sample statistic, their image term
by the delta method (a linearised per-image matrix through the same ``image_variance``).

For the live Fault lab: every function here takes plain per-trial lists, so an interval of the first
``k`` trials is ``mean_interval(acc[:k], correct[:k])`` — about 1-2 ms, cheap enough to redraw after
every trial. ``verdict`` is THE rule that says a plan helps / hurts / is within noise (report and app).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import numpy as np
import pandas as pd
from scipy import stats as _st  # type: ignore[import-untyped]  # scipy's hints (scipy-stubs) are not in the lock

from xtmr_core.vocabulary import VERDICTS

#: Bootstrap resamples per interval: 999 keeps the Monte Carlo error of a 95% BCa end well under its
#: sampling error at n <= 40, at about 1 ms per interval.
N_RESAMPLES = 999
#: The bootstrap's own seed: the same trials always give the same interval.
BOOT_SEED = 20250708
#: The prior spread of one trial's value in a rare stratum of a stratified design (a coin between wrecked
#: and fine has spread 0.5): one pseudo-trial of it enters the stratum's variance (``_t_bounds``).
RARE_SPREAD = 0.5


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval.

    Attributes:
        estimate: the point estimate (e.g. a mean accuracy or a mean paired difference).
        low, high: the interval's ends (``nan`` when it cannot be estimated, e.g. one trial).
        confidence: the nominal level.
        n: the number of trials it rests on.
        image_se: the test-set (image sampling) standard error that was folded in (0 without images).
    """

    estimate: float
    low: float
    high: float
    confidence: float = 0.95
    n: int = 0
    image_se: float = 0.0

    @property
    def half_width(self) -> float:
        """Half the width (``inf`` when unknown)."""
        return (self.high - self.low) / 2 if math.isfinite(self.low) and math.isfinite(self.high) else math.inf

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside (ends included)."""
        return bool(self.low <= value <= self.high)

    def clipped(self, lo: float = 0.0, hi: float = 1.0) -> Interval:
        """The same interval with its ends clipped to ``[lo, hi]`` (an accuracy cannot leave [0, 1])."""
        if math.isnan(self.low):
            return self
        return Interval(self.estimate, max(lo, self.low), min(hi, self.high), self.confidence, self.n, self.image_se)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``estimate``, ``low``, ``high``, ``half_width``, ``confidence``, ``n``, ``image_se``
        (non-finite numbers become ``None``)."""

        def clean(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            "estimate": clean(self.estimate),
            "low": clean(self.low),
            "high": clean(self.high),
            "half_width": clean(self.half_width),
            "confidence": self.confidence,
            "n": self.n,
            "image_se": clean(self.image_se),
        }


def expanded_level(n: int, confidence: float = 0.95) -> float:
    """The level to ask a bootstrap for so that ``n`` trials get ``confidence`` (Hesterberg's expansion).

    A plug-in bootstrap behaves like a z interval with the ``(n-1)/n`` variance; this level makes its
    normal-theory width equal to the Student-t interval's.
    """
    if n < 2:
        return confidence
    t = _st.t.ppf(0.5 + confidence / 2, n - 1) * math.sqrt(n / (n - 1))
    return float(2 * _st.norm.cdf(t) - 1)


def image_variance(matrix: np.ndarray, trial_weights: np.ndarray | None = None) -> float:
    """The test-set sampling variance of the grand mean of a ``trials x images`` matrix.

    Two-way random-effects ANOVA without replication: with row (trial) means ``a_t``, column (image)
    means ``b_i`` and grand mean ``g``, ``MS_I = n Σ (b_i - g)² / (m - 1)`` and the interaction mean
    square ``MS_TI`` from the residuals; ``sigma2_I = (MS_I - MS_TI) / n`` (clipped at 0). The
    returned variance is ``sigma2_I / m``: what the mean would still vary by over fresh test sets of
    the same size, beyond what resampling trials already shows.

    Args:
        matrix: per-trial, per-image values (0/1 correctness, or paired differences / linearised ratios).
        trial_weights: weights of the trials in the estimate (stratified sampling; they sum to 1). Then
            ``b_i`` is the weighted column mean and the interaction is not subtracted (conservative).

    Returns:
        The variance (0.0 with one image or an empty matrix).
    """
    c = np.asarray(matrix, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2 or c.shape[0] < 1:
        return 0.0
    n, m = int(c.shape[0]), int(c.shape[1])
    if trial_weights is not None:
        b = np.asarray(trial_weights, dtype=np.float64) @ c
        return float(np.var(b, ddof=1)) / m
    g = c.mean()
    a = c.mean(axis=1)
    b = c.mean(axis=0)
    ms_i = n * float(np.sum((b - g) ** 2)) / (m - 1)
    if n > 1:
        ss_total = float(np.sum((c - g) ** 2))
        ss_res = ss_total - m * float(np.sum((a - g) ** 2)) - n * float(np.sum((b - g) ** 2))
        ms_ti = max(ss_res, 0.0) / ((n - 1) * (m - 1))
    else:
        ms_ti = 0.0  # one trial: cannot separate the image component from the interaction; keep all of it
    return max(ms_i - ms_ti, 0.0) / n / m


def _combine(est: float, lo: float, hi: float, image_var: float, confidence: float, n: int) -> Interval:
    """Widen a trial interval by the image term in quadrature, side by side (keeps the skew)."""
    se = math.sqrt(max(image_var, 0.0))
    if se > 0 and math.isfinite(lo):
        z = float(_st.norm.ppf(0.5 + confidence / 2))
        lo = est - math.hypot(est - lo, z * se)
        hi = est + math.hypot(hi - est, z * se)
    return Interval(float(est), float(lo), float(hi), confidence, n, se)


@dataclass(frozen=True)
class _Design:
    """How the trials were drawn: plain (one stratum of weight 1) or stratified."""

    groups: tuple[np.ndarray, ...]  # trial indices of each stratum
    weights: np.ndarray  # stratum weights
    rare: np.ndarray  # per stratum: a stratum with a rare fault, where no spread seen is no proof of none
    plain: bool

    @staticmethod
    def of(
        n: int, strata: Sequence[int] | None, weights: Sequence[float] | None, rare: Sequence[bool] | None = None
    ) -> _Design:
        if strata is None:
            return _Design((np.arange(n),), np.ones(1), np.ones(1, dtype=bool), True)
        st = np.asarray(strata[:n], dtype=np.int64)
        w = np.asarray(weights, dtype=np.float64)
        flags = np.ones(w.size, dtype=bool) if rare is None else np.asarray(rare, dtype=bool)
        return _Design(tuple(np.flatnonzero(st == s) for s in range(w.size)), w, flags, False)

    @property
    def complete(self) -> bool:
        """Every stratum of positive weight has at least two trials (else no spread can be estimated)."""
        return all(g.size >= 2 for g, w in zip(self.groups, self.weights) if w > 0)

    def trial_weights(self, n: int) -> np.ndarray:
        out = np.zeros(n)
        for g, w in zip(self.groups, self.weights):
            if g.size:
                out[g] = w / g.size
        return out

    def means(self, data: np.ndarray) -> np.ndarray:
        """Weighted means of the rows of ``data`` (``rows x n``)."""
        means: np.ndarray = sum(w * data[:, g].mean(axis=1) for g, w in zip(self.groups, self.weights) if g.size)
        return means

    def flat_plain(self, data: np.ndarray) -> bool:
        """A plain sample of paired differences that were 0 in every trial: the plans never differed in
        the trials seen, so how often and how much they differ cannot be estimated."""
        return self.plain and not np.any(data)

    def effective_n(self, lin: np.ndarray) -> int:
        """Trials an equally precise plain sample would have (Welch-Satterthwaite), for the expansion."""
        if len(self.groups) == 1:
            return int(lin.size)
        a = np.array([w * w * np.var(lin[g], ddof=1) / g.size for g, w in zip(self.groups, self.weights) if g.size > 1])
        dfs = np.array([g.size - 1 for g in self.groups if g.size > 1])
        if a.sum() <= 0:
            return int(lin.size)
        return int(max(2, round(a.sum() ** 2 / np.sum(a * a / dfs) + 1)))


def _bca(
    data: np.ndarray, of_means: Callable[[np.ndarray], np.ndarray], design: _Design, confidence: float, n_eff: int
) -> tuple[float, float]:
    """scipy's BCa interval over trials of ``of_means(weighted row means of data)``, at the expanded level.

    ``data`` is ``rows x n`` (paired rows are resampled together); with strata each stratum is resampled
    on its own (a multi-sample statistic). Degenerate data (no spread anywhere) gives the point itself.
    """
    samples = tuple(data[:, g] for g in design.groups if g.size)
    weights = [w for g, w in zip(design.groups, design.weights) if g.size]
    if all(np.ptp(s, axis=-1).max() == 0 for s in samples):
        v = float(of_means(design.means(data)))
        return (v, v)

    def statistic(*groups: np.ndarray, axis: int = -1) -> np.ndarray:
        return of_means(sum(w * np.mean(g, axis=axis) for g, w in zip(groups, weights)))

    level = expanded_level(n_eff, confidence)
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # BCa's jackknife can be degenerate for a statistic of nearly constant data; scipy warns and
            # returns NaN, handled by the percentile fallback, so the warning is noise here.
            warnings.simplefilter("ignore")
            res = _st.bootstrap(
                samples,
                statistic,
                vectorized=True,
                axis=-1,
                n_resamples=N_RESAMPLES,
                confidence_level=level,
                method=method,
                rng=np.random.default_rng(BOOT_SEED),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return (lo, hi)
    return (math.nan, math.nan)


def _t_bounds(lin: np.ndarray, design: _Design, confidence: float, est: float) -> tuple[float, float]:
    """The normal-theory interval ``est -+ t_df * se`` of a linear(ised) statistic, ``se^2 = sum w_s^2 v_s /
    n_s`` with ``df`` by Welch-Satterthwaite. A rare stratum's variance ``v_s`` is estimated with one
    pseudo-trial of spread ``RARE_SPREAD`` (``(RARE_SPREAD^2 + (n_s - 1) s_s^2) / n_s``, one more degree of
    freedom): two or three trials that all fell on the same side of a coin cannot show its spread, and a
    bootstrap cannot reach past the values they showed. The reported interval is the union of this one and
    the bootstrap's (``_union``), for plain trials too (there with the sample variance alone: at n = 10 the
    BCa interval of lenet5 int8 BER 1e-2's paired difference covered 0.916, the union 0.940)."""
    a, dfs = [], []
    for g, w, rare in zip(design.groups, design.weights, design.rare):
        if g.size < 2:
            continue
        x = lin[g]
        ss = float(np.var(x, ddof=0)) * x.size
        if rare and not design.plain:
            a.append(w * w * (RARE_SPREAD**2 + ss) / x.size / x.size)
            dfs.append(float(x.size))
        else:
            a.append(w * w * ss / (x.size - 1) / x.size)
            dfs.append(float(x.size - 1))
    va, vd = np.array(a), np.array(dfs)
    if va.size == 0 or va.sum() <= 0:
        return est, est  # no spread anywhere: the bootstrap's point (or, for a paired plain sample, unknown)
    df = va.sum() ** 2 / np.sum(va * va / vd)
    half = float(_st.t.ppf(0.5 + confidence / 2, max(df, 1.0))) * math.sqrt(va.sum())
    return est - half, est + half


def _union(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """The smallest interval holding both (a ``nan`` end of one is ignored)."""
    return float(np.nanmin([a[0], b[0]])), float(np.nanmax([a[1], b[1]]))


def _matrix(correct: Sequence[np.ndarray] | np.ndarray | None, n: int) -> np.ndarray | None:
    """Per-image correctness as a float ``n x m`` matrix, or ``None`` when not given."""
    if correct is None or len(correct) < n or n == 0:
        return None
    c = np.asarray(correct[:n], dtype=np.float64)
    return c if c.ndim == 2 and c.shape[0] == n else None


def mean_interval(
    values: Sequence[float] | np.ndarray,
    correct: Sequence[np.ndarray] | np.ndarray | None = None,
    confidence: float = 0.95,
    *,
    strata: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
    rare: Sequence[bool] | None = None,
    flat: str = "point",
) -> Interval:
    """The mean of per-trial values with an interval that counts trials and, given ``correct``, images.

    Args:
        values: per-trial values (e.g. accuracies).
        correct: per-trial per-image correctness (``n x m``, 0/1) whose row means are ``values``;
            ``None`` = a trial-only interval (test set treated as fixed).
        confidence: nominal level.
        strata, weights: for stratified trials (``strata``): each trial's stratum and the strata's
            exact probabilities; the estimate is then ``sum_s w_s mean_s``.
        rare: per stratum, whether it holds a rare fault: its spread gets a prior pseudo-trial
            (``_t_bounds``; default: every stratum).
        flat: what a plain sample without any spread gives: ``point`` (a zero-width interval: every trial
            gave the same value) or ``unknown`` (paired differences: plans that never differed in the trials
            seen may differ in the next).

    Returns:
        The ``Interval``; ends ``nan`` with fewer than two trials (or a stratum with fewer than two), or a
        flat plain sample with ``flat="unknown"``. A stratified sample never shrinks to zero width while
        a rare stratum has weight.
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, confidence, 0)
    design = _Design.of(n, strata, weights, rare)
    data = v[None, :]
    est = float(design.means(data)[0])
    if n < 2 or not design.complete:
        return Interval(est, math.nan, math.nan, confidence, n)
    if flat == "unknown" and design.flat_plain(data):
        return Interval(est, math.nan, math.nan, confidence, n)
    lo, hi = _union(
        _bca(data, lambda m: m[0], design, confidence, design.effective_n(v)), _t_bounds(v, design, confidence, est)
    )
    c = _matrix(correct, n)
    tw = None if strata is None else design.trial_weights(n)
    return _combine(est, lo, hi, image_variance(c, tw) if c is not None else 0.0, confidence, n)


def paired_interval(
    plan: Sequence[float],
    base: Sequence[float],
    correct_plan: Sequence[np.ndarray] | np.ndarray | None = None,
    correct_base: Sequence[np.ndarray] | np.ndarray | None = None,
    confidence: float = 0.95,
    *,
    strata: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
    rare: Sequence[bool] | None = None,
) -> Interval:
    """The mean per-trial difference ``plan - base`` of two paired campaigns, with its interval.

    Trial ``t`` of both saw the same primary faults, so the difference is formed per trial (and per
    image for the test-set term) and is far less noisy than two separate intervals suggest.

    Args:
        plan, base: per-trial values, paired by index (extra trials of the longer one are ignored).
        correct_plan, correct_base: their per-image correctness, or ``None``.
        confidence: nominal level. strata, weights, rare: as in ``mean_interval``.

    Returns:
        The ``Interval``; unknown (``nan`` ends) where ``mean_interval`` cannot estimate one, including
        plain trials in which the two plans never differed (a rare difference not yet seen).
    """
    n = min(len(plan), len(base))
    d = np.asarray(plan[:n], dtype=np.float64) - np.asarray(base[:n], dtype=np.float64)
    cp, cb = _matrix(correct_plan, n), _matrix(correct_base, n)
    c = None if cp is None or cb is None else cp - cb
    return mean_interval(d, c, confidence, strata=strata, weights=weights, rare=rare, flat="unknown")


class TrialDesign(TypedDict, total=False):
    """How paired trials were drawn, as keywords (``CampaignResult.design``); none given = plain trials.

    Keys: ``strata``, ``weights`` and ``rare`` as in ``mean_interval``.
    """

    strata: Sequence[int] | None
    weights: Sequence[float] | None
    rare: Sequence[bool] | None


def _check_design(design: TrialDesign) -> None:
    """Refuse an unknown keyword among ``design`` (``**design`` would take any), as a call with it would be."""
    unknown = sorted(set(design) - set(TrialDesign.__optional_keys__))
    if unknown:
        raise TypeError(f"got an unexpected keyword argument {unknown[0]!r}")


def ratio_interval(
    kind: str,
    plan: Sequence[float],
    base: Sequence[float],
    clean: float | None = None,
    correct_plan: Sequence[np.ndarray] | np.ndarray | None = None,
    correct_base: Sequence[np.ndarray] | np.ndarray | None = None,
    clean_correct: np.ndarray | None = None,
    confidence: float = 0.95,
    **design: Unpack[TrialDesign],
) -> Interval:
    """A paired ratio with its interval: ``recovered`` share or ``relative_gain`` of a plan over ``base``.

    ``recovered = (mean plan - mean base) / (clean - mean base)``; ``relative_gain = (mean plan - mean
    base) / mean base``. Trials are resampled in pairs (BCa of a statistic of both rows); the image
    term is the delta method's linearised per-image matrix through ``image_variance``.

    Args:
        kind: ``recovered`` or ``relative_gain``.
        plan, base: paired per-trial accuracies. clean: the clean accuracy (for ``recovered``).
        correct_plan, correct_base: per-image correctness of the trials; clean_correct: of the clean model.
        confidence: nominal level. design: ``strata``, ``weights``, ``rare`` as in ``mean_interval``.

    Returns:
        The ``Interval``; estimate ``nan`` where the denominator is 0 (no loss to recover; base accuracy 0).
    """
    _check_design(design)
    if kind not in ("recovered", "relative_gain"):
        raise ValueError(f"unknown ratio {kind!r}")
    if kind == "recovered" and clean is None:
        raise ValueError("recovered needs the clean accuracy")
    n = min(len(plan), len(base))
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, confidence, 0)
    data = np.stack([np.asarray(plan[:n], dtype=np.float64), np.asarray(base[:n], dtype=np.float64)])
    trials = _Design.of(n, design.get("strata"), design.get("weights"), design.get("rare"))
    ratio = _Ratio(kind, float(clean) if kind == "recovered" and clean is not None else 0.0)  # None refused above
    mp, mb = trials.means(data)
    denom = ratio.denominator(float(mb))
    if not denom > 0:
        return Interval(math.nan, math.nan, math.nan, confidence, n)
    est = float(ratio.of_means(np.array([mp, mb])))
    if n < 2 or not trials.complete or trials.flat_plain(data[:1] - data[1:]):
        return Interval(est, math.nan, math.nan, confidence, n)
    lin = (data[0] - data[1] + ratio.sign * est * data[1]) / denom  # the ratio linearised at the estimate
    lo, hi = _union(
        _bca(data, ratio.of_means, trials, confidence, trials.effective_n(data[0] - data[1])),
        _t_bounds(lin, trials, confidence, est),
    )
    cp, cb = _matrix(correct_plan, n), _matrix(correct_base, n)
    var = 0.0
    if cp is not None and cb is not None:
        tw = None if trials.plain else trials.trial_weights(n)
        var = ratio.image_variance(cp, cb, clean_correct, est, denom, tw)
    return _combine(est, lo, hi, var, confidence, n)


@dataclass(frozen=True)
class _Ratio:
    """``recovered`` (denominator ``clean - base``) or ``relative_gain`` (denominator ``base``) of plan over base."""

    kind: str
    ref: float  # the clean accuracy for ``recovered``, else 0

    @property
    def sign(self) -> float:
        """+1 when the denominator is ``ref - base``, -1 when it is ``base``."""
        return 1.0 if self.kind == "recovered" else -1.0

    def denominator(self, base: float) -> float:
        """The denominator at the base mean ``base``."""
        return float(self.sign * (self.ref - base))

    def of_means(self, m: np.ndarray) -> np.ndarray:
        """The ratio of the row means ``m`` (plan, base); ``nan`` where the denominator is not positive."""
        denom = self.sign * (self.ref - m[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            out: np.ndarray = np.where(denom > 0, (m[0] - m[1]) / np.where(denom > 0, denom, 1.0), np.nan)
            return out

    def image_variance(
        self,
        cp: np.ndarray,
        cb: np.ndarray,
        clean_correct: np.ndarray | None,
        est: float,
        denom: float,
        tw: np.ndarray | None,
    ) -> float:
        """The test-set term: ``image_variance`` of the ratio linearised per image at ``est`` (``cp``, ``cb``: per-image
        correctness of plan and base); 0 for ``recovered`` without the clean model's."""
        if self.kind != "recovered":
            return image_variance((cp - cb - est * cb) / denom, tw)
        if clean_correct is None:
            return 0.0
        cc = np.asarray(clean_correct, dtype=np.float64)[None, :]
        return image_variance((cp - cb - est * (cc - cb)) / denom, tw)


#: The unprotected loss (clean - unprotected accuracy) below which there is nothing to protect: 0.5 point.
NEGLIGIBLE_LOSS = 0.005
#: A difference smaller than this is of no practical consequence: 0.5 point, or a tenth of the
#: fault-induced loss where that is smaller (``practical_threshold``).
PRACTICAL_DIFFERENCE = 0.005


def practical_threshold(loss: float | None = None) -> float:
    """The practical threshold of a paired difference: ``min(0.5 pt, loss / 10)`` (0.5 pt without a loss)."""
    if loss is None or not math.isfinite(loss):
        return PRACTICAL_DIFFERENCE
    return min(PRACTICAL_DIFFERENCE, max(loss, 0.0) / 10.0)


@dataclass(frozen=True)
class Judgement:
    """The verdict of a paired difference, with what it rests on (``judge``).

    Attributes:
        verdict: one of ``VERDICTS``.
        difference: the paired difference's interval.
        threshold: the practical threshold used (accuracy units).
        loss: the unprotected loss it was judged against (``nan`` when not given).
        needed: for ``not enough trials``: the trial count at which an interval can first be estimated
            (0 when unknown or not applicable).
    """

    verdict: str
    difference: Interval
    threshold: float
    loss: float = math.nan
    needed: int = 0

    @property
    def decided(self) -> bool:
        """Whether the data show a difference of practical size (``helps`` or ``hurts``)."""
        return self.verdict in VERDICTS[:2]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``verdict``, ``threshold``, ``loss``, ``needed``."""
        return {
            "verdict": self.verdict,
            "threshold": self.threshold,
            "loss": self.loss if math.isfinite(self.loss) else None,
            "needed": self.needed or None,
        }


def judge(diff: Interval, loss: float | None = None, needed: int = 0) -> Judgement:
    """THE paired-verdict rule (report, Fault lab, CLI, sweeps), in this order:

    1. ``not enough trials`` when the interval cannot be estimated (fewer than two trials, a stratum of
       positive probability with fewer than two, or no spread where one must exist);
    2. ``nothing to protect`` when ``loss`` (clean minus unprotected accuracy) is under ``NEGLIGIBLE_LOSS``;
    3. ``no practical difference`` when the whole interval lies within the practical threshold
       (``practical_threshold(loss)``), whether or not it excludes 0;
    4. ``helps`` when the interval lies above 0, ``hurts`` below, else ``within noise``.

    Args:
        diff: the paired difference ``plan - other`` (accuracy units).
        loss: the unprotected loss at the point (``None`` = not known: rule 2 is skipped).
        needed: the trials at which an interval can first be estimated (reported with rule 1).
    """
    helps, hurts, noise, same, unknown, nothing = VERDICTS
    threshold = practical_threshold(loss)
    lost = math.nan if loss is None else float(loss)
    if not (math.isfinite(diff.low) and math.isfinite(diff.high)):
        return Judgement(unknown, diff, threshold, lost, int(needed))
    if loss is not None and math.isfinite(loss) and loss < NEGLIGIBLE_LOSS:
        return Judgement(nothing, diff, threshold, lost)
    if -threshold < diff.low and diff.high < threshold:
        return Judgement(same, diff, threshold, lost)
    if diff.low > 0:
        return Judgement(helps, diff, threshold, lost)
    if diff.high < 0:
        return Judgement(hurts, diff, threshold, lost)
    return Judgement(noise, diff, threshold, lost)


def verdict(diff: Interval, loss: float | None = None) -> str:
    """``judge(diff, loss).verdict``: the verdict word alone."""
    return judge(diff, loss).verdict


# ---- compatibility wrappers: the old tuple-returning API, now on the BCa interval -----------------


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """``(low, high)`` of ``mean_interval`` over trials only; ``(nan, nan)`` with fewer than two values."""
    iv = mean_interval(values, None, confidence)
    return (iv.low, iv.high)


def ci_half_width(values: Sequence[float], confidence: float = 0.95) -> float:
    """Half the width of ``mean_ci`` (``inf`` with fewer than two values)."""
    return mean_interval(values, None, confidence).half_width


def paired_difference(
    plan: Sequence[float], base: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float]:
    """``(mean, low, high)`` of ``paired_interval`` without images (kept for existing callers)."""
    iv = paired_interval(plan, base, confidence=confidence)
    return (iv.estimate, iv.low, iv.high)


def reliability_improvement(acc_plan: float, acc_none: float, acc_clean: float) -> tuple[float, float]:
    """Reliability improvement of a plan over no protection, both ways (point estimates).

    Args:
        acc_plan: mean accuracy under faults with the plan.
        acc_none: mean accuracy under the same faults without protection.
        acc_clean: accuracy without faults.

    Returns:
        ``(recovered, relative_gain)``: the share of the fault-induced loss the plan recovers,
        ``(plan - none) / (clean - none)``, and ``(plan - none) / none``. Each is ``nan`` where its
        denominator is 0 (no loss to recover; unprotected accuracy 0). For intervals use ``ratio_interval``.
    """
    loss = acc_clean - acc_none
    recovered = (acc_plan - acc_none) / loss if loss > 0 else math.nan
    gain = (acc_plan - acc_none) / acc_none if acc_none > 0 else math.nan
    return (recovered, gain)


def matching_budget(
    candidates: Mapping[float, Sequence[float]],
    target: Sequence[float],
    confidence: float = 0.95,
    *,
    strata: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
    rare: Sequence[bool] | None = None,
) -> tuple[float, Interval | None]:
    """The smallest budget whose paired accuracy is not below ``target``'s (paired data, same trials).

    A candidate budget matches when the mean paired difference ``candidate - target`` is >= 0 or
    within noise (``verdict`` is not ``hurts``): the smallest budget at which the data cannot tell it
    apart from, or shows it better than, the target plan.

    Args:
        candidates: budget -> per-trial accuracies of one scorer's plan at that budget.
        target: per-trial accuracies of the plan to match (same trials).
        confidence: nominal level of the verdict. strata, weights, rare: the trial design, as in ``paired_interval``.

    Returns:
        ``(budget, difference interval)``; ``(nan, None)`` when no tested budget matches.
    """
    for budget in sorted(candidates):
        diff = paired_interval(
            candidates[budget], target, confidence=confidence, strata=strata, weights=weights, rare=rare
        )
        if math.isfinite(diff.low) and not diff.high < 0:
            return float(budget), diff
    return math.nan, None


def iso_reliability_cost(
    table: pd.DataFrame, target: float, by: str = "protect", budget: str = "budget", value: str = "mean_accuracy"
) -> pd.DataFrame:
    """The smallest budget each scorer needs to reach a target accuracy (point estimates).

    Args:
        table: one row per (scorer, budget) with the mean accuracy (a sweep's rows at one grid point:
            paired, so the budgets are compared on the same trials).
        target: the accuracy to reach (same units as ``value``).
        by, budget, value: column names.

    Returns:
        One row per scorer: ``by``, ``min_budget`` (``nan`` if no tested budget reaches the target),
        ``accuracy_at_min``.
    """
    rows = []
    for name, group in table.groupby(by, sort=True):
        ok = group[group[value] >= target].sort_values(budget)
        if ok.empty:
            rows.append({by: name, "min_budget": math.nan, "accuracy_at_min": math.nan})
        else:
            rows.append(
                {by: name, "min_budget": float(ok[budget].iloc[0]), "accuracy_at_min": float(ok[value].iloc[0])}
            )
    return pd.DataFrame(rows, columns=[by, "min_budget", "accuracy_at_min"])
