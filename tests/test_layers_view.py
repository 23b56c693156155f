"""Tests for xtmr_core.layers_view: per-layer summaries against plain loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xtmr_core.layers_view import layer_table, protected_per_layer, relevance_sample, signed_range, weight_memory_bytes
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
