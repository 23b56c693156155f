"""Tests for xtmr_core.session_checkpoints: bytes round-trip through the safe loader, training to bytes."""

from __future__ import annotations

from dataclasses import replace

import torch

from xtmr_core.checkpoints import load_state_dict_bytes
from xtmr_core.models import build_model
from xtmr_core.session_checkpoints import checkpoint_bytes, digest, train_checkpoint
from xtmr_core.training import TrainingRecipe


def test_round_trip_through_safe_loader():
    torch.manual_seed(0)
    net = build_model("mlp", (1, 8, 8), 10)
    data = checkpoint_bytes(net, {"model": "mlp", "dataset": "digits", "width": 0.5, "torch": str(torch.__version__)})
    loaded, meta = load_state_dict_bytes(data, "mlp", "digits", "cpu")
    assert meta["sha256"] == digest(data)
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_train_checkpoint_stops_when_asked_and_loads():
    seen = []
    data, history = train_checkpoint(
        TrainingRecipe("mlp", "digits", epochs=3, lr=1e-3, seed=0),
        device="cpu",
        progress=seen.append,
        should_stop=lambda: len(seen) >= 2,
    )
    assert len(history) == 1 and history[0]["stopped"]
    net, meta = load_state_dict_bytes(data, "mlp", "digits", "cpu")
    assert meta["stopped"] is True and meta["epochs"] == 3 and 0.0 <= meta["test_accuracy"] <= 1.0
    # same seed, same recipe: the same bytes
    again, _ = train_checkpoint(
        TrainingRecipe("mlp", "digits", epochs=3, lr=1e-3, seed=0),
        device="cpu",
        progress=(seen2 := []).append,
        should_stop=lambda: len(seen2) >= 2,
    )
    assert digest(again) == digest(data)
    assert not {"lr_schedule", "optimizer", "weight_decay", "augment"} & set(meta)  # defaults leave the bytes alone


def test_train_checkpoint_follows_and_records_the_whole_recipe():
    two_steps = {"device": "cpu", "should_stop": lambda: True}
    base = TrainingRecipe("mlp", "digits", epochs=1, lr=1e-2, seed=0)
    plain, _ = train_checkpoint(base, **two_steps)
    sgd, _ = train_checkpoint(replace(base, optimizer="sgd", weight_decay=1e-3, lr_schedule="cosine"), **two_steps)
    assert digest(sgd) != digest(plain)  # the options reach the optimiser, not only the meta
    _, meta = load_state_dict_bytes(sgd, "mlp", "digits", "cpu")
    assert (meta["optimizer"], meta["weight_decay"], meta["lr_schedule"]) == ("sgd", 1e-3, "cosine")
