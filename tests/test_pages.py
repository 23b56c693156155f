"""Every page with Streamlit's AppTest: renders on the default, reacts to its controls, explains bad input."""

from __future__ import annotations

import base64
import io
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import metric
from streamlit.testing.v1 import AppTest

from xtmr_core.checkpoints import shipped_checkpoint
from xtmr_core.vocabulary import FORMATS, MODELS, PLANS

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 180


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def percent(value: str) -> float:
    """A metric shown as a percentage, as a number (fails on anything else)."""
    assert re.fullmatch(r"\d{1,3}\.\d+%", value), value
    return float(value[:-1])


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


# ---------------------------------------------------------------- Fault lab


def test_fault_lab_renders_live_results_on_the_default():
    at = open_page("fault_lab")
    assert at.select_slider(key="ber").value == 1e-5 and at.select_slider(key="budget").value == 1.0
    assert at.selectbox(key="protect").value == "lrp" and at.selectbox(key="fmt").value == "fp32"
    clean = percent(metric(at, "Clean"))
    assert clean >= 95 and percent(metric(at, "Accuracy with this flip")) <= clean
    assert percent(metric(at, "Unprotected")) <= clean + 0.5 and percent(metric(at, "With lrp 1%")) <= clean + 0.5
    assert metric(at, "Extra memory") == "2.00%" and percent(metric(at, "with index")) > 2.0
    before, after = float(metric(at, "Value before")), float(metric(at, "Value after"))
    assert abs(after) > 1e30 > abs(before)  # the default flip is bit 30 of fp32: the weight grows by 2^128
    assert len(at.get("plotly_chart")) >= 4  # CI bars, histogram, layers, vote
    assert not at.error


def test_fault_lab_says_when_a_plan_makes_no_practical_difference_and_when_it_helps():
    at = open_page("fault_lab")
    # fp32 at BER 1e-5, 10 trials: stratified, so the rare trials where the plans differ are sampled; the
    # interval is a real one (never zero-width) and lies within the 0.5 pt practical threshold
    verdicts = [m.value for m in at.markdown if "lrp 1%" in m.value]
    assert any("lrp 1% makes no practical difference here" in v and "stratified" in v for v in verdicts), verdicts
    assert not any("Within noise" in v for v in verdicts)
    ok(at.select_slider(key="ber").set_value(1e-4).run())
    ok(at.selectbox(key="protect").set_value("range").run())
    assert any("range guard helps here" in m.value for m in at.markdown), [m.value for m in at.markdown][:5]


def test_fault_lab_ber_slider_changes_the_accuracy():
    at = open_page("fault_lab")
    ok(at.select_slider(key="trials").set_value(5).run())
    before = (metric(at, "Unprotected"), metric(at, "With"))
    ok(at.select_slider(key="ber").set_value(1e-3).run())
    after = (metric(at, "Unprotected"), metric(at, "With"))
    assert after != before
    assert float(after[0].rstrip("%")) < float(before[0].rstrip("%"))


def test_fault_lab_budget_slider_changes_overhead_and_label():
    at = open_page("fault_lab")
    ok(at.select_slider(key="trials").set_value(2).run())
    ok(at.select_slider(key="budget").set_value(10.0).run())
    assert metric(at, "Extra memory") == "20.00%"
    assert percent(metric(at, "With")) <= 100 and any(m.label == "With lrp 10%" for m in at.metric)
    ok(at.selectbox(key="protect").set_value("full").run())
    assert metric(at, "Extra memory") == "200.00%"
    assert at.select_slider(key="budget").disabled


@pytest.mark.parametrize("fmt", ["fp32", "int8"])
def test_fault_lab_every_plan_renders(fmt):
    at = open_page("fault_lab")
    ok(at.select_slider(key="trials").set_value(2).run())
    ok(at.selectbox(key="fmt").set_value(fmt).run())
    ok(at.select_slider(key="ber").set_value(1e-2).run())
    for plan in PLANS:
        ok(at.selectbox(key="protect").set_value(plan).run())
        assert not at.error, (plan, [e.value for e in at.error])
        assert 0 <= percent(metric(at, "With")) <= 100


def test_fault_lab_every_format_at_the_extremes():
    at = open_page("fault_lab")
    ok(at.select_slider(key="trials").set_value(2).run())
    for fmt in FORMATS:
        ok(at.selectbox(key="fmt").set_value(fmt).run())
        for ber in (1e-7, 1e-2):
            ok(at.select_slider(key="ber").set_value(ber).run())
        for budget in (0.0, 100.0):
            ok(at.select_slider(key="budget").set_value(budget).run())
        assert not at.error
    ok(at.select_slider(key="budget").set_value(0.0).run())
    assert at.info and "0%" in at.info[0].value  # budget 0% says it equals no protection


def test_fault_lab_bad_bit_positions_explain_themselves():
    at = open_page("fault_lab")
    ok(at.select_slider(key="trials").set_value(2).run())
    ok(at.selectbox(key="protect").set_value("bits").run())
    assert not at.error and 0 <= percent(metric(at, "With bits 30")) <= 100
    for bad in ("40", "abc", "5-2"):
        ok(at.text_input(key="bits_fp32").set_value(bad).run())
        assert len(at.error) == 1 and "bit" in at.error[0].value
    ok(at.text_input(key="bits_fp32").set_value("23-30").run())
    assert not at.error and metric(at, "Extra memory") == "50.00%"
    ok(at.text_input(key="fault_bits_fp32").set_value("99").run())
    assert len(at.error) == 1 and "99 outside 0..31" in at.error[0].value


def test_fault_lab_values_sit_where_no_whisker_crosses_them_and_compared_plans_have_whiskers():
    at = open_page("fault_lab")
    ok(at.select_slider(key="trials").set_value(2).run())
    ok(at.select_slider(key="ber").set_value(1e-4).run())
    bars = _figure(at, "bars_")
    assert "text" not in bars["data"][0]  # no value inside a bar, where its whisker drew over it
    ticks = bars["layout"]["xaxis"]["ticktext"]
    assert ticks[0] == f"clean<br><b>{metric(at, 'Clean')}</b>" and ticks[1].startswith("unprotected<br><b>")
    assert not any("-0.0 pt" in m.value for m in at.markdown)
    ok(at.multiselect(key="fl_compare").set_value(["lrp", "full"]).run())
    ok(at.toggle(key="fl_compare_on").set_value(True).run())
    compare = _figure(at, "compare")["data"][0]
    assert len(compare["x"]) == 3 and len(compare["error_y"]["array"]) == 3 and compare["error_y"]["array"][1] > 0
    table = next(d.value for d in at.dataframe if "paired diff pt" in d.value.columns)
    assert not any(str(v) == "-0.0" for v in table[["paired diff pt", "CI low", "CI high"]].to_numpy().ravel())


def test_fault_lab_teaching_corner_flips_one_bit_and_votes():
    at = open_page("fault_lab")
    assert at.slider(key="t_bit_fp32").value == 30
    before = metric(at, "Value after")
    ok(at.slider(key="t_bit_fp32").set_value(0).run())
    assert metric(at, "Value after") != before
    assert metric(at, "Accuracy with this flip") == metric(at, "Clean")  # one mantissa LSB changes nothing
    assert at.success and "clean word" in at.success[0].value  # one copy flipped: the vote corrects it
    ok(at.multiselect(key="t_fb_fp32_0").set_value([0]).run())
    assert at.error and "bit 0" in at.error[0].value  # two copies wrong at the same bit
    ok(at.radio(key="t_how").set_value("by index").run())
    from xtmr_core.checkpoints import load_model
    from xtmr_core.models import weight_layers

    net, _ = load_model("lenet5", "mnist5k", device="cpu")
    first = float(weight_layers(net)[0][1].weight.detach().flatten()[0])
    assert float(metric(at, "Value before")) == pytest.approx(first, rel=1e-3)  # index 0 of the first layer


# ---------------------------------------------------------------- Sweeps


def test_sweeps_render_and_budget_changes_overhead():
    at = open_page("sweeps")
    assert not at.error

    def overhead_text():
        return next(c.value for c in at.caption if c.value.startswith("Extra memory at this budget"))

    before = overhead_text()
    assert "lrp 2.00%" in before
    ok(at.select_slider(key="swb_budget").set_value(5.0).run())
    assert overhead_text() != before and "lrp 10.00%" in overhead_text()


def test_sweeps_run_show_accuracy_and_reliability():
    at = open_page("sweeps")
    ok(at.select_slider(key="sw_trials").set_value(2).run())
    ok(at.multiselect(key="swb_plans").set_value(["lrp", "full"]).run())
    ok(at.select_slider(key="swb_bers").set_value((1e-4, 1e-3)).run())
    ok(at.button(key="swb_run").click().run())
    assert any(getattr(d, "proto", None) is not None for d in at.get("download_button"))
    table = at.session_state["swb_table"]
    assert set(table["protect"]) == {"none", "lrp", "full"} and len(table) == 3 * 4  # 1e-4, 2e-4, 5e-4, 1e-3
    acc = table.pivot(index="ber", columns="protect", values="mean_accuracy")
    assert "recovered" in table and (acc["full"] >= acc["none"]).all() and acc["full"].iloc[0] > 0.95
    # the budget sweep and its iso-reliability table
    ok(at.multiselect(key="swg_plans").set_value(["lrp", "random"]).run())
    ok(at.select_slider(key="swg_budgets").set_value((1.0, 2.0)).run())
    ok(at.button(key="swg_run").click().run())
    g = at.session_state["swg_table"]
    assert set(g["protect"]) == {"none", "full", "lrp", "random"}
    # a target the unprotected model already meets: no protection needed, no ranking of scorers
    ok(at.slider(key="swg_target").set_value(0.0).run())
    assert any("No protection needed" in s.value for s in at.success)
    assert not [d for d in at.dataframe if "min_budget" in d.value.columns]
    # a target nothing reaches (clean accuracy is below 100%): the table says so for every scorer
    ok(at.slider(key="swg_target").set_value(100.0).run())
    iso = [d for d in at.dataframe if "min_budget" in d.value.columns]
    assert iso and set(iso[0].value["protect"]) == {"lrp", "random"}
    assert (iso[0].value["min_budget"] == "not reached (max budget tried: 2%)").all()  # never NaN
    assert any("Not reached within the tested budgets: lrp, random" in c.value for c in at.caption)


def test_sweeps_count_campaigns_one_way_and_mark_a_table_run_with_other_settings():
    at = open_page("sweeps")
    ok(at.select_slider(key="sw_trials").set_value(2).run())
    ok(at.multiselect(key="swb_plans").set_value(["lrp", "full"]).run())
    ok(at.select_slider(key="swb_bers").set_value((1e-4, 2e-4)).run())
    assert at.button(key="swb_run").label == "Run 6 campaigns"  # the button, the caption and the stop note agree
    assert any(
        c.value.startswith("6 campaigns: 2 BERs × 3 plans (no protection included), 2 trials") for c in at.caption
    )
    ok(at.button(key="swb_run").click().run())
    assert len(at.session_state["swb_table"]) == 6 and not any("an earlier run" in c.value for c in at.caption)
    ok(at.select_slider(key="swb_budget").set_value(2.0).run())  # the table below is no longer of these settings
    marks = [c.value for c in at.caption if "Below: an earlier run" in c.value]
    assert len(marks) == 1 and "lrp, full at 1%" in marks[0] and "lrp, full at 2%" in marks[0], marks


def test_sweeps_offer_the_new_plans_and_guarded_names():
    from xtmr_core.vocabulary import PLAN_NAMES

    at = open_page("sweeps")
    assert set(at.multiselect(key="swb_plans").options) == set(PLAN_NAMES) - {"none"}
    ok(at.select_slider(key="sw_trials").set_value(2).run())
    ok(at.multiselect(key="swb_plans").set_value(["ecc", "damage", "lrp+range"]).run())
    assert not at.error
    caption = next(c.value for c in at.caption if c.value.startswith("Extra memory at this budget"))
    assert "lrp+range 2.00%" in caption  # the guard costs no copies
    ok(at.select_slider(key="swb_bers").set_value((1e-4, 1e-4)).run())
    ok(at.button(key="swb_run").click().run())
    table = at.session_state["swb_table"]
    assert set(table["protect"]) == {"none", "ecc", "damage", "lrp"} and len(table) == 4
    assert table["plan"].str.endswith("+range").sum() == 1 and not at.error


def _check_recovered_only_beyond_noise(at: AppTest) -> pd.DataFrame:
    """Every displayed ``recovered`` is blank exactly where the unprotected loss is within its own CI half-width."""
    table = at.session_state["swb_table"]
    shown = next(d.value for d in at.dataframe if "recovered" in d.value.columns)
    none = table[table["protect"] == "none"].set_index("ber")
    baseline = none["plan"].iloc[0]
    for _, row in shown[shown["plan"] != baseline].iterrows():  # the baseline row has no paired columns
        base = none.loc[row["ber"]]
        noise = base["ci_high"] - base["mean_accuracy"]
        real_loss = base["clean_accuracy"] - base["mean_accuracy"] > (noise if noise == noise else float("inf"))
        assert pd.notna(row["recovered"]) == real_loss, (row["ber"], row["recovered"], base.to_dict())
    return shown


def test_sweeps_warn_about_thin_points_and_hide_recovery_within_noise():
    at = open_page("sweeps")
    ok(at.select_slider(key="sw_trials").set_value(2).run())
    ok(at.multiselect(key="swb_plans").set_value(["full"]).run())
    ok(at.select_slider(key="swb_bers").set_value((1e-7, 1e-7)).run())
    ok(at.button(key="swb_run").click().run())
    assert any("fewer than 10 trials (as few as 2)" in w.value for w in at.warning)
    assert _check_recovered_only_beyond_noise(at)["recovered"].isna().all()  # nothing lost at 1e-7
    ok(at.select_slider(key="swb_bers").set_value((1e-3, 1e-3)).run())
    ok(at.button(key="swb_run").click().run())
    shown = _check_recovered_only_beyond_noise(at)
    table = at.session_state["swb_table"]
    baseline = table[table["protect"] == "none"]["plan"].iloc[0]
    assert shown.loc[shown["plan"] != baseline, "recovered"].notna().all()  # lenet5 loses far more at 1e-3
    ok(at.select_slider(key="sw_trials").set_value(10).run())
    ok(at.select_slider(key="swb_bers").set_value((1e-7, 1e-7)).run())
    ok(at.button(key="swb_run").click().run())
    assert not any("fewer than 10 trials" in w.value for w in at.warning)


def test_sweeps_csv_carries_seed_rule_and_versions():
    import app_state

    table = pd.DataFrame({"plan": ["none", "full"], "mean_accuracy": [0.5, 0.9]})
    csv = pd.read_csv(io.BytesIO(app_state.sweep_csv(table, seed=7, rule="gamma", weights="shipped checkpoint")))
    assert list(csv.columns[:2]) == ["plan", "mean_accuracy"] and len(csv) == 2
    assert (csv["seed"] == 7).all() and (csv["lrp_rule"] == "gamma").all()
    assert (csv["weights"] == "shipped checkpoint").all()
    assert {"xtmr_commit", "torch_version", "numpy_version", "python_version"} <= set(csv.columns)
    assert csv["torch_version"].iloc[0] == torch.__version__


# ---------------------------------------------------------------- Relevance


def test_relevance_renders_maps_and_overlap():
    at = open_page("relevance")
    assert not at.error
    assert len(at.get("plotly_chart")) == 7  # shares, layer map, scatter, inputs, attributions, agreement, overlap
    ok(
        at.selectbox(key=next(k for k in at.session_state if str(k).startswith("rel_layer_")))
        .set_value("classifier.0")
        .run()
    )
    ok(at.radio(key="rel_show").set_value("weight values").run())
    ok(at.radio(key="rel_target").set_value("predicted").run())
    ok(at.selectbox(key="ov_b").set_value("lrp").run())
    assert at.info  # the same scorer twice explains itself
    ok(at.multiselect(key="rel_images_mnist5k").set_value([]).run())
    ok(at.selectbox(key="rule").set_value("gamma").run())
    assert not at.error


def test_relevance_names_its_reference_images_and_draws_square_pixels():
    at = open_page("relevance")
    assert any("summed over 256 correctly classified training images" in c.value for c in at.caption)
    inputs = _figure(at, "inputs")
    anchors = {k: v.get("scaleanchor") for k, v in inputs["layout"].items() if k.startswith("yaxis")}
    assert len(anchors) == 8 and all(a == "x" + k[5:] for k, a in anchors.items()), anchors  # 2 rows x 4 images
    scatter = _figure(at, "scatter")["layout"]
    assert scatter["xaxis"]["dtick"] == 1 and scatter["yaxis"]["exponentformat"] == "power"  # decades, no "100μ"


def test_relevance_draws_captum_methods_beside_lrp_on_one_scale():
    at = open_page("relevance")
    maps = _figure(at, "attr_maps")
    heat = [t for t in maps["data"] if t["type"] == "heatmap" and t.get("coloraxis")]
    assert len(heat) == 4 and {t["coloraxis"] for t in heat} == {"coloraxis"}  # LRP + three methods, one scale
    axis = maps["layout"]["coloraxis"]
    lrp_scale = next(t["colorscale"] for t in _figure(at, "inputs")["data"] if t.get("zmid") == 0)
    assert (axis["cmin"], axis["cmax"], axis["cmid"]) == (-1, 1, 0) and axis["colorscale"] == lrp_scale
    titles = [a["text"] for a in maps["layout"]["annotations"]]
    assert titles == ["image", "LRP", "Integrated Gradients", "Saliency", "Input × Gradient"]
    for t in heat:  # each map over its own largest |value|: it reaches 1 in size, never beyond
        assert np.abs(_array(t["z"])).max() == pytest.approx(1.0) and _array(t["z"]).shape == (28, 28)
    agree = _figure(at, "attr_agree")["data"][0]
    table = _array(agree["z"])
    assert table.shape == (4, 4) and (np.diag(table) == 1).all() and ((table >= 0) & (table <= 1)).all()
    assert table[0, 3] == 1  # the epsilon rule on lenet5 (ReLU, max-pool): LRP is Input x Gradient
    assert table[0, 2] < 1  # Saliency's top pixels are not LRP's
    assert agree["colorscale"] != lrp_scale  # agreement is not drawn in relevance's red and blue
    assert any("top 39 pixels" in c.value for c in at.caption)  # 5% of 28 x 28
    ok(at.select_slider(key="attr_k").set_value(0.2).run())
    assert any("top 157 pixels" in c.value for c in at.caption)
    ok(at.selectbox(key="attr_image").set_value(2).run())
    ok(at.radio(key="rel_target").set_value("predicted").run())
    ok(at.selectbox(key="rule").set_value("gamma").run())
    assert not at.error and _array(_figure(at, "attr_agree")["data"][0]["z"])[0, 3] < 1  # gamma is not Input x Gradient


def _array(values) -> np.ndarray:
    """A plotly figure's array as numpy: plotly writes numpy arrays as base64 ``bdata`` with a dtype and shape."""
    if not isinstance(values, dict):
        return np.asarray(values, dtype=float)
    flat = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    shape = [int(n) for n in str(values.get("shape", flat.size)).split(",")]
    return flat.reshape(shape)


def _figure(at: AppTest, key: str) -> dict:
    """The plotly figure (as a dict) of the chart with widget key ``key``."""
    import json

    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id)
    return json.loads(chart.proto.spec)


def _colours(fig: dict) -> set[str]:
    out = set()
    for trace in fig["data"]:
        for part in ("marker", "line"):
            colour = trace.get(part, {}).get("color")
            if isinstance(colour, str):
                out.add(colour.lower())
    return out


def test_relevance_keeps_red_and_blue_for_relevance_and_says_what_a_cell_is():
    at = open_page("relevance")
    red_blue = {"#c53030", "#2b6cb0", "red", "blue"}
    for key in ("shares", "overlap"):
        assert not _colours(_figure(at, key)) & red_blue, key  # layers and scorers drawn in greys
    scatter = _figure(at, "scatter")
    assert sum(1 for t in scatter["data"] if t.get("showlegend", True)) <= 2  # top 1% / other, not one per layer
    assert scatter["layout"]["coloraxis"]["colorscale"][0][1].lower() != "#053061"  # depth is not the RdBu scale
    shares = _figure(at, "shares")
    assert shares["data"][0]["orientation"] == "h" and shares["layout"]["legend"]["yanchor"] == "bottom"
    layer_map = _figure(at, "layer_map")
    assert layer_map["layout"]["xaxis"]["title"]["text"] and layer_map["layout"]["yaxis"]["title"]["text"]
    assert any(c.value.startswith("features.0, weight 6×1×5×5: one cell is one weight") for c in at.caption)
    ok(
        at.selectbox(key=next(k for k in at.session_state if str(k).startswith("rel_layer_")))
        .set_value("classifier.0")
        .run()
    )
    assert any("one cell is 2 outputs × 6 inputs, summed" in c.value for c in at.caption)  # 120×400, block-summed
    assert "blocks of 6" in _figure(at, "layer_map")["layout"]["xaxis"]["title"]["text"]


# ---------------------------------------------------------------- Model


def test_model_page_renders_layers_and_accuracy():
    at = open_page("model")
    assert percent(metric(at, "Clean accuracy (fp32)")) >= 95
    layers = at.dataframe[0].value
    assert list(layers["layer"]) == ["features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"]
    ok(at.selectbox(key="fmt").set_value("fp16").run())
    assert metric(at, "Weight memory (fp16)") == f"{layers['weights'].sum() * 2 / 1024:,.1f} KiB"


def test_model_page_offers_only_datasets_whose_files_are_here(tmp_path, monkeypatch):
    monkeypatch.setenv("XTMR_DATA", str(tmp_path))  # an empty data folder: mnist, fashion_mnist, cifar10 absent
    at = open_page("model")
    import ui

    # the absent ones are not offered; an image folder on the server always is (its path is typed on the page)
    assert at.selectbox(key="dataset").options == ["mnist5k", "digits", ui.FOLDER_ENTRY]
    captions = [c.value for c in at.caption if c.value.startswith("Unavailable here")]
    assert len(captions) == 1
    for name, folder in (
        ("mnist", "MNIST/raw"),
        ("fashion_mnist", "FashionMNIST/raw"),
        ("cifar10", "cifar-10-batches-py"),
    ):
        assert f"{name} (files go in {tmp_path / folder}/)" in captions[0]
    assert not at.error  # no red error, no traceback, on this page or any other
    # files put in place: the dataset is offered and the note no longer names it
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / (f + ".gz")).write_bytes(b"")
    ok(at.run())
    assert "mnist" in at.selectbox(key="dataset").options
    note = next(c.value for c in at.caption if c.value.startswith("Unavailable here"))
    assert not re.search(r"\bmnist \(files go in", note) and "fashion_mnist (files go in" in note


def test_model_upload_over_the_limit_says_so_on_the_page():
    import app_session

    at = open_page("model")
    ok(at.radio(key="weights_source").set_value("upload").run())
    uploader = at.get("file_uploader")[0]
    limit = app_session.MAX_UPLOAD_BYTES
    assert limit == 50_000_000 and "at most 50 MB" in uploader.proto.label
    # the browser lets a file somewhat over the limit through, so the app's message, not a tooltip, explains it
    assert uploader.proto.max_upload_size_mb * 1_000_000 > limit * 1.5
    at.file_uploader(key="upload").set_value(("big.pt", b"\0" * (limit + 1), "application/octet-stream"))
    ok(at.run())
    assert len(at.error) == 1 and "big.pt is 50.0 MB, over the 50 MB limit" in at.error[0].value


def _state_dict_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


# torch warns about the protocol of a plain pickle before refusing it; the app shows the refusal.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_model_upload_accepts_a_state_dict_and_explains_bad_files():
    from xtmr_core.checkpoints import load_model

    at = open_page("model")
    ok(at.radio(key="weights_source").set_value("upload").run())
    assert "No weights uploaded for lenet5" in at.info[0].value
    net, _ = load_model("lenet5", "mnist5k", device="cpu")
    good = _state_dict_bytes(net.state_dict())
    at.file_uploader(key="upload").set_value(("mine.pt", good, "application/octet-stream"))
    ok(at.run())
    assert not at.error
    assert "uploaded mine.pt" in at.subheader[-1].value
    assert re.match(r"\d+\.\d%", metric(at, "Clean accuracy"))
    bad = {
        "pickled code": _state_dict_bytes({"w": Evil()}),
        "old pickle format": pickle.dumps({"w": 1}),
        "not a checkpoint": b"hello",
        "misfit": _state_dict_bytes({"features.0.weight": torch.zeros(3, 3)}),
    }
    for name, data in bad.items():
        at.file_uploader(key="upload").set_value((f"{name}.pt", data, "application/octet-stream"))
        ok(at.run())
        assert len(at.error) == 1, name
        if name == "pickled code":
            assert "refused" in at.error[0].value
        assert "uploaded mine.pt" in at.subheader[-1].value  # a bad file never replaces the good one


def test_model_train_here_replaces_the_model_for_this_session():
    at = open_page("model")
    ok(at.selectbox(key="dataset").set_value("digits").run())
    ok(at.selectbox(key="model").set_value("mlp").run())
    ok(at.radio(key="weights_source").set_value("train").run())
    assert "No mlp trained here on digits" in at.info[0].value  # no shipped mlp on digits: it says so
    at.number_input(key="train_epochs").set_value(1)
    ok(at.button(key="train_submit").click().run())
    assert "trained here" in at.subheader[-1].value
    trained = metric(at, "Clean accuracy (fp32)")
    assert percent(trained) > 50  # one epoch on digits: far above chance (10%)
    assert at.get("download_button")
    ok(at.switch_page("pages/fault_lab.py").run())
    ok(at.select_slider(key="trials").set_value(2).run())
    assert metric(at, "Clean") == trained  # the Fault lab runs on the model trained here


# ---------------------------------------------------------------- the residual and depthwise models


@pytest.mark.slow  # LRP of a residual network on 256 reference images: tens of seconds per model
# Only the new architectures that ship weights: one without a checkpoint is covered by the "no shipped weights" tests.
@pytest.mark.parametrize(
    "model", [m for m in MODELS if m in ("resnet20", "mobilenetv2") and shipped_checkpoint(m, "mnist5k") is not None]
)
def test_new_models_render_on_every_page(model):
    at = open_page("model")
    ok(at.selectbox(key="model").set_value(model).run())
    assert not at.error and f"{model} on mnist5k (shipped checkpoint)" in at.subheader[-1].value
    layers = next(d.value for d in at.dataframe if "weight shape" in d.value.columns)
    assert len(layers) > 15 and metric(at, "Clean accuracy (fp32)").endswith("%")
    ok(at.switch_page("pages/relevance.py").run())
    assert not at.error and len(_figure(at, "shares")["data"][0]["y"]) == len(layers)
    key = next(k for k in at.session_state if str(k).startswith("rel_layer_"))
    kinds = dict(zip(layers["layer"], layers["type"]))
    for kind in ("depthwise conv 3×3", "conv 1×1", "conv 3×3", "linear"):  # every shape the model has
        layer = next((n for n, k in kinds.items() if k == kind), None)
        if layer is not None:
            ok(at.selectbox(key=key).set_value(layer).run())
            assert not at.error and any(c.value.startswith(f"{layer}, weight") for c in at.caption)
    ok(at.switch_page("pages/fault_lab.py").run())
    ok(at.select_slider(key="trials").set_value(5).run())
    ok(at.selectbox(key="fmt").set_value("int8").run())
    ok(at.select_slider(key="ber").set_value(1e-2).run())
    clean, unprotected = percent(metric(at, "Clean")), percent(metric(at, "Unprotected"))
    assert not at.error and clean > 90 and unprotected < clean - 5  # int8 at 1e-2 costs both models points
    assert percent(metric(at, "With lrp 1%")) > unprotected  # the paired verdict the report gives at this point
    ok(at.switch_page("pages/sweeps.py").run())
    ok(at.select_slider(key="sw_trials").set_value(2).run())
    ok(at.multiselect(key="swb_plans").set_value(["lrp"]).run())
    ok(at.select_slider(key="swb_bers").set_value((1e-4, 1e-4)).run())
    ok(at.button(key="swb_run").click().run())
    assert not at.error and len(at.session_state["swb_table"]) == 2
