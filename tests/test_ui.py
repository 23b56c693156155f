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


def test_plan_budgets_and_colours_come_from_the_plan_registry():
    # what ui.uses_budget spelled out before the registry: the scorers, and damage in % extra memory
    assert {p for p in PLANS if ui.uses_budget(p)} == {"lrp", "magnitude", "gradient", "taylor", "random", "damage"}
    assert not ui.uses_budget("lrp+range") and not ui.uses_budget("new_plan")
    colours = [ui.plan_colour(p) for p in PLANS]
    assert len(set(colours)) == len(PLANS) and ui.plan_colour("none") == "#c53030"
    # plans the registry does not know: a spare colour each, by their order among the unknown ones
    order = ["lrp", "a+b", "lrp", "c+d"]
    assert [ui.plan_colour(p, order) for p in ("a+b", "c+d")] == list(ui.SPARE_COLOURS[:2])
    assert ui.plan_colour("never_seen", order) == ui.SPARE_COLOURS[-1]


# ---------------------------------------------------------------- links


#: Every setting a link carries, off its default (the session keys, as widgets hold them).
OFF_DEFAULT = {
    "model": "vgg16",
    "dataset": "digits",
    "fmt": "fp16",
    "protect": "bits",
    "budget": 2.0,
    "ber": 2e-4,
    "trials": 5,
    "guard": True,
    "mode": "stuck1",
    "fault_bits_fp16": "10-14",
    "bits_fp16": "14,15",
    "seed": 7,
    "rule": "gamma",
}


def test_a_link_carries_every_setting_and_reads_back_as_the_same_values():
    params = ui.link_params(OFF_DEFAULT, None)
    assert set(params) == set(ui.URL_SETTINGS), params  # every setting, nothing else
    values, notes = ui.read_link(params)
    assert not notes and values == OFF_DEFAULT
    assert ui.link_params(dict(ui.DEFAULTS), None) == {}  # the defaults make a bare link
    # a setting that changes no number stays out: protected bit positions of a plan other than 'bits'
    assert "bits" not in ui.link_params({**OFF_DEFAULT, "protect": "lrp"}, None)


def test_a_link_never_carries_a_folder_path_or_weights_and_says_so():
    state = {"model": ui.TORCHVISION_ENTRY, "tv_arch": "squeezenet1_1", "dataset": ui.FOLDER_ENTRY}
    state |= {"folder_path": "/data/photos"}
    params = ui.link_params(state, "uploaded")
    assert params == {"model": "torchvision:squeezenet1_1", "dataset": "folder", "weights": "uploaded"}
    assert "/data" not in str(params)
    values, notes = ui.read_link(params)
    assert values == {"model": "lenet5", "dataset": "mnist5k"}
    texts = " ".join(n.text for n in notes)
    assert "`model=torchvision:squeezenet1_1` is a torchvision architecture" in texts and "using lenet5" in texts
    assert "`dataset=folder` is an image folder on the server, which a link never names: using mnist5k" in texts
    assert "`weights=uploaded`: those weights were uploaded to another session" in texts
    assert "using the shipped checkpoint" in texts
    gap = ui.link_gap(True, "uploaded mine.pt", ui.TORCHVISION_ENTRY, ui.FOLDER_ENTRY)
    assert gap and "does not carry the weights (uploaded mine.pt) and the image folder on this server" in gap
    assert "lenet5 on mnist5k" in gap
    assert ui.link_gap(False, "shipped checkpoint", "vgg16", "mnist5k") is None


# The values (ber=3e-4, budget=2.5, trials=30, ber=abc, model=evil) and one bad value of every other setting.
BAD = [
    ("ber", "3e-4", "ber", 2e-4, "is not a slider stop: using 2e-4, the nearest"),
    ("budget", "2.5", "budget", 3.0, "is not a slider stop: using 3%, the nearest"),
    ("trials", "30", "trials", 20, "is not a slider stop: using 20, the nearest"),
    ("ber", "abc", "ber", 1e-5, "is not a bit error rate (0 … 1): using 1e-5"),
    ("model", "evil", "model", "lenet5", "is not a built-in model: using lenet5"),
    ("dataset", "nope", "dataset", "mnist5k", "is not a built-in dataset: using mnist5k"),
    ("format", "fp64", "fmt", "fp32", "is not a number format: using fp32"),
    ("plan", "magic", "protect", "lrp", "is not a protection plan: using lrp"),
    ("seed", "-1", "seed", 0, "is not a seed (0 … 10,000): using 0"),
    ("guard", "maybe", "guard", False, "is not on or off (1 or 0): using off"),
    ("fault", "stuck2", "mode", "flip", "is not a fault type: using flip"),
    ("fail_bits", "99", "fault_bits_fp32", "", "is not a list of fp32 bit positions (0 … 31): using every bit"),
    ("bits", "40", "bits_fp32", "30", "is not a list of fp32 bit positions (0 … 31): using bit 30"),
    ("rule", "zz", "rule", "epsilon", "is not an LRP rule: using epsilon"),
    ("ber", "1", "ber", 1e-2, "is not a slider stop: using 1e-2, the nearest"),
    ("trials", "2.5", "trials", 10, "is not a number of trials: using 10"),
]


@pytest.mark.parametrize("param,raw,key,used,says", BAD, ids=[f"{p}={r}" for p, r, *_ in BAD])
def test_a_bad_link_value_gets_one_note_naming_it_and_what_was_used(param, raw, key, used, says):
    values, notes = ui.read_link({param: raw})
    assert values[key] == used
    assert len(notes) == 1 and notes[0].key == key and notes[0].used == used
    assert notes[0].text == f"`{param}={raw}` {says}" and "\n" not in notes[0].text


def test_a_link_value_is_quoted_short_and_inert():
    _, notes = ui.read_link({"model": "x" * 100 + "`<b>**bold**</b>\n"})
    assert len(notes[0].text) < 120 and notes[0].text.count("`") == 2 and "\n" not in notes[0].text


def test_signed_points_never_read_minus_zero_and_sizes_pick_their_unit():
    assert ui.signed_pt(-0.0004) == "±0.0 pt" and ui.signed_pt(0.0004, unit=False) == "±0.0"
    assert ui.signed_pt(0.021) == "+2.1 pt" and ui.signed_pt(-0.0194, unit=False) == "-1.9"
    assert ui.memory(61_470 * 4) == "240.1 KiB" and ui.memory(569_824 * 4) == "2.17 MiB"
    assert ui.short_model("torchvision:resnet18") == "resnet18" and ui.short_model("lenet5") == "lenet5"
    assert ui.short_dataset("imagefolder:/data/photos") == "image folder" and ui.short_dataset("mnist5k") == "mnist5k"
