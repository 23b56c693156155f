"""Screen images against a per-pixel reference loop; folder paths that cannot work get one line each."""

from __future__ import annotations

import numpy as np
import pytest

from xtmr_core.image_view import folder_problem, screen_images


def _reference(img: np.ndarray, mean, std) -> np.ndarray:
    """One image, pixel by pixel: un-normalise, rescale if outside [0, 1], then lay out for a screen."""
    c, h, w = img.shape
    out = np.empty_like(img, dtype=np.float32)
    for k in range(c):
        for i in range(h):
            for j in range(w):
                v = float(img[k, i, j])
                out[k, i, j] = v * std[k] + mean[k] if mean is not None else v
    lo, hi = out.min(), out.max()
    if lo < -1e-3 or hi > 1 + 1e-3:
        out = (out - lo) / max(hi - lo, 1e-6)
    out = np.clip(out, 0, 1)
    if c == 1:
        return out[0]
    if c == 2:
        return out.mean(0)
    return np.stack([out[0], out[1], out[2]], axis=-1)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("normalised", [False, True])
def test_screen_images_match_a_per_pixel_reference(channels, normalised):
    rng = np.random.default_rng(channels)
    x = rng.normal(0.4, 0.6 if normalised else 0.2, size=(3, channels, 5, 4)).astype(np.float32)
    mean = [0.5, 0.4, 0.3, 0.2][:channels] if normalised else None
    std = [0.2, 0.25, 0.3, 0.35][:channels] if normalised else None
    got = screen_images(x, mean, std)
    assert len(got) == 3
    for img, shown in zip(x, got):
        want = _reference(img, mean, std)
        assert shown.shape == want.shape
        np.testing.assert_allclose(shown, want, rtol=1e-5, atol=1e-6)
        assert shown.min() >= 0 and shown.max() <= 1


def test_an_image_inside_the_unit_range_is_drawn_as_it_is():
    x = np.linspace(0, 1, 12, dtype=np.float32).reshape(1, 1, 3, 4)
    np.testing.assert_array_equal(screen_images(x)[0], x[0, 0])
    assert screen_images(np.zeros((0, 3, 2, 2))) == []
    with pytest.raises(ValueError, match="N×C×H×W"):
        screen_images(np.zeros((2, 2)))


def test_a_folder_path_that_cannot_work_says_why_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.png").write_bytes(b"")
    (tmp_path / "bare" / "cats").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "good" / "cats").mkdir(parents=True)
    (tmp_path / "good" / "cats" / "a.png").write_bytes(b"x")
    cases = {
        "photos": f"not found in the server's working folder {tmp_path} (give an absolute path)",
        str(tmp_path / "gone"): "not found; give a folder",
        str(tmp_path / "photo.png"): "is a file, not a folder",
        str(tmp_path / "empty"): "has no class sub-folders",
        str(tmp_path / "bare"): "(cats) hold no files",
    }
    for path, says in cases.items():
        line = folder_problem(path)
        assert line is not None and says in line and "\n" not in line, (path, line)
    assert folder_problem(str(tmp_path / "good")) is None
