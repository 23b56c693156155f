"""Triple Modular Redundancy's voter: the bitwise majority of three stored copies."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def majority(a: T, b: T, c: T) -> T:
    """Bitwise majority vote of three words (an ideal voter).

    Each result bit is the value that at least two of the three copies hold.

    Args:
        a, b, c: integers, or numpy / torch integer arrays of one shape.

    Returns:
        The voted word(s), same type as the inputs.
    """
    return (a & b) | (a & c) | (b & c)
