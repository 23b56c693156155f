"""What each protection plan is, said once: its name, label, budget, spec fields and colour.

The describing half of the plan registry (the building half is ``protection.register_builder``), in the
manner of Zennit's ``COMPOSITES``: one ``PlanInfo`` per plan in ``PLAN_INFO``, and everything that asks a
question about a plan (does it take a budget, in which unit, which ``CampaignSpec`` fields apply, which colour
do charts draw it in, does it need reference images) reads the answer here instead of testing names.
Torch- and numpy-free, like ``vocabulary``, so the CLI and ``spec`` check plan names before torch loads.

Read live: a plan registered at run time (``register_plan``) is a name the CLI, ``spec`` and the pages
accept from then on, because they ask this registry (``plan_names``), not a tuple frozen at import.
"""

from __future__ import annotations

from dataclasses import dataclass

from xtmr_core.errors import XtmrError

#: The ``CampaignSpec`` fields a plan may use (``spec.PLAN_FIELDS`` without ``protect``); a field a plan does
#: not list takes its default in a spec, so two specs of the same campaign compare equal.
PLAN_SPEC_FIELDS: tuple[str, ...] = ("budget", "bits", "rule", "per_layer", "guard", "ecc_double", "scorer", "harm")
#: Budget units of the built-in plans, and the largest budget each allows.
WEIGHTS_PCT, EXTRA_MEMORY_PCT = "% of weights", "% extra memory"


@dataclass(frozen=True)
class PlanInfo:
    """One protection plan, described.

    Attributes:
        name: the name the CLI, specs and tables use (``lrp``).
        label: what people read: the plan and what it protects.
        budget_unit: what its budget counts (``% of weights``, ``% extra memory``); ``None`` = no budget.
        needs_reference: whether building it needs the reference images (scores from gradients or LRP).
        spec_fields: the ``CampaignSpec`` fields that apply to it (of ``PLAN_SPEC_FIELDS``).
        colour: the hex colour every chart draws it in.
        budget_max: the largest budget (100 for a share of weights; 200 for extra memory, every bit
            triplicated).
    """

    name: str
    label: str
    budget_unit: str | None
    needs_reference: bool
    spec_fields: tuple[str, ...]
    colour: str
    budget_max: float = 100.0

    def __post_init__(self) -> None:
        unknown = [f for f in self.spec_fields if f not in PLAN_SPEC_FIELDS]
        if unknown:
            raise XtmrError(
                f"plan {self.name!r}: unknown spec field {unknown[0]!r} (one of {', '.join(PLAN_SPEC_FIELDS)})"
            )
        if (self.budget_unit is None) == ("budget" in self.spec_fields):
            raise XtmrError(f"plan {self.name!r}: a budget unit goes with the 'budget' spec field, and only with it")
        if not (len(self.colour) == 7 and self.colour.startswith("#")):
            raise XtmrError(f"plan {self.name!r}: colour must be a hex code like #2b6cb0, got {self.colour!r}")

    @property
    def uses_budget(self) -> bool:
        """Whether the plan takes a budget (the budget slider and ``--budget`` mean something for it)."""
        return self.budget_unit is not None


_SCORER_FIELDS = ("budget", "per_layer", "guard")

#: The registry, in the order menus, tables and charts list plans (``none`` first: the baseline).
PLAN_INFO: dict[str, PlanInfo] = {
    info.name: info
    for info in (
        PlanInfo("none", "no protection", None, False, (), "#c53030"),  # + the guard is ``range``
        PlanInfo(
            "lrp",
            "LRP: top budget% by relevance (the paper)",
            WEIGHTS_PCT,
            True,
            ("budget", "rule", "per_layer", "guard"),
            "#2b6cb0",
        ),
        PlanInfo("magnitude", "magnitude: top budget% by |w|", WEIGHTS_PCT, False, _SCORER_FIELDS, "#dd6b20"),
        PlanInfo("gradient", "gradient: top budget% by |dL/dw|", WEIGHTS_PCT, True, _SCORER_FIELDS, "#38a169"),
        PlanInfo("taylor", "Taylor: top budget% by |w·dL/dw|", WEIGHTS_PCT, True, _SCORER_FIELDS, "#805ad5"),
        PlanInfo("random", "random: budget% chosen at random", WEIGHTS_PCT, False, _SCORER_FIELDS, "#718096"),
        PlanInfo("full", "full TMR: every bit three times", None, False, ("guard",), "#1a202c"),
        PlanInfo("bits", "bit positions: chosen bits of every weight", None, False, ("bits", "guard"), "#d69e2e"),
        PlanInfo("range", "range guard: out-of-range reads → 0 (no copies)", None, False, (), "#319795"),
        PlanInfo(
            "ecc",
            "ECC SEC-DED (72, 64): 8 check bits per 64-bit word (12.5%)",
            None,
            False,
            ("ecc_double", "guard"),
            "#b83280",
        ),
        PlanInfo(
            "damage",
            "damage: top (weight, bit) pairs by LRP × |Δw| (budget = % extra memory)",
            EXTRA_MEMORY_PCT,
            True,
            ("budget", "rule", "scorer", "harm", "guard"),
            "#975a16",
            budget_max=200.0,
        ),
    )
}


def plan_names() -> tuple[str, ...]:
    """Every plan name, in registry order, as it is now (plans registered at run time included)."""
    return tuple(PLAN_INFO)


def plan_info(name: str) -> PlanInfo:
    """The ``PlanInfo`` of plan ``name``.

    Raises:
        XtmrError: an unknown name (the message names the known plans).
    """
    info = PLAN_INFO.get(str(name))
    if info is None:
        raise XtmrError(f"unknown protection {name!r}: choose one of {', '.join(PLAN_INFO)}")
    return info


def register_plan(info: PlanInfo) -> None:
    """Add a plan to the registry (or replace the one of the same name); it then has to have a builder
    (``protection.register_builder``) before a campaign can run it."""
    if not info.name.isidentifier():
        raise XtmrError(f"plan name must be a plain word (letters, digits, _), got {info.name!r}")
    PLAN_INFO[info.name] = info


def unregister_plan(name: str) -> None:
    """Remove a plan registered at run time (tests clean up after themselves with it)."""
    PLAN_INFO.pop(name, None)
