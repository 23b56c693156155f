"""The UI helpers: formatting that must not mislead (no arrow for a zero change, no hidden exponent)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ui
from xtmr_core.vocabulary import FORMATS, PLANS, WORD_BITS


def test_ui_helpers_do_not_load_torch():
    code = "import sys, ui; sys.exit('torch' in sys.modules or 'app_state' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ui.ROOT).returncode == 0


def test_point_deltas_never_claim_a_change_of_zero():
    assert ui.pt(0.0) is None and ui.pt(0.0004) is None and ui.pt(-0.0004) is None
    assert ui.pt(0.0006) == "+0.1 pt" and ui.pt(-0.243) == "-24.3 pt"
    assert ui.pt(float("nan")) is None


@pytest.mark.parametrize(
    "value,text",
    [(2.2687e38, "2.269e+38"), (-0.0123, "-0.0123"), (0.0, "0"), (1.5e-7, "1.500e-07"), (float("inf"), "inf")],
)
def test_values_keep_their_exponent(value, text):
    assert ui.sci(value) == text


def test_top_bits_and_int8_top_bit_label():
    assert [ui.top_bit(f) for f in FORMATS] == [30, 14, 14, 7]
    assert all(ui.top_bit(f) < WORD_BITS[f] for f in FORMATS)
    assert "−128" in ui.role_label("int8", 7, "sign") and "sign" not in ui.role_label("int8", 7, "sign")
    assert ui.role_label("fp32", 31, "sign") == "sign"


def test_every_plan_has_a_label():
    assert all(ui.plan_label(p) for p in PLANS) and ui.plan_label("new_plan") == "new_plan"
    assert ui.pct(0.9712) == "97.1%" and ui.pct(None) == "–"
