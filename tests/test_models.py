"""Tests for xtmr_core.models: architectures, Captum-LRP compatibility of the plain ones, determinism, errors."""

import pytest
import torch
from captum.attr import LRP, LayerLRP
from torch import nn

from xtmr_core.errors import XtmrError
from xtmr_core.models import (
    PLAIN_MODELS,
    Add,
    BasicBlock,
    InvertedResidual,
    build_model,
    default_width,
    weight_layers,
)
from xtmr_core.vocabulary import MODELS

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 8, 8)]
# (conv layers, linear layers) of the original architectures.
LAYERS = {
    "mlp": (0, 3),
    "lenet5": (2, 3),
    "alexnet": (5, 3),
    "vgg16": (13, 3),
    "resnet20": (21, 1),
    "mobilenetv2": (52, 1),
    "mobilenetv3": (52, 2),  # 11 blocks, 9 with squeeze-excitation (2 convs each), stem, last conv; 2 linear
    "vit": (1, 17),  # patch embedding; qkv, proj, fc1, fc2 per block ×4, head
}


def _build(name, shape=(1, 28, 28), seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(name, shape, 10, **kw)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_layer_counts(name, shape):
    model = _build(name, shape).eval()
    out = model(torch.rand(2, *shape))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    layers = weight_layers(model)
    convs = [m for _, m in layers if isinstance(m, nn.Conv2d)]
    linears = [m for _, m in layers if isinstance(m, nn.Linear)]
    assert (len(convs), len(linears)) == LAYERS[name]
    if name == "vgg16":
        assert all(m.kernel_size == (3, 3) for m in convs)


def test_weight_layers_names_and_forward_order():
    model = _build("lenet5").eval()
    names = [n for n, _ in weight_layers(model)]
    assert names == ["features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"]
    seen = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: seen.append(n)) for n, m in weight_layers(model)]
    model(torch.rand(1, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert seen == names
    assert all(dict(model.named_modules())[n] is m for n, m in weight_layers(model))


@pytest.mark.parametrize("name", PLAIN_MODELS)
def test_only_lrp_friendly_modules(name):
    model = _build(name)
    allowed = (nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Dropout, nn.Sequential)
    modules = list(model.modules())[1:]
    assert all(isinstance(m, allowed) for m in modules), [type(m) for m in modules]
    assert all(not m.inplace for m in modules if isinstance(m, nn.ReLU))
    # No module object is used twice (Captum keeps per-module state).
    all_modules = [m for _, m in model.named_modules(remove_duplicate=False)]
    assert len({id(m) for m in all_modules}) == len(all_modules)
    assert all(len(list(m.children())) > 0 for m in modules if isinstance(m, nn.Sequential))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("name", PLAIN_MODELS)
def test_captum_lrp_runs(name, shape):
    model = _build(name, shape).eval()
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0)).requires_grad_()
    attr = LRP(model).attribute(x, target=3)
    assert attr.shape == x.shape and torch.isfinite(attr).all() and attr.abs().sum() > 0
    layer_name, layer = weight_layers(model)[-2]
    layer_attr = LayerLRP(model, layer).attribute(x, target=3)
    assert torch.isfinite(layer_attr).all() and layer_attr.shape[0] == 2


@pytest.mark.parametrize("name", MODELS)
def test_init_is_deterministic_given_seed(name):
    a, b, c = _build(name, seed=0), _build(name, seed=0), _build(name, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_width_multiplier_scales_channels():
    narrow, wide = _build("vgg16", width=0.125), _build("vgg16", width=0.25)
    assert weight_layers(narrow)[0][1].out_channels == 8
    assert weight_layers(wide)[0][1].out_channels == 16
    assert default_width("vgg16") == 0.125
    assert _build("vgg16").state_dict()["features.0.weight"].shape == (8, 1, 3, 3)


@pytest.mark.parametrize("name", MODELS)
def test_default_sizes_stay_small(name):
    # Shipped checkpoints must stay well under 5 MB (4 bytes per parameter).
    params = sum(p.numel() for p in _build(name).parameters())
    assert params < 1_000_000


def test_resnet20_structure():
    model = _build("resnet20", width=0.5)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 9
    # Two stage transitions get a 1×1 stride-2 projection with BatchNorm; the other seven are identities.
    projections = [b.shortcut for b in blocks if b.shortcut is not None]
    assert len(projections) == 2
    assert all(
        p[0].kernel_size == (1, 1) and p[0].stride == (2, 2) and isinstance(p[1], nn.BatchNorm2d) for p in projections
    )
    assert [b.conv1.out_channels for b in blocks] == [8] * 3 + [16] * 3 + [32] * 3
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 21
    assert sum(isinstance(m, Add) for m in model.modules()) == 9


def test_mobilenetv2_structure():
    model = _build("mobilenetv2", width=1.0)
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 17 and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    # Residual adds only where stride is 1 and the channel count stays: 10 of the 17 blocks.
    assert sum(b.add is not None for b in blocks) == 10
    assert sum(isinstance(m, nn.ReLU6) for m in model.modules()) == 2 * 17 - 1 + 2
    assert model.classifier[0].in_features == 1280


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2"])
def test_real_networks_take_one_and_three_channels_and_train(name):
    for shape in [(1, 28, 28), (3, 32, 32), (3, 64, 64)]:
        model = _build(name, shape)
        out = model(torch.rand(3, *shape))  # train mode: BatchNorm uses the batch statistics
        assert out.shape == (3, 10)
        out.sum().backward()
        assert all(p.grad is not None for p in model.parameters())


def test_pooling_is_skipped_below_one_pixel():
    model = _build("vgg16", (1, 8, 8))
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3  # 8 -> 4 -> 2 -> 1, the last two pools skipped
    assert model.classifier[0].in_features == 64


def test_lenet5_classic_shapes():
    model = _build("lenet5", (1, 28, 28))
    assert model.features[0].padding == (2, 2) and model.classifier[0].in_features == 16 * 5 * 5
    model = _build("lenet5", (3, 32, 32))
    assert model.features[0].padding == (0, 0) and model.classifier[0].in_features == 16 * 5 * 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "resnet"}, "choose one of"),
        ({"name": "mlp", "width": 0}, "width"),
        ({"name": "lenet5", "in_shape": (1, 4, 4)}, "at least 8"),
        ({"name": "mlp", "in_shape": (1, 0, 8)}, "positive"),
        ({"name": "mlp", "num_classes": 1}, "num_classes"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(XtmrError, match=match):
        build_model(**kwargs)
    with pytest.raises(XtmrError):
        default_width("resnet")


def test_mobilenetv3_structure():
    from xtmr_core.models import InvertedResidualSE, SqueezeExcite

    model = _build("mobilenetv3", width=1.0)
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidualSE)]
    assert len(blocks) == 11
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == 9
    assert sum(isinstance(m, nn.Hardswish) for m in model.modules()) == 1 + 2 * 8 + 2  # stem, blocks, last, head
    assert sum(b.add is not None for b in blocks) == 7  # stride 1 and equal widths
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 11 and {m.kernel_size for m in depthwise} == {(3, 3), (5, 5)}
    x = torch.rand(2, 1, 28, 28)
    se = next(m for m in model.modules() if isinstance(m, SqueezeExcite)).eval()
    h = torch.rand(2, se.fc1.in_channels, 5, 5)
    gate = se.gate(se.fc2(se.relu(se.fc1(h.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(se(h), h * gate)  # the gate scales each channel
    assert model.eval()(x).shape == (2, 10)


def test_vit_structure():
    from xtmr_core.models import Attention, TransformerBlock, VisionTransformer

    model = _build("vit").eval()
    assert isinstance(model, VisionTransformer) and model.patch.stride == (4, 4)
    assert model.pos.shape == (1, 49, 64)
    assert len([m for m in model.modules() if isinstance(m, TransformerBlock)]) == 4
    attn = next(m for m in model.modules() if isinstance(m, Attention))
    # the attention against a slow per-head loop
    x = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(0))
    qkv = attn.qkv(x)
    want = torch.zeros(2, 5, 64)
    for h in range(4):
        q, k, v = (qkv[..., i * 64 + h * 16 : i * 64 + (h + 1) * 16] for i in range(3))
        a = torch.softmax(q @ k.transpose(1, 2) / 4.0, dim=-1)
        want[..., h * 16 : (h + 1) * 16] = a @ v
    torch.testing.assert_close(attn(x), attn.proj(want), rtol=1e-5, atol=1e-5)
