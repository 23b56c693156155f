"""The report's experiment grid: which paired points run, and the runner that runs them.

A *grid point* is one (model, format, BER): every plan of a point, and the unprotected baseline, runs on
the same trials — trial ``t`` draws its primary faults from the seed pair ``(seed, t)`` whatever the plan —
and the same fixed number of them, so that any two plans of a point compare trial by trial (paired) and
no plan's mean is biased by stopping on its own. ``run_grid`` builds the points and hands them to a
*runner*, a callable ``runner(points, dataset, checkpoints, progress) -> rows``: ``LocalRunner`` runs them
here, one model at a time; a distributed runner can take its place (``run_report(runner=...)``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from xtmr_core.checkpoints import shipped_checkpoint
from xtmr_core.distributed import Runner as PointRunner
from xtmr_core.errors import XtmrError
from xtmr_core.formats import WORD_BITS, sign_exponent_bits
from xtmr_core.spec import CampaignSpec
from xtmr_core.sweep import COLUMNS, PAIRED_COLUMNS
from xtmr_core.vocabulary import MODELS, PLANS

# The paper's headline numbers, quoted so that each claim can be checked against them by rule.
PAPER_BER = 1e-4
PAPER_RECOVERED = 0.60  # ">60% reliability improvement at BER 1e-4"
PAPER_LRP_BUDGET = 1.0  # top 1% of the weights
PAPER_MAGNITUDE_OVERHEAD = 16.0  # "magnitude-based methods (16-21% overhead)", lower end, in %

CSV_COLUMNS = [
    "kind",
    "name",
    *COLUMNS,
    *PAIRED_COLUMNS[:-1],  # paired against the point's unprotected baseline, with intervals (``sweep``)
    "bits",
    "ci_half_width",
    "seconds",
    "trial_accuracies",
    "bit",
    "role",
]


@dataclass(frozen=True)
class PlanSpec:
    """One protection plan of the grid: a label and the plan fields of a ``CampaignSpec``.

    Attributes:
        name: the short label used in the CSV's ``name`` column, tables and figures.
        protect: the engine's plan kind (``vocabulary.PLANS``).
        budget: percent of weights, for scorer plans; percent extra memory for ``damage``.
        bits: protected bit positions, for ``bits``.
        guard: add the range guard on read (the ``+range`` combinations; no copies).
    """

    name: str
    protect: str
    budget: float = 0.0
    bits: tuple[int, ...] | None = None
    guard: bool = False

    def spec(self, fmt: str, ber: float, trials: int, seed: int = 0) -> CampaignSpec:
        """The campaign of this plan at one grid point (the grid key)."""
        return CampaignSpec(
            protect=self.protect,
            budget=self.budget,
            bits=self.bits,
            guard=self.guard,
            fmt=fmt,
            ber=ber,
            trials=trials,
            seed=seed,
        )


@dataclass(frozen=True)
class Grid:
    """What a report runs.

    Attributes:
        models: architectures. formats: storage formats. bers: the BER sweep.
        scorers, budgets: the budget sweep (every scorer at every budget).
        trials: trials per frontier point, the same for every plan of the point (paired, fixed n: unbiased).
        sweep_trials: trials per point of the BER sweep that is not a frontier point (0: ``trials``).
        combos: budgets at which ``lrp`` and ``damage`` also run with the range guard (``+range``).
        minutes: a wall-clock budget for the whole run (0: none). The probe's measured seconds per trial set the
            trial counts *before* any grid point runs — the same ``n`` for every frontier point, half of it for
            the other BER-sweep points, at most ``trials`` / ``sweep_trials`` — so they depend on the machine's
            speed only, never on the results.
        min_trials: the fewest trials a sized point gets.
        accumulate: with ``minutes``, spend the budget on trials the results store lacks (``--minutes`` given: a
            second run adds trials); else a rerun whose frontier points all hold at least ``min_trials`` stored
            trials reuses that count (nothing changed: everything is read).
        sensitivity_weights: weights flipped per bit position in the per-bit scan.
        paper_ber: the BER of the paper's table (also the first BER of the budget sweep).
        budget_bers: at how many BERs the budget sweep and the frontier run: the paper's, then the one where
            the unprotected accuracy is closest to halfway between clean and chance (the most informative).
        probe_trials: trials of the unprotected probe that picks that second BER.
    """

    models: tuple[str, ...]
    formats: tuple[str, ...]
    bers: tuple[float, ...]
    scorers: tuple[str, ...]
    budgets: tuple[float, ...]
    trials: int
    sensitivity_weights: int
    paper_ber: float = PAPER_BER
    budget_bers: int = 2
    probe_trials: int = 10
    sweep_trials: int = 0
    combos: tuple[float, ...] = ()
    minutes: float = 0.0
    min_trials: int = 6
    accumulate: bool = False


# 1e-2 extends the paper's 1e-7..1e-3 because int8 storage barely degrades by 1e-3.
FULL_GRID = Grid(
    models=("lenet5", "alexnet", "vgg16", "resnet20", "mobilenetv2", "mobilenetv3", "vit"),
    formats=("fp32", "int8"),
    bers=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2),
    scorers=("lrp", "magnitude", "gradient", "taylor"),
    budgets=(1.0, 5.0, 20.0),
    trials=40,
    sensitivity_weights=3,
    sweep_trials=20,
    combos=(1.0,),
    minutes=30.0,
    probe_trials=2,
    min_trials=8,  # two trials in each of up to four strata (strata.py): fewer cannot give every interval
)
QUICK_GRID = Grid(
    models=("lenet5",),
    formats=("fp32", "int8"),
    bers=(1e-6, 1e-4, 1e-3),
    scorers=("lrp", "magnitude", "random"),
    budgets=(1.0, 5.0),
    trials=3,
    sensitivity_weights=1,
    budget_bers=1,
    probe_trials=2,
    combos=(1.0,),
)


def lrp_name(budget: float = PAPER_LRP_BUDGET) -> str:
    """The label of the LRP plan at ``budget`` percent."""
    return f"lrp {budget:g}%"


def available(plan: str) -> bool:
    """Whether the engine offers a plan kind (``ecc`` and ``damage`` are newer than the report)."""
    return plan in PLANS


def ber_plans(fmt: str) -> list[PlanSpec]:
    """The plans run at every BER of the sweep, for one format."""
    plans = [
        PlanSpec("no protection", "none"),
        PlanSpec(lrp_name(), "lrp", PAPER_LRP_BUDGET),
        PlanSpec(f"magnitude {PAPER_LRP_BUDGET:g}%", "magnitude", PAPER_LRP_BUDGET),
        PlanSpec("full TMR", "full"),
    ]
    if fmt == "fp32":
        plans.append(PlanSpec("bit 30", "bits", bits=(30,)))
    # For int8 the engine's "sign + exponent" is the sign and the top value bit (no exponent exists).
    plans.append(PlanSpec("sign+exponent" if fmt != "int8" else "sign+top bit", "bits", bits=sign_exponent_bits(fmt)))
    plans.append(PlanSpec("range guard", "range"))
    if available("ecc"):
        plans.append(PlanSpec("ecc", "ecc"))
    return plans


def budget_plans(grid: Grid) -> list[PlanSpec]:
    """The plans of the budget sweep and frontier: every scorer at every budget; ``damage`` at the same extra
    memory (its budget is % extra memory: ``damage 2%`` stores as many copies as ``lrp 1%``); and the
    ``+range`` combinations at ``grid.combos``."""
    plans = [PlanSpec(f"{s} {b:g}%", s, float(b)) for s in grid.scorers for b in grid.budgets]
    if available("damage"):
        plans += [PlanSpec(f"damage {2 * b:g}%", "damage", 2 * float(b)) for b in grid.budgets]
    plans += [PlanSpec(f"lrp+range {b:g}%", "lrp", float(b), guard=True) for b in grid.combos]
    if available("damage"):
        plans += [PlanSpec(f"damage+range {2 * b:g}%", "damage", 2 * float(b), guard=True) for b in grid.combos]
    return plans


def point_plans(grid: Grid, fmt: str, frontier: bool) -> tuple[PlanSpec, ...]:
    """Every plan of one grid point: the BER sweep's plans, plus the budget sweep's at a frontier BER."""
    plans = ber_plans(fmt) + (budget_plans(grid) if frontier else [])
    return tuple(dict((p.spec(fmt, 0.0, 1).plan_key(), p) for p in plans).values())


@dataclass(frozen=True)
class GridPoint:
    """One paired grid point: all its plans run on the same ``trials`` trials of seed ``seed``."""

    model: str
    fmt: str
    ber: float
    plans: tuple[PlanSpec, ...]
    trials: int
    seed: int = 0

    def specs(self) -> list[CampaignSpec]:
        """The campaign of every plan of the point."""
        return [p.spec(self.fmt, self.ber, self.trials, self.seed) for p in self.plans]


class Runner(Protocol):
    """Runs grid points; returns one row per (point, plan) in ``CSV_COLUMNS`` (``point_rows`` makes them)."""

    def __call__(
        self,
        points: Sequence[GridPoint],
        dataset: str,
        checkpoints: dict[str, str | Path],
        progress: Callable[[int, str], None],
    ) -> list[dict[str, Any]]: ...


def point_rows(exp: Any, point: GridPoint) -> list[dict[str, Any]]:
    """Run every plan of one grid point on ``exp`` (an ``Experiment`` of ``point.model``) and return its rows.

    The unit of work of every runner: one ``Experiment.evaluate_point``, so the plans of a point share their
    trials and stop as a whole, and each row carries its paired difference, recovered share and relative gain
    against the point's baseline with their intervals (trials and test images, ``stats``).
    """
    from xtmr_core.sweep import point_rows as sweep_rows

    specs = point.specs()
    names = {spec: plan.name for plan, spec in zip(point.plans, specs)}
    bits = {spec: plan.bits for plan, spec in zip(point.plans, specs)}
    t0 = time.perf_counter()
    result = exp.evaluate_point(specs)
    seconds = time.perf_counter() - t0
    if getattr(exp, "store", None) is not None:
        # The time the trials took when they were run (now all stored), not the time to read them back: the
        # report's s / trial and the sizing of a later run must not mistake a read for a run.
        seconds = exp.stored_trials(specs)[1] or seconds
    seconds /= len(result.results)  # the plans of a trial run together
    base = specs[0].point
    order = list(dict.fromkeys([base, *specs]))  # evaluate_point's order: the baseline, then distinct specs
    rows = []
    for spec, row in zip(order, sweep_rows(exp, result)):
        b = bits.get(spec)
        rows.append(
            {
                **row,
                "kind": "campaign",
                "name": names.get(spec, "no protection"),
                "bits": " ".join(map(str, b)) if b else "",
                "ci_half_width": (row["ci_high"] - row["ci_low"]) / 2,
                "seconds": seconds,
            }
        )
    return rows


def carry_grid_point(exp: Any, point: GridPoint) -> Any:
    """The stored trials of one grid point, to travel with its task (``Experiment.carried``)."""
    return exp.carried(point.specs())


class LocalRunner:
    """Runs grid points in this process, one ``Experiment`` per model (kept between calls: the scores stay)."""

    def __init__(self) -> None:
        self.experiments: dict[tuple[str, str, str], Any] = {}
        self.seconds: dict[str, float] = {}

    def experiment(self, model: str, dataset: str, checkpoint: str | Path | None) -> Any:
        """The cached ``Experiment`` of one model."""
        from xtmr_core.experiment import Experiment

        key = (model, dataset, str(checkpoint))
        if key not in self.experiments:
            self.experiments[key] = Experiment(model, dataset, checkpoint)
        return self.experiments[key]

    def __call__(
        self,
        points: Sequence[GridPoint],
        dataset: str,
        checkpoints: dict[str, str | Path],
        progress: Callable[[int, str], None],
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for point in points:
            t0 = time.perf_counter()
            progress(0, f"{point.model} {point.fmt} @ {point.ber:g} ({len(point.plans)} plans)")
            exp = self.experiment(point.model, dataset, checkpoints.get(point.model))
            rows += point_rows(exp, point)
            self.seconds[point.model] = self.seconds.get(point.model, 0.0) + time.perf_counter() - t0
            progress(1, "")
        return rows


def require_checkpoints(models: Sequence[str], dataset: str, checkpoints: dict[str, Any] | None = None) -> None:
    """Raise ``XtmrError`` (with the command that fixes it) unless every model has a checkpoint.

    Args:
        models: architectures. dataset: the dataset.
        checkpoints: explicit checkpoint files per model (these count as present).
    """
    given = checkpoints or {}
    missing = [m for m in models if m not in given and shipped_checkpoint(m, dataset) is None]
    if missing:  # fail before an hour of work, not in the middle of it
        raise XtmrError(
            f"no checkpoint for {', '.join(missing)} on {dataset}; train one with: python -m xtmr_core "
            f"train --model {missing[0]} --dataset {dataset} --out checkpoints/{missing[0]}_{dataset}.pt"
        )


def shipped_models(models: Sequence[str], dataset: str) -> tuple[list[str], list[str]]:
    """``(present, missing)``: the models with a shipped checkpoint on ``dataset``, and the others (an unknown
    model name counts as missing: the engine may not have it yet)."""
    present = [m for m in models if m in MODELS and shipped_checkpoint(m, dataset) is not None]
    return present, [m for m in models if m not in present]


def probe_points(grid: Grid) -> list[GridPoint]:
    """The unprotected probe at every BER that picks each (model, format)'s second frontier BER."""
    none = (ber_plans("fp32")[0],)
    return [
        GridPoint(m, f, b, none, min(grid.probe_trials, grid.trials))
        for m in grid.models
        for f in grid.formats
        for b in grid.bers
    ]


#: Seconds kept back from a sized run's budget for the figures and the document (drawn after the grid).
RESERVE_S = 120.0
#: A protected trial costs more than the probe's unprotected one (its copies are sampled and voted).
SAFETY = 1.25


def size_grid(
    grid: Grid,
    probe: pd.DataFrame,
    fronts: dict[tuple[str, str], list[float]],
    seconds_left: float,
    stored: Mapping[tuple[str, str, float], int] | None = None,
) -> Grid:
    """The grid with trial counts that fit ``seconds_left`` (``grid`` itself when it has no time budget).

    Each plan-trial at a point is costed at ``SAFETY`` times the probe's seconds per unprotected trial at that
    point (the seconds its trials took when they were run, also when they were read from the results store).
    Trials already in the store cost nothing: ``stored`` gives, per (model, format, BER), how many trials of
    every plan of the point are stored. With ``grid.accumulate`` a second run with the same budget adds trials
    to the first's (up to ``max(grid.trials, grid.min_trials)`` more than the fewest stored at any frontier
    point); without it, a rerun whose frontier points all hold ``min_trials`` stored trials or more takes the
    count they all hold (the earlier run's): it reads everything and writes the same CSV. Only timings and
    stored counts decide: the choice cannot favour any plan.
    """
    if not grid.minutes or probe.empty:
        return grid
    stored = stored or {}
    cost = {
        (r["model"], r["format"], float(r["ber"])): float(r["seconds"]) / max(1, int(r["trials"]))
        for _, r in probe.iterrows()
    }
    points = []  # (cost of one trial of every plan, trials stored, frontier?)
    for m in grid.models:
        for f in grid.formats:
            for b in grid.bers:
                front = b in fronts.get((m, f), ())
                c = len(point_plans(grid, f, front)) * cost.get((m, f, float(b)), 0.0)
                points.append((SAFETY * c, stored.get((m, f, float(b)), 0), front))

    def counts(n: int) -> tuple[int, int]:
        return n, max(grid.min_trials, min(grid.sweep_trials or n, n // 2))

    def new_seconds(n: int) -> float:  # what running the trials not yet stored costs
        front_n, sweep_n = counts(n)
        return sum(c * max(0, (front_n if front else sweep_n) - have) for c, have, front in points)

    have_front = min((have for _, have, front in points if front), default=0)
    if not grid.accumulate and have_front >= grid.min_trials:  # a rerun: the counts an earlier run stored
        front_n, sweep_n = counts(have_front)
        return replace(grid, trials=front_n, sweep_trials=sweep_n)
    cap = max(grid.trials, grid.min_trials) + (have_front if grid.accumulate else 0)
    n = grid.min_trials  # the fewest a sized point gets, whatever the budget (as before the store)
    budget = seconds_left - RESERVE_S
    while n < cap and new_seconds(n + 1) <= budget:
        n += 1
    front_n, sweep_n = counts(n)
    return replace(grid, trials=front_n, sweep_trials=sweep_n)


def second_ber(probe: pd.DataFrame, chance: float) -> float | None:
    """The BER whose unprotected accuracy is closest to halfway between clean and chance (``None``: no rows):
    where protection has the most room to show a difference."""
    if probe.empty:
        return None
    mid = (probe["clean_accuracy"] + chance) / 2
    order = (probe["mean_accuracy"] - mid).abs().sort_values(kind="stable")
    return float(probe.loc[order.index[0], "ber"])


def grid_points(grid: Grid, frontier_bers: dict[tuple[str, str], list[float]]) -> list[GridPoint]:
    """Every grid point: each BER of the sweep, with the budget sweep's plans at the frontier BERs."""
    points = []
    for m in grid.models:
        for f in grid.formats:
            for b in grid.bers:
                front = b in frontier_bers.get((m, f), ())
                trials = grid.trials if front or not grid.sweep_trials else grid.sweep_trials
                points.append(GridPoint(m, f, b, point_plans(grid, f, front), trials))
    return points


def n_points(grid: Grid) -> int:
    """Number of campaign rows (grid point × plan) the grid writes, whichever second BER is chosen."""
    per_model = 0
    for fmt in grid.formats:
        n_front = min(grid.budget_bers, len(grid.bers))
        per_model += len(point_plans(grid, fmt, False)) * (len(grid.bers) - n_front)
        per_model += len(point_plans(grid, fmt, True)) * n_front
    return per_model * len(grid.models)


class GridRunner:
    """The report's grid runner (``runner(points, dataset, checkpoints, progress) -> rows``) on top of a
    ``Runner``: one ``Experiment`` per model, built here (scores computed once, here), its points run by
    ``runner`` (e.g. as Ray tasks), the rows returned in the order of ``points``.

    Args:
        runner: runs one model's points (``serial_runner``, a ``RayRunner``).
        device: where the driver's experiments load (``None`` = default); workers choose their own.
    """

    def __init__(self, runner: PointRunner, device: Any = None) -> None:
        self.runner, self.device = runner, device

    def __call__(
        self,
        points: Sequence[GridPoint],
        dataset: str,
        checkpoints: dict[str, Any],
        progress: Callable[[int, str], None],
    ) -> list[dict[str, Any]]:
        """Run every grid point; ``progress(n, label)`` after each point."""
        from xtmr_core.experiment import Experiment

        rows_of: dict[int, list[dict[str, Any]]] = {}
        for model in dict.fromkeys(p.model for p in points):
            mine = [i for i, p in enumerate(points) if p.model == model]
            exp = Experiment(model, dataset, checkpoints.get(model), self.device)
            for i in mine:
                for spec in points[i].specs():
                    exp.plan(spec)  # the scores are computed once, here, and travel with exp

            def tick(done: int, total: int, point: GridPoint) -> None:
                progress(1, f"{point.model} {point.fmt} @ {point.ber:g} ({len(point.plans)} plans)")

            part = self.runner(exp, point_rows, [points[i] for i in mine], progress=tick, carry=carry_grid_point)
            rows_of.update(zip(mine, part))
        return [row for i in range(len(points)) for row in rows_of[i]]

    def shutdown(self) -> None:
        """Stop the runner's Ray, if it started one."""
        getattr(self.runner, "shutdown", lambda: None)()


def run_grid(  # noqa: PLR0915 (left: 51 statements, one over the limit)
    grid: Grid,
    dataset: str = "mnist5k",
    checkpoints: dict[str, str | Path] | None = None,
    *,
    runner: Runner | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run every grid point and the per-bit scan of a grid.

    Args:
        grid: what to run.
        dataset: the dataset (its shipped checkpoints are used unless ``checkpoints`` names one).
        checkpoints: a checkpoint file per model name, overriding the shipped one.
        runner: runs the points (default: a ``LocalRunner``).
        progress: show a tqdm progress bar on stderr.

    Returns:
        ``(table, info)``: one row per (point, plan) and per (model, format, bit) of the scan
        (``CSV_COLUMNS``), and run facts (per-model checkpoint, weights, frontier BERs, timing).

    Raises:
        XtmrError: a model without a checkpoint, or a dataset that is not present.
    """
    from tqdm import tqdm  # type: ignore[import-untyped]

    start = time.perf_counter()
    checkpoints = dict(checkpoints or {})
    require_checkpoints(grid.models, dataset, checkpoints)
    local = LocalRunner()
    run = runner or local
    probes = probe_points(grid) if grid.budget_bers > 1 or grid.minutes else []
    n_grid = len(grid.models) * len(grid.formats) * len(grid.bers)
    scan = sum(WORD_BITS[f] for f in grid.formats) * grid.sensitivity_weights * len(grid.models)
    bar = tqdm(
        total=len(probes) + n_grid + scan,
        desc="report",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
        leave=False,
    )

    def tick(n: int, label: str) -> None:
        if label:
            bar.set_postfix_str(label)
        bar.update(n)

    info: dict[str, Any] = {"models": {}, "budget_bers": {}, "probe_seconds": 0.0}
    try:
        t0 = time.perf_counter()
        probe = pd.DataFrame(run(probes, dataset, checkpoints, tick)) if probes else pd.DataFrame()
        info["probe_seconds"] = time.perf_counter() - t0
        fronts: dict[tuple[str, str], list[float]] = {}
        for m in grid.models:
            for f in grid.formats:
                fronts[(m, f)] = [grid.paper_ber]
                if not probe.empty and grid.budget_bers > 1:
                    sel = probe[(probe["model"] == m) & (probe["format"] == f) & (probe["ber"] != grid.paper_ber)]
                    chance = 1.0 / _num_classes(local, m, dataset, checkpoints)
                    b = second_ber(sel, chance)
                    fronts[(m, f)] += [b] if b is not None else []
        info["budget_bers"] = fronts
        # The per-bit scan and the weight scores come first: then the trial counts are sized on what is left.
        flips: list[dict[str, Any]] = []
        for model in grid.models:
            t0 = time.perf_counter()
            exp = local.experiment(model, dataset, checkpoints.get(model))
            info["models"][model] = {
                "file": Path(str(exp.meta.get("file", ""))).name,
                "sha256": str(exp.meta.get("sha256", ""))[:12],
                "weights": exp.n_weights,
                "chance": 1.0 / exp.splits.num_classes,
            }
            for fmt in grid.formats:
                bar.set_postfix_str(f"{model} {fmt} one flip per bit")
                sens = stored_scan(exp, fmt, grid.sensitivity_weights, lambda n: bar.update(n))
                for rec in sens.to_dict("records"):
                    flips.append(
                        {
                            "kind": "bit_flip",
                            "name": f"one flip at bit {rec['bit']}",
                            "model": model,
                            "dataset": dataset,
                            "format": fmt,
                            "protect": "none",
                            **{str(k): v for k, v in rec.items()},
                        }
                    )
            info["models"][model]["scan_seconds"] = time.perf_counter() - t0
            if runner is None:  # the local runner keeps the scores: compute them before the sizing
                bar.set_postfix_str(f"{model} weight scores")
                for scorer in grid.scorers:
                    exp.scores(scorer)
            info["models"][model]["setup_seconds"] = time.perf_counter() - t0
        stored = stored_counts(grid, fronts, local, dataset, checkpoints) if grid.minutes else {}
        grid = size_grid(grid, probe, fronts, 60 * grid.minutes - (time.perf_counter() - start), stored)
        info["grid"] = grid  # with the trial counts it ran
        t0 = time.perf_counter()
        rows = run(grid_points(grid, fronts), dataset, checkpoints, tick)
        info["grid_seconds"] = time.perf_counter() - t0
    finally:
        bar.close()
    campaigns = pd.DataFrame(rows)
    table = pd.concat([campaigns, pd.DataFrame(flips)], ignore_index=True)
    return table.reindex(columns=CSV_COLUMNS), info


def stored_scan(exp: Any, fmt: str, weights: int, step: Callable[[int], None]) -> pd.DataFrame:
    """The single-flip scan (``sensitivity.bit_sensitivity``, seed 0) of one model and format, read from the
    results store when an earlier run computed it (``step(n)`` after every ``n`` flips done or read)."""
    from xtmr_core.sensitivity import bit_sensitivity
    from xtmr_core.store import Store, table_key

    store = getattr(exp, "store", None)
    key = table_key(exp.fingerprint(), "bit_sensitivity", fmt=fmt, trials=weights, seed=0) if store else ""
    if isinstance(store, Store):
        kept = store.table(key)
        if kept is not None:
            table = pd.DataFrame(kept["rows"], columns=kept["columns"])
            step(len(table) * weights)
            return table
    table = bit_sensitivity(exp, fmt, trials=weights, seed=0, progress=lambda done, total: step(1))
    if isinstance(store, Store):
        info = {"model": exp.model_name, "what": "bit_sensitivity", "format": fmt}
        store.put_table(key, info, {"columns": list(table.columns), "rows": table.to_dict("records")})
    return table


def stored_counts(
    grid: Grid,
    fronts: dict[tuple[str, str], list[float]],
    local: LocalRunner,
    dataset: str,
    checkpoints: dict[str, Any],
) -> dict[tuple[str, str, float], int]:
    """Per (model, format, BER): how many trials of every plan of the grid point the results store holds."""
    out = {}
    for point in grid_points(grid, fronts):
        exp = local.experiment(point.model, dataset, checkpoints.get(point.model))
        out[(point.model, point.fmt, float(point.ber))] = exp.stored_trials(point.specs())[0]
    return out


def _num_classes(local: LocalRunner, model: str, dataset: str, checkpoints: dict[str, Any]) -> int:
    return int(local.experiment(model, dataset, checkpoints.get(model)).splits.num_classes)


def with_models(grid: Grid, models: Sequence[str] | None) -> Grid:
    """``grid`` with other models (unchanged when ``models`` is empty)."""
    return replace(grid, models=tuple(models)) if models else grid
