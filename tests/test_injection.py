"""Trials against a slow reference: Python integers, struct and a per-bit vote."""

import struct

import numpy as np
import pytest
import torch
from conftest import same_state, state_bytes

from xtmr_core.faults import FaultModel, FaultSet
from xtmr_core.injection import FaultInjector
from xtmr_core.memory import flat_weights
from xtmr_core.protection import make_plan


def _decode_ref(word: int, fmt: str, scale: float) -> float:
    if fmt == "fp32":
        return struct.unpack("<f", struct.pack("<I", word))[0]
    if fmt == "fp16":
        return struct.unpack("<e", struct.pack("<H", word))[0]
    if fmt == "bf16":
        return struct.unpack("<f", struct.pack("<I", word << 16))[0]
    return float(np.float32(word - 256 if word >= 128 else word) * np.float32(scale))


def _read_ref(inj: FaultInjector, faults: FaultSet, plan, mode: str) -> dict[int, float]:
    """Per weight: build each copy bit by bit, vote by counting, decode with struct."""
    nb = inj.stored.bits
    out = {}
    for w in sorted(set(faults.weight.tolist())):
        clean = int(inj.stored.words[w]) & ((1 << nb) - 1)
        copies = []
        for c in range(3):
            word = clean
            for fw, fb, fc in zip(faults.weight, faults.bit, faults.copy):
                if fw == w and fc == c:
                    if mode == "flip":
                        word ^= 1 << int(fb)
                    elif mode == "stuck0":
                        word &= ~(1 << int(fb))
                    else:
                        word |= 1 << int(fb)
            copies.append(word)
        protected = plan.bits if (plan.weights is None or w in set(plan.weights.tolist())) else ()
        read = 0
        for b in range(nb):
            bits = [(cw >> b) & 1 for cw in copies]
            read |= (int(sum(bits) >= 2) if b in protected else bits[0]) << b
        scale = float(inj.stored.scale[w]) if inj.stored.scale is not None else 1.0
        value = _decode_ref(read, inj.format, scale)
        if plan.guard:
            layer = int(inj.layout.layer_of(np.array([w]))[0])
            vals = inj.clean_values[inj.layout.offsets[layer] : inj.layout.offsets[layer + 1]]
            if not np.isfinite(value) or value < vals.min() or value > vals.max():
                value = 0.0
        out[w] = value
    return out


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16", "int8"])
@pytest.mark.parametrize("mode", ["flip", "stuck0", "stuck1"])
@pytest.mark.parametrize("protect", ["none", "lrp", "full", "bits", "range"])
def test_read_matches_the_slow_reference(tiny_model, fmt, mode, protect):
    inj = FaultInjector(tiny_model, fmt, device=torch.device("cpu"))
    scores = np.abs(flat_weights(tiny_model))
    bits = (inj.stored.bits - 1, inj.stored.bits - 2)
    plan = make_plan(protect, inj.stored.bits, budget=20, scores=scores, bits=bits)
    for seed in range(3):
        faults = inj.sample(plan, FaultModel(0.08, mode), np.random.default_rng(seed))
        assert faults.count > 0
        index, values = inj.read(faults, plan, mode)
        ref = _read_ref(inj, faults, plan, mode)
        assert index.tolist() == sorted(ref)
        for i, v in zip(index.tolist(), values.tolist()):
            assert v == ref[i] or (np.isnan(v) and np.isnan(ref[i])), (i, v, ref[i])


def test_tmr_bit_error_rate_matches_3p2_minus_2p3(tiny_model):
    inj = FaultInjector(tiny_model, "fp32", device=torch.device("cpu"))
    plan = make_plan("full", 32)
    p, wrong, total = 0.05, 0, 0
    rng = np.random.default_rng(0)
    for _ in range(300):
        index, values = inj.read(inj.sample(plan, FaultModel(p), rng), plan)
        diff = values.view(np.uint32) ^ inj.clean_values[index].view(np.uint32)
        wrong += int(np.unpackbits(diff.view(np.uint8)).sum())
        total += inj.n_weights * 32
    expected = 3 * p**2 - 2 * p**3
    assert wrong / total == pytest.approx(expected, rel=0.08)


def test_worker_shares_one_flat_buffer_and_writes_are_undone(tiny_model, tiny_data):
    x, _ = tiny_data
    saved = state_bytes(tiny_model)
    inj = FaultInjector(tiny_model, "fp32", device=torch.device("cpu"))
    with torch.no_grad():
        clean_out = inj.worker(x)
        assert torch.equal(clean_out, tiny_model(x))
        with inj.applied(np.array([0, 20]), np.array([5.0, -7.0], dtype=np.float32)) as worker:
            assert worker.conv.weight.view(-1)[0].item() == 5.0
            assert worker.fc.weight.view(-1)[2].item() == -7.0
            assert not torch.equal(worker(x), clean_out)
        assert torch.equal(inj.worker(x), clean_out)
    assert inj.is_clean() and same_state(tiny_model, saved)


def test_a_trial_that_raises_still_restores_the_worker_and_never_touches_the_clean_model(tiny_model):
    saved = state_bytes(tiny_model)
    inj = FaultInjector(tiny_model, "int8", device=torch.device("cpu"))
    with pytest.raises(RuntimeError):
        with inj.applied(np.arange(10), np.full(10, 1e30, dtype=np.float32)):
            raise RuntimeError("boom")
    assert inj.is_clean() and same_state(tiny_model, saved)


def test_range_guard_zeroes_out_of_range_and_non_finite_reads(tiny_model):
    inj = FaultInjector(tiny_model, "fp32", device=torch.device("cpu"))
    plan = make_plan("range", 32)
    faults = FaultSet(np.array([0, 0, 1]), np.array([30, 29, 30]), np.zeros(3, dtype=np.int8))
    index, values = inj.read(faults, plan)
    assert values.tolist() == [0.0, 0.0]
    unguarded = inj.read(faults, make_plan("none", 32))[1]
    assert np.all(~np.isfinite(unguarded) | (np.abs(unguarded) > 1e10))


def test_faults_limited_to_chosen_bits_only_hit_those_bits(tiny_model):
    inj = FaultInjector(tiny_model, "fp32", device=torch.device("cpu"))
    plan = make_plan("lrp", 32, budget=50, scores=np.abs(inj.clean_values))
    faults = inj.sample(plan, FaultModel(0.5, bits=(30, 31)), np.random.default_rng(0))
    assert set(faults.bit.tolist()) == {30, 31}
    assert set(faults.copy.tolist()) == {0, 1, 2}
    prot = set(plan.weights.tolist())
    assert all(w in prot for w, c in zip(faults.weight, faults.copy) if c > 0)
