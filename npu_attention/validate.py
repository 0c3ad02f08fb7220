"""Runner-contract validator: is this Context (and these caches) what the NPU layer was built for?

Real kernels do not check indices; an out-of-contract Context corrupts the cache silently. Run this
before a real kernel call. Every rule raises ContextError naming the field and the rule.
The contract is the one of the NPU runner (linzm1007/nano-vllm-ascend, model_runner.py):
3-D caches, equal cu_seqlens in prefill, [B, 2] (block, offset) decode slots, padded graph batches.
"""

from __future__ import annotations

import math

import torch

from npu_attention.context import Context

CACHE_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


class ContextError(ValueError):
    """An input outside the runner contract. `field` names the input, `rule` the broken rule."""

    def __init__(self, field: str, rule: str, got: object = None):
        self.field = field
        self.rule = rule
        self.got = got
        detail = "" if got is None else f" (got {got})"
        super().__init__(f"{field}: {rule}{detail}")


def _fail(field: str, rule: str, got: object = None) -> None:
    raise ContextError(field, rule, got)


def _int32_tensor(field: str, value, ndim: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        _fail(field, "must be an int32 tensor", _describe(value))
    if value.dtype != torch.int32:
        _fail(field, "must be int32, as the runner builds it", value.dtype)
    if value.ndim != ndim:
        _fail(field, f"must be {ndim}-D", tuple(value.shape))
    return value


def _is_int(value) -> bool:
    """A Python int, not a bool (True is an int to Python, never a head count or a length)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value) -> str:
    """What a wrong value is, for the message: its type and, for short values, the value."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return f"{type(value).__name__} {text}" if len(text) <= 40 else type(value).__name__


def _check_heads(num_heads: int, num_kv_heads: int, head_dim: int) -> None:
    for name, value in (("num_heads", num_heads), ("num_kv_heads", num_kv_heads), ("head_dim", head_dim)):
        if not _is_int(value) or value <= 0:
            _fail(name, "must be a positive int", _describe(value))
    if num_heads % num_kv_heads:
        _fail("num_heads", f"must be a multiple of num_kv_heads ({num_kv_heads})", num_heads)


def _check_caches(context: Context, k_cache, v_cache, num_kv_heads: int, head_dim: int) -> tuple[int, int]:
    block_size = context.block_size
    if block_size is None:
        _fail("Context.block_size", "is required: the layer views the cache with it (the runner always sets it)")
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size <= 0:
        _fail("Context.block_size", "must be a positive int", block_size)
    for name, cache in (("k_cache", k_cache), ("v_cache", v_cache)):
        if not isinstance(cache, torch.Tensor):
            _fail(name, "must be a tensor", type(cache).__name__)
        if cache.ndim == 4:
            _fail(name, "must be 3-D [num_blocks, block_size, num_kv_heads*head_dim]; a 4-D "
                  "[num_blocks, block_size, num_kv_heads, head_dim] cache is upstream nano-vllm's layout",
                  tuple(cache.shape))
        if cache.ndim != 3:
            _fail(name, "must be 3-D [num_blocks, block_size, num_kv_heads*head_dim]", tuple(cache.shape))
        if cache.dtype not in CACHE_DTYPES:
            _fail(name, "dtype must be float16, bfloat16 or float32", cache.dtype)
        if cache.shape[1] != block_size:
            _fail(name, f"dim 1 must equal Context.block_size ({block_size})", tuple(cache.shape))
        if cache.shape[2] != num_kv_heads * head_dim:
            _fail(name, f"dim 2 must be num_kv_heads*head_dim ({num_kv_heads}*{head_dim})", tuple(cache.shape))
        if cache.shape[0] == 0:
            _fail(name, "needs at least one block", tuple(cache.shape))
    if k_cache.shape != v_cache.shape or k_cache.dtype != v_cache.dtype:
        _fail("v_cache", "must match k_cache in shape and dtype",
              f"{tuple(v_cache.shape)} {v_cache.dtype} vs {tuple(k_cache.shape)} {k_cache.dtype}")
    if k_cache.device != v_cache.device:
        _fail("v_cache", "must be on k_cache's device", v_cache.device)
    return k_cache.shape[0], block_size


def _check_device(field: str, tensor: torch.Tensor | None, device: torch.device) -> None:
    if tensor is None:
        return
    if not isinstance(tensor, torch.Tensor):  # a list or a numpy array: the kernels take device tensors
        _fail(field, "must be a torch.Tensor", _describe(tensor))
    if tensor.device != device:
        _fail(field, f"must be on the cache device ({device})", tensor.device)


def _check_block_table_rows(
    block_tables: torch.Tensor, lengths: list[int], num_blocks: int, block_size: int
) -> list[list[int]]:
    rows = block_tables.tolist()
    width = block_tables.shape[1]
    for b, (row, length) in enumerate(zip(rows, lengths)):
        needed = math.ceil(length / block_size)
        if needed > width:
            _fail("Context.block_tables", f"row {b} needs {needed} blocks for {length} tokens but the "
                  f"table is {width} wide")
        for col, block in enumerate(row[:needed]):
            if not 0 <= block < num_blocks:
                _fail("Context.block_tables", f"row {b} column {col}: block id must be in [0, {num_blocks})",
                      block)
        if any(block != -1 and not 0 <= block < num_blocks for block in row[needed:]):
            _fail("Context.block_tables", f"row {b}: entries past the needed blocks must be -1 or a valid "
                  f"block id in [0, {num_blocks})", row[needed:])
    return rows


def _check_prefill(context: Context, num_blocks: int, block_size: int, num_tokens: int | None) -> None:
    cu_q = _int32_tensor("Context.cu_seqlens_q", context.cu_seqlens_q, 1)
    cu_k = _int32_tensor("Context.cu_seqlens_k", context.cu_seqlens_k, 1)
    if cu_q.numel() < 2:
        _fail("Context.cu_seqlens_q", "needs B+1 >= 2 entries", cu_q.numel())
    if cu_q.shape != cu_k.shape or not torch.equal(cu_q, cu_k):
        _fail("Context.cu_seqlens_k", "must equal cu_seqlens_q: the NPU prefill recomputes whole prompts "
              "(TND without paged KV); a cached prefix (cu_seqlens_k > cu_seqlens_q) is out of contract",
              f"q={cu_q.tolist()} k={cu_k.tolist()}")
    offsets = cu_q.tolist()
    if offsets[0] != 0:
        _fail("Context.cu_seqlens_q", "must start at 0", offsets[0])
    lengths = [b - a for a, b in zip(offsets, offsets[1:])]
    if any(length <= 0 for length in lengths):
        _fail("Context.cu_seqlens_q", "must be strictly increasing (every prompt has >= 1 token)", offsets)
    total = offsets[-1]
    for name in ("max_seqlen_q", "max_seqlen_k"):
        if not _is_int(getattr(context, name)):
            _fail(f"Context.{name}", "must be an int", _describe(getattr(context, name)))
    if num_tokens is not None and num_tokens != total:
        _fail("Context.cu_seqlens_q", f"last entry must equal the number of tokens ({num_tokens})", total)
    if context.max_seqlen_q != max(lengths) or context.max_seqlen_k != max(lengths):
        _fail("Context.max_seqlen_q", f"max_seqlen_q and max_seqlen_k must equal the longest prompt "
              f"({max(lengths)})", (context.max_seqlen_q, context.max_seqlen_k))
    slots = context.slot_mapping
    if isinstance(slots, torch.Tensor) and slots.ndim == 2:
        _fail("Context.slot_mapping", "prefill slots are flat [T] (block*block_size+offset), not [T, 2] pairs",
              tuple(slots.shape))
    slots = _int32_tensor("Context.slot_mapping", slots, 1)
    if slots.numel() != total:
        _fail("Context.slot_mapping", f"needs one slot per prompt token ({total})", slots.numel())
    values = slots.tolist()
    capacity = num_blocks * block_size
    bad = [s for s in values if not 0 <= s < capacity]
    if bad:
        _fail("Context.slot_mapping", f"prefill slots must be in [0, num_blocks*block_size = {capacity}) "
              "(the runner writes every token; no -1 padding in prefill)", bad[:5])
    if len(set(values)) != len(values):
        _fail("Context.slot_mapping", "slots must be distinct (duplicate writes are undefined on the NPU)")
    if context.block_tables is not None:
        tables = _int32_tensor("Context.block_tables", context.block_tables, 2)
        if tables.shape[0] != len(lengths):
            _fail("Context.block_tables", f"needs one row per sequence ({len(lengths)})", tables.shape[0])
        rows = _check_block_table_rows(tables, lengths, num_blocks, block_size)
        for b, (row, start, length) in enumerate(zip(rows, offsets, lengths)):
            for pos in range(length):
                expected = row[pos // block_size] * block_size + pos % block_size
                if values[start + pos] != expected:
                    _fail("Context.slot_mapping", f"sequence {b} position {pos} must map to "
                          f"block_tables[{b}][{pos // block_size}]*block_size + {pos % block_size} = {expected}",
                          values[start + pos])


def _check_decode(context: Context, num_blocks: int, block_size: int, num_tokens: int | None) -> None:
    if not isinstance(context.is_enforce_eager, bool):
        _fail("Context.is_enforce_eager", "decode needs the bool True (eager FIA-v2) or False (torchair graph)",
              _describe(context.is_enforce_eager))
    graph = context.is_enforce_eager is False
    slots = context.slot_mapping
    if isinstance(slots, torch.Tensor) and slots.ndim == 1:
        _fail("Context.slot_mapping", "decode slots must be [B, 2] rows of (block, offset); a flat [B] "
              "mapping (upstream nano-vllm) makes scatter_update_ write row i into block i + slot",
              tuple(slots.shape))
    slots = _int32_tensor("Context.slot_mapping", slots, 2)
    if slots.shape[1] != 2:
        _fail("Context.slot_mapping", "decode slots must be [B, 2] rows of (block, offset)", tuple(slots.shape))
    batch = slots.shape[0]
    if batch == 0:
        _fail("Context.slot_mapping", "decode needs at least one sequence")
    if num_tokens is not None and num_tokens != batch:
        _fail("Context.slot_mapping", f"needs one row per decoded token ({num_tokens})", batch)
    lens = _int32_tensor("Context.context_lens", context.context_lens, 1)
    if lens.numel() != batch:
        _fail("Context.context_lens", f"needs one entry per slot_mapping row ({batch})", lens.numel())
    lengths = lens.tolist()
    if any(n < 0 for n in lengths):
        _fail("Context.context_lens", "must be >= 0", lengths)
    real = [b for b, n in enumerate(lengths) if n > 0]
    padded = [b for b, n in enumerate(lengths) if n == 0]
    if padded and not graph:
        _fail("Context.context_lens", "eager decode has no padded rows: every length is >= 1 "
              "(it includes the token being decoded)", lengths)
    if padded and padded[0] < len(real):
        _fail("Context.context_lens", "padded rows (length 0) come after all real rows", lengths)
    if isinstance(context.real_bs, int) and context.real_bs >= 0 and graph and context.real_bs != len(real):
        _fail("Context.real_bs", f"must count the real rows ({len(real)})", context.real_bs)
    tables = _int32_tensor("Context.block_tables", context.block_tables, 2)
    if tables.shape[0] != batch:
        _fail("Context.block_tables", f"needs one row per slot_mapping row ({batch})", tables.shape[0])
    rows = _check_block_table_rows(tables, lengths, num_blocks, block_size)
    pairs = [tuple(p) for p in slots.tolist()]
    for b, (block, offset) in enumerate(pairs):
        if not 0 <= block < num_blocks:
            _fail("Context.slot_mapping", f"row {b}: block must be in [0, {num_blocks})", block)
        if not 0 <= offset < block_size:
            _fail("Context.slot_mapping", f"row {b}: offset must be in [0, {block_size})", offset)
    for b in real:
        pos = lengths[b] - 1
        expected = (rows[b][pos // block_size], pos % block_size)
        if pairs[b] != expected:
            _fail("Context.slot_mapping", f"row {b} must write the new token's slot (position {pos}: "
                  f"block_tables[{b}][{pos // block_size}], offset {pos % block_size}) = {list(expected)}",
                  list(pairs[b]))
    written = [pairs[b] for b in real]
    if len(set(written)) != len(written):
        _fail("Context.slot_mapping", "real rows must write distinct slots", written)
    # A block another sequence reads must not take this row's new token (cross-request corruption).
    for b in real:
        other = next((o for o in real if o != b and pairs[b][0] in rows[o][: math.ceil(lengths[o] / block_size)]),
                     None)
        if other is not None:
            _fail("Context.slot_mapping", f"row {b} writes its new token into block {pairs[b][0]}, which row "
                  f"{other}'s block table also lists: real rows must not share the block they write")
    if padded:
        dummy_blocks = {pairs[b][0] for b in padded}
        if len(dummy_blocks) != 1:
            _fail("Context.slot_mapping", "padded rows must all point at the one reserved dummy block",
                  sorted(dummy_blocks))
        dummy = dummy_blocks.pop()
        used = {block for b in real for block in rows[b][: math.ceil(lengths[b] / block_size)]}
        if dummy in used:
            _fail("Context.slot_mapping", f"the padding dummy block {dummy} must not belong to a real sequence")
        if any(block != -1 for b in padded for block in rows[b]):
            _fail("Context.block_tables", "padded rows must be all -1")


def validate_context(
    context: Context,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    *,
    num_tokens: int | None = None,
) -> None:
    """Raise ContextError if `context` and the caches are outside the runner contract.

    `num_tokens` (the number of rows of q/k/v about to be passed to forward) is checked when given.
    """
    if not isinstance(context, Context):
        _fail("context", "must be an npu_attention.Context", type(context).__name__)
    _check_heads(num_heads, num_kv_heads, head_dim)
    if num_tokens is not None and (not _is_int(num_tokens) or num_tokens < 0):
        _fail("num_tokens", "must be a non-negative int (the rows of q/k/v)", _describe(num_tokens))
    if not isinstance(context.is_prefill, bool):
        _fail("Context.is_prefill", "must be a bool", _describe(context.is_prefill))
    num_blocks, block_size = _check_caches(context, k_cache, v_cache, num_kv_heads, head_dim)
    for field in ("cu_seqlens_q", "cu_seqlens_k", "slot_mapping", "context_lens", "block_tables"):
        _check_device(f"Context.{field}", getattr(context, field), k_cache.device)
    if context.is_prefill:
        _check_prefill(context, num_blocks, block_size, num_tokens)
    else:
        _check_decode(context, num_blocks, block_size, num_tokens)
