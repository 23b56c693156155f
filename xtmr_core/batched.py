"""Many fault trials in one forward pass: T trials' weight sets stacked and evaluated together.

The seam with the one-trial path is the pair ``(index, values)`` that ``FaultInjector.read`` returns for a
trial: faults are still sampled, voted and decoded per trial exactly as in ``campaign.run_trial`` (so a
trial has the same faults whichever path evaluates it), and only the evaluation of the resulting weight
sets is batched. Each set is the clean flat weight buffer with the trial's values written in; the stack
of T sets goes through ``torch.func.functional_call`` under ``torch.func.vmap``, which turns every
convolution into one grouped convolution and every linear layer into one batched matrix product.

Measured on the 2-core development CPU (8 trials of the 1,000 mnist5k test images, BER 1e-4): one trial at
a time costs 25 ms (lenet5) and 102 ms (vgg16) per trial, the vmap stack 51 ms and 268-460 ms per trial:
a CPU already runs one trial's convolutions at full width, and grouped convolutions are slower there. So
the CPU default stays one trial at a time (``trials_per_pass`` returns 1) and the batched path is for a GPU,
where one trial leaves the device mostly idle. Predictions are bit-identical to the one-trial path on the
CPU (the tests check it on every format and plan).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from xtmr_core.device import eval_batch_size, faithful_fp32
from xtmr_core.faults import FaultSet
from xtmr_core.injection import FaultInjector, TrialSetup
from xtmr_core.models import without_layout_changes

#: One trial's read-back: sorted flat weight indices and the float32 values read there.
Read = tuple[np.ndarray, np.ndarray]
#: One trial's outcome: ``(accuracy, mismatch, faulty_bits, correct)`` (``campaign.trial_outcome``).
Outcome = tuple[float, float, int, np.ndarray]

#: Most trials stacked in one pass (beyond this a GPU is saturated and the weight stack only grows).
MAX_PER_PASS = 256
#: Share of the free GPU memory the stacked weights and activations may take.
MEMORY_SHARE = 0.5


def weight_sets(injector: FaultInjector, reads: Sequence[Read]) -> torch.Tensor:
    """The flat weights of each trial: the clean buffer with that trial's faulty values written in.

    Args:
        injector: the fault injector (its clean words decide the unfaulted weights).
        reads: one ``(index, values)`` per trial, as ``FaultInjector.read`` returns them.

    Returns:
        A ``(T, n_weights)`` float32 tensor on the injector's device (a new tensor: the clean model, the
        injector's worker and its buffer are not touched).
    """
    stack = injector._clean.unsqueeze(0).repeat(len(reads), 1)
    if reads:
        rows = np.concatenate([np.full(len(idx), t, dtype=np.int64) for t, (idx, _) in enumerate(reads)])
        cols = np.concatenate([np.asarray(idx, dtype=np.int64) for idx, _ in reads])
        vals = np.concatenate([np.asarray(v, dtype=np.float32) for _, v in reads])
        if cols.size:
            dev = injector.device
            stack[torch.from_numpy(rows).to(dev), torch.from_numpy(cols).to(dev)] = torch.from_numpy(vals).to(dev)
    return stack


@torch.inference_mode()
def evaluate_many(
    injector: FaultInjector, reads: Sequence[Read], x: torch.Tensor, *, batch_size: int | None = None
) -> torch.Tensor:
    """Predictions of T faulty weight sets on ``x``, all trials in each forward pass.

    Args:
        injector: the fault injector whose worker model gives the architecture, biases and buffers.
        reads: one ``(index, values)`` per trial, as ``FaultInjector.read`` returns them.
        x: inputs on the injector's device.
        batch_size: images per forward pass (``None`` = ``device.eval_batch_size``: 250 on a CPU, the whole
            split on a GPU).

    Returns:
        ``(T, len(x))`` int64 predictions, -1 where a row's logits are not all finite: row ``t`` equals
        ``evaluation.predict`` of the worker holding trial ``t``'s weights.
    """
    faithful_fp32()
    n_trials = len(reads)
    if n_trials == 0:
        return torch.zeros(0, x.shape[0], dtype=torch.long, device=x.device)
    layout = injector.layout
    flat = weight_sets(injector, reads)
    with injector.clean() as worker:  # locked: the worker's modules (not its weights) are borrowed
        names = layout.param_names
        weights = {
            name: flat[:, layout.offsets[i] : layout.offsets[i + 1]].view(n_trials, *layout.shapes[i])
            for i, name in enumerate(names)
        }
        forward = vmap(lambda w, xb: functional_call(worker, w, (xb,)), in_dims=(0, None))
        step = eval_batch_size(x.device, x.shape[0], batch_size)
        out = []
        for start in range(0, x.shape[0], step):
            with without_layout_changes():
                logits = forward(weights, x[start : start + step])
            pred = logits.argmax(dim=-1)
            pred[~torch.isfinite(logits).all(dim=-1)] = -1
            out.append(pred)
    return torch.cat(out, dim=1) if out else torch.zeros(n_trials, 0, dtype=torch.long, device=x.device)


def trials_per_pass(injector: FaultInjector, x: torch.Tensor, requested: int | None = None) -> int:
    """How many trials to stack in one forward pass.

    Args:
        injector: the fault injector (its device and model size).
        x: the inputs one pass evaluates.
        requested: a user's choice (wins when given; at least 1).

    Returns:
        ``requested``; else 1 on a CPU (batching is slower there, see the module notes); on a GPU as many as
        fit in ``MEMORY_SHARE`` of its free memory (stacked weights plus every layer's activations, a bound
        above the true peak), at most ``MAX_PER_PASS``.
    """
    if requested is not None:
        return max(1, int(requested))
    device = torch.device(injector.device)  # a name or a device
    if device.type != "cuda":
        return 1
    free, _total = torch.cuda.mem_get_info(device)
    images = eval_batch_size(device, x.shape[0])
    per_trial = 4 * (injector.n_weights + images * _activations_per_image(injector, x))
    return max(1, min(MAX_PER_PASS, int(MEMORY_SHARE * free // max(per_trial, 1))))


def _activations_per_image(injector: FaultInjector, x: torch.Tensor) -> int:
    """Sum of every module's output elements for one image (an upper bound on what a pass keeps alive)."""
    sizes: list[int] = []

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel())

    with injector.clean() as worker:
        handles = [m.register_forward_hook(hook) for m in worker.modules() if m is not worker]
        try:
            with torch.inference_mode():
                worker(x[:1])
        finally:
            for h in handles:
                h.remove()
    return int(sum(sizes)) + int(math.prod(x.shape[1:]))


@dataclass(frozen=True)
class Job:
    """One trial of one plan: what ``campaign.trial_outcome`` evaluates.

    Attributes:
        setup: the campaign the trial belongs to (injector, plan, fault, test split, seed).
        trial: which trial.
        faults: the trial's faults when given (e.g. stratified sampling); ``None`` = sampled from
            ``(seed, trial)`` exactly as the one-trial path does.
    """

    setup: TrialSetup
    trial: int
    faults: FaultSet | None = None


def outcomes(jobs: Sequence[Job], *, per_pass: int | None = None, skip_clean: bool = True) -> list[Outcome]:
    """The outcome of every job, ``per_pass`` weight sets per forward pass, in the order of ``jobs``.

    Faults are sampled (or taken from the job), voted and decoded per job exactly as on the one-trial
    path; a job whose weights read back clean reuses the clean predictions (``skip_clean``), the others are
    evaluated together. Jobs may differ in plan, fault and seed, but share one injector and test split.

    Returns:
        One ``(accuracy, mismatch, faulty_bits, correct)`` per job, ``correct`` the per-image correctness
        (bool numpy array), as ``campaign.trial_outcome`` returns them.

    Raises:
        ValueError: jobs of different injectors or test splits.
    """
    if not jobs:
        return []
    first = jobs[0].setup
    injector, x, y, clean_pred = first.injector, first.x, first.y, first.clean_pred
    if any(j.setup.injector is not injector or j.setup.x is not x or j.setup.y is not y for j in jobs):
        raise ValueError("jobs evaluated together must share one injector and one test split")
    step = trials_per_pass(injector, x, per_pass)
    clean_words = injector.clean_values.view(np.uint32)
    n = y.numel()
    results: list[Outcome | None] = [None] * len(jobs)
    pending: list[tuple[int, Read, int]] = []  # (job position, read, faulty bits)

    def record(pos: int, pred: torch.Tensor, flips: int) -> None:
        right = int((pred == y).sum())
        differ = int((pred != clean_pred).sum())
        results[pos] = (right / n if n else 0.0, differ / n if n else 0.0, flips, (pred == y).cpu().numpy())

    def flush() -> None:
        preds = evaluate_many(injector, [r for _, r, _ in pending], x)
        for (pos, _, flips), pred in zip(pending, preds):
            record(pos, pred, flips)
        pending.clear()

    for pos, job in enumerate(jobs):
        faults = job.faults if job.faults is not None else job.setup.faults(job.trial)
        index, values = injector.read(faults, job.setup.plan, job.setup.fault.mode)
        if skip_clean and np.array_equal(values.view(np.uint32), clean_words[index]):
            record(pos, clean_pred, faults.count)
            continue
        pending.append((pos, (index, values), faults.count))
        if len(pending) >= step:
            flush()
    if pending:
        flush()
    done = [r for r in results if r is not None]
    assert len(done) == len(jobs)  # every job recorded once, by the clean shortcut or a flush
    return done


def run_trials(
    setup: TrialSetup, trials: Sequence[int], *, per_pass: int | None = None, skip_clean: bool = True
) -> list[tuple[float, float, int]]:
    """Several trials of one campaign, evaluated ``per_pass`` at a time: the results of
    ``[campaign.run_trial(setup, t) for t in trials]``, in that order.

    Args:
        setup: the campaign (``injection.TrialSetup``). skip_clean: as in ``campaign.run_trial``.
        trials: the trial numbers.
        per_pass: trials per forward pass (``None`` = ``trials_per_pass``).

    Returns:
        One ``(accuracy, mismatch, faulty_bits)`` per trial.
    """
    jobs = [Job(setup, int(t)) for t in trials]
    return [(acc, mis, flips) for acc, mis, flips, _ in outcomes(jobs, per_pass=per_pass, skip_clean=skip_clean)]
