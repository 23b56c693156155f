"""Tests for xtmr_core.image_folder: pixels against a slow PIL reference, channels, normalisation, the
recorded split (seeded or from a file) and every bad folder or option as one XtmrError line."""

import hashlib

import numpy as np
import pytest
import torch
from conftest import one_line_error
from PIL import Image

from xtmr_core.image_folder import IMAGENET_MEAN, IMAGENET_STD, ImageFolderSpec, load_image_folder

#: Created in unsorted order: labels must follow the sorted folder names, not creation order.
CLASSES = ("cat", "ant", "bee")
PER_CLASS = 10
#: Not square, and different from every source size, so a swapped (H, W) or a missing resize shows.
SIZE = (8, 10)


def _write_folder(root, classes=CLASSES, per_class=PER_CLASS, seed=0):
    """``root/<class>/img_NN.png``: random pixels, 12×12 or 20×16, RGB and grayscale, one JPEG per class."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            h, w = (12, 12) if i % 2 == 0 else (20, 16)
            if i % 3 == 1:
                img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
            else:
                img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
            img.save(root / c / (f"img_{i:02d}.jpg" if i == per_class - 1 else f"img_{i:02d}.png"))
    return root


@pytest.fixture
def folder(tmp_path):
    return _write_folder(tmp_path / "photos")


def _reference(root, size=SIZE, channels=3):
    """Every image, read the obvious way: {relative path: (float32 C×H×W array, label)}."""
    out = {}
    for label, c in enumerate(sorted(p.name for p in root.iterdir() if p.is_dir())):
        for f in sorted((root / c).iterdir()):
            img = Image.open(f).convert("L" if channels == 1 else "RGB")
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            a = np.asarray(img, dtype=np.float64) / 255.0  # float64 then float32: the same correctly rounded value
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            out[f"{c}/{f.name}"] = (a.astype(np.float32), label)
    return out


def _key(row) -> bytes:
    return np.asarray(row, dtype=np.float32).tobytes()


# --- what is read ----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_pixels_and_labels_equal_the_pil_reference(folder, channels):
    s = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, channels=channels))
    ref = _reference(folder, channels=channels)
    assert s.name == f"imagefolder:{folder}" and s.classes == ("ant", "bee", "cat")
    assert s.in_shape == (channels, *SIZE) and s.num_classes == 3
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    assert len(s.y_train) + len(s.y_test) == len(ref) == 30
    by_pixels = {_key(a): label for a, label in ref.values()}
    assert len(by_pixels) == 30  # random images: every row identifies its file
    seen = []
    for x, y in ((s.x_train, s.y_train), (s.x_test, s.y_test)):
        for row, label in zip(x.numpy(), y.tolist()):
            assert _key(row) in by_pixels, "a row equals no reference image exactly"
            assert by_pixels[_key(row)] == label
            seen.append(_key(row))
    assert sorted(seen) == sorted(by_pixels)  # each image once, none lost or doubled
    assert 0.0 <= float(s.x_train.min()) and float(s.x_train.max()) <= 1.0


def test_grayscale_source_read_as_rgb_has_three_equal_channels(folder):
    s = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, channels=3, split_file=None))
    gray = _reference(folder, channels=1)["ant/img_01.png"][0]  # i % 3 == 1: a grayscale file
    rgb = _reference(folder, channels=3)["ant/img_01.png"][0]
    assert np.array_equal(rgb[0], rgb[1]) and np.array_equal(rgb[1], rgb[2])
    assert rgb.shape == (3, *SIZE) and gray.shape == (1, *SIZE)
    assert any(np.array_equal(row, rgb) for row in np.concatenate([s.x_train.numpy(), s.x_test.numpy()]))


def test_info_records_how_the_data_was_made(folder):
    s = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, channels=1, test_fraction=0.3, split_seed=4))
    assert s.info == {
        "root": str(folder),
        "images": 30,
        "classes": ["ant", "bee", "cat"],
        "size": list(SIZE),
        "channels": 1,
        "normalize": "none",
        "mean": None,
        "std": None,
        "split": {"kind": "stratified", "test_fraction": 0.3, "seed": 4, "train": 21, "test": 9},
    }


# --- normalisation ---------------------------------------------------------------------------------


def test_dataset_normalisation_uses_the_train_split_statistics(folder):
    raw = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, split_seed=2))
    s = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, split_seed=2, normalize="dataset"))
    assert torch.equal(s.y_train, raw.y_train) and torch.equal(s.y_test, raw.y_test)
    mean = raw.x_train.double().mean(dim=(0, 2, 3))
    std = raw.x_train.double().std(dim=(0, 2, 3), unbiased=False)
    assert s.info["normalize"] == "dataset"
    assert s.info["mean"] == pytest.approx(mean.tolist(), rel=1e-5)
    assert s.info["std"] == pytest.approx(std.tolist(), rel=1e-5)
    # the train split is standardised per channel; the test split uses the train split's numbers
    assert s.x_train.double().mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (s.x_train.double().std(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 1e-4
    expected_test = (raw.x_test.double() - mean[:, None, None]) / std[:, None, None]
    assert torch.allclose(s.x_test.double(), expected_test, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_imagenet_normalisation(folder, channels):
    raw = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, channels=channels))
    s = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, channels=channels, normalize="imagenet"))
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    if channels == 1:  # one channel: the average of ImageNet's three
        mean, std = mean.mean(0, keepdim=True), std.mean(0, keepdim=True)
    assert s.info["mean"] == pytest.approx(mean.tolist()) and s.info["std"] == pytest.approx(std.tolist())
    for got, base in ((s.x_train, raw.x_train), (s.x_test, raw.x_test)):
        assert torch.allclose(got, (base - mean[:, None, None]) / std[:, None, None], atol=1e-6)


# --- the split -------------------------------------------------------------------------------------


def _test_rows(s) -> set:
    return {_key(row) for row in s.x_test.numpy()}


def test_seeded_split_is_stratified_deterministic_and_seed_dependent(folder):
    a = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, test_fraction=0.2, split_seed=0))
    assert torch.bincount(a.y_test, minlength=3).tolist() == [2, 2, 2]
    assert torch.bincount(a.y_train, minlength=3).tolist() == [8, 8, 8]
    assert not _test_rows(a) & {_key(row) for row in a.x_train.numpy()}
    again = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, test_fraction=0.2, split_seed=0))
    for t, u in zip(
        (a.x_train, a.y_train, a.x_test, a.y_test), (again.x_train, again.y_train, again.x_test, again.y_test)
    ):
        assert torch.equal(t, u)
    assert again.info == a.info
    other = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, test_fraction=0.2, split_seed=1))
    assert _test_rows(other) != _test_rows(a)
    assert torch.bincount(other.y_test, minlength=3).tolist() == [2, 2, 2]


def test_split_file_puts_exactly_the_named_images_in_test(folder, tmp_path):
    split = tmp_path / "test.txt"
    split.write_text("# held-out images\n\nbee/img_05.png\nant/img_00.png\n  cat/img_09.jpg  \n# end\n")
    s = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, split_file=str(split), test_fraction=0.5))
    ref = _reference(folder)
    named = ["ant/img_00.png", "bee/img_05.png", "cat/img_09.jpg"]  # in sorted order, as loaded
    assert np.array_equal(s.x_test.numpy(), np.stack([ref[n][0] for n in named]))
    assert s.y_test.tolist() == [0, 1, 2]
    rest = [n for n in sorted(ref) if n not in named]
    assert np.array_equal(s.x_train.numpy(), np.stack([ref[n][0] for n in rest]))
    assert s.y_train.tolist() == [ref[n][1] for n in rest]
    assert s.info["split"] == {
        "kind": "file",
        "file": str(split),
        "sha256": hashlib.sha256(split.read_bytes()).hexdigest(),
        "train": 27,
        "test": 3,
    }


def test_split_file_hash_is_the_files_own_with_crlf_lines(folder, tmp_path):
    split = tmp_path / "test.txt"
    split.write_bytes(b"ant/img_00.png\r\nbee/img_05.png\r\n")
    s = load_image_folder(ImageFolderSpec(str(folder), size=SIZE, split_file=str(split)))
    assert s.info["split"]["test"] == 2  # the lines themselves are read right
    assert s.info["split"]["sha256"] == hashlib.sha256(split.read_bytes()).hexdigest()


# --- errors: one line each, naming the problem -----------------------------------------------------


def test_split_file_naming_a_missing_image(folder, tmp_path):
    split = tmp_path / "test.txt"
    split.write_text("ant/img_00.png\nant/nope.png\n")
    one_line_error(
        lambda: load_image_folder(ImageFolderSpec(str(folder), split_file=str(split))), "'ant/nope.png'", str(folder)
    )


def test_missing_split_file(folder, tmp_path):
    missing = tmp_path / "absent.txt"
    one_line_error(
        lambda: load_image_folder(ImageFolderSpec(str(folder), split_file=str(missing))),
        f"split file {missing} not found",
    )


def test_split_file_naming_every_image_leaves_no_training_data(folder, tmp_path):
    split = tmp_path / "all.txt"
    split.write_text("\n".join(_reference(folder)))
    one_line_error(
        lambda: load_image_folder(ImageFolderSpec(str(folder), split_file=str(split))), "0 training and 30 test"
    )


def test_test_fraction_too_small_for_the_classes_leaves_no_test_data(folder):
    # round(10 * 0.01) = 0 test images per class
    one_line_error(
        lambda: load_image_folder(ImageFolderSpec(str(folder), test_fraction=0.01)), "30 training and 0 test"
    )


def test_missing_folder(tmp_path):
    one_line_error(lambda: load_image_folder(ImageFolderSpec(str(tmp_path / "nowhere"))), "nowhere", "not found")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(lambda: load_image_folder(ImageFolderSpec(str(tmp_path / "empty"))), "no class sub-folders")


def test_class_folders_without_images(tmp_path):
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        (tmp_path / "d" / c / "notes.txt").write_text("not an image")
    one_line_error(lambda: load_image_folder(ImageFolderSpec(str(tmp_path / "d"))), "no class sub-folders")


def test_one_class_is_not_a_classifier(tmp_path):
    root = _write_folder(tmp_path / "one", classes=("only",), per_class=4)
    one_line_error(lambda: load_image_folder(ImageFolderSpec(str(root))), "has 1 class", "at least 2")


@pytest.mark.parametrize(
    "content",
    [b"", b"not a png at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 30],
    ids=["empty", "junk", "bad-header"],
)
def test_corrupt_image_is_named(folder, content):
    bad = folder / "bee" / "img_99.png"
    bad.write_bytes(content)
    one_line_error(lambda: load_image_folder(ImageFolderSpec(str(folder))), f"cannot read image {bad}")


def test_truncated_image_is_named(folder):
    good = (folder / "ant" / "img_00.png").read_bytes()
    bad = folder / "ant" / "img_50.png"
    bad.write_bytes(good[: len(good) // 2])
    one_line_error(lambda: load_image_folder(ImageFolderSpec(str(folder))), f"cannot read image {bad}")


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"size": (0, 12)}, "image size"),
        ({"size": (12, 2000)}, "image size"),
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"normalize": "zscore"}, "unknown normalisation 'zscore'"),
        ({"test_fraction": 0.0}, "test fraction"),
        ({"test_fraction": 1.0}, "test fraction"),
    ],
)
def test_bad_options_are_refused_before_reading(options, fragment, tmp_path):
    spec = ImageFolderSpec(str(tmp_path / "never-read"), **options)
    one_line_error(spec.check, fragment)
    one_line_error(lambda: load_image_folder(spec), fragment)  # the option, not the missing folder, is named


def test_a_split_file_makes_the_test_fraction_irrelevant(tmp_path):
    spec = ImageFolderSpec(str(tmp_path), split_file="t.txt", test_fraction=0.0)
    assert spec.check() is spec
