"""A classroom on one server: N headless Chromium sessions move the Fault lab's BER slider at the same time.

Run it (loopback only; bounded in sessions, steps and time)::

    .venv/bin/python tests/classroom.py --sessions 30 --steps 10 --store /tmp/class.sqlite

It starts its own ``streamlit run app.py`` on 127.0.0.1 with ``XTMR_STORE`` set to ``--store`` (a fresh file is a
cold store; rerun with the same file for a warm one, or fill it first with ``python -m xtmr_core warm``), opens
``--sessions`` browser contexts on ``/fault_lab?model=lenet5`` (even sessions fp32, odd int8), and then, in
``--steps`` rounds, every session presses one arrow key on the BER slider at once: half go up first and half down
first, each turning back half-way, so a round asks for a few distinct settings among the slider's stops. A step's
latency is the time from the key press to that session's final numbers (the live caption ``BER x · n of n trials``
of its own BER, no ``estimate``). It prints and writes (``--out``) a JSON summary: page-open times, step medians and
95th percentiles, page errors (uncaught script errors and Streamlit exception boxes) and whether every session
showed its own setting. Nothing is asserted on time: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.app_server import CHROMIUM_ARGS, serve, stop  # noqa: E402  (after the path: this file runs as a script)
from ui import BER_VALUES, fmt_ber  # noqa: E402

MAX_SESSIONS = 60
MAX_STEPS = 40
LIVE = "[class*='st-key-live_']"
START_BER = 1e-5


def _path(index: int, steps: int, up_first: bool) -> list[tuple[str, float]]:
    """The keys a session presses and the BER each lands on: out ``steps // 2`` stops, then back."""
    out = steps // 2
    first, back = ("ArrowRight", "ArrowLeft") if up_first else ("ArrowLeft", "ArrowRight")
    keys = [first] * out + [back] * (steps - out)
    path, i = [], index
    for key in keys:
        i += 1 if key == "ArrowRight" else -1
        path.append((key, BER_VALUES[i]))
    return path


class Session:
    """One browser context on the Fault lab: its format, its direction and what it measured."""

    def __init__(self, n: int, fmt: str, up_first: bool) -> None:
        self.n, self.fmt, self.up_first = n, fmt, up_first
        self.open_s = float("nan")
        self.steps: list[float] = []
        self.errors: list[str] = []
        self.wrong: list[str] = []
        self.page = None

    async def open(self, browser, url: str, timeout_s: float) -> None:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = await context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)[:200]))
        t0 = time.perf_counter()
        await self.page.goto(
            f"{url}/fault_lab?model=lenet5&format={self.fmt}&ber={fmt_ber(START_BER)}", timeout=timeout_s * 1000
        )
        await self._final(fmt_ber(START_BER), timeout_s)
        self.open_s = time.perf_counter() - t0
        await self.page.get_by_role("slider", name="Bit error rate (BER)").focus(timeout=timeout_s * 1000)

    async def _final(self, ber: str, timeout_s: float) -> None:
        live = self.page.locator(LIVE, has_text=f"BER {ber} ·").filter(has_not_text="estimate").first
        await live.wait_for(timeout=timeout_s * 1000)

    async def step(self, key: str, ber: float, timeout_s: float) -> None:
        t0 = time.perf_counter()
        await self.page.keyboard.press(key)
        try:
            await self._final(fmt_ber(ber), timeout_s)
        except Exception as e:  # a timeout is a result here, not a crash of the whole class
            self.wrong.append(f"step to {fmt_ber(ber)}: {type(e).__name__}")
            return
        self.steps.append(time.perf_counter() - t0)
        query = await self.page.evaluate("location.search")
        if f"format={self.fmt}" not in query and not (self.fmt == "fp32" and "format=" not in query):
            self.wrong.append(f"format lost at {fmt_ber(ber)}: {query}")
        if await self.page.locator("[data-testid='stException']").count():
            self.errors.append(f"exception box at {fmt_ber(ber)}")


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 3),
        "p95_s": round(p95, 3),
        "max_s": round(ordered[-1], 3),
    }


async def _classroom(url: str, args: argparse.Namespace) -> dict:
    from playwright.async_api import async_playwright

    start = BER_VALUES.index(START_BER)
    sessions = [Session(i, "fp32" if i % 2 == 0 else "int8", up_first=(i // 2) % 2 == 0) for i in range(args.sessions)]
    paths = {s.n: _path(start, args.steps, s.up_first) for s in sessions}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            t0 = time.perf_counter()
            await asyncio.gather(*(s.open(browser, url, args.timeout) for s in sessions))
            all_open_s = time.perf_counter() - t0
            rounds = []
            for r in range(args.steps):
                t_round = time.perf_counter()
                await asyncio.gather(*(s.step(*paths[s.n][r], args.timeout) for s in sessions))
                rounds.append(round(time.perf_counter() - t_round, 3))
                print(f"round {r + 1}/{args.steps}: {rounds[-1]:.1f} s", file=sys.stderr, flush=True)
        finally:
            await browser.close()
    steps = [v for s in sessions for v in s.steps]
    return {
        "sessions": args.sessions,
        "steps": args.steps,
        "store": args.store,
        "all_sessions_open_s": round(all_open_s, 3),
        "open": _summary([s.open_s for s in sessions]),
        "step": _summary(steps),
        "round_s": rounds,
        "page_errors": sum(len(s.errors) for s in sessions),
        "error_samples": [e for s in sessions for e in s.errors][:5],
        "sessions_wrong": sum(1 for s in sessions if s.wrong),
        "wrong_samples": [w for s in sessions for w in s.wrong][:5],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the classroom and print its JSON summary; exit 1 on page errors or a session that lost its setting."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--store", default="none", help="XTMR_STORE for the server (a file path, or none)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds a step may take before it counts as lost")
    ap.add_argument("--out", type=Path, help="write the JSON summary here too")
    args = ap.parse_args(argv)
    if not 1 <= args.sessions <= MAX_SESSIONS or not 2 <= args.steps <= MAX_STEPS:
        print(f"error: --sessions must be 1..{MAX_SESSIONS} and --steps 2..{MAX_STEPS}", file=sys.stderr)
        return 2
    if args.steps // 2 > BER_VALUES.index(START_BER):
        print("error: too many steps for the BER slider's stops below 1e-5", file=sys.stderr)
        return 2
    if shutil.which("chromium") is None:
        print("error: chromium not found; install it with `make browser`", file=sys.stderr)
        return 2
    log = ROOT / "test-artifacts" / "classroom-streamlit.log"
    log.parent.mkdir(exist_ok=True)
    proc, url = serve(ROOT, args.store, log)
    try:
        result = asyncio.run(_classroom(url, args))
    finally:
        stop(proc)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if result["page_errors"] or result["sessions_wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
