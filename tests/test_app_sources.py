"""The app on models and data from outside the zoo: a torchvision architecture with an uploaded state dict, an
image folder on the server, the new builtin architectures with their shipped weights, and never user code."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import metric
from streamlit.testing.v1 import AppTest

import ui

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 180
#: A small torchvision network (0.7 M weights, 2.9 MB state dict), so each test stays well under 20 s.
ARCH = "squeezenet1_1"
COLOURS = ((220, 30, 30), (30, 200, 40), (30, 40, 220))


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_page(page: str) -> AppTest:
    at = ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    return ok(at.switch_page(f"pages/{page}.py").run())


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """3 classes × 8 PNGs of 32×32, each class its own colour with a little noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for c, colour in enumerate(COLOURS):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(8):
            pixels = np.clip(np.asarray(colour)[None, None, :] + rng.integers(-20, 20, (32, 32, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / f"class{c}" / f"{i}.png")
    return root


def state_dict_bytes(ref: str, in_shape=(3, 32, 32), classes: int = 3) -> bytes:
    from xtmr_core.model_source import build_from_source

    buf = io.BytesIO()
    torch.save(build_from_source(ref, in_shape, classes).state_dict(), buf)
    return buf.getvalue()


def choose_folder(at: AppTest, folder: Path) -> AppTest:
    ok(at.selectbox(key="dataset").set_value(ui.FOLDER_ENTRY).run())
    assert any("PATH/<class>/<image>" in c.value for c in at.caption)  # the caption says what layout is expected
    return ok(at.text_input(key="folder_path").set_value(str(folder)).run())


def choose_torchvision(at: AppTest, arch: str = ARCH) -> AppTest:
    ok(at.selectbox(key="model").set_value(ui.TORCHVISION_ENTRY).run())
    assert at.selectbox(key="tv_arch").value == "resnet18"  # the default
    assert len(at.selectbox(key="tv_arch").options) > 50
    return ok(at.selectbox(key="tv_arch").set_value(arch).run())


def test_torchvision_architecture_with_an_uploaded_state_dict_on_an_image_folder(image_folder):
    at = open_page("model")
    choose_torchvision(at)
    choose_folder(at, image_folder)
    assert any("3 classes, 24 images" in c.value and "18 train, 6 test" in c.value for c in at.caption)
    # no weights ship for a torchvision model: one line says what to do
    assert len(at.error) == 1 and at.error[0].value.startswith(f"no shipped weights for torchvision:{ARCH}")
    ok(at.radio(key="weights_source").set_value("upload").run())
    assert f"No weights uploaded for torchvision:{ARCH} on an image folder" in at.info[0].value
    at.file_uploader(key="upload").set_value(("mine.pt", state_dict_bytes(f"torchvision:{ARCH}"), "x"))
    ok(at.run())
    assert not at.error, [e.value for e in at.error]
    assert f"torchvision:{ARCH} on imagefolder:{image_folder} (uploaded mine.pt)" in at.subheader[-1].value
    assert re.fullmatch(r"\d{1,3}\.\d%", metric(at, "Clean accuracy (fp32)"))
    assert metric(at, "Test images") == "6"
    layers = next(d.value for d in at.dataframe if "weight shape" in d.value.columns)
    assert len(layers) == 26  # squeezenet1_1: 26 convolutions
    # the same choice on the other pages: they render, and what needs LRP says in one line why it cannot run
    ok(at.switch_page("pages/relevance.py").run())
    assert len(at.error) <= 1 and at.get("plotly_chart")  # the test images and the scorer overlap still draw
    ok(at.switch_page("pages/fault_lab.py").run())
    ok(at.select_slider(key="trials").set_value(2).run())
    if at.error:  # untrained weights: LRP finds too few correct reference images, and says which plans still run
        assert len(at.error) == 1 and any("magnitude, random" in i.value for i in at.info)
    ok(at.selectbox(key="protect").set_value("magnitude").run())
    assert not at.error, [e.value for e in at.error]
    assert re.fullmatch(r"\d{1,3}\.\d+%", metric(at, "Clean"))
    ok(at.switch_page("pages/sweeps.py").run())


def test_a_missing_image_folder_says_so_in_one_line(tmp_path):
    at = open_page("model")
    choose_folder(at, tmp_path / "nowhere")
    assert len(at.error) == 1 and "not found" in at.error[0].value and "\n" not in at.error[0].value
    empty = tmp_path / "empty"
    empty.mkdir()
    ok(at.text_input(key="folder_path").set_value(str(empty)).run())
    assert len(at.error) == 1 and "class sub-folders" in at.error[0].value
    for page in ("relevance", "fault_lab", "sweeps"):  # the other pages explain instead of failing
        ok(at.switch_page(f"pages/{page}.py").run())
        assert at.error


def test_an_image_folder_path_that_cannot_work_says_why_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "photo.png").write_bytes(b"")
    (tmp_path / "bare" / "cats").mkdir(parents=True)
    (tmp_path / "bare" / "dogs").mkdir()
    monkeypatch.chdir(tmp_path)
    at = open_page("model")
    cases = {
        str(tmp_path / "photo.png"): "is a file, not a folder",
        str(tmp_path / "bare"): "class sub-folders of " + str(tmp_path / "bare") + " (cats, dogs) hold no files",
        "photos": f"not found in the server's working folder {tmp_path} (give an absolute path)",
    }
    ok(at.selectbox(key="dataset").set_value(ui.FOLDER_ENTRY).run())
    for path, says in cases.items():
        ok(at.text_input(key="folder_path").set_value(path).run())
        assert len(at.error) == 1 and says in at.error[0].value and "\n" not in at.error[0].value, at.error


def test_an_image_folder_trains_here_with_a_builtin_model(image_folder):
    at = open_page("model")
    choose_folder(at, image_folder)
    ok(at.selectbox(key="folder_norm").set_value("dataset").run())
    ok(at.selectbox(key="model").set_value("mlp").run())
    assert at.error and "no shipped weights for mlp on an image folder" in at.error[0].value
    ok(at.radio(key="weights_source").set_value("train").run())
    at.number_input(key="train_epochs").set_value(3)
    ok(at.button(key="train_submit").click().run())
    assert not at.error, [e.value for e in at.error]
    assert "trained here" in at.subheader[-1].value and f"imagefolder:{image_folder}" in at.subheader[-1].value
    trained = metric(at, "Clean accuracy (fp32)")
    ok(at.switch_page("pages/fault_lab.py").run())
    ok(at.select_slider(key="trials").set_value(2).run())
    assert metric(at, "Clean") == trained
    ok(at.select_slider(key="ber").set_value(1e-2).run())  # wrecks predictions: RGB images of normalised data
    ok(at.switch_page("pages/relevance.py").run())
    assert not at.exception
    # relevance is summed over the images the folder can give (at most half its 18 training images), not "256"
    assert not at.error, [e.value for e in at.error]
    intro = next(c.value for c in at.caption if c.value.startswith("LRP sends"))
    assert "summed over 9 correctly classified training images" in intro, intro


@pytest.mark.parametrize("model", ["resnet20", "mobilenetv2"])
def test_new_builtin_models_render_with_shipped_weights(model):
    at = open_page("model")
    ok(at.selectbox(key="model").set_value(model).run())
    assert not at.error and f"{model} on mnist5k (shipped checkpoint)" in at.subheader[-1].value
    assert float(metric(at, "Clean accuracy (fp32)").rstrip("%")) > 90


# ---------------------------------------------------------------- never user code


def test_the_app_source_never_allows_code():
    app = [ROOT / "app_state.py", ROOT / "app_session.py", ROOT / "ui.py"]
    for path in [*app, *(ROOT / "pages").glob("*.py"), *(ROOT / "app_views").glob("*.py")]:
        text = path.read_text()
        assert "allow_code" not in text, f"{path.name} mentions allow_code"
        assert "importlib" not in text and "exec(" not in text and "__import__" not in text, path.name


def test_a_link_cannot_choose_user_code_or_a_folder():
    assert not {"folder_path", "tv_arch"} & set(ui.URL_SETTINGS.values())
    for bad in ("evil.py:build", "os:system", "torchvision:resnet18", ui.TORCHVISION_ENTRY):
        values, notes = ui.read_link({"model": bad})
        assert values == {"model": "lenet5"} and len(notes) == 1  # refused, and said
    for bad in ("imagefolder:/etc", ui.FOLDER_ENTRY, "folder"):
        values, notes = ui.read_link({"dataset": bad})
        assert values == {"dataset": "mnist5k"} and len(notes) == 1
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["model"] = "evil.py:build"
    at.query_params["dataset"] = "imagefolder:/etc"
    at.query_params["folder_path"] = "/etc"
    ok(at.run())
    assert at.session_state["model"] == "lenet5" and at.session_state["dataset"] == "mnist5k"
    assert "folder_path" not in at.session_state
    note = next(w.value for w in at.warning if "This link's" in w.value)
    assert "`model=evil.py:build` is not a built-in model: using lenet5" in note
    assert "`dataset=imagefolder:/etc` is not a built-in dataset: using mnist5k" in note


def test_user_code_in_the_session_settings_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('x')\ndef build(**kw):\n    raise SystemExit\n")
    for page in (None, "model", "relevance", "fault_lab"):
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.session_state["model"] = f"{evil}:build"
        ok(at.run())  # Home explains in one line and runs nothing
        assert at.error and not marker.exists()
        if page:
            ok(at.switch_page(f"pages/{page}.py").run())
            assert at.error and not marker.exists(), page  # the Model page falls back to a builtin name
    # the torchvision selector only offers torchvision's own names
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["model"] = ui.TORCHVISION_ENTRY
    at.session_state["tv_arch"] = f"{evil}:build"
    ok(at.run())
    assert at.error and not marker.exists()
    ok(at.switch_page("pages/model.py").run())
    assert not marker.exists() and at.selectbox(key="tv_arch").value == "resnet18"
