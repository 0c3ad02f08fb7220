"""One case per contract rule the emulator enforces as a violation.

Every case starts from a valid call (the bases below pass without any hazard), changes one thing,
and expects a `ContractViolation` whose message names the op, the argument and the rule, with its
public source. A second table covers documented features the emulator does not model.
"""

import pytest
import torch
from emulator_ops import AIR, MASK, RAC, SCU, V1, V2  # noqa: E402  (tests/ is on sys.path)

from conformance import emulator
from conformance.emulator import ContractViolation, EmulatorUnsupported, HazardError

tn = emulator.torch_npu
air = emulator.torchair.ops
F16, BF16 = torch.float16, torch.bfloat16

def r(*shape, dtype=F16):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape) + len(shape))).to(dtype)


# ---- valid bases (fn, kwargs); positional query/key/value (or op inputs) are kwargs here too


def decode(**over):
    """v2 BNSD paged decode, fp16, D 64, GQA 4/2, block_size 16."""
    kw = dict(query=r(2, 4, 1, 64), key=r(6, 16, 128), value=r(6, 16, 128), num_query_heads=4,
              num_key_value_heads=2, input_layout="BNSD",
              block_table=torch.tensor([[4, -1], [1, 3]], dtype=torch.int32),
              block_size=16, actual_seq_kvlen=[5, 20], softmax_scale=0.125, inner_precise=1)
    kw.update(over)
    return tn.npu_fused_infer_attention_score_v2, kw


def prefill(**over):
    """v2 TND prefill, bf16 (the only dtype the TND tiling takes), D 128, GQA 2/1, sparse_mode 3 with the
    optimized mask."""
    kw = dict(query=r(8, 2, 128, dtype=BF16), key=r(8, 1, 128, dtype=BF16), value=r(8, 1, 128, dtype=BF16),
              num_query_heads=2, num_key_value_heads=1,
              input_layout="TND", softmax_scale=0.08, atten_mask=MASK, actual_seq_qlen=[3, 8],
              actual_seq_kvlen=[3, 8], sparse_mode=3, inner_precise=1)
    kw.update(over)
    return tn.npu_fused_infer_attention_score_v2, kw


def prompt(**over):
    """v1 BSH prompt (Q_S 4, KV_S 6), fp16, 2 heads of 64, sparse_mode 0 without a mask."""
    kw = dict(query=r(2, 4, 128), key=r(2, 6, 128), value=r(2, 6, 128), num_heads=2, scale=0.1)
    kw.update(over)
    return tn.npu_fused_infer_attention_score, kw


def paged_prompt(**over):
    """v1 BSH prompt over a paged cache, block_size 128."""
    kw = dict(query=r(2, 4, 128), key=r(4, 128, 128), value=r(4, 128, 128), num_heads=2, scale=0.1,
              block_table=torch.tensor([[2, 0], [1, -1]], dtype=torch.int32), block_size=128,
              actual_seq_lengths_kv=[200, 100])
    kw.update(over)
    return tn.npu_fused_infer_attention_score, kw


def graph(**over):
    """torchair air op, BNSD paged decode with int64 length tensors (called eagerly: hazard only)."""
    kw = dict(query=r(2, 4, 1, 64), key=r(6, 16, 128), value=r(6, 16, 128), num_heads=4, num_key_value_heads=2,
              input_layout="BNSD", scale=0.125, actual_seq_lengths_kv=torch.tensor([5, 20]),
              block_table=torch.tensor([[4, -1], [1, 3]], dtype=torch.int32), block_size=16, inner_precise=1)
    kw.update(over)
    return air.npu_fused_infer_attention_score, kw


def cache_write(**over):
    kw = dict(key=r(3, 2, 16), value=r(3, 2, 16), key_cache=torch.zeros(4, 4, 2, 16, dtype=F16),
              value_cache=torch.zeros(4, 4, 2, 16, dtype=F16), slot_indices=torch.tensor([3, -1, 9], dtype=torch.int32))
    kw.update(over)
    return tn._npu_reshape_and_cache, kw


def scatter(**over):
    """2-D (block, offset) pairs into a 3-D cache along axis -2, as the decode layer writes."""
    kw = {"self": torch.zeros(6, 16, 128, dtype=F16), "indices": torch.tensor([[4, 3], [1, 15]], dtype=torch.int32),
          "updates": r(2, 1, 128), "axis": -2}
    kw.update(over)
    return tn.scatter_update_, kw


def scatter1d(**over):
    """1-D per-row offsets: updates row i goes to cache block i at offset indices[i]."""
    over.setdefault("indices", torch.tensor([3, 15], dtype=torch.int32))
    return scatter(**over)


def invoke(fn, kw):
    kw = dict(kw)
    if fn is tn._npu_reshape_and_cache:
        return fn(**kw)
    if fn is tn.scatter_update_:
        return fn(kw.pop("self"), kw.pop("indices"), kw.pop("updates"), kw.pop("axis"))
    return fn(kw.pop("query"), kw.pop("key"), kw.pop("value"), **kw)


@pytest.mark.parametrize("base", [decode, prefill, prompt, paged_prompt, cache_write, scatter, scatter1d])
def test_bases_are_valid_and_hazard_free(base):
    with emulator.strict_contracts():
        invoke(*base())


# ---- the table: (id, call, op, argument, rule fragment)

def _tbl():
    return torch.tensor([[4, -1], [1, 3]], dtype=torch.int32)


VIOLATIONS = [
    # heads, layout, dtypes (meta registrations; v1/v2 docs)
    ("num_heads_zero", decode(num_query_heads=0), V2, "num_query_heads", "must be > 0"),
    ("kv_heads_negative", decode(num_key_value_heads=-1), V2, "num_key_value_heads", "must be >= 0"),
    ("gqa_not_divisible", decode(num_key_value_heads=3), V2, "num_key_value_heads", "must divide"),
    ("gqa_group_over_64", decode(query=r(1, 128, 1, 16), key=r(1, 1, 4, 16), value=r(1, 1, 4, 16),
                                 num_query_heads=128, num_key_value_heads=1, block_table=None,
                                 actual_seq_kvlen=None), V2, "num_key_value_heads", "group size must be <= 64"),
    ("heads_over_256", decode(query=r(1, 272, 1, 16), key=r(1, 272, 2, 16), value=r(1, 272, 2, 16),
                              num_query_heads=272, num_key_value_heads=0, block_table=None, actual_seq_kvlen=None),
     V2, "num_query_heads", "must be <= 256"),
    ("unknown_layout", decode(input_layout="BHSD"), V2, "input_layout", "unknown layout"),
    ("query_rank", decode(query=r(2, 4, 64)), V2, "query", "needs a 4-D query"),
    ("query_dtype", decode(query=r(2, 4, 1, 64, dtype=torch.float64), key=r(6, 16, 128, dtype=torch.float64),
                           value=r(6, 16, 128, dtype=torch.float64)), V2, "query", "dtype must be float16 or bfloat16"),
    ("kv_dtype", decode(key=r(6, 16, 128, dtype=torch.bfloat16)), V2, "key", "must have the query's dtype"),
    ("bsh_hidden_not_multiple", prompt(num_heads=3), V1, "query", "hidden size must be a multiple"),
    ("n_axis_mismatch", decode(num_query_heads=2), V2, "num_query_heads", "must equal the query's N axis"),
    ("head_dim_over_512", decode(query=r(1, 1, 1, 528), key=r(1, 1, 3, 528), value=r(1, 1, 3, 528),
                                 num_query_heads=1, num_key_value_heads=1, block_table=None, actual_seq_kvlen=None),
     V2, "query", "head dim D must be in (0, 512]"),
    ("value_dim_over_512", decode(query=r(1, 1, 1, 64), key=r(1, 1, 3, 64), value=r(1, 1, 3, 528),
                                  num_query_heads=1, num_key_value_heads=1, block_table=None, actual_seq_kvlen=None),
     V2, "value", "value head dim must be in (0, 512]"),
    # paging (v2 doc page-attention constraints; meta; IFA/PFA tiling)
    ("table_dtype", decode(block_table=_tbl().long()), V2, "block_table", "dtype must be int32"),
    ("table_rank", decode(block_table=torch.tensor([4, 1], dtype=torch.int32)), V2, "block_table", "must be 2-D"),
    ("cache_rank", decode(key=r(96, 128), value=r(96, 128)), V2, "key", "paged cache must be 3-D"),
    ("cache_shapes_differ", decode(value=r(7, 16, 128)), V2, "value", "identical shapes"),
    ("block_size_zero", decode(block_size=0), V2, "block_size", "must be > 0 when block_table is given"),
    ("cache_block_dim", decode(block_size=32), V2, "key", "cache dim 1 must equal block_size"),
    ("cache_hidden_dim", decode(num_key_value_heads=1), V2, "key", "cache dim 2 must equal num_key_value_heads * D"),
    ("cache_hidden_over_65535", decode(query=r(1, 128, 1, 512), key=r(1, 16, 65536), value=r(1, 16, 65536),
                                       num_query_heads=128, num_key_value_heads=128,
                                       block_table=torch.tensor([[0]], dtype=torch.int32), actual_seq_kvlen=[4]),
     V2, "key", "must be <= 65535"),
    ("cache_4d_with_bsh", graph(query=r(2, 1, 256), key=r(6, 2, 16, 64), value=r(6, 2, 16, 64), input_layout="BSH"),
     AIR, "key", "needs a BNSD or TND query"),
    ("cache_4d_dims", decode(key=r(6, 16, 2, 64), value=r(6, 16, 2, 64)), V2, "key",
     "4-D cache must be (num_blocks, num_key_value_heads, block_size, D)"),
    ("table_rows", decode(block_table=torch.tensor([[4, -1]], dtype=torch.int32)), V2, "block_table",
     "dim 0 must equal the batch size"),
    ("table_columns", decode(actual_seq_kvlen=[5, 40]), V2, "block_table", "needs at least"),
    ("block_id_out_of_range", decode(block_table=torch.tensor([[6, -1], [1, 3]], dtype=torch.int32)), V2,
     "block_table", "block ids in the columns a sequence uses must lie in [0, num_blocks)"),
    ("block_id_negative_in_use", decode(block_table=torch.tensor([[4, -1], [1, -1]], dtype=torch.int32)), V2,
     "block_table", "unchecked on hardware"),
    ("prompt_cache_too_small", paged_prompt(key=r(2, 128, 128), value=r(2, 128, 128),
                                            block_table=torch.tensor([[0, 1], [1, -1]], dtype=torch.int32)),
     V1, "key", "must hold at least sum(ceil(kv_len / block_size)) blocks"),
    ("decode_block_size_16", decode(key=r(6, 24, 128), value=r(6, 24, 128), block_size=24), V2, "block_size",
     "multiple of 16"),
    ("decode_block_size_512", decode(key=r(2, 528, 128), value=r(2, 528, 128), block_size=528,
                                     block_table=torch.tensor([[0], [1]], dtype=torch.int32)), V2, "block_size",
     "<= 512"),
    ("prompt_block_size_128", paged_prompt(key=r(8, 64, 128), value=r(8, 64, 128), block_size=64,
                                           block_table=torch.tensor([[2, 0, 3, 4], [1, 5, -1, -1]], dtype=torch.int32)),
     V1, "block_size", "multiple of 128 in [128, 1024]"),
    ("tnd_block_size_64", prefill(key=r(4, 64, 128, dtype=BF16), value=r(4, 64, 128, dtype=BF16), block_size=64,
                                  actual_seq_kvlen=[4, 6], actual_seq_qlen=[3, 4], query=r(4, 2, 128, dtype=BF16),
                                  block_table=torch.tensor([[0, -1], [1, 2]], dtype=torch.int32)),
     V2, "block_size", "TND paging needs block_size a multiple of 128 in [128, 1024]"),
    ("tnd_block_size_over_1024", prefill(key=r(2, 1152, 128, dtype=BF16), value=r(2, 1152, 128, dtype=BF16),
                                         block_size=1152, actual_seq_kvlen=[4, 6], actual_seq_qlen=[3, 4],
                                         query=r(4, 2, 128, dtype=BF16),
                                         block_table=torch.tensor([[0], [1]], dtype=torch.int32)),
     V2, "block_size", "a multiple of 128 in [128, 1024]"),
    # TND dtype and head dims (PFA tiling CheckInputShapeWhenLayoutIsTND; aclnn V4 doc)
    ("tnd_float16", prefill(query=r(8, 2, 128), key=r(8, 1, 128), value=r(8, 1, 128)), V2, "query",
     "layout TND needs bfloat16"),
    ("tnd_head_dim_32", prefill(query=r(8, 2, 32, dtype=BF16), key=r(8, 1, 32, dtype=BF16),
                                value=r(8, 1, 32, dtype=BF16)), V2, "query",
     "layout TND needs (D, Dv) of (192, 192), (192, 128), (128, 128) or (64, 64)"),
    ("tnd_head_dims_mixed", prefill(value=r(8, 1, 64, dtype=BF16)), V2, "query", "layout TND needs (D, Dv)"),
    ("tnd_gqa_value_dim_192", prefill(query=r(8, 2, 192, dtype=BF16), key=r(8, 1, 192, dtype=BF16),
                                      value=r(8, 1, 192, dtype=BF16)), V2, "value",
     "layout TND with GQA (G != 1) refuses value head dim 192"),
    # key/value head dims: only TND takes Dv != D (IFA KvShapePostProcess; PFA CheckD; PFA CheckPAKeyValueParams)
    ("decode_value_dim_differs", decode(query=r(2, 4, 1, 192), key=r(2, 2, 5, 192), value=r(2, 2, 5, 128),
                                        block_table=None, actual_seq_kvlen=None), V2, "value",
     "decode (Q_S == 1) needs key and value of identical shapes"),
    ("decode_bsh_value_dim_differs", decode(query=r(2, 1, 4 * 192), key=r(2, 5, 2 * 192), value=r(2, 5, 2 * 128),
                                            input_layout="BSH", block_table=None, actual_seq_kvlen=None), V2, "value",
     "decode (Q_S == 1) needs key and value of identical shapes"),
    ("prompt_value_dim_differs", prompt(value=r(2, 6, 64)), V1, "value",
     "layouts BSH/BSND/BNSD need the value head dim equal to D"),
    ("tnd_paged_value_rank", prefill(query=r(4, 2, 192, dtype=BF16), key=r(4, 128, 2 * 192, dtype=BF16),
                                     value=r(4, 2, 128, 128, dtype=BF16), num_key_value_heads=2, block_size=128,
                                     actual_seq_qlen=[3, 4], actual_seq_kvlen=[4, 6],
                                     block_table=torch.tensor([[0], [1]], dtype=torch.int32)),
     V2, "value", "key and value caches must have the same rank"),
    ("tnd_paged_value_blocks", prefill(query=r(4, 2, 192, dtype=BF16), key=r(4, 128, 2 * 192, dtype=BF16),
                                       value=r(3, 128, 2 * 128, dtype=BF16), num_key_value_heads=2, block_size=128,
                                       actual_seq_qlen=[3, 4], actual_seq_kvlen=[4, 6],
                                       block_table=torch.tensor([[0], [1]], dtype=torch.int32)),
     V2, "value", "key and value caches must agree in every dim but the last"),
    ("tnd_paged_value_dims_pair", prefill(query=r(4, 2, 128, dtype=BF16), key=r(4, 128, 2 * 128, dtype=BF16),
                                          value=r(4, 128, 2 * 64, dtype=BF16), num_key_value_heads=2, block_size=128,
                                          actual_seq_qlen=[3, 4], actual_seq_kvlen=[4, 6],
                                          block_table=torch.tensor([[0], [1]], dtype=torch.int32)),
     V2, "query", "layout TND needs (D, Dv)"),
    ("paged_needs_kv_lengths", decode(actual_seq_kvlen=None), V2, "actual_seq_kvlen", "is required with block_table"),
    # unpaged key/value shapes
    ("unpaged_rank", prompt(key=r(2, 6, 2, 64), value=r(2, 6, 2, 64)), V1, "key", "must have the query's rank"),
    ("bsh_key_hidden", prompt(key=r(2, 6, 64), value=r(2, 6, 64)), V1, "key", "key H must equal"),
    ("bsnd_key_dims", decode(query=r(2, 1, 4, 64), key=r(2, 6, 4, 64), value=r(2, 6, 4, 64), input_layout="BSND",
                             block_table=None, actual_seq_kvlen=None), V2, "key",
     "key must be (B, KV_S, num_key_value_heads, D)"),
    ("key_batch", prompt(key=r(3, 6, 128), value=r(3, 6, 128)), V1, "key", "key batch must equal query batch"),
    ("value_vs_key", prompt(value=r(2, 5, 128)), V1, "value", "value must match key"),
    # lengths (PFA tiling; v2 doc; torchair doc)
    ("tnd_needs_q_lengths", prefill(actual_seq_qlen=None), V2, "actual_seq_qlen", "is required with layout TND"),
    ("tnd_not_cumulative", prefill(actual_seq_qlen=[3, 5], actual_seq_kvlen=[3, 5]), V2, "actual_seq_qlen",
     "last cumulative TND length must equal query T"),
    ("tnd_decreasing", prefill(actual_seq_qlen=[5, 3, 8], actual_seq_kvlen=[5, 3, 8]), V2, "actual_seq_qlen",
     "non-decreasing"),
    ("tnd_negative", prefill(actual_seq_qlen=[-1, 8], actual_seq_kvlen=[3, 8]), V2, "actual_seq_qlen",
     "must be non-negative"),
    ("tnd_kv_count", prefill(actual_seq_kvlen=[8]), V2, "actual_seq_kvlen", "as many entries as actual_seq_qlen"),
    ("tnd_paged_kv_count", prefill(key=r(4, 128, 128, dtype=BF16), value=r(4, 128, 128, dtype=BF16), block_size=128,
                                   actual_seq_kvlen=[4, 6, 1],
                                   block_table=torch.tensor([[0], [1]], dtype=torch.int32)),
     V2, "actual_seq_kvlen", "one per-sequence length per batch"),
    ("tnd_batch_over_4096", prefill(query=r(0, 2, 128, dtype=BF16), key=r(0, 1, 128, dtype=BF16),
                                    value=r(0, 1, 128, dtype=BF16),
                                    actual_seq_qlen=[0] * 4097, actual_seq_kvlen=[0] * 4097, sparse_mode=0,
                                    atten_mask=None), V2, "actual_seq_qlen", "must be in [1, 4096]"),
    ("q_list_count", prompt(query=r(3, 4, 128), key=r(3, 6, 128), value=r(3, 6, 128), actual_seq_lengths=[4, 4]),
     V1, "actual_seq_lengths", "1 entry or at least batch-size entries"),
    ("q_len_over_s", prompt(actual_seq_lengths=[5]), V1, "actual_seq_lengths", "lengths must be in [0, Q_S]"),
    ("kv_len_over_s", prompt(actual_seq_lengths_kv=[6, 7]), V1, "actual_seq_lengths_kv", "lengths must be <= KV_S"),
    ("kv_len_negative", decode(actual_seq_kvlen=[-1, 5]), V2, "actual_seq_kvlen", "lengths must be >= 0"),
    ("lengths_float_tensor", decode(actual_seq_kvlen=torch.tensor([5.0, 20.0])), V2, "actual_seq_kvlen",
     "must hold integers"),
    ("lengths_float_item", decode(actual_seq_kvlen=[5, 2.5]), V2, "actual_seq_kvlen", "must be a list of ints"),
    ("air_lengths_list", graph(actual_seq_lengths_kv=[5, 20]), AIR, "actual_seq_lengths_kv", "must be a Tensor"),
    ("air_lengths_int32", graph(actual_seq_lengths_kv=torch.tensor([5, 20], dtype=torch.int32)), AIR,
     "actual_seq_lengths_kv", "must be an int64 tensor"),
    # masks, sparse modes, inner_precise (aclnn V4 doc; sparse_mode doc; PFA tiling; v2 doc)
    ("mask_dtype", prompt(atten_mask=torch.zeros(4, 6), sparse_mode=1), V1, "atten_mask",
     "dtype must be bool, int8 or uint8"),
    ("mask_int_values", prompt(atten_mask=torch.full((4, 6), 2, dtype=torch.int8), sparse_mode=1), V1, "atten_mask",
     "values must be 0 or 1"),
    ("decode_inner_precise", decode(inner_precise=2), V2, "inner_precise", "must be 0 or 1 when Q_S == 1"),
    ("decode_mask_dims", decode(atten_mask=torch.zeros(2, 2, 32, dtype=torch.bool)), V2, "atten_mask",
     "decode mask must be (B, KV_S)"),
    ("decode_mask_short", decode(atten_mask=torch.zeros(2, 8, dtype=torch.bool)), V2, "atten_mask",
     "decode mask must cover block_table columns x block_size"),
    ("dense_decode_mask_short", decode(query=r(2, 4, 1, 64), key=r(2, 2, 9, 64), value=r(2, 2, 9, 64),
                                       block_table=None, actual_seq_kvlen=[5, 9],
                                       atten_mask=torch.zeros(2, 8, dtype=torch.bool)), V2, "atten_mask",
     "decode mask must cover the longest actual_seq_kvlen"),
    ("decode_mask_batch", decode(atten_mask=torch.zeros(3, 32, dtype=torch.bool)), V2, "atten_mask",
     "dim 0 must equal the batch size"),
    ("decode_mask_without_batch", decode(atten_mask=torch.zeros(1, 1, 1, 32, dtype=torch.bool)), V2, "atten_mask",
     "dim 0 must equal the batch size"),
    ("decode_mode3_mask_shape", decode(atten_mask=torch.zeros(2, 32, dtype=torch.bool), sparse_mode=3), V2,
     "atten_mask", "decode with sparse_mode 3 needs the 2-D (2048, 2048) mask"),
    ("decode_mode4_mask_3d", decode(atten_mask=MASK[None], sparse_mode=4), V2, "atten_mask",
     "decode with sparse_mode 4 needs the 2-D (2048, 2048) mask"),
    ("sparse_mode_5", prompt(sparse_mode=5, atten_mask=MASK), V1, "sparse_mode", "modes 5-8 are not implemented"),
    ("sparse_mode_10", prompt(sparse_mode=10, atten_mask=MASK), V1, "sparse_mode", "must be one of 0-4"),
    ("tnd_sparse_mode_2", prefill(sparse_mode=2), V2, "sparse_mode", "TND supports only sparse_mode 0, 3 and 4"),
    ("tnd_mode0_with_mask", prefill(sparse_mode=0), V2, "atten_mask", "TND with sparse_mode 0 takes no mask"),
    ("mode3_needs_mask", prompt(sparse_mode=3), V1, "atten_mask", "is required when sparse_mode is 3"),
    ("mode3_mask_shape", prompt(sparse_mode=3, atten_mask=MASK[:1024, :1024]), V1, "atten_mask",
     "needs the optimized (2048, 2048) mask"),
    ("mode1_mask_shape", prompt(sparse_mode=1, atten_mask=torch.zeros(3, 1, 4, 6, dtype=torch.bool)), V1,
     "atten_mask", "sparse_mode 0/1 mask must be"),
    ("mode1_mask_small", prompt(sparse_mode=1, atten_mask=torch.zeros(4, 5, dtype=torch.bool)), V1, "atten_mask",
     "must cover Q_S x KV_S"),
    ("paged_mode1_mask_small", paged_prompt(sparse_mode=1, atten_mask=torch.zeros(4, 200, dtype=torch.bool)), V1,
     "atten_mask", "must cover Q_S x KV_S"),
    ("tnd_band_value_dim", prefill(query=r(8, 2, 192, dtype=BF16), key=r(8, 2, 192, dtype=BF16),
                                   value=r(8, 2, 192, dtype=BF16), num_key_value_heads=2, sparse_mode=4), V2,
     "sparse_mode", "band mode with TND needs value head dim 64 or 128"),
    ("tnd_band_pre_next", prefill(sparse_mode=4, pre_tokens=-3, next_tokens=1), V2, "pre_tokens",
     "pre_tokens + next_tokens >= 0"),
    ("tnd_band_pre_q", prefill(sparse_mode=4, pre_tokens=-4, next_tokens=10), V2, "pre_tokens",
     "pre_tokens + q_len >= 0"),
    ("band_both_negative", prompt(sparse_mode=4, atten_mask=MASK, pre_tokens=-1, next_tokens=-1), V1, "pre_tokens",
     "rejects negative pre_tokens and next_tokens together"),
    ("tnd_mode3_q_over_kv", prefill(query=r(4, 2, 128, dtype=BF16), key=r(3, 1, 128, dtype=BF16),
                                    value=r(3, 1, 128, dtype=BF16), actual_seq_qlen=[4],
                                    actual_seq_kvlen=[3]), V2, "sparse_mode", "q_len <= kv_len"),
    ("tnd_inner_precise", prefill(inner_precise=4), V2, "inner_precise", "must be 0-3"),
    ("prompt_inner_precise", prompt(inner_precise=4), V1, "inner_precise", "must be 0-3"),
    # _npu_reshape_and_cache (ATB operation checks and doxygen; unchecked slot values)
    ("rac_key_rank", cache_write(key=r(3, 32)), RAC, "key", "must be 3-D"),
    ("rac_cache_rank", cache_write(key_cache=torch.zeros(4, 4, 32, dtype=F16)), RAC, "key_cache", "must be 4-D"),
    ("rac_slot_rank", cache_write(slot_indices=torch.tensor([[3, -1, 9]], dtype=torch.int32)), RAC, "slot_indices",
     "must be 1-D"),
    ("rac_dtypes_differ", cache_write(value_cache=torch.zeros(4, 4, 2, 16, dtype=torch.bfloat16)), RAC, "key_cache",
     "share one dtype"),
    ("rac_dtype", cache_write(key=r(3, 2, 16, dtype=torch.float64), value=r(3, 2, 16, dtype=torch.float64),
                              key_cache=torch.zeros(4, 4, 2, 16, dtype=torch.float64),
                              value_cache=torch.zeros(4, 4, 2, 16, dtype=torch.float64)), RAC, "key",
     "dtype must be float16, bfloat16 or int8"),
    ("rac_slot_dtype", cache_write(slot_indices=torch.tensor([3, -1, 9])), RAC, "slot_indices", "dtype must be int32"),
    ("rac_empty_key", cache_write(key=r(0, 2, 16), value=r(0, 2, 16), slot_indices=torch.tensor([], dtype=torch.int32)),
     RAC, "key", "num_tokens must be > 0"),
    ("rac_value_heads", cache_write(value=r(3, 1, 16), value_cache=torch.zeros(4, 4, 1, 16, dtype=F16)), RAC, "value",
     "same num_tokens and num_heads"),
    ("rac_cache_blocks", cache_write(value_cache=torch.zeros(5, 4, 2, 16, dtype=F16)), RAC, "value_cache",
     "same num_blocks and block_size"),
    ("rac_key_cache_heads", cache_write(key_cache=torch.zeros(4, 4, 2, 32, dtype=F16)), RAC, "key_cache",
     "cache (num_heads, head_size) must equal key's"),
    ("rac_value_cache_heads", cache_write(value=r(3, 2, 8), value_cache=torch.zeros(4, 4, 2, 16, dtype=F16)), RAC,
     "value_cache", "must equal value's"),
    ("rac_short_slots", cache_write(slot_indices=torch.tensor([3, 5], dtype=torch.int32)), RAC, "slot_indices",
     "one slot per token"),
    ("rac_slot_past_end", cache_write(slot_indices=torch.tensor([3, 16, 9], dtype=torch.int32)), RAC, "slot_indices",
     "slots must be < num_blocks*block_size"),
    # scatter_update_ (aclnnInplaceScatterUpdate doc; proto; unchecked index values)
    ("scu_empty", scatter(updates=r(0, 1, 128), indices=torch.zeros(0, 2, dtype=torch.int32)), SCU, "indices",
     "empty tensors are not supported"),
    ("scu_dtype", scatter(updates=r(2, 1, 128, dtype=torch.float32)), SCU, "updates", "must have the dtype of self"),
    ("scu_float64", scatter(**{"self": torch.zeros(6, 16, 128, dtype=torch.float64),
                               "updates": r(2, 1, 128, dtype=torch.float64)}), SCU, "self",
     "dtype must be int8, float16, float32, bfloat16 or int32"),
    ("scu_rank_low", scatter(**{"self": torch.zeros(96, dtype=F16), "updates": r(2)}), SCU, "self", "rank must be 2-8"),
    ("scu_rank_mismatch", scatter(updates=r(2, 128)), SCU, "updates", "must have the rank of self"),
    ("scu_index_dtype", scatter(indices=torch.tensor([[4.0, 3.0], [1.0, 15.0]])), SCU, "indices",
     "dtype must be int32 or int64"),
    ("scu_index_rank", scatter(indices=torch.zeros(2, 2, 1, dtype=torch.int32)), SCU, "indices",
     "must be 0-, 1- or 2-D"),
    ("scu_index_pairs", scatter(indices=torch.zeros(2, 3, dtype=torch.int32)), SCU, "indices",
     "2-D indices must have shape [n, 2]"),
    ("scu_axis_zero", scatter(axis=0), SCU, "axis", "must be in (-rank, rank) and not 0"),
    ("scu_axis_range", scatter(axis=3), SCU, "axis", "must be in (-rank, rank) and not 0"),
    ("scu_scalar_index", scatter(indices=torch.tensor(3, dtype=torch.int32)), SCU, "updates",
     "with 0-D indices dim 0 of updates must be 1"),
    ("scu_count", scatter(indices=torch.tensor([[4, 3]], dtype=torch.int32)), SCU, "indices",
     "dim 0 must equal dim 0 of updates"),
    ("scu_too_many_rows", scatter(updates=r(7, 1, 128), indices=torch.zeros(7, 2, dtype=torch.int32)), SCU, "updates",
     "must be <= dim 0 of self"),
    ("scu_other_dims", scatter(updates=r(2, 1, 64)), SCU, "updates", "must match self (data) in every dim"),
    ("scu_last_axis_alignment", scatter(**{"self": torch.zeros(2, 3, 6), "updates": r(2, 3, 1, dtype=torch.float32),
                                           "indices": torch.tensor([0, 5]), "axis": -1}), SCU, "axis",
     "32-byte aligned"),
    ("scu_1d_negative", scatter1d(indices=torch.tensor([3, -1], dtype=torch.int32)), SCU, "indices",
     "indices[i] must be >= 0"),
    ("scu_1d_flat_slot", scatter1d(indices=torch.tensor([3, 16 * 1 + 3], dtype=torch.int32)), SCU, "indices",
     "is an offset along axis inside row i of self, not a flat slot"),
    ("scu_2d_row_range", scatter(indices=torch.tensor([[6, 3], [1, 15]], dtype=torch.int32)), SCU, "indices",
     "indices[i, 0] (the target row of self) must lie in"),
    ("scu_2d_negative_row", scatter(indices=torch.tensor([[-1, 3], [1, 15]], dtype=torch.int32)), SCU, "indices",
     "target row of self"),
    ("scu_2d_offset", scatter(indices=torch.tensor([[4, 16], [1, 15]], dtype=torch.int32)), SCU, "indices",
     "indices[i, 1] + updates.shape[axis] must be <= self.shape[axis]"),
    ("scu_2d_negative_offset", scatter(indices=torch.tensor([[4, -1], [1, 15]], dtype=torch.int32)), SCU, "indices",
     "indices[i, 1] must be >= 0"),
]


@pytest.mark.parametrize("call, op, argument, fragment", [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS])
def test_violation(call, op, argument, fragment):
    fn, kw = call
    with pytest.raises(ContractViolation) as info:
        invoke(fn, kw)
    exc = info.value
    assert not isinstance(exc, HazardError)
    message = str(exc)
    assert exc.op == op and message.startswith(op + ":")
    assert exc.argument == argument and f"argument '{argument}'" in message
    assert fragment in exc.rule, message
    assert exc.source and exc.source in message


def test_violation_ids_are_unique_and_cover_every_op():
    ids = [v[0] for v in VIOLATIONS]
    assert len(ids) == len(set(ids))
    assert {v[2] for v in VIOLATIONS} == {V1, V2, AIR, RAC, SCU}


def test_violation_leaves_the_cache_untouched():
    fn, kw = scatter(indices=torch.tensor([[4, 3], [1, 16]], dtype=torch.int32))
    with pytest.raises(ContractViolation):
        invoke(fn, kw)
    assert kw["self"].abs().sum() == 0


UNSUPPORTED = [
    ("layout_ntd", decode(input_layout="NTD"), "input_layout"),
    ("layout_bnsd_bsnd", prompt(input_layout="BNSD_BSND", query=r(2, 2, 4, 64), key=r(2, 2, 6, 64),
                                value=r(2, 2, 6, 64)), "input_layout"),
    ("pse_shift", prompt(pse_shift=r(1, 2, 4, 6)), "pse_shift"),
    ("quant_scale_out", decode(quant_scale_out=torch.ones(1)), "quant_scale_out"),
    ("v1_antiquant_mode", prompt(antiquant_mode=1), "antiquant_mode"),
    ("v2_query_dtype_attr", decode(query_dtype=1), "query_dtype"),
    ("v2_quant_scale_p", decode(quant_scale_p=torch.ones(1)), "quant_scale_p"),
    ("v2_out_dtype", decode(out_dtype=1), "out_dtype"),
    ("left_padding", prompt(kv_padding_size=torch.zeros(1, dtype=torch.int64)), "kv_padding_size"),
    ("int8_query", decode(query=r(2, 4, 1, 64).to(torch.int8)), "query"),
    ("int8_kv", decode(key=r(6, 16, 128).to(torch.int8), value=r(6, 16, 128).to(torch.int8)), "key"),
    ("nz_cache", decode(key=r(6, 2, 4, 16, 16), value=r(6, 2, 4, 16, 16)), "key"),
    ("tree_mask", prompt(sparse_mode=9, atten_mask=MASK), "sparse_mode"),
]


@pytest.mark.parametrize("call, argument", [u[1:] for u in UNSUPPORTED], ids=[u[0] for u in UNSUPPORTED])
def test_unmodelled_feature_is_refused_clearly(call, argument):
    fn, kw = call
    with pytest.raises(EmulatorUnsupported) as info:
        invoke(fn, kw)
    assert info.value.argument == argument
    assert "not modelled by the CPU op emulator" in str(info.value)
    assert not isinstance(info.value, ContractViolation)
