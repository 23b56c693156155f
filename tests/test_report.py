"""Tests for xtmr_core.report: the conclusion rules on hand-made rows, and ``report --quick`` end to end."""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from xtmr_core import report
from xtmr_core.cli import main
from xtmr_core.report import (
    CSV_COLUMNS,
    CSV_NAME,
    QUICK_GRID,
    REPORT_NAME,
    Grid,
    PlanSpec,
    ReportView,
    compare,
    conclusions,
    fmt_acc,
    matching_budget,
    n_points,
)

SECTIONS = [
    "## 1. What was run",
    "## 2. The paper's table",
    "## 3. Accuracy vs BER and vs budget",
    "## 4. Iso-overhead comparison",
    "## 5. Per-bit sensitivity",
    "## 6. Conclusions",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# --------------------------------------------------------------------------------------------------
# The rules, on rows whose answer is known.

TINY = Grid(
    models=("m",),
    formats=("fp32",),
    bers=(1e-4,),
    scorers=("lrp", "magnitude"),
    budgets=(1.0, 5.0),
    max_trials=10,
    min_trials=10,
    sensitivity_weights=1,
    budget_bers=1,
)


def _row(
    name: str,
    protect: str,
    acc: float,
    half: float = 0.005,
    budget: float | None = None,
    overhead: float = 0.0,
    index: float = 0.0,
) -> dict:
    return {
        "kind": "campaign",
        "name": name,
        "model": "m",
        "dataset": "d",
        "format": "fp32",
        "ber": 1e-4,
        "protect": protect,
        "budget": budget,
        "trials": 10,
        "clean_accuracy": 0.9,
        "mean_accuracy": acc,
        "ci_low": acc - half,
        "ci_high": acc + half,
        "overhead_pct": overhead,
        "overhead_with_index_pct": overhead + index,
        "ci_target_met": True,
        "ci_half_width": half,
    }


def _view(lrp: float, mag1: float, mag5: float, none: float = 0.5) -> ReportView:
    rows = [
        _row("no protection", "none", none),
        _row("full TMR", "full", 0.9, 0.0, overhead=200.0),
        _row("lrp 1%", "lrp", lrp, budget=1.0, overhead=2.0, index=1.0),
        _row("lrp 5%", "lrp", lrp, budget=5.0, overhead=10.0, index=3.1),
        _row("magnitude 1%", "magnitude", mag1, budget=1.0, overhead=2.0, index=1.0),
        _row("magnitude 5%", "magnitude", mag5, budget=5.0, overhead=10.0, index=3.1),
    ]
    table = pd.DataFrame(rows)
    table["recovered"] = (table["mean_accuracy"] - none) / (0.9 - none)
    table["relative_gain"] = (table["mean_accuracy"] - none) / none
    info = {"models": {"m": {"weights": 1000}}, "budget_bers": {("m", "fp32"): [1e-4]}}
    return ReportView(table.reindex(columns=CSV_COLUMNS), TINY, info)


def _bullet(lines: list[str], claim: str) -> str:
    start = next(i for i, line in enumerate(lines) if claim in line)
    return next(line for line in lines[start + 1 :] if line.startswith("* "))


def test_recovery_claim_holds_above_sixty_percent_and_fails_below():
    good = conclusions(_view(lrp=0.8, mag1=0.6, mag5=0.85))  # recovers 75% of the loss
    bad = conclusions(_view(lrp=0.6, mag1=0.6, mag5=0.85))  # recovers 25%
    assert "**holds as recovered share" in _bullet(good, ">60% reliability") and "75.0%" in _bullet(good, ">60% reli")
    assert "**does not hold as recovered share" in _bullet(bad, ">60% reliability")
    assert "25.0%" in _bullet(bad, ">60% reliability")
    # the same 0.5 -> 0.6 is a 20% relative gain; 0.5 -> 0.8 a 60% one
    assert "does not hold as relative gain" in _bullet(bad, ">60%") and "holds as relative gain" in _bullet(
        good, ">60%"
    )


def test_no_loss_means_not_testable_rather_than_a_verdict():
    lines = conclusions(_view(lrp=0.89, mag1=0.89, mag5=0.89, none=0.89))
    assert _bullet(lines, ">60% reliability").startswith("* m fp32 at BER 1e-04: not testable")


def test_lrp_versus_magnitude_uses_non_overlapping_intervals():
    v = _view(lrp=0.8, mag1=0.6, mag5=0.85)
    assert compare(v.get("m", "fp32", "lrp 1%", 1e-4), v.get("m", "fp32", "magnitude 1%", 1e-4)) == "better"
    assert compare(v.get("m", "fp32", "lrp 5%", 1e-4), v.get("m", "fp32", "magnitude 5%", 1e-4)) == "worse"
    assert "**mixed**" in _bullet(conclusions(v), "better than magnitude")
    same = _view(lrp=0.8, mag1=0.801, mag5=0.802)
    assert "not shown" in _bullet(conclusions(same), "better than magnitude")


def test_comparison_is_paired_when_per_trial_accuracies_are_known():
    a = pd.Series({"ci_low": 0.5, "ci_high": 0.9, "trial_accuracies": "0.52 0.91 0.61 0.83"})
    b = pd.Series({"ci_low": 0.49, "ci_high": 0.89, "trial_accuracies": "0.51 0.90 0.60 0.82"})
    assert compare(a, b) == "better" and compare(b, a) == "worse"  # overlapping CIs, but +1 point every trial
    b["trial_accuracies"] = "0.53 0.90 0.62 0.82"
    assert compare(a, b) == "indistinguishable"


def test_matching_budget_is_the_smallest_budget_reaching_lrp():
    assert matching_budget(_view(lrp=0.8, mag1=0.6, mag5=0.85), "m", "fp32", 1e-4) == 5.0
    assert math.isnan(matching_budget(_view(lrp=0.8, mag1=0.6, mag5=0.7), "m", "fp32", 1e-4))
    line = _bullet(conclusions(_view(lrp=0.8, mag1=0.6, mag5=0.85)), "overhead to match")
    assert "**does not hold**" in line and "5% of the weights" in line  # 10% copies < the paper's 16%


def test_overhead_claim_reports_copies_and_index():
    line = _bullet(conclusions(_view(lrp=0.8, mag1=0.6, mag5=0.85)), "1% memory overhead")
    assert "does not hold as stated" in line and "2%" in line and "3% with the index" in line


def test_efficiency_against_full_tmr_needs_a_real_gain():
    holds = _bullet(conclusions(_view(lrp=0.8, mag1=0.6, mag5=0.85)), "more efficient than full TMR")
    assert "**holds per unit of memory**" in holds and "worse than full TMR" in holds
    flat = _bullet(conclusions(_view(lrp=0.503, mag1=0.5, mag5=0.5)), "more efficient than full TMR")
    assert "**does not hold per unit of memory**" in flat and "indistinguishable from no protection" in flat


def test_formatting_and_grid_size():
    assert fmt_acc(0.5) == "50.00" and fmt_acc(0.971) == "97.10"
    assert fmt_acc(float("nan")) == "n/a"
    # quick grid: per format, 3 BERs x plans, plus the budget sweep's new points at the paper's BER only
    assert n_points(QUICK_GRID) == (3 * 7 + 4) + (3 * 6 + 4)
    assert PlanSpec("bit 30", "bits", bits=(30,)) in report.ber_plans("fp32")
    assert all(s.bits != (30,) for s in report.ber_plans("int8"))  # fp32 bit 30 has no int8 counterpart


def test_a_missing_checkpoint_fails_at_once_with_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["report", "--quick", "--dataset", "digits", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "python -m xtmr_core train" in err
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# End to end: `python -m xtmr_core report --quick` into a temporary folder (never over docs/).


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--quick", "--out", str(out)]) == 0
    return out


def _markdown_table(text: str, heading: str) -> pd.DataFrame:
    """The first Markdown table after ``heading``, as strings."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return pd.DataFrame(rows[2:], columns=rows[0])


@pytest.mark.slow
def test_quick_report_has_every_section_and_valid_figures(quick):
    text = (quick / REPORT_NAME).read_text(encoding="utf-8")
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "report --quick" in text and "minutes" in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 6
    for rel in images:
        path = quick / rel
        assert path.is_file(), rel
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert matplotlib.image.imread(path).shape[0] > 100
    for verdict in ("holds", "not testable", "does not hold"):
        if verdict in text[text.index(SECTIONS[-1]) :]:
            break
    else:
        pytest.fail("the conclusions give no verdict")


@pytest.mark.slow
def test_quick_report_csv_parses_and_records_trials(quick):
    table = pd.read_csv(quick / CSV_NAME)
    assert list(table.columns) == CSV_COLUMNS
    camp = table[table["kind"] == "campaign"]
    assert len(camp) == n_points(QUICK_GRID)
    assert camp["trials"].between(1, QUICK_GRID.max_trials).all()
    assert set(camp["ci_target_met"].astype(str)) <= {"True", "False"}
    flips = table[table["kind"] == "bit_flip"]
    assert sorted(flips[flips["format"] == "fp32"]["bit"].astype(int)) == list(range(32))
    assert sorted(flips[flips["format"] == "int8"]["bit"].astype(int)) == list(range(8))


@pytest.mark.slow
def test_paper_table_numbers_equal_the_csv(quick):
    text = (quick / REPORT_NAME).read_text(encoding="utf-8")
    shown = _markdown_table(text, SECTIONS[1])
    table = pd.read_csv(quick / CSV_NAME)
    camp = table[(table["kind"] == "campaign") & (table["ber"] == QUICK_GRID.paper_ber)]
    assert len(shown) == len(QUICK_GRID.formats)
    for _, cells in shown.iterrows():
        rows = camp[(camp["model"] == cells["model"]) & (camp["format"] == cells["format"])]
        assert cells["clean"] == fmt_acc(rows["clean_accuracy"].iloc[0])
        for name in ("no protection", "lrp 1%", "magnitude 1%", "full TMR"):
            r = rows[rows["name"] == name].iloc[0]
            assert cells[name].split()[0] == fmt_acc(r["mean_accuracy"]), name
            assert cells[name].split()[1] == f"±{100 * r['ci_half_width']:.2f}", name
        lrp = rows[rows["name"] == "lrp 1%"].iloc[0]
        none = rows[rows["name"] == "no protection"].iloc[0]
        if lrp["clean_accuracy"] - none["mean_accuracy"] >= QUICK_GRID.ci_target:
            assert cells["lrp 1% recovered"] == report.fmt_share(lrp["recovered"])
        else:  # no measurable loss: the share is not shown as a number
            assert cells["lrp 1% recovered"].startswith("—")
        assert cells["lrp 1% relative gain"] == report.fmt_share(lrp["relative_gain"])
