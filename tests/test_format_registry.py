"""The format registry: bit roles and deciding bits checked against what the bits of a stored word do."""

import struct

import numpy as np
import pytest

from xtmr_core import vocabulary
from xtmr_core.errors import XtmrError
from xtmr_core.format_registry import FORMAT_INFO, FormatInfo, format_info, register_format


def _flip(value: float, fmt: str, bit: int) -> float:
    """``value`` stored in ``fmt`` with ``bit`` flipped, read back: by struct and numpy, not by ``formats``."""
    if fmt == "fp32":
        (word,) = struct.unpack("<I", struct.pack("<f", value))
        return struct.unpack("<f", struct.pack("<I", word ^ (1 << bit)))[0]
    if fmt == "bf16":  # the top half of an fp32 (1.5 and 0.1875 are exact in it)
        (word,) = struct.unpack("<I", struct.pack("<f", value))
        return struct.unpack("<f", struct.pack("<I", word ^ (1 << (bit + 16))))[0]
    if fmt == "fp16":
        word = np.array([value], dtype=np.float16).view(np.uint16)[0]
        return float(np.array([word ^ (1 << bit)], dtype=np.uint16).view(np.float16)[0])
    assert fmt == "int8"
    q = int(value) & 0xFF ^ (1 << bit)
    return float(q - 256 if q >= 128 else q)


def _role(fmt: str, bit: int) -> str:
    """What flipping ``bit`` of a stored 1.5 (int8: 1) does: negates it (sign), scales it by a power of two
    (exponent), moves it within [1, 2) (mantissa), or adds a power of two (value)."""
    if fmt == "int8":
        return "sign" if _flip(1, fmt, bit) < 0 else "value"
    v = _flip(1.5, fmt, bit)
    if v == -1.5:
        return "sign"
    if 1.0 <= v < 2.0:
        return "mantissa"
    ratio = v / 1.5
    assert np.isinf(v) or np.isnan(v) or ratio == 2.0 ** round(np.log2(ratio))
    return "exponent"


@pytest.mark.parametrize("fmt", list(FORMAT_INFO))
def test_bit_roles_are_what_the_bits_do(fmt):
    info = format_info(fmt)
    assert info.bit_roles() == [_role(fmt, b) for b in range(info.bits)]
    assert info.mantissa_bits == info.bit_roles().count("mantissa")


@pytest.mark.parametrize("fmt", list(FORMAT_INFO))
def test_deciding_bit_is_the_worst_single_flip(fmt):
    info = format_info(fmt)
    small = 0.1875 if info.is_float else 3  # a typical weight, well inside the range

    def blow_up(b):
        v = abs(_flip(small, fmt, b))
        return np.inf if np.isnan(v) else v

    assert info.deciding_bits == (int(np.argmax([blow_up(b) for b in range(info.bits)])),)
    assert info.top_bit == info.deciding_bits[0]


def test_layout_of_the_builtin_formats():
    # the values strata.DECIDING_BITS and ui._TOP_EXPONENT_BIT held before the registry
    assert {f: i.deciding_bits for f, i in FORMAT_INFO.items()} == {
        "fp32": (30,),
        "fp16": (14,),
        "bf16": (14,),
        "int8": (7,),
    }
    assert {f: i.top_exponent_bit for f, i in FORMAT_INFO.items()} == {"fp32": 30, "fp16": 14, "bf16": 14, "int8": None}
    assert format_info("fp32").sign_exponent_bits == tuple(range(23, 32))
    assert format_info("int8").sign_exponent_bits == (6, 7)
    assert [i.is_float for i in FORMAT_INFO.values()] == [True, True, True, False]


def test_registry_agrees_with_vocabulary():
    assert vocabulary.FORMATS == tuple(FORMAT_INFO)
    assert vocabulary.WORD_BITS == {f: i.bits for f, i in FORMAT_INFO.items()}
    assert all(i.name == f and i.label for f, i in FORMAT_INFO.items())


def test_unknown_and_malformed_formats():
    with pytest.raises(XtmrError, match="choose one of fp32, fp16, bf16, int8"):
        format_info("fp8")
    with pytest.raises(XtmrError, match="sign is the top bit"):
        FormatInfo("odd", 8, 6, None)
    with pytest.raises(XtmrError, match="exponent"):
        FormatInfo("odd", 8, 7, (0, 7))


def test_a_registered_format_is_checked_live():
    fp8 = FormatInfo("fp8e4m3", 8, 7, (3, 6), "8-bit float")
    register_format(fp8)
    try:
        assert vocabulary.check_format("fp8e4m3") == "fp8e4m3"
        assert vocabulary.check_bits((6,), "fp8e4m3") == (6,)
        with pytest.raises(XtmrError, match="outside 0..7"):
            vocabulary.check_bits((8,), "fp8e4m3")
        assert fp8.bit_roles() == ["mantissa"] * 3 + ["exponent"] * 4 + ["sign"]
    finally:
        del FORMAT_INFO["fp8e4m3"]
    with pytest.raises(XtmrError):
        vocabulary.check_format("fp8e4m3")
