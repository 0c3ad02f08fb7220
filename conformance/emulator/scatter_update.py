"""Emulated `torch_npu.scatter_update_` (in place) and `torch_npu.scatter_update` (out of place).

Schema: `scatter_update_(Tensor(a!) self, Tensor indices, Tensor updates, int axis) -> Tensor(a!)`;
the out-of-place op clones `self` first. Both run the CANN `Scatter` op with reduce="update", which is
neither TensorFlow's ScatterUpdate nor torch.scatter_.

Semantics, on the canonical 4-D view data (D0, M, C, R) / updates (U0, M, E, R), where D0 is dim 0,
M the product of the dims between 0 and `axis`, C the `axis` dim and R the product of the rest
(hicann/ops-nn index/scatter/docs/aclnnInplaceScatterUpdate.md; index/scatter/op_graph/scatter_proto.h):
* 1-D indices (U0,) (documented): data[i, m, indices[i] + e, r] = updates[i, m, e, r]. Row i of
  `updates` goes to row i of `data`; indices[i] is an OFFSET along `axis`, not a flat slot number.
* 2-D indices (U0, 2): data[indices[i, 0], m, indices[i, 1] + e, r] = updates[i, m, e, r]: the TIK
  kernel's rank-2 branch (impl/dynamic/scatter.py `_set_dst_offset_neg2`: dst = (idx[i,0]*M + m)*C*R +
  idx[i,1]*R), the golden model index/scatter/tests/assets/golden.py and the proto ("when discrete,
  1-dim of indices should be 2"); the torch_npu doc says only "目前仅支持一维和二维".
* 0-D indices: as 1-D with U0 == 1.
The hardware never checks index values ("框架不进行越界检查"): an offset past C or a negative index moves
the flat address into other rows or outside the tensor. The emulator refuses such values
(violation). Overlapping 2-D targets are a hazard ("重复位置的结果不保证"); the emulator applies rows
in order, so the last one wins.
"""

from __future__ import annotations

import math

import torch

from conformance.emulator import sources as src
from conformance.emulator.findings import Checker, op_call

OP_INPLACE = "torch_npu.scatter_update_"
OP = "torch_npu.scatter_update"
#: Data dtypes of the Scatter kernel on Atlas A2/A3 (aclnn_scatter_update.cpp DTYPE_SUPPORT_LIST_DATA).
DATA_DTYPES = (torch.int8, torch.float16, torch.float32, torch.bfloat16, torch.int32)


def canonical_shape(shape, axis: int) -> tuple[int, int, int, int]:
    """(D0, M, C, R) of a tensor shape around a non-zero, non-negative `axis`."""
    return (shape[0], math.prod(shape[1:axis]), shape[axis], math.prod(shape[axis + 1:]))


def check(op: str, data, indices, updates, axis) -> tuple[int, list[tuple[int, int]]]:
    """Validate a call; returns (normalised axis, [(data row, offset)] per update row)."""
    c = Checker(op)
    for name, t in (("self", data), ("indices", indices), ("updates", updates)):
        c.require(isinstance(t, torch.Tensor), name, "must be a Tensor", src.SCATTER_DOC,
                  detail=f"got {type(t).__name__}")
        c.require(t.numel() > 0, name, "empty tensors are not supported", src.SCATTER_DOC,
                  detail=f"shape {tuple(t.shape)}")
    c.require(updates.dtype == data.dtype, "updates", "must have the dtype of self (data)", src.SCATTER_DOC,
              detail=f"{updates.dtype} vs {data.dtype}")
    c.require(data.dtype in DATA_DTYPES, "self", "dtype must be int8, float16, float32, bfloat16 or int32 (A2/A3)",
              src.SCATTER_API, detail=f"got {data.dtype}; also {src.SCATTER_TORCH_NPU_DOC}")
    rank = data.dim()
    c.require(2 <= rank <= 8, "self", "rank must be 2-8", src.SCATTER_DOC, detail=f"got {rank}")
    c.require(updates.dim() == rank, "updates", "must have the rank of self (data)", src.SCATTER_DOC,
              detail=f"updates {tuple(updates.shape)}, data {tuple(data.shape)}")
    c.require(indices.dtype in (torch.int32, torch.int64), "indices", "dtype must be int32 or int64",
              src.SCATTER_DOC, detail=f"got {indices.dtype}")
    c.require(indices.dim() in (0, 1, 2), "indices", "must be 0-, 1- or 2-D", src.SCATTER_DOC,
              detail=f"got shape {tuple(indices.shape)}")
    if indices.dim() == 2:
        c.require(indices.shape[1] == 2, "indices", "2-D indices must have shape [n, 2]", src.SCATTER_DOC,
                  detail=f"got shape {tuple(indices.shape)}")
    axis = int(axis)
    c.require(-rank < axis < rank and axis != 0, "axis", "must be in (-rank, rank) and not 0", src.SCATTER_DOC,
              detail=f"axis {axis}, rank {rank}")
    if axis < -2:
        # The doc allows (-rank, rank); the proto says a negative axis "should be -1 or -2".
        c.hazard("scu/negative-axis", "axis", "a negative axis other than -1 or -2: the aclnn doc accepts it, the "
                 "graph proto says it should be -1 or -2", src.SCATTER_PROTO, detail=f"axis {axis}, rank {rank}")
    ax = axis % rank
    n_updates = updates.shape[0]
    if indices.dim() == 0:
        c.require(n_updates == 1, "updates", "with 0-D indices dim 0 of updates must be 1", src.SCATTER_DOC,
                  detail=f"got {n_updates}")
    else:
        c.require(indices.shape[0] == n_updates, "indices", "dim 0 must equal dim 0 of updates", src.SCATTER_DOC,
                  detail=f"indices {tuple(indices.shape)}, updates {tuple(updates.shape)}")
    c.require(n_updates <= data.shape[0], "updates", "dim 0 must be <= dim 0 of self (data)", src.SCATTER_DOC,
              detail=f"{n_updates} > {data.shape[0]}")
    for d in range(1, rank):
        if d != ax:
            c.require(updates.shape[d] == data.shape[d], "updates",
                      "must match self (data) in every dim except 0 and axis", src.SCATTER_DOC,
                      detail=f"dim {d}: updates {tuple(updates.shape)}, data {tuple(data.shape)}")
    if ax == rank - 1:
        c.require(data.shape[-1] * data.element_size() % 32 == 0, "axis",
                  "scatter along the last dim needs it 32-byte aligned", src.SCATTER_PROTO,
                  detail=f"last dim {data.shape[-1]} x {data.element_size()} bytes")
    span, extent = updates.shape[ax], data.shape[ax]

    if indices.dim() == 2:
        pairs = [(int(r), int(o)) for r, o in indices.tolist()]
        for i, (row, _) in enumerate(pairs):
            c.require(0 <= row < data.shape[0], "indices", "indices[i, 0] (the target row of self) must lie in "
                      "[0, self.shape[0]); unchecked on hardware, it writes outside the tensor", src.SCATTER_KERNEL,
                      detail=f"row {i}: {row}, self.shape[0] = {data.shape[0]}")
        offsets = [o for _, o in pairs]
        hint, pair_form = "indices[i, 1]", True
    else:
        offsets = [int(o) for o in indices.reshape(-1).tolist()]
        pairs = [(i, o) for i, o in enumerate(offsets)]
        hint, pair_form = "indices[i]", False
    for i, off in enumerate(offsets):
        c.require(off >= 0, "indices", f"{hint} must be >= 0 (only non-negative indices are supported; "
                  "unchecked on hardware)", src.SCATTER_DOC, detail=f"row {i}: {off}")
        c.require(off + span <= extent, "indices",
                  f"{hint} + updates.shape[axis] must be <= self.shape[axis]: {hint} is an offset along axis "
                  f"inside {'its target row' if pair_form else 'row i'} of self, not a flat slot; unchecked on "
                  "hardware, a larger value writes into other rows or past the tensor", src.SCATTER_DOC,
                  detail=f"row {i}: {off} + {span} > {extent}")
    if indices.dim() == 2:
        seen: dict[int, list[int]] = {}
        for i, (row, off) in enumerate(pairs):
            if any(abs(off - other) < span for other in seen.get(row, [])):
                c.hazard("scu/overlapping-targets", "indices", "duplicate (overlapping) targets: the result at "
                         "repeated positions is not guaranteed (emulator: last row wins)", src.SCATTER_DOC,
                         detail=f"row {i} -> ({row}, {off})")
                break
            seen.setdefault(row, []).append(off)
    return ax, pairs


def apply(data: torch.Tensor, updates: torch.Tensor, ax: int, pairs: list[tuple[int, int]]) -> None:
    """Write checked targets through the canonical (D0, M, C, R) view; rows apply in order."""
    d0, m, c, r = canonical_shape(data.shape, ax)
    u4 = updates.reshape(updates.shape[0], m, updates.shape[ax], r)
    span = u4.shape[2]
    try:
        d4 = data.view(d0, m, c, r)
    except RuntimeError:  # not viewable: write a contiguous copy, then copy it back
        d4 = data.contiguous().view(d0, m, c, r)
    for i, (row, off) in enumerate(pairs):
        d4[row, :, off:off + span, :] = u4[i]
    if d4.data_ptr() != data.data_ptr():
        data.copy_(d4.view(data.shape))


def scatter_update_(self, indices, updates, axis):
    """Emulated torch_npu.scatter_update_: updates `self` in place and returns it."""
    with op_call():
        ax, pairs = check(OP_INPLACE, self, indices, updates, axis)
        apply(self, updates, ax, pairs)
    return self


def scatter_update(self, indices, updates, axis):
    """Emulated torch_npu.scatter_update: a copy of `self` with the updates applied."""
    with op_call():
        ax, pairs = check(OP, self, indices, updates, axis)
        out = self.clone()
        apply(out, updates, ax, pairs)
    return out
