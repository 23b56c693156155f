"""Single-bit flips on the shipped default, against struct, with the clean model untouched."""

import struct

import pytest

from xtmr_core.errors import XtmrError
from xtmr_core.experiment import Experiment
from xtmr_core.sensitivity import bit_sensitivity, flip_one


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


def test_bit_sensitivity_has_one_row_per_bit(exp):
    table = bit_sensitivity(exp, "int8", trials=3)
    assert table["bit"].tolist() == list(range(8)) and (table["trials"] == 3).all()
    assert (table["mean_accuracy"] <= table["clean_accuracy"] + 0.01).all()
