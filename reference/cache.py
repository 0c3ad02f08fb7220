"""scatter_kv: write new key/value rows into a paged KV cache (out of place)."""

import torch

from . import _checks


def scatter_kv(k_cache, v_cache, key, value, slot_mapping):
    """Return (new_k_cache, new_v_cache): clones of the caches with token t's
    key/value rows copied bit-exactly into its slot. The inputs are untouched.

    Caches are [num_blocks, block_size, Hkv, D] or [num_blocks, block_size, Hkv*D];
    key/value are [T, Hkv, D]. slot_mapping is either
      * flat [T]: slot = block * block_size + offset; a negative slot skips the
        token (the Ascend ATB reshape_and_cache convention), or
      * pairs [T, 2] of (block, offset); every entry must be in range.
    Two tokens writing the same slot is an error: the result would depend on
    write order.
    """
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache)):
        if not isinstance(t, torch.Tensor) or t.dim() not in (3, 4):
            raise ValueError(f"{name} must be a 3-D or 4-D tensor, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    for name, t in (("key", key), ("value", value)):
        if not isinstance(t, torch.Tensor) or t.dim() != 3:
            raise ValueError(f"{name} must be a 3-D [T, Hkv, D] tensor, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if k_cache.shape != v_cache.shape:
        raise ValueError(f"v_cache shape must equal k_cache shape, got {tuple(v_cache.shape)} "
                         f"vs {tuple(k_cache.shape)}")
    if key.shape != value.shape:
        raise ValueError(f"value shape must equal key shape, got {tuple(value.shape)} "
                         f"vs {tuple(key.shape)}")
    num_tokens, hkv, d = key.shape
    row_shape = tuple(k_cache.shape[2:])
    if row_shape != ((hkv, d) if k_cache.dim() == 4 else (hkv * d,)):
        raise ValueError(f"key rows [Hkv, D]={[hkv, d]} do not fit k_cache/v_cache shape "
                         f"{tuple(k_cache.shape)} (expected [N, bs, Hkv, D] or [N, bs, Hkv*D])")
    # Same dtype on both sides: the write is a copy, never a conversion.
    if key.dtype != k_cache.dtype:
        raise ValueError(f"key dtype must equal k_cache dtype, got {key.dtype} vs {k_cache.dtype}")
    if value.dtype != v_cache.dtype:
        raise ValueError(f"value dtype must equal v_cache dtype, got {value.dtype} vs {v_cache.dtype}")

    num_blocks, block_size = k_cache.shape[:2]
    slots, keep = _target_slots(slot_mapping, num_tokens, num_blocks, block_size)

    new_k = k_cache.clone(memory_format=torch.contiguous_format)
    new_v = v_cache.clone(memory_format=torch.contiguous_format)
    # [num_blocks * block_size, *row]: row s is slot s.
    flat_k = new_k.view(num_blocks * block_size, *row_shape)
    flat_v = new_v.view(num_blocks * block_size, *row_shape)
    slots = slots.to(new_k.device)
    keep = keep.to(key.device)
    flat_k[slots] = key[keep].reshape(-1, *row_shape)
    flat_v[slots] = value[keep].reshape(-1, *row_shape)
    return new_k, new_v


def _target_slots(slot_mapping, num_tokens, num_blocks, block_size):
    """(flat slot per written token, bool mask of written tokens), validated."""
    _checks.integer_tensor("slot_mapping", slot_mapping, (1, 2))
    if slot_mapping.shape[0] != num_tokens:
        raise ValueError(f"slot_mapping must have one entry per token: shape[0] "
                         f"{slot_mapping.shape[0]} != T={num_tokens}")
    sm = slot_mapping.long().cpu()
    if sm.dim() == 2:
        if sm.shape[1] != 2:
            raise ValueError(f"slot_mapping in pair form must be [T, 2] (block, offset), "
                             f"got shape {tuple(sm.shape)}")
        block, offset = sm[:, 0], sm[:, 1]
        _in_range("slot_mapping block", block, num_blocks, "num_blocks")
        _in_range("slot_mapping offset", offset, block_size, "block_size")
        slots = block * block_size + offset
        keep = torch.ones(num_tokens, dtype=torch.bool)
    else:
        capacity = num_blocks * block_size
        too_big = sm >= capacity
        if bool(too_big.any()):
            t = int(too_big.nonzero()[0, 0])
            raise ValueError(f"slot_mapping[{t}]={int(sm[t])} must be < num_blocks*block_size="
                             f"{capacity} (negative slots are skipped)")
        keep = sm >= 0
        slots = sm[keep]
    if slots.unique().numel() != slots.numel():
        values, counts = slots.unique(return_counts=True)
        dup = int(values[counts > 1][0])
        raise ValueError(f"slot_mapping writes slot {dup} more than once; the result would be "
                         f"order dependent (duplicate target slots)")
    return slots, keep


def _in_range(name, values, upper, upper_name):
    bad = (values < 0) | (values >= upper)
    if bool(bad.any()):
        t = int(bad.nonzero()[0, 0])
        raise ValueError(f"{name} for token {t} is {int(values[t])}, must be in "
                         f"[0, {upper_name}={upper})")
