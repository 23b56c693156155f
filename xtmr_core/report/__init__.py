"""The reproduction report: run the paper's experiment grid and write ``docs/REPRODUCTION.md``.

``run_report`` runs paired grid points (``grid``) over models × formats × BERs × protection plans and a
per-bit sensitivity scan, and writes into one folder ``REPRODUCTION.md`` (``document``), ``figures/*.png``
(``figures``) and ``reproduction.csv`` (every campaign row with its per-trial accuracies, and every
single-flip row). ``view`` looks rows up and pairs them; ``claims`` turns them into verdict records. Every
number of the document is formatted from the CSV's rows by code, and every verdict is a claim record.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from xtmr_core.errors import XtmrError
from xtmr_core.report.claims import CLAIMS, STATUSES, Claim, all_claims, find
from xtmr_core.report.document import CSV_NAME, FIGURES, REPORT_NAME, fmt_acc, write_document
from xtmr_core.report.figures import figure_ber, figure_bits, figure_budget, figure_frontier
from xtmr_core.report.grid import (
    CSV_COLUMNS,
    FULL_GRID,
    QUICK_GRID,
    Grid,
    GridPoint,
    LocalRunner,
    PlanSpec,
    Runner,
    available,
    n_points,
    point_rows,
    require_checkpoints,
    run_grid,
    shipped_models,
    with_models,
)
from xtmr_core.report.view import ReportView, compare, paired

__all__ = [
    "CLAIMS",
    "CSV_COLUMNS",
    "CSV_NAME",
    "FULL_GRID",
    "QUICK_GRID",
    "REPORT_NAME",
    "STATUSES",
    "Claim",
    "Grid",
    "GridPoint",
    "LocalRunner",
    "PlanSpec",
    "ReportView",
    "Runner",
    "all_claims",
    "compare",
    "find",
    "fmt_acc",
    "n_points",
    "paired",
    "point_rows",
    "run_grid",
    "run_report",
]


def _command(
    quick: bool, dataset: str, models: Sequence[str] | None, out_dir: str | Path, minutes: float | None = None
) -> str:
    parts = ["python -m xtmr_core report"]
    if quick:
        parts.append("--quick")
    if minutes is not None:
        parts.append(f"--minutes {minutes:g}")
    if dataset != "mnist5k":
        parts.append(f"--dataset {dataset}")
    if models:
        parts.append("--models " + ",".join(models))
    if str(out_dir) != "docs":
        parts.append(f"--out {out_dir}")
    return " ".join(parts)


def draw_figures(view: ReportView, out: Path) -> dict[Any, str]:
    """Draw every figure into ``out/figures``; returns their paths relative to ``out``."""
    figs: dict[Any, str] = {}
    for model, fmt in view.pairs():
        for kind, draw in (("ber", figure_ber), ("budget", figure_budget), ("frontier", figure_frontier)):
            rel = f"{FIGURES}/{model}_{fmt}_{kind}.png"
            draw(view, model, fmt, out / rel)
            figs[(model, fmt, kind)] = rel
    for model in view.grid.models:
        if not view.flips[view.flips["model"] == model].empty:
            rel = f"{FIGURES}/{model}_bits.png"
            figure_bits(view, model, out / rel)
            figs[(model, "bits")] = rel
    return figs


def run_report(  # noqa: PLR0913 (left: the CLI options one by one; a ReportOptions value is next)
    out_dir: str | Path = "docs",
    quick: bool = False,
    dataset: str = "mnist5k",
    models: Sequence[str] | None = None,
    *,
    checkpoints: dict[str, str | Path] | None = None,
    grid: Grid | None = None,
    runner: Runner | None = None,
    caveats: Sequence[str] = (),
    progress: bool = True,
    minutes: float | None = None,
) -> Path:
    """Run the reproduction grid and write the report, its figures and its CSV.

    Args:
        out_dir: the folder for ``REPRODUCTION.md``, ``figures/`` and ``reproduction.csv`` (created).
        quick: run ``QUICK_GRID`` (lenet5, few points and trials: well under a minute) instead of ``FULL_GRID``.
        dataset: the dataset.
        models: architectures to run (default: the grid's).
        checkpoints: a checkpoint file per model, overriding the shipped ones.
        grid: a custom grid (overrides ``quick``).
        runner: runs the grid points (default: in this process; see ``grid.Runner``).
        caveats: sentences the document states about this run (e.g. what was left out).
        progress: show a progress bar on stderr.
        minutes: a wall-clock budget that sizes the trial counts (``Grid.minutes``; 0: none, the grid's trial
            counts as they are). Trials already in the results store are free: a second run adds to them. Without
            it, a rerun of a sized grid (the full one's 30 minutes) reuses the trial counts it stored.

    Returns:
        The path of the written ``REPRODUCTION.md``.

    Raises:
        XtmrError: a missing checkpoint or dataset, or an output folder that cannot be written.
    """
    import torch

    from xtmr_core.store import default_store

    start = time.perf_counter()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    base = with_models(grid or (QUICK_GRID if quick else FULL_GRID), models)
    if minutes is not None:
        if minutes < 0:
            raise XtmrError(f"--minutes must be 0 or more, got {minutes:g}")
        base = replace(base, minutes=float(minutes), accumulate=True)
    caveats = list(caveats)
    if not models and grid is None and not checkpoints:  # the default grid runs the models that are shipped
        present, missing = shipped_models(base.models, dataset)
        if missing and present:
            base = with_models(base, present)
            caveats.append(
                f"{', '.join(missing)} not run: no shipped checkpoint on {dataset} when this report was generated."
            )
    caveats += [
        f"plan `{p}` not run: the engine did not offer it when this report was generated."
        for p in ("ecc", "damage")
        if not available(p)
    ]
    require_checkpoints(base.models, dataset, checkpoints)
    out = Path(out_dir)
    try:
        (out / FIGURES).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise XtmrError(f"cannot create {out / FIGURES} ({e.strerror}); choose another --out") from None
    store = default_store()  # the store the grid's experiments use (one object per file and process)
    before = (store.read, store.ran) if store is not None else (0, 0)
    table, info = run_grid(base, dataset, checkpoints, runner=runner, progress=progress)
    trials = None if store is None else (store.read - before[0], store.ran - before[1])
    table.to_csv(out / CSV_NAME, index=False)
    view = ReportView(table, info.get("grid", base), info)
    figs = draw_figures(view, out)
    machine = (
        f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads" + (", CUDA" if torch.cuda.is_available() else ", no GPU")
    )
    meta = {
        "command": _command(bool(quick) and grid is None, dataset, models, out_dir, minutes),
        "duration_s": time.perf_counter() - start,
        "machine": machine,
        "load": load,
        "dataset": dataset,
        "quick": grid is None and bool(quick) or base == with_models(QUICK_GRID, models),
        "caveats": caveats,
        "trials_read_run": trials,  # (read from the results store, run); None: no store
    }
    return write_document(view, all_claims(view), out, figs, meta)
