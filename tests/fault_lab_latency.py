"""Fault lab latency in a real browser: BER slider step -> final numbers on screen, new settings and cached ones.

Starts ``streamlit run app.py`` of the repository at ``--root`` (default: this one; another checkout, e.g. a
``git worktree`` of an older commit, measures that commit's page with this environment), opens the Fault lab on
lenet5 in headless Chromium, steps the BER slider right through ``--steps`` new stops (each: the plan and its
baseline computed), then left and right again over the same stops (each: cached), and prints one JSON object:
per step the seconds until the first number of the new setting, until its final numbers, and until the page has
finished its run (Streamlit's script state back to idle); medians per kind. Loopback only; bounded in steps and time.

    PYTHONPATH=. .venv/bin/python tests/fault_lab_latency.py [--root DIR] [--steps 4] [--port 8765]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.app_server import CHROMIUM_ARGS, serve, stop  # noqa: E402  (after the path: this file runs as a script)

LIVE = "[class*='st-key-live_']"
BER_STOPS = ("1e-5", "2e-5", "5e-5", "1e-4", "2e-4", "5e-4", "1e-3")
TIMEOUT_MS = 300_000


def _idle(page) -> None:
    """Until the app's script run (page or fragment) has finished."""
    page.wait_for_function(
        "() => !['running', 'rerunRequested', 'initial', null, undefined].includes("
        "document.querySelector(\"[data-testid='stApp']\")?.getAttribute('data-test-script-state'))",
        timeout=TIMEOUT_MS,
    )


def _step(page, key: str, ber: str) -> dict:
    """Press ``key`` on the focused BER slider; seconds to the first and the final numbers of ``ber``, and idle."""
    t0 = time.perf_counter()
    page.keyboard.press(key)
    live = page.locator(LIVE, has_text=f"BER {ber} ·").first
    live.wait_for(timeout=TIMEOUT_MS)
    first = time.perf_counter() - t0
    page.locator(LIVE, has_text=f"BER {ber} ·").filter(has_not_text="estimate").first.wait_for(timeout=TIMEOUT_MS)
    final = time.perf_counter() - t0
    _idle(page)
    idle = time.perf_counter() - t0
    return {"ber": ber, "first_s": round(first, 3), "final_s": round(final, 3), "idle_s": round(idle, 3)}


def measure(url: str, steps: int) -> dict:
    """New steps right, then cached steps left and right again; medians per kind."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        t0 = time.perf_counter()
        page.goto(f"{url}/fault_lab?model=lenet5", timeout=TIMEOUT_MS)
        page.locator(LIVE, has_text="BER 1e-5 ·").filter(has_not_text="estimate").first.wait_for(timeout=TIMEOUT_MS)
        _idle(page)
        opened = time.perf_counter() - t0
        page.get_by_role("slider", name="Bit error rate (BER)").focus()
        stops = BER_STOPS[: steps + 1]
        new = [_step(page, "ArrowRight", ber) for ber in stops[1:]]
        cached = [_step(page, "ArrowLeft", ber) for ber in reversed(stops[:-1])]
        cached += [_step(page, "ArrowRight", ber) for ber in stops[1:]]
        browser.close()

    def median(rows: list[dict], what: str) -> float:
        return round(statistics.median(r[what] for r in rows), 3)

    return {
        "open_s": round(opened, 3),
        "new": {f"median_{w}": median(new, f"{w}_s") for w in ("first", "final", "idle")},
        "cached": {f"median_{w}": median(cached, f"{w}_s") for w in ("first", "final", "idle")},
        "new_steps": new,
        "cached_steps": cached,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--steps", type=int, default=4, choices=range(1, len(BER_STOPS)))
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if not shutil.which("chromium"):
        raise SystemExit("chromium not found; install it with `make browser`")
    log = Path(f"/tmp/fault_lab_latency_{args.port}.log")
    proc, url = serve(args.root.resolve(), "none", log, port=args.port)
    try:
        time.sleep(12)  # the server imports torch and the engine on the first page
        report = measure(url, args.steps)
    finally:
        stop(proc)
    print(json.dumps({"root": str(args.root), **report}, indent=1))


if __name__ == "__main__":
    main()
