"""The app's one caching and session-state module (no computation of its own).

* ``st.cache_resource``: one ``Experiment`` per (model, dataset, checkpoint id), shared by every
  session and never mutated (trials run on the injector's private worker copy, under its lock).
* ``st.cache_data``: campaign results and other derived data, keyed by the experiment key and their
  configuration; results are plain data (dataclasses, numpy arrays, DataFrames).
* Session settings (dataset, model, format, BER, ...) live in widgets with ``persist_state="session"``;
  ``setting`` reads them on pages where the widget is not drawn.

Every wrapper here calls exactly one engine function; pages call these wrappers and draw.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
import torch

from xtmr_core.campaign import CampaignResult, PointResult
from xtmr_core.checkpoints import MAX_UPLOAD_BYTES as MAX_UPLOAD_BYTES  # "X as X": re-exported for the pages
from xtmr_core.checkpoints import load_state_dict_bytes, shipped_checkpoint
from xtmr_core.data import dataset_missing
from xtmr_core.errors import XtmrError
from xtmr_core.experiment import Experiment
from xtmr_core.formats import bit_roles
from xtmr_core.layers_view import (
    LayerMap,
    layer_map,
    layer_table,
    protected_per_layer,
    relevance_sample,
)
from xtmr_core.layers_view import signed_range as signed_range
from xtmr_core.layers_view import weight_memory_bytes as weight_memory_bytes
from xtmr_core.protection import Overhead, overhead
from xtmr_core.relevance import input_relevance, layer_relevance_shares, lrp_weight_relevance
from xtmr_core.scoring import topk_overlap
from xtmr_core.sensitivity import FlipOutcome, flip_one
from xtmr_core.session_checkpoints import digest
from xtmr_core.session_checkpoints import train_checkpoint as train_checkpoint
from xtmr_core.spec import CampaignSpec
from xtmr_core.sweep import COLUMNS, PAIRED_COLUMNS, iso_table, point_rows, run_sweep
from xtmr_core.vocabulary import DATASETS, FORMATS, SCORERS, WORD_BITS

# ---------------------------------------------------------------- settings shared by the pages

DEFAULTS = {"dataset": "mnist5k", "model": "lenet5", "fmt": "fp32", "weights_source": "shipped", "rule": "epsilon"}

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
FORMAT_HELP = {
    "fp32": "32-bit float: a flip of the top exponent bit (30) can make a weight 2^128 times larger.",
    "fp16": "16-bit float: smaller exponent range, so exponent flips do less harm than in fp32.",
    "bf16": "bfloat16: fp32's exponent range in 16 bits; exponent flips hurt as in fp32.",
    "int8": "8-bit integers with a scale per output channel: a flip moves a weight by at most 128 steps.",
}
SOURCE_LABELS = {"shipped": "Shipped checkpoint", "train": "Train one here", "upload": "Upload a .pt file"}


def top_bit(fmt: str) -> int:
    """The bit whose flip does the most harm in ``fmt``: fp32's bit 30, the top exponent bit of fp16/bf16,
    int8's bit 7 (a step of 128)."""
    return 7 if fmt == "int8" else max(b for b, r in enumerate(bit_roles(fmt)) if r == "exponent")


def setting(name: str):
    """A session setting (its widget's value), or its default when the widget was never drawn."""
    value = st.session_state.get(name)
    return DEFAULTS[name] if value is None else value


def fmt_ber(v: float) -> str:
    """A BER as ``1e-5`` / ``2e-7``."""
    mantissa, exponent = f"{float(v):.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def pct(v: float, digits: int = 1) -> str:
    """An accuracy in [0, 1] as a percentage (``–`` for NaN)."""
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.{digits}f}%"


def format_select(container=st) -> str:
    """The storage-format selector (the same widget, key and state on every page that draws it)."""
    return container.selectbox(
        "Number format",
        FORMATS,
        key="fmt",
        persist_state="session",
        help="How each weight is stored in memory; it decides what one bit flip does. "
        + " ".join(FORMAT_HELP.values()),
    )


# ---------------------------------------------------------------- navigation


def enter_page() -> None:
    """Call first on every page: make sure the page runs inside ``app.py``'s ``st.navigation``.

    Streamlit treats an app with a ``pages/`` folder as a legacy (v1) multipage app until the entry
    point has called ``st.navigation`` once in the server process. When a fresh server's first request
    opens a page URL directly (e.g. ``/fault_lab``), the page would run alone, without the entry
    point's page config, sidebar and titles. Switch the process to ``st.navigation`` and rerun: the
    same URL then runs through ``app.py``. (Renaming ``pages/`` would avoid this, but the layout
    asks for ``pages/``.) Under ``AppTest`` the page simply runs on its own, as it can.
    """
    from streamlit import config
    from streamlit.runtime.pages_manager import PagesManager

    # AppTest resets this flag before every run and runs a switched-to page on its own; a rerun there
    # would only drop the button clicks of the run, so pages run as they are.
    if PagesManager.uses_pages_directory and not config.get_option("global.appTest"):
        PagesManager.uses_pages_directory = False
        st.rerun()


# ---------------------------------------------------------------- which model is active


@dataclass(frozen=True)
class ModelChoice:
    """The active model of a session.

    Attributes:
        model, dataset: names. source: ``shipped`` or ``custom``.
        ckpt_id: the shipped file's version (mtime/size) or the custom checkpoint's SHA-256.
        label: a short human description of where the weights come from.
    """

    model: str
    dataset: str
    source: str
    ckpt_id: str
    label: str

    @property
    def key(self) -> str:
        """The cache key of everything derived from this model."""
        return f"{self.model}|{self.dataset}|{self.source}|{self.ckpt_id}"


def custom_checkpoint() -> dict | None:
    """The session's trained/uploaded checkpoint: ``{origin, model, dataset, sha, name, data, history}``."""
    return st.session_state.get("custom_ckpt")


def set_custom_checkpoint(entry: dict | None) -> None:
    """Make a trained/uploaded checkpoint the session's custom model (``None`` forgets it)."""
    st.session_state["custom_ckpt"] = entry


def current_choice() -> ModelChoice:
    """The model the session works on: its custom checkpoint when chosen and fitting, else the shipped one."""
    model, dataset, source = setting("model"), setting("dataset"), setting("weights_source")
    custom = custom_checkpoint()
    if (
        source in ("train", "upload")
        and custom
        and custom["origin"] == source
        and custom["model"] == model
        and custom["dataset"] == dataset
    ):
        return ModelChoice(
            model,
            dataset,
            "custom",
            custom["sha"],
            f"{'trained here' if source == 'train' else 'uploaded ' + custom['name']}",
        )
    return shipped_choice(model, dataset)


def shipped_choice(model: str, dataset: str) -> ModelChoice:
    """The shipped checkpoint of (model, dataset); its id changes when the file does (``missing`` if none)."""
    try:
        path = shipped_checkpoint(model, dataset)
    except XtmrError:
        path = None
    ckpt_id = f"{path.stat().st_mtime_ns}-{path.stat().st_size}" if path is not None else "missing"
    return ModelChoice(model, dataset, "shipped", ckpt_id, "shipped checkpoint")


@st.cache_resource(max_entries=6, show_spinner="Loading the model and its data…")
def _shipped_experiment(model: str, dataset: str, ckpt_id: str) -> Experiment:
    return Experiment(model, dataset)


@st.cache_resource(max_entries=6, show_spinner="Loading the checkpoint…")
def _custom_experiment(model: str, dataset: str, sha: str, _data: bytes, name: str) -> Experiment:
    net, meta = load_state_dict_bytes(_data, model, dataset, name=name)
    return Experiment(model, dataset, net=net, meta=meta)


def load_experiment(choice: ModelChoice) -> Experiment:
    """The shared ``Experiment`` of a choice (cached across sessions).

    Raises:
        XtmrError: no checkpoint, a dataset that is not available offline, or weights that do not fit.
    """
    if choice.source == "custom":
        custom = custom_checkpoint()
        return _custom_experiment(choice.model, choice.dataset, choice.ckpt_id, custom["data"], custom["name"])
    return _shipped_experiment(choice.model, choice.dataset, choice.ckpt_id)


def try_custom_experiment(model: str, dataset: str, data: bytes, name: str) -> Experiment:
    """Load (and cache) checkpoint bytes as ``model`` on ``dataset``; raises ``XtmrError`` on a misfit."""
    return _custom_experiment(model, dataset, digest(data), data, name)


def require_experiment() -> tuple[ModelChoice, Experiment]:
    """The active choice and its experiment; on failure explain in one sentence and stop the page."""
    choice = current_choice()
    try:
        return choice, load_experiment(choice)
    except XtmrError as e:
        if choice.source == "shipped" and str(e).startswith("no shipped checkpoint"):
            st.error(f"No weights are shipped for {choice.model} on {choice.dataset}.")
            st.info(
                "On the **Model** page, choose *Train one here* under Weights (a minute or two on a CPU) or "
                "upload a .pt file; or pick lenet5, alexnet or vgg16 on mnist5k, which are shipped."
            )
        else:
            st.error(str(e))
            st.info("Pick another dataset or architecture on the **Model** page, or train / upload weights there.")
        st.stop()
        raise  # unreachable: st.stop() ends the run


# ---------------------------------------------------------------- cached computations


def scores(exp: Experiment, scorer: str, rule: str = "epsilon") -> np.ndarray:
    """Flat per-weight scores (cached inside the shared ``Experiment``), with a spinner the first time."""
    with st.spinner(f"Scoring every weight by {scorer} (once per model)…"):
        return exp.scores(scorer, rule)


def _spec(exp: Experiment, protect: str, budget: float, fmt: str, **fields) -> CampaignSpec:
    """The configuration as a ``CampaignSpec`` (normalised, so equal plans share cache entries); a scorer
    plan's scores are computed first, under a spinner."""
    spec = CampaignSpec(protect, budget, fmt=fmt, **fields)
    if spec.protect in SCORERS:
        scores(exp, spec.protect, spec.rule)
    return spec


def campaign(
    exp_key: str,
    exp: Experiment,
    protect: str,
    budget: float,
    ber: float,
    fmt: str,
    *,
    trials: int = 20,
    seed: int = 0,
    bits: tuple[int, ...] | None = None,
    rule: str = "epsilon",
    mode: str = "flip",
    fault_bits: tuple[int, ...] | None = None,
) -> CampaignResult:
    """``Experiment.evaluate`` for one configuration, cached across sessions by its ``CampaignSpec``."""
    faults = dict(ber=ber, trials=trials, seed=seed, mode=mode, fault_bits=tuple(fault_bits) if fault_bits else None)
    spec = _spec(exp, protect, budget, fmt, bits=bits, rule=rule, **faults)
    return _campaign(exp_key, spec, exp)


@st.cache_data(max_entries=4096, show_spinner=False)
def _campaign(exp_key: str, spec: CampaignSpec, _exp: Experiment) -> CampaignResult:
    return _exp.evaluate(spec)


def protected_layers(
    exp_key: str,
    exp: Experiment,
    protect: str,
    budget: float,
    fmt: str,
    *,
    bits: tuple[int, ...] | None = None,
    rule: str = "epsilon",
) -> pd.DataFrame:
    """Per layer, how many weights the plan protects (cached)."""
    return _protected_layers(exp_key, _spec(exp, protect, budget, fmt, bits=bits, rule=rule), exp)


@st.cache_data(max_entries=1024, show_spinner=False)
def _protected_layers(exp_key: str, spec: CampaignSpec, _exp: Experiment) -> pd.DataFrame:
    return protected_per_layer(_exp.layout, _exp.plan(spec))


def plan_overhead(
    exp_key: str,
    exp: Experiment,
    protect: str,
    budget: float,
    fmt: str,
    *,
    bits: tuple[int, ...] | None = None,
    rule: str = "epsilon",
) -> Overhead:
    """``protection.overhead`` of a plan, without running a campaign (cached)."""
    return _plan_overhead(exp_key, _spec(exp, protect, budget, fmt, bits=bits, rule=rule), exp)


@st.cache_data(max_entries=1024, show_spinner=False)
def _plan_overhead(exp_key: str, spec: CampaignSpec, _exp: Experiment) -> Overhead:
    return overhead(_exp.plan(spec), _exp.n_weights, WORD_BITS[spec.fmt], len(_exp.layout.names))


@st.cache_data(max_entries=4096, show_spinner=False)
def flip(exp_key: str, weight: int, bit: int, fmt: str, _exp: Experiment) -> FlipOutcome:
    """``sensitivity.flip_one``: one bit of one weight flipped (cached)."""
    return flip_one(_exp, int(weight), int(bit), fmt)


@st.cache_data(max_entries=64, show_spinner=False)
def clean_accuracies(exp_key: str, _exp: Experiment) -> dict[str, float]:
    """Clean test accuracy of the model stored in each format."""
    return {fmt: _exp.clean_accuracy(fmt) for fmt in FORMATS}


@st.cache_data(max_entries=32, show_spinner="Computing LRP relevance of every weight (once per model and rule)…")
def signed_relevance(exp_key: str, rule: str, _exp: Experiment) -> dict[str, np.ndarray]:
    """``relevance.lrp_weight_relevance`` on the reference set: signed relevance per layer."""
    x, y = _exp.reference()
    rel = lrp_weight_relevance(_exp.model, x, y, rule)
    return {name: t.numpy() for name, t in rel.items()}


@st.cache_data(max_entries=256, show_spinner="Computing input relevance…")
def input_heatmaps(exp_key: str, indices: tuple[int, ...], rule: str, target: str, _exp: Experiment) -> np.ndarray:
    """``relevance.input_relevance`` for test images, started at the true or the predicted class."""
    idx = torch.as_tensor(indices, dtype=torch.long)
    x = _exp.x_test[idx.to(_exp.x_test.device)]
    if target == "true":
        t = _exp.y_test[idx.to(_exp.y_test.device)]
    else:
        t = _exp.clean_predictions("fp32")[idx.to(_exp.x_test.device)].clamp(min=0)
    return input_relevance(_exp.model, x, t, rule).numpy()


def overlap(
    exp_key: str, exp: Experiment, a: str, b: str, fractions: tuple[float, ...], rule: str = "epsilon"
) -> list[float]:
    """``scoring.topk_overlap`` of two scorers' top-k sets at each fraction (cached)."""
    scores(exp, a, rule)
    scores(exp, b, rule)
    return _overlap(exp_key, a, b, rule, tuple(float(f) for f in fractions), exp)


@st.cache_data(max_entries=64, show_spinner=False)
def _overlap(exp_key, a, b, rule, fractions, _exp: Experiment) -> list[float]:
    def per_layer(scorer):
        flat = _exp.scores(scorer, rule)
        return {n: torch.from_numpy(np.ascontiguousarray(v)) for n, v in _exp.layout.split(flat).items()}

    return topk_overlap(per_layer(a), per_layer(b), fractions)


# ---------------------------------------------------------------- Relevance page views (pages helper)


@st.cache_data(max_entries=32, show_spinner=False)
def relevance_shares(exp_key: str, rule: str, _exp: Experiment) -> pd.DataFrame:
    """Per layer (forward order): its kind, its share of total |relevance| and of the weights, in %."""
    rel = signed_relevance(exp_key, rule, _exp)
    names = list(_exp.layout.names)
    shares = layer_relevance_shares({n: torch.from_numpy(rel[n]) for n in names})
    sizes = _exp.layout.sizes()
    kinds = dict(zip(layer_table(_exp.model)["layer"], layer_table(_exp.model)["type"]))
    return pd.DataFrame(
        {
            "layer": names,
            "type": [kinds.get(n, "") for n in names],
            "relevance %": [100 * shares[n] for n in names],
            "weights %": 100 * sizes / max(int(sizes.sum()), 1),
        }
    )


@st.cache_data(max_entries=64, show_spinner=False)
def layer_heatmap(exp_key: str, rule: str, layer: str, show: str, _exp: Experiment) -> LayerMap:
    """``layers_view.layer_map`` of one layer's relevance (``show="relevance"``) or fp32 weight values."""
    if show == "relevance":
        values = signed_relevance(exp_key, rule, _exp)[layer]
    else:
        values = _exp.layout.split(_exp.injector("fp32").clean_values)[layer]
    return layer_map(np.ascontiguousarray(values), max_cells=4096)


@st.cache_data(max_entries=32, show_spinner=False)
def relevance_points(exp_key: str, rule: str, _exp: Experiment, n: int = 3000) -> pd.DataFrame:
    """``layers_view.relevance_sample``: weights for the relevance-vs-magnitude scatter."""
    rel = signed_relevance(exp_key, rule, _exp)
    flat = _exp.layout.flatten({name: torch.from_numpy(rel[name]) for name in _exp.layout.names})
    return relevance_sample(_exp.layout, _exp.injector("fp32").clean_values, flat, n=n)


# ---------------------------------------------------------------- Model page views (pages helper)


def datasets_missing() -> dict[str, str]:
    """The datasets whose files are absent on this server, each with the folder its files go in."""
    return {name: folder for name in DATASETS if (folder := dataset_missing(name)) is not None}


@st.cache_data(max_entries=32, show_spinner=False)
def layer_rows(exp_key: str, _exp: Experiment) -> pd.DataFrame:
    """``layers_view.layer_table`` of the experiment's model."""
    return layer_table(_exp.model)


# ---------------------------------------------------------------- Sweeps page (pages helper)


def sweep(
    exp_key: str,
    exp: Experiment,
    protects: list[str],
    budgets: list[float],
    bers: list[float],
    fmt: str,
    *,
    done: list[dict],
    progress: Callable[[int, int, str], None] | None = None,
    **common: object,
) -> pd.DataFrame:
    """``sweep.run_sweep`` with a cached point as its evaluator, so every grid point is computed once across
    sessions; each finished point's rows are also appended to ``done``, so a sweep stopped by a rerun keeps
    them (a point interrupted half-way is not cached: the rerun's exception leaves the cache untouched)."""

    def evaluate_point(specs, should_stop=None, stratify: bool = False) -> PointResult:
        for spec in specs:
            if spec.protect in SCORERS:
                scores(exp, spec.protect, spec.rule)
        point = _point(exp_key, tuple(specs), stratify, exp)
        done.extend(point_rows(exp, point))
        return point

    return run_sweep(exp, protects, budgets, bers, [fmt], progress=progress, evaluate_point=evaluate_point, **common)


@st.cache_data(max_entries=1024, show_spinner=False)
def _point(exp_key: str, specs: tuple[CampaignSpec, ...], stratify: bool, _exp: Experiment) -> PointResult:
    return _exp.evaluate_point(list(specs), stratify=stratify)


def sweep_table(rows: list[dict]) -> pd.DataFrame:
    """The table of a sweep's finished rows (already paired against their point's baseline)."""
    return pd.DataFrame(rows, columns=[*COLUMNS, *PAIRED_COLUMNS])


def iso_costs(table: pd.DataFrame, target: float) -> pd.DataFrame:
    """``sweep.iso_table``: the smallest tested budget each scorer needs to reach ``target``."""
    return iso_table(table, target)


def sweep_csv(table: pd.DataFrame, *, seed: int, rule: str, weights: str) -> bytes:
    """A sweep table as CSV, every row carrying what reproduces it: seed, LRP rule, weights and versions."""
    return table.assign(seed=seed, lrp_rule=rule, weights=weights, **versions()).to_csv(index=False).encode()


@functools.cache
def versions() -> dict[str, str]:
    """What a CSV needs to name its software: xtmr (version and git commit), torch, numpy, python."""
    import platform
    import subprocess
    from pathlib import Path

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "xtmr_commit": commit,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
    }
