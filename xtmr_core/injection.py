"""One fault trial on a private worker copy of the model: sample, vote, write, evaluate, restore.

The clean model is never touched. The worker's faultable weights are views into one flat buffer, so a
trial writes only the few weights its faults reach (cost grows with the number of faults, not with the
model) and restores them in a ``finally``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from xtmr_core import ecc
from xtmr_core.device import default_device, faithful_fp32
from xtmr_core.faults import CHECK_COPY, FaultModel, FaultSet, Region, sample_faults
from xtmr_core.formats import encode
from xtmr_core.memory import faultable_tensors, flat_weights, layout_of
from xtmr_core.protection import ProtectionPlan
from xtmr_core.voting import majority


def corrupt(words: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Apply faults to stored words.

    Args:
        words: int64 words (unsigned bit patterns).
        mask: int64 masks, a 1 at each faulty bit.
        mode: ``flip``, ``stuck0`` or ``stuck1``.

    Returns:
        The words as read from the faulty memory.
    """
    out: np.ndarray
    if mode == "flip":
        out = words ^ mask
    elif mode == "stuck0":
        out = words & ~mask
    elif mode == "stuck1":
        out = words | mask
    else:
        raise ValueError(f"unknown fault mode {mode!r}")
    return out


class FaultInjector:
    """Faults a model's weight memory in one number format, trial by trial.

    Args:
        model: the clean model (read once, never changed).
        fmt: the storage format (``fp32``, ``fp16``, ``bf16``, ``int8``).
        int8_granularity: ``channel`` or ``tensor`` scales for int8.
        device: where the worker model runs (default: CUDA if present, else CPU).
        fault_biases: the layers' biases are stored in faultable memory too (``memory.faultable_tensors``).
    """

    def __init__(
        self,
        model: nn.Module,
        fmt: str = "fp32",
        *,
        int8_granularity: str = "channel",
        device: torch.device | None = None,
        fault_biases: bool = False,
    ) -> None:
        self.device = device or default_device()
        faithful_fp32()  # every trial evaluates on this injector's worker: fp32 must mean fp32 there
        self.layout = layout_of(model, fault_biases)
        self.stored = encode(flat_weights(model, fault_biases), fmt, self.layout, int8_granularity)
        self.clean_values = self.stored.values()
        sizes = self.layout.sizes()
        starts = self.layout.offsets[:-1]
        self._lo = np.minimum.reduceat(self.clean_values, starts) if sizes.size else np.zeros(0)
        self._hi = np.maximum.reduceat(self.clean_values, starts) if sizes.size else np.zeros(0)
        self._full = (1 << self.stored.bits) - 1
        # Unsigned clean words, so masks and votes never see sign extension.
        self._words = self.stored.words.astype(np.int64) & self._full
        self._unsigned = self.stored.unsigned
        self._lock = threading.RLock()
        self.worker = copy.deepcopy(model).to(self.device).eval()
        for p in self.worker.parameters():
            p.requires_grad_(False)
        self._clean = torch.from_numpy(self.clean_values.copy()).to(self.device)
        self._flat = self._clean.clone()
        tensors = faultable_tensors(self.worker, fault_biases)
        for (_name, module, attr), lo, hi in zip(tensors, starts, self.layout.offsets[1:]):
            view = self._flat[lo:hi].view(getattr(module, attr).shape)
            setattr(module, attr, nn.Parameter(view, requires_grad=False))

    @property
    def format(self) -> str:
        """The storage format."""
        return self.stored.format

    @property
    def n_weights(self) -> int:
        """Number of faultable weights."""
        return self.layout.n_weights

    def regions(self, plan: ProtectionPlan, fault: FaultModel) -> list[Region]:
        """The stored bit blocks that can fail under ``fault`` with ``plan``'s extra copies or check bits.

        The primary copy is always the same first region (so every plan of a campaign sees the same primary
        faults). ECC check bits fail only when every bit position can fail (``fault.bits`` is ``None``):
        a restriction to some weight bit positions says nothing about check bits.
        """
        positions = fault.positions(self.stored.bits)
        regions = [Region(None, positions, 0, self.n_weights)]
        if plan.ecc:  # a SEC-DED read path: check bits instead of copies
            if fault.bits is None:
                m = ecc.weights_per_word(self.stored.bits)
                n_words = ecc.n_code_words(self.n_weights, self.stored.bits)
                first = np.arange(n_words, dtype=np.int64) * m
                regions.append(Region(first, np.arange(ecc.CHECK_BITS, dtype=np.int64), CHECK_COPY, n_words))
            return regions
        if plan.masks is not None:
            weights, bits = plan.pairs
            keep = np.isin(bits, positions)
            if keep.any():
                w, b = weights[keep], bits[keep]
                regions += [Region(w, b, c, int(w.size), paired=True) for c in (1, 2)]
            return regions
        protected = np.intersect1d(np.array(plan.bits, dtype=np.int64), positions)
        n_prot = plan.protected_weights(self.n_weights)
        if protected.size and n_prot:
            regions += [Region(plan.weights, protected, c, n_prot) for c in (1, 2)]
        return regions

    def sample(self, plan: ProtectionPlan, fault: FaultModel, rng: np.random.Generator) -> FaultSet:
        """Sample one trial's faulty bits (primary memory and TMR copies)."""
        return sample_faults(self.regions(plan, fault), float(fault.ber), rng)

    def read(self, faults: FaultSet, plan: ProtectionPlan, mode: str = "flip") -> tuple[np.ndarray, np.ndarray]:
        """The weights the faulty memory reads back, for the weights the faults reach.

        Each of the three copies of a protected bit is corrupted by its own faults; the value read is
        their bitwise majority. Unprotected bits come from the primary copy alone.

        Args:
            faults: the trial's faulty bits.
            plan: the protection plan (its copies and range guard).
            mode: the fault mode.

        Returns:
            ``(index, values)``: sorted flat indices of the affected weights and the float32 values read.
        """
        if faults.count == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if plan.ecc:  # the read path: decode SEC-DED words, or vote TMR copies
            index, word, detected = self._read_ecc(faults, plan, mode)
        else:
            index, word = self._read_tmr(faults, plan, mode)
            detected = None
        stored = word.astype(self._unsigned).view(self.stored.words.dtype)
        values = self.stored.decode(stored, index)
        if detected is not None:
            values[detected] = 0.0
        if plan.guard:
            layer = self.layout.layer_of(index)
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(values) | (values < self._lo[layer]) | (values > self._hi[layer])
            values[bad] = 0.0
        return index, values

    def _read_tmr(self, faults: FaultSet, plan: ProtectionPlan, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """``(index, words)``: the voted words (unsigned, int64) of the weights the faults reach."""
        index, inverse = np.unique(faults.weight, return_inverse=True)
        masks = np.zeros((index.size, 3), dtype=np.int64)
        # Positions are distinct, so adding the bit values of one word is the same as OR-ing them.
        np.add.at(masks, (inverse, faults.copy.astype(np.int64)), np.left_shift(1, faults.bit))
        clean = self._words[index]
        primary = corrupt(clean, masks[:, 0], mode) & self._full
        if plan.bits:
            protected = plan.mask_of(index)
            copy1 = corrupt(clean, masks[:, 1], mode) & self._full
            copy2 = corrupt(clean, masks[:, 2], mode) & self._full
            word = (majority(primary, copy1, copy2) & protected) | (primary & ~protected)
        else:
            word = primary
        return index, word

    def _read_ecc(
        self, faults: FaultSet, plan: ProtectionPlan, mode: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(index, words, detected)`` of every weight in the 64-bit ECC words the faults reach.

        Each reached word is packed from the clean weight words, corrupted in its data and check bits,
        and decoded; ``detected`` marks the weights to read as 0 (words with a detected error, when
        ``plan.on_double`` is ``zero``), else ``None``.
        """
        wb = self.stored.bits
        m = ecc.weights_per_word(wb)
        check = faults.copy == CHECK_COPY
        code_word = faults.weight // m
        words, inverse = np.unique(code_word, return_inverse=True)
        data_mask = np.zeros(words.size, dtype=np.uint64)
        check_mask = np.zeros(words.size, dtype=np.uint64)
        data_bit = ((faults.weight % m) * wb + faults.bit).astype(np.uint64)
        # Distinct positions: adding the bit values is OR-ing them.
        np.add.at(data_mask, inverse[~check], np.left_shift(np.uint64(1), data_bit[~check]))
        np.add.at(check_mask, inverse[check], np.left_shift(np.uint64(1), faults.bit[check].astype(np.uint64)))
        clean = ecc.pack(self._words, wb, words)
        data = corrupt(clean, data_mask, mode)
        checks = corrupt(ecc.encode(clean).astype(np.uint64), check_mask, mode).astype(np.uint8)
        out, status = ecc.decode(data, checks)
        index = (words[:, None] * m + np.arange(m)[None, :]).ravel()
        valid = index < self.n_weights
        word = ecc.unpack(out, wb).ravel()[valid]
        detected = None
        if plan.on_double == "zero":
            detected = np.repeat(status == ecc.DETECTED, m)[valid]
        return index[valid], word, detected

    @contextmanager
    def applied(self, index: np.ndarray, values: np.ndarray) -> Iterator[nn.Module]:
        """Write faulty weights into the worker model for the duration of a ``with`` block.

        The worker is locked meanwhile (concurrent app sessions share injectors) and restored to the
        clean values on exit, also when the block raises.

        Yields:
            The worker model holding the faulty weights.
        """
        with self._lock:
            idx = torch.from_numpy(np.asarray(index, dtype=np.int64)).to(self.device)
            try:
                self._flat[idx] = torch.from_numpy(np.asarray(values, dtype=np.float32)).to(self.device)
                yield self.worker
            finally:
                self._flat[idx] = self._clean[idx]

    @contextmanager
    def clean(self) -> Iterator[nn.Module]:
        """The worker model holding the clean weights (in this format), locked for a ``with`` block."""
        with self._lock:
            yield self.worker

    def is_clean(self) -> bool:
        """Whether the worker holds exactly the clean weights (a check for tests and the app)."""
        with self._lock:
            return bool(torch.equal(self._flat, self._clean))


def trial_rng(seed: int, trial: int) -> np.random.Generator:
    """The random generator of one trial: trial ``t`` of seed ``s`` draws the same faults every time,
    whatever other trials ran before it."""
    return np.random.default_rng([int(seed), int(trial)])


def trial_faults(injector: FaultInjector, plan: ProtectionPlan, fault: FaultModel, seed: int, trial: int) -> FaultSet:
    """The exact faults of trial ``trial`` of a campaign with ``seed`` (for export and inspection)."""
    return injector.sample(plan, fault, trial_rng(seed, trial))


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value to compare by
class TrialSetup:
    """What every trial of one campaign shares, passed as one value (``campaign.trial_outcome``,
    ``batched.run_trials``); the trial number travels beside it, since one setup serves many trials.

    Attributes:
        injector: what is faulted (its format decides the stored words).
        plan: how it is protected. fault: how it fails.
        x, y: the test split, on the injector's device. clean_pred: the clean model's predictions on ``x``.
        seed: the campaign seed; trial ``t`` draws from ``(seed, t)``.
    """

    injector: FaultInjector
    plan: ProtectionPlan
    fault: FaultModel
    x: torch.Tensor
    y: torch.Tensor
    clean_pred: torch.Tensor
    seed: int

    def faults(self, trial: int) -> FaultSet:
        """The exact faults of trial ``trial`` (``trial_faults``)."""
        return trial_faults(self.injector, self.plan, self.fault, self.seed, trial)

    def with_plan(self, plan: ProtectionPlan) -> TrialSetup:
        """The same trials under another plan (every plan of a grid point shares the rest)."""
        return replace(self, plan=plan)
