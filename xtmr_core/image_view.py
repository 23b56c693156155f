"""Images as a screen shows them, and what a typed image-folder path lacks before anything reads it.

Pure numpy and ``pathlib``; no torch, no Streamlit. The app's caching seam fetches the test images and
normalisation of an ``Experiment`` and hands them here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["screen_images", "folder_problem"]

#: How far outside [0, 1] a pixel may lie (float rounding after un-normalising) before the image is rescaled.
_SLACK = 1e-3


def screen_images(
    x: np.ndarray, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> list[np.ndarray]:
    """Images (N×C×H×W) as a screen shows them: H×W (one channel) or H×W×3 (RGB), floats in [0, 1].

    Normalised pixels (``mean`` and ``std`` per channel, both given) are mapped back first; an image still
    outside [0, 1] is rescaled to its own min and max, so none is drawn in wrapped-around colours. Two channels
    are averaged to one; more than three keep their first three.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"images must be N×C×H×W, got shape {x.shape}")
    if mean is not None and std is not None:
        x = x * np.asarray(std, np.float32)[:, None, None] + np.asarray(mean, np.float32)[:, None, None]
    out = []
    for img in x:
        lo, hi = float(img.min()), float(img.max())
        if lo < -_SLACK or hi > 1 + _SLACK:
            img = (img - lo) / max(hi - lo, 1e-6)
        img = np.clip(img, 0.0, 1.0)
        if img.shape[0] == 1:
            out.append(img[0])
        elif img.shape[0] >= 3:
            out.append(np.transpose(img[:3], (1, 2, 0)))
        else:
            out.append(img.mean(0))
    return out


def folder_problem(path: str) -> str | None:
    """What is wrong with a typed image-folder path before it is read, in one line (``None``: nothing seen yet).

    A relative path that is not there names the working folder it was read from, a file says it is a file, a
    folder without class sub-folders, or with empty ones, says where the images go.
    """
    where = Path(path).expanduser()
    if not where.exists():
        relative = (
            "" if where.is_absolute() else f" in the server's working folder {Path.cwd()} (give an absolute path)"
        )
        return f"image folder {path} not found{relative}; give a folder with one sub-folder of images per class"
    if not where.is_dir():
        return f"{path} is a file, not a folder: give the folder that holds one sub-folder of images per class"
    try:
        classes = sorted(child for child in where.iterdir() if child.is_dir())
        if not classes:
            return f"image folder {path} has no class sub-folders: put each class's images in a sub-folder of its own"
        if not any(f.is_file() for c in classes for f in c.rglob("*")):
            names = ", ".join(c.name for c in classes[:5]) + (", …" if len(classes) > 5 else "")
            return f"the class sub-folders of {path} ({names}) hold no files: put each class's images in its own"
    except OSError as e:
        return f"image folder {path} cannot be read: {e.strerror or e}"
    return None
