"""Single-bit flips on the shipped default, against struct, with the clean model untouched."""

import struct

import pytest
import torch
from torch import nn

from xtmr_core.data import load_dataset
from xtmr_core.errors import XtmrError
from xtmr_core.experiment import Experiment
from xtmr_core.sensitivity import bit_sensitivity, flip_one, trial_predictions, word_value
from xtmr_core.spec import CampaignSpec


@pytest.fixture(scope="module")
def exp():
    return Experiment("lenet5", "mnist5k")


def test_flip_one_matches_struct_and_leaves_the_model_alone(exp):
    before = exp.weights_checksum()
    big = int(abs(exp.injector("fp32").clean_values).argmax())
    out = flip_one(exp, big, 30, "fp32")
    (u,) = struct.unpack("<I", struct.pack("<f", out.value_before))
    assert out.value_after == struct.unpack("<f", struct.pack("<I", u ^ (1 << 30)))[0]
    assert out.bits_before == format(u, "032b")
    assert sum(a != b for a, b in zip(out.bits_before, out.bits_after)) == 1 and out.bits_after[1] != out.bits_before[1]
    assert out.role == "exponent" and out.accuracy < out.clean_accuracy
    assert exp.weights_checksum() == before and exp.injector("fp32").is_clean()
    low = flip_one(exp, big, 0, "fp32")
    assert low.role == "mantissa" and low.accuracy == low.clean_accuracy


def test_bad_weight_or_bit_is_a_clear_error(exp):
    with pytest.raises(XtmrError, match="outside"):
        flip_one(exp, exp.n_weights, 0)
    with pytest.raises(XtmrError, match="outside"):
        flip_one(exp, 0, 8, "int8")


@pytest.fixture(scope="module")
def tiny_exp():
    """A linear classifier trained in a second on scikit-learn's 8×8 digits: 640 weights, 359 test images."""
    splits = load_dataset("digits")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(net(splits.x_train), splits.y_train).backward()
        opt.step()
    return Experiment("mlp", "digits", net=net, meta={})


def test_high_bits_hurt_more_than_low_bits(tiny_exp):
    table = bit_sensitivity(tiny_exp, "fp32", trials=8, seed=1).set_index("bit")
    clean = float(table["clean_accuracy"].iloc[0])
    assert table.index.tolist() == list(range(32)) and (table["trials"] == 8).all() and clean > 0.9
    loss = clean - table["mean_accuracy"]
    assert loss[range(0, 16)].abs().max() < 0.01  # low mantissa bits: a flip changes nothing measurable
    assert loss[30] > 0.1 and loss[30] > 10 * loss[range(0, 23)].max()  # the top exponent bit: weights × 2^128
    assert loss[range(23, 31)].mean() > loss[range(0, 23)].mean()


def test_word_value_decodes_stored_words_as_the_injector_does(exp):
    inj = exp.injector("int8")
    w = int(abs(inj.clean_values).argmax())
    word = int(inj.stored.words[w]) & 0xFF
    assert word_value(exp, w, word, "int8") == pytest.approx(float(inj.clean_values[w]))
    # two's complement: bit 7 is worth -128, so +127 reads as -1 (times the weight's scale)
    scale = float(inj.stored.scale[w])
    assert word_value(exp, w, 0x7F, "int8") == pytest.approx(127 * scale)
    assert word_value(exp, w, 0x7F ^ 0x80, "int8") == pytest.approx(-1 * scale)
    (u,) = struct.unpack("<I", struct.pack("<f", 0.5))
    assert word_value(exp, 0, u | (1 << 30), "fp32") == struct.unpack("<f", struct.pack("<I", u | (1 << 30)))[0]


def test_trial_predictions_reproduce_the_campaign_trial(exp):
    spec = CampaignSpec("none", 0.0, 1e-4, "fp32", trials=2, seed=3)
    res = exp.evaluate(spec)
    before = exp.weights_checksum()
    for t in range(2):
        pred = trial_predictions(exp, spec, t)
        assert (pred == exp.y_test.cpu().numpy()).mean() == pytest.approx(res.accuracies[t])
    assert exp.weights_checksum() == before and exp.injector("fp32").is_clean()


def test_trial_predictions_of_a_paired_points_baseline_follow_the_points_design(exp):
    """The baseline of a stratified point [none, lrp 1%] ran in that point's design (the plans decide which
    deciding faults are rare where): its trial is reproduced only when the point's campaigns are given."""
    spec = CampaignSpec("lrp", 1.0, 1e-5, "fp32", trials=8, seed=4)
    point = exp.evaluate_point([spec])
    assert point.strata is not None
    accs = [(trial_predictions(exp, spec.point, t, [spec]) == exp.y_test.cpu().numpy()).mean() for t in range(8)]
    assert accs == pytest.approx(point.results[0].accuracies)
    faults = [exp.faults_of_trial(spec.point, t, specs=[spec]).count for t in range(8)]
    assert faults == point.results[0].flips
