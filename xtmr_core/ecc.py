"""SEC-DED ECC: an extended Hamming (72, 64) code over weight memory, vectorised over many words.

Weights are packed into 64-bit data words in layout order: two fp32, four fp16/bf16 or eight int8 weights
per word, the first weight in the lowest bits. A final partial word is padded with zero data bits that are
encoded like any other but are not weight memory, so they cannot fail (every plan then faults exactly the
same primary bits). Each word has 8 check bits, stored and faulted like any other bit: 12.5% extra memory.

Code layout (the textbook extended Hamming code): codeword positions 1..71 hold the 64 data bits at the
positions that are not powers of two (data bit ``i`` at the ``i``-th such position, 3, 5, 6, 7, 9, ...) and
check bits ``c0..c6`` at positions 1, 2, 4, ..., 64; ``c7`` is the overall parity of all 72 bits. The
syndrome is 8 bits: the low 7 the XOR of the positions of the 1 bits (0 for a codeword), bit 7 the overall
parity. The decoder, like a real one:

- syndrome 0: no error seen, the data is read as stored;
- odd parity: one error assumed and corrected at the position the syndrome names (0 = ``c7``); when it names
  no position (72..127) the error is detected but not correctable;
- even parity with a non-zero syndrome: a double error, detected.

Three or more errors are decoded by the same rules: an odd count may be "corrected" at a wrong position
(miscorrection), an even count may look like a double error or, rarely, like no error at all.
"""

from __future__ import annotations

import functools

import numpy as np

#: Data and check bits of one code word.
DATA_BITS = 64
CHECK_BITS = 8
CODE_BITS = DATA_BITS + CHECK_BITS
#: Decoder outcomes (``decode``'s status).
OK, CORRECTED, DETECTED = 0, 1, 2

#: Codeword position (1..71) of each data bit: the positions that are not powers of two.
DATA_POSITIONS = np.array([p for p in range(1, 72) if p & (p - 1)], dtype=np.int64)
#: The 8-bit parity-check column of each data bit and each check bit (bit 7 = the overall parity row).
DATA_COLUMNS = (DATA_POSITIONS | 0x80).astype(np.uint8)
CHECK_COLUMNS = np.array([(1 << j) | 0x80 for j in range(7)] + [0x80], dtype=np.uint8)
# Syndrome (low 7 bits) -> data bit index to flip, -1 for a check-bit position, -2 for no position.
_FLIP = np.full(128, -2, dtype=np.int64)
_FLIP[DATA_POSITIONS] = np.arange(DATA_BITS)
_FLIP[[0] + [1 << j for j in range(7)]] = -1
# Byte tables: the XOR of the data columns of the 1 bits of byte ``k`` of a data word.
_BYTE_SYNDROME = np.zeros((8, 256), dtype=np.uint8)
for _k in range(8):
    for _v in range(256):
        _s = 0
        for _b in range(8):
            if _v >> _b & 1:
                _s ^= int(DATA_COLUMNS[8 * _k + _b])
        _BYTE_SYNDROME[_k, _v] = _s
_PARITY8 = np.array([bin(v).count("1") & 1 for v in range(256)], dtype=np.uint8)


def weights_per_word(word_bits: int) -> int:
    """How many weights of ``word_bits`` bits one 64-bit data word holds (2, 4 or 8)."""
    if DATA_BITS % word_bits:
        raise ValueError(f"a {word_bits}-bit weight does not pack into 64-bit words")
    return DATA_BITS // word_bits


def n_code_words(n_weights: int, word_bits: int) -> int:
    """Number of 64-bit data words (the last one possibly partial) that hold ``n_weights`` weights."""
    return -(-int(n_weights) // weights_per_word(word_bits))


def _data_syndrome(data: np.ndarray) -> np.ndarray:
    """The 8-bit syndrome contribution of 64-bit data words (uint64) by byte tables."""
    out = np.zeros(data.shape, dtype=np.uint8)
    for k in range(8):
        out ^= _BYTE_SYNDROME[k][((data >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.int64)]
    return out


def encode(data: np.ndarray) -> np.ndarray:
    """The 8 check bits (uint8, ``c0`` = bit 0) of each 64-bit data word (uint64)."""
    s = _data_syndrome(np.asarray(data, dtype=np.uint64))
    low = s & np.uint8(0x7F)
    # c7 makes the overall parity even: data parity (bit 7 of s) plus the parity of c0..c6.
    check: np.ndarray = low | ((((s >> np.uint8(7)) ^ _PARITY8[low]) & np.uint8(1)) << np.uint8(7))
    return check


def syndrome(data: np.ndarray, check: np.ndarray) -> np.ndarray:
    """The 8-bit syndrome of stored words (0 = a codeword); bit 7 is the overall parity."""
    check = np.asarray(check, dtype=np.uint8)
    s: np.ndarray = (
        _data_syndrome(np.asarray(data, dtype=np.uint64)) ^ (check & np.uint8(0x7F)) ^ (_PARITY8[check] << 7)
    )
    return s


def decode(data: np.ndarray, check: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode stored words as a SEC-DED decoder does.

    Args:
        data: the 64-bit data words as read (uint64).
        check: their 8 check bits as read (uint8).

    Returns:
        ``(data, status)``: the data after correction (uint64; detected words are returned as read) and the
        decoder's verdict per word, ``OK``, ``CORRECTED`` or ``DETECTED`` (int8).
    """
    data = np.asarray(data, dtype=np.uint64)
    s = syndrome(data, check)
    low = (s & np.uint8(0x7F)).astype(np.int64)
    odd = (s >> np.uint8(7)).astype(bool)
    flip = _FLIP[low]
    status = np.full(data.shape, OK, dtype=np.int8)
    status[odd] = CORRECTED
    status[(odd & (flip == -2)) | (~odd & (low != 0))] = DETECTED
    fix = (status == CORRECTED) & (flip >= 0)
    out = data.copy()
    out[fix] ^= np.left_shift(np.uint64(1), flip[fix].astype(np.uint64))
    return out, status


def pack(words: np.ndarray, word_bits: int, code_words: np.ndarray) -> np.ndarray:
    """The 64-bit data words ``code_words`` (indices) built from the stored weight words.

    Args:
        words: every weight's stored word as an unsigned bit pattern (int64, ``word_bits`` bits used).
        word_bits: bits per weight.
        code_words: indices of the data words to build.

    Returns:
        uint64 data words; weight ``j`` of a word sits in bits ``j*word_bits ..``, padding is zero.
    """
    m = weights_per_word(word_bits)
    full = np.uint64((1 << word_bits) - 1)
    out = np.zeros(len(code_words), dtype=np.uint64)
    for j in range(m):
        idx = np.asarray(code_words, dtype=np.int64) * m + j
        valid = idx < words.size
        part = words[idx[valid]].astype(np.uint64) & full
        out[valid] |= part << np.uint64(j * word_bits)
    return out


def unpack(data: np.ndarray, word_bits: int) -> np.ndarray:
    """Split 64-bit data words into their weights' words: shape ``(len(data), 64 // word_bits)``, int64."""
    m = weights_per_word(word_bits)
    full = np.uint64((1 << word_bits) - 1)
    shifts = np.arange(m, dtype=np.uint64) * np.uint64(word_bits)
    return ((np.asarray(data, dtype=np.uint64)[:, None] >> shifts[None, :]) & full).astype(np.int64)


def _outcome_of(weight: int, s: int) -> str:
    """What the decoder makes of an error pattern of ``weight`` bits with syndrome ``s``."""
    if weight == 0:
        return "ok"
    if weight == 1:
        return "corrected"
    if s == 0:
        return "undetected"
    if s & 0x80 and _FLIP[s & 0x7F] != -2:
        return "miscorrected"
    return "detected"


def word_outcome_probabilities(p: float) -> dict[str, float]:
    """Exact probability of each decoder outcome of one 72-bit word whose bits flip independently with ``p``.

    Counts the error patterns of every weight by their syndrome (a dynamic programme over the code's 72
    parity-check columns), then classifies each (weight, syndrome) as the decoder does.

    Returns:
        ``ok`` (no error), ``corrected`` (one error, always corrected), ``detected`` (two or more errors,
        flagged), ``miscorrected`` (three or more, odd, "corrected" at some position) and ``undetected``
        (four or more, even, syndrome 0): they sum to 1.
    """
    counts = _pattern_counts()
    out = dict.fromkeys(("ok", "corrected", "detected", "miscorrected", "undetected"), 0.0)
    for w in range(CODE_BITS + 1):
        pw = float(p) ** w * (1.0 - float(p)) ** (CODE_BITS - w)
        for s in range(256):
            if counts[w][s]:
                out[_outcome_of(w, s)] += counts[w][s] * pw
    return out


@functools.cache
def _pattern_counts() -> tuple[tuple[int, ...], ...]:
    """``counts[w][s]``: the number of error patterns of ``w`` bits with syndrome ``s`` (exact integers)."""
    counts = [[0] * 256 for _ in range(CODE_BITS + 1)]
    counts[0][0] = 1
    for n, col in enumerate([int(c) for c in DATA_COLUMNS] + [int(c) for c in CHECK_COLUMNS]):
        for w in range(n + 1, 0, -1):
            prev, row = counts[w - 1], counts[w]
            for s in range(256):
                if prev[s]:
                    row[s ^ col] += prev[s]
    return tuple(tuple(row) for row in counts)
