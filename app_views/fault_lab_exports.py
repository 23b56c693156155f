"""The Fault lab's tables and CSV exports: each trial of the point, one trial's fault list, the protected layers.

Every exported row carries what reproduces it: the model and its weights, the grid point, the plan as the command
line takes it (``--protect``, ``--budget``, ``--guard``, ``--bits``), the sampling design, the LRP rule and the
versions; file names say what a file holds, so no two exports share one.
"""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

import app_state
import ui
from app_session import ModelChoice
from xtmr_core.spec import CampaignSpec


def meta(choice: ModelChoice, spec: CampaignSpec, point) -> dict:
    """Columns that make every exported CSV reproduce its run: the model and its weights, the grid point (format,
    BER, fault type, failing bits, trials, seed, sampling design), the LRP rule and the versions."""
    return {
        "model": choice.model,
        "dataset": choice.dataset,
        "weights": choice.label,
        "checkpoint": choice.ckpt_id,
        "format": spec.fmt,
        "ber": spec.ber,
        "mode": spec.mode,
        "fault_bits": "all" if spec.fault_bits is None else " ".join(map(str, spec.fault_bits)),
        "trials": spec.trials,
        "seed": spec.seed,
        "design": point.design,
        "lrp_rule": spec.rule,
        **app_state.versions(),
    }


def plan_columns(s: CampaignSpec, label: str) -> dict:
    """A plan as the command line takes it (``--protect P --budget B [--guard] [--bits ...]``), beside its label."""
    bits = "" if s.bits is None else " ".join(map(str, s.bits))
    return {"plan": label, "protect": s.protect, "budget": s.budget, "guard": s.guard, "bits": bits}


def file_name(kind: str, model: str, spec: CampaignSpec, plan: str, tail: str = "") -> str:
    """An export's file name: what it holds, the model, the plan and the grid point (no two exports share one)."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "_", f"{model}_{plan}").strip("_")
    return f"xtmr_{kind}_{slug}_{spec.fmt}_{ui.fmt_ber(spec.ber)}_seed{spec.seed}{tail}.csv"


def trial_table(choice: ModelChoice, spec: CampaignSpec, point) -> pd.DataFrame:
    """One row per trial: unprotected and plan accuracy and faulty bits (a stratified point: each trial's
    stratum and its exact probability), with the plan's and the run's columns."""
    base, res = point.results[0], point.results[-1]
    n = point.trials  # every plan of the point ran the same trials

    def column(values: list) -> list:
        return [round(v, 6) for v in values[:n]]

    table = pd.DataFrame(
        {
            "trial": range(n),
            "unprotected_accuracy": column(base.accuracies),
            "unprotected_faulty_bits": column(base.flips),
            "plan": res.plan,
            "plan_accuracy": column(res.accuracies),
            "plan_faulty_bits": column(res.flips),
            "plan_overhead_pct": res.overhead.copies_pct,
        }
    )
    if point.strata is not None:
        labels = [point.strata.strata[s].label for s in base.strata[:n]]
        weights = [point.strata.strata[s].weight for s in base.strata[:n]]
        table = table.assign(stratum=labels, stratum_weight=weights)
    return table.assign(**plan_columns(spec, res.plan), **meta(choice, spec, point))


def exports(choice: ModelChoice, spec: CampaignSpec, point, layers: pd.DataFrame) -> None:
    """An expander with the trials table, the per-trial and fault-list downloads and the protected layers."""
    with st.expander("Trials, per-layer table and exports (CSV)", icon=":material/download:"):
        table = trial_table(choice, spec, point)
        st.caption("Accuracy of each trial; trial t of both saw the same faults in the unprotected copy.")
        shown = ["trial", "unprotected_accuracy", "plan_accuracy", "unprotected_faulty_bits", "plan_faulty_bits"]
        st.dataframe(table[shown], hide_index=True, height=200)
        e1, e2, e3 = st.columns([2, 1, 2], vertical_alignment="bottom")
        e1.download_button(
            "Per-trial results (CSV)",
            table.to_csv(index=False).encode(),
            file_name=file_name("trials", choice.model, spec, point.results[-1].plan),
            mime="text/csv",
            icon=":material/table_view:",
            key="csv_trials",
            help="One row per trial, with the plan (as --protect, --budget, --guard, --bits take it), the grid "
            "point, the seed, the sampling design, the LRP rule and the versions in every row.",
        )
        _fault_list(choice, spec, point, (e1, e2, e3))
        st.dataframe(
            layers,
            hide_index=True,
            width="stretch",
            column_config={
                "layer %": st.column_config.NumberColumn(format="%.2f"),
                "of protected %": st.column_config.NumberColumn(format="%.1f"),
            },
        )


def _fault_list(choice: ModelChoice, spec: CampaignSpec, point, cols: tuple) -> None:
    """A trial and a side (unprotected or the plan) to pick, and that trial's fault list to download."""
    button, trial_box, side_box = cols
    res = point.results[-1]
    pick = int(trial_box.number_input("Trial", 0, max(0, res.trials - 1), 0, key="fl_fault_trial"))
    which = side_box.radio("Fault list of", ("unprotected", "the plan"), horizontal=True, key="fl_fault_of")
    fspec, label = (spec.point, "unprotected") if which == "unprotected" else (spec, res.plan)
    faults = app_state.fault_list(choice, fspec, pick, (spec,)).assign(trial=pick, **plan_columns(fspec, label))
    button.download_button(
        f"Fault list of trial {pick} (CSV, {len(faults):,} faults)",
        faults.assign(**meta(choice, spec, point)).to_csv(index=False).encode(),
        file_name=file_name("faults", choice.model, spec, label, f"_trial{pick}"),
        mime="text/csv",
        icon=":material/list:",
        key="csv_faults",
        help="Every faulty stored bit of that trial: layer, index, bit, copy (0 primary, 1/2 TMR copies).",
    )
