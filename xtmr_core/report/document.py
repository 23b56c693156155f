"""``REPRODUCTION.md``: the report's document, rendered from its rows and its claim records.

Every number is formatted from the CSV's rows by the functions here; every verdict is a ``Claim`` record
from ``claims`` rendered as one sentence. Nothing here decides a verdict.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from xtmr_core.formats import sign_exponent_bits
from xtmr_core.report.claims import CLAIMS, MIN_LOSS, Claim, find, where
from xtmr_core.report.grid import PAPER_LRP_BUDGET, ber_plans, lrp_name
from xtmr_core.report.view import ReportView, paired

REPORT_NAME = "REPRODUCTION.md"
CSV_NAME = "reproduction.csv"
FIGURES = "figures"

# --------------------------------------------------------------------------------------------------
# Formatting: every number of the document goes through these.


def fmt_acc(v: float | None) -> str:
    """An accuracy in [0, 1] as percent with two decimals (``n/a`` when missing)."""
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.2f}"


def fmt_share(v: float | None) -> str:
    """A ratio (recovered share, relative gain) as a percentage with one decimal."""
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f}%"


def fmt_overhead(v: float | None) -> str:
    """A memory overhead already in percent."""
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.3g}%" if v >= 0.01 or v == 0 else f"{v:.2g}%"


def fmt_ber(v: float) -> str:
    """A bit error rate, e.g. ``1e-04``."""
    return f"{v:.0e}"


def fmt_diff(mean: float, low: float, high: float) -> str:
    """A paired accuracy difference in points with its 95% CI, e.g. ``+1.20 [+0.40, +2.00]``."""
    if not math.isfinite(mean):
        return "n/a"
    ci = f" [{100 * low:+.2f}, {100 * high:+.2f}]" if math.isfinite(low) and math.isfinite(high) else ""
    return f"{100 * mean:+.2f}{ci}"


def fmt_share_ci(v: float, low: float, high: float) -> str:
    """A share with its 95% CI, e.g. ``31.3% [22.0%, 40.1%]``."""
    ci = f" [{fmt_share(low)}, {fmt_share(high)}]" if math.isfinite(low) and math.isfinite(high) else ""
    return fmt_share(v) + ci


def _pm(row: pd.Series | None) -> str:
    """Accuracy with its 95% CI half-width, e.g. ``97.30 ±0.52``."""
    if row is None:
        return "n/a"
    half = float(row["ci_half_width"])
    acc = fmt_acc(row["mean_accuracy"])
    return f"{acc} ±{100 * half:.2f}" if math.isfinite(half) else acc


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def _n(c: Claim, key: str) -> float:
    v = c.numbers.get(key, math.nan)
    return float(v) if isinstance(v, (int, float)) else math.nan


def _d(c: Claim, key: str) -> str:
    return fmt_diff(_n(c, key), _n(c, f"{key}_low"), _n(c, f"{key}_high"))


def recovered_cell(view: ReportView, row: pd.Series | None) -> str:
    """A row's recovered share with its paired 95% CI; a dash where the loss is too small to share out."""
    if row is None:
        return "n/a"
    none = view.get(row["model"], row["format"], "no protection", float(row["ber"]))
    if none is None or float(row["clean_accuracy"]) - float(none["mean_accuracy"]) < MIN_LOSS:
        return f"— (loss < {100 * MIN_LOSS:g} pts)"
    return fmt_share_ci(float(row["recovered"]), float(row["recovered_low"]), float(row["recovered_high"]))


def diff_cell(row: pd.Series | None) -> str:
    """A row's paired difference to no protection with its 95% CI (``—`` on the baseline itself)."""
    if row is None:
        return "n/a"
    if row["protect"] == "none":
        return "—"
    return fmt_diff(float(row["diff"]), float(row["diff_low"]), float(row["diff_high"]))


# --------------------------------------------------------------------------------------------------
# The claims, one sentence each.


def _render_recovery(c: Claim) -> str:
    nums = f"{fmt_acc(_n(c, 'none'))} → {fmt_acc(_n(c, 'plan'))}, clean {fmt_acc(_n(c, 'clean'))}"
    if "recovered" not in c.numbers:
        return (
            f"unprotected accuracy is {nums.split(' →')[0]} against clean {fmt_acc(_n(c, 'clean'))}: a loss "
            f"below {100 * MIN_LOSS:g} points, nothing measurable to recover"
        )
    return (
        f"{lrp_name()} recovers {fmt_share_ci(_n(c, 'recovered'), _n(c, 'recovered_low'), _n(c, 'recovered_high'))}"
        f" of the loss ({nums}; paired gain {_d(c, 'diff')} points; relative gain {fmt_share(_n(c, 'relative_gain'))})"
    )


def _render_lrp_vs(c: Claim) -> str:
    other = c.claim.removeprefix("lrp_vs_")
    cells = [k for k in c.numbers if k.startswith("diff ") and not k.endswith(("_low", "_high"))]
    first = [k for k in cells if k.startswith(f"diff {PAPER_LRP_BUDGET:g}% ")]
    detail = "; ".join(f"LRP − {other} at {k.removeprefix('diff ')}: {_d(c, k)}" for k in first)
    return (
        f"LRP better in {int(_n(c, 'wins'))}, worse in {int(_n(c, 'losses'))}, indistinguishable in "
        f"{int(_n(c, 'ties'))} of {int(_n(c, 'cells'))} (budget, BER) cells" + (f" ({detail} points)" if detail else "")
    )


def _render_matching(c: Claim) -> str:
    if not math.isfinite(_n(c, "budget")):
        text = (
            f"no tested magnitude budget up to {_n(c, 'max_budget'):g}% of the weights reaches {lrp_name()}'s "
            f"{fmt_acc(_n(c, 'lrp'))}"
        )
    else:
        text = (
            f"magnitude reaches {lrp_name()}'s {fmt_acc(_n(c, 'lrp'))} at {_n(c, 'budget'):g}% of the weights "
            f"({fmt_overhead(_n(c, 'overhead'))} copies, {fmt_overhead(_n(c, 'overhead_with_index'))} with index; "
            f"paired difference {_d(c, 'diff')} points)"
        )
    if "lrp_gain" in c.numbers:
        text += f"; {lrp_name()} itself gains only {_d(c, 'lrp_gain')} points over no protection, nothing to match"
    return text


def _render_overhead(c: Claim) -> str:
    return (
        f"triplicating {PAPER_LRP_BUDGET:g}% of the weights stores two extra copies: "
        f"{fmt_overhead(_n(c, 'copies'))} of the weight memory, {fmt_overhead(_n(c, 'with_index'))} with the index"
    )


def _render_efficiency(c: Claim) -> str:
    if "per_pct" not in c.numbers:
        return "no measurable loss to recover"
    return (
        f"{lrp_name()} recovers {fmt_share(_n(c, 'recovered'))} for {fmt_overhead(_n(c, 'overhead'))} of extra "
        f"memory, full TMR {fmt_share(_n(c, 'full_recovered'))} for {fmt_overhead(_n(c, 'full_overhead'))} "
        f"({100 * _n(c, 'per_pct'):.2f} vs {100 * _n(c, 'full_per_pct'):.2f} points per % of memory); paired, "
        f"{lrp_name()} is {c.numbers['vs_none']} than no protection and {c.numbers['vs_full']} than full TMR"
    ).replace("indistinguishable than", "indistinguishable from")


def _render_damage(c: Claim) -> str:
    text = (
        f"at equal copies, {c.numbers['plan']} ({fmt_overhead(_n(c, 'damage_overhead'))} copies) "
        f"{fmt_acc(_n(c, 'damage'))} vs {lrp_name()} ({fmt_overhead(_n(c, 'lrp_overhead'))}) "
        f"{fmt_acc(_n(c, 'lrp'))}: paired difference {_d(c, 'diff')} points"
    )
    if "damage_total" in c.numbers:
        text += (
            f"; counting the index, they cost {fmt_overhead(_n(c, 'damage_total'))} and "
            f"{fmt_overhead(_n(c, 'lrp_total'))}"
        )
    if "iso_total_plan" in c.numbers:
        text += (
            f"; at equal total memory, against {c.numbers['iso_total_plan']} "
            f"({fmt_overhead(_n(c, 'iso_total_overhead'))} with index, {fmt_acc(_n(c, 'iso_total_lrp'))}), "
            f"{c.numbers['plan']} is {c.numbers['iso_total_word']} (paired {_d(c, 'iso_total_diff')} points)"
        )
    return text


def _render_dominance(c: Claim) -> str:
    text = (
        f"{fmt_acc(_n(c, 'accuracy'))} for {fmt_overhead(_n(c, 'overhead_with_index'))} extra memory with index; "
        f"significantly better than {int(_n(c, 'beaten'))} of the {int(_n(c, 'rivals'))} weight-selecting plans "
        "that cost as much or more"
    )
    if "beaten_by" in c.numbers:
        text += f"; beaten by the no-dearer {c.numbers['beaten_by']} ({_d(c, 'diff_to_beater')} points)"
    return text


def _render_versus(c: Claim) -> str:
    a, b = {"bit30": ("bit 30", lrp_name()), "range_guard": ("range guard", lrp_name())}[c.claim]
    text = f"{a} {fmt_acc(_n(c, 'a'))} vs {b} {fmt_acc(_n(c, 'b'))}: paired difference {_d(c, 'diff')} points"
    if c.claim == "bit30" and "one_flip_mean" in c.numbers:
        text += (
            f". One flip of bit 30 in one random weight leaves {fmt_acc(_n(c, 'one_flip_mean'))} accuracy on average "
            f"(worst {fmt_acc(_n(c, 'one_flip_worst'))}, clean {fmt_acc(_n(c, 'clean'))})"
        )
        if math.isfinite(_n(c, "exposed_flips")):
            text += (
                f"; the unprotected {100 - PAPER_LRP_BUDGET:g}% of the weights still take "
                f"{_n(c, 'exposed_flips'):.2f} bit-30 flips per trial"
            )
    if c.claim == "bit30" and "a_overhead" in c.numbers:
        text += f" (bit 30 costs {fmt_overhead(_n(c, 'a_overhead'))} copies, LRP {fmt_overhead(_n(c, 'b_overhead'))})"
    return text


def _render_format(c: Claim) -> str:
    return (
        f"unprotected, int8 keeps {fmt_acc(_n(c, 'int8'))} against fp32's {fmt_acc(_n(c, 'fp32'))} (separate "
        f"trials): int8 gains {100 * _n(c, 'format_gain'):+.2f} points, {lrp_name()} in fp32 {_d(c, 'lrp_gain')} "
        "(paired)"
    )


_RENDER: dict[str, Callable[[Claim], str]] = {
    "recovery": _render_recovery,
    "lrp_vs_magnitude": _render_lrp_vs,
    "lrp_vs_gradient": _render_lrp_vs,
    "lrp_vs_taylor": _render_lrp_vs,
    "matching_budget": _render_matching,
    "overhead": _render_overhead,
    "efficiency": _render_efficiency,
    "damage": _render_damage,
    "dominance": _render_dominance,
    "bit30": _render_versus,
    "range_guard": _render_versus,
    "format": _render_format,
}


def render_claim(c: Claim) -> str:
    """One claim record as one Markdown bullet."""
    status = c.status if c.claim not in ("bit30", "range_guard") else f"{c.status}"
    return f"* {c.where}: **{status}** — {_RENDER[c.claim](c)}."


def render_claims(claims: Sequence[Claim]) -> list[str]:
    """Every claim, grouped under its statement, with a one-line tally of its verdicts."""
    out: list[str] = []
    for key, statement in CLAIMS.items():
        recs = find(claims, key)
        if not recs:
            continue
        tally = ", ".join(f"{s} {n}" for s, n in Counter(c.status for c in recs).most_common())
        out += [f"**Claim: {statement}.** ({tally} of {len(recs)})", ""]
        out += [render_claim(c) for c in recs] + [""]
    return out


# --------------------------------------------------------------------------------------------------
# Sections.


def _store_line(meta: Mapping[str, Any]) -> list[str]:
    """What the results store gave this run: how many trials it read and how many it ran (each trial of one
    plan; none when the run had no store or the meta predates it)."""
    counts = meta.get("trials_read_run")
    if counts is None:
        return ["Results store off: every trial was run.", ""] if "trials_read_run" in meta else []
    read, ran = counts
    return [
        f"Results store: {read:,} trials read back from earlier runs, {ran:,} run (one plan's trial each; the "
        "s / trial column is the time trials took when they were run).",
        "",
    ]


def _section_run(view: ReportView, meta: Mapping[str, Any]) -> list[str]:
    g, camp = view.grid, view.camp
    lines = [
        "## 1. What was run",
        "",
        f"Command: `{meta['command']}` (from the repository root). Duration: **{meta['duration_s'] / 60:.1f} "
        f"minutes** of wall-clock time on {meta['machine']}; load average at start {meta['load']}.",
        "",
        *_store_line(meta),
        f"Dataset `{meta['dataset']}`; fault model: every stored weight bit flips independently with the given "
        "BER (biases are not faulted); seed 0 for every point (trial *t* uses the seed pair (0, *t*)). The "
        "quantities and formulas are defined in [DESIGN.md](DESIGN.md).",
        "",
    ]
    rows = []
    for model in g.models:
        m = view.info["models"].get(model)
        if m is None:
            continue
        sel = camp[camp["model"] == model]
        seconds = float(sel["seconds"].sum())
        rows.append(
            [
                model,
                f"`{m['file']}` (sha256 {m['sha256']}…)",
                f"{m['weights']:,}",
                " / ".join(f"{fmt_acc(view.clean(model, f))} ({f})" for f in g.formats),
                f"{len(sel)}",
                f"{int(sel['trials'].sum()):,}",
                f"{seconds / max(1, sel['trials'].sum()):.3f}",
                f"{(seconds + m.get('setup_seconds', 0.0)) / 60:.1f}",
            ]
        )
    header = ["model", "checkpoint", "faultable weights", "clean accuracy (%)", "campaigns", "trials", "s / trial"]
    lines += _table([*header, "minutes"], rows)
    plans = ", ".join(s.name for s in ber_plans("fp32"))
    int8_plans = ", ".join(s.name for s in ber_plans("int8"))
    sweep = "; ".join(f"{m} {f}: " + ", ".join(fmt_ber(b) for b in view.sweep_bers(m, f)) for m, f in view.pairs())
    per_point = camp.groupby(["model", "format", "ber"])["trials"].agg(["min", "max"])
    same = bool((per_point["min"] == per_point["max"]).all())
    fronts = {(m, f, b) for m, f in view.pairs() for b in view.sweep_bers(m, f)}
    is_front = [(m, f, b) in fronts for m, f, b in per_point.index]
    n_front = sorted(set(per_point["min"][is_front].astype(int)))
    n_other = sorted(set(per_point["min"][[not x for x in is_front]].astype(int)))
    counts = f"{'/'.join(map(str, n_front))} trials at the frontier points" + (
        f", {'/'.join(map(str, n_other))} at the other BERs" if n_other else ""
    )
    sized = (
        f" The trial counts were sized, before any grid point ran, from the timing of an unprotected probe so "
        f"that the run fits {g.minutes:g} minutes; they depend on the machine's speed, never on results."
        if g.minutes
        else ""
    )
    lines += [
        "The grid:",
        "",
        f"* formats: {', '.join(g.formats)}; BERs: {', '.join(fmt_ber(b) for b in g.bers)}"
        + (" (the paper's range is 1e-07 to 1e-03; the grid extends beyond it)." if max(g.bers) > 1e-3 else "."),
        f"* at every BER: {plans} (fp32); {int8_plans} (int8). fp32 bit 30 (the top exponent bit) has no int8 "
        f"counterpart; int8's `sign+top bit` plan protects bits {', '.join(map(str, sign_exponent_bits('int8')))}.",
        f"* budget sweep and frontier: {', '.join(g.scorers)} at {', '.join(f'{b:g}%' for b in g.budgets)} of the "
        f"weights (all bits of each chosen weight stored three times), at the paper's BER {fmt_ber(g.paper_ber)}"
        + (
            " and at the BER whose unprotected accuracy lies closest to halfway between clean and chance "
            f"(picked by an unprotected probe of {g.probe_trials} trials per BER)"
            if g.budget_bers > 1
            else ""
        )
        + f" — {sweep}.",
        f"* **paired, fixed-n points**: at every grid point (model, format, BER) every plan and the unprotected "
        f"baseline run the same trials (the same seeds, so the same primary faults) — {counts} — with no early "
        f"stopping; {'every' if same else 'NOT every'} point has one trial count for all its plans.{sized} A mean of a "
        "fixed number of trials is unbiased; every comparison below is the mean of per-trial paired differences "
        "with its 95% interval. Where a fault that decides is rare (fp32, fp16 and bf16 at low BERs) the trials "
        "are stratified on such faults, where the plans differ and where none protects, each stratum weighted by "
        "its exact probability (DESIGN.md, section 7; the CSV's `design`, `strata` and `trial_strata` columns); "
        "int8 points are plain. Intervals are `stats`' (DESIGN.md): the union of a BCa bootstrap over trials at "
        "Hesterberg's expanded level and a t interval; accuracies, differences to no protection and recovered "
        "shares also count the sampling error of the test images; differences between two protected plans "
        "(computed from the CSV's per-trial accuracies and strata) count the trials only. A verdict is one rule "
        "(`stats.judge`): an interval within ±0.5 pt is no practical difference, and a point without an "
        "interval says not enough trials, never a zero-width interval.",
        f"* per-bit scan: {g.sensitivity_weights} uniformly chosen weights per model, each bit position flipped "
        "alone in each of them.",
        "",
        f"Raw data: [`{CSV_NAME}`]({CSV_NAME}) (`kind` = `campaign` for fault campaigns, `bit_flip` for the "
        "single-flip scan; `trial_accuracies` holds every trial; `diff`, `recovered`, `relative_gain` (each with "
        "`_low`/`_high`) and `verdict` compare the row with its point's no-protection row, paired). Accuracies "
        "are test accuracy in %, ± the 95% CI half-width; differences "
        "are in accuracy points with their paired 95% CI in brackets.",
        "",
    ]
    if meta.get("caveats"):
        lines += ["**Caveats of this run:**", ""] + [f"* {c}" for c in meta["caveats"]] + [""]
    return lines


def _section_glance(view: ReportView, claims: Sequence[Claim]) -> list[str]:
    """One row per model and format: the status of its main claims (details in the conclusions)."""
    cols = [
        ("recovery", "paper", f"{lrp_name()} >60% at BER 1e-04"),
        ("recovery", "high", f"{lrp_name()} >60% at the high BER"),
        ("lrp_vs_magnitude", None, "LRP beats magnitude"),
        ("lrp_vs_gradient", None, "LRP beats gradient"),
        ("lrp_vs_taylor", None, "LRP beats Taylor"),
        ("damage", "paper", "damage beats LRP 1%, BER 1e-04"),
        ("damage", "high", "damage beats LRP 1%, high BER"),
    ]
    rows = []
    for model, fmt in view.pairs():
        cells = [model, fmt]
        for key, at, _ in cols:
            ber = {"paper": view.grid.paper_ber, "high": view.high_ber(model, fmt), None: None}[at]
            found = find(claims, key, where(model, fmt, ber)) if at is None or ber is not None else []
            cells.append(found[0].status if found else "—")
        rows.append(cells)
    used = [i for i in range(len(cols)) if any(r[2 + i] != "—" for r in rows)]
    header = ["model", "format", *(cols[i][2] for i in used)]
    return [
        "## Verdicts at a glance",
        "",
        "The status of the main claim records per model and format (each is explained, with its numbers, in "
        'section 7; "—": not run).',
        "",
        *_table(header, [r[:2] + [r[2 + i] for i in used] for r in rows]),
    ]


def _paper_rows(view: ReportView, ber_of: Callable[[str, str], float | None]) -> tuple[list[str], list[list[str]]]:
    lrp, mag = lrp_name(), f"magnitude {PAPER_LRP_BUDGET:g}%"
    header = [
        "model",
        "format",
        "BER",
        "clean",
        "no protection",
        lrp,
        mag,
        "full TMR",
        f"{lrp} recovered [95% CI]",
        f"{lrp} − none",
        f"{lrp} − {mag}",
    ]
    rows = []
    for model, fmt in view.pairs():
        ber = ber_of(model, fmt)
        if ber is None:
            continue
        r = {n: view.get(model, fmt, n, ber) for n in ("no protection", lrp, mag, "full TMR")}
        d_mag = paired(r[lrp], r[mag])
        rows.append(
            [model, fmt, fmt_ber(ber), fmt_acc(view.clean(model, fmt))]
            + [_pm(r[n]) for n in r]
            + [recovered_cell(view, r[lrp]), diff_cell(r[lrp])]
            + [fmt_diff(d_mag.estimate, d_mag.low, d_mag.high)]
        )
    return header, rows


def _section_paper(view: ReportView) -> list[str]:
    ber = view.grid.paper_ber
    lines = [
        "## 2. The paper's table",
        "",
        f"Accuracy (%) at BER {fmt_ber(ber)}. *Recovered* = (plan − none) / (clean − none), the share of the "
        'fault-induced loss the plan wins back (the paper\'s "reliability improvement"; DESIGN.md also defines the '
        "relative gain (plan − none) / none, given in the conclusions). The last two columns are paired "
        "differences in accuracy points with their 95% CI.",
        "",
    ]
    lines += _table(*_paper_rows(view, lambda m, f: ber))
    header, rows = _paper_rows(view, view.high_ber)
    if rows:
        lines += ["The same at each model and format's high-BER frontier point:", ""] + _table(header, rows)
    return lines


def _section_figures(view: ReportView, figs: Mapping[tuple[str, ...], str]) -> list[str]:
    lines = [
        "## 3. Accuracy vs BER and vs budget",
        "",
        "Lines are mean accuracy, shaded bands the 95% confidence interval of the mean. Accuracy-vs-BER plots "
        "span 0–100%; budget plots zoom to the range of their data (read the axis).",
        "",
    ]
    for model, fmt in view.pairs():
        lines += [f"### {model}, {fmt}", ""]
        lines += [f"![accuracy vs BER, {model} {fmt}]({figs[(model, fmt, 'ber')]})", ""]
        lines += [f"![accuracy vs budget, {model} {fmt}]({figs[(model, fmt, 'budget')]})", ""]
    return lines


_CEILINGS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)


def _section_frontier(view: ReportView, figs: Mapping[tuple[str, ...], str]) -> list[str]:
    lines = [
        "## 4. The frontier: accuracy against extra memory",
        "",
        "Every plan at the paper's BER and at the high-BER point, against the extra memory it costs, from 0% "
        "(the range guard) to 200% (full TMR). *Copies* = the two extra copies of the protected bits (what the "
        "paper quotes); *copies + index* adds the record of which weights are protected (one bit per weight or one "
        "32-bit index per protected weight, whichever is smaller; the range guard's two bounds per layer). "
        "Lines: plans with a budget; markers: the others, with their 95% CI; grey steps: the frontier (the best "
        "mean accuracy within that much memory). *vs none*: paired difference to no protection.",
        "",
    ]
    for model, fmt in view.pairs():
        lines += [f"### {model}, {fmt}", ""]
        if (model, fmt, "frontier") in figs:
            lines += [f"![accuracy vs extra memory, {model} {fmt}]({figs[(model, fmt, 'frontier')]})", ""]
        for ber in view.sweep_bers(model, fmt):
            sel = view.select(model, fmt, ber).sort_values(
                ["overhead_with_index_pct", "overhead_pct", "name"], kind="stable"
            )
            rows = [
                [
                    r["name"],
                    fmt_overhead(r["overhead_pct"]),
                    fmt_overhead(r["overhead_with_index_pct"]),
                    _pm(r),
                    diff_cell(r),
                    recovered_cell(view, r),
                    f"{int(r['trials'])}",
                ]
                for _, r in sel.iterrows()
            ]
            lines += [f"BER {fmt_ber(ber)}:", ""]
            lines += _table(["plan", "copies", "+ index", "accuracy (%)", "vs none", "recovered", "trials"], rows)
            best = []
            for ceiling in _CEILINGS:
                cells = [f"≤ {ceiling:g}%"]
                for col in ("overhead_pct", "overhead_with_index_pct"):
                    ok = sel[sel[col] <= ceiling + 1e-9]
                    # a one-label list: pandas-stubs type idxmax's label as Hashable, which .loc[label] rejects
                    r = ok.loc[[ok["mean_accuracy"].idxmax()]].iloc[0] if not ok.empty else None
                    cells.append("—" if r is None else f"{r['name']}: {fmt_acc(r['mean_accuracy'])}")
                best.append(cells)
            lines += ["Best plan within an extra-memory ceiling (highest mean accuracy):", ""]
            lines += _table(["ceiling", "counting copies only", "counting copies and index"], best)
    return lines


def _section_saliency(view: ReportView) -> list[str]:
    others = [s for s in view.grid.scorers if s not in ("lrp", "random")]
    if "lrp" not in view.grid.scorers or not others:
        return []
    lines = [
        "## 5. LRP against the other scorers, paired",
        "",
        "Accuracy difference (points) of each scorer minus LRP at the same budget and grid point, with its paired "
        "95% CI: a negative value means LRP selects better; an interval that contains 0 means no difference is "
        "shown.",
        "",
    ]
    rows = []
    for model, fmt in view.pairs():
        for ber in view.sweep_bers(model, fmt):
            for budget in view.grid.budgets:
                lrp = view.get(model, fmt, lrp_name(budget), ber)
                cells = [
                    model,
                    fmt,
                    fmt_ber(ber),
                    f"{budget:g}%",
                    fmt_acc(None if lrp is None else lrp["mean_accuracy"]),
                ]
                for s in others:
                    d = paired(view.get(model, fmt, f"{s} {budget:g}%", ber), lrp)
                    cells.append(fmt_diff(d.estimate, d.low, d.high))
                rows.append(cells)
    return lines + _table(["model", "format", "BER", "budget", "LRP (%)", *(f"{s} − LRP" for s in others)], rows)


def _section_bits(view: ReportView, figs: Mapping[tuple[str, ...], str]) -> list[str]:
    lines = [
        "## 6. Per-bit sensitivity",
        "",
        f"Test accuracy (%) after flipping one bit position in one weight, averaged over the same "
        f"{view.grid.sensitivity_weights} uniformly chosen weights for every position (worst weight in brackets).",
        "",
    ]
    models = [m for m in view.grid.models if not view.flips[view.flips["model"] == m].empty]
    for model in models:
        if (model, "bits") in figs:
            lines += [f"![accuracy after one flip per bit, {model}]({figs[(model, 'bits')]})", ""]
    for fmt in view.grid.formats:
        sel = view.flips[view.flips["format"] == fmt]
        if sel.empty:
            continue
        rows = []
        for bit in sorted(sel["bit"].astype(int).unique(), reverse=True):
            b = sel[sel["bit"].astype(int) == bit]
            cells = [str(bit), str(b["role"].iloc[0])]
            for model in models:
                r = b[b["model"] == model]
                cells.append(
                    f"{fmt_acc(r['mean_accuracy'].iloc[0])} ({fmt_acc(r['min_accuracy'].iloc[0])})"
                    if not r.empty
                    else "n/a"
                )
            rows.append(cells)
        lines += [f"### {fmt}", ""] + _table(["bit", "role", *models], rows)
    return lines


def write_document(
    view: ReportView,
    claims: Sequence[Claim],
    out_dir: Path,
    figs: Mapping[tuple[str, ...], str],
    meta: Mapping[str, Any],
) -> Path:
    """Write ``REPRODUCTION.md`` from the report's rows and claim records.

    Args:
        view: the rows. claims: the claim records (``claims.all_claims``). out_dir: the folder.
        figs: figure paths relative to ``out_dir``, by ``(model, fmt, kind)`` or ``(model, kind)``.
        meta: ``command``, ``duration_s``, ``machine``, ``load``, ``dataset``, ``quick``, optional ``caveats``.

    Returns:
        The document's path.
    """
    lines = [
        "# Reproducing arXiv 2507.08829: LRP-selected TMR against weight bit flips",
        "",
        "Generated by `python -m xtmr_core report`; do not edit by hand — every number below is computed from the "
        "CSV beside this file, and every verdict is a rule over the same data (`xtmr_core/report/claims.py`).",
        "",
    ]
    if meta["quick"]:
        lines += [
            "**This is a `--quick` run: a reduced grid with few trials, for testing the pipeline; its numbers are "
            "not a result.**",
            "",
        ]
    lines += _section_glance(view, claims)
    lines += _section_run(view, meta)
    lines += _section_paper(view)
    lines += _section_figures(view, figs)
    lines += _section_frontier(view, figs)
    lines += _section_saliency(view)
    lines += _section_bits(view, figs)
    lines += [
        "## 7. Conclusions",
        "",
        'Each verdict is a fixed rule over the rows above (`xtmr_core/report/claims.py`). "Better"/"worse": the '
        '95% CI of the mean per-trial paired difference excludes zero; otherwise "indistinguishable" / "not '
        "shown\". A share claim *holds* when its whole 95% interval clears the paper's threshold, *does not hold* "
        "when the whole interval is below it, and is *inconclusive* otherwise. Where the paper's claim does not "
        "hold here, that is the result.",
        "",
    ]
    lines += render_claims(claims)
    lines += [
        "## Other datasets",
        "",
        "The same command runs on the full datasets when their files are present under `data_cache/` (nothing is "
        "downloaded unless `XTMR_DOWNLOAD=1`) and checkpoints exist for them, e.g.:",
        "",
        "```",
        "python -m xtmr_core train --model alexnet --dataset cifar10 --out checkpoints/alexnet_cifar10.pt",
        "python -m xtmr_core report --dataset cifar10 --models alexnet,vgg16 --out docs/cifar10",
        "```",
        "",
        "This is documented, not run in CI.",
        "",
    ]
    path = out_dir / REPORT_NAME
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
