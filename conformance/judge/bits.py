"""Raw bit patterns of float tensors: bit-exact comparisons where NaN == NaN and -0.0 != 0.0."""

from __future__ import annotations

import torch

_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def as_bits(x: torch.Tensor) -> torch.Tensor:
    """The raw bit patterns of a float tensor (so NaN == NaN and -0.0 != 0.0)."""
    return x.contiguous().view(_BITS[x.element_size()])


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(as_bits(a), as_bits(b))
