"""Triple Modular Redundancy's voter: the bitwise majority of three stored copies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:  # the voter itself needs neither: it only uses & and |
    import numpy as np
    import torch


@overload
def majority(a: int, b: int, c: int) -> int: ...
@overload
def majority(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray: ...
@overload
def majority(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor: ...
def majority(a: Any, b: Any, c: Any) -> Any:
    """Bitwise majority vote of three words (an ideal voter).

    Each result bit is the value that at least two of the three copies hold.

    Args:
        a, b, c: integers, or numpy / torch integer arrays of one shape.

    Returns:
        The voted word(s), same type as the inputs.
    """
    return (a & b) | (a & c) | (b & c)
