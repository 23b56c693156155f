"""The vocabulary: one place for names and cheap checks, importable without torch."""

import subprocess
import sys

import pytest

from xtmr_core import vocabulary as v
from xtmr_core.errors import XtmrError


def test_vocabulary_and_spec_import_without_torch_or_numpy():
    code = "import sys, xtmr_core.vocabulary, xtmr_core.spec; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_word_bits_cover_every_format():
    assert set(v.WORD_BITS) == set(v.FORMATS)


@pytest.mark.parametrize(("text", "bits"), [("30", (30,)), ("23-25", (23, 24, 25)), ("7, 0,7", (0, 7))])
def test_parse_bits(text, bits):
    assert v.parse_bits(text) == bits


@pytest.mark.parametrize("text", ["", "a", "5-3", "-1", "1-", ","])
def test_parse_bits_rejects(text):
    with pytest.raises(XtmrError):
        v.parse_bits(text)


def test_checks_accept_edges_and_reject_outside():
    assert v.check_ber(0) == 0.0 and v.check_ber(1) == 1.0
    assert v.check_budget("2.5") == 2.5
    for bad in (True, float("nan"), 1.5, "x"):
        with pytest.raises(XtmrError):
            v.check_ber(bad)
    with pytest.raises(XtmrError):
        v.check_accuracy_target(1.2)
    with pytest.raises(XtmrError, match="choose one of"):
        v.check_format("fp8")
