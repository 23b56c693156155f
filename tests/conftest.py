"""Shared fixtures: a tiny CNN and data, so engine tests need no dataset or checkpoint."""

import os

# No test writes into the user's results store (~/.cache/xtmr): the store is off unless a test opts in
# (tests/test_store.py points XTMR_STORE at a file under tmp_path). Subprocesses inherit it.
os.environ["XTMR_STORE"] = "none"

import pytest  # noqa: E402
import torch
from torch import nn

from xtmr_core.device import available_devices
from xtmr_core.errors import XtmrError

#: The devices tests that touch a device run on: the CPU always, CUDA too where a GPU is present, so the
#: suite exercises CUDA on a GPU machine and skips nothing on a CPU one.
DEVICES_PRESENT = available_devices()

# One torch thread per test process: on a loaded 2-core machine torch's second thread waits for a core and burns
# it (test_lrp_rules' torchvision subset: 97.5 s with 2 threads at load 3.2, 18.2 s with 1; idle 9.5 s vs 9.1 s).
# Tests compare results computed in one process (pools.npz was made with one thread too), so no check depends on it.
torch.set_num_threads(1)


class TinyCNN(nn.Module):
    """conv(1→2, 3×3) → relu → linear(32→3): two faultable layers, 18 + 96 weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.relu(self.conv(x)), 1))


@pytest.fixture
def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture
def tiny_data(tiny_model):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(200, 1, 6, 6, generator=g)
    with torch.no_grad():
        y = tiny_model(x).argmax(1)
    y[:20] = (y[:20] + 1) % 3  # a few wrong labels, so clean accuracy is 0.9
    return x, y


@pytest.fixture(params=DEVICES_PRESENT)
def device(request) -> torch.device:
    """Each device present, in turn (parametrises every test that asks for it)."""
    return torch.device(request.param)


def state_bytes(model: nn.Module) -> dict:
    """An exact copy of every tensor of a model, for bit-identity checks."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(model: nn.Module, saved: dict) -> bool:
    """Whether ``model``'s tensors are bit-identical to ``saved``."""
    now = model.state_dict()
    return now.keys() == saved.keys() and all(
        torch.equal(
            now[k].view(torch.uint8) if now[k].dtype.is_floating_point else now[k],
            saved[k].view(torch.uint8) if saved[k].dtype.is_floating_point else saved[k],
        )
        for k in now
    )


def metric(at, label_start: str) -> str:
    """The value of the first ``st.metric`` of an AppTest run whose label starts with ``label_start``."""
    for m in at.metric:
        if m.label.startswith(label_start):
            return m.value
    raise AssertionError(f"no metric {label_start!r} among {[m.label for m in at.metric]}")


def one_line_error(call, *fragments: str) -> str:
    """Run ``call``, which must raise ``XtmrError`` with a one-line message (no traceback) naming every fragment."""
    with pytest.raises(XtmrError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message
