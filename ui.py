"""The app's UI helpers: slider stops, help texts, number formatting, shared widgets, page styling.

Torch-free and computation-free: everything here is about how the app looks and reads; the caches and
the engine calls live in ``app_state``. Pages import this module, ``app_state`` and ``xtmr_core.vocabulary``
(and ``xtmr_core.spec``), nothing else of the project.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import streamlit as st
from streamlit import config

from xtmr_core.vocabulary import (
    DATASETS,
    FORMATS,
    IMAGEFOLDER_PREFIX,
    MODELS,
    NORMALIZATIONS,
    PLANS,
    SCORERS,
    TORCHVISION_PREFIX,
    WORD_BITS,
)

ROOT = Path(__file__).resolve().parent
#: Shipped with the app, so the browser never fetches an icon from the internet.
FAVICON = ROOT / "assets" / "favicon.png"

# ---------------------------------------------------------------- settings shared by the pages

DEFAULTS = {
    "dataset": "mnist5k",
    "model": "lenet5",
    "fmt": "fp32",
    "weights_source": "shipped",
    "rule": "epsilon",
    "protect": "lrp",
    "budget": 1.0,
    "ber": 1e-5,
    "trials": 10,
    "seed": 0,
    # a torchvision architecture and an image folder: never in the URL (a link must not point the server at a
    # path the user did not type), so they live only in the session
    "tv_arch": "resnet18",
    "folder_path": "",
    "folder_size": 32,
    "folder_channels": 3,
    "folder_norm": "none",
}

#: The Architecture select's entry that reveals the torchvision architectures (not a model name itself).
TORCHVISION_ENTRY = "torchvision architecture…"
#: The Dataset select's entry that reveals the image-folder inputs (not a dataset name itself).
FOLDER_ENTRY = "Image folder on this server…"
#: Image-folder side lengths the app offers (pixels; images are resized to a square).
FOLDER_SIZES: tuple[int, ...] = (16, 24, 28, 32, 48, 64, 96, 128, 160, 224)
FOLDER_CHANNELS: tuple[int, ...] = (3, 1)
NORMALIZATION_HELP = {
    "none": "pixels in [0, 1]",
    "imagenet": "ImageNet's per-channel mean and std (what torchvision's pretrained weights expect)",
    "dataset": "the training split's own per-channel mean and std",
}
assert set(NORMALIZATION_HELP) == set(NORMALIZATIONS)


def model_ref() -> str:
    """The session's model reference: a builtin name or ``torchvision:NAME`` (never user code: the Architecture
    select offers only these)."""
    model = setting("model")
    return TORCHVISION_PREFIX + str(setting("tv_arch")) if model == TORCHVISION_ENTRY else str(model)


def uses_folder() -> bool:
    """Whether the session's dataset is an image folder on this server."""
    return setting("dataset") == FOLDER_ENTRY


def folder_label(path: str) -> str:
    """An image folder's dataset name, as the engine calls it."""
    return IMAGEFOLDER_PREFIX + path


#: BER slider stops: 1, 2, 5 per decade from 1e-7 to 1e-2.
BER_VALUES: tuple[float, ...] = tuple(float(f"{m}e{e}") for e in range(-7, -2) for m in (1, 2, 5)) + (1e-2,)
#: Budget slider stops (% of weights): fine steps around 1%, coarse towards 100%.
BUDGET_VALUES: tuple[float, ...] = (
    0.0,
    0.1,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    50.0,
    75.0,
    100.0,
)
#: The seed input's range.
MAX_SEED_UI = 10_000
#: Trials slider stops (at most this many trials per campaign).
TRIAL_VALUES: tuple[int, ...] = (2, 5, 10, 20, 50, 100)
FORMAT_HELP = {
    "fp32": "32-bit float: a flip of the top exponent bit (30) can make a weight 2^128 times larger.",
    "fp16": "16-bit float: smaller exponent range, so exponent flips do less harm than in fp32.",
    "bf16": "bfloat16: fp32's exponent range in 16 bits; exponent flips hurt as in fp32.",
    "int8": "8-bit two's-complement integers with a scale per output channel: a flip moves a weight by at "
    "most 128 steps (bit 7 is worth −128: +127 becomes −1).",
}
PLAN_LABELS = {
    "none": "no protection",
    "lrp": "LRP: top budget% by relevance (the paper)",
    "magnitude": "magnitude: top budget% by |w|",
    "gradient": "gradient: top budget% by |dL/dw|",
    "taylor": "Taylor: top budget% by |w·dL/dw|",
    "random": "random: budget% chosen at random",
    "full": "full TMR: every bit three times",
    "bits": "bit positions: chosen bits of every weight",
    "range": "range guard: out-of-range reads → 0 (no copies)",
    "ecc": "ECC SEC-DED (72, 64): 8 check bits per 64-bit word (12.5%)",
    "damage": "damage: top (weight, bit) pairs by LRP × |Δw| (budget = % extra memory)",
}
SOURCE_LABELS = {"shipped": "Shipped checkpoint", "train": "Train one here", "upload": "Upload a .pt file"}
#: The top exponent bit of each float format (its flip scales a weight by 2^(2^(e-1)) at worst).
_TOP_EXPONENT_BIT = {"fp32": 30, "fp16": 14, "bf16": 14}


def top_bit(fmt: str) -> int:
    """The bit whose flip does the most harm in ``fmt``: the top exponent bit of fp32/fp16/bf16, int8's bit 7
    (two's complement's top bit, worth −128)."""
    return 7 if fmt == "int8" else _TOP_EXPONENT_BIT[fmt]


def plan_label(plan: str) -> str:
    """A plan's name with what it protects (a plan new to the vocabulary shows its bare name)."""
    return PLAN_LABELS.get(plan, plan)


def uses_budget(plan: str) -> bool:
    """Whether the budget slider means something for ``plan``: % of weights for a scorer, % extra memory for
    ``damage``."""
    return plan in SCORERS or plan == "damage"


def role_label(fmt: str, bit: int, role: str) -> str:
    """How a bit's role reads on screen: int8's top bit is not a sign bit but the −128 place of two's complement."""
    if fmt == "int8" and bit == WORD_BITS["int8"] - 1:
        return "top bit, worth −128 (two's complement)"
    return role


#: Settings a link carries: URL parameter -> session key. Shared links and reloads restore them.
URL_SETTINGS = {
    "model": "model",
    "dataset": "dataset",
    "format": "fmt",
    "plan": "protect",
    "budget": "budget",
    "ber": "ber",
    "trials": "trials",
    "seed": "seed",
}


def _choices(key: str) -> tuple | None:
    """The values a setting may take (``None``: any integer in the seed's range)."""
    return {
        "model": MODELS,
        "dataset": DATASETS,
        "fmt": FORMATS,
        "protect": PLANS,
        "budget": BUDGET_VALUES,
        "ber": BER_VALUES,
        "trials": TRIAL_VALUES,
    }.get(key)


def _parse(key: str, raw: str):
    """A URL parameter as the setting's value, or ``None`` when it is not one of the setting's choices."""
    choices = _choices(key)
    try:
        if choices is None:
            value = int(raw)
            return value if 0 <= value <= MAX_SEED_UI else None
        if isinstance(choices[0], str):
            return raw if raw in choices else None
        value = type(choices[0])(float(raw))
        return next((c for c in choices if math.isclose(c, value, rel_tol=1e-9)), None)
    except (TypeError, ValueError):
        return None


def init_settings() -> None:
    """Give every shared setting its session value once per session: from the URL when it carries a valid one,
    else the default. Widgets then take their value from the session (they pass no default of their own).

    A setting already set is written back to itself at the start of every run: without that, a page switch that
    interrupts a run lost the widgets' values of the page left (measured in Chromium: resnet20, int8, BER 1e-2,
    then Model, and the format fell back to fp32). Writing a widget's key is Streamlit's documented way to keep
    its state across pages."""
    for param, key in URL_SETTINGS.items():
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
        else:
            raw = st.query_params.get(param)
            value = None if raw is None else _parse(key, raw)
            st.session_state[key] = DEFAULTS[key] if value is None else value


def sync_url() -> None:
    """Write the shared settings that differ from their defaults into the URL (and drop the others)."""
    for param, key in URL_SETTINGS.items():
        value = st.session_state.get(key, DEFAULTS[key])
        text = fmt_ber(value) if key == "ber" else f"{value:g}" if isinstance(value, float) else str(value)
        if value == DEFAULTS[key] or _parse(key, text) is None:  # e.g. the torchvision / image-folder entries
            if param in st.query_params:
                del st.query_params[param]
        elif st.query_params.get(param) != text:
            st.query_params[param] = text


def setting(name: str):
    """A session setting (its widget's value), or its default when neither a widget nor a link set it."""
    value = st.session_state.get(name)
    return DEFAULTS[name] if value is None else value


# ---------------------------------------------------------------- formatting


def fmt_ber(v: float) -> str:
    """A BER as ``1e-5`` / ``2e-7``."""
    mantissa, exponent = f"{float(v):.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def pct(v: float | None, digits: int = 1) -> str:
    """An accuracy in [0, 1] as a percentage (``–`` for NaN)."""
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.{digits}f}%"


def pt(delta: float, digits: int = 1) -> str | None:
    """An accuracy difference in percentage points, for a metric's delta; ``None`` when it rounds to zero
    (so no arrow claims a change of "+0.0 pt")."""
    if delta is None or not math.isfinite(delta) or round(100 * delta, digits) == 0:
        return None
    return f"{100 * delta:+.{digits}f} pt"


def sci(v: float) -> str:
    """A weight's value in full: scientific notation with 4 significant digits (``2.269e+38``, ``-0.0123``)."""
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.3e}"


# ---------------------------------------------------------------- widgets shared by several pages


def format_select(container=st) -> str:
    """The storage-format selector (the same widget, key, URL parameter and state on every page that draws it)."""
    return container.selectbox(
        "Number format",
        FORMATS,
        key="fmt",
        persist_state="session",
        help="How each weight is stored in memory; it decides what one bit flip does. "
        + " ".join(FORMAT_HELP.values()),
    )


# ---------------------------------------------------------------- the app shell

_shell = threading.local()


class shell_run:
    """Context manager ``app.py`` wraps the page in: marks this script run as one through the app shell."""

    def __enter__(self) -> None:
        _shell.active = True

    def __exit__(self, *exc: object) -> None:
        _shell.active = False


#: The pages in ``pages/``: file stem (also the URL path, as Streamlit's own), title, icon.
PAGE_FILES: tuple[tuple[str, str, str], ...] = (
    ("model", "Model", ":material/memory:"),
    ("relevance", "Relevance", ":material/local_fire_department:"),
    ("fault_lab", "Fault lab", ":material/bolt:"),
    ("sweeps", "Sweeps", ":material/show_chart:"),
)


def app_pages(home) -> list:
    """The app's ``st.Page``s: ``home`` (a function, the default page), then the pages of ``pages/``."""
    return [
        st.Page(home, title="Home", icon=":material/home:", default=True),
        *(st.Page(f"pages/{stem}.py", title=title, icon=icon, url_path=stem) for stem, title, icon in PAGE_FILES),
    ]


def enter_page() -> None:
    """Call first on every page: make sure the page runs inside ``app.py``'s ``st.navigation``.

    Streamlit treats an app with a ``pages/`` folder as a legacy multipage app until the entry point has
    called ``st.navigation`` once in the server process; the first request of a fresh server that opens a page
    URL directly (``/fault_lab``) runs that page alone, without the shell's page config, styling and top
    navigation. ``client.showSidebarNavigation = false`` (``.streamlit/config.toml``) keeps that run's legacy
    page list hidden; here the page hands over to ``st.navigation`` (the public switch away from the legacy
    mode, with the same pages, so the URL keeps its page) and reruns, so the same URL runs through ``app.py``
    before anything is drawn. Under ``AppTest`` (which starts every run in the legacy mode) the page runs on
    its own, as it can.
    """
    init_settings()
    if getattr(_shell, "active", False) or config.get_option("global.appTest"):
        return
    st.navigation(app_pages(_handover), position="hidden")
    st.rerun()


def _handover() -> None:
    """Home's stand-in in the hand-over navigation (never drawn: the page reruns at once)."""


#: Styling for the room and the desk: headline numbers scale with their box (never truncated), compact top
#: padding so sliders, numbers and the chart share one screen at 1280×720 and 150% zoom, stale marking.
CSS = """
<style>
.block-container {padding-top: 3.2rem; padding-bottom: 2rem;}
h1 {font-size: 1.9rem !important; padding: 0.2rem 0 0.4rem 0 !important;}
[data-testid="stMetric"] {container-type: inline-size;}
[data-testid="stMetricValue"] > div {overflow: visible !important; text-overflow: clip !important;}
[data-testid="stMetricLabel"] p {white-space: normal !important;}
[class*="st-key-head_"] [data-testid="stMetricValue"] {font-size: clamp(1.3rem, 21cqi, 3.2rem); line-height: 1.15;}
[class*="st-key-head_"] [data-testid="stMetricValue"] > div {white-space: nowrap;}
[class*="st-key-small_"] [data-testid="stMetricValue"] {font-size: clamp(1.0rem, 11cqi, 1.6rem);}
[class*="st-key-stale_"] {opacity: 0.45; transition: opacity 0.1s;}
.xtmr-word {font-family: monospace; white-space: nowrap; font-size: clamp(0.7rem, 1.45vw, 1.05rem);}
.xtmr-word span {display: inline-block; width: 1.25em; text-align: center; margin: 0 0.5px;}
</style>
"""


def style() -> None:
    """Inject the app's CSS (once per run; an ``st.html`` of a style block takes no space)."""
    st.html(CSS)
