"""Tests for xtmr_core.layers_view: per-layer summaries against plain loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xtmr_core.layers_view import (
    layer_kind,
    layer_map,
    layer_table,
    protected_per_layer,
    relevance_sample,
    signed_range,
    weight_memory_bytes,
)
from xtmr_core.memory import layout_of
from xtmr_core.protection import make_plan


def test_layer_table_counts(tiny_model):
    t = layer_table(tiny_model)
    assert list(t["layer"]) == ["conv", "fc"]
    assert list(t["type"]) == ["conv 3×3", "linear"]
    assert list(t["weight shape"]) == ["2×1×3×3", "3×32"]
    assert list(t["weights"]) == [18, 96]
    assert list(t["biases"]) == [2, 3]
    assert t["share %"].sum() == pytest.approx(100.0)
    assert t["share %"].iloc[0] == pytest.approx(100 * 18 / 114)


def test_weight_memory_bytes():
    assert weight_memory_bytes(10, "fp32") == 40
    assert weight_memory_bytes(10, "fp16") == 20
    assert weight_memory_bytes(10, "bf16") == 20
    assert weight_memory_bytes(10, "int8") == 10


def _slow_counts(layout, weights):
    counts = [0] * len(layout.names)
    for w in weights:
        for layer in range(len(layout.names)):
            if layout.offsets[layer] <= w < layout.offsets[layer + 1]:
                counts[layer] += 1
    return counts


def test_protected_per_layer_matches_a_loop(tiny_model):
    layout = layout_of(tiny_model)
    scores = np.random.default_rng(0).random(layout.n_weights)
    plan = make_plan("lrp", 32, budget=10.0, scores=scores)
    t = protected_per_layer(layout, plan)
    assert list(t["protected"]) == _slow_counts(layout, plan.weights)
    assert t["protected"].sum() == plan.weights.size
    assert t["of protected %"].sum() == pytest.approx(100.0)
    for row, size in zip(t.itertuples(), layout.sizes()):
        assert row.weights == size
        assert row._4 == pytest.approx(100.0 * row.protected / size)


@pytest.mark.parametrize("protect,expected", [("none", [0, 0]), ("range", [0, 0]), ("full", [18, 96])])
def test_protected_per_layer_whole_model_plans(tiny_model, protect, expected):
    layout = layout_of(tiny_model)
    t = protected_per_layer(layout, make_plan(protect, 32))
    assert list(t["protected"]) == expected
    if sum(expected) == 0:
        assert (t["of protected %"] == 0).all()


def test_relevance_sample_flags_top_and_respects_n(tiny_model):
    layout = layout_of(tiny_model)
    rng = np.random.default_rng(1)
    rel = rng.normal(size=layout.n_weights)
    mag = rng.random(layout.n_weights)
    s = relevance_sample(layout, -mag, rel, n=40, top_fraction=0.1, seed=3)
    assert len(s) == 40 and s["index"].is_monotonic_increasing and s["index"].is_unique
    k = round(0.1 * layout.n_weights)
    top = set(np.argsort(-np.abs(rel))[:k].tolist())
    assert set(s.loc[s["top"], "index"]) == top & set(s["index"])
    assert len(top & set(s["index"])) >= min(k, 40 // 4)
    for row in s.itertuples():
        assert row.magnitude == pytest.approx(mag[row.index])
        assert row.relevance == pytest.approx(rel[row.index])
        assert row.layer == ("conv" if row.index < 18 else "fc")
    # deterministic, and n above the size gives every weight once
    assert s.equals(relevance_sample(layout, -mag, rel, n=40, top_fraction=0.1, seed=3))
    assert len(relevance_sample(layout, mag, rel, n=10_000)) == layout.n_weights


def test_relevance_sample_rejects_wrong_sizes(tiny_model):
    layout = layout_of(tiny_model)
    with pytest.raises(ValueError):
        relevance_sample(layout, np.zeros(3), np.zeros(layout.n_weights))


def test_signed_range():
    assert signed_range(np.array([-3.0, 2.0])) == 3.0
    assert signed_range(np.zeros(4)) == 1.0
    assert signed_range(np.array([np.nan, -0.5, np.inf])) == 0.5
    assert signed_range(torch.tensor([1.0, -2.0]).numpy()) == 2.0


def _slow_cells(values: np.ndarray, lm) -> dict:
    """The sum of the weights each cell's hover text names, from the text alone (an independent reading)."""
    import re

    sums = {}
    for (a, b), text in np.ndenumerate(lm.hover):
        if not text:
            continue
        name = text.rsplit(":", 1)[0]
        spans = {}
        for part in name.split(", kernel")[0].split(" × ") if "×" in name else name.split(", kernel")[0].split(", "):
            m = re.match(r"([a-z ]+?)s? (\d+)(?:–(\d+))?$", part.strip())
            assert m, text
            spans[m.group(1).strip()] = range(int(m.group(2)), int(m.group(3) or m.group(2)) + 1)
        kernel = re.search(r"kernel \((\d+), (\d+)\)", name)
        if values.ndim == 1:
            sums[(a, b)] = values[spans["channel"]].sum()
        elif values.ndim == 2:
            sums[(a, b)] = values[np.ix_(spans["output"], spans["input"])].sum()
        else:
            rows = spans.get("output filter", spans.get("filter"))
            cols = spans.get("input channel", range(values.shape[1]))
            block = values[np.ix_(rows, cols)]
            if kernel:
                block = block[:, :, int(kernel.group(1)), int(kernel.group(2))]
            sums[(a, b)] = block.sum()
    return sums


@pytest.mark.parametrize(
    "shape,max_cells,cell,tile",
    [
        ((10, 84), 4096, "one weight", None),  # a small linear layer: the matrix
        ((120, 400), 4096, "2 outputs × 6 inputs, summed", None),  # block-summed
        ((16, 6, 5, 5), 4096, "one weight; each 5×5 tile is one filter's kernel on one input channel", (5, 5)),
        ((64, 64, 3, 3), 4096, "one 3×3 kernel (its weights summed)", None),
        ((256, 256, 3, 3), 4096, "4 output filters × 4 input channels, each 3×3 kernel summed, then the block", None),
        ((32, 16, 1, 1), 4096, "one weight", None),  # pointwise conv: a matrix
        ((6, 1, 5, 5), 4096, "one weight; each 5×5 tile is one filter's kernel", (5, 5)),  # one input channel
        ((96, 1, 3, 3), 4096, "one weight; each 3×3 tile is one filter's kernel", (3, 3)),  # depthwise
        ((960, 1, 3, 3), 4096, "one filter (its kernel summed)", None),  # depthwise too large for tiles
        ((64,), 4096, "one channel's scale", None),  # a BatchNorm scale kept as its own layer
    ],
)
def test_layer_map_cells_hold_the_weights_their_text_names(shape, max_cells, cell, tile):
    values = np.random.default_rng(0).normal(size=shape)
    lm = layer_map(values, max_cells=max_cells)
    assert lm.cell == cell and lm.tile == tile
    assert lm.z.size <= max_cells and lm.hover.shape == lm.z.shape
    assert np.nansum(lm.z) == pytest.approx(values.sum())  # block sums keep the signed total
    for (a, b), expected in _slow_cells(values, lm).items():
        assert lm.z[a, b] == pytest.approx(expected), (a, b, lm.hover[a, b])
    filled = np.isfinite(lm.z).sum()
    assert filled == len(_slow_cells(values, lm))  # every finite cell names its weights; empty cells are NaN
    for ticks in (lm.x_ticks, lm.y_ticks):
        assert len(ticks[0]) == len(ticks[1]) <= 13
    assert lm.x_title and lm.y_title


def test_layer_map_wraps_one_channel_filters_into_a_near_square_grid():
    lm = layer_map(np.arange(96 * 9, dtype=float).reshape(96, 1, 3, 3))
    assert lm.z.shape == (30, 30)  # 10 rows of 10 filters, 3×3 each (4 tiles empty)
    assert lm.z[3, 0] == 10 * 9  # filter 10 opens the second row of tiles
    assert np.isnan(lm.z[-1, -1]) and lm.hover[-1, -1] == ""
    assert lm.y_ticks[1][:2] == ("0", "10")


def test_layer_map_rejects_other_shapes():
    with pytest.raises(ValueError):
        layer_map(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError):
        layer_map(np.zeros((2, 2)), max_cells=0)


def test_layer_kind_names_depthwise_and_grouped_convs():
    assert layer_kind(torch.nn.Linear(3, 2)) == "linear"
    assert layer_kind(torch.nn.Conv2d(4, 8, 5)) == "conv 5×5"
    assert layer_kind(torch.nn.Conv2d(8, 8, 3, groups=8)) == "depthwise conv 3×3"
    assert layer_kind(torch.nn.Conv2d(8, 16, 3, groups=4)) == "conv 3×3, 4 groups"
    assert layer_kind(torch.nn.BatchNorm2d(8)) == "batchnorm scale"
