"""Tests for xtmr_core.report end to end: ``report --quick`` writes a document whose every number and verdict
comes from its CSV and its claim records, valid figures, and a CSV with paired fixed-n points."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from xtmr_core.cli import main
from xtmr_core.report import CSV_COLUMNS, CSV_NAME, QUICK_GRID, REPORT_NAME, ReportView, all_claims, n_points
from xtmr_core.report.document import fmt_acc, fmt_diff, fmt_share_ci, render_claim
from xtmr_core.report.grid import ber_plans, point_plans
from xtmr_core.report.view import paired
from xtmr_core.vocabulary import PLANS

SECTIONS = [
    "## 1. What was run",
    "## 2. The paper's table",
    "## 3. Accuracy vs BER and vs budget",
    "## 4. The frontier: accuracy against extra memory",
    "## 5. LRP against the other scorers, paired",
    "## 6. Per-bit sensitivity",
    "## 7. Conclusions",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_grid_shape():
    # quick grid: per format, 3 BERs of the BER sweep's plans, plus the budget sweep's new plans at the paper's BER
    per_format = [len(ber_plans(f)) * 2 + len(point_plans(QUICK_GRID, f, frontier=True)) for f in ("fp32", "int8")]
    assert n_points(QUICK_GRID) == sum(per_format)
    assert len(point_plans(QUICK_GRID, "fp32", frontier=True)) == len(ber_plans("fp32")) + 4 + 1 + (
        "damage" in PLANS
    ) * (2 + 1)  # lrp/magnitude/random at 1% and 5% (lrp and magnitude 1% run once), lrp+range 1%, damage 2%/10%/+range
    assert any(p.bits == (30,) for p in ber_plans("fp32"))
    assert all(p.bits != (30,) for p in ber_plans("int8"))  # fp32 bit 30 has no int8 counterpart
    plans = point_plans(QUICK_GRID, "fp32", frontier=True)
    assert len({p.name for p in plans}) == len(plans)  # lrp 1% of both sweeps runs once


def test_differences_are_formatted_with_their_interval():
    assert fmt_diff(0.0123, 0.004, 0.02) == "+1.23 [+0.40, +2.00]"
    assert fmt_diff(float("nan"), 0, 0) == "n/a"
    assert fmt_share_ci(0.313, 0.2, 0.41) == "31.3% [20.0%, 41.0%]"
    assert fmt_acc(0.971) == "97.10" and fmt_acc(float("nan")) == "n/a"


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


def _view(quick: Path) -> ReportView:
    table = pd.read_csv(quick / CSV_NAME)
    fronts = {(m, f): [QUICK_GRID.paper_ber] for m in QUICK_GRID.models for f in QUICK_GRID.formats}
    return ReportView(table, QUICK_GRID, {"models": {}, "budget_bers": fronts})


@pytest.mark.slow
def test_quick_report_has_every_section_valid_figures_and_points_to_the_design_page(quick):
    text = (quick / REPORT_NAME).read_text(encoding="utf-8")
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "report --quick" in text and "minutes" in text
    assert "](DESIGN.md)" in text and "shared/DESIGN" not in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) == 3 * 2 + 1  # BER, budget and frontier per format; one per-bit figure
    for rel in images:
        path = quick / rel
        assert path.is_file(), rel
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert matplotlib.image.imread(path).shape[0] > 100


@pytest.mark.slow
def test_quick_report_csv_has_paired_fixed_n_points(quick):
    table = pd.read_csv(quick / CSV_NAME)
    assert list(table.columns) == CSV_COLUMNS
    camp = table[table["kind"] == "campaign"]
    assert len(camp) == n_points(QUICK_GRID)
    assert (camp["trials"] == QUICK_GRID.trials).all()
    assert (camp["trial_accuracies"].str.split().map(len) == QUICK_GRID.trials).all()
    for _, point in camp.groupby(["model", "format", "ber"]):
        assert point["name"].is_unique and (point["name"] == "no protection").sum() == 1
    flips = table[table["kind"] == "bit_flip"]
    assert sorted(flips[flips["format"] == "fp32"]["bit"].astype(int)) == list(range(32))
    assert sorted(flips[flips["format"] == "int8"]["bit"].astype(int)) == list(range(8))


@pytest.mark.slow
def test_paper_table_numbers_equal_the_csv(quick):
    text = (quick / REPORT_NAME).read_text(encoding="utf-8")
    shown = _markdown_table(text, SECTIONS[1])
    view = _view(quick)
    assert len(shown) == len(QUICK_GRID.formats)
    for _, cells in shown.iterrows():
        get = lambda name: view.get(cells["model"], cells["format"], name, QUICK_GRID.paper_ber)  # noqa: E731
        assert cells["clean"] == fmt_acc(view.clean(cells["model"], cells["format"]))
        for name in ("no protection", "lrp 1%", "magnitude 1%", "full TMR"):
            assert cells[name] == f"{fmt_acc(get(name)['mean_accuracy'])} ±{100 * get(name)['ci_half_width']:.2f}"
        lrp = get("lrp 1%")
        assert cells["lrp 1% − none"] == fmt_diff(lrp["diff"], lrp["diff_low"], lrp["diff_high"])
        d = paired(lrp, get("magnitude 1%"))
        assert cells["lrp 1% − magnitude 1%"] == fmt_diff(d.estimate, d.low, d.high)
        rec = cells["lrp 1% recovered [95% CI]"]
        if not rec.startswith("—"):
            assert rec == fmt_share_ci(lrp["recovered"], lrp["recovered_low"], lrp["recovered_high"])


@pytest.mark.slow
def test_every_claim_record_is_in_the_conclusions(quick):
    text = (quick / REPORT_NAME).read_text(encoding="utf-8")
    conclusions = text[text.index(SECTIONS[-1]) :]
    claims = all_claims(_view(quick))
    assert claims and {c.claim for c in claims} >= {"recovery", "lrp_vs_magnitude", "overhead", "dominance"}
    for c in claims:
        assert render_claim(c) in conclusions
