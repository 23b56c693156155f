"""End to end in a real browser: `streamlit run app.py`, headless Chromium drives the app.

Needs Debian's Chromium (``make browser`` installs it). Without it the tests are skipped, unless
``XTMR_REQUIRE_BROWSER=1`` (CI), where they fail. One server serves every test of this module. They check what a
lecture hall and an engineer's desk need:

* a fresh server answers the first request at once, through the app's own top navigation (no legacy page list);
* a BER step streams: the first estimate, then the full campaign; the latencies are measured and written to
  ``test-artifacts/fault_lab_latency.json`` (reported, not asserted: they depend on the machine's load);
* a link carries every Fault lab setting that changes a number: set them all, open the link in a new browser
  context, find the same numbers; a model a link cannot carry (trained on a server folder) is named on both ends;
* bad or off-grid link values each get one line naming the value and what was used instead;
* at 1440×900, 1024×768 and 1280×720 at 150% zoom (a projector) no metric value is cut on any page, and on the
  Fault lab the sliders, the numbers and the chart share the first screen; screenshots go to ``test-artifacts/``
  (``XTMR_SCREENSHOT_DIR=docs/screenshots`` also copies the Fault lab's 1440×900 one there for the README).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.app_server import CHROMIUM_ARGS, free_port

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
STARTUP_S = 180  # server start, data loading and the first LRP scoring on a shared CPU
UPDATE_S = 300  # a slider step on a loaded shared machine can take minutes
#: (name, CSS viewport width, height, device scale): 1280×720 at 150% zoom is a 853×480 CSS viewport.
SIZES = (("1440x900", 1440, 900, 1.0), ("1024x768", 1024, 768, 1.0), ("1280x720_150pct", 853, 480, 1.5))
LIVE = "[class*='st-key-live_']"
HEAD_VALUES = "[class*='st-key-head_'] [data-testid='stMetricValue'] > div"
ALL_VALUES = "[data-testid='stMetricValue'] > div"


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"streamlit did not answer within {STARTUP_S} s:\n{log.read_text()[-3000:]}")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "chromium not found; install it with `make browser` (apt-get install chromium)"
    if os.environ.get("XTMR_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (XTMR_REQUIRE_BROWSER=1 demands the browser test)")
    pytest.skip(reason)


def _step(page, key: str, expect: str) -> tuple[float, float]:
    """Press ``key`` on the focused slider; seconds until the first number of the new setting, and until the
    full campaign's (the live numbers say ``BER x · N + M trials`` once final, ``estimate`` before)."""
    t0 = time.perf_counter()
    page.keyboard.press(key)
    page.locator(LIVE, has_text=f"BER {expect} ·").first.wait_for(timeout=UPDATE_S * 1000)
    first = time.perf_counter() - t0
    page.locator(LIVE, has_text=f"BER {expect} ·").filter(has_not_text="estimate").first.wait_for(
        timeout=UPDATE_S * 1000
    )
    return first, time.perf_counter() - t0


def _latencies(page, url: str, model: str) -> dict:
    page.goto(f"{url}/fault_lab?model={model}", timeout=STARTUP_S * 1000)
    page.locator(LIVE, has_text="BER 1e-5 ·").filter(has_not_text="estimate").first.wait_for(timeout=STARTUP_S * 1000)
    slider = page.get_by_role("slider", name="Bit error rate (BER)")
    slider.focus()
    firsts, fulls = [], []
    for ber in ("2e-5", "5e-5", "1e-4"):  # each step: two new campaigns (the plan and its baseline)
        first, full = _step(page, "ArrowRight", ber)
        firsts.append(first)
        fulls.append(full)
    return {
        "first_number_s": [round(v, 3) for v in firsts],
        "full_campaign_s": [round(v, 3) for v in fulls],
        "first_number_median_s": round(statistics.median(firsts), 3),
        "full_campaign_median_s": round(statistics.median(fulls), 3),
    }


def _layout(page, name: str) -> dict:
    """Screenshot, and check that headline numbers fit their boxes and share the first screen with the sliders."""
    page.locator(LIVE, has_text="trials").filter(has_not_text="estimate").first.wait_for(timeout=UPDATE_S * 1000)
    page.mouse.move(0, 0)
    _idle(page)  # every chart drawn (a fresh page loads plotly after the numbers)
    page.wait_for_timeout(800)  # let the charts settle before the picture
    page.screenshot(path=str(ARTIFACTS / f"fault_lab_{name}.png"), full_page=False)
    truncated = [
        (el.inner_text(), *el.evaluate("e => [e.scrollWidth, e.clientWidth]")) for el in page.locator(ALL_VALUES).all()
    ]
    truncated = [t for t in truncated if t[1] > t[2]]
    height = page.viewport_size["height"]
    boxes = {
        "ber_slider": page.get_by_role("slider", name="Bit error rate (BER)").bounding_box(),
        "numbers": page.locator(HEAD_VALUES).last.bounding_box(),
        "chart": page.locator("[class*='st-key-chart_']").first.bounding_box(),
    }
    in_view = {k: b is not None and b["y"] >= 0 and b["y"] + min(b["height"], 80) <= height for k, b in boxes.items()}
    # reported, not asserted: where the verdict sentence starts (below the first screen on a projector)
    verdict = page.locator("[data-testid='stMarkdownContainer']", has_text=re.compile(r"over \d+ trials")).first
    box = verdict.bounding_box() if verdict.count() else None
    return {"truncated": truncated, "in_first_screen": in_view, "verdict_top_px": box and round(box["y"])}


#: How many placeholders (of elements the browser has not drawn yet, e.g. a chart) are on screen.
SKELETONS = """() => [...document.querySelectorAll("[data-testid='stSkeleton'], [data-testid='stSkeletonElement']")]
    .filter(e => e.offsetParent !== null).length"""


def _idle(page, settle: float = 1.5) -> None:
    """Wait until no script run has been in flight and nothing waited to be drawn for ``settle`` seconds: Streamlit
    marks the app root ``data-test-script-state=running`` while a run is in flight (its status widget is not shown
    with the minimal toolbar), and shows a placeholder where an element is still loading."""
    deadline, quiet = time.monotonic() + UPDATE_S, None
    while time.monotonic() < deadline:
        state = page.locator("[data-testid='stApp']").first.get_attribute("data-test-script-state")
        if state in ("running", "rerunRequested", "initial", None) or page.evaluate(SKELETONS):
            quiet = None
        elif quiet is None:
            quiet = time.monotonic()
        elif time.monotonic() - quiet > settle:
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"the app was still running after {UPDATE_S} s")


def _choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (again if a rerun redrew the box and closed its list)."""
    box = page.locator("[data-testid='stSelectbox']").filter(has=page.get_by_text(label, exact=True)).first
    for attempt in range(3):
        box.locator("[role='combobox'], input, div[data-baseweb='select']").first.click()
        choice = page.get_by_role("option", name=option, exact=True).first
        try:
            choice.wait_for(timeout=10_000)
            choice.click()
            return
        except Exception:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
            _idle(page)


def _settings_kept_across_pages(page) -> bool:
    """Settings chosen by widgets on two pages survive the top links between them: Model page resnet20, Fault lab
    int8 at BER 1e-2, back to the Model page in int8. (A reproduction script once saw the format fall back to fp32
    on this path, on a fresh server; this test's flow did not trigger that loss on the old code.)"""
    page.locator("header").get_by_role("link", name="Model", exact=True).first.click()
    _choose(page, "Architecture", "resnet20")
    page.get_by_text("resnet20 on mnist5k").first.wait_for(timeout=UPDATE_S * 1000)
    _idle(page)
    page.locator("header").get_by_role("link", name="Fault lab", exact=True).first.click()
    page.locator(LIVE, has_text="BER 1e-5 ·").filter(has_not_text="estimate").first.wait_for(timeout=UPDATE_S * 1000)
    _idle(page)
    _choose(page, "Number format", "int8")
    _idle(page)
    page.get_by_role("slider", name="Bit error rate (BER)").focus()
    _step(page, "End", "1e-2")
    _idle(page)
    page.wait_for_timeout(5000)  # a reader looking at the numbers before moving on
    page.locator("header").get_by_role("link", name="Model", exact=True).first.click()
    page.get_by_text("resnet20 on mnist5k").first.wait_for(timeout=UPDATE_S * 1000)
    page.wait_for_timeout(2000)  # let the page's reruns settle
    return page.get_by_text("Clean accuracy (int8)").count() > 0 and "format=int8" in _query(page)


@pytest.fixture(scope="module")
def app_url():
    """A fresh ``streamlit run app.py`` on 127.0.0.1 for this module's tests; its log in ``test-artifacts/``."""
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "streamlit.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1"]
    cmd += ["--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (skipped without it, unless ``XTMR_REQUIRE_BROWSER=1``)."""
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.mark.slow
def test_fault_lab_in_a_real_browser(app_url, browser):
    url = app_url
    report: dict = {}
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    # A fresh server's first request, straight to a page: something shows at once, through the app's top
    # navigation, and the legacy page list never appears.
    t0 = time.perf_counter()
    page.goto(url + "/fault_lab", timeout=STARTUP_S * 1000)
    page.locator("header").get_by_text("Fault lab").first.wait_for(timeout=STARTUP_S * 1000)
    report["first_paint_s"] = round(time.perf_counter() - t0, 3)
    assert page.locator("[data-testid='stSidebarNav']").count() == 0
    page.locator(LIVE, has_text="BER 1e-5 ·").filter(has_not_text="estimate").first.wait_for(timeout=STARTUP_S * 1000)
    report["first_result_s"] = round(time.perf_counter() - t0, 3)
    report["settings_kept_across_pages"] = _settings_kept_across_pages(page)

    report["lenet5"] = _latencies(page, url, "lenet5")
    # the settings are in the URL and come back on reload
    assert "ber=1e-4" in _query(page), _query(page)
    page.reload()
    slider = page.get_by_role("slider", name="Bit error rate (BER)")
    slider.wait_for(timeout=STARTUP_S * 1000)
    assert slider.get_attribute("aria-valuetext") == "1e-4"
    page.locator(LIVE, has_text="BER 1e-4 ·").filter(has_not_text="estimate").first.wait_for(timeout=UPDATE_S * 1000)
    # a cached setting answers at once
    slider.focus()
    t0 = time.perf_counter()
    page.keyboard.press("ArrowLeft")
    page.locator(LIVE, has_text="BER 5e-5 ·").filter(has_not_text="estimate").first.wait_for(timeout=UPDATE_S * 1000)
    report["lenet5"]["cached_step_s"] = round(time.perf_counter() - t0, 3)
    report["vgg16"] = _latencies(page, url, "vgg16")
    page.close()

    for name, width, height, scale in SIZES:
        page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
        page.goto(url + "/fault_lab", timeout=STARTUP_S * 1000)
        report[name] = _layout(page, name)
        page.close()
    (ARTIFACTS / "fault_lab_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    print("Fault lab in the browser:", json.dumps(report))
    if os.environ.get("XTMR_SCREENSHOT_DIR"):
        dest = Path(os.environ["XTMR_SCREENSHOT_DIR"])
        dest = dest if dest.is_absolute() else ROOT / dest
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / "fault_lab_1440x900.png", dest / "fault_lab.png")
    assert report["settings_kept_across_pages"], "the Model page lost the format or BER set on the Fault lab"
    for name, *_ in SIZES:
        assert not report[name]["truncated"], (name, report[name]["truncated"])
        assert all(report[name]["in_first_screen"].values()), (name, report[name]["in_first_screen"])


# ---------------------------------------------------------------- links


def _query(page) -> str:
    """The address bar's query string as the browser holds it now (``page.url`` may lag behind pushState)."""
    return page.evaluate("location.search")


#: The Fault lab's numbers: the headline and small metrics (label and value) and the paired line.
NUMBERS = "[class*='st-key-head_'], [class*='st-key-small_clean_'], [class*='st-key-small_copies_'], " + (
    "[class*='st-key-small_index_']"
)


def _final(page, ber: str) -> list[str]:
    """The Fault lab's numbers once every trial at ``ber`` has run and the page is idle: the trial caption, each
    headline and small metric, the paired line."""
    page.locator(LIVE, has_text=f"BER {ber} ·").filter(has_not_text="estimate").first.wait_for(timeout=UPDATE_S * 1000)
    _idle(page)
    live = page.locator(LIVE).last
    caption = live.get_by_text(f"BER {ber} ·").first.inner_text()
    paired = live.get_by_text("Paired:").all_inner_texts()
    return [caption, *(m.strip() for m in live.locator(NUMBERS).all_inner_texts()), *paired]


def _press(page, slider: str, key: str, times: int) -> None:
    page.get_by_role("slider", name=slider).focus()
    for _ in range(times):
        page.keyboard.press(key)
    _idle(page)


def _type(page, label: str, text: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(text)
    box.press("Enter")
    _idle(page)


def _set_every_fault_lab_control(page) -> None:
    """Every Fault lab setting that changes a number, off its default (few trials first and the damage plan last,
    so each step reruns a cheap point)."""
    _press(page, "Trials (at most)", "ArrowLeft", 1)  # 10 -> 5
    _choose(page, "Number format", "fp16")
    _idle(page)
    page.get_by_text("More fault options", exact=False).first.click()
    page.get_by_label("Seed", exact=True).wait_for(timeout=UPDATE_S * 1000)
    _choose(page, "LRP rule", "gamma")
    _idle(page)
    _choose(page, "Fault type", "stuck1")
    _idle(page)
    _type(page, "Only these bit positions fail", "10-14")
    _type(page, "Seed", "7")
    page.get_by_text("+ range guard on read", exact=True).click()
    _idle(page)
    _press(page, "Bit error rate (BER)", "ArrowRight", 4)  # 1e-5 -> 2e-4
    _press(page, "Protection budget (% of weights)", "ArrowRight", 2)  # 1% -> 2%
    _choose(page, "Protection plan", "damage: top (weight, bit) pairs by LRP × |Δw| (budget = % extra memory)")
    _idle(page)


EVERY_SETTING = {
    "plan": "damage",
    "budget": "2",
    "ber": "2e-4",
    "trials": "5",
    "format": "fp16",
    "guard": "1",
    "fault": "stuck1",
    "fail_bits": "10-14",
    "seed": "7",
    "rule": "gamma",
}


@pytest.mark.slow
def test_a_link_carries_every_fault_lab_setting(app_url, browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    page.goto(app_url + "/fault_lab", timeout=STARTUP_S * 1000)
    default = _final(page, "1e-5")
    _set_every_fault_lab_control(page)
    shown = _final(page, "2e-4")
    assert shown != default and "5 of 5 trials" in shown[0] and len(shown) == 7, shown
    assert any(m.startswith("With damage 2% +range") for m in shown), shown
    query = _query(page)
    assert all(f"{k}={v}" in query for k, v in EVERY_SETTING.items()), query
    link = app_url + "/fault_lab" + query
    page.screenshot(path=str(ARTIFACTS / "link_sender.png"))
    ctx.close()

    fresh = browser.new_context(viewport={"width": 1440, "height": 900})  # another browser: no session shared
    page = fresh.new_page()
    page.goto(link, timeout=STARTUP_S * 1000)
    assert _final(page, "2e-4") == shown
    assert page.get_by_text("(now: stuck1 faults, failing bits 10-14, seed 7, rule gamma)").count() == 1
    assert page.get_by_text("This link's").count() == 0  # nothing fell back
    page.screenshot(path=str(ARTIFACTS / "link_receiver.png"))
    fresh.close()


def _image_folder(root: Path) -> Path:
    """3 classes × 8 PNGs of 32×32, each class its own colour with a little noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, colour in enumerate(((220, 30, 30), (30, 200, 40), (30, 40, 220))):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(8):
            pixels = np.clip(np.asarray(colour)[None, None, :] + rng.integers(-20, 20, (32, 32, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / f"class{c}" / f"{i}.png")
    return root


@pytest.mark.slow
def test_a_link_says_what_it_cannot_carry_on_both_ends(app_url, browser, tmp_path):
    folder = _image_folder(tmp_path / "photos")
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    page.goto(app_url + "/model", timeout=STARTUP_S * 1000)
    page.get_by_text("Test images").first.wait_for(timeout=STARTUP_S * 1000)
    _choose(page, "Dataset", "Image folder on this server…")
    _idle(page)
    _type(page, "Folder on this server", str(folder))
    page.get_by_text("3 classes, 24 images").wait_for(timeout=UPDATE_S * 1000)
    page.get_by_test_id("stRadioGroup").get_by_text("Train one here", exact=True).click()
    _idle(page)
    page.get_by_role("button", name="Train").click()
    page.get_by_text("(trained here)").first.wait_for(timeout=UPDATE_S * 1000)
    _idle(page)
    gap = "This page's link does not carry the weights (trained here) and the image folder on this server"
    assert page.get_by_text(gap).count() == 1
    page.locator("header").get_by_role("link", name="Fault lab", exact=True).first.click()
    page.get_by_text(gap).wait_for(timeout=UPDATE_S * 1000)
    _idle(page)
    # two epochs on 24 images classify too few reference images for LRP: a plan that needs none
    _choose(page, "Protection plan", "magnitude: top budget% by |w|")
    _final(page, "1e-5")
    assert page.get_by_text(gap).count() == 1
    query = _query(page)
    assert "dataset=folder" in query and "weights=trained" in query and "photos" not in query, query
    page.screenshot(path=str(ARTIFACTS / "link_gap_sender.png"))
    ctx.close()

    fresh = browser.new_context(viewport={"width": 1440, "height": 900})
    page = fresh.new_page()
    page.goto(app_url + "/fault_lab" + query, timeout=STARTUP_S * 1000)
    _final(page, "1e-5")  # magnitude 1% on lenet5 on mnist5k, with its shipped weights
    note = page.locator("[data-testid='stAlert']", has_text="This link's").inner_text()
    assert "`dataset=folder`" not in note  # code spans render as code, not back-ticks
    assert "dataset=folder is an image folder on the server, which a link never names: using mnist5k" in note, note
    assert "weights=trained: those weights were trained in another session" in note, note
    assert "using the shipped checkpoint" in note
    page.screenshot(path=str(ARTIFACTS / "link_gap_receiver.png"))
    fresh.close()


@pytest.mark.slow
def test_bad_link_values_say_what_was_used_instead(app_url, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    bad = "ber=3e-4&budget=2.5&trials=30&model=evil&seed=abc&guard=maybe&fault=stuck2&rule=zz"
    page.goto(f"{app_url}/fault_lab?{bad}", timeout=STARTUP_S * 1000)
    _final(page, "2e-4")
    note = page.locator("[data-testid='stAlert']", has_text="This link's").inner_text()
    lines = [line for line in note.splitlines() if line.startswith("This link's")]
    assert len(lines) == 8, lines  # one line per bad value
    for expected in (
        "ber=3e-4 is not a slider stop: using 2e-4, the nearest",
        "budget=2.5 is not a slider stop: using 3%, the nearest",
        "trials=30 is not a slider stop: using 20, the nearest",
        "model=evil is not a built-in model: using lenet5",
        "seed=abc is not a seed (0 … 10,000): using 0",
        "guard=maybe is not on or off (1 or 0): using off",
        "fault=stuck2 is not a fault type: using flip",
        "rule=zz is not an LRP rule: using epsilon",
    ):
        assert any(expected in line for line in lines), (expected, lines)
    assert page.get_by_role("slider", name="Bit error rate (BER)").get_attribute("aria-valuetext") == "2e-4"
    assert "ber=2e-4" in _query(page) and "budget=3" in _query(page) and "evil" not in _query(page)
    page.screenshot(path=str(ARTIFACTS / "link_bad_values.png"))
    page.close()


def _download(page, button: str) -> tuple[str, pd.DataFrame]:
    """Click a download button; the file's suggested name and its CSV."""
    with page.expect_download(timeout=UPDATE_S * 1000) as info:
        page.get_by_role("button", name=button).first.click()
    return info.value.suggested_filename, pd.read_csv(info.value.path())


@pytest.mark.slow
def test_a_fault_list_download_names_its_plan_and_equals_the_command_line(app_url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{app_url}/fault_lab?plan=lrp&budget=2&ber=1e-4&trials=5&guard=1&seed=3", timeout=STARTUP_S * 1000)
    _final(page, "1e-4")
    page.get_by_text("Trials, per-layer table and exports (CSV)").click()
    _type(page, "Trial", "1")
    unprotected_name, unprotected = _download(page, "Fault list of trial 1")
    page.get_by_test_id("stRadio").filter(has_text="Fault list of").get_by_text("the plan").click()
    _idle(page)
    plan_name, plan = _download(page, "Fault list of trial 1")
    page.close()
    assert unprotected_name != plan_name and "unprotected" in unprotected_name and "lrp_2" in plan_name, plan_name
    row = plan.iloc[0]  # the plan alone, as the command line takes it, in every row
    assert (row["protect"], row["budget"], bool(row["guard"]), row["trials"], row["seed"]) == ("lrp", 2.0, True, 5, 3)
    assert (plan["trial"] == 1).all() and (unprotected["protect"] == "none").all()
    out = tmp_path / "faults.csv"
    cli = [sys.executable, "-m", "xtmr_core", "evaluate", "--protect", "lrp", "--budget", "2", "--guard", "--ber"]
    cli += ["1e-4", "--trials", "5", "--seed", "3", "--store", "none", "--export-faults", str(out), "--trial", "1"]
    subprocess.run(cli, cwd=ROOT, check=True, capture_output=True, timeout=UPDATE_S)
    columns = ["layer", "flat_index", "bit", "copy"]
    assert len(plan) > 0 and plan[columns].equals(pd.read_csv(out)[columns]), "the app's trial 1 is not the CLI's"


@pytest.mark.slow
def test_relevance_draws_lrp_beside_captum_on_one_colour_bar(app_url, browser):
    """The Relevance page's attribution section as a reader sees it: the image and four maps in one row with one
    colour bar, and the agreement table beside the caption (a screenshot in test-artifacts/)."""
    page = browser.new_page(viewport={"width": 1280, "height": 3600})
    page.goto(f"{app_url}/relevance", timeout=STARTUP_S * 1000)
    page.locator("text=At k = 1%").first.wait_for(timeout=STARTUP_S * 1000)
    _idle(page, settle=1.0)
    maps = page.locator("[class*='st-key-attr_maps']").first
    maps.scroll_into_view_if_needed()
    titles = maps.locator(".annotation-text").all_text_contents()  # SVG text: no innerText
    colour_bars = maps.locator(".colorbar").count()
    cells = page.locator("[class*='st-key-attr_agree'] text").all_text_contents()
    box = page.get_by_text("LRP beside gradient methods").first.bounding_box()
    page.screenshot(
        path=str(ARTIFACTS / "relevance_attributions.png"), clip={**box, "x": 0, "width": 1280, "height": 900}
    )
    errors = page.locator("[data-testid='stException']").count()
    page.close()
    assert errors == 0
    assert titles == ["image", "LRP", "Integrated Gradients", "Saliency", "Input × Gradient"]
    assert colour_bars == 1  # one scale for the four maps
    assert sum(c == "100%" for c in cells) >= 4, cells  # the diagonal of the agreement table, drawn


# ---------------------------------------------------------------- no value cut, on any page

#: (page path, what shows once the page has drawn its values)
PAGES = (
    ("?model=mobilenetv2", "[class*='st-key-card_weight_memory'] [data-testid='stMetricValue']"),
    ("model?model=mobilenetv2", "[data-testid='stMetric']:has-text('Test images')"),
    ("relevance", "text=At k = 1%"),
    ("sweeps", "button:has-text('Run')"),
)  # the Fault lab's at the three sizes: test_fault_lab_in_a_real_browser; mobilenetv2 has the widest values


def _cut_values(page) -> list:
    """Metric values wider than their box (cut or spilling over their neighbour)."""
    found = [
        (el.inner_text(), *el.evaluate("e => [e.scrollWidth, e.clientWidth]")) for el in page.locator(ALL_VALUES).all()
    ]
    return [f for f in found if f[1] > f[2]]


@pytest.mark.slow
def test_no_metric_value_is_cut_on_any_page(app_url, browser):
    cut = {}
    for path, ready in PAGES:
        for name, width, height, scale in SIZES:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
            page.goto(f"{app_url}/{path}", timeout=STARTUP_S * 1000)
            page.locator(ready).first.wait_for(timeout=UPDATE_S * 1000)
            _idle(page, settle=1.0)
            stem, _, query = path.partition("?")
            tag = "_".join(filter(None, [stem or "home", query.replace("=", "_")]))
            page.screenshot(path=str(ARTIFACTS / f"page_{tag}_{name}.png"))
            if found := _cut_values(page):
                cut[(tag, name)] = found
            if path == "sweeps":  # the run button in the first screen, under the plan and range choices
                box = page.get_by_role("button", name="Run").first.bounding_box()
                assert box and box["y"] + box["height"] <= height, (name, box)
            page.close()
    assert not cut, cut
