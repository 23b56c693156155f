"""End to end in a real browser: `streamlit run app.py`, headless Chromium drives the Fault lab.

Needs Debian's Chromium (``make browser`` installs it). Without it the test is skipped, unless
``XTMR_REQUIRE_BROWSER=1`` (CI), where it fails. It checks what a lecture hall and an engineer's desk need:

* a fresh server answers the first request at once, through the app's own top navigation (no legacy page list);
* a BER step streams: the first estimate, then the full campaign; the latencies are measured and written to
  ``test-artifacts/fault_lab_latency.json`` (reported, not asserted: they depend on the machine's load);
* the settings live in the URL and survive a reload;
* at 1440×900, 1024×768 and 1280×720 at 150% zoom (a projector) no headline number is truncated, and the
  sliders, the numbers and the chart share the first screen; screenshots go to ``test-artifacts/``
  (``XTMR_SCREENSHOT_DIR=docs/screenshots`` also copies the 1440×900 one there for the README).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_S = 180  # server start, data loading and the first LRP scoring on a shared CPU
UPDATE_S = 300  # a slider step on a loaded shared machine can take minutes
#: (name, CSS viewport width, height, device scale): 1280×720 at 150% zoom is a 853×480 CSS viewport.
SIZES = (("1440x900", 1440, 900, 1.0), ("1024x768", 1024, 768, 1.0), ("1280x720_150pct", 853, 480, 1.5))
LIVE = "[class*='st-key-live_']"
HEAD_VALUES = "[class*='st-key-head_'] [data-testid='stMetricValue'] > div"
ALL_VALUES = "[data-testid='stMetricValue'] > div"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    time.sleep(0.8)  # let the charts settle before the picture
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
    return {"truncated": truncated, "in_first_screen": in_view}


def _idle(page, settle: float = 3.0) -> None:
    """Wait until the app has shown no running indicator for ``settle`` seconds (every rerun has finished)."""
    status = page.locator("[data-testid='stStatusWidget']")
    deadline, quiet = time.monotonic() + UPDATE_S, None
    while time.monotonic() < deadline:
        if status.count() and status.first.is_visible():
            quiet = None
        elif quiet is None:
            quiet = time.monotonic()
        elif time.monotonic() - quiet > settle:
            return
        time.sleep(0.3)


def _choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    box = page.locator("[data-testid='stSelectbox']").filter(has=page.get_by_text(label, exact=True)).first
    box.locator("[role='combobox'], input, div[data-baseweb='select']").first.click()
    page.get_by_role("option", name=option, exact=True).first.click()


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
    time.sleep(5)  # a reader looking at the numbers before moving on
    page.locator("header").get_by_role("link", name="Model", exact=True).first.click()
    page.get_by_text("resnet20 on mnist5k").first.wait_for(timeout=UPDATE_S * 1000)
    time.sleep(2)  # let the page's reruns settle
    return page.get_by_text("Clean accuracy (int8)").count() > 0 and "format=int8" in page.url


@pytest.mark.slow
def test_fault_lab_in_a_real_browser():
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "streamlit.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1"]
    cmd += ["--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    report: dict = {}
    try:
        _wait_healthy(url, proc, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                # A fresh server's first request, straight to a page: something shows at once, through the
                # app's top navigation, and the legacy page list never appears.
                t0 = time.perf_counter()
                page.goto(url + "/fault_lab", timeout=STARTUP_S * 1000)
                page.locator("header").get_by_text("Fault lab").first.wait_for(timeout=STARTUP_S * 1000)
                report["first_paint_s"] = round(time.perf_counter() - t0, 3)
                assert page.locator("[data-testid='stSidebarNav']").count() == 0
                page.locator(LIVE, has_text="BER 1e-5 ·").filter(has_not_text="estimate").first.wait_for(
                    timeout=STARTUP_S * 1000
                )
                report["first_result_s"] = round(time.perf_counter() - t0, 3)
                report["settings_kept_across_pages"] = _settings_kept_across_pages(page)

                report["lenet5"] = _latencies(page, url, "lenet5")
                # the settings are in the URL and come back on reload
                assert "ber=" in page.url, page.url
                page.reload()
                slider = page.get_by_role("slider", name="Bit error rate (BER)")
                slider.wait_for(timeout=STARTUP_S * 1000)
                assert slider.get_attribute("aria-valuetext") == "1e-4"
                page.locator(LIVE, has_text="BER 1e-4 ·").filter(has_not_text="estimate").first.wait_for(
                    timeout=UPDATE_S * 1000
                )
                # a cached setting answers at once
                slider.focus()
                t0 = time.perf_counter()
                page.keyboard.press("ArrowLeft")
                page.locator(LIVE, has_text="BER 5e-5 ·").filter(has_not_text="estimate").first.wait_for(
                    timeout=UPDATE_S * 1000
                )
                report["lenet5"]["cached_step_s"] = round(time.perf_counter() - t0, 3)
                report["vgg16"] = _latencies(page, url, "vgg16")
                page.close()

                for name, width, height, scale in SIZES:
                    page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
                    page.goto(url + "/fault_lab", timeout=STARTUP_S * 1000)
                    report[name] = _layout(page, name)
                    page.close()
            finally:
                browser.close()
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
