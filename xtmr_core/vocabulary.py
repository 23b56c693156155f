"""The project's one vocabulary: every name a user can choose, and the cheap checks of user input.

Torch-free and numpy-free on purpose: the CLI validates its arguments with this module before torch is
loaded, and the engine, the pages and the tests all import their choices from here (tests parametrise
from these tuples), so a name is typed once.
"""

from __future__ import annotations

import math

from xtmr_core.errors import XtmrError
from xtmr_core.format_registry import FORMAT_INFO, format_info
from xtmr_core.plan_registry import EXTRA_MEMORY_PCT, PLAN_INFO, WEIGHTS_PCT, plan_info

#: Built-in architectures (``models.build_model``).
MODELS: tuple[str, ...] = ("mlp", "lenet5", "alexnet", "vgg16", "resnet20", "mobilenetv2", "mobilenetv3", "vit")
#: Built-in datasets (``data.load_dataset``); ``mnist5k`` ships offline.
DATASETS: tuple[str, ...] = ("mnist5k", "digits", "mnist", "fashion_mnist", "cifar10")
#: A model from outside the zoo (``model_source``): ``torchvision:NAME`` (any torchvision classification
#: architecture), ``FILE.py:FACTORY`` or ``PACKAGE.MODULE:FACTORY`` (a function returning an ``nn.Module``;
#: the command line only, never the web app).
TORCHVISION_PREFIX = "torchvision:"
MODEL_KINDS: tuple[str, ...] = ("builtin", "torchvision", "file", "module")
#: The user's own images (``image_folder``): ``imagefolder:PATH``, one sub-folder of images per class.
IMAGEFOLDER_PREFIX = "imagefolder:"
#: How image-folder pixels are normalised: not at all ([0, 1]), by ImageNet's or by the train split's statistics.
NORMALIZATIONS: tuple[str, ...] = ("none", "imagenet", "dataset")
#: Storage formats of weight memory and their word sizes (the built-in ones of ``format_registry``).
FORMATS: tuple[str, ...] = tuple(FORMAT_INFO)
WORD_BITS: dict[str, int] = {name: info.bits for name, info in FORMAT_INFO.items()}
#: Scale granularities of int8.
INT8_GRANULARITIES: tuple[str, ...] = ("channel", "tensor")
#: Weight-importance scorers (``scoring.score_weights``).
SCORERS: tuple[str, ...] = ("lrp", "magnitude", "gradient", "taylor", "random")
#: Protection plans (the built-in ones of ``plan_registry``, which says what each is): the scorer plans choose
#: the top ``budget`` % weights by their scorer; ``ecc`` is SEC-DED (72, 64); ``damage`` triplicates the
#: (weight, bit) pairs of highest expected damage. Checks read ``plan_names()``, which includes plans
#: registered at run time.
PLANS: tuple[str, ...] = tuple(PLAN_INFO)
#: What an ECC word with a detected, uncorrectable error reads as: its weights as 0, or as read.
ECC_DOUBLE: tuple[str, ...] = ("zero", "read")
#: The harm of a flip at a bit position, for ``damage``: the weight's |delta w| of the flip, or the accuracy
#: loss at that bit position in the single-flip scan (``sensitivity.bit_sensitivity``).
HARMS: tuple[str, ...] = ("delta", "scan")
#: Suffix that adds the range guard to a plan on the command line and in sweeps (``lrp+range``).
GUARD_SUFFIX = "+range"


def plan_names(guarded: bool = False) -> tuple[str, ...]:
    """Every plan name now in the registry; with ``guarded``, also ``PLAN+range`` for each plan that takes the
    guard (``none+range`` is ``range``; ``range+range`` is not a name)."""
    names = tuple(PLAN_INFO)
    if not guarded:
        return names
    return names + tuple(n + GUARD_SUFFIX for n, info in PLAN_INFO.items() if "guard" in info.spec_fields)


#: Plan names with the guard suffix allowed, of the built-in plans (``plan_names(guarded=True)`` reads live).
PLAN_NAMES: tuple[str, ...] = plan_names(guarded=True)
#: LRP rules.
RULES: tuple[str, ...] = ("epsilon", "gamma", "alpha1beta0")
#: Input attribution methods (``attribution.input_attribution``): the project's LRP, then Captum's.
ATTRIBUTIONS: tuple[str, ...] = ("lrp", "integrated_gradients", "saliency", "input_x_gradient")
#: Fault modes: a faulty bit is inverted, or reads as 0, or as 1.
MODES: tuple[str, ...] = ("flip", "stuck0", "stuck1")
#: The paired verdicts of a plan against another (``stats.judge``), in this order: helps, hurts, within noise,
#: no practical difference (an interval inside the practical threshold), not enough trials (no interval can
#: be estimated yet), nothing to protect (the faults themselves cost a negligible accuracy).
VERDICTS: tuple[str, ...] = (
    "helps",
    "hurts",
    "within noise",
    "no practical difference",
    "not enough trials",
    "nothing to protect",
)
#: Sampling designs of a grid point's trials: ``auto`` stratifies on the deciding faults where that pays
#: (``strata.make_strata``), ``plain`` is plain Monte Carlo.
DESIGNS: tuple[str, ...] = ("auto", "plain")
#: Learning-rate schedules of training: constant, or a half cosine down to 0 over all steps.
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
#: Optimisers of training: Adam, or SGD with Nesterov momentum 0.9 (which trains the depthwise, BatchNorm
#: MobileNetV2 to 96% on mnist5k where Adam stalls near 55%).
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
#: Devices a user may ask for.
DEVICES: tuple[str, ...] = ("cpu", "cuda")

#: Largest seed (numpy's SeedSequence takes any non-negative int; 2^63 keeps it a signed 64-bit value).
MAX_SEED = 2**63


def check_choice(kind: str, value: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``XtmrError`` naming the choices."""
    if value not in choices:
        raise XtmrError(f"unknown {kind} {value!r}: choose one of {', '.join(choices)}")
    return value


def model_kind(text: str) -> str:
    """Which kind of model reference ``text`` is (one of ``MODEL_KINDS``), checked for form only.

    ``lenet5`` is built in, ``torchvision:resnet18`` a torchvision architecture, ``nets/my.py:build`` a
    factory in a file, ``mypkg.nets:build`` a factory in an importable module.

    Raises:
        XtmrError: a name that is none of these.
    """
    text = str(text)
    if text in MODELS:
        return "builtin"
    if text.startswith(TORCHVISION_PREFIX):
        if not text[len(TORCHVISION_PREFIX) :].isidentifier():
            raise XtmrError(f"bad model {text!r}: give a torchvision architecture, e.g. torchvision:resnet18")
        return "torchvision"
    source, sep, factory = text.rpartition(":")
    if sep and factory.isidentifier() and source:
        if source.endswith(".py"):
            return "file"
        if all(part.isidentifier() for part in source.split(".")):
            return "module"
    raise XtmrError(
        f"unknown model {text!r}: choose one of {', '.join(MODELS)}, or torchvision:NAME, "
        f"FILE.py:FACTORY or PACKAGE.MODULE:FACTORY"
    )


def dataset_kind(text: str) -> str:
    """``builtin`` for a name of ``DATASETS``, ``imagefolder`` for ``imagefolder:PATH``.

    Raises:
        XtmrError: anything else, or an image folder without a path.
    """
    text = str(text)
    if text in DATASETS:
        return "builtin"
    if text.startswith(IMAGEFOLDER_PREFIX):
        if not text[len(IMAGEFOLDER_PREFIX) :].strip():
            raise XtmrError("imagefolder: needs a folder, e.g. imagefolder:photos/")
        return "imagefolder"
    raise XtmrError(f"unknown dataset {text!r}: choose one of {', '.join(DATASETS)}, or imagefolder:PATH")


def check_format(fmt: str) -> str:
    """Return ``fmt`` if it is a known storage format (``format_registry``, read live), else raise ``XtmrError``."""
    return format_info(fmt).name


def check_ber(ber: float) -> float:
    """Return the bit error rate as a float if it lies in [0, 1], else raise ``XtmrError``."""
    if isinstance(ber, bool) or not isinstance(ber, (int, float)) or not 0.0 <= float(ber) <= 1.0:
        raise XtmrError(f"BER must be a number in [0, 1], got {ber!r}")
    return float(ber)


def check_budget(budget: float) -> float:
    """Return ``budget`` (percent of weights) as a float if it lies in [0, 100], else raise ``XtmrError``."""
    return _percent(budget, 100.0, "budget must be a percentage")


def check_damage_budget(budget: float) -> float:
    """Return a ``damage`` budget (percent extra memory, up to 200 = every bit triplicated) as a float."""
    return _percent(budget, 200.0, "damage budget must be a % of extra memory")


def check_plan_budget(plan: str, budget: float) -> float:
    """Return ``budget`` as a float if it lies within what ``plan`` takes (``PlanInfo.budget_unit`` up to
    ``budget_max``), else raise ``XtmrError``; a plan without a budget takes any number (a spec sets it to 0)."""
    info = plan_info(plan)
    if info.budget_unit is None or info.budget_unit == WEIGHTS_PCT and info.budget_max == 100.0:
        return check_budget(budget)
    if info.budget_unit == EXTRA_MEMORY_PCT and info.budget_max == 200.0:
        return check_damage_budget(budget)
    return _percent(budget, info.budget_max, f"{info.name} budget must be a {info.budget_unit}")


def _percent(budget: float, high: float, what: str) -> float:
    """``budget`` as a float in [0, ``high``], else ``XtmrError`` saying ``what``."""
    try:
        value = float(budget)
    except (TypeError, ValueError):
        raise XtmrError(f"{what} in [0, {high:g}], got {budget!r}") from None
    if not 0.0 <= value <= high:
        raise XtmrError(f"{what} in [0, {high:g}], got {budget!r}")
    return value


def check_seed(seed: int) -> int:
    """Return ``seed`` if it is an integer in [0, 2^63), else raise ``XtmrError``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_SEED:
        raise XtmrError(f"seed must be an integer in [0, 2^63), got {seed!r}")
    return seed


def check_trials(trials: int) -> int:
    """Return ``trials`` if it is an integer of at least 1, else raise ``XtmrError``."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise XtmrError(f"trials must be an integer of at least 1, got {trials!r}")
    return trials


def check_accuracy_target(target: float) -> float:
    """Return a target accuracy if it lies in [0, 1], else raise ``XtmrError``."""
    if not isinstance(target, (int, float)) or math.isnan(target) or not 0.0 <= target <= 1.0:
        raise XtmrError(f"target is an accuracy in [0, 1] (e.g. 0.95), got {target!r}")
    return float(target)


def parse_bits(text: str) -> tuple[int, ...]:
    """Parse bit positions like ``"30"``, ``"23-31"`` or ``"0,7,30-31"`` into a sorted tuple.

    Raises:
        XtmrError: on anything else.
    """
    out: list[int] = []
    try:
        for part in str(text).replace(" ", "").split(","):
            if not part:
                continue
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise XtmrError(f"bad bit positions {text!r}: use e.g. 30, 23-31 or 0,7,30-31") from None
    if not out or min(out) < 0:
        raise XtmrError(f"bad bit positions {text!r}: use e.g. 30, 23-31 or 0,7,30-31")
    return tuple(sorted(set(out)))


def check_bits(bits: tuple[int, ...], fmt: str, what: str = "bit position") -> tuple[int, ...]:
    """Return ``bits`` sorted and de-duplicated if every position exists in a word of ``fmt``.

    Raises:
        XtmrError: an empty list, or a position outside ``0 .. WORD_BITS[fmt] - 1``.
    """
    return check_positions(bits, format_info(fmt).bits, what)


def check_positions(bits: tuple[int, ...], word_bits: int, what: str = "bit position") -> tuple[int, ...]:
    """``check_bits`` for a word of ``word_bits`` bits (for callers that know the size, not the format)."""
    if not bits:
        raise XtmrError(f"no {what}s given: use e.g. 30, 23-31 or 0,7,30-31")
    bad = [b for b in bits if not 0 <= int(b) < word_bits]
    if bad:
        raise XtmrError(f"{what} {bad[0]} outside 0..{word_bits - 1} for a {word_bits}-bit format")
    return tuple(sorted({int(b) for b in bits}))
