"""The Fault lab's parts (app_views/fault_lab_*.py, teaching_corner.py) on what they are given: the verdict's words
follow the engine's one rule, charts draw each plan in its registry colour, exports are named apart, and the
teaching corner's word rows and role ranges come from the format registry. The page itself: tests/test_pages.py."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from app_views import fault_lab_compare, fault_lab_exports, fault_lab_numbers, fault_lab_results, teaching_corner
from xtmr_core.format_registry import format_info
from xtmr_core.plan_registry import plan_info
from xtmr_core.spec import CampaignSpec
from xtmr_core.stats import Interval, judge
from xtmr_core.vocabulary import VERDICTS


def _result(protect: str, plan: str, accuracies: list[float], clean: float = 0.99) -> SimpleNamespace:
    return SimpleNamespace(protect=protect, plan=plan, accuracies=accuracies, clean_accuracy=clean, ber=1e-4)


class _Point:
    """A grid point as the parts read it: the baseline and one plan, and the engine's verdict on ``diff``."""

    def __init__(self, diff: Interval, loss: float, trials: int = 10) -> None:
        self.results = [_result("none", "unprotected", [0.9] * trials), _result("lrp", "lrp 1%", [0.95] * trials)]
        self.trials, self.strata = trials, None
        self._judged = judge(diff, loss, needed=2 if not math.isfinite(diff.low) else 0)

    def judge(self, plan=-1, other=0, k=None):
        return self._judged

    def accuracy(self, i, k=None) -> Interval:
        mean = sum(self.results[i].accuracies) / self.trials
        return Interval(mean, mean - 0.01, mean + 0.01)


#: One case per verdict: (the paired difference, the unprotected loss) and a phrase its sentence must hold.
CASES = {
    "helps": (Interval(0.05, 0.03, 0.07), 0.09, "lrp 1% helps here"),
    "hurts": (Interval(-0.05, -0.07, -0.03), 0.09, "worse than no protection"),
    "within noise": (Interval(0.01, -0.02, 0.04), 0.09, "Within noise"),
    "no practical difference": (Interval(0.001, -0.002, 0.003), 0.09, "makes no practical difference"),
    "not enough trials": (Interval(0.0, math.nan, math.nan), 0.09, "not enough trials to tell"),
    "nothing to protect": (Interval(0.001, -0.001, 0.002), 0.003, "Nothing to protect"),
}


def test_every_verdict_of_the_engine_has_its_sentence():
    assert set(CASES) == set(VERDICTS)


@pytest.mark.parametrize("verdict", sorted(CASES))
def test_the_verdict_sentence_is_the_engines_verdict_in_words(verdict):
    diff, loss, phrase = CASES[verdict]
    point = _Point(diff, loss)
    assert point.judge().verdict == verdict  # the case is the one it names
    text = fault_lab_results.verdict(point)
    assert phrase in text and "\n" not in text
    if verdict == "nothing to protect":
        assert "0.30 pt" in text  # what the faults cost, from the engine's judgement, not a typed threshold
    if verdict == "no practical difference":
        assert f"±{100 * point.judge().threshold:.2g} pt" in text and "9.00 pt" in text
    if math.isfinite(diff.low):
        assert "-0.00" not in text and "+0.00 pt" not in text  # a zero reads ±0.00


def test_charts_draw_each_plan_in_its_registry_colour():
    point = _Point(Interval(0.05, 0.03, 0.07), 0.09)
    bars = fault_lab_numbers.bars_figure(point, k=10).data[0]
    assert list(bars.marker.color)[1:] == [plan_info("none").colour, plan_info("lrp").colour]
    assert list(bars.x) == ["clean", "unprotected", "lrp 1%"] and "text" not in bars.to_plotly_json()
    hist = fault_lab_results.trials_figure(point)
    assert [t.marker.color for t in hist.data] == [plan_info("none").colour, plan_info("lrp").colour]


def test_the_compare_table_never_reads_minus_zero():
    many = SimpleNamespace(
        results=[
            _result("none", "unprotected", [0.9]),
            SimpleNamespace(plan="full", mean_accuracy=0.99, overhead=SimpleNamespace(copies_pct=200.0)),
        ],
        verdict=lambda i: "helps",
    )
    table = fault_lab_compare.compare_table(many, [Interval(-0.00001, -0.00002, 0.0)])
    cells = table[["paired diff pt", "CI low", "CI high"]].to_numpy().ravel()
    assert all(str(v) == "0.0" for v in cells), cells


def test_export_names_say_what_they_hold_and_never_collide():
    spec = CampaignSpec("lrp", 2.0, 1e-4, "fp32", 5, 3, guard=True)
    names = {
        fault_lab_exports.file_name("trials", "lenet5", spec, "lrp 2% +range"),
        fault_lab_exports.file_name("faults", "lenet5", spec, "lrp 2% +range", "_trial1"),
        fault_lab_exports.file_name("faults", "lenet5", spec, "unprotected", "_trial1"),
    }
    assert len(names) == 3 and all(n.endswith(".csv") and " " not in n and "%" not in n for n in names)
    columns = fault_lab_exports.plan_columns(spec, "lrp 2% +range")
    assert columns == {"plan": "lrp 2% +range", "protect": "lrp", "budget": 2.0, "guard": True, "bits": ""}


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("fp32", "sign 31–31, exponent 23–30, mantissa 0–22"),
        ("fp16", "sign 15–15, exponent 10–14, mantissa 0–9"),
        ("bf16", "sign 15–15, exponent 7–14, mantissa 0–6"),
        ("int8", "sign 7–7, value 0–6"),
    ],
)
def test_the_bit_slider_names_where_each_role_sits(fmt, expected):
    assert teaching_corner.role_ranges(format_info(fmt).bit_roles()) == expected


def test_a_word_row_marks_the_flipped_bit_in_its_role_colour():
    roles = format_info("int8").bit_roles()
    row = teaching_corner.bit_row("10000001", roles, {7})
    cells = row.split("</span><span")
    assert len(cells) == 8 and row.count("font-weight:700") == 1  # one flipped bit marked
    assert 'title="bit 7 (sign)"' in cells[0] and "font-weight:700" in cells[0]  # MSB first
    assert teaching_corner.ROLE_COLOURS["value"] in cells[-1] and 'title="bit 0 (value)"' in cells[-1]
