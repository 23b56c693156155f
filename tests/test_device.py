"""Device choice, true fp32 on every device, and the evaluation batch size per device."""

import pytest
import torch

from xtmr_core.device import CPU_BATCH, eval_batch_size, faithful_fp32, resolve_device
from xtmr_core.errors import XtmrError
from xtmr_core.evaluation import predict
from xtmr_core.injection import FaultInjector


def test_low_mantissa_flip_changes_the_logits_on_the_device(tiny_model, tiny_data, device):
    """A flip of bit 8 of a conv weight (below TF32's 10-bit mantissa) must reach the logits."""
    x = tiny_data[0].to(device)
    model = tiny_model.to(device)
    faithful_fp32()
    with torch.no_grad():
        clean = model(x)
        w = model.conv.weight.data.view(-1)
        i = int(w.abs().argmax())
        bits = w.view(torch.int32)
        bits[i] ^= 1 << 8
        faulty = model(x)
        bits[i] ^= 1 << 8
    assert not torch.equal(clean, faulty)
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32


def test_evaluation_turns_tf32_off(tiny_model, tiny_data, device):
    torch.backends.cudnn.allow_tf32 = True
    try:
        predict(tiny_model.to(device), tiny_data[0].to(device))
        assert not torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = True
        FaultInjector(tiny_model, "fp32", device=device)
        assert not torch.backends.cudnn.allow_tf32
    finally:
        faithful_fp32()


def test_batch_size_per_device_and_override(monkeypatch):
    monkeypatch.delenv("XTMR_EVAL_BATCH", raising=False)
    assert eval_batch_size("cpu", 1000) == CPU_BATCH == 250
    assert eval_batch_size("cuda", 1000) == 1000  # a GPU takes the whole split in one pass
    assert eval_batch_size("cuda", 1000, 64) == eval_batch_size("cpu", 1000, 64) == 64
    monkeypatch.setenv("XTMR_EVAL_BATCH", "100")
    assert eval_batch_size("cpu", 1000) == eval_batch_size("cuda", 1000) == 100
    with pytest.raises(XtmrError):
        eval_batch_size("cpu", 1000, 0)
    monkeypatch.setenv("XTMR_EVAL_BATCH", "many")
    with pytest.raises(XtmrError, match="XTMR_EVAL_BATCH"):
        eval_batch_size("cpu", 1000)


def test_batch_size_does_not_change_predictions(tiny_model, tiny_data, device):
    model, x = tiny_model.to(device), tiny_data[0].to(device)
    assert torch.equal(predict(model, x, 7), predict(model, x))


def test_resolve_device(device):
    assert resolve_device(device.type) == device
    assert resolve_device(None).type in ("cpu", "cuda")
    with pytest.raises(XtmrError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(XtmrError, match="no CUDA GPU"):
            resolve_device("cuda")
