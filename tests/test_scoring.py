"""Tests for xtmr_core.scoring: every scorer against an independent slow computation."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from xtmr_core.errors import XtmrError
from xtmr_core.relevance import lrp_weight_relevance
from xtmr_core.scoring import flatten_scores, score_weights, top_k_mask, topk_overlap
from xtmr_core.vocabulary import SCORERS


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(8, 5)
        self.relu2 = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.flatten(self.pool(self.relu(self.conv(x))), 1)
        return self.fc2(self.drop(self.relu2(self.fc1(h))))


NAMES = ["conv", "fc1", "fc2"]


@pytest.fixture
def net() -> TinyCNN:
    torch.manual_seed(0)
    model = TinyCNN()
    model.train()  # scorers must not depend on (or change) the mode: dropout is off while scoring
    return model


@pytest.fixture
def ref() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(10, 1, 6, 6, generator=g), torch.randint(0, 3, (10,), generator=g)


def _eval_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).eval().double()


def _mean_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(x.double()), y)


def _slow_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """One autograd call per parameter, in float64 on an eval-mode copy."""
    out = {}
    for name in NAMES:
        work = _eval_copy(model)
        w = getattr(work, name).weight
        (g,) = torch.autograd.grad(_mean_ce(work, x, y), [w])
        out[name] = g
    return out


def test_keys_shapes_dtypes_and_ranges(net, ref):
    for scorer in SCORERS:
        s = score_weights(net, *ref, scorer)
        assert list(s) == NAMES
        for name in NAMES:
            assert s[name].shape == getattr(net, name).weight.shape
            assert s[name].dtype == torch.float32 and s[name].device.type == "cpu"
            assert torch.isfinite(s[name]).all() and (s[name] >= 0).all()


def test_magnitude(net, ref):
    s = score_weights(net, *ref, "magnitude")
    for name in NAMES:
        assert torch.equal(s[name], getattr(net, name).weight.detach().abs())


def test_gradient_matches_autograd_per_parameter(net, ref):
    s = score_weights(net, *ref, "gradient", batch_size=3)
    slow = _slow_gradient(net, *ref)
    for name in NAMES:
        torch.testing.assert_close(s[name].double(), slow[name].abs(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", ["conv", "fc1"])
def test_gradient_matches_finite_differences_for_one_weight(net, ref, name):
    x, y = ref
    s = score_weights(net, x, y, "gradient")
    idx = tuple(int(i) for i in torch.nonzero(s[name] == s[name].max())[0])  # a weight that matters
    work = _eval_copy(net)
    h = 1e-6
    with torch.no_grad():
        w = getattr(work, name).weight
        w[idx] += h
        up = _mean_ce(work, x, y).item()
        w[idx] -= 2 * h
        down = _mean_ce(work, x, y).item()
    fd = (up - down) / (2 * h)
    assert abs(fd) > 1e-4
    assert float(s[name][idx]) == pytest.approx(abs(fd), rel=1e-3)


def test_taylor_is_weight_times_gradient(net, ref):
    s = score_weights(net, *ref, "taylor")
    slow = _slow_gradient(net, *ref)
    for name in NAMES:
        want = (getattr(net, name).weight.detach().double() * slow[name]).abs()
        torch.testing.assert_close(s[name].double(), want, rtol=1e-4, atol=1e-7)


def test_lrp_is_abs_of_relevance(net, ref):
    for rule in ("epsilon", "gamma"):
        s = score_weights(net, *ref, "lrp", rule=rule, batch_size=4)
        rel = lrp_weight_relevance(net, *ref, rule)
        assert any((rel[n] < 0).any() for n in NAMES)  # the signed relevance has both signs...
        for name in NAMES:
            torch.testing.assert_close(s[name], rel[name].abs(), rtol=1e-5, atol=1e-7)  # ...scores not


def test_random_deterministic_per_seed(net, ref):
    a = score_weights(net, *ref, "random", seed=7)
    b = score_weights(net, *ref, "random", seed=7)
    c = score_weights(net, *ref, "random", seed=8)
    for name in NAMES:
        assert torch.equal(a[name], b[name])
        assert not torch.equal(a[name], c[name])
        assert (a[name] >= 0).all() and (a[name] < 1).all()
    g = torch.Generator().manual_seed(7)  # documented: one generator, layer by layer
    for name in NAMES:
        assert torch.equal(a[name], torch.rand(getattr(net, name).weight.shape, generator=g))
    # random ignores the reference set
    empty = score_weights(net, ref[0][:0], ref[1][:0], "random", seed=7)
    assert all(torch.equal(empty[n], a[n]) for n in NAMES)


def test_scorers_rank_differently(net, ref):
    flat = {s: flatten_scores(score_weights(net, *ref, s)) for s in SCORERS}
    for s1 in SCORERS:
        for s2 in SCORERS:
            if s1 < s2:
                assert not torch.allclose(flat[s1], flat[s2]), (s1, s2)


@pytest.mark.parametrize("scorer", SCORERS)
def test_model_unchanged_and_no_grad_left(net, ref, scorer):
    for p in net.parameters():
        p.grad = None
    net.fc2.bias.requires_grad_(False)  # a frozen parameter must stay frozen
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    ptrs = {k: v.data_ptr() for k, v in net.state_dict().items()}
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    score_weights(net, *ref, scorer)
    for k, v in net.state_dict().items():
        assert torch.equal(v.view(torch.uint8), before[k].view(torch.uint8)) and v.data_ptr() == ptrs[k]
    assert {n: p.requires_grad for n, p in net.named_parameters()} == flags
    assert all(p.grad is None for p in net.parameters())
    assert net.training
    for m in net.modules():
        assert not hasattr(m, "rule") and not m._forward_hooks and not m._forward_pre_hooks


def test_bad_input(net, ref):
    with pytest.raises(XtmrError, match="unknown scorer"):
        score_weights(net, *ref, "saliency")
    with pytest.raises(XtmrError, match="unknown LRP rule"):
        score_weights(net, *ref, "lrp", rule="zplus")
    for scorer in ("lrp", "gradient", "taylor"):
        with pytest.raises(XtmrError, match="empty"):
            score_weights(net, ref[0][:0], ref[1][:0], scorer)
    with pytest.raises(XtmrError, match="fraction"):
        top_k_mask({"a": torch.ones(3)}, 1.5)
    with pytest.raises(XtmrError):
        top_k_mask({}, 0.1)


def test_non_finite_weights_raise(net, ref):
    broken = copy.deepcopy(net)
    with torch.no_grad():
        broken.fc1.weight[0, 0] = float("nan")
    with pytest.raises(XtmrError, match="non-finite"):
        score_weights(broken, *ref, "taylor")


# --------------------------------------------------------------------------------------------------
# top-k


def _scores() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {
        "a": torch.rand(4, 5, generator=g) * 10,
        "b": torch.rand(30, generator=g),
        "c": torch.rand(2, 3, generator=g),
    }


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.77, 1.0])
def test_top_k_mask_exact_count_global(fraction):
    scores = _scores()
    mask = top_k_mask(scores, fraction)
    assert list(mask) == list(scores)
    total = sum(s.numel() for s in scores.values())
    assert sum(int(m.sum()) for m in mask.values()) == round(fraction * total)
    for name in scores:
        assert mask[name].dtype == torch.bool and mask[name].shape == scores[name].shape
    # every chosen weight scores at least as high as every other
    flat, fmask = flatten_scores(scores), flatten_scores({k: m.float() for k, m in mask.items()}).bool()
    if fmask.any() and (~fmask).any():
        assert flat[fmask].min() >= flat[~fmask].max()


def test_top_k_mask_global_vs_per_layer():
    scores = _scores()  # layer "a" scores up to 10, the others below 1
    glob = top_k_mask(scores, 0.25)
    assert int(glob["a"].sum()) == round(0.25 * 56) and not glob["b"].any() and not glob["c"].any()
    per = top_k_mask(scores, 0.25, per_layer=True)
    for name, s in scores.items():
        assert int(per[name].sum()) == round(0.25 * s.numel())
        chosen, rest = s[per[name]], s[~per[name]]
        assert chosen.min() >= rest.max()


def test_top_k_mask_ties_deterministic():
    scores = {"a": torch.ones(2, 3), "b": torch.ones(4)}
    mask = top_k_mask(scores, 0.5)  # 5 of 10 equal scores: the first five in flat order
    assert flatten_scores({k: m.float() for k, m in mask.items()}).tolist() == [1] * 5 + [0] * 5
    assert torch.equal(top_k_mask(scores, 0.5)["a"], mask["a"])
    per = top_k_mask(scores, 0.5, per_layer=True)
    assert per["a"].reshape(-1).tolist() == [True] * 3 + [False] * 3
    assert per["b"].tolist() == [True, True, False, False]


def test_flatten_scores_order():
    scores = {"x": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "y": torch.tensor([5.0])}
    assert flatten_scores(scores).tolist() == [1, 2, 3, 4, 5]


def test_topk_overlap():
    scores = _scores()
    assert topk_overlap(scores, scores, [0.0, 0.1, 0.5, 1.0]) == [1.0, 1.0, 1.0, 1.0]
    flipped = {k: -v for k, v in scores.items()}
    # top 10% of 56 = 6 and the bottom 6 are disjoint; at 100% both are everything
    assert topk_overlap(scores, flipped, [0.1, 1.0]) == [0.0, 1.0]
    # a hand-made case: k = 2 of 4, A = {0, 1}, B = {1, 2} -> |A ∩ B| / k = 0.5
    a = {"l": torch.tensor([4.0, 3.0, 2.0, 1.0])}
    b = {"l": torch.tensor([1.0, 4.0, 3.0, 2.0])}
    assert topk_overlap(a, b, [0.5]) == [0.5]
    with pytest.raises(XtmrError):
        topk_overlap(a, {"m": torch.ones(4)}, [0.5])
