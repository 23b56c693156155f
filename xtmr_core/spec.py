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
from typing import Any

from xtmr_core.format_registry import format_info
from xtmr_core.plan_registry import plan_info
from xtmr_core.vocabulary import (
    ECC_DOUBLE,
    GUARD_SUFFIX,
    HARMS,
    INT8_GRANULARITIES,
    MODES,
    RULES,
    SCORERS,
    check_ber,
    check_bits,
    check_choice,
    check_plan_budget,
    check_seed,
    check_trials,
)

#: The fields that choose the protection plan; the others choose the faults (the grid point).
PLAN_FIELDS = ("protect", "budget", "bits", "rule", "per_layer", "guard", "ecc_double", "scorer", "harm")


@dataclass(frozen=True)
class CampaignSpec:
    """One campaign: a protection plan under one fault model, over ``trials`` seeded trials.

    Attributes:
        protect: the plan (a name of ``plan_registry.PLAN_INFO``, whose ``spec_fields`` say which of the
            plan fields below apply to it; the others take their defaults).
        budget: percent of weights, for the scorer plans; percent extra memory (0..200) for ``damage``,
            so ``damage 2`` buys as many triplicated bits as ``lrp 1`` (else 0): ``PlanInfo.budget_unit``.
        ber: bit error rate. fmt: storage format. mode: fault mode.
        trials: number of trials. seed: campaign seed; trial ``t`` draws from ``(seed, t)``.
        fault_bits: only these bit positions can fail (``None`` = all).
        bits: protected bit positions, for ``protect="bits"`` (else ``None``).
        rule: the LRP rule, for ``protect="lrp"`` or a ``damage`` plan scored by lrp (else ``"epsilon"``).
        per_layer: rank weights within each layer, for scorer plans (else ``False``).
        int8_granularity: int8 scale granularity (``"channel"`` unless ``fmt="int8"``).
        guard: apply the range guard on read as well (costs no copies); ``protect="range"`` is the guard alone
            (``protect="none"`` with the guard is normalised to it).
        ecc_double: for ``ecc``: a word with a detected error reads as ``zero`` or as ``read`` (else ``zero``).
        scorer: for ``damage``: the weight scorer (one of ``vocabulary.SCORERS``; else ``lrp``).
        harm: for ``damage``: the harm of a flip at a bit position, ``delta`` or ``scan`` (else ``delta``).

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
    ecc_double: str = "zero"
    scorer: str = "lrp"
    harm: str = "delta"

    def __post_init__(self) -> None:
        protect = "range" if self.protect == "none" and self.guard else self.protect  # one name for one campaign
        uses = set(plan_info(protect).spec_fields)  # which plan fields apply: the plan registry says
        check_choice("ECC double-error policy", self.ecc_double, ECC_DOUBLE)
        check_choice("scorer", self.scorer, SCORERS)
        check_choice("harm", self.harm, HARMS)
        fmt = format_info(self.fmt).name
        check_choice("fault mode", self.mode, MODES)
        check_choice("LRP rule", self.rule, RULES)
        check_choice("int8 granularity", self.int8_granularity, INT8_GRANULARITIES)
        scorer = self.scorer if "scorer" in uses else protect  # a plan that picks its scorer ranks by it
        norm = {
            "protect": protect,
            "budget": check_plan_budget(protect, self.budget) if "budget" in uses else 0.0,
            "ber": check_ber(self.ber),
            "trials": check_trials(int(self.trials) if _integral(self.trials) else self.trials),
            "seed": check_seed(int(self.seed) if _integral(self.seed) else self.seed),
            "fault_bits": None if self.fault_bits is None else check_bits(self.fault_bits, fmt, "fault bit position"),
            "bits": check_bits(self.bits or (), fmt) if "bits" in uses else None,
            "rule": self.rule if "rule" in uses and scorer == "lrp" else "epsilon",
            "per_layer": bool(self.per_layer) and "per_layer" in uses,
            "int8_granularity": self.int8_granularity if not format_info(fmt).is_float else "channel",
            "guard": bool(self.guard) and "guard" in uses,
            "ecc_double": self.ecc_double if "ecc_double" in uses else "zero",
            "scorer": self.scorer if "scorer" in uses else "lrp",
            "harm": self.harm if "harm" in uses else "delta",
        }
        for name, value in norm.items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> CampaignSpec:
        """A copy with some fields changed (normalised again)."""
        return replace(self, **changes)

    @property
    def point(self) -> CampaignSpec:
        """The grid point of this campaign: the same faults with no protection (the paired baseline)."""
        return self.replace(**{f.name: f.default for f in fields(self) if f.name in PLAN_FIELDS})

    def plan_key(self) -> tuple[object, ...]:
        """The plan's fields as a tuple (equal plans give equal keys)."""
        return tuple(getattr(self, name) for name in PLAN_FIELDS)


def grid(
    protects: Sequence[str], budgets: Sequence[float], bers: Sequence[float], formats: Sequence[str], **common: Any
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
    for fmt, name, ber in itertools.product(formats, protects, bers):
        protect, guard = split_plan_name(name)
        fields = {**common, "guard": True} if guard else common
        for budget in budgets if plan_info(protect).uses_budget else [0.0]:
            specs.append(CampaignSpec(protect, budget, ber, fmt, **fields))
    return list(dict.fromkeys(specs))


def split_plan_name(name: str) -> tuple[str, bool]:
    """A plan name as the CLI and sweeps write it, split into the plan and the guard: ``lrp+range`` ->
    ``("lrp", True)``, ``lrp`` -> ``("lrp", False)``."""
    if name.endswith(GUARD_SUFFIX):
        return name[: -len(GUARD_SUFFIX)], True
    return name, False


def _integral(value: object) -> bool:
    """Whether ``value`` is an int-like number (numpy integers, whole floats) but not a bool."""
    return not isinstance(value, bool) and hasattr(value, "__int__") and float(value) == int(value)  # type: ignore[arg-type]
