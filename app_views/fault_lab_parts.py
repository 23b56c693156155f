"""The Fault lab's live part: its controls, and the plan's numbers and chart streamed as its trials complete.

``live_lab`` is one ``st.fragment``: moving a control inside it (plan, BER, budget, trials, format, guard, the
fault options) reruns this part only, not the page; the teaching corner below it keeps what it drew. The two
settings the teaching corner reads (the number format and the LRP rule) rerun the whole page instead: the page
passes them in (``page_settings``), and a fragment rerun that finds them changed asks for a full one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import streamlit as st

import app_session
import app_state
import ui
from app_session import ModelChoice
from app_views import fault_lab_compare, fault_lab_exports, fault_lab_results
from app_views.fault_lab_numbers import draw_bars, draw_numbers
from xtmr_core.errors import XtmrError
from xtmr_core.plan_registry import plan_info, plan_names
from xtmr_core.spec import CampaignSpec
from xtmr_core.vocabulary import MODES, PLANS, RULES, WORD_BITS, check_bits, parse_bits


@dataclass(frozen=True)
class Controls:
    """What the Fault lab's controls hold: the point's plan and settings, as the widgets give them."""

    protect: str
    ber: float
    budget: float
    trials: int
    fmt: str
    guard: bool
    bits_text: str = ""
    mode: str = "flip"
    fault_text: str = ""
    seed: int = 0
    rule: str = "epsilon"


@dataclass
class Boxes:
    """Where the streamed numbers, the run's status line and the chart go (each an ``st.empty``)."""

    numbers: object
    status: object
    chart: object


def page_settings() -> tuple[str, str]:
    """The settings the rest of the page reads too: the number format and the LRP rule, as the session holds them."""
    return str(ui.setting("fmt")), str(ui.setting("rule"))


def _whole_page_if_changed(page: tuple[str, str], controls: Controls) -> None:
    """Rerun the whole page when the format or the rule differs from what the page was drawn with (``page``); at
    most once per value, so a widget that disagrees with the session can never loop."""
    now = (controls.fmt, controls.rule)
    if now != page and st.session_state.get("fl_rerun_for") != now:
        st.session_state["fl_rerun_for"] = now
        st.rerun()


@st.fragment
def live_lab(choice: ModelChoice, n_weights: int, n_classes: int, page: tuple[str, str]) -> None:
    """The controls, the plan and its baseline at the chosen point (numbers and chart streamed), the verdict, the
    trials, the wrecked digits, the exports and the comparison of plans: one fragment (see the module's note).
    ``page``: ``page_settings()`` when the page was drawn."""
    ui.sync_url(app_session.weights_origin(choice))  # a fragment rerun skips app.py, which keeps the link current
    ctrl, nums, chart = st.columns([4, 4, 4], gap="medium")
    with ctrl:
        controls = _main_controls()
    boxes = Boxes(nums.empty(), nums.empty(), chart.empty())
    controls = _fault_options(choice, n_weights, controls)
    _whole_page_if_changed(page, controls)
    spec = _spec(controls, boxes)
    point, n = _run(choice, spec, boxes)
    fault_lab_results.summary(point, spec, n_classes)
    # the chart after the numbers and the verdict: the browser draws a Plotly chart in one blocking task, which
    # holds back numbers that arrive in the same batch (measured: see tests/fault_lab_latency.py)
    draw_bars(boxes.chart, point, k=point.trials, n=n)
    layers = app_state.protected_layers(choice, spec)
    fault_lab_results.trials_and_layers(point, layers)
    fault_lab_results.wrecked_digits(choice, spec, point)
    fault_lab_exports.exports(choice, spec, point, layers)
    fault_lab_compare.compare_plans(choice, spec)


def _main_controls() -> Controls:
    """The plan, the BER, the budget, the trials, the format, the range guard and the protected bits (the fault
    options keep their defaults here: ``_fault_options`` reads them)."""
    protect = st.selectbox(
        "Protection plan",
        PLANS,
        format_func=ui.plan_label,
        key="protect",
        persist_state="session",
        help="Which (weight, bit) pairs are stored three times. The scorer plans protect all bits "
        "of the top budget% weights; 'bit positions' protects chosen bits of every weight.",
    )
    ber = st.select_slider(
        "Bit error rate (BER)",
        ui.BER_VALUES,
        format_func=ui.fmt_ber,
        key="ber",
        persist_state="session",
        help="Probability that one stored bit is flipped (log scale, 1e-7 … 1e-2).",
    )
    budget = st.select_slider(
        "Protection budget (% of weights)",
        ui.BUDGET_VALUES,
        format_func=lambda v: f"{v:g}%",
        key="budget",
        persist_state="session",
        disabled=not ui.uses_budget(protect),
        help="Share of weights, ranked by the chosen scorer, whose bits are all stored three "
        "times (the scorer plans); for 'damage', the extra memory in % of the weight memory.",
    )
    trials, fmt, guard = _trials_format_guard(protect)
    text = ""
    if protect == "bits":
        text = st.text_input(
            "Protected bit positions",
            key=ui.format_key("bits", fmt),  # its value comes from the session (the link, or the format's top bit)
            help=f"Bits 0 (LSB) … {WORD_BITS[fmt] - 1} of every weight, e.g. 30, 23-31 or 0,7,30-31.",
        )
    return Controls(protect, ber, budget, trials, fmt, guard, text)


def _trials_format_guard(protect: str) -> tuple[int, str, bool]:
    """The trial count and the number format side by side, then the range guard."""
    t_col, f_col = st.columns(2)
    trials = t_col.select_slider(
        "Trials (at most)",
        ui.TRIAL_VALUES,
        key="trials",
        persist_state="session",
        help="Seeded fault draws per setting; the plan and the unprotected baseline run the same trials. "
        "The first estimate shows after one trial and is refined as trials complete.",
    )
    fmt = ui.format_select(f_col)
    guard = st.toggle(
        "+ range guard on read",
        key="guard",
        persist_state="session",
        disabled=protect == "range",
        help="Also read every weight outside its layer's clean range as 0 (two bounds per layer, no copies).",
    )
    return trials, fmt, guard


def _fault_options(choice: ModelChoice, n_weights: int, controls: Controls) -> Controls:
    """The options under the controls (fault type, failing bits, seed, LRP rule) added to ``controls``; a caption
    on the model's stored bits."""
    fmt = controls.fmt
    with st.expander(ui.options_label(), key="fl_options"):
        o1, o2, o3, o4 = st.columns(4)
        mode = o1.selectbox(
            "Fault type",
            MODES,
            key="mode",
            persist_state="session",
            help="flip: the bit inverts; stuck0 / stuck1: the bit reads 0 / 1 whatever was stored.",
        )
        fault_text = o2.text_input(
            "Only these bit positions fail",
            key=ui.format_key("fault_bits", fmt),
            help="Leave empty for all bits; e.g. 23-30 for fp32's exponent.",
        )
        seed = o3.number_input(
            "Seed",
            min_value=0,
            max_value=10_000,
            step=1,
            key="seed",
            help="Seed of the fault draws: the same seed gives the same faults.",
        )
        rule = o4.selectbox(
            "LRP rule",
            RULES,
            key="rule",
            persist_state="session",
            help="How LRP ranks the weights the lrp and damage plans protect (the Relevance page draws it): "
            + " ".join(ui.RULE_HELP.values()),
        )
        n_bits = WORD_BITS[fmt]
        st.caption(
            f"**{choice.model}** on **{choice.dataset}** ({choice.label}): {n_weights:,} weights of "
            f"{n_bits} bits, {n_weights * n_bits:,} stored bits that can flip. {ui.FORMAT_HELP[fmt]}"
        )
    return replace(controls, mode=mode, fault_text=fault_text, seed=int(seed), rule=rule)


def _spec(c: Controls, boxes: Boxes) -> CampaignSpec:
    """The grid point the controls name; a bad bit list says why in one line where the numbers go, and stops."""
    try:
        return CampaignSpec(
            c.protect,
            c.budget,
            c.ber,
            c.fmt,
            c.trials,
            c.seed,
            c.mode,
            fault_bits=check_bits(parse_bits(c.fault_text), c.fmt, "failing bit position")
            if c.fault_text.strip()
            else None,
            bits=check_bits(parse_bits(c.bits_text), c.fmt) if c.protect == "bits" else None,
            rule=c.rule,
            guard=c.guard,
        )
    except XtmrError as e:
        boxes.numbers.error(str(e))
        st.stop()


def _run(choice: ModelChoice, spec: CampaignSpec, boxes: Boxes) -> tuple[object, int]:
    """The plan and its unprotected baseline on the same trials (one grid point), its numbers drawn as trials
    complete, and the element-key number its chart is to take; a plan that cannot run says why in one line (and
    which plans still can) and stops."""
    try:
        return _stream(choice, spec, boxes)
    except XtmrError as e:
        boxes.numbers.error(str(e))
        if plan_info(spec.protect).needs_reference:  # it ranks weights on reference images the model cannot give
            others = [p for p in plan_names() if p != "none" and not plan_info(p).needs_reference]
            boxes.status.info(f"Plans that need no reference images: {', '.join(others)}.")
        st.stop()


def _stream(choice: ModelChoice, spec: CampaignSpec, boxes: Boxes) -> tuple[object, int]:
    """``app_state.point`` with the numbers redrawn after the first trials and at most every 0.25 s after (the
    chart after the first two); the previous setting's numbers stay, dimmed, until the first trial of a new one.
    Returns the point and the key number of its final drawing (the caller draws the final chart)."""
    specs = (spec,)
    n = [0]  # how many times the numbers were drawn in this run: each drawing gets its own element keys
    if not app_state.is_cached(choice, specs):
        shown = st.session_state.get("fl_shown")
        if shown is not None:
            draw_numbers(boxes.numbers, shown, shown.trials, shown.trials, n=0, stale=True)
            draw_bars(boxes.chart, shown, k=shown.trials, n=0, stale=True)
            n[0] += 1
        boxes.status.caption(":material/hourglass_top: running the first trial…")
    last = [0.0]

    def on_trial(partial) -> None:
        k = partial.trials
        boxes.status.caption(f":material/hourglass_top: trial {k} of {spec.trials}…")  # also where a rerun cancels
        if k < spec.trials and (k <= 2 or time.perf_counter() - last[0] > 0.25):
            draw_numbers(boxes.numbers, partial, k, spec.trials, n=n[0])
            if k <= 2:
                draw_bars(boxes.chart, partial, k=k, n=n[0])
            n[0] += 1
            last[0] = time.perf_counter()

    point = app_state.point(choice, specs, on_trial=on_trial)
    draw_numbers(boxes.numbers, point, point.trials, spec.trials, n=n[0])
    boxes.status.caption(
        f":material/check_circle: {point.trials} trials, each of both plans on the same faults"
        + (" (stratified)" if point.strata is not None else "")
    )
    st.session_state["fl_shown"] = point
    return point, n[0]
