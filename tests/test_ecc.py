"""SEC-DED (72, 64) against a slow textbook encoder/decoder written bit by bit, and the exact word error rates."""

from math import comb

import numpy as np
import pytest

from xtmr_core import ecc

# The textbook extended Hamming code, one Python int per bit. Codeword positions 1..71: parity bits at the
# powers of two, data bits in order at the other positions; position 0: the overall parity of all 72 bits.
_POWERS = [1 << j for j in range(7)]
_DATA_POS = [p for p in range(1, 72) if p not in _POWERS]


def ref_encode(data: int) -> list[int]:
    """The 72 codeword bits (index = position) of a 64-bit data word."""
    code = [0] * 72
    for i, pos in enumerate(_DATA_POS):
        code[pos] = (data >> i) & 1
    for p in _POWERS:
        code[p] = sum(code[q] for q in range(1, 72) if q & p and q != p) % 2
    code[0] = sum(code[1:]) % 2
    return code


def ref_check_bits(code: list[int]) -> int:
    """The codeword's check bits in the engine's order: c_j (j < 7) at position 2^j, c7 at position 0."""
    return sum(code[p] << j for j, p in enumerate(_POWERS)) | (code[0] << 7)


def ref_decode(code: list[int]) -> tuple[int, int]:
    """``(data, status)`` as a SEC-DED decoder reads a (possibly faulty) codeword."""
    code = list(code)
    s = 0
    for q in range(1, 72):
        if code[q]:
            s ^= q
    odd = sum(code) % 2
    if s == 0 and not odd:
        status = ecc.OK
    elif odd and s <= 71:
        code[s] ^= 1  # s == 0: the overall parity bit itself
        status = ecc.CORRECTED
    else:
        status = ecc.DETECTED
    return sum(code[pos] << i for i, pos in enumerate(_DATA_POS)), status


def _to_fast(code: list[int]) -> tuple[int, int]:
    """A reference codeword as the engine stores it: (64-bit data, 8 check bits)."""
    return sum(code[pos] << i for i, pos in enumerate(_DATA_POS)), ref_check_bits(code)


def _fast_decode(codes: list[list[int]]) -> list[tuple[int, int]]:
    data, check = zip(*(_to_fast(c) for c in codes))
    out, status = ecc.decode(np.array(data, dtype=np.uint64), np.array(check, dtype=np.uint8))
    return [(int(d), int(s)) for d, s in zip(out, status)]


def test_encoder_matches_the_textbook_code():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 2**63, size=50, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 50, dtype=np.uint64)
    data[:2] = [0, 2**64 - 1]
    check = ecc.encode(data)
    for d, c in zip(data.tolist(), check.tolist()):
        assert c == ref_check_bits(ref_encode(d))
    assert not ecc.syndrome(data, check).any()


def test_every_single_and_double_error_decodes_as_the_textbook_decoder():
    data = int(np.random.default_rng(1).integers(0, 2**63, dtype=np.uint64)) * 2 + 1
    clean = ref_encode(data)
    patterns = [(i,) for i in range(72)] + [(i, j) for i in range(72) for j in range(i + 1, 72)]
    codes = []
    for pat in patterns:
        code = list(clean)
        for i in pat:
            code[i] ^= 1
        codes.append(code)
    fast = _fast_decode(codes)
    for pat, code, got in zip(patterns, codes, fast):
        want = ref_decode(code)
        assert got == want, pat
        if len(pat) == 1:
            assert got == (data, ecc.CORRECTED)
        else:
            assert got[1] == ecc.DETECTED


def test_random_multi_bit_errors_decode_as_the_textbook_decoder_miscorrection_included():
    rng = np.random.default_rng(2)
    codes, counts = [], []
    for _ in range(1500):
        code = ref_encode(int(rng.integers(0, 2**63, dtype=np.uint64)))
        k = int(rng.integers(3, 11))
        for i in rng.choice(72, size=k, replace=False):
            code[int(i)] ^= 1
        codes.append(code)
        counts.append(k)
    fast = _fast_decode(codes)
    assert fast == [ref_decode(c) for c in codes]
    statuses = {s for (_, s), k in zip(fast, counts) if k % 2}
    assert statuses == {ecc.CORRECTED, ecc.DETECTED}  # odd counts: some miscorrected, some flagged


def test_pack_unpack_round_trip_with_a_partial_last_word():
    rng = np.random.default_rng(3)
    for word_bits in (8, 16, 32):
        m = 64 // word_bits
        words = rng.integers(0, 1 << word_bits, size=5 * m + 1, dtype=np.int64)  # the last word holds one
        n = ecc.n_code_words(words.size, word_bits)
        assert n == 6 and ecc.weights_per_word(word_bits) == m
        data = ecc.pack(words, word_bits, np.arange(n))
        back = ecc.unpack(data, word_bits)
        assert back.ravel()[: words.size].tolist() == words.tolist()
        assert not back.ravel()[words.size :].any()  # padding is zero
        first = sum(int(words[j]) << (j * word_bits) for j in range(m))
        assert int(data[0]) == first  # the first weight in the lowest bits


def test_closed_form_rates_match_the_simple_formulas():
    for p in (1e-6, 1e-4, 1e-2):
        r = ecc.word_outcome_probabilities(p)
        assert sum(r.values()) == pytest.approx(1.0, abs=1e-12)
        assert r["ok"] == pytest.approx((1 - p) ** 72, rel=1e-12)
        assert r["corrected"] == pytest.approx(72 * p * (1 - p) ** 71, rel=1e-12)
        doubles = comb(72, 2) * p**2 * (1 - p) ** 70
        assert doubles <= r["detected"] <= doubles * (1 + 100 * p)
        assert r["miscorrected"] <= comb(72, 3) * p**3 and r["undetected"] <= comb(72, 4) * p**4


@pytest.mark.parametrize("p", [0.01, 0.04, 0.1])
def test_closed_form_rates_match_simulation(p):
    rng = np.random.default_rng(int(p * 1000))
    n = 20_000
    data = rng.integers(0, 2**63, size=n, dtype=np.uint64)
    check = ecc.encode(data)
    errors = rng.random((n, 72)) < p
    bit_values = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))
    data_err = np.bitwise_or.reduce(np.where(errors[:, :64], bit_values, np.uint64(0)), axis=1)
    check_err = (errors[:, 64:] * (1 << np.arange(8))).sum(1).astype(np.uint8)
    out, status = ecc.decode(data ^ data_err, check ^ check_err)
    k = errors.sum(1)
    sim = {
        "ok": np.mean(k == 0),
        "corrected": np.mean((k == 1) & (status == ecc.CORRECTED) & (out == data)),
        "detected": np.mean(status == ecc.DETECTED),
        "miscorrected": np.mean((k >= 2) & (status == ecc.CORRECTED)),
        "undetected": np.mean((k >= 2) & (status == ecc.OK)),
    }
    exact = ecc.word_outcome_probabilities(p)
    for key, q in exact.items():
        assert abs(sim[key] - q) <= 5 * np.sqrt(q * (1 - q) / n) + 1e-4, (key, sim[key], q)
