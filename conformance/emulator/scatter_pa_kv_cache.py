"""Emulated `torch_npu.npu_scatter_pa_kv_cache`: write each token's key and value into a paged cache.

Schema (Ascend/op-plugin op_plugin/config/op_plugin_functions.yaml L6950):
`npu_scatter_pa_kv_cache(Tensor key, Tensor value, Tensor(a!) key_cache, Tensor(b!) value_cache,
Tensor slot_mapping, *, Tensor? compress_lens=None, Tensor? compress_seq_offsets=None,
Tensor? seq_lens=None, str? cache_mode='PA_NZ') -> ()`, run by aclnnScatterPaKvCache, whose open source
appears in hicann/ops-transformer from CANN 8.5.0 (attention/scatter_pa_kv_cache; cited at tag v8.5.0).

Modelled: the uncompressed ND write (cache_mode "Norm" or None): key [T, N, Dk], value [T, N, Dv],
caches [num_blocks, block_size, N, Dk|Dv], slot_mapping [T]; token t goes to cache[slot // block_size,
slot % block_size]. Not modelled (EmulatorUnsupported): the default cache_mode "PA_NZ" (a FRACTAL_NZ
cache, which `torch_npu.npu_format_cast(cache, 29)` lays out) and the compressed modes (4-D key,
compress_lens / compress_seq_offsets / seq_lens).
"""

from __future__ import annotations

import torch

from conformance.emulator import sources as src
from conformance.emulator.findings import Checker, op_call
from conformance.emulator.reshape_and_cache import write_one

OP = "torch_npu.npu_scatter_pa_kv_cache"
#: Atlas A2/A3: the doc's dtype list less the ones those products do not support.
DTYPES = (torch.float16, torch.bfloat16, torch.int8)
ND_CACHE_MODES = (None, "Norm")


def _refuse_unmodelled(c: Checker, key, cache_mode, optional: dict) -> None:
    if cache_mode not in ND_CACHE_MODES:
        raise c.unsupported("cache_mode", f"cache_mode {cache_mode!r} (the FRACTAL_NZ cache format; pass "
                                          "cache_mode='Norm' for an ND cache)")
    given = [name for name, t in optional.items() if t is not None]
    if given or (isinstance(key, torch.Tensor) and key.dim() == 4):
        raise c.unsupported(given[0] if given else "key", "the compressed write (4-D key, compress_lens, "
                                                          "compress_seq_offsets, seq_lens)")


def _check_tensors(c: Checker, key, value, key_cache, value_cache, slot_mapping) -> None:
    for name, t, rank in (("key", key, 3), ("value", value, 3), ("key_cache", key_cache, 4),
                          ("value_cache", value_cache, 4), ("slot_mapping", slot_mapping, 1)):
        c.require(isinstance(t, torch.Tensor), name, "must be a Tensor", src.SPC_DOC, detail=f"got {type(t).__name__}")
        c.require(t.dim() == rank, name, f"must be {rank}-D (cache_mode 'Norm')", src.at(src.SPC_DOC, "28-35"),
                  detail=f"got shape {tuple(t.shape)}")
    c.require(key.dtype == value.dtype == key_cache.dtype == value_cache.dtype, "key_cache",
              "key, value and both caches must share one dtype", src.at(src.SPC_DOC, "152"),
              detail=f"{key.dtype}, {value.dtype}, {key_cache.dtype}, {value_cache.dtype}")
    c.require(key.dtype in DTYPES, "key", "dtype must be float16, bfloat16 or int8 on Atlas A2/A3",
              src.at(src.SPC_DOC, "102-103"),
              detail=f"got {key.dtype}")
    c.require(slot_mapping.dtype in (torch.int32, torch.int64), "slot_mapping", "dtype must be int32 or int64",
              src.at(src.SPC_DOC, "105"), detail=f"got {slot_mapping.dtype}")
    c.require(key_cache.is_contiguous() and value_cache.is_contiguous(), "key_cache",
              "the caches must be contiguous (only key and value may be non-contiguous)", src.at(src.SPC_DOC, "151"))


def _check_shapes(c: Checker, key, value, key_cache, value_cache, slot_mapping) -> None:
    c.require(value.shape[:2] == key.shape[:2], "value", "key and value must agree in their first two dims",
              src.at(src.SPC_DOC, "155"), detail=f"key {tuple(key.shape)}, value {tuple(value.shape)}")
    c.require(slot_mapping.shape[0] == key.shape[0], "slot_mapping", "must have one slot per token",
              src.at(src.SPC_DOC, "28-35"), detail=f"{slot_mapping.shape[0]} slots, {key.shape[0]} tokens")
    c.require(key_cache.shape[:2] == value_cache.shape[:2], "value_cache",
              "both caches must have the same num_blocks and block_size", src.at(src.SPC_DOC, "28-35"),
              detail=f"{tuple(key_cache.shape)} vs {tuple(value_cache.shape)}")
    for name, cache, rows in (("key_cache", key_cache, key), ("value_cache", value_cache, value)):
        c.require(tuple(cache.shape[2:]) == tuple(rows.shape[1:]), name, "an ND cache is [num_blocks, block_size, "
                  "num_head, head_size] with the tokens' (num_head, head_size)", src.at(src.SPC_DOC, "28-35"),
                  detail=f"cache {tuple(cache.shape)}, tokens {tuple(rows.shape)}")


def _check_slots(c: Checker, slots: list[int], capacity: int) -> None:
    past = [s for s in slots if s >= capacity]
    c.require(not past, "slot_mapping", "slots must be < num_blocks*block_size (unchecked on hardware: a slot past "
              "the end writes outside the cache)", src.at(src.SPC_DOC, "154"),
              detail=f"slot {past[0] if past else ''} with capacity {capacity}")
    if any(s < 0 for s in slots):
        # The doc's range is [0, num_blocks*block_size-1]; the ND kernels skip a negative slot
        # (`if (slotValue < 0)`, scatter_pa_kv_cache_nd.h L87-88): the code wins.
        c.note("spc/negative-slot", "slot_mapping", "a negative slot is outside the documented range, but the "
               "kernel skips it", src.at(src.SPC_ND_KERNEL, "87-88"), detail=f"doc: {src.at(src.SPC_DOC, '154')}")
    valid = [s for s in slots if s >= 0]
    if len(set(valid)) != len(valid):
        c.hazard("spc/duplicate-slots", "slot_mapping", "duplicate slots: \"重复时不保证正确性\" (emulator: last token "
                 "wins)", src.at(src.SPC_DOC, "154"), detail=f"slot {next(s for s in valid if valid.count(s) > 1)}")


def npu_scatter_pa_kv_cache(key, value, key_cache, value_cache, slot_mapping, *, compress_lens=None,
                            compress_seq_offsets=None, seq_lens=None, cache_mode="PA_NZ"):
    """Emulated torch_npu.npu_scatter_pa_kv_cache: in place, returns None."""
    with op_call():
        c = Checker(OP)
        _refuse_unmodelled(c, key, cache_mode, {"compress_lens": compress_lens,
                                                "compress_seq_offsets": compress_seq_offsets, "seq_lens": seq_lens})
        _check_tensors(c, key, value, key_cache, value_cache, slot_mapping)
        _check_shapes(c, key, value, key_cache, value_cache, slot_mapping)
        slots = [int(s) for s in slot_mapping.tolist()]
        _check_slots(c, slots, key_cache.shape[0] * key_cache.shape[1])
        write_one(key, key_cache, slots)
        write_one(value, value_cache, slots)
    return None
