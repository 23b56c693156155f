"""Tests for xtmr_core.relevance: LRP weight relevance against a slow explicit-loop re-implementation."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from captum.attr import LayerLRP
from captum.attr._utils.lrp_rules import EpsilonRule
from torch import nn

from xtmr_core.errors import XtmrError
from xtmr_core.models import weight_layers
from xtmr_core.relevance import (
    RULES,
    input_relevance,
    layer_relevance_shares,
    lrp_weight_relevance,
    relevance_map,
)

CAPTUM_STAB = 1e-9  # PropagationRule.STABILITY_FACTOR: gamma/alpha1beta0 layers and max-pooling use it


class TinyMLP(nn.Module):
    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(5, 4)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(4, 4)
        self.relu2 = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.fc3 = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.drop(self.relu2(self.fc2(self.relu1(self.fc1(x))))))


class TinyCNN(nn.Module):
    """conv 1->2 ch 3x3 (padding 1) on 6x6, ReLU, 2x2 max-pool, flatten in forward, linear 18->3."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(18, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.relu(self.conv(x))), 1))


def _mlp(seed: int = 1, dropout: float = 0.0) -> TinyMLP:
    torch.manual_seed(seed)
    return TinyMLP(dropout)


def _cnn(seed: int = 1) -> TinyCNN:
    torch.manual_seed(seed)
    return TinyCNN()


def _data(shape: tuple[int, ...], n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=g), torch.randint(0, 3, (n,), generator=g)


# --------------------------------------------------------------------------------------------------
# Slow reference: explicit loops in float64 over i, j and positions.


def _stab(z: float, eps: float) -> float:
    return z + (eps if z >= 0 else -eps)  # Captum: sign(0) counts as +1


def _rho(w: np.ndarray, rule: str, gamma: float) -> np.ndarray:
    if rule == "gamma":
        return w + gamma * np.maximum(w, 0)
    if rule == "alpha1beta0":
        return np.maximum(w, 0)
    return w.copy()


class SlowLRP:
    """LRP of one tiny network, one sample at a time, with plain Python loops.

    ops: ("linear", name), ("conv", name) (stride 1, zero padding from the module), ("relu",),
    ("maxpool", k) (winner takes all, as Captum routes the gradient to the arg-max), ("flatten",).
    """

    def __init__(self, model: nn.Module, ops: list[tuple], rule: str, eps: float, gamma: float = 0.25):
        self.ops = ops
        self.rule = rule
        self.eps = eps if rule == "epsilon" else CAPTUM_STAB
        self.params = {}
        for op in ops:
            if op[0] in ("linear", "conv"):
                m = getattr(model, op[1])
                w = m.weight.detach().double().numpy()
                b = m.bias.detach().double().numpy()
                pad = m.padding[0] if op[0] == "conv" else 0
                self.params[op[1]] = (w, _rho(w, rule, gamma), b, pad)
        self.wrel = {n: np.zeros_like(p[0]) for n, p in self.params.items()}
        self.brel = {n: np.zeros_like(p[2]) for n, p in self.params.items()}
        self.r_out: dict[str, list[np.ndarray]] = {n: [] for n in self.params}
        self.r_input: list[np.ndarray] = []
        self.logits: list[float] = []

    @staticmethod
    def _linear(a: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        z = np.zeros(w.shape[0])
        for j in range(w.shape[0]):
            z[j] = b[j] + sum(a[i] * w[j, i] for i in range(w.shape[1]))
        return z

    @staticmethod
    def _conv(a: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
        cin, h, wd = a.shape
        cout, _, kh, kw = w.shape
        oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
        z = np.zeros((cout, oh, ow))
        for o, p, q in itertools.product(range(cout), range(oh), range(ow)):
            s = b[o]
            for i, r, c in itertools.product(range(cin), range(kh), range(kw)):
                y, x = p + r - pad, q + c - pad
                if 0 <= y < h and 0 <= x < wd:
                    s += a[i, y, x] * w[o, i, r, c]
            z[o, p, q] = s
        return z

    def run(self, x: np.ndarray, target: int) -> None:
        # forward with the original weights, remembering each op's input
        inputs = []
        a = x
        for op in self.ops:
            inputs.append(a)
            a = self._forward(op, a)
        self.logits.append(a[target])
        rel = np.zeros_like(a)
        rel[target] = a[target]  # relevance starts at the true class's logit
        for op, a in zip(reversed(self.ops), reversed(inputs)):
            rel = self._backward(op, a, rel)
        self.r_input.append(rel)

    def _forward(self, op: tuple, a: np.ndarray) -> np.ndarray:
        if op[0] == "linear":
            w, _, b, _ = self.params[op[1]]
            return self._linear(a, w, b)
        if op[0] == "conv":
            w, _, b, pad = self.params[op[1]]
            return self._conv(a, w, b, pad)
        if op[0] == "relu":
            return np.maximum(a, 0)
        if op[0] == "maxpool":
            k = op[1]
            c, h, wd = a.shape
            out = np.zeros((c, h // k, wd // k))
            for ch, p, q in itertools.product(range(c), range(h // k), range(wd // k)):
                out[ch, p, q] = a[ch, p * k : (p + 1) * k, q * k : (q + 1) * k].max()
            return out
        if op[0] == "flatten":
            return a.reshape(-1)
        return a

    def _backward(self, op: tuple, a: np.ndarray, rel: np.ndarray) -> np.ndarray:
        """The relevance at the input ``a`` of ``op`` from ``rel`` at its output."""
        if op[0] == "linear":
            return self._back_linear(op[1], a, rel)
        if op[0] == "conv":
            return self._back_conv(op[1], a, rel)
        if op[0] == "maxpool":
            k = op[1]
            new = np.zeros_like(a)
            c, h, wd = a.shape
            for ch, p, q in itertools.product(range(c), range(h // k), range(wd // k)):
                win = a[ch, p * k : (p + 1) * k, q * k : (q + 1) * k]
                r, cc = np.unravel_index(int(np.argmax(win)), win.shape)
                zmax = win[r, cc]
                new[ch, p * k + r, q * k + cc] = zmax * rel[ch, p, q] / _stab(zmax, CAPTUM_STAB)
            return new
        if op[0] == "flatten":
            return rel.reshape(a.shape)
        return rel  # relu: relevance passes through unchanged

    def _back_linear(self, name: str, a: np.ndarray, rel: np.ndarray) -> np.ndarray:
        _, rw, b, _ = self.params[name]
        self.r_out[name].append(rel.copy())
        z = self._linear(a, rw, b)  # z' with the rule's weights
        new = np.zeros_like(a)
        for j in range(rw.shape[0]):
            d = _stab(z[j], self.eps)
            self.brel[name][j] += b[j] * rel[j] / d
            for i in range(rw.shape[1]):
                msg = a[i] * rw[j, i] * rel[j] / d
                self.wrel[name][j, i] += msg
                new[i] += msg
        return new

    def _back_conv(self, name: str, a: np.ndarray, rel: np.ndarray) -> np.ndarray:
        _, rw, b, pad = self.params[name]
        self.r_out[name].append(rel.copy())
        z = self._conv(a, rw, b, pad)
        new = np.zeros_like(a)
        cin, h, wd = a.shape
        cout, _, kh, kw = rw.shape
        for o, p, q in itertools.product(range(cout), range(z.shape[1]), range(z.shape[2])):
            d = _stab(z[o, p, q], self.eps)
            self.brel[name][o] += b[o] * rel[o, p, q] / d
            for i, r, c in itertools.product(range(cin), range(kh), range(kw)):
                y, xx = p + r - pad, q + c - pad
                if 0 <= y < h and 0 <= xx < wd:
                    msg = a[i, y, xx] * rw[o, i, r, c] * rel[o, p, q] / d
                    self.wrel[name][o, i, r, c] += msg
                    new[i, y, xx] += msg
        return new


MLP_OPS = [("linear", "fc1"), ("relu",), ("linear", "fc2"), ("relu",), ("linear", "fc3")]
CNN_OPS = [("conv", "conv"), ("relu",), ("maxpool", 2), ("flatten",), ("linear", "fc")]


def _slow(model, ops, x, y, rule, eps, gamma=0.25) -> SlowLRP:
    ref = SlowLRP(model, ops, rule, eps, gamma)
    for xi, yi in zip(x.double().numpy(), y.tolist()):
        ref.run(xi, int(yi))
    return ref


def _assert_close(got: torch.Tensor, want: np.ndarray, rtol: float = 1e-4, alive: float = 0.3) -> None:
    want_t = torch.from_numpy(np.asarray(want))
    # a dead network (all relevance zero) would make the comparison vacuous
    assert float((want_t != 0).double().mean()) > alive, "test network too dead to test anything"
    atol = rtol * float(want_t.abs().max()) + 1e-12
    torch.testing.assert_close(got.double(), want_t, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------------------------
# 1. Against the slow reference


@pytest.mark.parametrize("eps", [1e-9, 0.5])
def test_epsilon_rule_matches_slow_loops_mlp(eps):
    model = _mlp()
    x, y = _data((5,), 7)
    got = lrp_weight_relevance(model, x, y, "epsilon", epsilon=eps, return_bias=True)
    ref = _slow(model, MLP_OPS, x, y, "epsilon", eps)
    assert list(got) == ["fc1", "fc2", "fc3", "fc1.bias", "fc2.bias", "fc3.bias"]
    for name in ("fc1", "fc2", "fc3"):
        assert got[name].dtype == torch.float32 and got[name].device.type == "cpu"
        _assert_close(got[name], ref.wrel[name])
        _assert_close(got[f"{name}.bias"], ref.brel[name])


@pytest.mark.parametrize("eps", [1e-9, 0.5])
def test_epsilon_rule_matches_slow_loops_cnn(eps):
    model = _cnn()
    x, y = _data((1, 6, 6), 4)
    x = x - 0.3  # some negative inputs: exercises the sign handling of the stabiliser
    got = lrp_weight_relevance(model, x, y, "epsilon", epsilon=eps, return_bias=True)
    ref = _slow(model, CNN_OPS, x, y, "epsilon", eps)
    for name in ("conv", "fc"):
        assert got[name].shape == getattr(model, name).weight.shape
        _assert_close(got[name], ref.wrel[name])
        _assert_close(got[f"{name}.bias"], ref.brel[name])


@pytest.mark.parametrize("rule", ["gamma", "alpha1beta0"])
def test_other_rules_match_slow_loops_mlp(rule):
    model = _mlp(seed=4)
    x, y = _data((5,), 6, seed=4)
    # epsilon is the epsilon rule's: gamma and alpha1beta0 keep Captum's fixed stabiliser
    got = lrp_weight_relevance(model, x, y, rule, gamma=0.5, epsilon=0.5, return_bias=True)
    ref = _slow(model, MLP_OPS, x, y, rule, CAPTUM_STAB, gamma=0.5)
    for name in ("fc1", "fc2", "fc3"):
        _assert_close(got[name], ref.wrel[name])
        _assert_close(got[f"{name}.bias"], ref.brel[name])


def test_gamma_rule_matches_slow_loops_cnn():
    model = _cnn(seed=5)
    x, y = _data((1, 6, 6), 3, seed=6)
    got = lrp_weight_relevance(model, x, y, "gamma", gamma=0.25)
    ref = _slow(model, CNN_OPS, x, y, "gamma", CAPTUM_STAB, gamma=0.25)
    for name in ("conv", "fc"):
        _assert_close(got[name], ref.wrel[name])


def test_rules_give_different_relevance():
    model = _mlp()
    x, y = _data((5,), 8)
    results = [lrp_weight_relevance(model, x, y, rule)["fc1"] for rule in RULES]
    assert not torch.allclose(results[0], results[1])
    assert not torch.allclose(results[0], results[2])


def test_input_relevance_matches_slow_loops():
    model = _cnn()
    x, y = _data((1, 6, 6), 3)
    got = input_relevance(model, x, y, epsilon=0.5)
    ref = _slow(model, CNN_OPS, x, y, "epsilon", 0.5)
    assert got.shape == x.shape and got.dtype == torch.float32
    _assert_close(got, np.stack(ref.r_input))
    # a batch of one with an int target
    one = input_relevance(model, x[1:2], int(y[1]), epsilon=0.5)
    assert one.shape == x[1:2].shape
    _assert_close(one[0], ref.r_input[1])


# --------------------------------------------------------------------------------------------------
# 2. Conservation


def _captum_output_relevance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> list:
    work = copy.deepcopy(model).eval()
    layers = [m for m in work.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for m in layers:
        m.rule = EpsilonRule(eps)
    out = LayerLRP(work, layers).attribute(x.clone().requires_grad_(True), target=y)
    return [r.detach().double() for r in out]


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_conservation(kind):
    eps = 1e-9
    model = _mlp() if kind == "mlp" else _cnn()
    x, y = _data((5,) if kind == "mlp" else (1, 6, 6), 9)
    rel = lrp_weight_relevance(model, x, y, epsilon=eps, return_bias=True, batch_size=4)
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    totals = [float(rel[n].double().sum() + rel[f"{n}.bias"].double().sum()) for n in names]
    scale = float(sum(rel[n].double().abs().sum() for n in names))

    # the last layer's output relevance is the true-class logits
    with torch.no_grad():
        logits = model(x).double().gather(1, y[:, None]).sum().item()
    assert totals[-1] == pytest.approx(logits, rel=1e-5, abs=1e-6 * scale)

    # weights + bias share of each layer == the relevance at its output (independent Captum call)
    r_out = _captum_output_relevance(model, x, y, eps)
    for total, r in zip(totals, r_out):
        assert total == pytest.approx(float(r.sum()), rel=1e-5, abs=1e-6 * scale)
    assert float(r_out[-1].sum()) == pytest.approx(logits, rel=1e-6)

    # chain: what a layer receives (its weights' messages) is what the layer below hands out
    for lower, upper in zip(names, names[1:]):
        lower_total = float(rel[lower].double().sum() + rel[f"{lower}.bias"].double().sum())
        assert lower_total == pytest.approx(float(rel[upper].double().sum()), rel=1e-5, abs=1e-6 * scale)

    # the first layer's weight messages add up to the input heatmap's total
    heat = input_relevance(model, x, y, epsilon=eps)
    assert float(heat.double().sum()) == pytest.approx(float(rel[names[0]].double().sum()), rel=1e-5)


def test_conservation_against_slow_output_relevance():
    model = _cnn()
    x, y = _data((1, 6, 6), 3)
    ref = _slow(model, CNN_OPS, x, y, "epsilon", 1e-9)
    r_out = _captum_output_relevance(model, x, y, 1e-9)
    for name, r in zip(("conv", "fc"), r_out):
        _assert_close(r, np.stack(ref.r_out[name]), alive=0.15)  # max-pool: one winner in four


# --------------------------------------------------------------------------------------------------
# 3. The caller's model is left alone


def _snapshot(model: nn.Module):
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        {k: v.data_ptr() for k, v in model.state_dict().items()},
        {n: p.requires_grad for n, p in model.named_parameters()},
        model.training,
    )


@pytest.mark.parametrize("rule", RULES)
def test_model_unchanged(rule):
    model = _mlp(dropout=0.5)
    model.train()
    x, y = _data((5,), 5)
    before = _snapshot(model)
    rel = lrp_weight_relevance(model, x, y, rule, batch_size=2)
    assert all((r != 0).float().mean() > 0.3 for r in rel.values())
    input_relevance(model, x, y, rule)
    after = _snapshot(model)
    for k, v in before[0].items():
        assert torch.equal(v, after[0][k]) and v.dtype == after[0][k].dtype
        assert torch.equal(v.view(torch.uint8), after[0][k].view(torch.uint8))  # bit-identical
    assert before[1:] == after[1:]
    for m in model.modules():
        assert not hasattr(m, "rule") and not hasattr(m, "activations")
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert all(p.grad is None for p in model.parameters())
    # dropout is off during LRP (eval mode on the private copy): same as on an eval-mode model
    eval_model = copy.deepcopy(model).eval()
    again = lrp_weight_relevance(eval_model, x, y, rule, batch_size=2)
    for k in rel:
        assert torch.equal(rel[k], again[k])


# --------------------------------------------------------------------------------------------------
# 4. Batching


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_batched_equals_unbatched(kind):
    model = _mlp() if kind == "mlp" else _cnn()
    x, y = _data((5,) if kind == "mlp" else (1, 6, 6), 10)
    whole = lrp_weight_relevance(model, x, y, return_bias=True, batch_size=64)
    parts = lrp_weight_relevance(model, x, y, return_bias=True, batch_size=3)
    ones = lrp_weight_relevance(model, x, y, return_bias=True, batch_size=1)
    for k in whole:
        torch.testing.assert_close(parts[k], whole[k], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ones[k], whole[k], rtol=1e-5, atol=1e-6)
    # and the sum over the set is the sum of single-input relevances
    single = [lrp_weight_relevance(model, x[i : i + 1], y[i : i + 1]) for i in range(len(x))]
    for k in single[0]:
        torch.testing.assert_close(sum(s[k] for s in single), whole[k], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Errors, maps, shares


def test_bad_input_raises_xtmr_error():
    model = _mlp()
    x, y = _data((5,), 3)
    with pytest.raises(XtmrError, match="unknown LRP rule"):
        lrp_weight_relevance(model, x, y, "zplus")
    with pytest.raises(XtmrError, match="empty"):
        lrp_weight_relevance(model, x[:0], y[:0])
    with pytest.raises(XtmrError, match="labels"):
        lrp_weight_relevance(model, x, y[:2])
    with pytest.raises(XtmrError, match="unknown LRP rule"):
        input_relevance(model, x, y, "zplus")
    try:
        lrp_weight_relevance(model, x, y, "zplus")
    except XtmrError as exc:
        assert "\n" not in str(exc)


def test_layer_relevance_shares():
    rel = {"a": torch.tensor([1.0, -3.0]), "b": torch.tensor([[-2.0, 2.0]]), "c": torch.zeros(3)}
    shares = layer_relevance_shares(rel)
    assert shares == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0})
    assert layer_relevance_shares({"a": torch.zeros(2)}) == {"a": 0.0}


def test_relevance_map_linear_and_conv_tiles():
    lin = torch.randn(7, 5)
    np.testing.assert_array_equal(relevance_map(lin), lin.double().numpy())
    conv = torch.randn(4, 3, 2, 5)
    m = relevance_map(conv)
    assert m.shape == (4 * 2, 3 * 5)
    for o, i, r, c in itertools.product(range(4), range(3), range(2), range(5)):
        assert m[o * 2 + r, i * 5 + c] == pytest.approx(float(conv[o, i, r, c]))


def test_relevance_map_downsamples_by_block_sums():
    conv = torch.randn(64, 32, 3, 3)  # 18432 cells as tiles: summed over the kernel instead
    m = relevance_map(conv)
    np.testing.assert_allclose(m, conv.double().sum(dim=(2, 3)).numpy())
    big = torch.randn(256, 784)
    m = relevance_map(big, max_cells=4096)
    assert m.size <= 4096 and m.shape[0] <= 256
    assert m.sum() == pytest.approx(float(big.double().sum()))
    blocks = relevance_map(torch.arange(64.0).reshape(8, 8), max_cells=16)
    want = np.arange(64.0).reshape(4, 2, 4, 2).sum(axis=(1, 3))
    np.testing.assert_array_equal(blocks, want)
    ragged = relevance_map(torch.ones(5, 5), max_cells=9)  # 3x3 blocks of 2x2, zero-padded at the edge
    np.testing.assert_array_equal(ragged, [[4, 4, 2], [4, 4, 2], [2, 2, 1]])
    wide = torch.randn(10, 4096)
    m = relevance_map(wide, max_cells=4096)
    assert m.shape[0] == 10 and m.size <= 4096  # the short axis is kept
    assert m.sum() == pytest.approx(float(wide.double().sum()))
    with pytest.raises(XtmrError):
        relevance_map(torch.zeros(3))


# --------------------------------------------------------------------------------------------------
# Smoke test on the project's real LeNet-5


def test_lenet5_smoke():
    from xtmr_core import models

    torch.manual_seed(0)
    model = models.build_model("lenet5")
    layers = models.weight_layers(model)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (5,), generator=g)
    rel = lrp_weight_relevance(model, x, y, return_bias=True)
    assert [k for k in rel if not k.endswith(".bias")] == [n for n, _ in layers]
    for name, m in layers:
        assert rel[name].shape == m.weight.shape and torch.isfinite(rel[name]).all()
    total = sum(float(rel[n].double().sum() + rel[f"{n}.bias"].double().sum()) for n, _ in layers[-1:])
    with torch.no_grad():
        logits = model.eval()(x).gather(1, y[:, None]).sum().item()
    assert total == pytest.approx(logits, rel=1e-4, abs=1e-5)
    heat = input_relevance(model, x[:1], int(y[0]))
    assert heat.shape == x[:1].shape


# --------------------------------------------------------------------------------------------------
# 2. Residual, BatchNorm and depthwise networks (issue 7): a slow graph reference in float64.


class SlowGraphLRP:
    """Epsilon-LRP of a small graph, one sample at a time, with explicit loops.

    BatchNorm is folded by hand (``w * s``, ``(b - mean) * s + beta``, ``s = gamma / sqrt(var + eps)``);
    convs loop over output channel, position, input channel of the group and kernel (stride, padding and
    groups from the module). ops: ("conv", out, in, conv, bn or None), ("relu", out, in, cap or None),
    ("add", out, a, b), ("avgpool", out, in), ("flatten", out, in), ("linear", out, in, linear).
    Relevance through ReLU/ReLU6 passes; an add splits it as a / stab(a + b) and b / stab(a + b).
    """

    def __init__(self, ops: list[tuple], eps: float):
        self.ops, self.eps = ops, eps
        self.params: dict[str, tuple] = {}
        for op in ops:
            if op[0] in ("conv", "linear"):
                m, bn = op[3], op[4] if op[0] == "conv" else None
                w = m.weight.detach().double().numpy()
                b = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(w.shape[0])
                if bn is not None:
                    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
                    w = w * s.reshape(-1, *([1] * (w.ndim - 1)))
                    b = (b - bn.running_mean.detach().double().numpy()) * s + bn.bias.detach().double().numpy()
                geo = (m.stride[0], m.padding[0], m.groups) if op[0] == "conv" else None
                self.params[op[1]] = (w, b, geo)
        self.wrel = {n: np.zeros_like(p[0]) for n, p in self.params.items()}
        self.brel = {n: np.zeros_like(p[1]) for n, p in self.params.items()}
        self.r_input: list[np.ndarray] = []

    def _stab(self, z: float) -> float:
        return z + (self.eps if z >= 0 else -self.eps)

    @staticmethod
    def _conv(a, w, b, geo):
        stride, pad, groups = geo
        cin, h, wd = a.shape
        cout, cg, kh, kw = w.shape
        oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
        z = np.zeros((cout, oh, ow))
        per = cout // groups
        for o, p, q in itertools.product(range(cout), range(oh), range(ow)):
            s = b[o]
            for i, r, c in itertools.product(range(cg), range(kh), range(kw)):
                y, x = p * stride + r - pad, q * stride + c - pad
                if 0 <= y < h and 0 <= x < wd:
                    s += a[(o // per) * cg + i, y, x] * w[o, i, r, c]
            z[o, p, q] = s
        return z

    def run(self, x: np.ndarray, target: int) -> float:
        t = {"x": x}
        for op in self.ops:
            t[op[1]] = self._forward(op, t)
        logits = t[self.ops[-1][1]]
        rel = {k: np.zeros_like(v) for k, v in t.items()}
        rel[self.ops[-1][1]][target] = logits[target]
        for op in reversed(self.ops):
            self._backward(op, t, rel)
        self.r_input.append(rel["x"])
        return float(logits[target])

    def _forward(self, op: tuple, t: dict[str, np.ndarray]) -> np.ndarray:
        kind, out = op[0], op[1]
        if kind == "conv":
            w, b, geo = self.params[out]
            return self._conv(t[op[2]], w, b, geo)
        if kind == "linear":
            w, b, _ = self.params[out]
            return w @ t[op[2]] + b
        if kind == "relu":
            return np.clip(t[op[2]], 0, op[3] if op[3] is not None else np.inf)
        if kind == "add":
            return t[op[2]] + t[op[3]]
        if kind == "avgpool":
            return t[op[2]].mean(axis=(1, 2), keepdims=True)
        assert kind == "flatten", kind
        return t[op[2]].reshape(-1)

    def _backward(self, op: tuple, t: dict[str, np.ndarray], rel: dict[str, np.ndarray]) -> None:
        """Add the relevance ``op`` passes back to its inputs' entries of ``rel``."""
        kind, out = op[0], op[1]
        r = rel[out]
        if kind == "conv":
            self._back_conv(op, t, rel)
        elif kind == "linear":
            w, b, _ = self.params[out]
            a, z = t[op[2]], t[out]
            for j in range(w.shape[0]):
                d = self._stab(z[j])
                self.brel[out][j] += b[j] * r[j] / d
                for i in range(w.shape[1]):
                    msg = a[i] * w[j, i] * r[j] / d
                    self.wrel[out][j, i] += msg
                    rel[op[2]][i] += msg
        elif kind == "relu":
            rel[op[2]] += r
        elif kind == "add":
            z = t[out]
            for idx in np.ndindex(z.shape):
                d = self._stab(z[idx])
                rel[op[2]][idx] += t[op[2]][idx] * r[idx] / d
                rel[op[3]][idx] += t[op[3]][idx] * r[idx] / d
        elif kind == "avgpool":
            a = t[op[2]]
            n = a.shape[1] * a.shape[2]
            for c in range(a.shape[0]):
                d = _stab(float(t[out][c, 0, 0]), CAPTUM_STAB)
                rel[op[2]][c] += a[c] / n * r[c, 0, 0] / d
        elif kind == "flatten":
            rel[op[2]] += r.reshape(t[op[2]].shape)

    def _back_conv(self, op: tuple, t: dict[str, np.ndarray], rel: dict[str, np.ndarray]) -> None:
        out = op[1]
        r = rel[out]
        w, b, (stride, pad, groups) = self.params[out]
        a = t[op[2]]
        z = t[out]
        cin, h, wd = a.shape
        cout, cg, kh, kw = w.shape
        per = cout // groups
        for o, p, q in itertools.product(range(cout), range(z.shape[1]), range(z.shape[2])):
            d = self._stab(z[o, p, q])
            self.brel[out][o] += b[o] * r[o, p, q] / d
            for i, rr, c in itertools.product(range(cg), range(kh), range(kw)):
                y, xx = p * stride + rr - pad, q * stride + c - pad
                if 0 <= y < h and 0 <= xx < wd:
                    ch = (o // per) * cg + i
                    msg = a[ch, y, xx] * w[o, i, rr, c] * r[o, p, q] / d
                    self.wrel[out][o, i, rr, c] += msg
                    rel[op[2]][ch, y, xx] += msg


def _bn_stats(model: nn.Module, shape, seed: int) -> nn.Module:
    """Random BatchNorm statistics and affine parameters (so folding is not the identity), eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.3, 0.3, generator=g)
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
    return model.eval().double()


def _tiny_resnet(seed: int = 3) -> tuple[nn.Module, list[tuple]]:
    """Stem conv+BN+ReLU, an identity BasicBlock and a stride-2 one with a 1×1 projection, pool, linear."""
    from xtmr_core.models import BasicBlock, Classifier

    torch.manual_seed(seed)
    b1, b2 = BasicBlock(2, 2, 1), BasicBlock(2, 3, 2)
    stem, bn = nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2)
    feats = nn.Sequential(stem, bn, nn.ReLU(), b1, b2, nn.AdaptiveAvgPool2d(1))
    model = _bn_stats(Classifier(feats, nn.Sequential(nn.Linear(3, 3))), (1, 5, 5), seed)
    proj, pbn = b2.shortcut[0], b2.shortcut[1]
    ops = [
        ("conv", "s", "x", stem, bn),
        ("relu", "s_r", "s", None),
        ("conv", "b1c1", "s_r", b1.conv1, b1.bn1),
        ("relu", "b1r1", "b1c1", None),
        ("conv", "b1c2", "b1r1", b1.conv2, b1.bn2),
        ("add", "b1a", "b1c2", "s_r"),
        ("relu", "b1o", "b1a", None),
        ("conv", "b2c1", "b1o", b2.conv1, b2.bn1),
        ("relu", "b2r1", "b2c1", None),
        ("conv", "b2c2", "b2r1", b2.conv2, b2.bn2),
        ("conv", "b2p", "b1o", proj, pbn),
        ("add", "b2a", "b2c2", "b2p"),
        ("relu", "b2o", "b2a", None),
        ("avgpool", "pool", "b2o"),
        ("flatten", "flat", "pool"),
        ("linear", "fc", "flat", model.classifier[0]),
    ]
    names = {
        "s": "features.0",
        "b1c1": "features.3.conv1",
        "b1c2": "features.3.conv2",
        "b2c1": "features.4.conv1",
        "b2c2": "features.4.conv2",
        "b2p": "features.4.shortcut.0",
        "fc": "classifier.0",
    }
    return model, ops, names


def _tiny_depthwise(seed: int = 4) -> tuple[nn.Module, list[tuple]]:
    """Stem conv+BN+ReLU6, one inverted residual (1×1 expand ×3, depthwise 3×3, 1×1 project, add), pool, linear."""
    from xtmr_core.models import Classifier, InvertedResidual

    torch.manual_seed(seed)
    stem, bn = nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2)
    block = InvertedResidual(2, 2, 1, 3)
    feats = nn.Sequential(stem, bn, nn.ReLU6(), block, nn.AdaptiveAvgPool2d(1))
    model = _bn_stats(Classifier(feats, nn.Sequential(nn.Linear(2, 3))), (1, 4, 4), seed)
    c = block.conv
    ops = [
        ("conv", "s", "x", stem, bn),
        ("relu", "s_r", "s", 6.0),
        ("conv", "e", "s_r", c[0], c[1]),
        ("relu", "e_r", "e", 6.0),
        ("conv", "dw", "e_r", c[3], c[4]),
        ("relu", "dw_r", "dw", 6.0),
        ("conv", "p", "dw_r", c[6], c[7]),
        ("add", "a", "s_r", "p"),
        ("avgpool", "pool", "a"),
        ("flatten", "flat", "pool"),
        ("linear", "fc", "flat", model.classifier[0]),
    ]
    names = {
        "s": "features.0",
        "e": "features.3.conv.0",
        "dw": "features.3.conv.3",
        "p": "features.3.conv.6",
        "fc": "classifier.0",
    }
    return model, ops, names


@pytest.mark.parametrize("eps", [1e-9, 0.1])
@pytest.mark.parametrize("build, shape", [(_tiny_resnet, (1, 5, 5)), (_tiny_depthwise, (1, 4, 4))])
def test_residual_and_depthwise_relevance_match_slow_graph_loops(build, shape, eps):
    model, ops, names = build()
    assert any(m.groups > 1 for m in model.modules() if isinstance(m, nn.Conv2d)) == (build is _tiny_depthwise)
    g = torch.Generator().manual_seed(9)
    x = (torch.rand((3, *shape), generator=g) * 3).double()  # large enough to saturate some ReLU6
    y = torch.tensor([0, 1, 2])
    from xtmr_core.canonize import deployed_model

    folded = deployed_model(model)
    got = lrp_weight_relevance(folded, x, y, "epsilon", epsilon=eps, return_bias=True)
    # BatchNorm kept as layers: the conv weights get the folded weights' relevance (the same messages).
    kept = lrp_weight_relevance(model, x, y, "epsilon", epsilon=eps)
    assert all(torch.allclose(kept[name], got[name]) for name in names.values())
    ref = SlowGraphLRP(ops, eps)
    for xi, yi in zip(x.numpy(), y.tolist()):
        ref.run(xi, yi)
    for short, name in names.items():
        _assert_close(got[name], ref.wrel[short], alive=0.2)
        _assert_close(got[f"{name}.bias"], ref.brel[short], alive=0.2)
    _assert_close(input_relevance(folded, x, y, epsilon=eps), np.stack(ref.r_input), alive=0.2)


def _real(name: str, seed: int = 0) -> nn.Module:
    from xtmr_core.canonize import deployed_model
    from xtmr_core.models import build_model

    torch.manual_seed(seed)
    model = build_model(name, (1, 28, 28), 10, width=0.25)
    return deployed_model(_bn_stats(model, (1, 28, 28), seed))


def _global_balance(model: nn.Module, x, y, rel: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(relevance at the input + every layer's bias share, the start logits' sum)."""
    with torch.no_grad():
        logits = model(x)[torch.arange(len(y)), y].sum().item()
    r_in = input_relevance(model, x, y).double().sum().item()
    return r_in + sum(float(v.double().sum()) for k, v in rel.items() if k.endswith(".bias")), logits


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2"])
def test_conservation_per_layer_and_in_total(name):
    from xtmr_core.canonize import lrp_ready
    from xtmr_core.relevance import _composite, _lrp_pass

    # float32: float64 depthwise convolutions take minutes on a CPU; 1e-5 of the layer's absolute
    # relevance is still 100× above float32 rounding and far below any wrong split (a doubled skip path).
    model = _real(name).float()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([1, 4, 7])
    rel = lrp_weight_relevance(model, x, y, return_bias=True)
    # Per layer: its weights' relevance plus its bias share is the relevance that reached its output.
    work, _ = lrp_ready(model)
    layers = weight_layers(work)
    _, _, r_out = _lrp_pass(work, _composite("epsilon", 1e-9, 0.25), [m for _, m in layers], x, y)
    assert len(layers) == len(weight_layers(model)) and all(isinstance(m, (nn.Conv2d, nn.Linear)) for _, m in layers)
    for (layer, _), reached in zip(layers, r_out):
        total = float(rel[layer].double().sum() + rel[f"{layer}.bias"].double().sum())
        assert abs(total - float(reached.double().sum())) <= 1e-5 * float(reached.double().abs().sum()) + 1e-9, layer
    # In total: what reaches the input plus every bias share is the start logit (float32 rounding over
    # mobilenetv2's 53 layers reaches 2e-5 of the logit).
    balance, logits = _global_balance(model, x, y, rel)
    assert balance == pytest.approx(logits, rel=1e-5 if name == "resnet20" else 1e-4)
    assert abs(logits) > 0.1


class _PlainResNet(nn.Module):
    """A residual network as users write it: ``a + b`` in forward (Captum sees no layer for the add)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 3, 3, padding=1)
        self.relu0 = nn.ReLU()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        h = self.relu0(self.stem(x))
        h = self.relu2(self.conv2(self.relu1(self.conv1(h))) + h)
        return self.fc(torch.flatten(self.pool(h), 1))


def test_plain_captum_lrp_breaks_conservation_through_a_residual_add():
    from captum.attr import LRP

    torch.manual_seed(5)
    model = _PlainResNet().double().eval()
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    rel = lrp_weight_relevance(model, x, y, return_bias=True)
    ours, logits = _global_balance(model, x, y, rel)
    assert ours == pytest.approx(logits, rel=1e-5)
    # Captum passes the add's gradient to both branches: the skip path's relevance is counted twice.
    captum_in = LRP(copy.deepcopy(model)).attribute(x.clone().requires_grad_(True), target=y).sum().item()
    ours_in = input_relevance(model, x, y).double().sum().item()
    assert abs(captum_in - ours_in) > 1e-2 * abs(logits)
    assert abs(captum_in + (ours - ours_in) - logits) > 1e-2 * abs(logits)
