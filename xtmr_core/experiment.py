"""One model on one dataset, with everything a campaign needs cached: the one object the CLI, the app
and the report call.

An ``Experiment`` loads the clean model once and never changes it; it builds, once, the model a device
stores (``canonize.deployed_model``: BatchNorm folded into the conv before it, unless kept separate), and
every campaign faults that deployed model. Scores, injectors (one per number format) and clean predictions
are computed on first use and cached; every method is safe to call from several app sessions at once.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from xtmr_core.campaign import CampaignResult, PointHooks, PointOptions, PointResult, run_point
from xtmr_core.canonize import deployed_model, lrp_ready
from xtmr_core.checkpoints import load_model
from xtmr_core.damage import delta_harm, scan_harm
from xtmr_core.data import DataSplits, load_dataset, reference_set
from xtmr_core.device import default_device
from xtmr_core.errors import XtmrError
from xtmr_core.evaluation import accuracy, predict
from xtmr_core.faults import FaultModel, FaultSet
from xtmr_core.inflight import shared
from xtmr_core.injection import FaultInjector, trial_faults, trial_rng
from xtmr_core.memory import layout_of
from xtmr_core.protection import ProtectionPlan, spec_plan
from xtmr_core.scoring import score_weights
from xtmr_core.sensitivity import bit_sensitivity
from xtmr_core.spec import CampaignSpec
from xtmr_core.store import (
    CarriedStore,
    Store,
    Trial,
    default_store,
    plan_key,
    point_key,
    score_key,
    spec_fields,
)
from xtmr_core.strata import Strata, deciding_pairs, make_strata, stratified_faults
from xtmr_core.vocabulary import DESIGNS, check_choice, check_format


class Experiment:
    """A clean model, its data, and cached scores / injectors.

    Args:
        model: architecture name (``lenet5`` default).
        dataset: dataset name (``mnist5k`` default).
        checkpoint: a checkpoint file; ``None`` = the shipped one.
        device: where to evaluate (default: CUDA if present, else CPU).
        ref_size: number of correctly classified training images relevance is summed over (at most half
            the training split, for small image folders).
        ref_seed: seed of the reference set's choice.
        net: an already loaded model to use instead of loading one (e.g. an upload or a fresh training
            run); it is moved to ``device``, put in eval mode and its parameters frozen, and never changed
            after that.
        meta: the metadata of ``net``.
        trials_per_pass: weight sets evaluated per forward pass in campaigns (``batched``); ``None`` = chosen
            per device (1 on a CPU, where batching is slower; from free memory on a GPU). Results do not
            depend on it.
        keep_batchnorm: deploy BatchNorm layers as layers of their own (their scales faultable) instead
            of folding them into the conv before them.
        fault_biases: the layers' biases are faultable too (by default only weights are).
        splits: already loaded data to use instead of loading ``dataset`` (an image folder); ``dataset`` is
            then only its name in outputs.
        store: the results store campaigns read their trials from and write new ones to (``store.Store``);
            ``None`` = none; ``"default"`` = ``store.default_store()`` (``$XTMR_STORE``, or the user's cache).

    Attributes:
        trained: the model as loaded (eval mode, frozen).
        model: the deployed model every campaign faults and every scorer scores (``trained`` itself when
            there is no BatchNorm to fold); its outputs equal ``trained``'s to float rounding.
    """

    def __init__(  # noqa: PLR0913 (left: the model, data and deployment options; one ExperimentSource value is next)
        self,
        model: str = "lenet5",
        dataset: str = "mnist5k",
        checkpoint: str | Path | None = None,
        device: torch.device | None = None,
        *,
        ref_size: int = 256,
        ref_seed: int = 0,
        net: torch.nn.Module | None = None,
        meta: dict[str, Any] | None = None,
        trials_per_pass: int | None = None,
        keep_batchnorm: bool = False,
        fault_biases: bool = False,
        splits: DataSplits | None = None,
        store: Store | None | Literal["default"] = "default",
    ) -> None:
        self.device = torch.device(device) if device is not None else default_device()  # "cpu" works too
        self.store: Store | CarriedStore | None = default_store() if store == "default" else store
        self._fingerprint: dict[str, Any] | None = None
        self.splits = load_dataset(dataset) if splits is None else splits
        if net is None:
            net, meta = load_model(model, dataset, checkpoint, self.device)
        self.trained = net.to(self.device).eval()
        for p in self.trained.parameters():
            p.requires_grad_(False)
        self.keep_batchnorm, self.fault_biases = bool(keep_batchnorm), bool(fault_biases)
        self.model = deployed_model(self.trained, self.keep_batchnorm)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.meta = dict(meta or {})
        self.model_name, self.dataset = model, dataset
        self.layout = layout_of(self.model, self.fault_biases)
        self.x_test = self.splits.x_test.to(self.device)
        self.y_test = self.splits.y_test.to(self.device)
        self.ref_size, self.ref_seed = int(ref_size), int(ref_seed)
        self.trials_per_pass = trials_per_pass
        self._lock = threading.RLock()
        self._scores: dict[tuple[str, str, int], np.ndarray] = {}
        self._injectors: dict[tuple[str, str], FaultInjector] = {}
        self._clean_pred: dict[tuple[str, str], torch.Tensor] = {}
        self._harms: dict[tuple[str, str, str], np.ndarray] = {}
        self._deciding: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._reference: tuple[torch.Tensor, torch.Tensor] | None = None

    def to(self, device: torch.device | str) -> Experiment:
        """Move the model and data to ``device`` (in place; returns ``self``).

        The cached injectors and clean predictions are dropped (rebuilt there on first use); the scores,
        being numpy, stay.
        """
        with self._lock:
            self.device = torch.device(device)
            self.model = self.model.to(self.device)
            self.x_test, self.y_test = self.x_test.to(self.device), self.y_test.to(self.device)
            if self._reference is not None:
                self._reference = (self._reference[0].to(self.device), self._reference[1].to(self.device))
            self._injectors.clear()
            self._clean_pred.clear()
        return self

    def __getstate__(self) -> dict[str, Any]:
        """What travels to another process (a Ray worker): the model, data and scores, on the CPU. Locks,
        injectors and clean predictions do not travel; the receiver rebuilds them on first use."""
        with self._lock:
            state = {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_injectors", "_clean_pred")}
            state["store"] = None  # a worker returns its results; the driver keeps them
            state["model"] = copy.deepcopy(self.model).cpu()
            state["x_test"], state["y_test"] = self.x_test.cpu(), self.y_test.cpu()
            if self._reference is not None:
                state["_reference"] = (self._reference[0].cpu(), self._reference[1].cpu())
            state["device"] = torch.device("cpu")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild an experiment on the CPU (``to`` moves it); the clean model is still never changed."""
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._injectors = {}
        self._clean_pred = {}

    @property
    def n_weights(self) -> int:
        """Number of faultable weights."""
        return self.layout.n_weights

    def reference(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference set relevance and gradients are computed on (cached)."""
        with self._lock:
            if self._reference is None:
                # A small image folder cannot give 256 correct images: take at most half its training split.
                n = min(self.ref_size, max(1, len(self.splits.y_train) // 2))
                # A model with random weights (no checkpoint given) classifies almost nothing correctly: its
                # reference images are taken as they come, so its scores can still be shown (and mean little).
                correct_only = self.meta.get("weights") != "random"
                self._reference = reference_set(self.model, self.splits, n, self.ref_seed, correct_only)
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
        key = _score_id(scorer, rule, seed)
        with self._lock:
            if key not in self._scores:
                stored = self._stored_scores(*key)  # another run (or the warm command) computed them
                self._scores[key] = self._score(scorer, rule, seed) if stored is None else stored
            return self._scores[key]

    def _score(self, scorer: str, rule: str, seed: int) -> np.ndarray:
        """Compute one scorer's flat scores (and keep them in the results store, if any)."""
        # magnitude and random look at the weights alone: no reference images needed
        if scorer in ("magnitude", "random"):
            x, y = torch.empty(0), torch.empty(0, dtype=torch.int64)
        else:
            if scorer == "lrp":
                lrp_ready(self.model)  # an unsupported layer is named before any image is chosen
            x, y = self.reference()
        per_layer = score_weights(self.model, x, y, scorer, rule=rule, seed=seed, fault_biases=self.fault_biases)
        flat = self.layout.flatten(per_layer)
        store = self.store
        if isinstance(store, Store) and scorer not in ("magnitude", "random"):  # those two cost nothing
            info = {"model": self.model_name, "dataset": self.dataset, "scorer": scorer, "rule": rule, "seed": seed}
            store.put_scores(score_key(self.fingerprint(), *_score_id(scorer, rule, seed)), info, flat)
        return flat

    def _stored_scores(self, scorer: str, rule: str, seed: int) -> np.ndarray | None:
        """One scorer's scores from the results store (``None``: no store, none stored, or a cheap scorer)."""
        store = self.store
        if not isinstance(store, Store) or scorer in ("magnitude", "random"):
            return None
        return store.scores(score_key(self.fingerprint(), scorer, rule, seed), self.n_weights)

    def injector(self, fmt: str = "fp32", int8_granularity: str = "channel") -> FaultInjector:
        """The fault injector for one storage format (cached; its worker is a private model copy)."""
        check_format(fmt)
        key = (fmt, int8_granularity if fmt == "int8" else "")
        with self._lock:
            if key not in self._injectors:
                self._injectors[key] = FaultInjector(
                    self.model,
                    fmt,
                    int8_granularity=int8_granularity,
                    device=self.device,
                    fault_biases=self.fault_biases,
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

    def harm(self, fmt: str = "fp32", harm: str = "delta", int8_granularity: str = "channel") -> np.ndarray:
        """log2 harm of a flip at each (weight, bit) for ``damage`` plans, cached (see ``damage``).

        ``delta`` is exact per weight and bit; ``scan`` runs the single-flip scan once (20 weights per bit
        position, seed 0) and uses each position's accuracy loss for every weight.
        """
        key = (fmt, harm, int8_granularity if fmt == "int8" else "")
        inj = self.injector(fmt, int8_granularity)
        with self._lock:
            if key not in self._harms:
                if harm == "scan":
                    table = bit_sensitivity(self, fmt, trials=20, seed=0)
                    loss = (table["clean_accuracy"] - table["mean_accuracy"]).to_numpy()
                    self._harms[key] = scan_harm(loss, self.n_weights)
                else:
                    self._harms[key] = delta_harm(inj.stored)
            return self._harms[key]

    def plan(self, spec: CampaignSpec) -> ProtectionPlan:
        """Build the protection plan of ``spec`` for this model (scores and harms computed once and cached).

        The ``random`` scorer draws from ``spec.seed``; ``spec.guard`` adds the range guard on read
        (``+range``); ``damage`` ranks (weight, bit) pairs by ``spec.scorer`` x ``spec.harm``.
        """
        # the plan's registered builder asks for what it needs (protection.spec_plan): nothing is computed else
        return spec_plan(
            spec,
            scores=lambda scorer: self.scores(scorer, spec.rule, spec.seed),
            harm=lambda: self.harm(spec.fmt, spec.harm, spec.int8_granularity),
            offsets=self.layout.offsets,
        )

    def evaluate(
        self,
        spec: CampaignSpec,
        *,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        design: str = "auto",
    ) -> CampaignResult:
        """Run the fault campaign ``spec`` alone (already checked: a ``CampaignSpec`` cannot be invalid).

        Its trials are the trials of the same plan in ``evaluate_point([spec])``: the same sampling design
        (the point's, from the plan and its unprotected baseline), the same faults, without running the
        baseline; trials already in the results store are read, not run.

        Args:
            spec: the campaign: plan, fault model, format, trials and seed.
            progress, should_stop: as in ``campaign.PointHooks`` (a fixed number of trials).
            design: ``auto`` or ``plain`` (``evaluate_point``).

        Returns:
            The ``CampaignResult``.
        """
        plan = self.plan(spec)
        base = spec.point
        plans = [self.plan(s) for s in dict.fromkeys([base, spec])]
        strata = self.design(base, plans, design)

        def compute(publish: Callable[[PointResult], None]) -> PointResult:
            known, on_computed = self._stored(base, [spec], [plan], strata)
            return run_point(
                self.injector(spec.fmt, spec.int8_granularity),
                [plan],
                _fault_model(spec),
                self.x_test,
                self.y_test,
                PointOptions(
                    spec.trials, spec.seed, baseline=False, strata=strata, per_pass=self.trials_per_pass, known=known
                ),
                PointHooks(
                    progress, should_stop, on_trial=lambda part: publish(_snapshot(part)), on_computed=on_computed
                ),
                clean_pred=self.clean_predictions(spec.fmt, spec.int8_granularity),
            )

        def waited(part: PointResult) -> None:
            if progress is not None:
                progress(part.trials, spec.trials)

        key = self._flight_key("campaign", base, [spec], strata)
        return shared(key, compute, on_partial=waited, should_stop=should_stop).results[0]

    def evaluate_point(
        self,
        specs: Sequence[CampaignSpec],
        *,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_trial: Callable[[PointResult], None] | None = None,
        design: str = "auto",
    ) -> PointResult:
        """Run several plans of ONE grid point on the same trials: the paired comparison.

        All ``specs`` must share their grid point (``spec.point``: format, BER, mode, fault bits, trials,
        seed); the unprotected baseline ``spec.point`` is run with them as ``results[0]``, then the specs
        in order (a spec equal to the baseline, or repeated, runs once). Every plan runs the same
        ``(seed, t)`` trials and the point stops as a whole, so ``PointResult.difference``,
        ``recovered``, ``relative_gain`` and ``verdict`` are paired. Trials already in the results store
        (``self.store``) are read, not run, and the trials run are written to it: a point of 40 trials after
        one of 10 runs 30, a point of 10 after one of 40 runs none, with the same numbers as a fresh run.

        Args:
            specs: the campaigns of the point (at least one).
            progress, should_stop, on_trial: as in ``campaign.PointHooks`` (``on_trial`` gets the
                partial ``PointResult`` after each trial, for a live display).
            design: ``auto`` stratifies the trials by the faults on the deciding bits where that pays
                (``strata.make_strata``: the float formats at a BER where such a fault is rare), ``plain``
                never does; ``point.strata`` says which design ran.

        Returns:
            The ``PointResult``: ``results[0]`` is the baseline, then one result per distinct spec in
            order (``point.index(label)`` finds a plan by its label).

        Raises:
            XtmrError: no spec, or specs of different grid points.
        """
        if not specs:
            raise XtmrError("a grid point needs at least one campaign")
        base = specs[0].point
        if any(s.point != base for s in specs):
            raise XtmrError("all campaigns of a grid point must share format, BER, fault mode/bits, trials and seed")
        unique = list(dict.fromkeys([base, *specs]))
        fault = _fault_model(base)
        plans = [self.plan(s) for s in unique]
        strata = self.design(base, plans, design)

        def compute(publish: Callable[[PointResult], None]) -> PointResult:
            def live(part: PointResult) -> None:
                publish(_snapshot(part))
                if on_trial is not None:
                    on_trial(part)

            known, on_computed = self._stored(base, unique, plans, strata)
            return run_point(
                self.injector(base.fmt, base.int8_granularity),
                plans,
                fault,
                self.x_test,
                self.y_test,
                PointOptions(
                    base.trials, base.seed, baseline=False, strata=strata, per_pass=self.trials_per_pass, known=known
                ),
                PointHooks(progress, should_stop, on_trial=live, on_computed=on_computed),
                clean_pred=self.clean_predictions(base.fmt, base.int8_granularity),
            )

        def waited(part: PointResult) -> None:  # another session computes this point: show its trials
            if on_trial is not None:
                on_trial(part)
            if progress is not None:
                progress(part.trials, base.trials)

        # Two sessions asking for this point at once: the second waits for the first's trials (inflight).
        key = self._flight_key("point", base, unique, strata)
        return shared(key, compute, on_partial=waited, should_stop=should_stop)

    def carried(self, specs: Sequence[CampaignSpec], design: str = "auto") -> CarriedStore | None:
        """The stored trials of the point ``evaluate_point(specs, design=design)`` runs, packed to travel with a
        task to a worker that cannot open the store (``None`` without a store). The worker's experiment uses
        it as its store; what it runs comes back in it for ``CarriedStore.deliver``. ``complete``: every
        trial is stored (run it here: reading only)."""
        store = self.store
        if store is None or not specs:
            return None
        base = specs[0].point
        unique = list(dict.fromkeys([base, *specs]))
        strata = self.design(base, [self.plan(s) for s in unique], design)
        pkey = point_key(self.fingerprint(), "plain" if strata is None else strata.key(), base)
        keys = [plan_key(s) for s in unique]
        got = store.trials(pkey, keys, base.trials, int(self.y_test.numel()), count=False)
        return CarriedStore({pkey: dict(zip(keys, got))}, all(len(d) >= base.trials for d in got))

    def stored_trials(self, specs: Sequence[CampaignSpec], design: str = "auto") -> tuple[int, float]:
        """What the results store holds of the point ``evaluate_point(specs, design=design)`` runs:
        ``(k, seconds)``, where trials ``0..k-1`` of every plan are stored, and the seconds the stored trials
        ``0..n-1`` (``n`` the specs' trial count) of all plans took when they were run. ``(0, 0.0)`` without
        a store. The time a report sizes its trials by: reading a trial back costs next to nothing."""
        carried = self.carried([s.replace(trials=_ALL) for s in specs], design)
        if carried is None:
            return 0, 0.0
        (plans,) = carried.known.values()
        k = 0
        while all(k in d for d in plans.values()):
            k += 1
        n = specs[0].trials
        seconds = sum(tr.seconds for d in plans.values() for t, tr in d.items() if t < n)
        return k, float(seconds)

    def _flight_key(
        self, kind: str, base: CampaignSpec, specs: Sequence[CampaignSpec], strata: Strata | None
    ) -> tuple[Any, ...]:
        """The ``inflight`` key of a computation: the point's store key where there is a store (equal for two
        experiments of the same model and data), else this experiment's identity; the plans; the trials."""
        design = "plain" if strata is None else strata.key()
        where: Any = point_key(self.fingerprint(), design, base) if self.store is not None else (id(self), design)
        return (kind, where, base, tuple(plan_key(s) for s in specs), base.trials)

    def _stored(
        self, base: CampaignSpec, specs: Sequence[CampaignSpec], plans: Sequence[ProtectionPlan], strata: Strata | None
    ) -> tuple[list[dict[int, Any]] | None, Callable[[int, list[Any]], None] | None]:
        """``run_point``'s ``PointOptions.known`` and ``PointHooks.on_computed`` for the plans ``specs`` of the point
        ``base`` in the results store (``(None, None)`` without a store)."""
        store = self.store
        if store is None:
            return None, None
        fingerprint = self.fingerprint()
        design = "plain" if strata is None else strata.key()
        pkey = point_key(fingerprint, design, base)
        keys = [plan_key(s) for s in specs]
        stored = store.trials(pkey, keys, base.trials, int(self.y_test.numel()))
        info = {
            "model": self.model_name,
            "dataset": self.dataset,
            "design": "plain" if strata is None else "stratified",
            "design_key": design,
            "point": spec_fields(base),
            "fingerprint": fingerprint,
        }

        def keep(trial: int, computed: list[Any]) -> None:
            stratum = None if strata is None else strata.stratum_of(trial)
            store.write(
                pkey,
                info,
                [
                    (keys[i], specs[i], plans[i].label, trial, Trial(acc, mis, flips, correct, stratum, seconds))
                    for i, (acc, mis, flips, correct), seconds in computed
                ],
            )

        return [{t: tr.outcome() for t, tr in d.items()} for d in stored], keep

    def fingerprint(self) -> dict[str, Any]:
        """Everything besides the campaign that decides a trial's outcome, for the results store's keys: the
        deployed weights' and the data's SHA-256, the deployment options, the reference set's size and seed
        (the scorers' input), the device type and the torch version (float rounding). Cached."""
        with self._lock:
            if self._fingerprint is None:
                h = hashlib.sha256()
                s = self.splits
                for t in (s.x_test, s.y_test, s.x_train, s.y_train):
                    a = t.detach().cpu().contiguous().numpy()
                    h.update(f"{a.dtype}{a.shape}".encode())
                    h.update(np.ascontiguousarray(a).view(np.uint8).reshape(-1).tobytes())
                self._fingerprint = {
                    "weights": self.weights_checksum(),
                    "data": h.hexdigest(),
                    "keep_batchnorm": self.keep_batchnorm,
                    "fault_biases": self.fault_biases,
                    "ref_size": self.ref_size,
                    "ref_seed": self.ref_seed,
                    "torch": torch.__version__,
                }
            return {**self._fingerprint, "device": self.device.type}

    def design(self, base: CampaignSpec, plans: Sequence[ProtectionPlan], design: str = "auto") -> Strata | None:
        """The sampling design of a grid point (``base``: its unprotected spec) with these plans: the
        stratified ``Strata`` where ``design`` is ``auto`` and stratifying pays, else ``None`` (plain)."""
        check_choice("sampling design", design, DESIGNS)
        if design == "plain":
            return None
        inj = self.injector(base.fmt, base.int8_granularity)
        fault = _fault_model(base)
        key = (base.fmt, base.int8_granularity, fault.mode, fault.bits)
        with self._lock:
            if key not in self._deciding:  # the stored words' deciding pairs, once per format and fault type
                self._deciding[key] = deciding_pairs(inj.stored, inj.layout, fault)
            pairs = self._deciding[key]
        return make_strata(inj.stored, inj.layout, list(plans), fault, pairs)

    def faults_of_trial(
        self, spec: CampaignSpec, trial: int = 0, *, specs: Sequence[CampaignSpec] | None = None, design: str = "auto"
    ) -> FaultSet:
        """The exact faults of trial ``trial`` of campaign ``spec`` as ``evaluate_point(specs, design=design)``
        ran it (``specs`` default ``[spec]``): the point's plans decide its sampling design, and a stratified
        trial draws its faults from its stratum. Same point, same trial = same faults."""
        injector = self.injector(spec.fmt, spec.int8_granularity)
        fault = _fault_model(spec)
        base = spec.point
        plans = [self.plan(s) for s in dict.fromkeys([base, *(specs or [spec])])]
        strata = self.design(base, plans, design)
        if strata is None:
            return trial_faults(injector, self.plan(spec), fault, spec.seed, trial)
        regions = injector.regions(self.plan(spec), fault)
        return stratified_faults(regions, fault, strata, strata.stratum_of(trial), trial_rng(spec.seed, trial))

    def weights_checksum(self) -> str:
        """SHA-256 of the clean model's tensors, to check that nothing ever changed them."""
        h = hashlib.sha256()
        for name, t in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()


#: More trials than any point has: ``stored_trials`` reads every stored trial of a point.
_ALL = 1 << 30


def _score_id(scorer: str, rule: str, seed: int) -> tuple[str, str, int]:
    """What decides a scorer's scores: the rule for ``lrp`` only, the seed for ``random`` only."""
    return scorer, rule if scorer == "lrp" else "", seed if scorer == "random" else 0


def _snapshot(point: PointResult) -> PointResult:
    """A copy of a streaming ``PointResult`` that the run does not append to any more (for another thread to
    read): the per-trial lists are copied, the arrays in them shared (never changed)."""
    return PointResult(
        [
            replace(
                r,
                accuracies=list(r.accuracies),
                mismatches=list(r.mismatches),
                flips=list(r.flips),
                correct=list(r.correct),
                strata=None if r.strata is None else list(r.strata),
            )
            for r in point.results
        ],
        point.strata,
    )


def _fault_model(spec: CampaignSpec) -> FaultModel:
    """The fault model of a campaign."""
    return FaultModel(spec.ber, spec.mode, spec.fault_bits)
