"""The user's own images: a folder of class sub-folders (torchvision's ``ImageFolder`` layout), loaded into
memory as ``DataSplits`` with a recorded train/test split.

``PATH/<class>/<image>`` with any image type Pillow reads; classes are the sub-folder names in sorted order
(label = index). Every image is resized to one size, converted to 1 or 3 channels, scaled to [0, 1] and
optionally normalised per channel. The split is either a file listing the test images (one path per line,
relative to ``PATH``; every other image trains) or a seeded stratified split; which one, and its parameters,
is recorded in ``DataSplits.info`` so every output can say how it was made.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xtmr_core.errors import XtmrError
from xtmr_core.vocabulary import IMAGEFOLDER_PREFIX, NORMALIZATIONS, check_choice

if TYPE_CHECKING:  # numpy and torch load with the images, so the CLI checks a spec before they do
    import numpy as np

    from xtmr_core.data import DataSplits

#: ImageNet's per-channel mean and standard deviation (torchvision's pretrained weights expect them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Most images loaded into memory (3×32×32 float32 images: 12 KB each).
MAX_IMAGES = 200_000


@dataclass(frozen=True)
class ImageFolderSpec:
    """How to read an image folder.

    Attributes:
        root: the folder holding one sub-folder per class.
        size: (height, width) every image is resized to.
        channels: 1 (grayscale) or 3 (RGB).
        normalize: ``none`` (pixels in [0, 1]), ``imagenet`` (ImageNet mean/std) or ``dataset`` (the train
            split's own per-channel mean/std).
        split_file: a text file naming the test images (one path per line, relative to ``root``); ``None`` =
            a seeded stratified split.
        test_fraction: share of each class held out for testing (seeded split only).
        split_seed: seed of the stratified split.
    """

    root: str
    size: tuple[int, int] = (32, 32)
    channels: int = 3
    normalize: str = "none"
    split_file: str | None = None
    test_fraction: float = 0.2
    split_seed: int = 0

    @property
    def name(self) -> str:
        """The dataset's name in outputs: ``imagefolder:ROOT``."""
        return IMAGEFOLDER_PREFIX + self.root

    def check(self) -> ImageFolderSpec:
        """Return ``self`` if its options are valid, else raise ``XtmrError`` (nothing is read)."""
        if len(self.size) != 2 or min(self.size) < 1 or max(self.size) > 1024:
            raise XtmrError(f"image size must be 1 to 1024 pixels a side, got {self.size}")
        if self.channels not in (1, 3):
            raise XtmrError(f"channels must be 1 or 3, got {self.channels}")
        check_choice("normalisation", self.normalize, NORMALIZATIONS)
        if self.split_file is None and not 0.0 < self.test_fraction < 1.0:
            raise XtmrError(f"test fraction must lie in (0, 1), got {self.test_fraction}")
        return self


def load_image_folder(spec: ImageFolderSpec) -> DataSplits:
    """Read every image of an image folder into memory and split it.

    Args:
        spec: the folder and how to read it.

    Returns:
        ``DataSplits`` named ``imagefolder:ROOT`` whose ``info`` records the folder, image count, size,
        channels, normalisation (with its mean and std) and split.

    Raises:
        XtmrError: a missing folder, one without class sub-folders holding images, fewer than two classes,
            an unreadable image, a split file naming an image that is not there, or an empty split part.
    """
    import numpy as np
    import torch

    from xtmr_core.data import DataSplits

    spec.check()
    root = Path(spec.root).expanduser()
    if not root.is_dir():
        raise XtmrError(f"image folder {root} not found; give a folder with one sub-folder of images per class")
    from torchvision.datasets import ImageFolder  # type: ignore[import-untyped]  # torchvision ships no type hints

    try:
        folder = ImageFolder(str(root))
    except (FileNotFoundError, OSError) as e:
        raise XtmrError(
            f"image folder {root} has no class sub-folders with images ({' '.join(str(e).split())[:100]}); "
            f"expected {root}/<class>/<image>.png"
        ) from None
    if len(folder.classes) < 2:
        raise XtmrError(f"image folder {root} has {len(folder.classes)} class; a classifier needs at least 2")
    if len(folder.samples) > MAX_IMAGES:
        raise XtmrError(f"image folder {root} has {len(folder.samples)} images, over the {MAX_IMAGES} this loads")
    x = np.stack([_read(Path(path), spec) for path, _ in folder.samples])
    y = np.asarray([label for _, label in folder.samples], dtype=np.int64)
    relative = [Path(path).relative_to(root).as_posix() for path, _ in folder.samples]
    train, test, split = _split(root, relative, y, spec)
    norm = _normalization(spec, x[train])
    if norm is not None:
        mean, std = norm
        x = (x - mean[:, None, None]) / std[:, None, None]
    info = {
        "root": str(root),
        "images": len(y),
        "classes": list(folder.classes),
        "size": list(spec.size),
        "channels": spec.channels,
        "normalize": spec.normalize,
        "mean": None if norm is None else [float(v) for v in norm[0]],
        "std": None if norm is None else [float(v) for v in norm[1]],
        "split": split,
    }

    def tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype).clone()

    return DataSplits(
        spec.name,
        tensor(x[train], torch.float32),
        tensor(y[train], torch.int64),
        tensor(x[test], torch.float32),
        tensor(y[test], torch.int64),
        tuple(folder.classes),
        info,
    )


def _read(path: Path, spec: ImageFolderSpec) -> np.ndarray:
    """One image as float32 C×H×W in [0, 1]."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as raw:
            img = raw.convert("L" if spec.channels == 1 else "RGB")
            img = img.resize((spec.size[1], spec.size[0]), Image.Resampling.BILINEAR)
            a = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    except OSError as e:
        raise XtmrError(f"cannot read image {path}: {' '.join(str(e).split())[:100]}") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _split(
    root: Path, relative: list[str], y: np.ndarray, spec: ImageFolderSpec
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(train indices, test indices, the split as recorded)."""
    import numpy as np

    from xtmr_core.data import stratified_split

    if spec.split_file is None:
        train, test = stratified_split(y, spec.test_fraction, spec.split_seed)
        split: dict[str, Any] = {"kind": "stratified", "test_fraction": spec.test_fraction, "seed": spec.split_seed}
    else:
        path = Path(spec.split_file).expanduser()
        if not path.is_file():
            raise XtmrError(f"split file {path} not found; give a text file naming one test image per line")
        raw = path.read_bytes()
        lines = (line.strip() for line in raw.decode("utf-8", errors="replace").splitlines())
        names = [line for line in lines if line and not line.startswith("#")]
        index = {name: i for i, name in enumerate(relative)}
        unknown = [n for n in names if n not in index]
        if unknown:
            raise XtmrError(f"split file {path} names {unknown[0]!r}, which is not an image under {root}")
        chosen = set(names)
        test = np.asarray(sorted(index[n] for n in chosen), dtype=np.int64)
        train = np.asarray([i for i, n in enumerate(relative) if n not in chosen], dtype=np.int64)
        split = {"kind": "file", "file": str(path), "sha256": hashlib.sha256(raw).hexdigest()}
    if len(train) == 0 or len(test) == 0:
        raise XtmrError(
            f"the split of {root} leaves {len(train)} training and {len(test)} test images; both need at least one"
        )
    split.update(train=len(train), test=len(test))
    return train, test, split


def _normalization(spec: ImageFolderSpec, x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel (mean, std) to subtract and divide by, or None (no normalisation)."""
    import numpy as np

    if spec.normalize == "none":
        return None
    if spec.normalize == "imagenet":
        mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
        if spec.channels == 1:  # the luminance a grayscale conversion gives of ImageNet's statistics
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        return mean, std
    mean = x_train.mean(axis=(0, 2, 3)).astype(np.float32)
    std = np.maximum(x_train.std(axis=(0, 2, 3)), 1e-6).astype(np.float32)
    return mean, std
