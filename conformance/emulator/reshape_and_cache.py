"""Emulated `torch_npu._npu_reshape_and_cache` (ATB ReshapeAndCacheOperation, ND caches).

`torch.ops.atb._npu_reshape_and_cache(Tensor key, Tensor value, Tensor(a!) key_cache,
Tensor(b!) value_cache, Tensor slot_indices) -> ()`: token t of key/value goes to
`cache[slot // block_size, slot % block_size]`; a negative slot skips the token; the caches are
updated in place and nothing is returned.

Checks (hicann/ascend-transformer-boost, reshape_and_cache_operation.cpp DimCheck/KVCacheDimCheck910B,
the doxygen ReshapeAndCacheParam in docs/doxygen/atb_document.txt, and reshape_and_cache_tiling.cpp) are
violations; what the kernel leaves unchecked (slot count, a slot past the cache end) is a violation
too, because it reads or writes out of bounds; any negative slot is skipped, as the kernel code does
(the doc's lower bound -num_blocks*block_size is only a note); duplicate slots are a hazard (the last
token wins here, the hardware order across cores is undefined).
"""

from __future__ import annotations

import torch

from conformance.emulator import sources as src
from conformance.emulator.findings import Checker, op_call

OP = "torch_npu._npu_reshape_and_cache"
CACHE_DTYPES = (torch.float16, torch.bfloat16, torch.int8)


def _key_and_slot_dtypes(c: Checker, key, slot_indices) -> None:
    """The dtypes both variants accept (the documented ones, and float32 as an emulator-only extension)."""
    c.require(key.dtype in CACHE_DTYPES + (torch.float32,), "key", "dtype must be float16, bfloat16 or int8",
              src.ATB_DOC, detail=f"got {key.dtype}")
    if key.dtype == torch.float32:
        c.note("rac/float32", "key", "float32 is outside the documented dtypes (float16/bfloat16/int8): an "
               "emulator-only extension the hardware rejects", src.ATB_DOC)
    c.require(slot_indices.dtype == torch.int32, "slot_indices", "dtype must be int32", src.ATB_DOC,
              detail=f"got {slot_indices.dtype}")


def check(key, value, key_cache, value_cache, slot_indices) -> list[int]:
    """Validate a call; returns the slot list."""
    c = Checker(OP)
    for name, t, rank in (("key", key, 3), ("value", value, 3), ("key_cache", key_cache, 4),
                          ("value_cache", value_cache, 4), ("slot_indices", slot_indices, 1)):
        c.require(isinstance(t, torch.Tensor), name, "must be a Tensor", src.ATB_OPERATION,
                  detail=f"got {type(t).__name__}")
        c.require(t.dim() == rank, name, f"must be {rank}-D", src.ATB_OPERATION, detail=f"got shape {tuple(t.shape)}")
    c.require(key.dtype == value.dtype == key_cache.dtype == value_cache.dtype, "key_cache",
              "key, value and both caches must share one dtype", src.ATB_DOC,
              detail=f"{key.dtype}, {value.dtype}, {key_cache.dtype}, {value_cache.dtype}")
    _key_and_slot_dtypes(c, key, slot_indices)
    num_tokens = key.shape[0]
    c.require(num_tokens > 0, "key", "num_tokens must be > 0 (an empty key is refused: \"numTokens is invalid\")",
              src.ATB_TILING)
    c.require(value.shape[:2] == key.shape[:2], "value", "key and value must have the same num_tokens and num_heads",
              src.ATB_OPERATION, detail=f"key {tuple(key.shape)}, value {tuple(value.shape)}")
    c.require(key_cache.shape[:2] == value_cache.shape[:2], "value_cache",
              "both caches must have the same num_blocks and block_size", src.ATB_OPERATION,
              detail=f"{tuple(key_cache.shape)} vs {tuple(value_cache.shape)}")
    c.require(tuple(key_cache.shape[2:]) == tuple(key.shape[1:]), "key_cache",
              "cache (num_heads, head_size) must equal key's: ND cache is [num_blocks, block_size, num_heads, "
              "head_size]", src.ATB_OPERATION, detail=f"cache {tuple(key_cache.shape)}, key {tuple(key.shape)}")
    c.require(tuple(value_cache.shape[2:]) == tuple(value.shape[1:]), "value_cache",
              "cache (num_heads, head_size) must equal value's", src.ATB_OPERATION,
              detail=f"cache {tuple(value_cache.shape)}, value {tuple(value.shape)}")
    # num_tokens comes from key.shape[0]; the kernel's InferShape refuses another slot count ("slot's dim_0
    # should be same as numTokens"), while the operation-level DimCheck does not look at it.
    c.require(slot_indices.shape[0] == num_tokens, "slot_indices",
              "must have one slot per token (shape [num_tokens])", src.at(src.ATB_MIX_OPERATION, "169-170"),
              detail=f"{slot_indices.shape[0]} slots for {num_tokens} tokens; also {src.ATB_DOC}")
    capacity = key_cache.shape[0] * key_cache.shape[1]
    slots = [int(s) for s in slot_indices.tolist()]
    check_slot_range(c, slots, capacity)
    check_duplicate_slots(c, slots)
    return slots


def check_duplicate_slots(c: Checker, slots: list[int]) -> None:
    valid = [s for s in slots if s >= 0]
    if len(set(valid)) != len(valid):
        dup = next(s for s in valid if valid.count(s) > 1)
        c.hazard("rac/duplicate-slots", "slot_indices", "duplicate slots: the documented domain has no duplicates "
                 "and the write order across cores is undefined (emulator: last token wins)", src.ATB_DOC,
                 detail=f"slot {dup}")


def check_slot_range(c: Checker, slots: list[int], capacity: int) -> None:
    """Slots past the cache end are refused (unchecked on hardware: the kernel writes past the cache); every
    negative slot is skipped by the kernel, so one below the documented domain is only noted."""
    past = [s for s in slots if s >= capacity]
    c.require(not past, "slot_indices", "slots must be < num_blocks*block_size (the documented domain is "
              "(-num_blocks*block_size, num_blocks*block_size)); unchecked on hardware, a slot past the end writes "
              "outside the cache", src.ATB_DOC, detail=f"slot {past[0] if past else ''} with capacity {capacity}")
    below = [s for s in slots if s <= -capacity]
    if below:
        # The doc's domain starts at -num_blocks*block_size, but every kernel variant tests only the sign:
        # `if (slotValue < 0) continue` (ND L82, L114; base CopyToCache L149-151): the code wins.
        c.note("rac/negative-slot-outside-doc", "slot_indices", "a slot at or below -num_blocks*block_size is "
               "outside the documented domain, but the kernel skips every negative slot", src.at(src.ATB_ND, "82, 114"),
               detail=f"slot {below[0]} with capacity {capacity}; doc: {src.ATB_DOC}")


def write(key, value, key_cache, value_cache, slots: list[int]) -> None:
    """The in-place cache update for checked slots (negative slots skipped, later tokens win)."""
    write_one(key, key_cache, slots)
    write_one(value, value_cache, slots)


def _npu_reshape_and_cache(key, value, key_cache, value_cache, slot_indices):
    """Emulated torch_npu._npu_reshape_and_cache: in-place, returns None."""
    with op_call():
        slots = check(key, value, key_cache, value_cache, slot_indices)
        write(key, value, key_cache, value_cache, slots)
    return None


SISO_OP = "torch_npu._npu_reshape_and_cache_siso"


def check_siso(key, key_cache, slot_indices) -> list[int]:
    """The key-only variant (kvCacheCfg K_CACHE_V_BYPASS): ReshapeAndCacheOperation::DimCheckSISO."""
    c = Checker(SISO_OP)
    for name, t, rank in (("key", key, 3), ("key_cache", key_cache, 4), ("slot_indices", slot_indices, 1)):
        c.require(isinstance(t, torch.Tensor), name, "must be a Tensor", src.ATB_OPERATION,
                  detail=f"got {type(t).__name__}")
        c.require(t.dim() == rank, name, f"must be {rank}-D", src.at(src.ATB_OPERATION, "256-261"),
                  detail=f"got shape {tuple(t.shape)}")
    c.require(key.dtype == key_cache.dtype, "key_cache", "key and key_cache must share one dtype", src.ATB_DOC,
              detail=f"{key.dtype}, {key_cache.dtype}")
    _key_and_slot_dtypes(c, key, slot_indices)
    c.require(key.shape[0] > 0, "key", "num_tokens must be > 0 (\"numTokens is invalid\")", src.ATB_TILING)
    c.require(slot_indices.shape[0] == key.shape[0], "slot_indices", "must have one slot per token",
              src.at(src.ATB_OPERATION, "265-268"), detail=f"{slot_indices.shape[0]} slots, {key.shape[0]} tokens")
    c.require(tuple(key_cache.shape[2:]) == tuple(key.shape[1:]), "key_cache",
              "cache (num_heads, head_size) must equal key's", src.at(src.ATB_OPERATION, "269-276"),
              detail=f"cache {tuple(key_cache.shape)}, key {tuple(key.shape)}")
    slots = [int(s) for s in slot_indices.tolist()]
    check_slot_range(c, slots, key_cache.shape[0] * key_cache.shape[1])
    check_duplicate_slots(c, slots)
    return slots


def write_one(rows: torch.Tensor, cache: torch.Tensor, slots: list[int]) -> None:
    """Token t of `rows` to cache[slot // block_size, slot % block_size]; negative slots skipped, later tokens
    win (`if (slotValue < 0) continue`, reshape_and_cache_nd_siso.cpp L59-60)."""
    block_size = cache.shape[1]
    pairs = [(token, slot) for token, slot in enumerate(slots) if slot >= 0]
    if len({slot for _, slot in pairs}) != len(pairs):
        for token, slot in pairs:  # duplicates: in token order, so the last one wins
            cache[slot // block_size, slot % block_size] = rows[token]
    elif pairs:
        tokens = torch.tensor([t for t, _ in pairs], dtype=torch.long, device=rows.device)
        where = torch.tensor([s for _, s in pairs], dtype=torch.long, device=cache.device)
        cache[where // block_size, where % block_size] = rows[tokens]


def _npu_reshape_and_cache_siso(key, key_cache, slot_indices):
    """Emulated torch_npu._npu_reshape_and_cache_siso: key-only cache write, in place, returns None."""
    with op_call():
        write_one(key, key_cache, check_siso(key, key_cache, slot_indices))
    return None
