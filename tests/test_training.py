"""Tests for xtmr_core.training: learning, determinism, cancellation, train_and_save and the manifest."""

import hashlib
import json

import pytest
import torch

from xtmr_core import training
from xtmr_core.checkpoints import load_model
from xtmr_core.data import DataSplits, load_dataset
from xtmr_core.errors import XtmrError
from xtmr_core.models import build_model
from xtmr_core.training import TrainingRecipe, train_and_save, train_model
from xtmr_core.training import accuracy_on_test as accuracy_of


@pytest.fixture(scope="module")
def small():
    s = load_dataset("mnist5k")
    return DataSplits("mnist5k", s.x_train[:512], s.y_train[:512], s.x_test[:200], s.y_test[:200], s.classes)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return build_model("mlp", (1, 28, 28), 10)


def test_loss_goes_down_and_accuracy_rises(small):
    model = _mlp()
    before = accuracy_of(model, small)
    steps = []
    history = train_model(
        model,
        small,
        epochs=3,
        lr=1e-3,
        seed=0,
        device="cpu",
        progress=lambda r: steps.append(r) if r["test_accuracy"] is None else None,
    )
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["step"] == len(steps) == 24 and steps[-1]["total_steps"] == 24
    assert history[0]["loss"] > history[1]["loss"] > history[2]["loss"]
    first, last = sum(s["loss"] for s in steps[:4]), sum(s["loss"] for s in steps[-4:])
    assert last < 0.5 * first
    assert history[-1]["test_accuracy"] > max(before, 0.7)
    assert not model.training


def test_training_is_deterministic(small):
    a, b, c = _mlp(), _mlp(), _mlp()
    ha = train_model(a, small, epochs=1, lr=1e-3, seed=5, device="cpu")
    hb = train_model(b, small, epochs=1, lr=1e-3, seed=5, device="cpu")
    train_model(c, small, epochs=1, lr=1e-3, seed=6, device="cpu")
    assert ha == hb
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.state_dict()["classifier.0.weight"], c.state_dict()["classifier.0.weight"])


def test_rng_state_untouched(small):
    model = _mlp()
    state = torch.get_rng_state()
    train_model(model, small, epochs=1, lr=1e-3, seed=0, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)


def test_should_stop_ends_cleanly_after_current_step(small):
    model = _mlp()
    calls = []
    history = train_model(
        model, small, epochs=5, lr=1e-3, device="cpu", should_stop=lambda: calls.append(1) or len(calls) >= 3
    )
    assert len(history) == 1 and history[0]["stopped"] and history[0]["step"] == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not model.training and 0 <= history[0]["test_accuracy"] <= 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0, "lr": 1e-3}, "epochs"),
        ({"epochs": 1, "lr": -1.0}, "learning rate"),
        ({"epochs": 1, "lr": float("nan")}, "learning rate"),
        ({"epochs": 1, "lr": 1e-3, "batch_size": 0}, "batch size"),
    ],
)
def test_bad_arguments(small, kwargs, match):
    with pytest.raises(XtmrError, match=match):
        train_model(_mlp(), small, device="cpu", **kwargs)


def test_model_that_does_not_fit_the_data(small):
    with pytest.raises(XtmrError, match="in_shape"):
        train_model(build_model("mlp", (1, 8, 8), 10), small, epochs=1, lr=1e-3, device="cpu")
    with pytest.raises(XtmrError, match="num_classes=10"):
        train_model(build_model("mlp", (1, 28, 28), 3), small, epochs=1, lr=1e-3, device="cpu")


def test_divergence_is_reported(small):
    model = _mlp()
    with torch.no_grad():
        model.classifier[0].weight.fill_(float("inf"))
    with pytest.raises(XtmrError, match="diverged.*lower the learning rate"):
        train_model(model, small, epochs=1, lr=1e-3, device="cpu")


def test_accuracy_counts_non_finite_outputs_as_wrong(small):
    model = _mlp()
    assert accuracy_of(model, small) > 0
    with torch.no_grad():
        model.classifier[4].bias.fill_(float("nan"))
    assert accuracy_of(model, small) == 0.0


def test_train_and_save_outside_checkpoint_dir(tmp_path, capsys):
    manifest = training.CHECKPOINT_DIR / "MANIFEST.json"
    before = manifest.read_bytes() if manifest.exists() else None
    out = tmp_path / "mlp_digits.pt"
    recipe = TrainingRecipe("mlp", "digits", epochs=1, lr=1e-2, seed=3)
    entry = train_and_save(recipe, out, command="cmd", progress=True)
    assert "mlp on digits" in capsys.readouterr().err  # the tqdm bar
    assert entry["file"] == "mlp_digits.pt" and entry["command"] == "cmd" and entry["seed"] == 3
    assert entry["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert entry["bytes"] == out.stat().st_size and entry["in_shape"] == [1, 8, 8]
    model, meta = load_model("mlp", "digits", checkpoint=out, device="cpu")
    assert meta["test_accuracy"] == entry["test_accuracy"] == accuracy_of(model, load_dataset("digits"))
    assert entry["test_accuracy"] > 0.8
    assert (manifest.read_bytes() if manifest.exists() else None) == before
    # Same seed, same file contents.
    again = train_and_save(recipe, tmp_path / "again.pt", command="cmd", progress=False)
    assert again["sha256"] == entry["sha256"]


def test_train_and_save_updates_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "CHECKPOINT_DIR", tmp_path)
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"checkpoints": {"old.pt": {"file": "old.pt"}}}))
    recipe = TrainingRecipe("mlp", "digits", epochs=1, lr=1e-2)
    entry = train_and_save(recipe, tmp_path / "mlp_digits.pt", command="python -m xtmr_core train ...", progress=False)
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert manifest["checkpoints"]["mlp_digits.pt"] == entry
    assert manifest["checkpoints"]["old.pt"] == {"file": "old.pt"}
