"""The app's entry point and shared state, with Streamlit's AppTest: Home, navigation, sessions sharing one model."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import metric
from streamlit.testing.v1 import AppTest

import app_session
import app_state
import ui
from xtmr_core.spec import CampaignSpec
from xtmr_core.vocabulary import FORMATS

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 180  # the first run loads data and computes LRP scores on a shared 2-core machine


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    if page:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def shared_experiment():
    return app_state.experiment(app_session.shipped_choice("lenet5", "mnist5k"))


def test_home_shows_the_model_card_and_links():
    at = open_app()
    assert at.title[0].value.startswith("xtmr")
    assert metric(at, "Model") == "lenet5" and metric(at, "Dataset") == "mnist5k" and metric(at, "Format") == "fp32"
    exp = shared_experiment()
    assert metric(at, "Clean accuracy") == ui.pct(exp.clean_accuracy("fp32"))
    assert metric(at, "Weights") == f"{exp.n_weights:,}"
    assert metric(at, "Weight memory") == f"{exp.n_weights * 4 / 1024:,.1f} KiB"
    assert "shipped checkpoint" in at.sidebar.caption[0].value


def test_format_chosen_on_one_page_is_kept_across_pages():
    at = open_app("model")
    at.selectbox(key="fmt").set_value("int8").run()
    assert not at.exception
    at.switch_page("pages/fault_lab.py").run()
    assert at.selectbox(key="fmt").value == "int8"
    assert metric(at, "Extra memory") == "2.00%"  # an overhead in int8 words, live
    at.select_slider(key="trials").set_value(2).run()
    assert not at.exception and not at.error


def test_two_sessions_share_one_clean_model_and_do_not_disturb_each_other():
    exp = shared_experiment()
    before = exp.weights_checksum()
    a, b = open_app("fault_lab"), open_app("fault_lab")
    for at in (a, b):
        at.select_slider(key="trials").set_value(2).run()
    a.select_slider(key="ber").set_value(1e-2).run()  # heavy faults in session A
    b.select_slider(key="ber").set_value(1e-4).run()
    shown_b = metric(b, "Unprotected")
    a.selectbox(key="protect").set_value("none").run()
    b.run()
    assert metric(b, "Unprotected") == shown_b, "session B's result changed when session A injected faults"
    assert a.select_slider(key="ber").value == 1e-2 and b.select_slider(key="ber").value == 1e-4
    assert metric(a, "Clean") == metric(b, "Clean")
    assert exp.weights_checksum() == before
    assert all(exp.injector(fmt).is_clean() for fmt in FORMATS)


def test_a_session_renders_the_same_numbers_while_another_thread_injects():
    exp = shared_experiment()
    before = exp.weights_checksum()
    quiet = open_app("fault_lab")
    quiet.select_slider(key="trials").set_value(5).run()
    quiet.select_slider(key="ber").set_value(2e-5).run()
    expected = (metric(quiet, "Unprotected"), metric(quiet, "With"))
    stop = threading.Event()
    errors: list[BaseException] = []

    def hammer():
        try:
            seed = 100
            while not stop.is_set():
                exp.evaluate(CampaignSpec("none", 0.0, 1e-2, "fp32", trials=1, seed=seed))
                seed += 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=hammer, daemon=True)
    t.start()
    try:
        busy = open_app("fault_lab")
        busy.select_slider(key="trials").set_value(5).run()
        busy.select_slider(key="ber").set_value(2e-5).run()
        busy.selectbox(key="protect").set_value("magnitude").run()  # not cached yet: computed under contention
        busy.selectbox(key="protect").set_value("lrp").run()
    finally:
        stop.set()
        t.join(timeout=60)
    assert not errors, errors
    assert (metric(busy, "Unprotected"), metric(busy, "With")) == expected
    assert exp.weights_checksum() == before
    assert all(exp.injector(fmt).is_clean() for fmt in FORMATS)


def test_ber_grid_and_labels():
    assert ui.BER_VALUES[0] == 1e-7 and ui.BER_VALUES[-1] == 1e-2
    assert list(ui.BER_VALUES) == sorted(ui.BER_VALUES)
    assert ui.fmt_ber(1e-5) == "1e-5" and ui.fmt_ber(2e-7) == "2e-7"
    assert 1.0 in ui.BUDGET_VALUES and ui.BUDGET_VALUES[0] == 0 and ui.BUDGET_VALUES[-1] == 100
    assert ui.pct(0.9712) == "97.1%" and ui.pct(float("nan")) == "–"


# Absent datasets are not offered at all (test_pages.py::test_model_page_offers_only_datasets_whose_files_are_here).
@pytest.mark.parametrize("model,dataset", [("lenet5", "digits"), ("vgg16", "digits")])
def test_unavailable_data_or_checkpoint_explains_itself(model, dataset, monkeypatch, tmp_path):
    monkeypatch.setenv("XTMR_DATA", str(tmp_path))  # nothing downloaded there
    at = open_app("model")
    at.selectbox(key="dataset").set_value(dataset).run()
    at.selectbox(key="model").set_value(model).run()
    assert not at.exception
    assert at.error and ("not found" in at.error[0].value or "No weights are shipped" in at.error[0].value)
    for page in ("relevance", "fault_lab", "sweeps"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception and at.error


def _open_link(params: dict, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_bad_link_value_says_on_the_page_what_was_used_until_the_setting_changes():
    at = _open_link({"ber": "3e-4", "model": "evil"}, "fault_lab")
    notes = [w.value for w in at.warning if "This link's" in w.value]
    assert len(notes) == 1
    assert notes[0].split("  \n") == [
        "This link's `model=evil` is not a built-in model: using lenet5.",
        "This link's `ber=3e-4` is not a slider stop: using 2e-4, the nearest.",
    ]
    assert at.select_slider(key="ber").value == 2e-4 and at.session_state["model"] == "lenet5"
    at.select_slider(key="trials").set_value(2).run()
    assert len([w for w in at.warning if "This link's" in w.value]) == 1  # still what the link asked for
    at.select_slider(key="ber").set_value(1e-4).run()
    notes = [w.value for w in at.warning if "This link's" in w.value]
    assert notes == ["This link's `model=evil` is not a built-in model: using lenet5."]  # the BER moved on


def test_a_link_to_every_fault_lab_setting_sets_every_widget():
    link = {"plan": "bits", "ber": "2e-4", "trials": "2", "format": "int8", "guard": "1", "fault": "stuck0"}
    at = _open_link({**link, "fail_bits": "6-7", "bits": "5,6", "seed": "7", "rule": "gamma"}, "fault_lab")
    assert not [w for w in at.warning if "This link's" in w.value]
    assert at.selectbox(key="protect").value == "bits" and at.select_slider(key="ber").value == 2e-4
    assert at.select_slider(key="trials").value == 2 and at.selectbox(key="fmt").value == "int8"
    assert at.toggle(key="guard").value is True and at.selectbox(key="mode").value == "stuck0"
    assert at.text_input(key="fault_bits_int8").value == "6-7" and at.text_input(key="bits_int8").value == "5,6"
    assert at.number_input(key="seed").value == 7 and at.selectbox(key="rule").value == "gamma"
    assert any(m.label == "With bits 5,6 +range" for m in at.metric), [m.label for m in at.metric]
    assert "(now: stuck0 faults, failing bits 6-7, seed 7, rule gamma)" in at.expander[0].label
