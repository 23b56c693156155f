"""The classifiers, sized by a width multiplier so they train on a small CPU.

The four plain ones (``PLAIN_MODELS``: mlp, lenet5, alexnet, vgg16) are built from ``nn.Conv2d``,
``nn.Linear``, ``nn.ReLU``, ``nn.MaxPool2d`` and ``nn.Dropout`` only, each module used once, flattening
in ``forward``. The two real networks (``resnet20``, ``mobilenetv2``) add BatchNorm, ReLU6, depthwise
convolutions and residual adds; every add is an ``Add`` module, so canonization (``canonize``) and LRP
(``relevance``) see it as a layer of its own. Every module object is used once per forward.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from xtmr_core.errors import XtmrError
from xtmr_core.vocabulary import MODELS, check_choice

#: The models without BatchNorm or residual adds.
PLAIN_MODELS = ("mlp", "lenet5", "alexnet", "vgg16")

# Chosen so a clean pass over 1,000 28×28 images stays well under 0.15 s on 2 CPU cores and each
# model reaches >= 95% on mnist5k in a few CPU minutes (measured numbers in checkpoints/MANIFEST.json).
_DEFAULT_WIDTH = {
    "mlp": 0.5,
    "lenet5": 1.0,
    "alexnet": 0.125,
    "vgg16": 0.125,
    "resnet20": 0.375,
    "mobilenetv2": 0.5,
    "mobilenetv3": 0.5,
    "vit": 1.0,
}

# Channel / hidden counts at width 1 (the original architectures; "M" = 2×2 max-pool).
_MLP_HIDDEN = (512, 256)
_LENET_CONV = (6, 16)
_LENET_FC = (120, 84)
_ALEXNET_CONV = ((64, 5), "M", (192, 5), "M", (384, 3), (256, 3), (256, 3), "M")
_ALEXNET_FC = (4096, 4096)
_VGG16_CONV = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_VGG16_FC = (4096, 4096)
# ResNet-20 for CIFAR (He et al. 2016, section 4.2): 3 stages of 3 BasicBlocks.
_RESNET20_STAGES = ((16, 1), (32, 2), (64, 2))
_RESNET20_BLOCKS = 3
# MobileNetV2 (Sandler et al. 2018) with its ImageNet strides (stride-2 stem): on 28×28 digits the
# CIFAR variant's stride-1 stem costs 3× the time for no accuracy. (expansion t, channels c, blocks n, stride s).
_MBV2_STEM = 32
_MBV2_STEM_STRIDE = 2
_MBV2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_MBV2_LAST = 1280
# MobileNetV3-Small (Howard et al. 2019, table 2): (kernel, expanded, out, squeeze-excite, Hardswish, stride).
# The first block keeps stride 1 here (the original's is 2): on 28×28 digits the net then ends at 2×2, not 1×1.
_MBV3_STEM = 16
_MBV3_SETTINGS = (
    (3, 16, 16, True, False, 1),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1),
    (5, 576, 96, True, True, 1),
)
_MBV3_LAST = 576
_MBV3_HEAD = 1024
# A small vision transformer (Dosovitskiy et al. 2021): 4×4 patches, pre-norm blocks, mean-pooled tokens
# (no class token: better on a few thousand images). Embedding width is scaled by the width multiplier.
_VIT_PATCH = 4
_VIT_DIM = 64
_VIT_DEPTH = 4
_VIT_HEADS = 4
_VIT_MLP = 2


def default_width(name: str) -> float:
    """Return the width multiplier a model is built with when none is given.

    Args:
        name: one of ``MODELS``.

    Returns:
        The multiplier applied to every channel and hidden-unit count of the original architecture.
    """
    _check_name(name)
    return _DEFAULT_WIDTH[name]


def build_model(
    name: str, in_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10, width: float | None = None
) -> nn.Module:
    """Build an untrained classifier (initialised from torch's global RNG: seed it for determinism).

    Args:
        name: ``mlp`` (2 hidden layers), ``lenet5`` (2 conv + 3 linear), ``alexnet`` (5 conv + 3
            linear), ``vgg16`` (13 conv 3×3 + 3 linear), ``resnet20`` (21 conv + 1 linear, BatchNorm,
            identity and 1×1 projection shortcuts) or ``mobilenetv2`` (52 conv incl. 17 depthwise + 1
            linear, BatchNorm, ReLU6, inverted residuals).
        in_shape: input C×H×W; any size from 8×8 up (pooling is skipped where it would reach 0).
        num_classes: number of outputs.
        width: multiplier on channel and hidden counts; ``None`` = ``default_width(name)``.

    Returns:
        The model in train mode, on the CPU.

    Raises:
        XtmrError: unknown name or invalid shape, class count or width.
    """
    _check_name(name)
    width = default_width(name) if width is None else float(width)
    if not (0 < width <= 4):
        raise XtmrError(f"width must be in (0, 4], got {width}; pass e.g. --width {default_width(name)}")
    try:
        c, h, w = (int(v) for v in in_shape)
    except (TypeError, ValueError):
        raise XtmrError(f"in_shape must be three integers C, H, W, got {in_shape!r}") from None
    if min(c, h, w) < 1:
        raise XtmrError(f"in_shape must be positive, got {in_shape!r}")
    if name != "mlp" and min(h, w) < 8:
        raise XtmrError(f"{name} needs images of at least 8×8 pixels, got {h}×{w}; use the mlp model")
    if int(num_classes) < 2:
        raise XtmrError(f"num_classes must be at least 2, got {num_classes}")
    model = _BUILDERS[name]((c, h, w), int(num_classes), width)
    _init_weights(model)
    return model


#: A layer whose ``weight`` tensor is faultable (``weight_layers``).
WeightLayer = nn.Conv2d | nn.Linear | _BatchNorm


def weight_layers(model: nn.Module) -> list[tuple[str, WeightLayer]]:
    """List the layers whose weights are faultable: every ``nn.Conv2d`` (grouped and depthwise included)
    and ``nn.Linear``, and every BatchNorm with a scale that is still a layer of its own.

    A deployed model has its BatchNorm folded into the conv before it (``canonize.deployed_model``), so
    its BatchNorm scales live in the conv weights; only a model deployed with BatchNorm kept separate
    stores (and so can lose) them on their own.

    Args:
        model: any module.

    Returns:
        ``(qualified name, module)`` pairs in registration order, which for these models is forward order.
    """
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) or (isinstance(m, _BatchNorm) and m.weight is not None)
    ]


# False while ``vmap`` batches trials (``batched.evaluate_many``): a batched tensor's hidden trial dimension
# makes it 5-d, so it has no NHWC layout, and vmap's fallback for layout changes is slow and warns.
_LAYOUT_CHANGES: contextvars.ContextVar[bool] = contextvars.ContextVar("xtmr_layout_changes", default=True)


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in NHWC memory layout (faster convolutions on the CPU), or ``x`` itself inside
    ``without_layout_changes``. A layout changes speed only, never values."""
    return x.to(memory_format=torch.channels_last) if _LAYOUT_CHANGES.get() else x


@contextlib.contextmanager
def without_layout_changes() -> Iterator[None]:
    """Within this block (in this thread or task) the models keep their inputs' memory layout."""
    token = _LAYOUT_CHANGES.set(False)
    try:
        yield
    finally:
        _LAYOUT_CHANGES.reset(token)


# A leaf of torch.fx traces (canonize folds BatchNorm on one), so the switch is read at run time, not traced.
torch.fx.wrap("to_channels_last")


class Add(nn.Module):
    """A residual add ``z = a + b`` as a module of its own, so canonization and LRP can see it
    (relevance splits in proportion to ``a`` and ``b``; a plain ``+`` would be invisible)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Return ``a + b``."""
        return a + b


class BasicBlock(nn.Module):
    """Two 3×3 conv + BN, ReLU between; the input (or its 1×1-conv + BN projection) added before the last ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        # None rather than nn.Identity for the identity shortcut: nothing to fault or to canonize.
        self.shortcut: nn.Sequential | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.add = Add()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output."""
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        if self.shortcut is None:
            short = x
        else:
            # NCHW for the 1×1 stride-2 projection: oneDNN's backward of that conv on an NHWC tensor corrupts
            # the heap in torch 2.14 on the CPU (crashes LRP and training for some batch sizes).
            short = to_channels_last(self.shortcut(x.contiguous()))
        y: torch.Tensor = self.relu2(self.add(out, short))
        return y


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand + BN + ReLU6, 3×3 depthwise + BN + ReLU6, 1×1 project + BN (linear),
    and the input added when the shapes agree."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)
        self.add = Add() if stride == 1 and c_in == c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output."""
        out = self.conv(x)
        y: torch.Tensor = out if self.add is None else self.add(x, out)
        return y


def _divisible(channels: float, divisor: int = 8) -> int:
    """``channels`` rounded to a multiple of ``divisor`` (MobileNet's rule: never below 90% of the value)."""
    out = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * channels else out


class SqueezeExcite(nn.Module):
    """Squeeze-excitation (Hu et al. 2018, as in MobileNetV3): ``x * hardsigmoid(fc2(relu(fc1(mean_hw x))))``.

    The gate is a per-channel factor; LRP treats it as a constant (relevance follows ``x``; ``fc1`` and
    ``fc2`` get none)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` scaled per channel by its gate."""
        y: torch.Tensor = x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))
        return y


class InvertedResidualSE(nn.Module):
    """MobileNetV3 block: 1×1 expand + BN + act (when expanding), k×k depthwise + BN + act, optional
    squeeze-excitation, 1×1 project + BN (linear), and the input added when the shapes agree."""

    def __init__(self, c_in: int, hidden: int, c_out: int, kernel: int, stride: int, se: bool, hardswish: bool) -> None:
        super().__init__()

        def act() -> nn.Module:
            return nn.Hardswish() if hardswish else nn.ReLU()

        layers: list[nn.Module] = []
        if hidden != c_in:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act()]
        layers += [
            nn.Conv2d(hidden, hidden, kernel, stride=stride, padding=kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            act(),
        ]
        if se:
            layers.append(SqueezeExcite(hidden, _divisible(hidden / 4)))
        layers += [nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.add = Add() if stride == 1 and c_in == c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output."""
        out = self.conv(x)
        y: torch.Tensor = out if self.add is None else self.add(x, out)
        return y


class Attention(nn.Module):
    """Multi-head self-attention with its projections as ``nn.Linear`` layers (so every weight is faultable):
    ``proj(softmax(q k^T / sqrt(d)) v)`` per head, ``q, k, v`` from one ``qkv`` layer."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the attention output for tokens ``x`` (N × tokens × dim)."""
        n, t = x.shape[0], x.shape[1]
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        y: torch.Tensor = self.proj((attn @ v).transpose(1, 2).reshape(n, t, -1))
        return y


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN x)``, then ``x + fc2(GELU(fc1(LN x)))``."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.add1 = Add()
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.add2 = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output tokens."""
        x = self.add1(x, self.attn(self.norm1(x)))
        y: torch.Tensor = self.add2(x, self.fc2(self.act(self.fc1(self.norm2(x)))))
        return y


class VisionTransformer(nn.Module):
    """A small ViT: a conv patch embedding, learned position embeddings, pre-norm blocks, a final LayerNorm,
    the mean over tokens and a linear head."""

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        c, h, w = in_shape
        patch = _VIT_PATCH if min(h, w) >= 2 * _VIT_PATCH else 1
        self.patch = nn.Conv2d(c, dim, patch, stride=patch)
        tokens = (h // patch) * (w // patch)
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.Sequential(*(TransformerBlock(dim, heads, _VIT_MLP * dim) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of a batch N×C×H×W."""
        tokens = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        y: torch.Tensor = self.head(self.norm(self.blocks(tokens)).mean(dim=1))
        return y


class Classifier(nn.Module):
    """``features`` (convolutions; none for the MLP), flattened in ``forward``, then ``classifier``."""

    def __init__(self, features: nn.Sequential | None, classifier: nn.Sequential, channels_last: bool = False) -> None:
        super().__init__()
        self.channels_last = channels_last
        # None rather than an empty Sequential: Captum's LRP treats a childless module as a layer
        # and has no rule for it.
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of a batch N×C×H×W."""
        if self.channels_last:
            # oneDNN runs convolutions with a few channels about twice as fast on NHWC tensors, and the
            # layout propagates from the input to every later activation (``to``, not ``contiguous``: a
            # one-channel NCHW tensor already counts as contiguous in NHWC and would stay NCHW).
            x = to_channels_last(x)
        if self.features is not None:
            x = self.features(x)
        # torch.flatten, not nn.Flatten: Captum's LRP has no rule for a Flatten module.
        y: torch.Tensor = self.classifier(torch.flatten(x, 1))
        return y


def _check_name(name: str) -> None:
    check_choice("model", name, MODELS)


def _scaled(count: int, width: float) -> int:
    return max(1, int(round(count * width)))


def _head(n_in: int, hidden: tuple[int, ...], num_classes: int, width: float, dropout: float) -> nn.Sequential:
    """Linear layers with a fresh ReLU (and Dropout) after each hidden one."""
    layers: list[nn.Module] = []
    for units in hidden:
        n_out = _scaled(units, width)
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        n_in = n_out
    layers.append(nn.Linear(n_in, num_classes))
    return nn.Sequential(*layers)


def _conv_stack(
    spec: tuple[int | str | tuple[int, int], ...], in_shape: tuple[int, int, int], width: float
) -> tuple[nn.Sequential, int]:
    """Conv(k, same padding) + ReLU per entry, 2×2 max-pool at "M" while the map is at least 2 wide."""
    c, h, w = in_shape
    layers: list[nn.Module] = []
    for item in spec:
        if isinstance(item, str):  # "M", the only text entry
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            continue
        out, k = item if isinstance(item, tuple) else (item, 3)
        out = _scaled(out, width)
        layers += [nn.Conv2d(c, out, k, padding=k // 2), nn.ReLU()]
        c = out
    return nn.Sequential(*layers), c * h * w


def _mlp(in_shape: tuple[int, int, int], num_classes: int, width: float) -> nn.Module:
    c, h, w = in_shape
    return Classifier(None, _head(c * h * w, _MLP_HIDDEN, num_classes, width, 0.0))


def _lenet5(in_shape: tuple[int, int, int], num_classes: int, width: float) -> nn.Module:
    c, h, w = in_shape
    layers: list[nn.Module] = []
    for i, out in enumerate(_LENET_CONV):
        # LeNet-5 maps 32×32 to 28×28 to 14×14 to 10×10 to 5×5; smaller inputs get padding 2 (as
        # MNIST 28×28 is classically padded to 32×32) wherever a 5×5 kernel would not leave 5×5.
        pad = 0 if min(h, w) >= (32 if i == 0 else 10) else 2
        out = _scaled(out, width)
        layers += [nn.Conv2d(c, out, 5, padding=pad), nn.ReLU()]
        c, h, w = out, h + 2 * pad - 4, w + 2 * pad - 4
        if min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
    return Classifier(nn.Sequential(*layers), _head(c * h * w, _LENET_FC, num_classes, width, 0.0))


def _alexnet(in_shape: tuple[int, int, int], num_classes: int, width: float) -> nn.Module:
    # AlexNet's 11×11/stride-4 stem is for 224-pixel inputs; on 28-32 pixels it becomes 5×5/stride 1.
    features, n = _conv_stack(_ALEXNET_CONV, in_shape, width)
    return Classifier(features, _head(n, _ALEXNET_FC, num_classes, width, 0.5))


def _vgg16(in_shape: tuple[int, int, int], num_classes: int, width: float) -> nn.Module:
    features, n = _conv_stack(_VGG16_CONV, in_shape, width)
    return Classifier(features, _head(n, _VGG16_FC, num_classes, width, 0.5))


def _resnet20(in_shape: tuple[int, int, int], num_classes: int, width: float) -> nn.Module:
    c, _, _ = in_shape
    stem = _scaled(_RESNET20_STAGES[0][0], width)
    layers: list[nn.Module] = [nn.Conv2d(c, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU()]
    c = stem
    for channels, stride in _RESNET20_STAGES:
        out = _scaled(channels, width)
        for i in range(_RESNET20_BLOCKS):
            layers.append(BasicBlock(c, out, stride if i == 0 else 1))
            c = out
    layers.append(nn.AdaptiveAvgPool2d(1))
    return Classifier(nn.Sequential(*layers), nn.Sequential(nn.Linear(c, num_classes)), channels_last=True)


def _mobilenetv2(in_shape: tuple[int, int, int], num_classes: int, width: float) -> nn.Module:
    c, _, _ = in_shape
    stem = _scaled(_MBV2_STEM, width)
    layers: list[nn.Module] = [
        nn.Conv2d(c, stem, 3, stride=_MBV2_STEM_STRIDE, padding=1, bias=False),
        nn.BatchNorm2d(stem),
        nn.ReLU6(),
    ]
    c = stem
    for t, channels, n, s in _MBV2_SETTINGS:
        out = _scaled(channels, width)
        for i in range(n):
            layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
            c = out
    last = _scaled(_MBV2_LAST, width)
    layers += [nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(), nn.AdaptiveAvgPool2d(1)]
    return Classifier(nn.Sequential(*layers), nn.Sequential(nn.Linear(last, num_classes)), channels_last=True)


def _mobilenetv3(in_shape: tuple[int, int, int], num_classes: int, width: float) -> nn.Module:
    c, _, _ = in_shape
    stem = _divisible(_MBV3_STEM * width)
    layers: list[nn.Module] = [
        nn.Conv2d(c, stem, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(stem),
        nn.Hardswish(),
    ]
    c = stem
    for kernel, expanded, channels, se, hardswish, stride in _MBV3_SETTINGS:
        hidden, out = _divisible(expanded * width), _divisible(channels * width)
        layers.append(InvertedResidualSE(c, hidden, out, kernel, stride, se, hardswish))
        c = out
    last = _divisible(_MBV3_LAST * width)
    layers += [nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.Hardswish(), nn.AdaptiveAvgPool2d(1)]
    head = _divisible(_MBV3_HEAD * width)
    classifier = nn.Sequential(nn.Linear(last, head), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(head, num_classes))
    return Classifier(nn.Sequential(*layers), classifier, channels_last=True)


def _vit(in_shape: tuple[int, int, int], num_classes: int, width: float) -> nn.Module:
    dim = max(_VIT_HEADS, int(round(_VIT_DIM * width / _VIT_HEADS)) * _VIT_HEADS)
    model = VisionTransformer(in_shape, num_classes, dim, _VIT_DEPTH, _VIT_HEADS)
    nn.init.trunc_normal_(model.pos, std=0.02)
    return model


_BUILDERS = {
    "mlp": _mlp,
    "lenet5": _lenet5,
    "alexnet": _alexnet,
    "vgg16": _vgg16,
    "resnet20": _resnet20,
    "mobilenetv2": _mobilenetv2,
    "mobilenetv3": _mobilenetv3,
    "vit": _vit,
}


def _init_weights(model: nn.Module) -> None:
    # He initialisation keeps activations at scale through 16 ReLU layers without BatchNorm;
    # PyTorch's default init shrinks them layer by layer and VGG16 would not start learning.
    if isinstance(model, VisionTransformer):
        # Transformers train from small weights (truncated normal, std 0.02, as ViT and timm do).
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
