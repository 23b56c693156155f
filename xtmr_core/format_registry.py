"""What each storage format of weight memory is, said once: word size and the role of every bit.

The describing half of the formats (``formats`` encodes and decodes words): one ``FormatInfo`` per format in
``FORMAT_INFO``. The sign and exponent layout, the bit roles, the bit whose flip does the most harm and the
word size are read from here by ``vocabulary`` (``FORMATS``, ``WORD_BITS``), ``formats``, ``strata``, the
report and the app. Torch- and numpy-free, like ``vocabulary``.

Bit 0 is the least significant bit of a word. A float format is sign | exponent | mantissa from the top; an
integer format (int8) is two's complement, its top bit worth -2^(bits-1) (named ``sign``), the rest ``value``.
"""

from __future__ import annotations

from dataclasses import dataclass

from xtmr_core.errors import XtmrError


@dataclass(frozen=True)
class FormatInfo:
    """One storage format, described.

    Attributes:
        name: the name the CLI, specs and tables use (``fp32``).
        bits: bits per stored word.
        sign_bit: the sign bit's position (int8: the two's-complement top bit).
        exponent: ``(lowest, highest)`` exponent bit positions of a float format; ``None`` for an integer one.
        label: what people read about it (the app's format help).
    """

    name: str
    bits: int
    sign_bit: int
    exponent: tuple[int, int] | None
    label: str = ""

    def __post_init__(self) -> None:
        if self.sign_bit != self.bits - 1:
            raise XtmrError(f"format {self.name!r}: the sign is the top bit ({self.bits - 1}), got {self.sign_bit}")
        if self.exponent is not None and not 0 < self.exponent[0] <= self.exponent[1] < self.sign_bit:
            raise XtmrError(f"format {self.name!r}: exponent bits {self.exponent} must lie between mantissa and sign")

    @property
    def is_float(self) -> bool:
        """Whether the format is a float (sign, exponent, mantissa) rather than a scaled integer."""
        return self.exponent is not None

    @property
    def mantissa_bits(self) -> int:
        """Bits of the mantissa (float formats; 0 for an integer format)."""
        return self.exponent[0] if self.exponent is not None else 0

    @property
    def top_exponent_bit(self) -> int | None:
        """The highest exponent bit (its flip scales a weight by up to 2^(2^(e-1))); ``None`` for an integer."""
        return self.exponent[1] if self.exponent is not None else None

    @property
    def deciding_bits(self) -> tuple[int, ...]:
        """The bit positions whose single flip does the most harm: the top exponent bit of a float, the
        top (-2^(bits-1)) bit of an integer."""
        top = self.top_exponent_bit
        return (self.sign_bit if top is None else top,)

    @property
    def top_bit(self) -> int:
        """The one bit whose flip does the most harm (``deciding_bits``' only member)."""
        return self.deciding_bits[0]

    @property
    def sign_exponent_bits(self) -> tuple[int, ...]:
        """The sign and exponent positions, ascending (integer: the sign and the top value bit)."""
        if self.exponent is None:
            return (self.sign_bit - 1, self.sign_bit)
        lo, hi = self.exponent
        return (*range(lo, hi + 1), self.sign_bit)

    def bit_roles(self) -> list[str]:
        """The role of each bit position, index = bit position: ``mantissa``/``exponent``/``sign`` for a float,
        ``value``/``sign`` for an integer."""
        if self.exponent is None:
            return ["value"] * (self.bits - 1) + ["sign"]
        lo, hi = self.exponent
        return ["mantissa" if b < lo else "exponent" if b <= hi else "sign" for b in range(self.bits)]


#: The registry, in the order menus list formats.
FORMAT_INFO: dict[str, FormatInfo] = {
    info.name: info
    for info in (
        FormatInfo(
            "fp32",
            32,
            31,
            (23, 30),
            "32-bit float: a flip of the top exponent bit (30) can make a weight 2^128 times larger.",
        ),
        FormatInfo(
            "fp16",
            16,
            15,
            (10, 14),
            "16-bit float: smaller exponent range, so exponent flips do less harm than in fp32.",
        ),
        FormatInfo(
            "bf16",
            16,
            15,
            (7, 14),
            "bfloat16: fp32's exponent range in 16 bits; exponent flips hurt as in fp32.",
        ),
        FormatInfo(
            "int8",
            8,
            7,
            None,
            "8-bit two's-complement integers with a scale per output channel: a flip moves a weight by at "
            "most 128 steps (bit 7 is worth −128: +127 becomes −1).",
        ),
    )
}


def format_info(name: str) -> FormatInfo:
    """The ``FormatInfo`` of format ``name``.

    Raises:
        XtmrError: an unknown name (the message names the known formats).
    """
    info = FORMAT_INFO.get(str(name))
    if info is None:
        raise XtmrError(f"unknown format {name!r}: choose one of {', '.join(FORMAT_INFO)}")
    return info


def register_format(info: FormatInfo) -> None:
    """Add a format to the registry (or replace the one of the same name). Describing is not storing: a new
    format also needs its encoding and decoding in ``formats`` (see docs/ARCHITECTURE.md, adding a format)."""
    if not info.name.isidentifier():
        raise XtmrError(f"format name must be a plain word (letters, digits, _), got {info.name!r}")
    FORMAT_INFO[info.name] = info
