"""The benchmark: a fault trial against a clean evaluation, measured in one run.

Beside the engine's trial it times two reference injectors kept only here, the way common
fault-injection tools work: a per-bit random mask over every stored bit, and a per-weight Python loop.
Every figure is a median over repeats, with clean evaluations interleaved, and reported as a ratio to
the clean evaluation of the same run so the numbers hold on a noisy machine.
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from torch import nn

from xtmr_core.batched import run_trials, trials_per_pass
from xtmr_core.campaign import run_trial
from xtmr_core.evaluation import predict
from xtmr_core.experiment import Experiment
from xtmr_core.faults import FaultModel
from xtmr_core.injection import TrialSetup, trial_rng
from xtmr_core.models import weight_layers
from xtmr_core.protection import make_plan

#: Trials per forward pass in the batched columns on a CPU (the engine itself runs one at a time there).
CPU_PER_PASS = 8


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # GPU work is asynchronous: time it finished, not launched
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@contextmanager
def _restored(model: nn.Module) -> Iterator[None]:
    """Copy the weights first and put them back afterwards, as in-place injectors must (also on error)."""
    saved = [m.weight.detach().clone() for _, m in weight_layers(model)]
    try:
        yield
    finally:
        for (_, m), s in zip(weight_layers(model), saved):
            m.weight.data.copy_(s)


def _per_bit_mask_trial(model: nn.Module, x: torch.Tensor, p: float, gen: torch.Generator) -> None:
    """Reference: one random number per stored bit, XOR the mask in place, evaluate, restore.

    The masks are drawn where the model is (``gen`` must be a generator of that device)."""
    with _restored(model):
        for _, m in weight_layers(model):
            w = m.weight.data.view(-1).view(torch.int32)
            shifts = torch.arange(32, dtype=torch.int64, device=w.device)
            hits = torch.rand(w.numel(), 32, generator=gen, device=w.device) < p
            mask = (hits.to(torch.int64) << shifts).sum(dim=1)
            w ^= mask.to(torch.int32)
        predict(model, x)


def _python_loop_trial(model: nn.Module, x: torch.Tensor, p: float, rnd: random.Random) -> None:
    """Reference: a Python loop over every weight (probability of a faulty word, then its bit)."""
    p_word = 1.0 - (1.0 - p) ** 32
    with _restored(model):
        for _, m in weight_layers(model):
            w = m.weight.data.view(-1).view(torch.int32)
            for i in range(w.numel()):
                if rnd.random() < p_word:
                    bit = rnd.randrange(32)
                    w[i] ^= torch.tensor(1 << bit if bit < 31 else -(1 << 31), dtype=torch.int32, device=w.device)
        predict(model, x)


def run_bench(
    models: Sequence[str] = ("lenet5", "vgg16"),
    bers: Sequence[float] = (1e-6, 1e-4, 1e-2),
    *,
    repeats: int = 20,
    reference_repeats: int = 3,
    per_pass: int | None = None,
    device: torch.device | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Time clean evaluations, the engine's fault trials (one at a time and batched) and the two
    reference injectors.

    Args:
        models: shipped models to time (on ``mnist5k``).
        bers: bit error rates.
        repeats: timed repetitions of the clean evaluation and of the engine's trial (median).
        reference_repeats: repetitions of each reference injector (they are slow).
        per_pass: trials stacked per forward pass in the batched columns (``None``: what
            ``batched.trials_per_pass`` chooses on a GPU, ``CPU_PER_PASS`` on a CPU, where the engine's
            default stays one trial at a time).
        device: where to run (default: CUDA if present, else CPU).
        progress: called with a label before each cell.

    Returns:
        One row per (model, BER): weights, bits, mean flips, clean/trial/inject-only/reference times
        in ms and their ratios to the clean evaluation, and trials per second one at a time and batched
        (``per_pass`` trials per forward pass), measured in the same run.
    """
    rows = []
    for name in models:
        exp = Experiment(name, "mnist5k", device=device)
        inj = exp.injector("fp32")
        x, y = exp.x_test, exp.y_test
        clean_pred = exp.clean_predictions("fp32")
        plan = make_plan("none", 32)
        reference = copy.deepcopy(exp.model).eval()
        stack = trials_per_pass(inj, x, per_pass if per_pass is not None or x.device.type == "cuda" else CPU_PER_PASS)
        with inj.clean() as worker:
            predict(worker, x)  # warm-up
        for ber in bers:
            if progress is not None:
                progress(f"{name} @ BER {ber:g}")
            fault = FaultModel(ber)
            counter = iter(range(10**9))

            def clean() -> None:
                with inj.clean() as worker:
                    predict(worker, x)

            def trial() -> None:
                # skip_clean=False: always the full trial, also when no fault reached a weight
                run_trial(TrialSetup(inj, plan, fault, x, y, clean_pred, 0), next(counter), skip_clean=False)

            def batch() -> None:
                first = next(counter) * stack
                setup = TrialSetup(inj, plan, fault, x, y, clean_pred, 1)
                run_trials(setup, range(first, first + stack), per_pass=stack, skip_clean=False)

            def inject_only() -> None:
                faults = inj.sample(plan, fault, trial_rng(0, next(counter)))
                index, values = inj.read(faults, plan, fault.mode)
                with inj.applied(index, values):
                    pass

            clean_times, trial_times = [], []
            for _ in range(repeats):  # interleaved, so drift hits both alike
                clean_times.append(_median_time(clean, 1))
                trial_times.append(_median_time(trial, 1))
            t_clean, t_trial = statistics.median(clean_times), statistics.median(trial_times)
            batch()  # warm-up (vmap traces its batching rules on the first call)
            t_batch = _median_time(batch, max(3, repeats // 4))
            t_inject = _median_time(inject_only, repeats)
            gen = torch.Generator(device=inj.device).manual_seed(0)
            t_mask = _median_time(lambda: _per_bit_mask_trial(reference, x, ber, gen), reference_repeats)
            rnd = random.Random(0)
            t_loop = _median_time(lambda: _python_loop_trial(reference, x, ber, rnd), reference_repeats)
            flips = np.mean([inj.sample(plan, fault, trial_rng(1, t)).count for t in range(20)])
            rows.append(
                {
                    "model": name,
                    "ber": ber,
                    "weights": inj.n_weights,
                    "bits": inj.n_weights * 32,
                    "mean_flips": float(flips),
                    "clean_ms": 1e3 * t_clean,
                    "trial_ms": 1e3 * t_trial,
                    "trial/clean": t_trial / t_clean,
                    "inject_only_ms": 1e3 * t_inject,
                    "per_bit_mask_ms": 1e3 * t_mask,
                    "per_bit_mask/clean": t_mask / t_clean,
                    "python_loop_ms": 1e3 * t_loop,
                    "python_loop/clean": t_loop / t_clean,
                    "per_pass": stack,
                    "trials/s_one": 1.0 / t_trial,
                    "trials/s_batched": stack / t_batch,
                }
            )
    return pd.DataFrame(rows)


def time_lrp(
    models: Sequence[str] = ("lenet5", "vgg16", "resnet20", "mobilenetv2"),
    *,
    n_ref: int = 256,
    rule: str = "epsilon",
    device: torch.device | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Time LRP weight scores (``scoring.score_weights(..., "lrp")``) on ``n_ref`` reference images per model.

    One timed run per model after a warm-up pass on a few images (LRP is run once per model and cached
    by the engine, so its first-call time is what a user waits for); the clean evaluation of the 1,000
    test images is timed in the same run for scale.

    Args:
        models: shipped models (on ``mnist5k``).
        n_ref: reference images relevance is summed over (the engine's default is 256).
        rule: the LRP rule.
        device: where to run (default: CUDA if present, else CPU).
        progress: called with a label before each model.

    Returns:
        One row per model: weights, layers, reference images, LRP seconds, clean evaluation ms and
        their ratio.
    """
    from xtmr_core.relevance import lrp_weight_relevance

    rows = []
    for name in models:
        if progress is not None:
            progress(f"{name}: LRP on {n_ref} images")
        exp = Experiment(name, "mnist5k", device=device, ref_size=n_ref)
        x, y = exp.reference()
        lrp_weight_relevance(exp.model, x[:4], y[:4], rule)  # warm-up: first-call allocations, not the method
        t_lrp = _median_time(lambda: lrp_weight_relevance(exp.model, x, y, rule), 1)
        with exp.injector("fp32").clean() as worker:
            predict(worker, exp.x_test)
            t_clean = _median_time(lambda: predict(worker, exp.x_test), 5)
        rows.append(
            {
                "model": name,
                "weights": exp.n_weights,
                "layers": len(exp.layout.names),
                "ref_images": len(y),
                "lrp_s": t_lrp,
                "clean_ms": 1e3 * t_clean,
                "lrp/clean": t_lrp / t_clean,
            }
        )
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame) -> str:
    """A bench table (``run_bench`` or ``time_lrp``) as Markdown (what the README shows)."""
    shown = table.copy()
    if "ber" in shown:
        shown["ber"] = shown["ber"].map(lambda v: f"{v:g}")
        shown["mean_flips"] = shown["mean_flips"].map(lambda v: f"{v:.1f}")
    for col in shown.columns:
        if col.endswith(("_ms", "_s", "/clean")) or col.startswith("trials/s"):
            shown[col] = shown[col].map(lambda v: f"{v:.3f}" if v < 10 else f"{v:.1f}")
    header = "| " + " | ".join(shown.columns) + " |"
    sep = "|" + "---|" * len(shown.columns)
    lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    device = "CUDA" if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    return "\n".join([header, sep, *lines, "", f"device: {device}; torch {torch.__version__}"])
