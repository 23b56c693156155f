"""The app's one caching seam: every call from a page into the engine, cached across sessions.

One convention: every cached call takes the ``ModelChoice`` first (``app_session``: a frozen, hashable value
naming the model, its dataset and its weights), then plain values or a ``CampaignSpec`` (frozen, hashable,
normalised: it is the cache key as it is). Each call fetches the shared ``Experiment`` itself
(``experiment(choice)``), so a page never warms anything up before a call.

* ``st.cache_resource``: one ``Experiment`` per choice, shared by every session and never mutated (trials run
  on the injector's private worker copy, under its lock); the campaign store (see ``campaign``); the bytes of
  trained and uploaded checkpoints (``hold_weights``); an image folder's splits.
* ``st.cache_data``: other derived data (plain dataclasses, numpy arrays, DataFrames), copied per caller.
* Scores arrays handed to pages are read-only views.

Each wrapper fetches what the engine needs from the ``Experiment`` and calls the engine, gluing at most its
results into one table (and ``versions`` names the software a CSV came from); the rules themselves live in
``xtmr_core``. Which model a session uses, and the error
a page shows when it cannot load, live in ``app_session``; constants, help texts, formatting and widgets in
``ui``.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import streamlit as st
import torch

import ui
from xtmr_core.attribution import Comparison, compare_maps, input_attributions, pixel_maps
from xtmr_core.campaign import CampaignResult, PointResult
from xtmr_core.checkpoints import load_state_dict_bytes
from xtmr_core.data import DataSplits, dataset_missing, load_dataset
from xtmr_core.errors import XtmrError as XtmrError
from xtmr_core.experiment import Experiment
from xtmr_core.image_folder import ImageFolderSpec as ImageFolderSpec  # "X as X": re-exported for the pages
from xtmr_core.image_folder import load_image_folder
from xtmr_core.image_view import folder_problem as folder_problem  # "X as X": the Model page's path check
from xtmr_core.image_view import screen_images
from xtmr_core.layers_view import LayerMap, layer_map, layer_table, protected_per_layer, relevance_sample
from xtmr_core.layers_view import signed_range as signed_range
from xtmr_core.layers_view import weight_memory_bytes as weight_memory_bytes
from xtmr_core.model_source import load_from_source
from xtmr_core.model_source import torchvision_architectures as _torchvision_architectures
from xtmr_core.protection import Overhead, overhead
from xtmr_core.relevance import input_relevance, layer_relevance_shares, lrp_weight_relevance
from xtmr_core.scoring import topk_overlap
from xtmr_core.sensitivity import FlipOutcome, flip_one, trial_predictions
from xtmr_core.sensitivity import word_value as word_value_of
from xtmr_core.session_checkpoints import train_checkpoint as train_checkpoint
from xtmr_core.spec import CampaignSpec
from xtmr_core.sweep import COLUMNS, PAIRED_COLUMNS, iso_table, iso_text, point_rows, run_sweep
from xtmr_core.sweep_view import MIN_TRIALS as MIN_TRIALS  # "X as X": re-exported for the Sweeps page
from xtmr_core.sweep_view import mask_recovered
from xtmr_core.sweep_view import thin_points as thin_points
from xtmr_core.sweep_view import unprotected_meets as unprotected_meets
from xtmr_core.training import TrainingRecipe
from xtmr_core.vocabulary import DATASETS, FORMATS, SCORERS, WORD_BITS, model_kind
from xtmr_core.vote_view import VoteDemo, random_flips, vote_demo

if TYPE_CHECKING:  # only a type here: app_session builds choices and imports this module, never the reverse
    from app_session import ModelChoice

# ---------------------------------------------------------------- models, weights and data


@st.cache_resource
def _held_weights() -> dict[str, tuple[bytes, str]]:
    """Trained/uploaded checkpoints (bytes, file name) by SHA-256, so a ``ModelChoice`` alone finds its weights."""
    return {}


def hold_weights(sha: str, data: bytes, name: str, *, replace: bool = True) -> None:
    """Keep a trained/uploaded checkpoint's bytes under its SHA-256 for ``experiment`` (shared across sessions,
    the 8 most recent; ``replace=False`` keeps an entry already there)."""
    held = _held_weights()
    if not replace and sha in held:
        return
    held[sha] = (data, name)
    while len(held) > 8:  # uploads can be 50 MiB each: keep the few most recent
        held.pop(next(iter(held)))


@st.cache_data(show_spinner=False)
def torchvision_architectures() -> tuple[str, ...]:
    """The torchvision classification architectures the Architecture select offers."""
    return _torchvision_architectures()


@st.cache_resource(max_entries=4, show_spinner="Reading the image folder…")
def folder_splits(folder: ImageFolderSpec) -> DataSplits:
    """``image_folder.load_image_folder``, once per folder and reading options (shared across sessions).

    Raises:
        XtmrError: a missing or empty folder, unreadable images (one line).
    """
    return load_image_folder(folder)


def folder_summary(folder: ImageFolderSpec) -> dict:
    """What the Model page says of a loaded folder: classes, images, train/test split, size, normalisation.

    Raises:
        XtmrError: as ``folder_splits``, or ``image_view.folder_problem`` of the path (said before anything is read).
    """
    problem = folder_problem(folder.root)
    if problem is not None:
        raise XtmrError(problem)
    splits = folder_splits(folder)
    info = splits.info
    return {
        "classes": len(splits.classes),
        "images": int(info["images"]),
        "train": int(splits.x_train.shape[0]),
        "test": int(splits.x_test.shape[0]),
        "shape": "×".join(map(str, splits.in_shape)),
        "normalize": info["normalize"],
    }


@st.cache_resource(max_entries=6, show_spinner="Loading the model and its data…")
def experiment(choice: ModelChoice) -> Experiment:
    """The shared ``Experiment`` of a choice (one per model, dataset and weights, across sessions).

    Raises:
        XtmrError: no checkpoint, a dataset that is not available offline, or weights that do not fit.
    """
    # Never user code: the app builds only builtin names and torchvision:NAME (load_from_source is never asked
    # to allow code; this check keeps a stray FILE.py:FACTORY from even reaching it).
    if model_kind(choice.model) not in ("builtin", "torchvision"):
        raise XtmrError(f"model {choice.model!r} is user code; it can only be loaded from the command line")
    if choice.folder is None and choice.dataset not in DATASETS:
        raise XtmrError("no image folder chosen yet: type its path on the Model page")
    outside = choice.folder is not None or model_kind(choice.model) != "builtin"
    if choice.source != "custom":
        if outside:
            on = "an image folder" if choice.folder is not None else choice.dataset
            raise XtmrError(f"no shipped weights for {choice.model} on {on}: upload a state dict or train one here")
        return Experiment(choice.model, choice.dataset)
    entry = _held_weights().get(choice.ckpt_id)
    if entry is None:
        raise XtmrError("this session's trained or uploaded weights are gone: train or upload them again")
    if not outside:
        net, meta = load_state_dict_bytes(entry[0], choice.model, choice.dataset, name=entry[1])
        return Experiment(choice.model, choice.dataset, net=net, meta=meta)
    splits = folder_splits(choice.folder) if choice.folder is not None else load_dataset(choice.dataset)
    net, meta = load_from_source(choice.model, splits, checkpoint=entry[0], name=entry[1])
    return Experiment(choice.model, splits.name, net=net, meta=meta, splits=splits)


def train_weights(
    model: str, dataset: str, folder: ImageFolderSpec | None, *, progress: Callable | None = None, **recipe: Any
) -> tuple[bytes, list]:
    """``session_checkpoints.train_checkpoint`` of ``model`` on a builtin dataset or on the image folder
    ``folder`` (its splits from the shared cache); ``recipe``: the other ``training.TrainingRecipe`` fields
    (epochs, lr, seed, batch_size), ``progress`` as in ``training.train_model``.

    Raises:
        XtmrError: data that cannot be read, or a model that does not fit it.
    """
    splits = folder_splits(folder) if folder is not None else None
    return train_checkpoint(TrainingRecipe(model, dataset, **recipe), splits=splits, progress=progress)


# ---------------------------------------------------------------- campaigns


class _Store:
    """Finished campaign results by key, least recently used dropped first; safe across sessions."""

    def __init__(self, max_entries: int) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict = OrderedDict()
        self._max = max_entries

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)


@st.cache_resource
def _campaigns() -> _Store:
    return _Store(max_entries=4096)


def is_cached(choice: ModelChoice, specs: tuple[CampaignSpec, ...]) -> bool:
    """Whether ``point(choice, specs)`` would answer from the cache."""
    return _campaigns().get(("point", choice, tuple(specs), False)) is not None


def campaign(
    choice: ModelChoice, spec: CampaignSpec, *, progress: Callable[[int, int], None] | None = None
) -> CampaignResult:
    """``Experiment.evaluate`` of one spec, cached across sessions by (choice, spec).

    Not ``st.cache_data``: ``progress`` (called after each trial) may draw, and a Streamlit rerun raised from
    it cancels the campaign, which is then not stored.
    """
    key = ("campaign", choice, spec)
    hit = _campaigns().get(key)
    if hit is None:
        hit = experiment(choice).evaluate(spec, progress=progress)
        _campaigns().put(key, hit)
    return copy.deepcopy(hit)


def point(
    choice: ModelChoice,
    specs: tuple[CampaignSpec, ...],
    *,
    on_trial: Callable[[PointResult], None] | None = None,
    design: str = "auto",
) -> PointResult:
    """``Experiment.evaluate_point``: the plans of one grid point and their unprotected baseline
    (``results[0]``) on the same trials, cached across sessions by (choice, specs).

    ``on_trial`` gets the partial ``PointResult`` after each trial (a live display); a Streamlit rerun raised
    from it cancels the point, which is then not stored.
    """
    key = ("point", choice, tuple(specs), design)
    hit = _campaigns().get(key)
    if hit is None:
        hit = experiment(choice).evaluate_point(list(specs), on_trial=on_trial, design=design)
        _campaigns().put(key, hit)
    return copy.deepcopy(hit)


@st.cache_data(max_entries=1024, show_spinner=False)
def protected_layers(choice: ModelChoice, spec: CampaignSpec) -> pd.DataFrame:
    """Per layer, how many weights the spec's plan protects."""
    exp = experiment(choice)
    return protected_per_layer(exp.layout, exp.plan(spec))


@st.cache_data(max_entries=1024, show_spinner=False)
def plan_overhead(choice: ModelChoice, spec: CampaignSpec) -> Overhead:
    """``protection.overhead`` of the spec's plan, without running a campaign."""
    exp = experiment(choice)
    return overhead(exp.plan(spec), exp.n_weights, WORD_BITS[spec.fmt], len(exp.layout.names))


# ---------------------------------------------------------------- weights, bits, relevance


@st.cache_data(max_entries=64, show_spinner="Scoring every weight (once per model)…")
def _scores(choice: ModelChoice, scorer: str, rule: str) -> np.ndarray:
    return experiment(choice).scores(scorer, rule)


def scores(choice: ModelChoice, scorer: str, rule: str = "epsilon") -> np.ndarray:
    """Flat per-weight scores of one scorer (layout order), read-only."""
    if scorer not in SCORERS:
        raise XtmrError(f"unknown scorer {scorer!r}: choose one of {', '.join(SCORERS)}")
    out = _scores(choice, scorer, rule if scorer == "lrp" else "epsilon")
    out.setflags(write=False)
    return out


@st.cache_data(max_entries=4096, show_spinner=False)
def flip(choice: ModelChoice, weight: int, bit: int, fmt: str) -> FlipOutcome:
    """``sensitivity.flip_one``: one bit of one weight flipped."""
    return flip_one(experiment(choice), int(weight), int(bit), fmt)


@st.cache_data(max_entries=64, show_spinner=False)
def clean_accuracies(choice: ModelChoice) -> dict[str, float]:
    """Clean test accuracy of the model stored in each format."""
    exp = experiment(choice)
    return {fmt: exp.clean_accuracy(fmt) for fmt in FORMATS}


@st.cache_data(max_entries=32, show_spinner="Computing LRP relevance of every weight (once per model and rule)…")
def signed_relevance(choice: ModelChoice, rule: str) -> dict[str, np.ndarray]:
    """``relevance.lrp_weight_relevance`` on the reference set: signed relevance per layer."""
    exp = experiment(choice)
    x, y = exp.reference()
    rel = lrp_weight_relevance(exp.model, x, y, rule)
    return {name: t.numpy() for name, t in rel.items()}


def reference_size(choice: ModelChoice) -> int:
    """How many images the choice's relevance is summed over (``Experiment.reference``: at most 256 correctly
    classified training images, at most half the training split of a small image folder).

    Raises:
        XtmrError: a model that classifies too few of them correctly.
    """
    return int(experiment(choice).reference()[1].shape[0])


@st.cache_data(max_entries=256, show_spinner="Computing input relevance…")
def input_heatmaps(choice: ModelChoice, indices: tuple[int, ...], rule: str, target: str) -> np.ndarray:
    """``relevance.input_relevance`` for test images, started at the true or the predicted class."""
    exp = experiment(choice)
    idx = torch.as_tensor(indices, dtype=torch.long)
    x = exp.x_test[idx.to(exp.x_test.device)]
    if target == "true":
        t = exp.y_test[idx.to(exp.y_test.device)]
    else:
        t = exp.clean_predictions("fp32")[idx.to(exp.x_test.device)].clamp(min=0)
    return input_relevance(exp.model, x, t, rule).numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def overlap(choice: ModelChoice, a: str, b: str, fractions: tuple[float, ...], rule: str = "epsilon") -> list[float]:
    """``scoring.topk_overlap`` of two scorers' top-k sets at each fraction."""
    exp = experiment(choice)

    def per_layer(scorer):
        flat = scores(choice, scorer, rule)
        return {n: torch.from_numpy(np.array(v)) for n, v in exp.layout.split(flat).items()}

    return topk_overlap(per_layer(a), per_layer(b), tuple(float(f) for f in fractions))


@st.cache_data(max_entries=4096, show_spinner=False)
def word_value(choice: ModelChoice, weight: int, word: int, fmt: str) -> float:
    """``sensitivity.word_value``: what a stored word of one weight reads back as."""
    return word_value_of(experiment(choice), int(weight), int(word), fmt)


def vote(word: int, n_bits: int, flips: tuple[tuple[int, ...], ...]) -> VoteDemo:
    """``vote_view.vote_demo``: three copies of a word, each with its flips, and their bitwise vote."""
    return vote_demo(word, n_bits, flips)


def draw_flips(n_bits: int, ber: float, seed: int) -> tuple[tuple[int, ...], ...]:
    """``vote_view.random_flips``: the flips of three copies of one word at a BER."""
    return random_flips(n_bits, ber, seed)


@st.cache_data(max_entries=256, show_spinner=False)
def fault_list(
    choice: ModelChoice, spec: CampaignSpec, trial: int, specs: tuple[CampaignSpec, ...] = ()
) -> pd.DataFrame:
    """The faults of one trial of a campaign: layer, flat index, index in the tensor, bit, copy. ``specs``: the
    campaigns of the point it ran in (they decide its sampling design; default: ``spec`` alone)."""
    exp = experiment(choice)
    return exp.faults_of_trial(spec, int(trial), specs=list(specs) or None).to_frame(exp.layout)


@st.cache_data(max_entries=256, show_spinner=False)
def trial_digits(
    choice: ModelChoice, spec: CampaignSpec, trial: int, count: int = 6, specs: tuple[CampaignSpec, ...] = ()
) -> pd.DataFrame:
    """Test images whose prediction one trial changed (first ``count``): index, label, clean and faulty
    prediction (``-1``: NaN/inf output), and the image as a 2-D float array in [0, 1]. ``specs``: the campaigns
    of the point the trial ran in (default: ``spec`` alone)."""
    exp = experiment(choice)
    faulty = trial_predictions(exp, spec, int(trial), list(specs) or None)
    clean = exp.clean_predictions(spec.fmt, spec.int8_granularity).cpu().numpy()
    changed = np.flatnonzero(faulty != clean)[: int(count)]
    return pd.DataFrame(
        {
            "index": changed,
            "label": exp.y_test.cpu().numpy()[changed],
            "clean": clean[changed],
            "faulty": faulty[changed],
            "image": display_images(choice, tuple(int(i) for i in changed)),
        }
    )


def display_images(choice: ModelChoice, indices: tuple[int, ...]) -> list[np.ndarray]:
    """``image_view.screen_images`` of test images: H×W (one channel) or H×W×3 (RGB), floats in [0, 1], with an
    image folder's normalisation undone."""
    exp = experiment(choice)
    if not indices:
        return []
    idx = torch.as_tensor(indices, dtype=torch.long).to(exp.x_test.device)
    info = getattr(exp.splits, "info", None) or {}
    return screen_images(exp.x_test[idx].detach().cpu().numpy(), info.get("mean"), info.get("std"))


# ---------------------------------------------------------------- Relevance page views


@st.cache_data(max_entries=32, show_spinner="Computing LRP relevance of every weight (once per model and rule)…")
def relevance_shares(choice: ModelChoice, rule: str) -> pd.DataFrame:
    """Per layer (forward order): its kind, its share of total |relevance| and of the weights, in %."""
    exp = experiment(choice)
    rel = signed_relevance(choice, rule)
    names = list(exp.layout.names)
    shares = layer_relevance_shares({n: torch.from_numpy(rel[n]) for n in names})
    sizes = exp.layout.sizes()
    table = layer_table(exp.model)
    kinds = dict(zip(table["layer"], table["type"]))
    return pd.DataFrame(
        {
            "layer": names,
            "type": [kinds.get(n, "") for n in names],
            "relevance %": [100 * shares[n] for n in names],
            "weights %": 100 * sizes / max(int(sizes.sum()), 1),
        }
    )


@st.cache_data(max_entries=64, show_spinner=False)
def layer_heatmap(choice: ModelChoice, rule: str, layer: str, show: str) -> LayerMap:
    """``layers_view.layer_map`` of one layer's relevance (``show="relevance"``) or fp32 weight values."""
    exp = experiment(choice)
    if show == "relevance":
        values = signed_relevance(choice, rule)[layer]
    else:
        values = exp.layout.split(exp.injector("fp32").clean_values)[layer]
    return layer_map(np.ascontiguousarray(values), max_cells=4096)


@st.cache_data(max_entries=32, show_spinner=False)
def relevance_points(choice: ModelChoice, rule: str, n: int = 3000) -> pd.DataFrame:
    """``layers_view.relevance_sample``: weights for the relevance-vs-magnitude scatter."""
    exp = experiment(choice)
    rel = signed_relevance(choice, rule)
    flat = exp.layout.flatten({name: torch.from_numpy(rel[name]) for name in exp.layout.names})
    return relevance_sample(exp.layout, exp.injector("fp32").clean_values, flat, n=n)


# ---------------------------------------------------------------- Model page views


def datasets_missing() -> dict[str, str]:
    """The datasets whose files are absent on this server, each with the folder its files go in."""
    return {name: folder for name in DATASETS if (folder := dataset_missing(name)) is not None}


@st.cache_data(max_entries=32, show_spinner=False)
def layer_rows(choice: ModelChoice) -> pd.DataFrame:
    """``layers_view.layer_table`` of the choice's model."""
    return layer_table(experiment(choice).model)


# ---------------------------------------------------------------- Sweeps page


def sweep(
    choice: ModelChoice,
    protects: list[str],
    budgets: list[float],
    bers: list[float],
    fmt: str,
    *,
    done: list[dict],
    progress: Callable[[int, int, str], None] | None = None,
    **common: object,
) -> pd.DataFrame:
    """``sweep.run_sweep`` with the cached ``point`` as its evaluator, so every grid point is computed once across
    sessions; each finished point's rows are also appended to ``done``, so a sweep stopped by a rerun keeps
    them (a point interrupted half-way is not cached: the rerun's exception leaves the cache untouched)."""
    exp = experiment(choice)

    def evaluate_point(specs, should_stop=None, design: str = "auto") -> PointResult:
        result = point(choice, tuple(specs), design=design)
        done.extend(point_rows(exp, result))
        return result

    return run_sweep(exp, protects, budgets, bers, [fmt], progress=progress, evaluate_point=evaluate_point, **common)


def sweep_table(rows: list[dict]) -> pd.DataFrame:
    """The table of a sweep's finished rows (already paired against their point's baseline)."""
    return pd.DataFrame(rows, columns=[*COLUMNS, *PAIRED_COLUMNS])


def recovered_shown(table: pd.DataFrame) -> pd.DataFrame:
    """``sweep_view.mask_recovered``: ``recovered`` blanked where the unprotected loss is no larger than its noise."""
    return mask_recovered(table)


def iso_costs(table: pd.DataFrame, target: float) -> pd.DataFrame:
    """``sweep.iso_table``: the smallest tested budget each scorer needs to reach ``target``."""
    return iso_table(table, target)


def iso_readable(iso: pd.DataFrame) -> pd.DataFrame:
    """``sweep.iso_text``: the smallest-budget table with ``not reached (max budget tried: X%)`` instead of NaN."""
    return iso_text(iso)


def sweep_csv(table: pd.DataFrame, *, seed: int, rule: str, weights: str) -> bytes:
    """A sweep table as CSV, every row carrying what reproduces it: seed, LRP rule, weights and versions."""
    return table.assign(seed=seed, lrp_rule=rule, weights=weights, **versions()).to_csv(index=False).encode()


@functools.cache
def versions() -> dict[str, str]:
    """What a CSV needs to name its software: xtmr (version and git commit), torch, numpy, python."""
    import platform
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ui.ROOT,
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


# ---------------------------------------------------------------- input attributions beside LRP (Relevance page)


def _start_classes(exp: Experiment, idx: torch.Tensor, target: str) -> torch.Tensor:
    """The class each test image's map starts at: its label (``true``) or the fp32 model's prediction."""
    if target == "true":
        return exp.y_test[idx.to(exp.y_test.device)]
    return exp.clean_predictions("fp32")[idx.to(exp.x_test.device)].clamp(min=0)


@st.cache_data(max_entries=256, show_spinner=False)
def image_classes(choice: ModelChoice, indices: tuple[int, ...]) -> list[tuple[int, int]]:
    """(label, fp32 prediction) of test images, for their titles on the Relevance page."""
    exp = experiment(choice)
    idx = torch.as_tensor(indices, dtype=torch.long)
    labels = _start_classes(exp, idx, "true").tolist()
    return list(zip(labels, _start_classes(exp, idx, "predicted").tolist()))


@st.cache_data(max_entries=256, show_spinner="Computing input attributions (Captum's gradient methods beside LRP)…")
def _attribution_maps(
    choice: ModelChoice, index: int, rule: str, target: str, methods: tuple[str, ...]
) -> dict[str, np.ndarray]:
    exp = experiment(choice)
    idx = torch.as_tensor([index], dtype=torch.long)
    x = exp.x_test[idx.to(exp.x_test.device)]
    maps = input_attributions(exp.model, x, _start_classes(exp, idx, target), methods, rule=rule)
    return {name: pixel_maps(m.numpy())[0] for name, m in maps.items()}


@st.cache_data(max_entries=256, show_spinner=False)
def attribution_comparison(
    choice: ModelChoice, index: int, rule: str, target: str, methods: tuple[str, ...], fraction: float
) -> Comparison:
    """``attribution.compare_maps`` of one test image's pixel maps by ``methods`` (``vocabulary.ATTRIBUTIONS``),
    started at its true or predicted class as ``input_heatmaps`` is, and their overlap in the top ``fraction``."""
    return compare_maps(_attribution_maps(choice, index, rule, target, methods), fraction)
