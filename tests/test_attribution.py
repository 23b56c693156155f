"""Tests for xtmr_core.attribution: Captum's gradient methods against autograd by hand, Integrated Gradients'
completeness, the top-k pixel overlap against sets built one by one, and Captum's LRP against the project's on a
plain CNN (where both are correct; tests/test_relevance.py shows Captum's is not through a residual add)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from captum.attr import LRP, LayerLRP
from conftest import one_line_error
from torch import nn

from xtmr_core.attribution import (
    IG_STEPS,
    compare_maps,
    input_attribution,
    input_attributions,
    on_one_scale,
    overlap_table,
    pixel_maps,
    top_k,
    topk_overlap,
)
from xtmr_core.experiment import Experiment
from xtmr_core.models import weight_layers
from xtmr_core.relevance import input_relevance, lrp_weight_relevance
from xtmr_core.vocabulary import ATTRIBUTIONS


@pytest.fixture(scope="module")
def lenet5() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The shipped lenet5 (trained on mnist5k, a plain ReLU CNN with max-pooling) and 16 test images."""
    exp = Experiment("lenet5", "mnist5k", store=None)
    return exp.model, exp.x_test[:16], exp.y_test[:16]


def _tiny(seed: int = 3) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A float64 conv + ReLU + linear net, a batch of five inputs in [0, 1] and their target classes."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4)).double().eval()
    x = torch.rand(5, 2, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return model, x, torch.tensor([0, 1, 2, 3, 1])


def _gradient_by_hand(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d logit_y / dx of each input, one input and one autograd call at a time."""
    grads = []
    for xi, yi in zip(x, y):
        xi = xi[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xi)[0, int(yi)], xi)
        grads.append(g[0])
    return torch.stack(grads)


# ---------------------------------------------------------------- the gradient methods against autograd


def test_saliency_is_the_absolute_gradient_of_the_target_logit():
    model, x, y = _tiny()
    got = input_attribution(model, x, y, "saliency")
    assert got.dtype == torch.float32 and got.shape == x.shape
    want = _gradient_by_hand(model, x, y).abs()
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-7)  # float32 rounding of the result


def test_input_x_gradient_is_the_input_times_the_gradient():
    model, x, y = _tiny()
    got = input_attribution(model, x, y, "input_x_gradient")
    torch.testing.assert_close(got.double(), x * _gradient_by_hand(model, x, y), rtol=1e-6, atol=1e-7)


def test_integrated_gradients_of_a_linear_model_is_exact():
    # The gradient of a linear model is its weight row everywhere, so IG from a zero baseline is x * w exactly.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()
    x = torch.rand(4, 3, 2, 2, dtype=torch.float64)
    y = torch.tensor([2, 0, 1, 2])
    got = input_attribution(model, x, y, "integrated_gradients").double()
    want = x * model[1].weight.detach()[y].reshape(x.shape)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def test_integrated_gradients_is_complete_on_the_trained_lenet5(lenet5):
    # Completeness: the attributions add up to logit(x) - logit(0). With IG_STEPS = 64 Gauss-Legendre points the
    # measured error on these 16 images is at most 0.45% of the logit difference (0.036 on differences of 2.4 to
    # 20.4); 16 points give 1.8%, 128 give 0.31%.
    model, x, y = lenet5
    assert IG_STEPS == 64
    got = input_attribution(model, x, y, "integrated_gradients").double().flatten(1).sum(1)
    with torch.no_grad():
        diff = (model(x) - model(torch.zeros_like(x))).double().gather(1, y[:, None])[:, 0]
    assert diff.abs().min() > 1  # a test that can fail: the sums are not all near zero
    assert ((got - diff).abs() <= 0.01 * diff.abs()).all(), ((got - diff) / diff).tolist()


def test_lrp_is_the_projects_input_relevance_and_every_method_has_the_inputs_shape(lenet5):
    model, x, y = lenet5
    maps = input_attributions(model, x[:3], y[:3], rule="gamma")
    assert list(maps) == list(ATTRIBUTIONS)
    assert all(m.shape == x[:3].shape and m.dtype == torch.float32 and m.abs().sum() > 0 for m in maps.values())
    assert torch.equal(maps["lrp"], input_relevance(model, x[:3], y[:3], "gamma"))
    assert (maps["saliency"] >= 0).all()


def test_lrp_epsilon_equals_input_x_gradient_on_a_plain_relu_cnn(lenet5):
    # A known identity (Ancona et al. 2018): with epsilon -> 0, LRP-epsilon of a ReLU network (max-pooling
    # included) is Input x Gradient. Measured here: at most 6e-7 of the map's largest |value| (float32).
    model, x, y = lenet5
    lrp = input_attribution(model, x, y, "lrp").double()
    ixg = input_attribution(model, x, y, "input_x_gradient").double()
    assert (lrp - ixg).abs().max() <= 1e-5 * ixg.abs().max()


def test_the_callers_model_is_left_alone():
    model, x, y = _tiny()
    model.train()
    before = copy.deepcopy(model.state_dict())
    for method in ATTRIBUTIONS:
        input_attribution(model, x, y, method)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_bad_input_says_what_is_wrong_in_one_line():
    model, x, y = _tiny()
    one_line_error(lambda: input_attribution(model, x, y, "smoothgrad"), "attribution method", "saliency")
    one_line_error(lambda: input_attribution(model, x, y, "lrp", rule="zplus"), "LRP rule")
    one_line_error(lambda: input_attribution(model, x, 4, "saliency"), "0..3", "[4]")
    one_line_error(lambda: input_attribution(model, x, y[:2], "saliency"), "one per input (5)")
    one_line_error(lambda: input_attribution(model, x[:0], 0, "saliency"), "non-empty batch")


# ---------------------------------------------------------------- overlap and scale


def _brute_top(m: np.ndarray, k: int) -> set[int]:
    """The k pixels of largest |value|, ties to the lower index: every pixel sorted one by one."""
    flat = [abs(float(v)) for v in np.asarray(m).ravel()]
    return set(sorted(range(len(flat)), key=lambda i: (-flat[i], i))[:k])


@pytest.mark.parametrize("ties", [False, True])
def test_topk_overlap_matches_sets_built_one_by_one(ties):
    rng = np.random.default_rng(7)
    for _ in range(20):
        shape = (int(rng.integers(2, 9)), int(rng.integers(2, 9)))
        a, b = rng.normal(size=shape), rng.normal(size=shape)
        if ties:  # a few values only, with both signs: many equal |values|
            a, b = rng.integers(-2, 3, size=shape).astype(float), rng.integers(-2, 3, size=shape).astype(float)
        for k in range(1, a.size + 1):
            assert set(top_k(a, k).tolist()) == _brute_top(a, k)
            assert topk_overlap(a, b, k) == len(_brute_top(a, k) & _brute_top(b, k)) / k
    assert topk_overlap(a, -a, 3) == 1.0 and topk_overlap(a, b, a.size) == 1.0  # |values|; all pixels


def test_overlap_table_is_symmetric_with_ones_on_the_diagonal():
    rng = np.random.default_rng(1)
    maps = {name: rng.normal(size=(6, 6)) for name in ATTRIBUTIONS}
    table = overlap_table(maps, 5)
    assert table.shape == (4, 4) and np.array_equal(table, table.T) and (np.diag(table) == 1).all()
    assert table[1, 3] == topk_overlap(maps["integrated_gradients"], maps["input_x_gradient"], 5)
    assert (table < 1).any()  # random maps do not share all their top pixels


def test_one_scale_keeps_sign_pattern_and_overlap():
    rng = np.random.default_rng(2)
    maps = {"a": rng.normal(size=(5, 5)) * 30, "b": np.abs(rng.normal(size=(5, 5))) * 0.01, "zero": np.zeros((5, 5))}
    scaled = on_one_scale(maps)
    for name in ("a", "b"):
        assert np.abs(scaled[name]).max() == pytest.approx(1.0)
        assert np.array_equal(np.sign(scaled[name]), np.sign(maps[name]))
        assert set(top_k(scaled[name], 6).tolist()) == set(top_k(maps[name], 6).tolist())
    assert not scaled["zero"].any()


def test_pixel_maps_sum_the_channels():
    attr = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    assert np.array_equal(pixel_maps(attr), attr[:, 0] + attr[:, 1] + attr[:, 2])
    assert np.array_equal(pixel_maps(attr[:, 0]), attr[:, 0])
    one_line_error(lambda: pixel_maps(np.zeros(4)), "N x C x H x W")
    one_line_error(lambda: top_k(np.zeros((2, 2)), 5), "1..4")
    one_line_error(lambda: topk_overlap(np.zeros((2, 2)), np.zeros((3, 3)), 1), "one shape")


# ---------------------------------------------------------------- Captum's LRP where it is correct


def test_captum_lrp_agrees_with_the_projects_on_a_plain_cnn(lenet5):
    # lenet5: conv, ReLU, max-pool, linear; no residual add, no BatchNorm. Captum's LRP sets the epsilon rule
    # (1e-9) on conv, linear and max-pool layers, the project's default too. Measured (float32, 16 images): the
    # input maps differ by at most 3e-7 of the largest |value|, each layer's weight relevance by at most 7e-6.
    model, x, y = lenet5
    ours = input_relevance(model, x, y).double()
    theirs = LRP(copy.deepcopy(model)).attribute(x.clone().requires_grad_(True), target=y).detach().double()
    assert theirs.abs().max() > 0
    assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()

    # Weight relevance: from Captum's relevance at each layer's output R_j, the message through w_ij summed over
    # inputs and positions, a_i * w_ij * R_j / (z_j + eps * sign z_j), written out with unfold and einsum.
    rel = lrp_weight_relevance(model, x, y)
    work = copy.deepcopy(model)
    layers = [m for _, m in weight_layers(work)]
    r_out = LayerLRP(work, layers).attribute(x.clone().requires_grad_(True), target=y)
    plain = copy.deepcopy(model)
    acts: dict[int, torch.Tensor] = {}
    for k, (_, m) in enumerate(weight_layers(plain)):
        m.register_forward_hook(lambda _m, i, _o, k=k: acts.__setitem__(k, i[0].detach().double()))
    with torch.no_grad():
        plain(x)
    for k, (name, m) in enumerate(weight_layers(plain)):
        want = _weight_messages(m, acts[k], r_out[k].detach().double())
        assert (rel[name].double() - want).abs().max() <= 5e-5 * want.abs().max(), name


def _weight_messages(m: nn.Module, a: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """sum over inputs and positions of a_i * w_ij * R_j / (z_j + 1e-9 * sign z_j), sign(0) = 1."""
    w, b = m.weight.detach().double(), m.bias.detach().double()
    if isinstance(m, nn.Conv2d):
        z = nn.functional.conv2d(a, w, b, m.stride, m.padding)
        s = r / (z + 1e-9 * torch.where(z >= 0, 1.0, -1.0))
        cols = nn.functional.unfold(a, w.shape[2:], padding=m.padding, stride=m.stride)
        return w * torch.einsum("ncp,nop->oc", cols, s.flatten(2)).reshape(w.shape)
    z = a @ w.T + b
    s = r / (z + 1e-9 * torch.where(z >= 0, 1.0, -1.0))
    return w * torch.einsum("ni,no->oi", a, s)


def test_compare_maps_scales_and_counts_the_top_fraction():
    rng = np.random.default_rng(3)
    maps = {"a": rng.normal(size=(10, 10)) * 5, "b": rng.normal(size=(10, 10))}
    got = compare_maps(maps, 0.05)
    assert got.k == 5 and got.peaks["a"] == pytest.approx(np.abs(maps["a"]).max())
    assert np.array_equal(got.overlap, overlap_table(maps, 5))
    assert np.allclose(got.maps["a"] * got.peaks["a"], maps["a"])
    assert compare_maps(maps, 0.001).k == 1 and compare_maps(maps, 1.0).overlap[0, 1] == 1.0
    one_line_error(lambda: compare_maps(maps, 0.0), "(0, 1]")
    one_line_error(lambda: compare_maps({}, 0.1), "at least one map")
