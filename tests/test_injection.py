"""Trials against a slow reference: Python integers, struct and a per-bit vote."""

import struct

import numpy as np
import pytest
import torch
from conftest import same_state, state_bytes
from test_ecc import ref_decode, ref_encode

from xtmr_core import ecc
from xtmr_core.damage import damage_plan, delta_harm
from xtmr_core.faults import CHECK_COPY, FaultModel, FaultSet
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
        if plan.masks is not None:
            mask = dict(zip(plan.weights.tolist(), plan.masks.tolist())).get(w, 0)
            protected = [b for b in range(nb) if mask >> b & 1]
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
@pytest.mark.parametrize("protect", ["none", "lrp", "full", "bits", "range", "damage", "lrp+range"])
def test_read_matches_the_slow_reference(tiny_model, fmt, mode, protect):
    inj = FaultInjector(tiny_model, fmt, device=torch.device("cpu"))
    scores = np.abs(flat_weights(tiny_model))
    bits = (inj.stored.bits - 1, inj.stored.bits - 2)
    if protect == "damage":
        plan = damage_plan(scores, delta_harm(inj.stored), 40, inj.stored.bits)
        assert len({int(m) for m in plan.masks}) > 1  # really a different bit set per weight
    else:
        name, _, guard = protect.partition("+")
        plan = make_plan(name, inj.stored.bits, budget=20, scores=scores, bits=bits, guard=bool(guard))
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


def _read_ecc_ref(inj: FaultInjector, faults: FaultSet, mode: str, on_double: str) -> tuple[dict[int, float], set]:
    """Per reached 64-bit word: pack bit by bit, encode and decode with the textbook code, unpack."""
    nb, n = inj.stored.bits, inj.n_weights
    m = 64 // nb
    out, statuses = {}, set()
    for cw in sorted({int(w) // m for w in faults.weight}):
        members = [w for w in range(cw * m, cw * m + m) if w < n]
        data = 0
        for j, w in enumerate(members):
            data |= (int(inj.stored.words[w]) & ((1 << nb) - 1)) << (j * nb)
        code = ref_encode(data)
        positions = [p for p in range(1, 72) if p & (p - 1)]
        where = {("d", i): positions[i] for i in range(64)} | {("c", j): 1 << j for j in range(7)} | {("c", 7): 0}
        for fw, fb, fc in zip(faults.weight.tolist(), faults.bit.tolist(), faults.copy.tolist()):
            if fw // m != cw:
                continue
            pos = where[("c", fb)] if fc == CHECK_COPY else where[("d", (fw % m) * nb + fb)]
            code[pos] = {"flip": code[pos] ^ 1, "stuck0": 0, "stuck1": 1}[mode]
        read, status = ref_decode(code)
        statuses.add(status)
        for j, w in enumerate(members):
            word = (read >> (j * nb)) & ((1 << nb) - 1)
            scale = float(inj.stored.scale[w]) if inj.stored.scale is not None else 1.0
            out[w] = 0.0 if status == ecc.DETECTED and on_double == "zero" else _decode_ref(word, inj.format, scale)
    return out, statuses


@pytest.mark.parametrize("fmt", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("mode", ["flip", "stuck1"])
@pytest.mark.parametrize("on_double", ["zero", "read"])
def test_ecc_read_matches_the_textbook_decoder(tiny_model, fmt, mode, on_double):
    inj = FaultInjector(tiny_model, fmt, device=torch.device("cpu"))
    assert inj.n_weights % (64 // inj.stored.bits) or fmt == "fp32"  # bf16 and int8: a partial last word
    plan = make_plan("ecc", inj.stored.bits, on_double=on_double)
    statuses = set()
    for seed in range(4):
        faults = inj.sample(plan, FaultModel(0.02, mode), np.random.default_rng(seed))
        assert (faults.copy == CHECK_COPY).any() and (faults.copy == 0).any()
        index, values = inj.read(faults, plan, mode)
        ref, seen = _read_ecc_ref(inj, faults, mode, on_double)
        statuses |= seen
        assert index.tolist() == sorted(ref)
        for i, v in zip(index.tolist(), values.tolist()):
            assert v == ref[i] or (np.isnan(v) and np.isnan(ref[i])), (i, v, ref[i])
    assert {ecc.CORRECTED, ecc.DETECTED} <= statuses  # both decoder paths were exercised


def test_ecc_corrects_every_single_fault_and_zeroes_detected_words(tiny_model):
    inj = FaultInjector(tiny_model, "fp32", device=torch.device("cpu"))
    plan = make_plan("ecc", 32)
    one = FaultSet(np.array([5]), np.array([30]), np.zeros(1, dtype=np.int8))
    index, values = inj.read(one, plan)
    assert index.tolist() == [4, 5] and np.array_equal(values, inj.clean_values[[4, 5]])
    check = FaultSet(np.array([4]), np.array([7]), np.array([CHECK_COPY], dtype=np.int8))
    assert np.array_equal(inj.read(check, plan)[1], inj.clean_values[[4, 5]])
    two = FaultSet(np.array([5, 4]), np.array([30, 0]), np.zeros(2, dtype=np.int8))
    assert inj.read(two, plan)[1].tolist() == [0.0, 0.0]
    as_read = inj.read(two, make_plan("ecc", 32, on_double="read"))[1]
    assert as_read[0] != inj.clean_values[4] and abs(as_read[1]) > 1e30


def test_check_bits_are_a_region_only_for_ecc_and_only_when_every_position_can_fail(tiny_model):
    inj = FaultInjector(tiny_model, "int8", device=torch.device("cpu"))
    plan = make_plan("ecc", 8)
    check = inj.regions(plan, FaultModel(0.1))[1]
    assert check.copy == CHECK_COPY and check.size == 8 * ecc.n_code_words(inj.n_weights, 8)
    assert check.weights.tolist() == list(range(0, inj.n_weights, 8))
    assert len(inj.regions(plan, FaultModel(0.1, bits=(7,)))) == 1
    assert len(inj.regions(make_plan("none", 8), FaultModel(0.1))) == 1


@pytest.mark.parametrize("fmt", ["fp32", "int8"])
def test_every_plan_sees_the_same_primary_faults(tiny_model, fmt):
    inj = FaultInjector(tiny_model, fmt, device=torch.device("cpu"))
    scores = np.abs(inj.clean_values).astype(np.float64)
    nb = inj.stored.bits
    plans = [make_plan(p, nb, budget=10, scores=scores, bits=(nb - 1,)) for p in ("none", "lrp", "full", "bits")]
    plans += [make_plan("ecc", nb), make_plan("lrp", nb, budget=5, scores=scores, guard=True)]
    plans.append(damage_plan(scores, delta_harm(inj.stored), 10, nb))
    primaries = []
    for plan in plans:
        f = inj.sample(plan, FaultModel(0.05), np.random.default_rng([9, 2]))
        first = f.copy == 0
        primaries.append((f.weight[first].tolist(), f.bit[first].tolist()))
    assert all(p == primaries[0] for p in primaries) and primaries[0][0]


def test_damage_copies_fail_at_the_tmr_rate_only_on_the_protected_pairs(tiny_model):
    inj = FaultInjector(tiny_model, "int8", device=torch.device("cpu"))
    plan = damage_plan(np.abs(inj.clean_values).astype(np.float64), delta_harm(inj.stored), 50, 8)
    pairs = set(zip(*(a.tolist() for a in plan.pairs)))
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(200):
        f = inj.sample(plan, FaultModel(0.1), rng)
        extra = f.copy > 0
        assert set(zip(f.weight[extra].tolist(), f.bit[extra].tolist())) <= pairs
        counts.append(int(extra.sum()))
    n = 2 * len(pairs)
    assert np.mean(counts) == pytest.approx(0.1 * n, rel=0.05)
