"""``CampaignSpec``: the one value object that says what a fault campaign is.

The CLI, sweeps, the report, the app and the Ray path all build one of these and pass it on; because it is
frozen, hashable and normalised (a field a plan ignores takes one canonical value), two specs that describe
the same campaign compare equal, so a spec is directly a cache key and a grid key. Torch-free: it is built
and checked before the engine loads.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from xtmr_core.vocabulary import (
    FORMATS,
    INT8_GRANULARITIES,
    MODES,
    PLANS,
    RULES,
    SCORERS,
    check_ber,
    check_bits,
    check_budget,
    check_choice,
    check_seed,
    check_trials,
)

#: The fields that choose the protection plan; the others choose the faults (the grid point).
PLAN_FIELDS = ("protect", "budget", "bits", "rule", "per_layer", "guard")


@dataclass(frozen=True)
class CampaignSpec:
    """One campaign: a protection plan under one fault model, over ``trials`` seeded trials.

    Attributes:
        protect: the plan (one of ``vocabulary.PLANS``).
        budget: percent of weights, for the scorer plans (else 0).
        ber: bit error rate. fmt: storage format. mode: fault mode.
        trials: number of trials. seed: campaign seed; trial ``t`` draws from ``(seed, t)``.
        fault_bits: only these bit positions can fail (``None`` = all).
        bits: protected bit positions, for ``protect="bits"`` (else ``None``).
        rule: the LRP rule, for ``protect="lrp"`` (else ``"epsilon"``).
        per_layer: rank weights within each layer, for scorer plans (else ``False``).
        int8_granularity: int8 scale granularity (``"channel"`` unless ``fmt="int8"``).
        guard: apply the range guard on read as well (costs no copies); ``protect="range"`` is the guard alone.

    Raises:
        XtmrError: any field out of range or unknown (one line, before any work).
    """

    protect: str = "none"
    budget: float = 0.0
    ber: float = 1e-4
    fmt: str = "fp32"
    trials: int = 20
    seed: int = 0
    mode: str = "flip"
    fault_bits: tuple[int, ...] | None = None
    bits: tuple[int, ...] | None = None
    rule: str = "epsilon"
    per_layer: bool = False
    int8_granularity: str = "channel"
    guard: bool = False

    def __post_init__(self) -> None:
        protect = check_choice("protection", self.protect, PLANS)
        fmt = check_choice("format", self.fmt, FORMATS)
        check_choice("fault mode", self.mode, MODES)
        check_choice("LRP rule", self.rule, RULES)
        check_choice("int8 granularity", self.int8_granularity, INT8_GRANULARITIES)
        scorer = protect in SCORERS
        norm = {
            "budget": check_budget(self.budget) if scorer else 0.0,
            "ber": check_ber(self.ber),
            "trials": check_trials(int(self.trials) if _integral(self.trials) else self.trials),
            "seed": check_seed(int(self.seed) if _integral(self.seed) else self.seed),
            "fault_bits": None if self.fault_bits is None else check_bits(self.fault_bits, fmt, "fault bit position"),
            "bits": check_bits(self.bits or (), fmt) if protect == "bits" else None,
            "rule": self.rule if protect == "lrp" else "epsilon",
            "per_layer": bool(self.per_layer) and scorer,
            "int8_granularity": self.int8_granularity if fmt == "int8" else "channel",
            "guard": bool(self.guard) and protect != "range",
        }
        for name, value in norm.items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: object) -> CampaignSpec:
        """A copy with some fields changed (normalised again)."""
        return replace(self, **changes)

    @property
    def point(self) -> CampaignSpec:
        """The grid point of this campaign: the same faults with no protection (the paired baseline)."""
        return self.replace(**{f.name: f.default for f in fields(self) if f.name in PLAN_FIELDS})

    def plan_key(self) -> tuple:
        """The plan's fields as a tuple (equal plans give equal keys)."""
        return tuple(getattr(self, name) for name in PLAN_FIELDS)


def grid(
    protects: Sequence[str], budgets: Sequence[float], bers: Sequence[float], formats: Sequence[str], **common: object
) -> list[CampaignSpec]:
    """The campaigns of a sweep, one ``CampaignSpec`` per point; plans without a budget run once.

    Args:
        protects, budgets, bers, formats: the axes of the grid.
        common: the other ``CampaignSpec`` fields, the same at every point (trials, seed, mode, bits, ...).

    Returns:
        The distinct specs in grid order (``1e-4`` and ``0.0001`` are one BER; specs normalise the rest).

    Raises:
        XtmrError: any point that is invalid (a BER out of range, a bit position the format lacks, ...).
    """
    specs: list[CampaignSpec] = []
    for fmt, protect, ber in itertools.product(formats, protects, bers):
        for budget in budgets if protect in SCORERS else [0.0]:
            specs.append(CampaignSpec(protect, budget, ber, fmt, **common))  # type: ignore[arg-type]
    return list(dict.fromkeys(specs))


def _integral(value: object) -> bool:
    """Whether ``value`` is an int-like number (numpy integers, whole floats) but not a bool."""
    return not isinstance(value, bool) and hasattr(value, "__int__") and float(value) == int(value)  # type: ignore[arg-type]
