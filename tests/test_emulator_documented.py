"""The emulator reproduces every documented example and edge case of the op contracts.

Each test names the public source of the behaviour it pins down. Expected values come from a tiny
per-row float64 loop written here (not from the emulator, not from `reference`).
"""

import math

import pytest
import torch

from conformance import emulator
from conformance.emulator import ContractViolation

tn = emulator.torch_npu
MASK = torch.triu(torch.ones(2048, 2048, dtype=torch.bool), diagonal=1)


def rows_oracle(q, k, v, visible, scale):
    """q [Sq, N, D], k/v [Sk, Nkv, D], visible [Sq, Sk] -> (out [Sq, N, Dv], lse [Sq, N]) in float64."""
    sq, n, _ = q.shape
    group = n // k.shape[1]
    out = torch.zeros(sq, n, v.shape[-1], dtype=torch.float64)
    lse = torch.full((sq, n), math.inf, dtype=torch.float64)
    for i in range(sq):
        keys = visible[i].nonzero().flatten()
        if keys.numel() == 0:
            continue
        for h in range(n):
            s = scale * (k[keys, h // group].double() @ q[i, h].double())
            lse[i, h] = torch.logsumexp(s, 0)
            out[i, h] = torch.softmax(s, 0) @ v[keys, h // group].double()
    return out, lse


def visible(q_len, kv_len, rule):
    return torch.tensor([[rule(i, j) for j in range(kv_len)] for i in range(q_len)], dtype=torch.bool)


def close(actual, expected, tol=1e-5):
    torch.testing.assert_close(actual.double(), expected.double(), atol=tol, rtol=tol)


# ----------------------------------------------------------------------------------------------
# scatter_update_ (hicann/ops-nn index/scatter/docs/aclnnInplaceScatterUpdate.md; notes' probe)


def _probe_updates():
    return torch.stack([torch.full((1, 8), 1.0), torch.full((1, 8), 2.0)])  # (2, 1, 8)


def test_scatter_update_1d_indices_are_offsets_inside_row_i():
    # The notes' probe shape, with in-contract 1-D indices: row i of updates goes to row i of data, at
    # offset indices[i] along the axis, i.e. flat row i*C + indices[i] of data.view(-1, 8) (C = 4).
    data = torch.zeros(4, 4, 8)
    u = _probe_updates()
    out = tn.scatter_update_(data, torch.tensor([1, 2]), u, -2)
    assert out is data
    flat = data.view(16, 8)
    assert torch.equal(flat[0 * 4 + 1], u[0, 0]) and torch.equal(flat[1 * 4 + 2], u[1, 0])
    assert flat.abs().sum() == 8 * 3


def test_scatter_update_pairs_form_lands_on_flat_rows_5_and_10():
    # [n, 2] (row, offset) pairs: (1, 1) and (2, 2) are flat rows 5 and 10, the rows the probe's
    # flat-address model predicts for the 1-D indices [5, 6] (which are out of contract, see below).
    data = torch.zeros(4, 4, 8)
    u = _probe_updates()
    tn.scatter_update_(data, torch.tensor([[1, 1], [2, 2]], dtype=torch.int32), u, -2)
    flat = data.view(16, 8)
    assert torch.equal(flat[5], u[0, 0]) and torch.equal(flat[10], u[1, 0])
    assert flat.abs().sum() == 8 * 3


def test_scatter_update_pairs_write_any_row():
    data = torch.zeros(4, 4, 8)
    u = _probe_updates()
    with emulator.record_hazards() as log:
        tn.scatter_update_(data, torch.tensor([[3, 0], [0, 3]], dtype=torch.int64), u, -2)
    assert torch.equal(data[3, 0], u[0, 0]) and torch.equal(data[0, 3], u[1, 0])
    assert data.abs().sum() == 8 * 3
    assert list(log) == [] and log.notes == []  # the [n, 2] form is sourced (TIK kernel rank-2 branch)


def test_scatter_update_global_slots_are_a_violation():
    # The probe's 1-D indices [5, 6] (global slots block*bs+offset, as nano-vllm's flat decode slots) are
    # offsets past the axis (5 + 1 > 4): unchecked on hardware, refused here.
    data = torch.zeros(4, 4, 8)
    with pytest.raises(ContractViolation) as info:
        tn.scatter_update_(data, torch.tensor([5, 6]), _probe_updates(), -2)
    assert "not a flat slot" in str(info.value) and info.value.argument == "indices"
    assert data.abs().sum() == 0  # nothing written


def test_scatter_update_aclnn_doc_example():
    data = torch.tensor([1.0] * 8 + [2.0] * 8).reshape(1, 1, 2, 8)
    tn.scatter_update_(data, torch.tensor([1], dtype=torch.int64), torch.full((1, 1, 1, 8), 3.0), -2)
    assert data.flatten().tolist() == [1.0] * 8 + [3.0] * 8


def test_scatter_update_doc_scenario_2_span_along_axis():
    # data (a, b, c, d), updates (a, b, e, d): data[i][j][indices[i]+k][l] = updates[i][j][k][l].
    data = torch.zeros(2, 3, 6, 4)
    updates = torch.randn(2, 3, 2, 4)
    tn.scatter_update_(data, torch.tensor([4, 1], dtype=torch.int32), updates, 2)
    expected = torch.zeros(2, 3, 6, 4)
    expected[0, :, 4:6] = updates[0]
    expected[1, :, 1:3] = updates[1]
    assert torch.equal(data, expected)


def test_scatter_update_doc_last_axis():
    # dim = -1: data[i][j][k][indices[i]+l] = updates[i][j][k][l]
    data = torch.zeros(2, 2, 3, 8)
    updates = torch.randn(2, 2, 3, 3)
    tn.scatter_update_(data, torch.tensor([5, 0]), updates, -1)
    expected = torch.zeros(2, 2, 3, 8)
    expected[0, ..., 5:8] = updates[0]
    expected[1, ..., 0:3] = updates[1]
    assert torch.equal(data, expected)


def test_scatter_update_zero_dim_index_and_out_of_place():
    data = torch.zeros(3, 4, 8)
    updates = torch.ones(1, 1, 8)
    out = tn.scatter_update(data, torch.tensor(2), updates, -2)
    assert data.abs().sum() == 0
    assert torch.equal(out[0, 2], torch.ones(8)) and out.abs().sum() == 8


# ----------------------------------------------------------------------------------------------
# _npu_reshape_and_cache (hicann/ascend-transformer-boost docs/doxygen/atb_document.txt; nd kernel)


def test_reshape_and_cache_writes_slots_and_skips_negative():
    key = torch.randn(3, 2, 16, dtype=torch.float16)
    value = torch.randn(3, 2, 16, dtype=torch.float16)
    kc = torch.zeros(4, 4, 2, 16, dtype=torch.float16)
    vc = torch.zeros_like(kc)
    assert tn._npu_reshape_and_cache(key, value, kc, vc, torch.tensor([3, -1, 9], dtype=torch.int32)) is None
    assert torch.equal(kc[0, 3], key[0]) and torch.equal(vc[2, 1], value[2])
    written = torch.zeros(4, 4, dtype=torch.bool)
    written[0, 3] = written[2, 1] = True
    assert kc[~written].abs().sum() == 0 and vc[~written].abs().sum() == 0  # token 1 (slot -1) skipped


def test_reshape_and_cache_through_a_view_updates_the_3d_cache():
    cache3 = torch.zeros(4, 4, 32, dtype=torch.bfloat16)
    vcache3 = torch.zeros_like(cache3)
    key = torch.randn(2, 2, 16, dtype=torch.bfloat16)
    tn._npu_reshape_and_cache(key, key, cache3.view(4, 4, 2, 16), vcache3.view(4, 4, 2, 16),
                              torch.tensor([5, 14], dtype=torch.int32))
    assert torch.equal(cache3[1, 1], key[0].reshape(32)) and torch.equal(cache3[3, 2], key[1].reshape(32))


# ----------------------------------------------------------------------------------------------
# fused infer attention


def _tnd(q_lens, kv_lens, n=2, nkv=1, d=64, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(sum(q_lens), n, d, generator=g).to(dtype)
    k = torch.randn(sum(kv_lens), nkv, d, generator=g).to(dtype)
    v = torch.randn(sum(kv_lens), nkv, d, generator=g).to(dtype)
    return q, k, v


def _cum(lens):
    out, total = [], 0
    for n in lens:
        total += n
        out.append(total)
    return out


def test_tnd_lengths_are_cumulative():
    q, k, v = _tnd([3, 5], [3, 5])
    out, _ = tn.npu_fused_infer_attention_score_v2(
        q, k, v, num_query_heads=2, num_key_value_heads=1, input_layout="TND", softmax_scale=0.3,
        atten_mask=MASK, actual_seq_qlen=[3, 8], actual_seq_kvlen=[3, 8], sparse_mode=3)
    for s, e in ((0, 3), (3, 8)):
        exp, _ = rows_oracle(q[s:e], k[s:e], v[s:e], visible(e - s, e - s, lambda i, j: j <= i), 0.3)
        close(out[s:e], exp)
    with pytest.raises(ContractViolation, match="last cumulative TND length must equal query T"):
        tn.npu_fused_infer_attention_score_v2(
            q, k, v, num_query_heads=2, num_key_value_heads=1, input_layout="TND", atten_mask=MASK,
            actual_seq_qlen=[3, 5], actual_seq_kvlen=[3, 5], sparse_mode=3)


def test_tnd_with_block_table_takes_per_sequence_kv_lengths():
    # Prefix-cache prefill: q rows are the last q_b positions of a kv_b-long sequence (mode 3).
    g = torch.Generator().manual_seed(1)
    q_lens, kv_lens, bs = [2, 3], [6, 9], 128  # TND paging: block_size a multiple of 128
    q = torch.randn(5, 2, 64, generator=g)
    cache_k = torch.randn(4, bs, 64, generator=g)
    cache_v = torch.randn(4, bs, 64, generator=g)
    table = torch.tensor([[2], [1]], dtype=torch.int32)
    out, _ = tn.npu_fused_infer_attention_score_v2(
        q, cache_k, cache_v, num_query_heads=2, num_key_value_heads=1, input_layout="TND", softmax_scale=0.5,
        atten_mask=MASK, actual_seq_qlen=_cum(q_lens), actual_seq_kvlen=kv_lens, block_table=table, block_size=bs,
        sparse_mode=3)
    start = 0
    for b, (ql, kl) in enumerate(zip(q_lens, kv_lens)):
        keys = cache_k[table[b, 0]][:kl].view(kl, 1, 64)
        vals = cache_v[table[b, 0]][:kl].view(kl, 1, 64)
        seen = visible(ql, kl, lambda i, j, kl=kl, ql=ql: j <= i + kl - ql)
        exp, _ = rows_oracle(q[start:start + ql], keys, vals, seen, 0.5)
        close(out[start:start + ql], exp)
        start += ql


@pytest.mark.parametrize("four_d", [False, True])
def test_tnd_paged_with_value_dim_128_under_key_dim_192(four_d):
    # CheckPAKeyValueParams compares only the caches' leading dims and GetDFromInputShape reads Dv from the
    # value cache (PFA tiling L2174-2193, L3187-3200): (192, 128) is accepted; the output has Dv = 128.
    g = torch.Generator().manual_seed(11)
    q_lens, kv_lens, bs = [2, 3], [6, 9], 128
    q = torch.randn(5, 2, 192, generator=g)
    k_rows = torch.randn(2, bs, 2, 192, generator=g)  # [block, position, N_kv, D]
    v_rows = torch.randn(2, bs, 2, 128, generator=g)
    if four_d:
        cache_k, cache_v = k_rows.transpose(1, 2).contiguous(), v_rows.transpose(1, 2).contiguous()
    else:
        cache_k, cache_v = k_rows.reshape(2, bs, 384), v_rows.reshape(2, bs, 256)
    table = torch.tensor([[1], [0]], dtype=torch.int32)
    out, _ = tn.npu_fused_infer_attention_score_v2(
        q, cache_k, cache_v, num_query_heads=2, num_key_value_heads=2, input_layout="TND", softmax_scale=0.1,
        atten_mask=MASK, actual_seq_qlen=_cum(q_lens), actual_seq_kvlen=kv_lens, block_table=table, block_size=bs,
        sparse_mode=3)
    assert out.shape == (5, 2, 128)
    start = 0
    for b, (ql, kl) in enumerate(zip(q_lens, kv_lens)):
        keys, vals = k_rows[table[b, 0], :kl], v_rows[table[b, 0], :kl]
        seen = visible(ql, kl, lambda i, j, kl=kl, ql=ql: j <= i + kl - ql)
        exp, _ = rows_oracle(q[start:start + ql], keys, vals, seen, 0.1)
        close(out[start:start + ql], exp)
        start += ql


def test_reshape_and_cache_skips_a_slot_below_the_documented_domain():
    # The doc's domain is (-nb*bs, nb*bs); the kernel only tests `slotValue < 0` (nd kernel L82, L114).
    key = torch.randn(2, 2, 16, dtype=torch.float16)
    kc = torch.zeros(4, 4, 2, 16, dtype=torch.float16)
    vc = torch.zeros_like(kc)
    tn._npu_reshape_and_cache(key, key, kc, vc, torch.tensor([-16, 1], dtype=torch.int32))
    assert torch.equal(kc[0, 1], key[1]) and kc.abs().sum() == key[1].abs().sum()


def test_sparse_mode_3_is_bottom_right_when_kv_longer_than_q():
    g = torch.Generator().manual_seed(2)
    q = torch.randn(1, 3, 2, 16, generator=g)  # BSND, Q_S 3
    k = torch.randn(1, 7, 2, 16, generator=g)
    v = torch.randn(1, 7, 2, 16, generator=g)
    out, lse = tn.npu_fused_infer_attention_score_v2(
        q, k, v, num_query_heads=2, input_layout="BSND", atten_mask=MASK, sparse_mode=3, return_softmax_lse=True)
    seen = visible(3, 7, lambda i, j: j <= i + 4)
    assert seen[0].tolist() == [True] * 5 + [False] * 2  # row 0 already sees keys 0..4
    exp, exp_lse = rows_oracle(q[0], k[0], v[0], seen, 1.0)
    close(out[0], exp)
    close(lse[0, :, :, 0].transpose(0, 1), exp_lse)


def test_sparse_mode_3_with_q_longer_than_kv_zeroes_the_first_rows():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, 2, 5, 16, generator=g)  # BNSD
    k = torch.randn(1, 2, 3, 16, generator=g)
    v = torch.randn(1, 2, 3, 16, generator=g)
    out, lse = tn.npu_fused_infer_attention_score_v2(
        q, k, v, num_query_heads=2, input_layout="BNSD", atten_mask=MASK, sparse_mode=3, return_softmax_lse=True)
    assert out[0, :, :2].abs().sum() == 0 and torch.isinf(lse[0, :, :2]).all() and (lse[0, :, :2] > 0).all()
    exp, _ = rows_oracle(q[0].transpose(0, 1), k[0].transpose(0, 1), v[0].transpose(0, 1),
                         visible(5, 3, lambda i, j: j <= i - 2), 1.0)
    close(out[0].transpose(0, 1), exp)


def test_sparse_mode_2_is_top_left_causal():
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 4, 32, generator=g) for _ in range(3))  # BSH, 2 heads of 16
    k = torch.randn(1, 6, 32, generator=g)
    v = torch.randn(1, 6, 32, generator=g)
    out, _ = tn.npu_fused_infer_attention_score(q, k, v, num_heads=2, atten_mask=MASK, sparse_mode=2, scale=0.2)
    exp, _ = rows_oracle(q[0].view(4, 2, 16), k[0].view(6, 2, 16), v[0].view(6, 2, 16),
                         visible(4, 6, lambda i, j: j <= i), 0.2)
    close(out[0].view(4, 2, 16), exp)


def test_sparse_mode_4_band_is_bottom_right_aligned():
    g = torch.Generator().manual_seed(5)
    q = torch.randn(1, 4, 2, 16, generator=g)
    k = torch.randn(1, 9, 2, 16, generator=g)
    v = torch.randn(1, 9, 2, 16, generator=g)
    out, _ = tn.npu_fused_infer_attention_score_v2(
        q, k, v, num_query_heads=2, input_layout="BSND", atten_mask=MASK, sparse_mode=4, pre_tokens=2,
        next_tokens=1)
    exp, _ = rows_oracle(q[0], k[0], v[0], visible(4, 9, lambda i, j: -2 <= (j - i) - 5 <= 1), 1.0)
    close(out[0], exp)


def test_sparse_mode_0_with_mask_uses_window_and_mask_top_left():
    g = torch.Generator().manual_seed(6)
    q = torch.randn(2, 3, 2, 16, generator=g)
    k = torch.randn(2, 5, 2, 16, generator=g)
    v = torch.randn(2, 5, 2, 16, generator=g)
    user = torch.rand(2, 1, 8, 8, generator=g) < 0.3  # larger than (3, 5): read top-left
    user[:, :, :, 0] = False
    out, _ = tn.npu_fused_infer_attention_score_v2(
        q, k, v, num_query_heads=2, input_layout="BSND", atten_mask=user, sparse_mode=0, pre_tokens=1,
        next_tokens=2, inner_precise=2)
    for b in range(2):
        seen = visible(3, 5, lambda i, j, b=b: -1 <= j - i <= 2 and not bool(user[b, 0, i, j]))
        exp, _ = rows_oracle(q[b], k[b], v[b], seen, 1.0)
        close(out[b], exp)


def test_sparse_mode_1_reads_the_mask_only():
    g = torch.Generator().manual_seed(7)
    q = torch.randn(1, 2, 3, 16, generator=g)
    k = torch.randn(1, 2, 4, 16, generator=g)
    v = torch.randn(1, 2, 4, 16, generator=g)
    user = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.int8)
    out, _ = tn.npu_fused_infer_attention_score_v2(
        q, k, v, num_query_heads=2, input_layout="BNSD", atten_mask=user, sparse_mode=1, pre_tokens=0,
        next_tokens=0)
    exp, _ = rows_oracle(q[0].transpose(0, 1), k[0].transpose(0, 1), v[0].transpose(0, 1), user == 0, 1.0)
    close(out[0].transpose(0, 1), exp)


def test_mode_0_without_mask_is_full_attention_and_ignores_pre_next():
    g = torch.Generator().manual_seed(8)
    q = torch.randn(1, 3, 2, 16, generator=g)
    k = torch.randn(1, 5, 2, 16, generator=g)
    v = torch.randn(1, 5, 2, 16, generator=g)
    out, _ = tn.npu_fused_infer_attention_score_v2(q, k, v, num_query_heads=2, input_layout="BSND",
                                                   pre_tokens=0, next_tokens=0)
    exp, _ = rows_oracle(q[0], k[0], v[0], torch.ones(3, 5, dtype=torch.bool), 1.0)
    close(out[0], exp)


def _decode_inputs(seed=9, kv_lens=(5, 12), bs=16, n=4, nkv=2, d=32):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(len(kv_lens), n, 1, d, generator=g)
    kc = torch.randn(6, bs, nkv * d, generator=g)
    vc = torch.randn(6, bs, nkv * d, generator=g)
    table = torch.tensor([[4, -1], [1, 3]], dtype=torch.int32)
    return q, kc, vc, table


def _decode_oracle(q, kc, vc, table, kv_lens, bs, nkv, scale=1.0, seen=None):
    outs = []
    d = q.shape[-1]
    for b, kl in enumerate(kv_lens):
        pos = torch.arange(kl)
        rows_k = kc[table[b, pos // bs].long(), pos % bs].view(kl, nkv, d)
        rows_v = vc[table[b, pos // bs].long(), pos % bs].view(kl, nkv, d)
        mask_b = torch.ones(1, kl, dtype=torch.bool) if seen is None else seen[b][None, :kl]
        outs.append(rows_oracle(q[b].transpose(0, 1), rows_k, rows_v, mask_b, scale)[0])
    return outs


@pytest.mark.parametrize("sparse_mode, pre, nxt", [(3, 2147483647, 2147483647), (4, 0, 0), (2, 0, 0), (1, 0, 0)])
def test_decode_ignores_sparse_mode_and_pre_next(sparse_mode, pre, nxt):
    q, kc, vc, table = _decode_inputs()
    base, _ = tn.npu_fused_infer_attention_score_v2(
        q, kc, vc, num_query_heads=4, num_key_value_heads=2, input_layout="BNSD", block_table=table, block_size=16,
        actual_seq_kvlen=[5, 12], softmax_scale=0.25)
    out, _ = tn.npu_fused_infer_attention_score_v2(
        q, kc, vc, num_query_heads=4, num_key_value_heads=2, input_layout="BNSD", block_table=table, block_size=16,
        actual_seq_kvlen=[5, 12], softmax_scale=0.25, sparse_mode=sparse_mode, pre_tokens=pre, next_tokens=nxt)
    assert torch.equal(out, base)
    for b, exp in enumerate(_decode_oracle(q, kc, vc, table, [5, 12], 16, 2, 0.25)):
        close(out[b].transpose(0, 1), exp)


def test_decode_user_mask_with_batch_dim():
    q, kc, vc, table = _decode_inputs()
    user = torch.zeros(2, 1, 1, 32, dtype=torch.bool)
    user[0, 0, 0, 1] = user[1, 0, 0, 7] = True
    out, _ = tn.npu_fused_infer_attention_score_v2(
        q, kc, vc, num_query_heads=4, num_key_value_heads=2, input_layout="BNSD", block_table=table, block_size=16,
        actual_seq_kvlen=[5, 12], atten_mask=user)
    seen = [~user[b, 0, 0] for b in range(2)]
    for b, exp in enumerate(_decode_oracle(q, kc, vc, table, [5, 12], 16, 2, 1.0, seen)):
        close(out[b].transpose(0, 1), exp)


def test_zero_length_kv_gives_zeros_and_the_kernels_lse():
    # Decode (IFA): kv_len 0 -> InitAllZeroOutput: zeros and LSE -3.40e38 (incre_flash_attention_preload.h).
    q, kc, vc, table = _decode_inputs()
    out, lse = tn.npu_fused_infer_attention_score_v2(
        q, kc, vc, num_query_heads=4, num_key_value_heads=2, input_layout="BNSD", block_table=table, block_size=16,
        actual_seq_kvlen=[0, 12], return_softmax_lse=True)
    assert out[0].abs().sum() == 0 and (lse[0] == torch.tensor(-3.40e38)).all() and torch.isfinite(lse[1]).all()
    assert lse[1].abs().max() < 100
    # TND (prompt kernel), mode 0 (no mask): a sequence with no keys gives zero rows and LSE +inf.
    qt, kt, vt = _tnd([2, 3], [0, 4])
    out_t, lse_t = tn.npu_fused_infer_attention_score_v2(
        qt, kt, vt, num_query_heads=2, num_key_value_heads=1, input_layout="TND", actual_seq_qlen=[2, 5],
        actual_seq_kvlen=[0, 4], return_softmax_lse=True)
    assert out_t[:2].abs().sum() == 0 and torch.isposinf(lse_t[:2]).all()
    exp, _ = rows_oracle(qt[2:], kt, vt, torch.ones(3, 4, dtype=torch.bool), 1.0)
    close(out_t[2:], exp)


def test_empty_key_gives_zeros():
    q = torch.randn(2, 3, 32)
    k = torch.randn(2, 0, 32)
    out, _ = tn.npu_fused_infer_attention_score_v2(q, k, k, num_query_heads=2)
    assert out.shape == (2, 3, 32) and out.abs().sum() == 0


def test_empty_query_gives_empty_output():
    q = torch.randn(0, 2, 32)
    k = torch.randn(0, 4, 32)
    out, lse = tn.npu_fused_infer_attention_score_v2(q, k, k, num_query_heads=2, return_softmax_lse=True)
    assert out.shape == (0, 2, 32) and lse.shape == (0, 2, 2, 1)


@pytest.mark.parametrize("layout, flag, shape", [
    ("TND", True, (8, 2, 1)), ("TND", False, (0,)), ("BNSD", True, (2, 2, 4, 1)), ("BNSD", False, (0,)),
    ("BSH", True, (2, 2, 4, 1)), ("BSND", True, (2, 2, 4, 1)),
])
def test_softmax_lse_shapes(layout, flag, shape):
    if layout == "TND":
        q, k, v = _tnd([3, 5], [3, 5])
        kwargs = dict(actual_seq_qlen=[3, 8], actual_seq_kvlen=[3, 8], num_key_value_heads=1)
    else:
        base = {"BNSD": (2, 2, 4, 16), "BSND": (2, 4, 2, 16), "BSH": (2, 4, 32)}[layout]
        q, k, v = torch.randn(base), torch.randn(base), torch.randn(base)
        kwargs = {}
    out, lse = tn.npu_fused_infer_attention_score_v2(q, k, v, num_query_heads=2, input_layout=layout,
                                                     return_softmax_lse=flag, **kwargs)
    assert tuple(lse.shape) == shape and lse.dtype == torch.float32
    assert out.shape == q.shape


def test_padding_rows_are_zero_with_inf_lse_and_lse_is_logsumexp():
    g = torch.Generator().manual_seed(10)
    q = torch.randn(2, 4, 32, generator=g)  # BSH, Q_S 4, only the first 2 / 3 rows valid
    k = torch.randn(2, 5, 32, generator=g)
    v = torch.randn(2, 5, 32, generator=g)
    out, lse = tn.npu_fused_infer_attention_score(q, k, v, num_heads=2, scale=0.5, actual_seq_lengths=[2, 3],
                                                  actual_seq_lengths_kv=[5, 4], softmax_lse_flag=True)
    assert out[0, 2:].abs().sum() == 0 and out[1, 3:].abs().sum() == 0
    assert torch.isposinf(lse[0, :, 2:]).all() and torch.isposinf(lse[1, :, 3:]).all()
    exp, exp_lse = rows_oracle(q[1, :3].view(3, 2, 16), k[1, :4].view(4, 2, 16), v[1, :4].view(4, 2, 16),
                               torch.ones(3, 4, dtype=torch.bool), 0.5)
    close(out[1, :3].view(3, 2, 16), exp)
    close(lse[1, :, :3, 0].transpose(0, 1), exp_lse)


def test_scale_defaults_to_one_never_one_over_sqrt_d():
    g = torch.Generator().manual_seed(11)
    q, k, v = (torch.randn(1, 2, 3, 64, generator=g) for _ in range(3))
    out, _ = tn.npu_fused_infer_attention_score_v2(q, k, v, num_query_heads=2, input_layout="BNSD")
    exp, _ = rows_oracle(q[0].transpose(0, 1), k[0].transpose(0, 1), v[0].transpose(0, 1),
                         torch.ones(3, 3, dtype=torch.bool), 1.0)
    close(out[0].transpose(0, 1), exp)


def test_num_key_value_heads_zero_means_num_heads():
    g = torch.Generator().manual_seed(12)
    q, k, v = (torch.randn(1, 4, 3, 16, generator=g) for _ in range(3))
    a, _ = tn.npu_fused_infer_attention_score_v2(q, k, v, num_query_heads=4, input_layout="BNSD")
    b, _ = tn.npu_fused_infer_attention_score_v2(q, k, v, num_query_heads=4, num_key_value_heads=4,
                                                 input_layout="BNSD")
    assert torch.equal(a, b)


def test_gqa_maps_query_head_h_to_kv_head_h_over_group():
    g = torch.Generator().manual_seed(13)
    q = torch.randn(1, 4, 1, 16, generator=g)
    k = torch.randn(1, 2, 3, 16, generator=g)
    v = torch.randn(1, 2, 3, 16, generator=g)
    out, _ = tn.npu_fused_infer_attention_score_v2(q, k, v, num_query_heads=4, num_key_value_heads=2,
                                                   input_layout="BNSD")
    for h in range(4):
        single, _ = tn.npu_fused_infer_attention_score_v2(q[:, h:h + 1], k[:, h // 2:h // 2 + 1],
                                                          v[:, h // 2:h // 2 + 1], num_query_heads=1,
                                                          input_layout="BNSD")
        close(out[:, h:h + 1], single, tol=1e-6)


def test_four_d_cache_for_bnsd_decode():
    q, kc, vc, table = _decode_inputs()
    kc4 = kc.view(6, 16, 2, 32).permute(0, 2, 1, 3).contiguous()  # (nb, N, bs, D)
    vc4 = vc.view(6, 16, 2, 32).permute(0, 2, 1, 3).contiguous()
    a, _ = tn.npu_fused_infer_attention_score_v2(
        q, kc, vc, num_query_heads=4, num_key_value_heads=2, input_layout="BNSD", block_table=table, block_size=16,
        actual_seq_kvlen=[5, 12])
    b, _ = tn.npu_fused_infer_attention_score_v2(
        q, kc4, vc4, num_query_heads=4, num_key_value_heads=2, input_layout="BNSD", block_table=table,
        block_size=16, actual_seq_kvlen=[5, 12])
    close(a, b, tol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_output_has_query_dtype_and_is_fp32_compute_rounded_once(dtype):
    g = torch.Generator().manual_seed(14)
    q, k, v = (torch.randn(1, 2, 5, 16, generator=g).to(dtype) for _ in range(3))
    out, lse = tn.npu_fused_infer_attention_score_v2(q, k, v, num_query_heads=2, input_layout="BNSD",
                                                     softmax_scale=0.25, return_softmax_lse=True)
    assert out.dtype == dtype and lse.dtype == torch.float32
    exp, _ = rows_oracle(q[0].transpose(0, 1), k[0].transpose(0, 1), v[0].transpose(0, 1),
                         torch.ones(5, 5, dtype=torch.bool), 0.25)
    ulp = torch.finfo(dtype).eps
    diff = (out[0].transpose(0, 1).double() - exp).abs()
    assert (diff <= exp.abs().clamp_min(1e-3) * ulp + 1e-6).all()  # within half an ulp plus fp32 noise


# ----------------------------------------------------------------------------------------------
# the compressed 2048 mask as the prompt kernel reads it (fia_mask; kernel code, [inferred])


def _one_hot_values(n):
    """TND q = k = 0 (every score equal) and V row j = e_j: output row i is the uniform average over the
    keys row i attends to, so its non-zero columns are exactly that set."""
    q = torch.zeros(n, 1, 64, dtype=torch.bfloat16)
    v = torch.zeros(n, 1, 64, dtype=torch.bfloat16)
    v[torch.arange(n), 0, torch.arange(n)] = 1
    return q, q.clone(), v


def _tnd_mode3(q, k, v, mask, lens):
    with emulator.record_hazards() as log:
        out, _ = tn.npu_fused_infer_attention_score_v2(
            q, k, v, num_query_heads=1, num_key_value_heads=1, input_layout="TND", softmax_scale=1.0,
            atten_mask=mask, actual_seq_qlen=_cum(lens), actual_seq_kvlen=_cum(lens), sparse_mode=3, inner_precise=1)
    return out.float(), log


def test_inverted_mask_is_read_as_tiles_along_the_diagonal():
    # L = 4, ~triu(1): the diagonal tile reads M[i, j] itself, so row i keeps only its strictly-future keys,
    # and row 3 (all of its computed keys masked) averages them uniformly (-FLT_MAX fill, not -inf).
    q, k, v = _one_hot_values(4)
    out, log = _tnd_mode3(q, k, v, ~MASK, [4])
    expected = torch.tensor([[0, 1 / 3, 1 / 3, 1 / 3], [0, 0, 0.5, 0.5], [0, 0, 0, 1], [0.25] * 4])
    close(out[:, 0, :4], expected, tol=4e-3)
    assert [h.code for h in log] == ["fia/mask-content"]


def test_inverted_mask_past_one_tile_keeps_the_tiles_below_the_diagonal():
    # L = 700: tiles of 512 rows and 512 keys. Row 600 sees the whole first key tile (wholly below the
    # diagonal, the mask is not read) and, in its own tile, only keys after it: 0..511 and 601..699.
    q = torch.zeros(700, 1, 64, dtype=torch.bfloat16)
    k, v = q.clone(), q.clone()
    v[:512, 0, 0] = 1  # every weight is 1/|visible|: each column gets the share of its keys that row 600 sees
    v[512:601, 0, 1] = 1
    v[601:, 0, 2] = 1
    out, _ = _tnd_mode3(q, k, v, ~MASK, [700])
    close(out[600, 0, :3], torch.tensor([512 / 611, 0, 99 / 611]), tol=8e-3)


def test_canonical_mask_through_the_tile_model_is_exactly_causal():
    from conformance.emulator.fia_mask import read_compressed_mask, tile_sizes

    for q_len, kv_len in ((1, 1), (5, 5), (300, 300), (700, 700), (100, 1100), (2100, 2100), (513, 1030), (3, 2000)):
        reading = read_compressed_mask(MASK, q_len, kv_len, *tile_sizes(q_len, kv_len, 128))
        known = ~reading.unknown_rows
        if q_len * kv_len < 50_000:
            causal = visible(q_len, kv_len, lambda i, j, kv_len=kv_len, q_len=q_len: j <= i + kv_len - q_len)
        else:
            causal = torch.arange(kv_len)[None, :] <= torch.arange(q_len)[:, None] + kv_len - q_len
        assert torch.equal(reading.keep[known], causal[known]), (q_len, kv_len)
        if q_len == kv_len:  # the layer's case: every row is modelled
            assert bool(known.all()), (q_len, kv_len)


def test_rows_outside_the_model_are_nan_never_the_documented_result():
    # q 700 < kv 800 with an inverted mask: rows 0..511 run their S2 loop to key 612, into the key tile at
    # 512 that starts past their diagonal (delta <= 0), whose reading depends on the vector sub-tiling: they
    # must come out NaN with a hazard, not as causal attention. Rows 512..699 are modelled.
    g = torch.Generator().manual_seed(5)
    q = torch.randn(700, 1, 64, generator=g).bfloat16()
    k = torch.randn(800, 1, 64, generator=g).bfloat16()
    with emulator.record_hazards() as log:
        out, _ = tn.npu_fused_infer_attention_score_v2(
            q, k, k, num_query_heads=1, num_key_value_heads=1, input_layout="TND", atten_mask=~MASK,
            actual_seq_qlen=[700], actual_seq_kvlen=[800], sparse_mode=3)
    assert {h.code for h in log} == {"fia/mask-content", "fia/mask-unmodelled"}
    nan_rows = torch.isnan(out.float()).any(-1).any(-1)
    assert nan_rows[:512].all() and not nan_rows[512:].any()
    # A prompt (non-TND) layout with a non-canonical mask is not modelled at all: every row is NaN.
    with emulator.record_hazards() as log:
        out, _ = tn.npu_fused_infer_attention_score(
            q.view(1, 700, 64), k.view(1, 800, 64), k.view(1, 800, 64), num_heads=1, input_layout="BSH",
            atten_mask=~MASK, sparse_mode=3)
    assert torch.isnan(out.float()).all() and "fia/mask-unmodelled" in {h.code for h in log}


def test_decode_takes_the_2d_mask_with_sparse_mode_3_and_reads_it_as_a_flat_key_mask():
    # IFA CheckAttenMaskShape accepts the (2048, 2048) mask with sparse_mode 3/4 but never sets the mask size,
    # so every batch reads key j's bit at mask.flatten()[j] (incre_flash_attention_tiling_check.cpp,
    # incre_flash_attention_split_Bbn2s2_Us2.h): with triu(1) only key 0 is attended.
    q, kc, vc, table = _decode_inputs()
    common = dict(num_query_heads=4, num_key_value_heads=2, input_layout="BNSD", block_table=table, block_size=16,
                  actual_seq_kvlen=[5, 12], softmax_scale=0.25)
    with emulator.record_hazards() as log:
        out, _ = tn.npu_fused_infer_attention_score_v2(q, kc, vc, atten_mask=MASK, sparse_mode=3, **common)
    assert [h.code for h in log] == ["fia/decode-compressed-mask"] and log[0].inferred
    for b, block in enumerate((4, 1)):  # key 0 of batch b is row 0 of its first block
        v0 = vc[block, 0].view(2, 32)
        close(out[b, :, 0], v0.repeat_interleave(2, 0))
    # ~triu(1): key 0 masked, keys 1..2047 seen, per the same flat reading.
    with emulator.record_hazards():
        out, _ = tn.npu_fused_infer_attention_score_v2(q, kc, vc, atten_mask=~MASK, sparse_mode=3, **common)
    seen = [torch.arange(32) >= 1, torch.arange(32) >= 1]
    for b, exp in enumerate(_decode_oracle(q, kc, vc, table, [5, 12], 16, 2, 0.25, seen)):
        close(out[b].transpose(0, 1), exp)


def test_paged_prompt_mask_covers_the_longest_sequence_not_the_table_width():
    # PFA tiling: the mask's S2 must reach max(ceil(kv_b / bs)) * bs (L2274, L2298-2299); spare table columns
    # past that are not part of the requirement.
    g = torch.Generator().manual_seed(12)
    q = torch.randn(2, 4, 128, generator=g).half()
    cache = torch.randn(4, 128, 128, generator=g).half()
    table = torch.tensor([[2, 0, -1], [1, -1, -1]], dtype=torch.int32)  # 3 columns, at most 2 used
    mask = torch.zeros(4, 256, dtype=torch.bool)
    out, _ = tn.npu_fused_infer_attention_score(
        q, cache, cache, num_heads=2, scale=0.1, block_table=table, block_size=128, actual_seq_lengths_kv=[200, 100],
        atten_mask=mask, sparse_mode=1)
    assert torch.isfinite(out.float()).all()
    with pytest.raises(ContractViolation, match="must cover Q_S x KV_S"):
        tn.npu_fused_infer_attention_score(
            q, cache, cache, num_heads=2, scale=0.1, block_table=table, block_size=128,
            actual_seq_lengths_kv=[200, 100], atten_mask=mask[:, :200], sparse_mode=1)
