"""Formats against slow references: struct for floats, Python integers for int8."""

import struct

import numpy as np
import pytest

from xtmr_core.errors import XtmrError
from xtmr_core.formats import bit_roles, encode, sign_exponent_bits, word_to_bits
from xtmr_core.memory import WeightLayout
from xtmr_core.vocabulary import FORMATS, WORD_BITS


def _values(n=500, seed=0):
    rng = np.random.default_rng(seed)
    v = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v[:4] = [0.0, -0.0, 1.5, -2.0]
    return v


def _flip_f32(x: float, bit: int) -> float:
    (u,) = struct.unpack("<I", struct.pack("<f", x))
    return struct.unpack("<f", struct.pack("<I", u ^ (1 << bit)))[0]


def _flip_f16(x: float, bit: int) -> float:
    (u,) = struct.unpack("<H", struct.pack("<e", x))
    return struct.unpack("<e", struct.pack("<H", u ^ (1 << bit)))[0]


def _bf16_round(x: float) -> int:
    (u,) = struct.unpack("<I", struct.pack("<f", x))
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF


def test_fp32_words_are_the_ieee_bits_and_every_flip_matches_struct():
    v = _values(64)
    s = encode(v, "fp32")
    for i, x in enumerate(v[:16]):
        assert (int(s.words[i]) & 0xFFFFFFFF) == struct.unpack("<I", struct.pack("<f", float(x)))[0]
        for bit in range(32):
            w = np.array([(int(s.words[i]) & 0xFFFFFFFF) ^ (1 << bit)], dtype=np.uint32).view(np.int32)
            got = float(s.decode(w, np.array([i]))[0])
            want = _flip_f32(float(x), bit)
            assert got == want or (np.isnan(got) and np.isnan(want))


def test_fp32_bit30_flip_multiplies_weights_below_one_by_2_to_128():
    s = encode(np.array([0.5, -0.75, 1.25], dtype=np.float32), "fp32")
    flipped = (s.words.astype(np.int64) & 0xFFFFFFFF) ^ (1 << 30)
    out = s.decode(flipped.astype(np.uint32).view(np.int32), np.arange(3))
    assert out[:2].tolist() == [0.5 * 2.0**128, -0.75 * 2.0**128]
    # 1 <= |w| < 2 has exponent 127: the flip makes it all ones, i.e. NaN (non-zero mantissa).
    assert np.isnan(out[2])


def test_fp16_matches_struct_half_including_flips():
    v = _values(32)
    s = encode(v, "fp16")
    for i, x in enumerate(v):
        (u,) = struct.unpack("<H", struct.pack("<e", float(x)))
        assert (int(s.words[i]) & 0xFFFF) == u
        assert float(s.values()[i]) == struct.unpack("<e", struct.pack("<H", u))[0]
        for bit in (0, 9, 10, 14, 15):
            w = np.array([u ^ (1 << bit)], dtype=np.uint16).view(np.int16)
            got, want = (
                float(s.decode(w, np.array([i]))[0]),
                _flip_f16(struct.unpack("<e", struct.pack("<H", u))[0], bit),
            )
            assert got == want or (np.isnan(got) and np.isnan(want))


def test_bf16_rounds_to_nearest_even_and_reads_back_as_the_top_half_of_fp32():
    v = _values(200)
    s = encode(v, "bf16")
    for i, x in enumerate(v):
        u = _bf16_round(float(x))
        assert (int(s.words[i]) & 0xFFFF) == u
        assert float(s.values()[i]) == struct.unpack("<f", struct.pack("<I", u << 16))[0]


def _layout(shapes):
    sizes = [int(np.prod(s)) for s in shapes]
    return WeightLayout(
        tuple(f"l{i}" for i in range(len(shapes))),
        tuple(shapes),
        np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
    )


@pytest.mark.parametrize("granularity", ["channel", "tensor"])
def test_int8_symmetric_quantisation_matches_a_loop_reference(granularity):
    layout = _layout([(3, 4), (2, 2, 3)])
    v = _values(layout.n_weights, seed=3)
    s = encode(v, "int8", layout, granularity)
    flat_i = 0
    for li, shape in enumerate(layout.shapes):
        block = v[layout.offsets[li] : layout.offsets[li + 1]].reshape(shape[0], -1)
        for row in range(shape[0]):
            group = block[row] if granularity == "channel" else block.reshape(-1)
            scale = np.float32(np.abs(group).max() / np.float32(127.0))
            for x in block[row]:
                q = max(-127, min(127, int(np.rint(x / scale))))
                assert int(s.words[flat_i]) == q
                assert s.scale[flat_i] == scale
                assert abs(float(s.values()[flat_i]) - float(x)) <= float(scale) / 2 + 1e-7
                flat_i += 1


def test_int8_worst_flip_is_bounded_by_128_steps():
    layout = _layout([(1, 3)])
    s = encode(np.array([0.5, -0.5, 0.1], dtype=np.float32), "int8", layout)
    for i in range(3):
        q = int(s.words[i])
        for bit in range(8):
            flipped = np.array([(q & 0xFF) ^ (1 << bit)], dtype=np.uint8).view(np.int8)
            python_twos = (q & 0xFF) ^ (1 << bit)
            python_twos = python_twos - 256 if python_twos >= 128 else python_twos
            got = float(s.decode(flipped, np.array([i]))[0])
            assert got == pytest.approx(python_twos * float(s.scale[i]))
            assert abs(python_twos - q) <= 128


def test_bit_roles_and_named_bits():
    roles = bit_roles("fp32")
    assert roles[31] == "sign" and roles[30] == roles[23] == "exponent" and roles[22] == "mantissa"
    assert bit_roles("bf16")[7] == "exponent" and bit_roles("fp16")[9] == "mantissa"
    assert bit_roles("int8")[7] == "sign"
    assert sign_exponent_bits("fp32") == tuple(range(23, 32))
    assert all(len(bit_roles(f)) == WORD_BITS[f] for f in FORMATS)
    assert word_to_bits(-1, "int8") == "11111111" and word_to_bits(1, "fp16") == "0" * 15 + "1"


def test_unknown_format_is_a_clear_error():
    with pytest.raises(XtmrError, match="unknown format"):
        encode(np.zeros(2, dtype=np.float32), "fp8")
