"""The Sweeps page's parts: each tab's controls, the run with its progress and stop, the charts, the iso-cost
view and the table with its CSV. Each takes the active choice, format, trials and LRP rule as arguments."""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state
import ui
from app_session import ModelChoice
from xtmr_core.errors import XtmrError
from xtmr_core.spec import CampaignSpec, grid, split_plan_name
from xtmr_core.vocabulary import PLAN_NAMES, SCORERS, WORD_BITS, check_bits, parse_bits

PALETTE = {
    "none": "#c53030",
    "lrp": "#2b6cb0",
    "magnitude": "#dd6b20",
    "gradient": "#38a169",
    "taylor": "#805ad5",
    "random": "#718096",
    "full": "#1a202c",
    "bits": "#d69e2e",
    "range": "#319795",
    "ecc": "#b83280",
    "damage": "#975a16",
}
#: Colours for plans without one above (new plans, combinations), in order of appearance.
SPARE_COLOURS = ("#2c7a7b", "#553c9a", "#9c4221", "#4a5568")
#: One marker per line, so lines that coincide stay distinguishable.
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon", "triangle-down")
#: The campaign seed of every point (trial t draws its faults from (SEED, t)); written into the CSV.
SEED = 0
SHOWN_COLUMNS = [
    "plan",
    "ber",
    "budget",
    "trials",
    "mean_accuracy",
    "ci_low",
    "ci_high",
    "min_accuracy",
    "diff",
    "verdict",
    "recovered",
    "recovered_low",
    "recovered_high",
    "relative_gain",
    "overhead_pct",
    "overhead_with_index_pct",
    "mean_bit_flips",
]
#: What the page does, in the title's help (the controls and the Run button share a projector's first screen).
INTRO = (
    "Many campaigns at once: how accuracy falls with the bit error rate for each plan, how it recovers "
    "with the budget, and what each scorer must spend to reach a target accuracy. Each point is cached, so a "
    "stopped sweep resumes where it ended. LRP ranks by the rule chosen on the Relevance page."
)
TABLE_HELP = (
    "Every plan of a BER runs on the same trials as no protection, so each row is compared pair-wise: diff is the "
    "mean per-trial accuracy difference to no protection, verdict says whether its interval clears zero. "
    "recovered: share of the fault-induced loss a plan wins back, (plan − none) / (clean − none), with its "
    "interval; left blank where that loss is no larger than its own noise (the unprotected accuracy's 95% CI "
    "half-width): a share of a loss the trials cannot tell from zero means nothing. relative_gain: (plan − none) "
    "/ none. Overheads in % of the weight memory."
)


class Setting(NamedTuple):
    """What every sweep of the page shares: the active model, its format, trials per point and LRP rule."""

    choice: ModelChoice
    fmt: str
    trials: int
    rule: str


def trials_select(col) -> int:
    """Trials per point."""
    return col.select_slider(
        "Trials per point",
        (2, 5, 10, 20, 50),
        value=10,
        key="sw_trials",
        persist_state="session",
        help=f"Fault draws per point; more trials, narrower confidence intervals, longer runs. Under "
        f"{app_state.MIN_TRIALS} the page warns that a point is too thin to conclude from.",
    )


def colour(protect: str, order: list[str]) -> str:
    """A plan's colour: its own, else a spare one by its place among the plans without one."""
    if protect in PALETTE:
        return PALETTE[protect]
    spare = [p for p in dict.fromkeys(order) if p not in PALETTE]
    return SPARE_COLOURS[spare.index(protect) % len(SPARE_COLOURS)] if protect in spare else "#4a5568"


def bits_input(tag: str, protects: list[str], fmt: str) -> tuple[int, ...] | None:
    """The bit positions of the ``bits`` plan, when it is among ``protects``.

    Raises:
        XtmrError: positions that do not parse or do not exist in ``fmt``.
    """
    if not any(split_plan_name(p)[0] == "bits" for p in protects):
        return None
    text = st.text_input(
        "Bit positions for the 'bits' plan",
        value=str(ui.top_bit(fmt)),
        key=f"{tag}_bits_{fmt}",
        help=f"Bits 0 (LSB) … {WORD_BITS[fmt] - 1} of every weight, e.g. 30 or 23-31.",
    )
    return check_bits(parse_bits(text), fmt)


def run(tag: str, s: Setting, asked: str, protects: list[str], budgets: list[float], bers, bits) -> None:
    """``sweep.run_sweep`` through the cached campaigns, with a progress bar and a Stop button; finished rows stay
    in the session if it is stopped. ``asked``: what the run was asked, in words, kept with its table."""
    stop = st.empty()
    stop.button("Stop sweep", key=f"{tag}_stop", help="Stops after the current BER; finished campaigns stay cached.")
    bar = st.progress(0.0, text="starting…")
    done: list[dict] = []
    total = len(grid(["none", *protects], budgets, bers, [s.fmt], bits=bits))
    st.session_state[f"{tag}_partial"] = (done, total, asked)

    def progress(i: int, n: int, label: str) -> None:  # i of n BER points; done: the finished campaigns' rows
        bar.progress(len(done) / total, text=f"{len(done)} of {total} campaigns done ({i} of {n} BERs)")

    table = app_state.sweep(
        s.choice,
        protects,
        budgets,
        bers,
        s.fmt,
        done=done,
        progress=progress,
        seed=SEED,
        bits=bits,
        trials=s.trials,
        rule=s.rule,
    )
    st.session_state.pop(f"{tag}_partial", None)
    st.session_state[f"{tag}_table"] = table
    st.session_state[f"{tag}_settings"] = asked
    bar.empty()
    stop.empty()


def last_table(tag: str, asked: str) -> pd.DataFrame | None:
    """The last sweep's table (or the rows of one that was stopped), with a note when it was not run with the
    settings shown now (``asked``: them, in words) or was stopped."""
    partial = st.session_state.pop(f"{tag}_partial", None)
    if partial is not None:
        rows, total, was_asked = partial
        if rows:
            st.session_state[f"{tag}_table"] = app_state.sweep_table(rows)
            st.session_state[f"{tag}_settings"] = was_asked
        st.warning(
            f"Stopped after {len(rows)} of {total} campaigns; press Run again to finish (finished campaigns are "
            "cached)." + ("" if rows else " Nothing finished, so nothing below is from this run.")
        )
    table = st.session_state.get(f"{tag}_table")
    shown_for = st.session_state.get(f"{tag}_settings")
    if table is not None and shown_for != asked:
        st.caption(
            f":material/history: Below: an earlier run ({shown_for}), not the settings above ({asked}); "
            "press Run for these."
        )
    return table


def thin_points(table: pd.DataFrame) -> None:
    """Warn when points rest on fewer trials than a conclusion needs (``sweep_view.thin_points``)."""
    thin = app_state.thin_points(table)
    if thin is not None:
        st.warning(
            f"{thin.count} of {thin.total} points rest on fewer than {thin.minimum} trials (as few as "
            f"{thin.fewest}): their intervals are wide and a difference between plans may be chance. "
            f"Run {thin.minimum} or more trials per point before concluding."
        )


def download(tag: str, table: pd.DataFrame, s: Setting) -> None:
    """The table with its reliability columns (``recovered`` blanked where it means nothing), and its CSV."""
    shown = app_state.recovered_shown(table)
    with st.expander("Table with reliability improvement"):
        st.caption(TABLE_HELP)
        st.dataframe(shown[SHOWN_COLUMNS], hide_index=True, width="stretch")
    st.download_button(
        "Download CSV",
        app_state.sweep_csv(shown, seed=SEED, rule=s.rule, weights=f"{s.choice.label} ({s.choice.ckpt_id})"),
        file_name=f"xtmr_{tag}_{s.choice.model}_{s.fmt}.csv",
        mime="text/csv",
        key=f"{tag}_csv",
        help="Every column of the sweep, one row per campaign, with the seed, LRP rule, weights and versions "
        "that reproduce it.",
    )


def overheads(s: Setting, protects: list[str], budget: float, bits) -> str:
    """The extra memory of each plan at ``budget``, in one line."""
    parts = []
    for p in protects:  # the range guard costs no copies: X+range has X's overhead
        spec = CampaignSpec(split_plan_name(p)[0], budget, fmt=s.fmt, bits=bits, rule=s.rule)
        o = app_state.plan_overhead(s.choice, spec)
        parts.append(f"{p} {o.copies_pct:.2f}% ({o.with_index_pct:.2f}% with index)")
    return "Extra memory at this budget: " + "; ".join(parts) + "." if parts else "Choose at least one plan."


def reference_line(fig: go.Figure, x: list[float], y: float, name: str, line_colour: str, dash: str) -> None:
    """A horizontal reference drawn as a legend entry (annotations at the edge print over each other)."""
    fig.add_scatter(
        x=[min(x), max(x)],
        y=[100 * y, 100 * y],
        mode="lines",
        name=name,
        line=dict(color=line_colour, dash=dash, width=2),
        hovertemplate=f"{name}: {100 * y:.1f}%<extra></extra>",
    )


def error_bars(g: pd.DataFrame) -> dict:
    """Plotly error bars of the rows' 95% CI around their mean accuracy, in points."""
    return dict(
        type="data",
        symmetric=False,
        array=100 * (g["ci_high"] - g["mean_accuracy"]).fillna(0),
        arrayminus=100 * (g["mean_accuracy"] - g["ci_low"]).fillna(0),
    )


def layout(fig: go.Figure, x_title: str) -> None:
    """The accuracy charts' shared layout: 0–101% axis, legend under the chart."""
    fig.update_layout(
        xaxis_title=x_title,
        yaxis_title="accuracy (%)",
        yaxis_range=[0, 101],
        height=440,
        margin=dict(l=10, r=10, t=10, b=10),
        legend=dict(orientation="h", x=0, y=-0.18, xanchor="left", yanchor="top"),
    )


# ---------------------------------------------------------------- accuracy against BER


class BerAsk(NamedTuple):
    """The BER tab's controls: plans, their budget, the BER range and its stops, the bits plan's positions."""

    plans: list[str]
    budget: float
    lo: float
    hi: float
    bers: list[float]
    bits: tuple[int, ...] | None


def ber_controls(s: Setting) -> tuple[BerAsk, bool]:
    """The BER tab's plans, budget and BER range, what they cost, and the Run button (whether it was pressed)."""
    plans = st.multiselect(
        "Plans",
        [p for p in PLAN_NAMES if p != "none"],
        default=["lrp", "magnitude", "bits", "full"],
        key="swb_plans",
        help="No protection is always included as the baseline. ecc: SEC-DED (72, 64) code words; damage: "
        "triplicates the (weight, bit) pairs of highest expected damage, its budget in % extra memory; "
        "X+range: plan X with the zero-copy range guard on read as well.",
    )
    b1, b2, b3 = st.columns([2, 2, 1], vertical_alignment="bottom")  # the Run button in a projector's first screen
    budget = b1.select_slider(
        "Budget of the scorer plans",
        ui.BUDGET_VALUES,
        value=1.0,
        format_func=lambda v: f"{v:g}%",
        key="swb_budget",
        help="Share of weights each scorer plan protects (for damage: % extra memory, so damage 2% buys as "
        "many triplicated bits as lrp 1%).",
    )
    lo, hi = b2.select_slider(
        "BER range",
        ui.BER_VALUES,
        value=(1e-6, 1e-3),
        format_func=ui.fmt_ber,
        key="swb_bers",
        help="Every slider stop in this range is one point.",
    )
    bers = [v for v in ui.BER_VALUES if lo <= v <= hi]
    try:
        bits = bits_input("swb", plans, s.fmt)
        n_runs = len(grid(["none", *plans], [budget], bers, [s.fmt], bits=bits))
        st.caption(
            f"{n_runs} campaigns: {len(bers)} BERs × {n_runs // max(len(bers), 1)} plans (no protection included), "
            f"{s.trials} trials each."
        )
        with st.container(key="swb_overheads"):
            st.caption(overheads(s, plans, budget, bits))
    except XtmrError as e:
        st.error(str(e))
        bits, plans, n_runs = None, [], 0
    pressed = b3.button(f"Run {n_runs} campaigns", key="swb_run", type="primary", disabled=not plans, width="stretch")
    return BerAsk(plans, budget, lo, hi, bers, bits), pressed


def ber_words(s: Setting, ask: BerAsk) -> str:
    """The BER tab's settings in words (kept with a run's table, to say when it no longer matches)."""
    bits = f", bits {','.join(map(str, ask.bits))}" if ask.bits else ""
    return (
        f"{s.choice.model}, {s.fmt}, {s.trials} trials, {', '.join(ask.plans) or 'no plan'} at {ask.budget:g}%, "
        f"BER {ui.fmt_ber(ask.lo)} … {ui.fmt_ber(ask.hi)}, rule {s.rule}" + bits
    )


def ber_chart(table: pd.DataFrame) -> None:
    """Accuracy against BER, one line per plan with its 95% CI, no protection dashed on top, clean dotted."""
    fig = go.Figure()
    # the baseline last, dashed and wider: drawn on top, it stays visible where a plan's line coincides
    labels = list(dict.fromkeys(table["plan"]))
    baseline = set(table.loc[table["protect"] == "none", "plan"])
    order = [p for p in labels if p not in baseline] + [p for p in labels if p in baseline]
    protects = list(table["protect"])
    for i, plan in enumerate(order):
        g = table[table["plan"] == plan].sort_values("ber")
        base = plan in baseline
        dash = "dash" if base else "dot" if str(plan).endswith("+range") else "solid"  # X +range: X's colour, dotted
        fig.add_scatter(
            x=g["ber"],
            y=100 * g["mean_accuracy"],
            name=plan,
            mode="lines+markers",
            line=dict(color=colour(g["protect"].iloc[0], protects), width=3 if base else 2, dash=dash),
            marker=dict(symbol=SYMBOLS[i % len(SYMBOLS)], size=9 if base else 7),
            error_y=error_bars(g),
        )
    tested = sorted(table["ber"].unique())
    reference_line(fig, tested, float(table["clean_accuracy"].iloc[0]), "clean (no faults)", "#a0aec0", "dot")
    fig.update_xaxes(type="log", tickvals=tested, ticktext=[ui.fmt_ber(v) for v in tested])
    layout(fig, "bit error rate")
    st.plotly_chart(fig, width="stretch", key="swb_chart")


def ber_tab(s: Setting) -> None:
    """Accuracy against BER for several plans at one budget: controls, run, chart, table."""
    ask, pressed = ber_controls(s)
    asked = ber_words(s, ask)
    if pressed:
        run("swb", s, asked, ask.plans, [ask.budget], ask.bers, ask.bits)
    table = last_table("swb", asked)
    if table is None:
        st.info("Choose plans and a BER range, then press Run.")
        return
    thin_points(table)
    ber_chart(table)
    download("swb", table, s)


# ---------------------------------------------------------------- accuracy against budget, iso-reliability cost


class BudgetAsk(NamedTuple):
    """The budget tab's controls: scorers, the BER, the budget range and its stops."""

    scorers: list[str]
    ber: float
    lo: float
    hi: float
    budgets: list[float]


def budget_controls(s: Setting) -> tuple[BudgetAsk, bool]:
    """The budget tab's scorers, BER and budget range, what they cost, and the Run button (whether pressed)."""
    scorers = st.multiselect(
        "Scorers",
        list(SCORERS),
        default=["lrp", "magnitude", "random"],
        key="swg_plans",
        help="Each protects all bits of its top budget% weights. No protection and full TMR "
        "are drawn as reference lines.",
    )
    g1, g2, g3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    ber = g1.select_slider(
        "BER",
        ui.BER_VALUES,
        value=1e-5,
        format_func=ui.fmt_ber,
        key="swg_ber",
        help="The bit error rate of every point.",
    )
    lo, hi = g2.select_slider(
        "Budget range",
        ui.BUDGET_VALUES,
        value=(0.1, 10.0),
        format_func=lambda v: f"{v:g}%",
        key="swg_budgets",
        help="Every slider stop in this range is one point per scorer.",
    )
    budgets = [v for v in ui.BUDGET_VALUES if lo <= v <= hi]
    n_runs = len(grid(["none", "full", *scorers], budgets, [ber], [s.fmt]))
    with st.container(key="swg_overheads"):
        st.caption(
            f"{n_runs} campaigns: {len(scorers)} scorers × {len(budgets)} budgets, no protection and full TMR, "
            f"{s.trials} trials each. Memory cost from {lo:g}% to {hi:g}% of the weights: {2 * lo:g}% to "
            f"{2 * hi:g}% extra (two extra copies of every bit of each protected weight); full TMR: 200%."
        )
    pressed = g3.button(f"Run {n_runs} campaigns", key="swg_run", type="primary", disabled=not scorers, width="stretch")
    return BudgetAsk(scorers, ber, lo, hi, budgets), pressed


def budget_words(s: Setting, ask: BudgetAsk) -> str:
    """The budget tab's settings in words (kept with a run's table)."""
    return (
        f"{s.choice.model}, {s.fmt}, {s.trials} trials, {', '.join(ask.scorers) or 'no scorer'}, "
        f"BER {ui.fmt_ber(ask.ber)}, budgets {ask.lo:g} … {ask.hi:g}%, rule {s.rule}"
    )


def budget_chart(table: pd.DataFrame, ask: BudgetAsk) -> list[str]:
    """Accuracy against budget, one line per scorer, no protection and full TMR as reference lines; returns the
    scorers in the order drawn (their colours follow it)."""
    fig = go.Figure()
    scored = table[table["protect"].isin(SCORERS)]
    order = list(dict.fromkeys(scored["protect"]))
    for i, (protect, g) in enumerate(scored.groupby("protect", sort=False)):
        g = g.sort_values("budget")
        fig.add_scatter(
            x=g["budget"],
            y=100 * g["mean_accuracy"],
            name=protect,
            mode="lines+markers",
            line_color=colour(protect, order),
            marker=dict(symbol=SYMBOLS[i % len(SYMBOLS)], size=7),
            error_y=error_bars(g),
        )
    tested = sorted(scored["budget"].unique()) or [ask.lo, ask.hi]
    for protect, name, dash in (("none", "no protection", "dash"), ("full", "full TMR (200%)", "dot")):
        ref = table[table["protect"] == protect]
        if len(ref):
            reference_line(fig, tested, float(ref["mean_accuracy"].iloc[0]), name, PALETTE[protect], dash)
    # tick at each tested budget, labelled in %: plotly's log ticks read 0.5 as "5"
    log = bool(len(scored)) and bool((scored["budget"] > 0).all())
    fig.update_xaxes(type="log" if log else "linear", tickvals=tested, ticktext=[f"{b:g}%" for b in tested])
    layout(fig, "budget (% of weights)")
    st.plotly_chart(fig, width="stretch", key="swg_chart")
    return order


def target_slider(clean: float) -> float:
    """The target accuracy (a fraction), by default a point under the clean accuracy ``clean``, rounded down."""
    return (
        st.slider(
            "Target accuracy (%)",
            0.0,
            100.0,
            value=float(max(0, math.floor(100 * clean - 1.0))),
            step=0.5,
            key="swg_target",
            help="Typically a point or two under the clean accuracy.",
        )
        / 100
    )


def iso_bars(iso: pd.DataFrame, order: list[str]) -> None:
    """The smallest tested budget each scorer needs, as bars; the scorers that never reach it, named."""
    reach = iso.dropna(subset=["min_budget"])
    fig = go.Figure(
        go.Bar(
            x=reach["protect"],
            y=reach["min_budget"],
            marker_color=[colour(p, order) for p in reach["protect"]],
            text=[f"{v:g}%" for v in reach["min_budget"]],
            textposition="outside",
        )
    )
    fig.update_layout(yaxis_title="smallest budget (% of weights)", height=300, margin=dict(l=10, r=10, t=30, b=10))
    if len(reach):
        st.plotly_chart(fig, width="stretch", key="swg_iso")
    missed = iso[iso["min_budget"].isna()]["protect"].tolist()
    if missed:
        st.caption(f"Not reached within the tested budgets: {', '.join(missed)}.")
    st.dataframe(app_state.iso_readable(iso), hide_index=True, width="stretch")


def iso_cost(table: pd.DataFrame, ber: float, order: list[str]) -> None:
    """Iso-reliability cost: a target, and the smallest tested budget with which each scorer reaches it (or a
    note that nothing needs protecting)."""
    st.markdown("**Iso-reliability cost**: the smallest tested budget with which each scorer reaches the target.")
    target = target_slider(float(table["clean_accuracy"].iloc[0]))
    iso = app_state.iso_costs(table, target)
    unprotected = app_state.unprotected_meets(table, target)
    if unprotected is not None:
        with st.container(key="swg_verdict"):
            st.success(
                f"No protection needed: without protection the model keeps {ui.pct(unprotected)} at BER "
                f"{ui.fmt_ber(ber)}, already at or above the {100 * target:g}% target. Every scorer "
                "'reaches' it at the smallest tested budget only because nothing needs protecting."
            )
    elif iso.empty:
        st.info("The sweep has no scorer points to compare.")
    else:
        iso_bars(iso, order)


def budget_tab(s: Setting) -> None:
    """Accuracy against budget for several scorers at one BER, and the budget each needs: controls, run, charts."""
    ask, pressed = budget_controls(s)
    asked = budget_words(s, ask)
    if pressed:
        run("swg", s, asked, [*ask.scorers, "full"], ask.budgets, [ask.ber], None)
    table = last_table("swg", asked)
    if table is None:
        st.info("Choose scorers, a BER and a budget range, then press Run.")
        return
    thin_points(table)
    order = budget_chart(table, ask)
    iso_cost(table, ask.ber, order)
    download("swg", table, s)
