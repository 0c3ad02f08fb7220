"""reference.scatter_kv: bit-exact writes into a clone, nothing else changes."""

import pytest
import torch

import reference

NB, BS, HKV, D = 6, 4, 2, 3


def _bits(t):
    """Integer view, so comparisons are bitwise (NaN and -0.0 included)."""
    return t.view({8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.int8}[t.element_size()])


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def _caches(ndim, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(NB, BS, HKV, D, generator=g).to(dtype)
    v = torch.randn(NB, BS, HKV, D, generator=g).to(dtype)
    k[0, 0, 0, 0] = float("nan")  # untouched special values must survive bitwise
    v[1, 1, 1, 1] = -0.0
    if ndim == 3:
        k, v = k.reshape(NB, BS, HKV * D), v.reshape(NB, BS, HKV * D)
    return k, v


def _tokens(t, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(t, HKV, D, generator=g).to(dtype),
            torch.randn(t, HKV, D, generator=g).to(dtype))


def _expected(cache, rows, targets):
    """Copy rows into (block, offset) targets one at a time."""
    out = cache.clone().reshape(NB, BS, HKV, D)
    for row, (blk, off) in zip(rows, targets):
        out[blk, off] = row
    return out.reshape(cache.shape)


WRITE_CASES = [
    # (id, slot_mapping, targets as (block, offset) per written token, written token ids)
    ("flat", torch.tensor([5, 0, 23, 12]), [(1, 1), (0, 0), (5, 3), (3, 0)], [0, 1, 2, 3]),
    ("flat_negative_skipped", torch.tensor([7, -1, 8, -5]), [(1, 3), (2, 0)], [0, 2]),
    ("flat_all_skipped", torch.tensor([-1, -1]), [], []),
    ("flat_int32", torch.tensor([3, 4], dtype=torch.int32), [(0, 3), (1, 0)], [0, 1]),
    ("pairs", torch.tensor([[1, 1], [0, 0], [5, 3]]), [(1, 1), (0, 0), (5, 3)], [0, 1, 2]),
    ("pairs_int32", torch.tensor([[2, 3], [4, 0]], dtype=torch.int32), [(2, 3), (4, 0)], [0, 1]),
    ("no_tokens_flat", torch.zeros(0, dtype=torch.long), [], []),
    ("no_tokens_pairs", torch.zeros(0, 2, dtype=torch.long), [], []),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("ndim", [3, 4])
@pytest.mark.parametrize("name,slots,targets,written", WRITE_CASES, ids=[c[0] for c in WRITE_CASES])
def test_scatter_kv_writes_exactly(name, slots, targets, written, ndim, dtype):
    k_cache, v_cache = _caches(ndim, dtype)
    key, value = _tokens(slots.shape[0], dtype)
    inputs = [t.clone() for t in (k_cache, v_cache, key, value, slots)]

    new_k, new_v = reference.scatter_kv(k_cache, v_cache, key, value, slots)

    # Whole caches compared bitwise: written rows are copies, every other slot unchanged.
    assert _same_bits(new_k, _expected(k_cache, key[written], targets))
    assert _same_bits(new_v, _expected(v_cache, value[written], targets))
    # Inputs untouched and not aliased by the outputs.
    for before, after in zip(inputs, (k_cache, v_cache, key, value, slots)):
        assert _same_bits(before, after)
    assert new_k.data_ptr() != k_cache.data_ptr() and new_v.data_ptr() != v_cache.data_ptr()


def test_scatter_kv_non_contiguous_inputs():
    k_cache, v_cache = _caches(4)
    k_t = k_cache.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    key, value = _tokens(6)
    key_nc = key.transpose(1, 2).contiguous().transpose(1, 2)
    slots = torch.tensor([0, 9, -1, 14, 3, 22])
    expected = reference.scatter_kv(k_cache, v_cache, key, value, slots)
    got = reference.scatter_kv(k_t, v_cache, key_nc, value, slots)
    assert _same_bits(got[0], expected[0]) and _same_bits(got[1], expected[1])


def test_flat_and_pair_forms_agree():
    k_cache, v_cache = _caches(3)
    key, value = _tokens(5)
    flat = torch.tensor([17, 2, 4, 23, 8])
    pairs = torch.stack([flat // BS, flat % BS], dim=1)
    a = reference.scatter_kv(k_cache, v_cache, key, value, flat)
    b = reference.scatter_kv(k_cache, v_cache, key, value, pairs)
    assert _same_bits(a[0], b[0]) and _same_bits(a[1], b[1])


def _args(**changes):
    k_cache, v_cache = _caches(4)
    key, value = _tokens(3)
    args = dict(k_cache=k_cache, v_cache=v_cache, key=key, value=value,
                slot_mapping=torch.tensor([0, 5, 9]))
    for name, fn in changes.items():
        args[name] = fn(args)
    return args


ERROR_CASES = [
    ("slot_count", dict(slot_mapping=lambda a: torch.tensor([0, 5])),
     r"slot_mapping must have one entry per token: shape\[0\] 2 != T=3"),
    ("flat_slot_too_big", dict(slot_mapping=lambda a: torch.tensor([0, 24, 9])),
     r"slot_mapping\[1\]=24 must be < num_blocks\*block_size=24"),
    ("flat_duplicate", dict(slot_mapping=lambda a: torch.tensor([9, 5, 9])),
     r"slot_mapping writes slot 9 more than once.*order dependent"),
    ("pair_duplicate", dict(slot_mapping=lambda a: torch.tensor([[2, 1], [0, 0], [2, 1]])),
     r"slot_mapping writes slot 9 more than once"),
    ("pair_block_too_big", dict(slot_mapping=lambda a: torch.tensor([[0, 0], [6, 0], [1, 1]])),
     r"slot_mapping block for token 1 is 6, must be in \[0, num_blocks=6\)"),
    ("pair_block_negative", dict(slot_mapping=lambda a: torch.tensor([[0, 0], [1, 0], [-1, 1]])),
     r"slot_mapping block for token 2 is -1, must be in \[0, num_blocks=6\)"),
    ("pair_offset_too_big", dict(slot_mapping=lambda a: torch.tensor([[0, 4], [1, 0], [1, 1]])),
     r"slot_mapping offset for token 0 is 4, must be in \[0, block_size=4\)"),
    ("pair_offset_negative", dict(slot_mapping=lambda a: torch.tensor([[0, 0], [1, -1], [1, 1]])),
     r"slot_mapping offset for token 1 is -1, must be in \[0, block_size=4\)"),
    ("pair_width", dict(slot_mapping=lambda a: torch.tensor([[0, 0, 0]] * 3)),
     r"slot_mapping in pair form must be \[T, 2\]"),
    ("slot_float", dict(slot_mapping=lambda a: torch.tensor([0.0, 5.0, 9.0])),
     r"slot_mapping must have an integer dtype"),
    ("slot_3d", dict(slot_mapping=lambda a: torch.zeros(3, 2, 1, dtype=torch.long)),
     r"slot_mapping must be 1-D or 2-D"),
    ("slot_list", dict(slot_mapping=lambda a: [0, 5, 9]), r"slot_mapping must be a torch.Tensor"),
    ("key_dtype", dict(key=lambda a: a["key"].double()),
     r"key dtype must equal k_cache dtype"),
    ("value_dtype", dict(value=lambda a: a["value"].half()),
     r"value dtype must equal v_cache dtype"),
    ("key_value_shape", dict(value=lambda a: a["value"][:, :1]),
     r"value shape must equal key shape"),
    ("cache_shapes", dict(v_cache=lambda a: a["v_cache"][:5]),
     r"v_cache shape must equal k_cache shape"),
    ("key_heads_vs_cache", dict(key=lambda a: a["key"][:, :1], value=lambda a: a["value"][:, :1]),
     r"key rows \[Hkv, D\]=\[1, 3\] do not fit k_cache/v_cache shape"),
    ("key_dim_vs_3d_cache", dict(k_cache=lambda a: a["k_cache"].flatten(2)[..., :5],
                                 v_cache=lambda a: a["v_cache"].flatten(2)[..., :5]),
     r"key rows \[Hkv, D\]=\[2, 3\] do not fit k_cache/v_cache shape"),
    ("key_2d", dict(key=lambda a: a["key"][0]), r"key must be a 3-D \[T, Hkv, D\] tensor"),
    ("cache_5d", dict(k_cache=lambda a: a["k_cache"][None]), r"k_cache must be a 3-D or 4-D tensor"),
]


@pytest.mark.parametrize("name,changes,match", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_scatter_kv_rejects(name, changes, match):
    args = _args(**changes)
    with pytest.raises(ValueError, match=match):
        reference.scatter_kv(**args)
