"""Single-bit experiments: what one flip of one bit of one weight does, and per-bit sensitivity."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from xtmr_core.errors import XtmrError
from xtmr_core.evaluation import accuracy, mismatch, predict
from xtmr_core.faults import FaultSet
from xtmr_core.formats import bit_roles, word_to_bits
from xtmr_core.injection import FaultInjector
from xtmr_core.memory import WeightLayout
from xtmr_core.protection import ProtectionPlan, make_plan
from xtmr_core.spec import CampaignSpec
from xtmr_core.stats import mean_ci


class ExperimentLike(Protocol):
    """What a single-bit experiment needs of an ``experiment.Experiment``: named here, so that the experiment
    can call this module (its ``damage`` plan's scan harm) while imports still run one way."""

    layout: WeightLayout
    x_test: torch.Tensor
    y_test: torch.Tensor

    def injector(self, fmt: str = "fp32", int8_granularity: str = "channel") -> FaultInjector: ...
    def clean_predictions(self, fmt: str = "fp32", int8_granularity: str = "channel") -> torch.Tensor: ...
    def clean_accuracy(self, fmt: str = "fp32", int8_granularity: str = "channel") -> float: ...
    def plan(self, spec: CampaignSpec) -> ProtectionPlan: ...
    def faults_of_trial(
        self, spec: CampaignSpec, trial: int = 0, *, specs: Sequence[CampaignSpec] | None = None, design: str = "auto"
    ) -> FaultSet: ...


@dataclass(frozen=True)
class FlipOutcome:
    """One bit of one stored weight flipped.

    Attributes:
        layer, index: where the weight is. bit: the flipped position (0 = LSB). role: sign/exponent/...
        bits_before, bits_after: the stored word, most significant bit first.
        value_before, value_after: the weight read back before and after.
        accuracy, mismatch: test accuracy with the flip, and share of predictions that changed.
        clean_accuracy: test accuracy without it.
    """

    layer: str
    index: tuple[int, ...]
    bit: int
    role: str
    bits_before: str
    bits_after: str
    value_before: float
    value_after: float
    accuracy: float
    mismatch: float
    clean_accuracy: float


def flip_one(exp: ExperimentLike, weight: int, bit: int, fmt: str = "fp32") -> FlipOutcome:
    """Flip one bit of one weight (in ``fmt`` storage) and evaluate; the clean model is untouched.

    Args:
        exp: the experiment.
        weight: flat weight index. bit: bit position.
        fmt: storage format.

    Returns:
        The ``FlipOutcome``.
    """
    inj = exp.injector(fmt)
    n_bits = inj.stored.bits
    if not 0 <= int(weight) < inj.n_weights:
        raise XtmrError(f"weight index {weight} outside 0..{inj.n_weights - 1}")
    if not 0 <= int(bit) < n_bits:
        raise XtmrError(f"bit {bit} outside 0..{n_bits - 1} for {fmt}")
    faults = FaultSet(np.array([int(weight)]), np.array([int(bit)]), np.zeros(1, dtype=np.int8))
    index, values = inj.read(faults, make_plan("none", n_bits))
    word = int(inj.stored.words[int(weight)])
    clean_pred = exp.clean_predictions(fmt)
    with inj.applied(index, values) as model:
        pred = predict(model, exp.x_test)
    layer, local = exp.layout.locate(int(weight))
    return FlipOutcome(
        layer,
        local,
        int(bit),
        bit_roles(fmt)[int(bit)],
        word_to_bits(word, fmt),
        word_to_bits(word ^ (1 << int(bit)), fmt),
        float(inj.clean_values[int(weight)]),
        float(values[0]),
        accuracy(pred, exp.y_test),
        mismatch(pred, clean_pred),
        accuracy(clean_pred, exp.y_test),
    )


def bit_sensitivity(
    exp: ExperimentLike,
    fmt: str = "fp32",
    *,
    trials: int = 20,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Accuracy after one flip at each bit position of one uniformly chosen weight.

    Args:
        exp: the experiment. fmt: storage format.
        trials: weights tried per bit position (the same weights for every position).
        seed: seed of the weight choice.
        progress: called with ``(done, total)`` after each flip.

    Returns:
        One row per bit: ``bit``, ``role``, ``mean_accuracy``, ``ci_low``, ``ci_high``, ``min_accuracy``,
        ``clean_accuracy``, ``trials``.
    """
    inj = exp.injector(fmt)
    weights = np.random.default_rng(seed).integers(0, inj.n_weights, size=int(trials))
    clean = exp.clean_accuracy(fmt)
    rows = []
    total = inj.stored.bits * len(weights)
    for bit in range(inj.stored.bits):
        accs = []
        for w in weights:
            accs.append(flip_one(exp, int(w), bit, fmt).accuracy)
            if progress is not None:
                progress(bit * len(weights) + len(accs), total)
        lo, hi = mean_ci(accs)
        rows.append(
            {
                "bit": bit,
                "role": bit_roles(fmt)[bit],
                "mean_accuracy": float(np.mean(accs)),
                "ci_low": lo,
                "ci_high": hi,
                "min_accuracy": float(np.min(accs)),
                "clean_accuracy": clean,
                "trials": int(trials),
            }
        )
    return pd.DataFrame(rows)


def word_value(exp: ExperimentLike, weight: int, word: int, fmt: str = "fp32") -> float:
    """The value a stored word of ``weight`` reads back as (e.g. the voted word of the TMR demo).

    Args:
        exp: the experiment. weight: flat weight index (int8 needs its scale). word: the unsigned bit pattern.
        fmt: storage format.
    """
    stored = exp.injector(fmt).stored
    n = stored.bits
    signed = int(word) - (1 << n) if int(word) >> (n - 1) & 1 else int(word)  # two's complement of n bits
    return float(stored.decode(np.array([signed]), np.array([int(weight)]))[0])


def trial_predictions(
    exp: ExperimentLike, spec: CampaignSpec, trial: int, specs: Sequence[CampaignSpec] | None = None
) -> np.ndarray:
    """The test-set predictions of trial ``trial`` of campaign ``spec`` (``-1`` where the output was NaN or
    infinite): the same faults as in ``Experiment.evaluate_point(specs)`` (``specs``: the point's campaigns,
    which decide its sampling design; default ``[spec]``); the clean model is untouched."""
    inj = exp.injector(spec.fmt, spec.int8_granularity)
    index, values = inj.read(exp.faults_of_trial(spec, trial, specs=specs), exp.plan(spec), spec.mode)
    with inj.applied(index, values) as model:
        return predict(model, exp.x_test).cpu().numpy()
