"""The benchmark's reference injectors really inject and restore; the table has its ratios."""

import random

import torch
from conftest import same_state, state_bytes

from xtmr_core.bench import _per_bit_mask_trial, _python_loop_trial, format_table, run_bench, time_lrp


def test_reference_injectors_restore_the_model(tiny_model, tiny_data, device):
    tiny_model.to(device)
    x = tiny_data[0].to(device)
    saved = state_bytes(tiny_model)
    _per_bit_mask_trial(tiny_model, x, 0.5, torch.Generator(device=device).manual_seed(0))
    _python_loop_trial(tiny_model, x, 0.5, random.Random(0))
    assert same_state(tiny_model, saved)


def test_reference_injectors_do_flip_bits(tiny_model, tiny_data, monkeypatch, device):
    tiny_model.to(device)
    x = tiny_data[0].to(device)
    seen = []
    import xtmr_core.bench as bench

    monkeypatch.setattr(bench, "predict", lambda model, data: seen.append(model.fc.weight.detach().clone()))
    clean = tiny_model.fc.weight.detach().clone()
    _per_bit_mask_trial(tiny_model, x, 1.0, torch.Generator(device=device).manual_seed(0))
    assert torch.equal(seen[-1].view(torch.int32), ~clean.view(torch.int32))
    _python_loop_trial(tiny_model, x, 0.999, random.Random(0))
    assert (seen[-1].view(torch.int32) != clean.view(torch.int32)).float().mean() > 0.9


def test_bench_table_has_ratios(device):
    table = run_bench(["lenet5"], [1e-4], repeats=3, reference_repeats=1, per_pass=2, device=device)
    row = table.iloc[0]
    assert row["trials/s_one"] > 0 and row["trials/s_batched"] > 0 and row["per_pass"] == 2
    assert row["trial/clean"] > 0 and row["per_bit_mask/clean"] > 0 and row["python_loop/clean"] > 0
    assert row["weights"] > 0 and row["mean_flips"] > 0
    assert "trial/clean" in format_table(table)


def test_lrp_timing_table(device):
    table = time_lrp(["lenet5"], n_ref=8, device=device)
    row = table.iloc[0]
    assert row["ref_images"] == 8 and row["layers"] == 5 and row["weights"] == 61470
    assert row["lrp_s"] > 0 and row["clean_ms"] > 0
    assert abs(row["lrp/clean"] - row["lrp_s"] / (row["clean_ms"] / 1e3)) < 1e-9
    text = format_table(table)
    assert "lrp_s" in text and "| lenet5 | 61470 | 5 | 8 |" in text
