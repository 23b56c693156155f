"""Tests for xtmr_core.canonize: BatchNorm folding, the deployed model, and the form LRP runs on."""

import pytest
import torch
from torch import nn

from xtmr_core.canonize import deployed_model, fold_batchnorm, has_batchnorm, lrp_ready
from xtmr_core.errors import XtmrError
from xtmr_core.memory import layout_of
from xtmr_core.models import Add, build_model, weight_layers


def _with_stats(model: nn.Module, shape=(1, 28, 28), seed=0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters, then eval mode."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
        for _ in range(3):
            model(torch.rand(32, *shape, generator=g))
    return model.eval()


def _model(name, seed=0, shape=(1, 28, 28)):
    torch.manual_seed(seed)
    return _with_stats(build_model(name, shape, 10), shape, seed)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2"])
def test_folded_model_gives_the_same_outputs_and_leaves_the_model_alone(name):
    model = _model(name)
    before = _state(model)
    folded = fold_batchnorm(model)
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = model(x), folded(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert not has_batchnorm(folded) and has_batchnorm(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # float64: the fold itself is exact up to rounding
    m64, f64 = model.double(), fold_batchnorm(model.double())
    x64 = x.double()
    with torch.no_grad():
        torch.testing.assert_close(f64(x64), m64(x64), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2"])
def test_faultable_layout_lists_exactly_the_intended_tensors(name):
    model = _model(name)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    bns = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    folded = deployed_model(model)
    # Default: the folded conv weights (BN inside them) and the linear weights, no bias, no BN.
    layout = layout_of(folded)
    assert set(layout.names) == set(convs + linears) and len(layout.names) == len(convs) + len(linears)
    mods = dict(folded.named_modules())
    assert all(layout.shapes[i] == tuple(mods[n].weight.shape) for i, n in enumerate(layout.names))
    depthwise = [n for n in convs if mods[n].groups > 1]
    assert (len(depthwise) > 0) == (name == "mobilenetv2")
    assert all(n in layout.names for n in depthwise)
    # --fault-biases: every folded conv and the linear layer now has a bias, listed after its weight.
    with_bias = layout_of(folded, fault_biases=True)
    assert with_bias.names[:2] == (layout.names[0], layout.names[0] + ".bias")
    assert set(with_bias.names) == set(layout.names) | {n + ".bias" for n in layout.names}
    assert with_bias.param_names[1] == layout.names[0] + ".bias"
    # BatchNorm kept separate: its scales are faultable too, the convs keep their raw weights, no biases.
    kept = deployed_model(model, keep_batchnorm=True)
    assert kept is model
    kept_layout = layout_of(kept)
    assert set(kept_layout.names) == set(convs + linears + bns)
    assert layout_of(kept, fault_biases=True).n_weights == kept_layout.n_weights + sum(
        dict(model.named_modules())[n].bias.numel() for n in bns + linears
    )


def test_a_model_without_batchnorm_is_deployed_as_it_is():
    torch.manual_seed(0)
    model = build_model("lenet5").eval()
    assert deployed_model(model) is model
    work, folded = lrp_ready(model)
    assert folded == {} and work is not model
    assert [n for n, _ in weight_layers(work)] == [n for n, _ in weight_layers(model)]


class _FunctionalResNet(nn.Module):
    """A torchvision-style block: BatchNorm after each conv, ``out += identity`` in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(x))
        out += x
        out = nn.functional.relu(out)
        return self.fc(torch.flatten(self.pool(out), 1))


def test_lrp_ready_turns_functional_adds_into_add_modules():
    model = _with_stats(_FunctionalResNet(), (1, 6, 6))
    work, folded = lrp_ready(model)
    assert folded == {"conv1": "bn1", "conv2": "bn2"}
    assert sum(isinstance(m, Add) for m in work.modules()) == 1
    assert not has_batchnorm(work)
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(work(x), model(x), rtol=1e-5, atol=1e-5)


class _WithConv1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.seq = nn.Conv1d(2, 2, 3)
        self.fc = nn.Linear(2 * 14, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.seq(torch.flatten(self.conv(x), 2)), 1))


class _WithCumsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 4 * 4, 2)

    def forward(self, x):
        h = self.conv(x)
        return self.fc(torch.flatten(torch.cumsum(h, 1) * torch.sigmoid(h), 1))


def test_unsupported_layers_get_one_line_naming_them():
    with pytest.raises(XtmrError, match="LRP cannot handle Conv1d layers \\(module seq\\)") as info:
        lrp_ready(_WithConv1d())
    assert "\n" not in str(info.value) and "magnitude" in str(info.value)
    with pytest.raises(XtmrError, match="LRP cannot handle the operation cumsum in _WithCumsum"):
        lrp_ready(_WithCumsum())


class _Twice(nn.Module):
    """A user model that applies one conv twice (weight sharing)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(torch.relu(self.conv(x)))), 1))


def test_a_layer_applied_twice_is_refused_by_name_not_explained_wrongly():
    with pytest.raises(XtmrError) as err:
        lrp_ready(_Twice().eval())
    msg = str(err.value)
    assert "Conv2d conv" in msg and "2 times" in msg and "\n" not in msg
