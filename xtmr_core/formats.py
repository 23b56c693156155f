"""Number formats of weight memory: what is stored decides what a bit flip does.

Weights are stored as integer *words* (the exact bit patterns in memory) and read back by decoding.
Bit 0 is the least significant bit of a word; in fp32 bit 31 is the sign and bits 30..23 the exponent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xtmr_core.format_registry import format_info
from xtmr_core.memory import WeightLayout
from xtmr_core.vocabulary import FORMATS, INT8_GRANULARITIES, WORD_BITS, check_choice, check_format

# The names re-exported from the vocabulary are kept importable from here for older callers.
__all__ = ["FORMATS", "INT8_GRANULARITIES", "WORD_BITS", "check_format", "bit_roles", "sign_exponent_bits"]
__all__ += ["StoredWeights", "encode", "word_to_bits"]


def bit_roles(fmt: str) -> list[str]:
    """Name the role of each bit position of a word, index = bit position (0 = LSB) (``FormatInfo.bit_roles``).

    Returns:
        e.g. for fp32: ``['mantissa', ..., 'exponent', ..., 'sign']``; for int8 ``['value', ..., 'sign']``.
    """
    return format_info(fmt).bit_roles()


def sign_exponent_bits(fmt: str) -> tuple[int, ...]:
    """Bit positions of the sign and the exponent (for int8: the sign and the top value bit)."""
    return format_info(fmt).sign_exponent_bits


@dataclass(frozen=True)
class StoredWeights:
    """Weight memory in one number format.

    Attributes:
        format: one of ``FORMATS``.
        words: the clean stored words, one per weight (int32 / int16 / int8 numpy array).
        scale: for int8, the dequantisation scale of every weight (float32), else ``None``.
    """

    format: str
    words: np.ndarray
    scale: np.ndarray | None = None

    @property
    def bits(self) -> int:
        """Bits per stored word."""
        return WORD_BITS[self.format]

    @property
    def unsigned(self) -> np.dtype[np.unsignedinteger]:
        """The unsigned integer type of a word's bit pattern (masks and votes must not sign-extend)."""
        return np.dtype(f"uint{self.bits}")

    def decode(self, words: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
        """Read weights back from stored words.

        Args:
            words: words of this format's dtype.
            index: the flat weight index of each word (needed for int8 scales); ``None`` = all weights.

        Returns:
            float32 values, same shape as ``words``.
        """
        words = np.asarray(words, dtype=self.words.dtype)
        if self.format == "fp32":
            return words.view(np.float32).copy()
        if self.format == "fp16":
            return words.view(np.float16).astype(np.float32)
        if self.format == "bf16":
            return (words.view(np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)
        if self.scale is None:
            raise ValueError(f"{self.format} words need their scales to decode")
        scale = self.scale if index is None else self.scale[index]
        out: np.ndarray = words.astype(np.float32) * scale
        return out

    def values(self) -> np.ndarray:
        """The clean weights as this format stores them (float32)."""
        return self.decode(self.words)


def encode(
    flat: np.ndarray, fmt: str, layout: WeightLayout | None = None, int8_granularity: str = "channel"
) -> StoredWeights:
    """Store float weights in a number format.

    Float formats round to nearest even. int8 is symmetric: ``q = clamp(round(w / s), -127, 127)`` with
    ``s = max|w| / 127`` per output channel (default) or per layer tensor.

    Args:
        flat: float32 weights in layout order.
        fmt: one of ``FORMATS``.
        layout: the weight layout (needed for int8 scales).
        int8_granularity: ``"channel"`` or ``"tensor"``.

    Returns:
        The ``StoredWeights``.
    """
    check_format(fmt)
    flat = np.ascontiguousarray(flat, dtype=np.float32)
    if fmt == "fp32":
        return StoredWeights(fmt, flat.view(np.int32).copy())
    if fmt == "fp16":
        return StoredWeights(fmt, flat.astype(np.float16).view(np.int16).copy())
    if fmt == "bf16":
        words = torch.from_numpy(flat).to(torch.bfloat16).view(torch.int16).numpy().copy()
        return StoredWeights(fmt, words)
    check_choice("int8 granularity", int8_granularity, INT8_GRANULARITIES)
    if layout is None:
        raise ValueError("int8 needs the weight layout for its scales")
    if int8_granularity == "channel":
        group = layout.channel_ids()
    else:
        group = np.repeat(np.arange(len(layout.names)), layout.sizes())
    absmax = np.zeros(int(group.max()) + 1 if group.size else 0, dtype=np.float32)
    np.maximum.at(absmax, group, np.abs(flat))
    group_scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
    scale = group_scale[group]
    words = np.clip(np.rint(flat / scale), -127, 127).astype(np.int8)
    return StoredWeights(fmt, words, scale)


def word_to_bits(word: int, fmt: str) -> str:
    """The bits of one stored word as a string, most significant bit first."""
    n = WORD_BITS[check_format(fmt)]
    return format(int(word) & ((1 << n) - 1), f"0{n}b")
