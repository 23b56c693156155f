"""The command line: ``python -m xtmr_core {train,evaluate,sweep,bench,coverage,report,zoo,store,warm}``.

A thin face over the engine. Bad input gets one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from xtmr_core.errors import XtmrError
from xtmr_core.spec import CampaignSpec, grid, split_plan_name
from xtmr_core.vocabulary import (
    DATASETS,
    DESIGNS,
    DEVICES,
    ECC_DOUBLE,
    FORMATS,
    HARMS,
    IMAGEFOLDER_PREFIX,
    INT8_GRANULARITIES,
    LR_SCHEDULES,
    MODELS,
    MODES,
    NORMALIZATIONS,
    OPTIMIZERS,
    RULES,
    SCORERS,
    VERDICTS,
    check_accuracy_target,
    check_ber,
    check_plan_budget,
    check_seed,
    check_trials,
    dataset_kind,
    model_kind,
    parse_bits,
    plan_names,
)

if TYPE_CHECKING:
    import torch

    from xtmr_core.campaign import PointResult
    from xtmr_core.data import DataSplits
    from xtmr_core.experiment import Experiment
    from xtmr_core.image_folder import ImageFolderSpec
    from xtmr_core.stats import Interval, Judgement
    from xtmr_core.store import Store
    from xtmr_core.zoo import ZooRow


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:  # noqa: D401 - argparse's signature
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    return values


def _names(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [v.strip() for v in text.split(",") if v.strip()]
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {bad[0] if bad else 'empty'!r}: choose from {', '.join(choices)}"
            )
        return names

    return parse


def _bits(text: str) -> tuple[int, ...]:
    try:
        return parse_bits(text)
    except XtmrError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _checked(check: Callable[[str], Any]) -> Callable[[str], str]:
    """An argparse type that checks a string with a vocabulary check and keeps it."""

    def parse(text: str) -> str:
        try:
            check(text)
        except XtmrError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    return parse


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected a size like 32 or 28x28, got {text!r}")
    return parts[0], parts[1]


_MODEL_HELP = (
    f"architecture: one of {', '.join(MODELS)} (default lenet5); torchvision:NAME (e.g. torchvision:resnet18); "
    "or your own factory, FILE.py:FUNCTION or PACKAGE.MODULE:FUNCTION, returning an nn.Module"
)
_DATASET_HELP = (
    f"dataset: one of {', '.join(DATASETS)} (default mnist5k, offline), or imagefolder:PATH "
    "(one sub-folder of images per class)"
)


def _add_source_args(p: argparse.ArgumentParser) -> None:
    """--model, --dataset and the options of models and image folders from outside the zoo."""
    p.add_argument("--model", type=_checked(model_kind), default="lenet5", help=_MODEL_HELP)
    p.add_argument("--dataset", type=_checked(dataset_kind), default="mnist5k", help=_DATASET_HELP)
    g = p.add_argument_group("your own model and images")
    g.add_argument("--num-classes", type=int, help="outputs of a torchvision/factory model (default: the data's)")
    g.add_argument("--image-size", type=_size, default=(32, 32), help="imagefolder: resize to HxW (default 32x32)")
    g.add_argument("--channels", type=int, choices=(1, 3), default=3, help="imagefolder: 1 (gray) or 3 (RGB)")
    g.add_argument("--normalize", choices=NORMALIZATIONS, default="none", help="imagefolder: per-channel normalisation")
    g.add_argument("--split-file", help="imagefolder: text file of test images, one path per line (relative)")
    g.add_argument("--test-fraction", type=float, default=0.2, help="imagefolder: seeded split's test share")
    g.add_argument("--split-seed", type=int, default=0, help="imagefolder: seed of the split")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    _add_source_args(p)
    p.add_argument("--checkpoint", help="a checkpoint or state-dict file (default: the shipped one for model+dataset)")
    p.add_argument("--device", choices=DEVICES, help="default: cuda if present, else cpu")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the faults (trial t uses (seed, t)) and of random scores"
    )
    p.add_argument("--rule", choices=RULES, default="epsilon", help="LRP rule")
    p.add_argument("--per-layer", action="store_true", help="rank weights within each layer, not globally")
    p.add_argument("--bits", type=_bits, help="protected bit positions for --protect bits, e.g. 30 or 23-31")
    p.add_argument(
        "--ecc-double",
        choices=ECC_DOUBLE,
        default="zero",
        help="ecc: a word with a detected (double) error reads as zeros (default) or as read",
    )
    p.add_argument("--scorer", choices=SCORERS, default="lrp", help="damage: the weight scorer (default lrp)")
    p.add_argument(
        "--harm",
        choices=HARMS,
        default="delta",
        help="damage: harm of a flip at a bit, |delta w| (default) or the single-flip scan's accuracy loss",
    )
    p.add_argument("--fault-bits", type=_bits, help="only these bit positions can fail (default: all)")
    p.add_argument("--mode", choices=MODES, default="flip", help="fault type")
    p.add_argument("--trials", type=int, default=20, help="trials per configuration")
    p.add_argument(
        "--keep-bn",
        action="store_true",
        help="deploy BatchNorm as layers of their own (scales faultable) instead of folded into the conv",
    )
    p.add_argument("--fault-biases", action="store_true", help="biases are faultable too (default: weights only)")
    p.add_argument(
        "--design",
        choices=DESIGNS,
        default="auto",
        help="sampling design: auto (default) stratifies trials on the faults that decide where that pays "
        "(the float formats at a low BER), plain is plain Monte Carlo",
    )


def _add_ray_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run the grid's points as Ray tasks: alone, on a local Ray using this machine's cores; "
        "'auto' or 'ray://HOST:10001': on an existing cluster (same results as without --ray)",
    )


def _add_store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="PATH",
        help="results store: trials already in it are read, not run, and new ones are kept "
        "(default: $XTMR_STORE, else ~/.cache/xtmr/results.sqlite; 'none' turns it off)",
    )


def _train_options(t: argparse.ArgumentParser) -> None:
    """The options of ``train``."""
    _add_source_args(t)
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant", help="learning-rate schedule")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="adam, or sgd (Nesterov momentum 0.9)")
    t.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty (default 0)")
    t.add_argument("--augment", type=int, default=0, metavar="PIXELS", help="random shifts of up to PIXELS (default 0)")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--width", type=float, help="width multiplier (default: the model's)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, help="checkpoint file to write")
    t.add_argument("--device", choices=DEVICES, help="where to train (default: cuda if present, else cpu)")


def _evaluate_options(e: argparse.ArgumentParser) -> None:
    """The options of ``evaluate``."""
    _add_model_args(e)
    e.add_argument("--format", choices=FORMATS, default="fp32", help="how weights are stored")
    e.add_argument("--int8-granularity", choices=INT8_GRANULARITIES, default="channel")
    e.add_argument("--ber", type=float, default=1e-4, help="bit error rate in [0, 1]")
    e.add_argument(
        "--protect",
        choices=plan_names(guarded=True),  # read now: a plan registered at run time is a choice
        default="none",
        metavar="PLAN",
        help="protection plan: " + ", ".join(plan_names()) + "; PLAN+range adds the guard",
    )
    e.add_argument(
        "--budget",
        type=float,
        default=1.0,
        help="percent of weights protected by a scorer plan; percent extra memory for damage (2 = lrp 1%%'s copies)",
    )
    e.add_argument("--guard", action="store_true", help="add the range guard to the plan (same as PLAN+range)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument(
        "--export-faults", metavar="CSV", help="write the fault list (layer, index, bit, copy) of trial --trial"
    )
    e.add_argument(
        "--trial",
        default="0",
        metavar="T",
        help="--export-faults: the trial, 0 .. TRIALS-1 (default 0), or all (one CSV, a trial column first)",
    )
    _add_store_arg(e)


def _sweep_options(s: argparse.ArgumentParser) -> None:
    """The options of ``sweep``."""
    _add_model_args(s)
    s.add_argument("--formats", type=_names(FORMATS), default=["fp32"], help="e.g. fp32,int8")
    s.add_argument(
        "--protect",
        type=_names(plan_names(guarded=True)),
        default=["lrp", "magnitude", "random", "full"],
        help="plans, comma-separated, PLAN+range adds the guard (none is always added)",
    )
    s.add_argument("--budgets", type=_floats, default=[0.5, 1, 2, 5, 10], help="percentages, comma-separated")
    s.add_argument("--bers", type=_floats, default=[1e-5, 1e-4], help="BERs, comma-separated")
    s.add_argument("--target", type=float, default=0.95, help="target accuracy for the smallest-budget table")
    s.add_argument("--out", default="sweep.csv", help="CSV file to write")
    _add_ray_arg(s)
    _add_store_arg(s)


def _bench_options(b: argparse.ArgumentParser) -> None:
    """The options of ``bench``."""
    b.add_argument("--models", type=_names(MODELS), default=["lenet5", "vgg16", "resnet20"])
    b.add_argument("--bers", type=_floats, default=[1e-6, 1e-4, 1e-2])
    b.add_argument("--repeats", type=int, default=20, help="timed repetitions per cell (median)")
    b.add_argument(
        "--per-pass", type=int, help="trials per forward pass in the batched columns (default: chosen per device)"
    )
    b.add_argument("--device", choices=DEVICES, help="default: cuda if present, else cpu")
    b.add_argument(
        "--lrp",
        action="store_true",
        help="time LRP weight scores on 256 reference images per model instead of fault trials",
    )


def _coverage_options(c: argparse.ArgumentParser) -> None:
    """The options of ``coverage``."""
    c.add_argument("--quick", action="store_true", help="small pools and few resamples (a smoke test)")
    c.add_argument("--pool-trials", type=int, default=400, help="trials per pool (default 400)")
    c.add_argument("--reps", type=int, default=1000, help="resampled campaigns per n (default 1000)")
    c.add_argument("--out", help="also write the table as CSV")


def _report_options(r: argparse.ArgumentParser) -> None:
    """The options of ``report``."""
    r.add_argument("--quick", action="store_true", help="a reduced grid (under a minute)")
    r.add_argument("--out", default="docs", help="folder for REPRODUCTION.md, figures and CSV")
    r.add_argument("--dataset", choices=DATASETS, default="mnist5k")
    r.add_argument("--models", type=_names(MODELS), help="default: lenet5,alexnet,vgg16")
    r.add_argument("--device", choices=DEVICES, help="default: cuda if present, else cpu")
    r.add_argument(
        "--minutes",
        type=float,
        help="size the trial counts to fit this wall-clock budget (default: 30 for the full grid, none for "
        "--quick; 0: none); trials already in the results store are free, so a second run adds trials",
    )
    _add_ray_arg(r)
    _add_store_arg(r)


def _store_options(st: argparse.ArgumentParser) -> None:
    """The options of ``store``."""
    st.add_argument("action", choices=("info", "clear", "export"), help="info, clear or export (CSV)")
    st.add_argument(
        "--store", metavar="PATH", help="the store (default: $XTMR_STORE, else ~/.cache/xtmr/results.sqlite)"
    )
    st.add_argument("--out", help="export: CSV file to write (default: standard output)")


def _warm_options(w: argparse.ArgumentParser) -> None:
    """The options of ``warm``."""
    w.add_argument("--models", type=_names(MODELS), default=["lenet5"], help="shipped models (default: lenet5)")
    w.add_argument("--formats", type=_names(FORMATS), default=["fp32", "int8"], help="default: fp32,int8")
    _add_store_arg(w)


def _zoo_options(z: argparse.ArgumentParser) -> None:
    """The options of ``zoo``."""
    z.add_argument("--image-folder", required=True, help="folder of class sub-folders (written if it does not exist)")
    z.add_argument("--out", default="zoo.csv", help="CSV file to write")
    z.add_argument("--names", type=lambda t: [n for n in t.split(",") if n], help="architectures (default: all)")
    z.add_argument("--max-params", type=float, default=100e6, help="largest parameter count (default 100e6)")
    z.add_argument("--images", type=int, default=4, help="reference images per architecture (default 4)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(prog="python -m xtmr_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _train_options(sub.add_parser("train", help="train a model and save a checkpoint"))
    _evaluate_options(
        sub.add_parser("evaluate", help="one fault campaign: accuracy under faults with a protection plan")
    )
    _sweep_options(sub.add_parser("sweep", help="a grid of campaigns to CSV, and the budget each scorer needs"))
    _bench_options(sub.add_parser("bench", help="time fault trials against a clean evaluation"))
    _coverage_options(
        sub.add_parser("coverage", help="measure the intervals' coverage on held-out pools of real trials")
    )
    _report_options(sub.add_parser("report", help="reproduce the paper's experiment into docs/REPRODUCTION.md"))
    _store_options(
        sub.add_parser("store", help="the results store: its size and contents, clear it, export its trials")
    )
    _warm_options(
        sub.add_parser("warm", help="fill the results store with the Fault lab's default points (every BER stop)")
    )
    _zoo_options(
        sub.add_parser("zoo", help="LRP weight relevance and its float64 balance over torchvision's classifiers")
    )
    return parser


def _device(name: str | None) -> torch.device | None:
    from xtmr_core.device import resolve_device

    return resolve_device(name) if name else None


class _Bar(Protocol):
    """The part of a tqdm bar ``_Progress`` uses (tqdm ships no type stubs)."""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...
    def update(self, n: float | None = 1) -> bool | None: ...
    def close(self) -> None: ...


class _Progress:
    """A tqdm bar on stderr, opened at the first step, so input errors found earlier print alone."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc = total, desc
        self.bar: _Bar | None = None

    def step(self, label: str | None = None) -> None:
        if self.bar is None:
            from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm ships no stubs (types-tqdm not installed)

            self.bar = tqdm(total=self.total, desc=self.desc, file=sys.stderr, leave=False, dynamic_ncols=True)
        if label:
            self.bar.set_postfix_str(label)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cmd_train(a: argparse.Namespace) -> int:
    if a.epochs < 1 or a.batch_size < 1:
        raise XtmrError(f"--epochs and --batch-size must be at least 1, got {a.epochs} and {a.batch_size}")
    if not (math.isfinite(a.lr) and a.lr > 0):
        raise XtmrError(f"--lr must be a positive number, got {a.lr}")
    _flag("--seed", check_seed, a.seed)
    if a.weight_decay < 0 or a.augment < 0:
        raise XtmrError(f"--weight-decay and --augment must be >= 0, got {a.weight_decay} and {a.augment}")
    _check_sources(a)
    _check_output(a.out, "--out")
    from xtmr_core.training import TrainingRecipe, train_and_save  # torch loads here, after the cheap checks

    recipe = TrainingRecipe(
        a.model,
        a.dataset,
        epochs=a.epochs,
        lr=a.lr,
        seed=a.seed,
        width=a.width,
        batch_size=a.batch_size,
        lr_schedule=a.lr_schedule,
        optimizer=a.optimizer,
        weight_decay=a.weight_decay,
        augment=a.augment,
        num_classes=a.num_classes,
    )
    entry = train_and_save(
        recipe,
        a.out,
        splits=None if dataset_kind(a.dataset) == "builtin" else _splits(a),
        command="python -m xtmr_core " + shlex.join(a._argv),
        device=_device(a.device),
        allow_code=True,
    )
    print(json.dumps(entry, indent=2))
    return 0


def _image_folder(a: argparse.Namespace) -> ImageFolderSpec:
    """The ``ImageFolderSpec`` of ``--dataset imagefolder:PATH`` and its options (checked, nothing read)."""
    from xtmr_core.image_folder import ImageFolderSpec

    return ImageFolderSpec(
        root=a.dataset[len(IMAGEFOLDER_PREFIX) :],
        size=a.image_size,
        channels=a.channels,
        normalize=a.normalize,
        split_file=a.split_file,
        test_fraction=a.test_fraction,
        split_seed=a.split_seed,
    ).check()


def _splits(a: argparse.Namespace) -> DataSplits:
    """The data of ``--dataset``: a built-in dataset, or the image folder read with its options."""
    if dataset_kind(a.dataset) == "builtin":
        from xtmr_core.data import load_dataset

        return load_dataset(a.dataset)
    from xtmr_core.image_folder import load_image_folder

    return load_image_folder(_image_folder(a))


def _check_sources(a: argparse.Namespace) -> None:
    """The model/dataset options that need no torch: fail before anything loads."""
    if a.num_classes is not None and a.num_classes < 2:
        raise XtmrError(f"--num-classes must be at least 2, got {a.num_classes}")
    if dataset_kind(a.dataset) == "imagefolder":
        _flag("--split-seed", check_seed, a.split_seed)
        _image_folder(a)
        root = Path(a.dataset[len(IMAGEFOLDER_PREFIX) :]).expanduser()
        if not root.is_dir():
            raise XtmrError(f"image folder {root} not found; give a folder with one sub-folder of images per class")
    if model_kind(a.model) == "file":
        source = a.model.rpartition(":")[0]
        if not Path(source).expanduser().is_file():
            raise XtmrError(f"model file {source} not found")


def _experiment(a: argparse.Namespace) -> Experiment:
    from xtmr_core.experiment import Experiment

    device = _device(a.device)
    if model_kind(a.model) == "builtin" and dataset_kind(a.dataset) == "builtin" and a.num_classes is None:
        return Experiment(
            a.model, a.dataset, a.checkpoint, device, keep_batchnorm=a.keep_bn, fault_biases=a.fault_biases
        )
    from xtmr_core.model_source import load_from_source

    splits = _splits(a)
    net, meta = load_from_source(
        a.model, splits, a.checkpoint, device, num_classes=a.num_classes, seed=a.seed, allow_code=True
    )
    if meta["weights"] == "random":
        print(
            f"warning: no --checkpoint: {a.model} runs with random weights (seed {a.seed}); its accuracy means "
            f"little. Train it first: python -m xtmr_core train --model {a.model} --dataset {a.dataset} --out F.pt",
            file=sys.stderr,
        )
    return Experiment(
        a.model,
        splits.name,
        device=device,
        net=net,
        meta=meta,
        splits=splits,
        keep_batchnorm=a.keep_bn,
        fault_biases=a.fault_biases,
    )


def _check_output(path: str | None, what: str) -> None:
    """Refuse an output path that cannot be written, before any long work starts."""
    if path is None:
        return
    out = Path(path)
    if out.is_dir():
        raise XtmrError(f"{what} {out} is a folder; give a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise XtmrError(f"folder {parent} does not exist; create it or choose another {what}")
    if not os.access(parent, os.W_OK):
        raise XtmrError(f"folder {parent} is not writable; choose another {what}")


def _flag(flag: str, check: Callable[[Any], Any], value: Any) -> Any:
    """``check(value)``, with the flag named in its error."""
    try:
        return check(value)
    except XtmrError as e:
        raise XtmrError(f"{flag}: {e}") from None


def _check_cheap(a: argparse.Namespace) -> None:
    """Reject bad numbers and unwritable outputs before torch loads, the model loads and any long work."""
    _check_sources(a)
    for ber in getattr(a, "bers", None) or [a.ber]:
        _flag("--ber", check_ber, ber)
    # evaluate: the budget in its plan's unit (damage: % extra memory, up to 200); sweep: % of weights
    named = getattr(a, "protect", None)
    plan = split_plan_name(named)[0] if isinstance(named, str) else "lrp"
    for budget in getattr(a, "budgets", None) or [getattr(a, "budget", 0.0)]:
        _flag("--budget", lambda value: check_plan_budget(plan, value), budget)
    _flag("--trials", check_trials, a.trials)
    _flag("--seed", check_seed, a.seed)
    if getattr(a, "target", None) is not None:
        _flag("--target", check_accuracy_target, a.target)
    _check_output(getattr(a, "export_faults", None), "--export-faults")
    _check_output(getattr(a, "out", None), "--out")


def _common(a: argparse.Namespace) -> dict[str, Any]:
    """The ``CampaignSpec`` fields the flags shared by ``evaluate`` and ``sweep`` set."""
    return dict(
        trials=a.trials,
        seed=a.seed,
        mode=a.mode,
        fault_bits=a.fault_bits,
        bits=a.bits,
        rule=a.rule,
        per_layer=a.per_layer,
        int8_granularity=getattr(a, "int8_granularity", "channel"),
        ecc_double=a.ecc_double,
        scorer=a.scorer,
        harm=a.harm,
    )


def _export_trials(a: argparse.Namespace) -> list[int]:
    """The trials whose faults ``--export-faults`` writes (``--trial``: one number or ``all``), checked torch-free."""
    text = str(a.trial).strip().lower()
    if text != "0" and not a.export_faults:
        raise XtmrError("--trial says which trial --export-faults writes: give --export-faults CSV too")
    if text == "all":
        return list(range(a.trials))
    try:
        trial = int(text)
    except ValueError:
        raise XtmrError(f"--trial must be a trial number or all, got {a.trial!r}") from None
    if not 0 <= trial < a.trials:
        raise XtmrError(f"--trial {trial} is outside 0..{a.trials - 1} (the campaign runs --trials {a.trials})")
    return [trial]


def _fault_table(exp: Any, spec: CampaignSpec, trials: list[int], design: str, column: bool) -> Any:
    """The fault list of each of ``trials`` as the campaign ran it, in one table (``column``: a trial column first)."""
    import pandas as pd

    frames = [exp.faults_of_trial(spec, t, design=design).to_frame(exp.layout) for t in trials]
    if not column:
        return frames[0]
    return pd.concat([f.assign(trial=t)[["trial", *f.columns]] for t, f in zip(trials, frames)], ignore_index=True)


def _cmd_evaluate(a: argparse.Namespace) -> int:
    _check_cheap(a)
    export = _export_trials(a)
    protect, guard = split_plan_name(a.protect)
    spec = CampaignSpec(protect, a.budget, a.ber, a.format, **{**_common(a), "guard": guard or a.guard})
    store, before = _use_store(a)
    exp = _experiment(a)
    bar = _Progress(spec.trials, f"{spec.protect} @ BER {spec.ber:g}")
    try:
        # the plan and the unprotected baseline on the same trials, so the comparison is paired
        point = exp.evaluate_point([spec], progress=lambda done, total: bar.step(), design=a.design)
    finally:
        bar.close()
    if a.export_faults:
        _fault_table(exp, spec, export, a.design, str(a.trial).strip().lower() == "all").to_csv(
            a.export_faults, index=False
        )
    r = point.results[-1]
    d = r.to_dict()
    d.update(model=exp.model_name, dataset=exp.dataset, checkpoint=exp.meta.get("file"))
    d["weights"] = exp.meta.get("weights", "file")
    if exp.splits.info:
        d["data"] = exp.splits.info
    d["stratified"] = point.strata is not None
    d["design"] = point.design
    d["strata"] = None if point.strata is None else point.strata.describe(point.trials)
    d["store"] = _store_text(store, before)
    if len(point.results) > 1:
        judged = point.judge(1)
        d["baseline"] = point.baseline.to_dict()
        d["paired"] = {
            "difference": point.difference(1).to_dict(),
            "recovered": point.recovered(1).to_dict(),
            "relative_gain": point.relative_gain(1).to_dict(),
            "verdict": judged.verdict,
            "judgement": judged.to_dict(),
        }
    if a.json:
        print(json.dumps(d))
        return 0
    iv = r.interval()
    print(
        f"{exp.model_name} on {exp.dataset}, {r.format}, BER {r.ber:g}, {r.plan}, {r.trials} trials"
        f"{' (stratified: ' + _strata_text(point) + ')' if point.strata is not None else ''}\n"
        f"  clean accuracy     {r.clean_accuracy:.4f}\n"
        f"  mean accuracy      {r.mean_accuracy:.4f}  95% CI {_iv(iv)}  min {r.min_accuracy:.4f}\n"
        f"  mismatch vs clean  {r.mismatch_rate:.4f}\n"
        f"  bit flips / trial  {r.mean_bit_flips:.1f}\n"
        f"  protected weights  {r.overhead.protected_weights}  overhead {r.overhead.copies_pct:.3f}% "
        f"(with index {r.overhead.with_index_pct:.3f}%)"
    )
    if len(point.results) > 1:
        b = point.baseline
        print(
            f"  paired with no protection on the same trials ({b.mean_accuracy:.4f}, CI {_iv(b.interval())}):\n"
            f"    difference       {_iv(point.difference(1), True)}  {_verdict_text(point.judge(1))}\n"
            f"    recovered        {_iv(point.recovered(1), True)}\n"
            f"    relative gain    {_iv(point.relative_gain(1), True)}"
        )
    print(f"  {_store_text(store, before)}")
    return 0


def _strata_text(point: PointResult) -> str:
    """The strata of a point in one line: label, exact weight, trials."""
    assert point.strata is not None
    rows = point.strata.describe(point.trials)
    return "; ".join(f"{r['stratum']} p={r['weight']:.3g} n={r['trials']}" for r in rows)


def _verdict_text(judged: Judgement) -> str:
    """A verdict with what a reader needs beside it: the trials needed, or the practical threshold."""
    if judged.verdict == VERDICTS[4]:
        return judged.verdict + (f" (an interval needs {judged.needed} trials)" if judged.needed else "")
    if judged.verdict == VERDICTS[3]:
        return f"{judged.verdict} (|difference| < {100 * judged.threshold:.2g} pt)"
    return judged.verdict


def _iv(iv: Interval, estimate: bool = False) -> str:
    """An interval as text: ``[low, high]`` (``estimate [low, high]``), or ``n/a`` where unknown."""
    ends = f"[{iv.low:.4f}, {iv.high:.4f}]" if math.isfinite(iv.low) else "n/a" + (" (one trial)" if iv.n < 2 else "")
    return f"{iv.estimate:.4f} {ends}" if estimate else ends


def _cmd_sweep(a: argparse.Namespace) -> int:
    _check_cheap(a)
    protects = list(dict.fromkeys(["none", *a.protect]))
    # checks every point, torch-free; the bar counts grid points (all plans of a point run together)
    n_points = len({spec.point for spec in grid(protects, a.budgets, a.bers, a.formats, **_common(a))})
    from xtmr_core.distributed import RayRunner, make_runner
    from xtmr_core.sweep import iso_table, iso_text, run_sweep

    store, before = _use_store(a)
    exp = _experiment(a)
    runner = make_runner(a.ray, a.device) if a.ray else None
    bar = _Progress(n_points, "sweep" if runner is None else f"sweep on Ray ({a.ray})")
    try:
        table = run_sweep(
            exp,
            protects,
            a.budgets,
            a.bers,
            a.formats,
            progress=lambda done, total, label: bar.step(label),
            design=a.design,
            runner=runner,
            **_common(a),
        )
    finally:
        bar.close()
        if isinstance(runner, RayRunner):  # what make_runner gives for --ray; only a Ray runner holds a cluster
            runner.shutdown()
    out = Path(a.out)
    table.to_csv(out, index=False)
    print(f"wrote {len(table)} rows to {out}")
    print(_store_text(store, before))
    for _, row in table[table["protect"] != "none"].iterrows():
        print(
            f"  {row['format']} BER {row['ber']:g} {row['plan']}: {row['mean_accuracy']:.4f} vs none, paired over "
            f"{row['trials']} trials: diff {row['diff']:+.4f} [{row['diff_low']:+.4f}, {row['diff_high']:+.4f}] "
            f"({row['verdict']}), recovered {row['recovered']:.3f} [{row['recovered_low']:.3f}, "
            f"{row['recovered_high']:.3f}]"
        )
    iso = iso_table(table, a.target)
    print(f"smallest budget (%) reaching accuracy {a.target:g}:")
    print(iso_text(iso).to_string(index=False) if not iso.empty else "  (no scorer plan in the sweep)")
    return 0


def _cmd_bench(a: argparse.Namespace) -> int:
    if a.repeats < 1:
        raise XtmrError(f"--repeats must be at least 1, got {a.repeats}")
    for ber in a.bers:
        _flag("--ber", check_ber, ber)
    if a.per_pass is not None and a.per_pass < 1:
        raise XtmrError(f"--per-pass must be at least 1, got {a.per_pass}")
    from xtmr_core.bench import format_table, run_bench, time_lrp  # torch loads here, after the cheap checks

    if a.lrp:
        print(format_table(time_lrp(a.models, device=_device(a.device))))
        return 0
    table = run_bench(a.models, a.bers, repeats=a.repeats, per_pass=a.per_pass, device=_device(a.device))
    print(format_table(table))
    return 0


def _cmd_coverage(a: argparse.Namespace) -> int:
    if a.pool_trials < 20 or a.reps < 10:
        raise XtmrError(f"--pool-trials must be at least 20 and --reps at least 10, got {a.pool_trials}, {a.reps}")
    from xtmr_core.coverage import POINTS, format_table, reduction, run_coverage

    points = POINTS[:2] if a.quick else POINTS
    pool, reps, ns = (60, 40, (10, 25)) if a.quick else (a.pool_trials, a.reps, (10, 25, 40))
    table = run_coverage(points, pool_trials=pool, ns=ns, reps=reps, log=lambda s: print(s, file=sys.stderr))
    if a.out:
        table.to_csv(a.out, index=False)
    print(format_table(table))
    red = reduction(table)
    print("\nvariance reduction of the stratified design (plain campaigns of the same population):")
    for r in red.to_dict("records"):  # records, not itertuples: the stubs cannot type a namedtuple's columns
        print(
            f"  {r['point']} {r['quantity']} n={r['n']}: VRF {r['vrf']:.1f}; |error| q95 plain "
            f"{100 * r['q95_plain']:.3f} pt, stratified {100 * r['q95_strat']:.3f} pt ({r['q95_ratio']:.1f}x); "
            f"stratified half-width {100 * r['half_width_strat']:.3f} pt"
        )
    return 0


def _cmd_report(a: argparse.Namespace) -> int:
    from xtmr_core.distributed import make_runner
    from xtmr_core.report import run_report
    from xtmr_core.report.grid import GridRunner

    store, before = _use_store(a)
    device = _device(a.device)
    # --ray or --device: the grid's points through a GridRunner (Ray tasks, or here on that device)
    runner = GridRunner(make_runner(a.ray, a.device), device) if a.ray or a.device else None
    try:
        path = run_report(
            out_dir=a.out, quick=a.quick, dataset=a.dataset, models=a.models, runner=runner, minutes=a.minutes
        )
    finally:
        if runner is not None:
            runner.shutdown()
    print(f"wrote {path}")
    print(_store_text(store, before))
    return 0


def _use_store(a: argparse.Namespace) -> tuple[Store | None, tuple[int, int]]:
    """Open the results store of ``--store`` / ``$XTMR_STORE`` (or the default) for every ``Experiment`` this
    run builds, and its ``(read, ran)`` counts so far. A store chosen by name that cannot be opened is an
    input error (exit 2); the default location that cannot be: a warning, and the run goes on without one."""
    from xtmr_core.store import ENV, OFF, default_store, open_store

    chosen = a.store if a.store is not None else os.environ.get(ENV, "").strip() or None
    store: Store | None
    if chosen is not None and chosen.strip().lower() == OFF:
        os.environ[ENV] = OFF
        return None, (0, 0)
    if chosen is not None:
        if not chosen.strip():
            raise XtmrError("--store needs a file path (or none)")
        store = open_store(chosen)
        os.environ[ENV] = str(store.path)  # the report's experiments open the same store
    else:
        store = default_store()
        if store is None:
            os.environ[ENV] = OFF
    return store, (0, 0) if store is None else (store.read, store.ran)


def _store_text(store: Store | None, before: tuple[int, int]) -> str:
    """How many trials (one plan each) this run read from the store and how many it ran."""
    if store is None:
        return "results store off: every trial was run"
    read, ran = store.read - before[0], store.ran - before[1]
    return f"results store {store.path}: {read:,} trials read, {ran:,} run"


def _cmd_store(a: argparse.Namespace) -> int:
    from xtmr_core.store import default_path, human_bytes, open_store

    path = a.store if a.store is not None else default_path()
    if path is None or str(path).strip().lower() == "none":
        raise XtmrError("the results store is off (XTMR_STORE=none); name one with --store PATH")
    if a.action != "export" and a.out:
        raise XtmrError("--out is for store export")
    if a.action == "export":
        _check_output(a.out, "--out")
    store = open_store(path)
    if a.action == "info":
        info = store.info()
        print(
            f"{info['path']}\n  size    {human_bytes(info['bytes'])}\n  trials  {info.get('trials', 0):,} "
            f"(one plan each)\n  points  {info.get('points', 0):,}\n  plans   {info.get('plans', 0):,}\n"
            f"  scores  {info.get('scores', 0):,} (one scorer and rule of one model each), "
            f"{info.get('tables', 0):,} single-flip scans\n"
            f"  models  {', '.join(info.get('models', [])) or '-'}"
        )
    elif a.action == "clear":
        print(f"cleared {store.clear():,} trials from {store.path}")
    elif a.out:
        with open(a.out, "w", newline="") as f:
            n = store.export(f)
        print(f"wrote {n:,} trials to {a.out}")
    else:
        try:
            store.export(sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:  # `store export | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _cmd_warm(a: argparse.Namespace) -> int:
    import time

    from xtmr_core.report.grid import require_checkpoints
    from xtmr_core.warm import warm

    require_checkpoints(a.models, "mnist5k")
    store, before = _use_store(a)
    if store is None:
        raise XtmrError("the results store is off (XTMR_STORE=none); name one with --store PATH")
    t0 = time.perf_counter()
    done = warm(a.models, a.formats, log=lambda w: print(w.line(), flush=True))
    print(f"warmed {len(done)} points in {time.perf_counter() - t0:.1f} s; {_store_text(store, before)}")
    return 0


def _cmd_zoo(a: argparse.Namespace) -> int:
    from pathlib import Path

    if a.images < 1:
        raise XtmrError(f"--images must be at least 1, got {a.images}")
    from xtmr_core.zoo import run_zoo, write_csv, write_image_folder

    folder = Path(a.image_folder)
    if not folder.exists():
        write_image_folder(folder)
        print(f"wrote a 3-class image folder to {folder}", file=sys.stderr)

    def show(row: ZooRow) -> None:
        err = "" if row.balance_error is None else f" balance {row.balance_error:.2e}"
        print(f"{row.name:24s} {row.status:6s} {row.size:4d}px {row.seconds:6.1f}s{err} {row.operation}", flush=True)

    rows = run_zoo(folder, a.names, max_params=a.max_params, images=a.images, progress=show)
    write_csv(rows, a.out)
    counts = {s: sum(r.status == s for r in rows) for s in ("pass", "refuse", "crash")}
    print(f"{counts['pass']}/{len(rows)} pass, {counts['refuse']} refuse, {counts['crash']} crash; wrote {a.out}")
    return 0


_COMMANDS = {
    "zoo": _cmd_zoo,
    "warm": _cmd_warm,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "sweep": _cmd_sweep,
    "bench": _cmd_bench,
    "coverage": _cmd_coverage,
    "report": _cmd_report,
    "store": _cmd_store,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 2 on bad input, 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args._argv = argv
    try:
        return _COMMANDS[args.command](args)
    except XtmrError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file that cannot be read or written: say which, no traceback
        print(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
