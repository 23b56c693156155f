"""One model on one dataset, with everything a campaign needs cached: the one object the CLI, the app
and the report call.

An ``Experiment`` loads the clean model once and never changes it. Scores, injectors (one per number
format) and clean predictions are computed on first use and cached; every method is safe to call from
several app sessions at once.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from xtmr_core.campaign import CampaignResult, run_campaign, trial_faults
from xtmr_core.checkpoints import load_model
from xtmr_core.data import load_dataset, reference_set
from xtmr_core.device import default_device
from xtmr_core.errors import XtmrError
from xtmr_core.evaluation import accuracy, predict
from xtmr_core.faults import FaultModel, FaultSet
from xtmr_core.formats import WORD_BITS, check_format
from xtmr_core.injection import FaultInjector
from xtmr_core.memory import layout_of
from xtmr_core.protection import SCORER_PLANS, ProtectionPlan, make_plan
from xtmr_core.scoring import score_weights


class Experiment:
    """A clean model, its data, and cached scores / injectors.

    Args:
        model: architecture name (``lenet5`` default).
        dataset: dataset name (``mnist5k`` default).
        checkpoint: a checkpoint file; ``None`` = the shipped one.
        device: where to evaluate (default: CUDA if present, else CPU).
        ref_size: number of correctly classified training images relevance is summed over.
        ref_seed: seed of the reference set's choice.
        net: an already loaded model to use instead of loading one (e.g. an upload or a fresh training
            run); it is moved to ``device``, put in eval mode and its parameters frozen, and never changed
            after that.
        meta: the metadata of ``net``.
    """

    def __init__(
        self,
        model: str = "lenet5",
        dataset: str = "mnist5k",
        checkpoint: str | Path | None = None,
        device: torch.device | None = None,
        *,
        ref_size: int = 256,
        ref_seed: int = 0,
        net: torch.nn.Module | None = None,
        meta: dict | None = None,
    ) -> None:
        self.device = device or default_device()
        self.splits = load_dataset(dataset)
        if net is None:
            net, meta = load_model(model, dataset, checkpoint, self.device)
        self.model = net.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.meta = dict(meta or {})
        self.model_name, self.dataset = model, dataset
        self.layout = layout_of(self.model)
        self.x_test = self.splits.x_test.to(self.device)
        self.y_test = self.splits.y_test.to(self.device)
        self.ref_size, self.ref_seed = int(ref_size), int(ref_seed)
        self._lock = threading.RLock()
        self._scores: dict[tuple, np.ndarray] = {}
        self._injectors: dict[tuple, FaultInjector] = {}
        self._clean_pred: dict[tuple, torch.Tensor] = {}
        self._reference: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def n_weights(self) -> int:
        """Number of faultable weights."""
        return self.layout.n_weights

    def reference(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference set relevance and gradients are computed on (cached)."""
        with self._lock:
            if self._reference is None:
                self._reference = reference_set(self.model, self.splits, self.ref_size, self.ref_seed)
            return self._reference

    def scores(self, scorer: str, rule: str = "epsilon", seed: int = 0) -> np.ndarray:
        """Flat per-weight scores (layout order) of one scorer, cached.

        Args:
            scorer: ``lrp``, ``magnitude``, ``gradient``, ``taylor`` or ``random``.
            rule: the LRP rule (for ``lrp``).
            seed: the seed (for ``random``).

        Returns:
            float64 array of ``n_weights`` scores, larger = more important.
        """
        key = (scorer, rule if scorer == "lrp" else "", seed if scorer == "random" else 0)
        with self._lock:
            if key not in self._scores:
                x, y = self.reference()
                per_layer = score_weights(self.model, x, y, scorer, rule=rule, seed=seed)
                self._scores[key] = self.layout.flatten(per_layer)
            return self._scores[key]

    def injector(self, fmt: str = "fp32", int8_granularity: str = "channel") -> FaultInjector:
        """The fault injector for one storage format (cached; its worker is a private model copy)."""
        check_format(fmt)
        key = (fmt, int8_granularity if fmt == "int8" else "")
        with self._lock:
            if key not in self._injectors:
                self._injectors[key] = FaultInjector(
                    self.model, fmt, int8_granularity=int8_granularity, device=self.device
                )
            return self._injectors[key]

    def clean_predictions(self, fmt: str = "fp32", int8_granularity: str = "channel") -> torch.Tensor:
        """Predictions of the clean model stored in ``fmt`` on the test split (cached)."""
        key = (fmt, int8_granularity if fmt == "int8" else "")
        inj = self.injector(fmt, int8_granularity)
        with self._lock:
            if key not in self._clean_pred:
                with inj.clean() as worker:
                    self._clean_pred[key] = predict(worker, self.x_test)
            return self._clean_pred[key]

    def clean_accuracy(self, fmt: str = "fp32", int8_granularity: str = "channel") -> float:
        """Test accuracy of the clean model stored in ``fmt``."""
        return accuracy(self.clean_predictions(fmt, int8_granularity), self.y_test)

    def plan(
        self,
        protect: str = "none",
        fmt: str = "fp32",
        budget: float = 1.0,
        *,
        bits: tuple[int, ...] | None = None,
        rule: str = "epsilon",
        per_layer: bool = False,
        seed: int = 0,
    ) -> ProtectionPlan:
        """Build a protection plan for this model.

        Args:
            protect: one of ``protection.PLANS``.
            fmt: storage format (decides the bits per weight).
            budget: percent of weights, for scorer plans.
            bits: protected bit positions, for ``bits``.
            rule: LRP rule, for ``lrp``. per_layer: rank within each layer instead of globally.
            seed: seed of the ``random`` scorer.

        Returns:
            The ``ProtectionPlan``.
        """
        check_format(fmt)
        scores = self.scores(protect, rule, seed) if protect in SCORER_PLANS else None
        return make_plan(
            protect,
            WORD_BITS[fmt],
            budget=budget,
            scores=scores,
            bits=bits,
            offsets=self.layout.offsets if per_layer else None,
        )

    def evaluate(
        self,
        protect: str = "none",
        budget: float = 1.0,
        ber: float = 1e-4,
        fmt: str = "fp32",
        *,
        trials: int = 20,
        seed: int = 0,
        mode: str = "flip",
        fault_bits: tuple[int, ...] | None = None,
        bits: tuple[int, ...] | None = None,
        rule: str = "epsilon",
        per_layer: bool = False,
        int8_granularity: str = "channel",
        ci_target: float | None = None,
        min_trials: int = 10,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> CampaignResult:
        """Run a fault campaign for one configuration.

        Args:
            protect, budget, bits, rule, per_layer: the protection plan (see ``plan``).
            ber: bit error rate. fmt: storage format. mode: ``flip``, ``stuck0``, ``stuck1``.
            fault_bits: restrict faults to these bit positions (``None`` = all).
            trials, seed, ci_target, min_trials, progress, should_stop: as in ``campaign.run_campaign``.
            int8_granularity: ``channel`` or ``tensor`` scales for int8.

        Returns:
            The ``CampaignResult``.

        Raises:
            XtmrError: a bad BER, budget, format, plan, mode or bit position.
        """
        if int(trials) < 1:
            raise XtmrError(f"trials must be at least 1, got {trials}")
        if not 0 <= int(seed) < 2**63:
            raise XtmrError(f"seed must be an integer in [0, 2^63), got {seed}")
        fault = FaultModel(ber, mode, tuple(fault_bits) if fault_bits else None)
        fault.positions(WORD_BITS[check_format(fmt)])
        plan = self.plan(protect, fmt, budget, bits=bits, rule=rule, per_layer=per_layer, seed=seed)
        return run_campaign(
            self.injector(fmt, int8_granularity),
            plan,
            fault,
            self.x_test,
            self.y_test,
            trials=trials,
            seed=seed,
            clean_pred=self.clean_predictions(fmt, int8_granularity),
            ci_target=ci_target,
            min_trials=min_trials,
            progress=progress,
            should_stop=should_stop,
        )

    def faults_of_trial(
        self,
        plan: ProtectionPlan,
        ber: float,
        fmt: str = "fp32",
        *,
        seed: int = 0,
        trial: int = 0,
        mode: str = "flip",
        fault_bits: tuple[int, ...] | None = None,
        int8_granularity: str = "channel",
    ) -> FaultSet:
        """The exact faults of one trial of a campaign (same seed, same trial = same faults)."""
        fault = FaultModel(ber, mode, tuple(fault_bits) if fault_bits else None)
        return trial_faults(self.injector(fmt, int8_granularity), plan, fault, seed, trial)

    def weights_checksum(self) -> str:
        """SHA-256 of the clean model's tensors, to check that nothing ever changed them."""
        h = hashlib.sha256()
        for name, t in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()
