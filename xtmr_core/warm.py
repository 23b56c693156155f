"""Warming the results store: compute ahead the points the Fault lab shows at its default settings.

``python -m xtmr_core warm`` runs, for each model and format, the Fault lab's default plan (LRP on 1% of
the weights, the default rule, seed and trial count) with its unprotected baseline at every stop of the BER
slider, exactly as the app asks for them (``Experiment.evaluate_point([spec])`` with the automatic design),
so a class moving the slider reads each point instead of computing it. Points already stored are read, not
run: warming twice costs a read.

The stops here are the app's own (``ui.BER_VALUES``, ``ui.DEFAULTS``; a test checks they stay equal): the
engine does not import the app.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from xtmr_core.spec import CampaignSpec

#: The Fault lab's BER slider stops: 1, 2, 5 per decade from 1e-7 to 1e-2 (``ui.BER_VALUES``).
BER_STOPS: tuple[float, ...] = tuple(float(f"{m}e{e}") for e in range(-7, -2) for m in (1, 2, 5)) + (1e-2,)
#: The Fault lab's default plan and point (``ui.DEFAULTS``): LRP (epsilon rule) on 1% of the weights, 10 trials,
#: seed 0, bit flips, no range guard.
DEFAULT_PLAN = {"protect": "lrp", "budget": 1.0, "trials": 10, "seed": 0, "mode": "flip", "rule": "epsilon"}
#: What ``warm`` fills by default: the shipped LeNet-5 in both formats the Fault lab opens with.
MODELS: tuple[str, ...] = ("lenet5",)
FORMATS: tuple[str, ...] = ("fp32", "int8")


def warm_specs(fmt: str) -> list[CampaignSpec]:
    """The Fault lab's default campaign at every BER stop, in one format (one grid point each)."""
    return [CampaignSpec(ber=ber, fmt=fmt, **DEFAULT_PLAN) for ber in BER_STOPS]  # type: ignore[arg-type]


@dataclass(frozen=True)
class Warmed:
    """One warmed point: its model, spec, the trials (one plan each) read and run, and its seconds."""

    model: str
    spec: CampaignSpec
    read: int
    ran: int
    seconds: float

    def line(self) -> str:
        """The progress line of the point."""
        return (
            f"{self.model} {self.spec.fmt} BER {self.spec.ber:g}: {self.spec.trials} trials of lrp 1% and no "
            f"protection, {self.read} read, {self.ran} run, {self.seconds:.1f} s"
        )


def warm(
    models: Sequence[str] = MODELS,
    formats: Sequence[str] = FORMATS,
    *,
    dataset: str = "mnist5k",
    log: Callable[[Warmed], None] | None = None,
) -> list[Warmed]:
    """Fill the results store (``$XTMR_STORE`` or the default) with the Fault lab's default points.

    Args:
        models: shipped model names. formats: storage formats. dataset: their dataset.
        log: called after each point (a progress line).

    Returns:
        One ``Warmed`` per point, in order.

    Raises:
        XtmrError: a model without a shipped checkpoint, or the store turned off.
    """
    from xtmr_core.errors import XtmrError
    from xtmr_core.experiment import Experiment

    done: list[Warmed] = []
    for model in models:
        exp = Experiment(model, dataset)  # as the app builds it: the same fingerprint, the same store keys
        store = exp.store
        if store is None:
            raise XtmrError("the results store is off (XTMR_STORE=none): there is nothing to warm")
        for fmt in formats:
            for spec in warm_specs(fmt):
                before, t0 = (store.read, store.ran), time.perf_counter()
                exp.evaluate_point([spec])
                w = Warmed(model, spec, store.read - before[0], store.ran - before[1], time.perf_counter() - t0)
                done.append(w)
                if log is not None:
                    log(w)
    return done


__all__ = ["BER_STOPS", "DEFAULT_PLAN", "FORMATS", "MODELS", "Warmed", "warm", "warm_specs"]
