"""The app's UI helpers: slider stops, help texts, number formatting, shared widgets, page styling.

Torch-free and computation-free: everything here is about how the app looks and reads; the caches and
the engine calls live in ``app_state``, which model a session uses in ``app_session``. Pages import this module,
``app_session``, ``app_state``, their ``app_views`` parts and the torch-free leaves of ``xtmr_core``
(``vocabulary``, ``spec``, ``errors``), nothing else of the project.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import streamlit as st
from streamlit import config

from xtmr_core.errors import XtmrError
from xtmr_core.format_registry import format_info
from xtmr_core.plan_registry import plan_info, plan_names
from xtmr_core.vocabulary import (
    DATASETS,
    FORMATS,
    IMAGEFOLDER_PREFIX,
    MODELS,
    MODES,
    NORMALIZATIONS,
    PLANS,
    RULES,
    TORCHVISION_PREFIX,
    WORD_BITS,
    check_bits,
    parse_bits,
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
    "guard": False,
    "mode": "flip",
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
RULE_HELP = {
    "epsilon": "epsilon: the basic rule, relevance split in proportion to each contribution a·w.",
    "gamma": "gamma: favours positive contributions (w + 0.25·w⁺); smoother maps.",
    "alpha1beta0": "alpha1-beta0: positive contributions only (w⁺).",
}
SOURCE_LABELS = {"shipped": "Shipped checkpoint", "train": "Train one here", "upload": "Upload a .pt file"}
#: Colours for plans the registry does not know (combinations such as ``lrp+range``), in order of appearance.
SPARE_COLOURS = ("#2c7a7b", "#553c9a", "#9c4221", "#4a5568")


def top_bit(fmt: str) -> int:
    """The bit whose flip does the most harm in ``fmt`` (``format_registry``): the top exponent bit of
    fp32/fp16/bf16, int8's bit 7 (two's complement's top bit, worth −128)."""
    return format_info(fmt).top_bit


def plan_label(plan: str) -> str:
    """A plan's name with what it protects (``plan_registry``; a plan it does not know shows its bare name)."""
    return plan_info(plan).label if plan in plan_names() else plan


def uses_budget(plan: str) -> bool:
    """Whether the budget slider means something for ``plan`` (``plan_registry``): % of weights for a scorer,
    % extra memory for ``damage``."""
    return plan in plan_names() and plan_info(plan).uses_budget


def plan_colour(plan: str, order: list[str] | tuple[str, ...] = ()) -> str:
    """The colour every chart draws ``plan`` in (``plan_registry``); a plan it does not know gets a spare colour
    by its place among the unknown plans in ``order``."""
    if plan in plan_names():
        return plan_info(plan).colour
    spare = [p for p in dict.fromkeys(order) if p not in plan_names()]
    return SPARE_COLOURS[spare.index(plan) % len(SPARE_COLOURS)] if plan in spare else SPARE_COLOURS[-1]


def role_label(fmt: str, bit: int, role: str) -> str:
    """How a bit's role reads on screen: int8's top bit is not a sign bit but the −128 place of two's complement."""
    if fmt == "int8" and bit == WORD_BITS["int8"] - 1:
        return "top bit, worth −128 in two's complement"
    return role


# ---------------------------------------------------------------- the link: every setting that changes a number

#: Settings a link carries: URL parameter -> session key. Shared links and reloads restore them: every Fault lab
#: setting that changes a number is here. ``bits`` and ``fail_bits`` are text kept per format (``format_key``).
URL_SETTINGS = {
    "model": "model",
    "dataset": "dataset",
    "format": "fmt",
    "plan": "protect",
    "budget": "budget",
    "ber": "ber",
    "trials": "trials",
    "guard": "guard",
    "fault": "mode",
    "fail_bits": "fault_bits",
    "bits": "bits",
    "seed": "seed",
    "rule": "rule",
}
#: Settings kept as text per number format (a bit list of fp32 means nothing in int8).
PER_FORMAT = ("bits", "fault_bits")
#: What a link says of a session whose model it cannot carry (weights trained or uploaded there): the URL
#: parameter ``weights`` names the origin, never the data.
WEIGHTS_PARAM = "weights"
#: The ``dataset`` link value of a session on an image folder: the path itself never goes into a link.
FOLDER_PARAM_VALUE = "folder"
#: Where the notes about the session's link live (a list of ``LinkNote``) and the flag that the link was read.
_NOTES_KEY, _READ_KEY = "xtmr_link_notes", "xtmr_link_read"


def format_key(name: str, fmt: str) -> str:
    """The session key of a per-format setting (``bits_fp32``, ``fault_bits_int8``)."""
    return f"{name}_{fmt}"


def per_format_default(name: str, fmt: str) -> str:
    """A per-format setting's default: the format's top bit for the ``bits`` plan, every bit (empty) for faults."""
    return str(top_bit(fmt)) if name == "bits" else ""


@dataclass(frozen=True)
class LinkNote:
    """A link value that was not used as given: the parameter, the session key it set and the value used instead.

    The note stays on the page while that setting still holds ``used`` (the reader has not moved on)."""

    key: str
    used: object
    text: str


def _shown(raw: str) -> str:
    """A link value as a note quotes it: one line, no markdown, at most 40 characters."""
    text = " ".join(str(raw).replace("`", "").split())
    return text if len(text) <= 40 else text[:39] + "…"


def _nearest(stops: tuple, value: float, log: bool = False):
    """The stop closest to ``value`` (on a log scale for ``log``); a tie goes to the larger stop."""
    if log:
        return min(stops, key=lambda s: (abs(math.log(s / value)), -s))
    return min(stops, key=lambda s: (abs(s - value), -s))


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _read_stop(param: str, raw: str, key: str) -> tuple[object, str | None]:
    """A slider setting (budget, BER, trials): the stop itself, the nearest stop (said), or the default (said)."""
    stops, default = {"budget": BUDGET_VALUES, "ber": BER_VALUES, "trials": TRIAL_VALUES}[key], DEFAULTS[key]
    value, show = _number(raw), {"budget": lambda v: f"{v:g}%", "ber": fmt_ber, "trials": str}[key]
    what, valid = {
        "budget": ("a budget (0 … 100%)", value is not None and 0 <= value <= 100),
        "ber": ("a bit error rate (0 … 1)", value is not None and 0 <= value <= 1),
        "trials": ("a number of trials", value is not None and value >= 1 and value == int(value)),
    }[key]
    if not valid or value is None:
        return default, f"`{param}={_shown(raw)}` is not {what}: using {show(default)}"
    exact = next((s for s in stops if math.isclose(s, value, rel_tol=1e-9, abs_tol=1e-12)), None)
    if exact is not None:
        return exact, None
    used = _nearest(stops, max(value, stops[0]) if key == "ber" else value, log=key == "ber")
    return used, f"`{param}={_shown(raw)}` is not a slider stop: using {show(used)}, the nearest"


def _read_bits(param: str, raw: str, fmt: str) -> tuple[str, str | None]:
    """A bit list for ``fmt`` as typed (spaces dropped), or the format's default (said)."""
    name = "fault_bits" if param == "fail_bits" else "bits"
    default = per_format_default(name, fmt)
    text = str(raw).replace(" ", "")
    try:
        check_bits(parse_bits(text), fmt)
    except XtmrError:
        used = "every bit" if not default else f"bit {default}"
        return (
            default,
            f"`{param}={_shown(raw)}` is not a list of {fmt} bit positions (0 … {WORD_BITS[fmt] - 1}): using {used}",
        )
    return text, None


#: The choice-like settings: their choices and what a value of them is called in a note.
_CHOICES = {
    "model": (MODELS, "a built-in model"),
    "dataset": (DATASETS, "a built-in dataset"),
    "fmt": (FORMATS, "a number format"),
    "protect": (PLANS, "a protection plan"),
    "mode": (MODES, "a fault type"),
    "rule": (RULES, "an LRP rule"),
}
_SWITCH = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


def _read_value(param: str, raw: str, key: str) -> tuple[object, str | None]:
    """One link value as its setting's value, and a note when it was not used as given."""
    default = DEFAULTS[key]
    if key in _CHOICES:
        choices, what = _CHOICES[key]
        if raw in choices:
            return raw, None
        why = f"is not {what}"
        if key == "model" and str(raw).startswith(TORCHVISION_PREFIX):
            why = "is a torchvision architecture whose weights were trained or uploaded in another session"
        elif key == "dataset" and raw == FOLDER_PARAM_VALUE:
            why = "is an image folder on the server, which a link never names"
        return default, f"`{param}={_shown(raw)}` {why}: using {default}"
    if key in ("budget", "ber", "trials"):
        return _read_stop(param, raw, key)
    if key == "guard":
        value = _SWITCH.get(str(raw).strip().lower())
        return (
            (default, f"`{param}={_shown(raw)}` is not on or off (1 or 0): using off")
            if value is None
            else (
                value,
                None,
            )
        )
    value = _number(raw)  # the seed
    if value is None or value != int(value) or not 0 <= value <= MAX_SEED_UI:
        return default, f"`{param}={_shown(raw)}` is not a seed (0 … {MAX_SEED_UI:,}): using {default}"
    return int(value), None


def read_link(params: dict[str, str]) -> tuple[dict[str, object], list[LinkNote]]:
    """The settings a link names, by session key, and a note for each value that was not used as given.

    A value that is a setting's choice or slider stop is used as it is; an off-grid number snaps to the nearest
    stop and anything else falls back to the default, each with a one-line note naming the value and what was
    used instead. What a link never carries (a server folder, trained or uploaded weights, user code) is not
    used, and said. Parameters that are no setting are ignored.
    """
    values: dict[str, object] = {}
    notes: list[LinkNote] = []
    for param, key in URL_SETTINGS.items():
        if param not in params or key in PER_FORMAT:
            continue
        value, note = _read_value(param, params[param], key)
        values[key] = value
        if note:
            notes.append(LinkNote(key, value, note))
    fmt = str(values.get("fmt", DEFAULTS["fmt"]))
    for param, name in (("bits", "bits"), ("fail_bits", "fault_bits")):
        if param in params:
            text, note = _read_bits(param, params[param], fmt)
            values[format_key(name, fmt)] = text
            if note:
                notes.append(LinkNote(format_key(name, fmt), text, note))
    if WEIGHTS_PARAM in params:
        raw = params[WEIGHTS_PARAM]
        origin = {"trained": "trained in", "uploaded": "uploaded to"}.get(raw)
        why = f"were {origin} another session" if origin else "is not something a link can carry"
        notes.append(
            LinkNote(
                "weights_source",
                "shipped",
                f"`{WEIGHTS_PARAM}={_shown(raw)}`: those weights {why}, and a "
                "link cannot carry weights: using the shipped checkpoint",
            )
        )
    return values, notes


def link_params(state: dict, weights: str | None) -> dict[str, str]:
    """The link of a session's settings (``state``: session key -> value): every setting off its default, as
    text that ``read_link`` reads back as the same value; ``weights`` (``trained`` / ``uploaded``) when the model
    rests on weights a link cannot carry, which the receiving page then names."""

    def get(key: str) -> object:
        value = state.get(key)
        return DEFAULTS[key] if value is None else value

    fmt = str(get("fmt"))
    out: dict[str, str] = {}
    for param, key in URL_SETTINGS.items():
        if key in PER_FORMAT:
            if key == "bits" and get("protect") != "bits":
                continue  # the bit list changes no number of another plan
            value: object = str(state.get(format_key(key, fmt)) or "").replace(" ", "")
            default: object = per_format_default(key, fmt)
        else:
            value, default = get(key), DEFAULTS[key]
        if value == default:
            continue
        if key == "model" and value == TORCHVISION_ENTRY:
            text = TORCHVISION_PREFIX + str(get("tv_arch"))
        elif key == "dataset" and value == FOLDER_ENTRY:
            text = FOLDER_PARAM_VALUE
        elif key == "guard":
            text = "1" if value else "0"
        else:
            text = fmt_ber(float(value)) if key == "ber" else f"{value:g}" if isinstance(value, float) else str(value)
        out[param] = text
    if weights:
        out[WEIGHTS_PARAM] = weights
    return out


def _keep(key: str) -> None:
    """Write a setting back to itself (a widget's state survives the pages that do not draw it)."""
    st.session_state[key] = st.session_state[key]


def init_settings() -> None:
    """Give every shared setting its session value once per session: from the URL when it carries a valid one,
    else the default, and keep the notes on link values that were not used as given. Widgets then take their
    value from the session (they pass no default of their own).

    A setting already set is written back to itself at the start of every run: without that, a page switch that
    interrupts a run lost the widgets' values of the page left (measured in Chromium: resnet20, int8, BER 1e-2,
    then Model, and the format fell back to fp32). Writing a widget's key is Streamlit's documented way to keep
    its state across pages."""
    if _READ_KEY not in st.session_state:
        values, notes = read_link({p: st.query_params.get(p) for p in st.query_params})
        st.session_state[_READ_KEY] = True
        st.session_state[_NOTES_KEY] = notes
    else:
        values = {}
    keys = [k for k in URL_SETTINGS.values() if k not in PER_FORMAT]
    keys += [format_key(name, fmt) for name in PER_FORMAT for fmt in FORMATS]
    for key in keys:
        if key in st.session_state:
            _keep(key)
        elif key in values:
            st.session_state[key] = values[key]
        else:
            name, _, fmt = key.rpartition("_")
            st.session_state[key] = per_format_default(name, fmt) if name in PER_FORMAT else DEFAULTS[key]


def sync_url(weights: str | None = None) -> None:
    """Write the shared settings that differ from their defaults into the URL (and drop the others);
    ``weights``: ``trained`` / ``uploaded`` when the session's model rests on weights no link carries."""
    wanted = link_params(dict(st.session_state), weights)
    for param in [*URL_SETTINGS, WEIGHTS_PARAM]:
        if param not in wanted:
            if param in st.query_params:
                del st.query_params[param]
        elif st.query_params.get(param) != wanted[param]:
            st.query_params[param] = wanted[param]


def add_link_note(key: str, text: str) -> None:
    """Note that setting ``key`` was changed from what the link or session asked (shown while it keeps its value)."""
    notes = [n for n in st.session_state.get(_NOTES_KEY, ()) if n.key != key]
    st.session_state[_NOTES_KEY] = [*notes, LinkNote(key, _current(key), text)]


def _current(key: str) -> object:
    """A setting's session value, or its default (per-format keys included)."""
    value = st.session_state.get(key)
    if value is None:
        name, _, fmt = key.rpartition("_")
        return per_format_default(name, fmt) if name in PER_FORMAT else DEFAULTS.get(key)
    return value


def link_notes(choice) -> None:
    """What the page's link leaves out, said plainly: link values this session did not use as given (a warning,
    one line per value, while the setting still holds what was used instead), and a model the link of this page
    cannot carry (``choice``: the session's ``app_session.ModelChoice``; trained or uploaded weights, a server
    folder)."""
    notes = [n for n in st.session_state.get(_NOTES_KEY, ()) if _current(n.key) == n.used]
    st.session_state[_NOTES_KEY] = notes
    if notes:
        st.warning("  \n".join(f"This link's {n.text}." for n in notes), icon=":material/link_off:")
    gap = link_gap(choice.source == "custom", choice.label, str(setting("model")), str(setting("dataset")))
    if gap:
        with st.container(key="link_gap"):
            st.caption(":material/link_off: " + gap)


def options_label() -> str:
    """The Fault lab's "more options" heading, naming the options that are off their defaults (the numbers beside it
    depend on them, and a closed expander would hide them)."""
    fmt = str(setting("fmt"))
    changed = [
        f"{setting('mode')} faults" if setting("mode") != DEFAULTS["mode"] else "",
        f"failing bits {_current(format_key('fault_bits', fmt))}" if _current(format_key("fault_bits", fmt)) else "",
        f"seed {setting('seed')}" if setting("seed") != DEFAULTS["seed"] else "",
        f"rule {setting('rule')}" if setting("rule") != DEFAULTS["rule"] else "",
    ]
    now = ", ".join(c for c in changed if c)
    return "More fault options: fault type, failing bits, seed, LRP rule" + (f" (now: {now})" if now else "")


def link_gap(custom: bool, label: str, model: str, dataset: str) -> str | None:
    """The sentence saying what this session's link does not carry, and what it opens instead (``None``: the
    link reproduces the page). ``model`` / ``dataset``: the Architecture and Dataset selections."""
    missing = []
    if custom:
        missing.append(f"the weights ({label})")
    if dataset == FOLDER_ENTRY:
        missing.append("the image folder on this server")
    if not missing and model != TORCHVISION_ENTRY:
        return None
    falls_to = (
        model if model in MODELS else DEFAULTS["model"],
        dataset if dataset in DATASETS else DEFAULTS["dataset"],
    )
    what = " and ".join(missing) if missing else "a torchvision architecture's weights"
    return (
        f"This page's link does not carry {what}: opened from it, the app shows {falls_to[0]} on {falls_to[1]} "
        "with its shipped weights, and says so. Download the weights on the Model page to share them."
    )


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


def signed_pt(delta: float, digits: int = 1, unit: bool = True) -> str:
    """A signed difference in percentage points (``+2.1 pt``); one that rounds to zero reads ``±0.0`` (never
    ``-0.0``)."""
    text = f"{100 * delta:+.{digits}f}"
    if float(text) == 0:
        text = "±" + text[1:]
    return text + (" pt" if unit else "")


def memory(n_bytes: float) -> str:
    """A memory size: KiB up to 1,024 KiB, MiB above (``240.1 KiB``, ``2.17 MiB``)."""
    kib = n_bytes / 1024
    return f"{kib:,.1f} KiB" if kib < 1024 else f"{kib / 1024:,.2f} MiB"


def short_model(model: str) -> str:
    """A model reference as a headline shows it: a torchvision architecture without its prefix."""
    return model.removeprefix(TORCHVISION_PREFIX)


def short_dataset(dataset: str) -> str:
    """A dataset as a headline shows it: an image folder as ``image folder`` (its path goes in the help)."""
    return "image folder" if dataset.startswith(IMAGEFOLDER_PREFIX) else dataset


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


class PageFile(NamedTuple):
    """A page in ``pages/``: file stem (also the URL path, as Streamlit's own), title, icon, and what Home says
    of it under "Where to go next"."""

    stem: str
    title: str
    icon: str
    blurb: str


#: The pages in ``pages/``, in the navigation's order: adding a page is its file and one entry here.
PAGE_FILES: tuple[PageFile, ...] = (
    PageFile(
        "model",
        "Model",
        ":material/memory:",
        "choose dataset, architecture and number format; train or upload weights.",
    ),
    PageFile(
        "relevance",
        "Relevance",
        ":material/local_fire_department:",
        "see which weights LRP finds relevant, layer by layer.",
    ),
    PageFile(
        "fault_lab",
        "Fault lab",
        ":material/bolt:",
        "drag the budget and the bit error rate; watch accuracy under faults.",
    ),
    PageFile(
        "sweeps",
        "Sweeps",
        ":material/show_chart:",
        "accuracy against BER and budget for several plans; the smallest budget per scorer.",
    ),
)


def app_pages(home) -> list:
    """The app's ``st.Page``s: ``home`` (a function, the default page), then the pages of ``pages/``."""
    return [
        st.Page(home, title="Home", icon=":material/home:", default=True),
        *(st.Page(f"pages/{p.stem}.py", title=p.title, icon=p.icon, url_path=p.stem) for p in PAGE_FILES),
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
[class*="st-key-card_"] [data-testid="stMetricValue"] {font-size: clamp(1.1rem, 12cqi, 2.25rem); line-height: 1.2;}
[class*="st-key-card_"] [data-testid="stMetricValue"] > div {white-space: normal !important; overflow-wrap: anywhere;}
[class*="st-key-stale_"] {opacity: 0.45; transition: opacity 0.1s;}
.xtmr-word {font-family: monospace; white-space: nowrap; font-size: clamp(0.7rem, 1.45vw, 1.05rem);}
.xtmr-word span {display: inline-block; width: 1.25em; text-align: center; margin: 0 0.5px;}
</style>
"""


def style() -> None:
    """Inject the app's CSS (once per run; an ``st.html`` of a style block takes no space)."""
    st.html(CSS)
