"""Tests for xtmr_core.model_source: built-in, torchvision and user-factory models, seeded and RNG-neutral;
user code only when allowed; weights from state-dict files; every failure as one XtmrError line; the CLI."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import one_line_error, same_state, state_bytes
from PIL import Image

from xtmr_core.cli import main
from xtmr_core.data import DataSplits
from xtmr_core.model_source import build_from_source, load_from_source
from xtmr_core.models import build_model

#: Factories of every shape the loader meets; each records the keyword arguments it was given.
NETS = """
import torch
from torch import nn


class Small(nn.Module):
    def __init__(self, in_channels, num_classes, act=None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.act = act if act is not None else nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.act(self.conv(x))), 1))


def build(num_classes, in_channels):
    net = Small(in_channels, num_classes)
    net.got = {"num_classes": num_classes, "in_channels": in_channels}
    return net


def build_any(**kwargs):
    net = Small(kwargs["in_channels"], kwargs["num_classes"])
    net.got = dict(kwargs)
    return net


def build_fixed():
    net = Small(1, 3)
    net.got = {}
    return net


def lrn(num_classes, in_channels):
    return Small(in_channels, num_classes, nn.LocalResponseNorm(2))  # a layer LRP has no rule for


def boom(num_classes):
    raise RuntimeError("boom while building")


def not_a_module():
    return 42


def five_outputs(in_channels):
    return Small(in_channels, 5)


def flat_ten(num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(10, num_classes))


NOT_CALLABLE = 3
"""

IN_SHAPE = (1, 8, 8)


@pytest.fixture(autouse=True)
def _keep_global_rng():
    # these tests reseed torch's global RNG on purpose; later tests must not see it
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)


def _writes_marker(marker) -> str:
    """A first line of Python that creates ``marker`` when it runs."""
    return f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')\n"


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


def _splits(channels=1, classes=3, seed=0) -> DataSplits:
    g = torch.Generator().manual_seed(seed)
    return DataSplits(
        "imagefolder:synthetic",
        torch.rand(12, channels, 8, 8, generator=g),
        torch.arange(12) % classes,
        torch.rand(6, channels, 8, 8, generator=g),
        torch.arange(6) % classes,
        tuple("abcdefgh"[:classes]),
        {"root": "synthetic"},  # not empty: an image folder's data, not a built-in dataset
    )


def _outputs(net, shape=IN_SHAPE):
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        return net(x)


# --- building -----------------------------------------------------------------------------------------


def test_builtin_name_is_the_zoo_model_under_the_seed():
    rng = torch.get_rng_state()
    net = build_from_source("lenet5", (1, 28, 28), 10, seed=5)
    assert torch.equal(torch.get_rng_state(), rng)
    assert not net.training and _outputs(net, (1, 28, 28)).shape == (4, 10)
    torch.manual_seed(5)
    assert same_state(net, state_bytes(build_model("lenet5", (1, 28, 28), 10)))


def test_torchvision_resnet18_rgb():
    import torchvision

    net = build_from_source("torchvision:resnet18", (3, 32, 32), 7)
    assert isinstance(net, torchvision.models.ResNet) and not net.training
    assert net.conv1.in_channels == 3 and net.fc.out_features == 7
    assert _outputs(net, (3, 32, 32)).shape == (4, 7)


def test_torchvision_resnet18_grayscale_rebuilds_the_first_conv_seeded():
    rng = torch.get_rng_state()
    net = build_from_source("torchvision:resnet18", (1, 32, 32), 4, seed=3)
    c = net.conv1
    assert (c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) == (1, 64, (7, 7), (2, 2), (3, 3))
    assert c.bias is None and c.weight.shape == (64, 1, 7, 7)
    assert net.fc.out_features == 4 and _outputs(net, (1, 32, 32)).shape == (4, 4)
    assert torch.equal(torch.get_rng_state(), rng)
    torch.manual_seed(1234)  # the caller's RNG state does not enter: only the seed does
    again = build_from_source("torchvision:resnet18", (1, 32, 32), 4, seed=3)
    assert same_state(again, state_bytes(net))


@pytest.mark.parametrize(
    "factory, got",
    [
        ("build", {"num_classes": 3, "in_channels": 1}),
        ("build_any", {"num_classes": 3, "in_channels": 1, "in_shape": IN_SHAPE}),
        ("build_fixed", {}),
    ],
)
def test_file_factory_gets_the_arguments_it_takes(nets, factory, got):
    net = build_from_source(f"{nets}:{factory}", IN_SHAPE, 3, allow_code=True)
    assert net.got == got
    assert not net.training and _outputs(net).shape == (4, 3)


def test_file_factory_is_seeded_and_leaves_the_callers_rng_alone(nets):
    ref = f"{nets}:build"
    torch.manual_seed(77)
    rng = torch.get_rng_state()
    a = build_from_source(ref, IN_SHAPE, 3, seed=11, allow_code=True)
    assert torch.equal(torch.get_rng_state(), rng)
    torch.manual_seed(78)
    b = build_from_source(ref, IN_SHAPE, 3, seed=11, allow_code=True)
    assert same_state(b, state_bytes(a))
    c = build_from_source(ref, IN_SHAPE, 3, seed=12, allow_code=True)
    assert not same_state(c, state_bytes(a))


@pytest.fixture
def package(tmp_path, monkeypatch):
    """An importable package ``xtmr_test_zoo`` with the factories in ``nets`` (removed from sys.modules after)."""
    root = tmp_path / "site"
    (root / "xtmr_test_zoo").mkdir(parents=True)
    (root / "xtmr_test_zoo" / "__init__.py").write_text("")
    (root / "xtmr_test_zoo" / "nets.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(root))
    yield "xtmr_test_zoo"
    for name in [n for n in sys.modules if n.split(".")[0] == "xtmr_test_zoo"]:
        del sys.modules[name]


def test_package_module_factory(package):
    net = build_from_source(f"{package}.nets:build", (3, 8, 8), 4, seed=1, allow_code=True)
    assert net.got == {"num_classes": 4, "in_channels": 3} and _outputs(net, (3, 8, 8)).shape == (4, 4)
    again = build_from_source(f"{package}.nets:build", (3, 8, 8), 4, seed=1, allow_code=True)
    assert same_state(again, state_bytes(net))


# --- user code only when allowed ----------------------------------------------------------------------


def test_user_file_is_refused_unless_allowed_and_not_run(tmp_path):
    marker = tmp_path / "imported"
    path = tmp_path / "evil.py"
    path.write_text(_writes_marker(marker) + NETS)
    ref = f"{path}:build"
    one_line_error(lambda: build_from_source(ref, IN_SHAPE, 3), "user code", "command line")
    splits = _splits()
    one_line_error(lambda: load_from_source(ref, splits), "user code")
    assert not marker.exists()
    build_from_source(ref, IN_SHAPE, 3, allow_code=True)
    assert marker.exists()  # the marker works: allowed, the file does run


def test_user_package_is_refused_unless_allowed_and_not_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "xtmr_test_evil").mkdir()
    (tmp_path / "xtmr_test_evil" / "__init__.py").write_text(_writes_marker(marker) + NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    one_line_error(lambda: build_from_source("xtmr_test_evil:build", IN_SHAPE, 3), "user code")
    assert not marker.exists() and "xtmr_test_evil" not in sys.modules


# --- errors ---------------------------------------------------------------------------------------------


def test_unknown_torchvision_architecture():
    one_line_error(
        lambda: build_from_source("torchvision:resnet999", (3, 32, 32), 3), "no classification architecture 'resnet999'"
    )


def test_missing_model_file(tmp_path):
    one_line_error(
        lambda: build_from_source(f"{tmp_path}/absent.py:build", IN_SHAPE, 3, allow_code=True), "absent.py not found"
    )


def test_missing_module(tmp_path):
    one_line_error(
        lambda: build_from_source("xtmr_no_such_pkg.nets:build", IN_SHAPE, 3, allow_code=True),
        "cannot import module xtmr_no_such_pkg.nets",
    )


def test_file_that_does_not_import(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def build(:\n")
    one_line_error(lambda: build_from_source(f"{path}:build", IN_SHAPE, 3, allow_code=True), "SyntaxError")


@pytest.mark.parametrize(
    "factory, fragments",
    [
        ("absent", ["has no function absent"]),
        ("NOT_CALLABLE", ["has no function NOT_CALLABLE"]),
        ("boom", [":boom failed", "RuntimeError: boom while building"]),
        ("not_a_module", ["returned a int, not a torch.nn.Module"]),
        ("five_outputs", ["gives outputs of shape (2, 5), not (batch, 3) logits"]),
        ("flat_ten", ["does not take 1×8×8 images", "--image-size"]),
    ],
)
def test_factory_failures(nets, factory, fragments):
    one_line_error(lambda: build_from_source(f"{nets}:{factory}", IN_SHAPE, 3, allow_code=True), *fragments)


# --- load_from_source ---------------------------------------------------------------------------------


def test_state_dict_round_trips(nets, tmp_path):
    ref = f"{nets}:build"
    trained = build_from_source(ref, IN_SHAPE, 3, seed=1, allow_code=True)
    path = tmp_path / "w.pt"
    torch.save(trained.state_dict(), path)
    net, meta = load_from_source(ref, _splits(), path, seed=7, allow_code=True)
    assert torch.equal(_outputs(net), _outputs(trained)) and not net.training
    assert meta["weights"] == "file" and meta["file"] == str(path)
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["model"] == ref and meta["in_shape"] == [1, 8, 8] and meta["num_classes"] == 3
    assert meta["dataset"] == "imagefolder:synthetic" and "seed" not in meta


def test_state_dict_bytes_round_trip_as_an_upload(nets, tmp_path):
    ref = f"{nets}:build"
    trained = build_from_source(ref, IN_SHAPE, 3, seed=1, allow_code=True)
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    data = (tmp_path / "w.pt").read_bytes()
    net, meta = load_from_source(ref, _splits(), data, seed=7, allow_code=True)
    assert torch.equal(_outputs(net), _outputs(trained))
    assert meta["weights"] == "file" and meta["file"] == "uploaded file"
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()


def test_state_dict_of_another_shape_is_refused(nets, tmp_path):
    ref = f"{nets}:build"
    path = tmp_path / "four.pt"
    torch.save(build_from_source(ref, IN_SHAPE, 4, allow_code=True).state_dict(), path)
    one_line_error(
        lambda: load_from_source(ref, _splits(), path, allow_code=True), "does not fit", "fc.weight", "4×16", "3×16"
    )


def test_no_checkpoint_means_seeded_random_weights(nets):
    ref = f"{nets}:build"
    net, meta = load_from_source(ref, _splits(), seed=5, allow_code=True)
    assert meta["weights"] == "random" and meta["seed"] == 5 and "file" not in meta
    assert same_state(net, state_bytes(build_from_source(ref, IN_SHAPE, 3, seed=5, allow_code=True)))


def test_more_outputs_than_classes_are_allowed(nets):
    net, meta = load_from_source(f"{nets}:build", _splits(), num_classes=5, allow_code=True)
    assert meta["num_classes"] == 5 and _outputs(net).shape == (4, 5)


def test_fewer_outputs_than_classes_are_refused(nets):
    one_line_error(
        lambda: load_from_source(f"{nets}:build", _splits(), num_classes=2, allow_code=True),
        "--num-classes 2 is fewer than the 3 classes",
    )


class _Payload:
    """Unpickling this would call os.makedirs(marker): harmless, but visible."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_pickled_code_checkpoint_is_refused_without_running_it(nets, tmp_path):
    marker = tmp_path / "payload_ran"
    torch.save({"conv.weight": _Payload(str(marker))}, tmp_path / "evil.pt")
    one_line_error(
        lambda: load_from_source(f"{nets}:build", _splits(), tmp_path / "evil.pt", allow_code=True),
        "pickled code",
        "refused",
    )
    assert not marker.exists()


def test_builtin_model_on_an_image_folder_is_seeded():
    # a zoo model on data that is not a built-in dataset: built for the data's shape, no shipped checkpoint
    torch.manual_seed(100)
    net, meta = load_from_source("mlp", _splits(), seed=2)
    assert meta["weights"] == "random" and meta["num_classes"] == 3 and _outputs(net).shape == (4, 3)
    torch.manual_seed(200)  # only the seed argument counts
    again, _ = load_from_source("mlp", _splits(), seed=2)
    assert same_state(again, state_bytes(net))
    other, _ = load_from_source("mlp", _splits(), seed=3)
    assert not same_state(other, state_bytes(net))


# --- the command line ---------------------------------------------------------------------------------


def _colour_folder(root, per_class=12, size=32):
    """Three classes of distinct colours (red, green, blue) with a little seeded noise."""
    rng = np.random.default_rng(0)
    for k, c in enumerate(("red", "green", "blue")):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            a = rng.integers(0, 40, (size, size, 3))
            a[..., k] += 200
            Image.fromarray(a.astype(np.uint8), "RGB").save(root / c / f"{i:02d}.png")
    return root


def test_cli_missing_image_folder_is_one_line(capsys):
    assert main(["evaluate", "--dataset", "imagefolder:/nonexistent/photos"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: image folder /nonexistent/photos not found") and len(err.splitlines()) == 1


def test_cli_missing_image_folder_is_refused_without_torch():
    probe = (
        "import sys\nsys.modules['torch'] = sys.modules['numpy'] = None  # importing either now fails\n"
        "from xtmr_core.cli import main\nsys.exit(main(sys.argv[1:]))"
    )
    argv = ["evaluate", "--dataset", "imagefolder:/nonexistent/photos"]
    proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: image folder"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_trains_and_evaluates_resnet18_on_an_image_folder(tmp_path, capsys):
    root = _colour_folder(tmp_path / "photos")
    out = tmp_path / "r18.pt"
    source = ["--model", "torchvision:resnet18", "--dataset", f"imagefolder:{root}"]
    assert main(["train", *source, "--epochs", "1", "--out", str(out)]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert entry["model"] == "torchvision:resnet18" and entry["num_classes"] == 3 and out.is_file()
    argv = ["evaluate", *source, "--checkpoint", str(out), "--protect", "magnitude", "--budget", "1"]
    assert main([*argv, "--ber", "1e-3", "--trials", "2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == "torchvision:resnet18" and d["dataset"] == f"imagefolder:{root}"
    assert d["weights"] == "file" and d["checkpoint"] == str(out) and d["trials"] == 2
    assert d["data"]["split"] == {"kind": "stratified", "test_fraction": 0.2, "seed": 0, "train": 30, "test": 6}
    assert d["data"]["classes"] == ["blue", "green", "red"]


@pytest.mark.slow
def test_cli_names_a_layer_lrp_cannot_explain_but_other_scorers_run(nets, tmp_path, capsys):
    root = _colour_folder(tmp_path / "photos", per_class=5, size=8)
    ref = f"{nets}:lrn"
    weights = tmp_path / "lrn.pt"  # a checkpoint, so no random-weights warning shares stderr
    torch.save(build_from_source(ref, (3, 8, 8), 3, allow_code=True).state_dict(), weights)
    base = ["evaluate", "--model", ref, "--dataset", f"imagefolder:{root}", "--image-size", "8"]
    base += ["--checkpoint", str(weights), "--budget", "1", "--ber", "1e-3", "--trials", "2", "--json"]
    assert main([*base, "--protect", "lrp"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "LocalResponseNorm" in err and len(err.splitlines()) == 1, err
    assert main([*base, "--protect", "magnitude"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == ref and d["weights"] == "file" and d["protect"] == "magnitude"


def test_cli_runs_a_model_without_weights_with_a_warning(nets, tmp_path, capsys):
    # no --checkpoint, LRP-protected: the seeded random weights run (their reference images taken as they come,
    # almost none being classified correctly) and stderr says what they mean
    root = _colour_folder(tmp_path / "photos", per_class=5, size=8)
    argv = ["evaluate", "--model", f"{nets}:build", "--dataset", f"imagefolder:{root}", "--image-size", "8"]
    assert main([*argv, "--protect", "lrp", "--budget", "1", "--ber", "1e-3", "--trials", "2", "--json"]) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    assert d["weights"] == "random" and d["protect"] == "lrp" and d["trials"] == 2
    assert "random weights (seed 0)" in captured.err and "Traceback" not in captured.err
