"""One-shot probes that settle, on a real device, the rules the emulator marks *inferred*.

Skipped without an NPU (they need the real kernels); under --require-npu a skip is a failure. Each
probe uses small tensors whose every index is in bounds, so a wrong reading cannot corrupt memory,
and asserts values: hard-coded ones where the emulator's model predicts them exactly (the same
numbers are pinned on the emulator by tests/test_emulator_documented.py), or the CPU reference.
A failing probe means the emulator's rule is wrong for this CANN / torch_npu: fix the emulator.
"""

from __future__ import annotations

import pytest
import torch

import reference
from conformance.emulator import cann
from conformance.judge.settings import settings
from npu_attention import kernels

pytestmark = [pytest.mark.npu, pytest.mark.suite]
#: Where the probes run. tests/test_hardware_probes_emulated.py points them at the emulator on CPU, which
#: must pass every probe too: a probe the emulator fails is a probe (or an emulator rule) to fix.
BACKEND, DEVICE = "npu", "npu"
#: A kernel refusal: a RuntimeError from torch_npu, a ContractViolation (ValueError) from the emulator.
REFUSED = (RuntimeError, ValueError)
BF16 = torch.bfloat16
#: The optimized mask of sparse_mode 2-4: True strictly above the diagonal.
CAUSAL = torch.triu(torch.ones(2048, 2048, dtype=torch.bool), diagonal=1)


def _npu(*tensors):
    return [t.to(DEVICE) for t in tensors]


def _sync():
    """Kernel errors surface asynchronously on a device: wait for them inside the raises block."""
    if DEVICE == "npu":
        torch.npu.synchronize()


def test_scatter_update_pairs_write_block_and_offset():
    """The [n, 2] index form: row i goes to data[idx[i, 0], idx[i, 1]] (TIK kernel rank-2 branch)."""
    with kernels.use_backend(BACKEND):
        data = torch.zeros(4, 4, 8, dtype=torch.float16, device=DEVICE)
        idx = torch.tensor([[1, 1], [2, 2]], dtype=torch.int32, device=DEVICE)
        updates = torch.stack([torch.full((1, 8), 1.0), torch.full((1, 8), 2.0)]).half().to(DEVICE)
        kernels.torch_npu.scatter_update_(data, idx, updates, -2)
    flat = data.cpu().view(16, 8)
    written = {r: float(flat[r, 0]) for r in range(16) if flat[r].abs().sum() > 0}
    assert written == {5: 1.0, 10: 2.0}, f"pairs (1,1),(2,2) wrote rows {written}"


def test_scatter_update_1d_indices_are_per_row_offsets():
    """The documented 1-D form: updates row i goes to data row i at offset idx[i] along the axis."""
    with kernels.use_backend(BACKEND):
        data = torch.zeros(4, 4, 8, dtype=torch.float16, device=DEVICE)
        idx = torch.tensor([1, 2], dtype=torch.int32, device=DEVICE)
        updates = torch.stack([torch.full((1, 8), 1.0), torch.full((1, 8), 2.0)]).half().to(DEVICE)
        kernels.torch_npu.scatter_update_(data, idx, updates, -2)
    flat = data.cpu().view(16, 8)
    written = {r: float(flat[r, 0]) for r in range(16) if flat[r].abs().sum() > 0}
    assert written == {1: 1.0, 6: 2.0}, f"offsets [1, 2] wrote rows {written}"


def _decode_case(lens, seed=0, heads=8, kv_heads=2, d=128, bs=128):
    g = torch.Generator().manual_seed(seed)
    batch = len(lens)
    q = torch.randn(batch, heads, 1, d, generator=g).to(BF16)
    cache_k = torch.randn(batch + 1, bs, kv_heads * d, generator=g).to(BF16)
    cache_v = torch.randn(batch + 1, bs, kv_heads * d, generator=g).to(BF16)
    table = torch.tensor([[b + 1] for b in range(batch)], dtype=torch.int32)
    return q, cache_k, cache_v, table


def _decode_golden(q, cache_k, cache_v, table, lens, heads=8, d=128):
    """float64 [B, N, D] from the CPU reference (all keys below kv_len)."""
    batch = q.shape[0]
    out = reference.paged_attention(q.view(batch, heads, d), cache_k, cache_v, query_lens=[1] * batch,
                                    context_lens=list(lens), block_tables=table, scale=d ** -0.5)
    return out


def _decode_npu(q, cache_k, cache_v, table, lens, **extra):
    q_n, k_n, v_n, t_n = _npu(q, cache_k, cache_v, table)
    with kernels.use_backend(BACKEND):
        return kernels.torch_npu.npu_fused_infer_attention_score_v2(
            q_n, k_n, v_n, num_query_heads=8, num_key_value_heads=2, input_layout="BNSD", softmax_scale=128 ** -0.5,
            block_table=t_n, block_size=128, inner_precise=1, **extra)


def test_eager_fia_accepts_an_int32_length_tensor_and_computes_with_it():
    """The seed passes context_lens (an int32 device tensor) where the schema says SymInt[]: the emulator
    notes that the dispatcher converts it. The result must equal the CPU reference for those lengths."""
    lens = [5, 100]
    q, ck, cv, table = _decode_case(lens)
    out, _ = _decode_npu(q, ck, cv, table, lens, actual_seq_kvlen=torch.tensor(lens, dtype=torch.int32,
                                                                                device=DEVICE))
    gold = _decode_golden(q, ck, cv, table, lens)
    torch.testing.assert_close(out.cpu().double().squeeze(2), gold, atol=2e-2, rtol=2e-2)


def test_decode_with_kv_len_zero_gives_zeros_and_lse_minus_3_4e38():
    """IFA InitAllZeroOutput: a batch with kv_len 0 writes zeros and LSE -3.40e38 (not +inf)."""
    lens = [0, 7]
    q, ck, cv, table = _decode_case(lens, seed=1)
    out, lse = _decode_npu(q, ck, cv, table, lens, actual_seq_kvlen=lens, return_softmax_lse=True)
    out, lse = out.cpu().float(), lse.cpu()
    assert out[0].abs().sum() == 0
    assert torch.equal(lse[0], torch.full_like(lse[0], -3.40e38)), lse[0].flatten()[:4]
    torch.testing.assert_close(out[1].double().squeeze(1), _decode_golden(q, ck, cv, table, lens)[1],
                               atol=2e-2, rtol=2e-2)


def test_decode_mask_without_a_batch_dim_is_refused():
    """The open IFA tiling refuses a decode mask whose dim 0 is not B ("batchSize of atten_mask must be
    equal to batchSize of query"); another stack accepted [1, 1, 1, S] and ignored it past 512."""
    lens = [5, 7]
    q, ck, cv, table = _decode_case(lens, seed=2)
    mask = torch.zeros(1, 1, 1, 128, dtype=torch.bool, device=DEVICE)
    with pytest.raises(REFUSED):
        _decode_npu(q, ck, cv, table, lens, actual_seq_kvlen=lens, atten_mask=mask)
        _sync()


def test_decode_with_the_2048_mask_and_sparse_mode_3_reads_it_as_a_flat_key_mask():
    """IFA accepts the 2-D (2048, 2048) mask with sparse_mode 3 but never sets the mask size, so (the
    emulator infers from the kernel code) every batch reads key j's bit at mask.flatten()[j]: with
    triu(1) the one query row attends to key 0 only, and its output is exactly V of key 0."""
    lens = [5, 100]
    q, ck, cv, table = _decode_case(lens, seed=3)
    out, _ = _decode_npu(q, ck, cv, table, lens, actual_seq_kvlen=lens, atten_mask=CAUSAL.to(DEVICE), sparse_mode=3)
    out = out.cpu().squeeze(2)  # [B, N, D]
    for b in range(len(lens)):
        v0 = cv[table[b, 0], 0].view(2, 128).repeat_interleave(4, 0)  # query head h reads KV head h // 4
        assert torch.equal(out[b], v0), f"batch {b}: not exactly V of key 0"


def test_gqa_query_head_h_reads_kv_head_h_over_group():
    """4 query heads on 2 KV heads: heads 0, 1 read KV head 0, heads 2, 3 read KV head 1 (the emulator
    infers h // group). Each KV head's V is constant, so the output names the head that was read."""
    q = torch.zeros(1, 4, 1, 64, dtype=BF16)
    cache = torch.zeros(2, 128, 2 * 64, dtype=BF16)
    cache_v = cache.clone()
    cache_v[1, :, :64] = 1.0  # KV head 0
    cache_v[1, :, 64:] = 2.0  # KV head 1
    table = torch.tensor([[1]], dtype=torch.int32)
    q_n, k_n, v_n, t_n = _npu(q, cache, cache_v, table)
    with kernels.use_backend(BACKEND):
        out, _ = kernels.torch_npu.npu_fused_infer_attention_score_v2(
            q_n, k_n, v_n, num_query_heads=4, num_key_value_heads=2, input_layout="BNSD", softmax_scale=0.125,
            block_table=t_n, block_size=128, actual_seq_kvlen=[9])
    assert out.cpu().float()[0, :, 0, 0].tolist() == [1.0, 1.0, 2.0, 2.0]


def test_float16_with_layout_tnd_follows_the_cann_version():
    """Up to 8.5.0.alpha001 FIA sends TND to the PFA tiling, which takes bfloat16 only ("When layout is TND,
    inputDataType should be bf16"; the op-plugin v2 doc lists float16 for MHA); from 8.5.0 RouteToFia sends
    a (128, 128) TND call to the FIA v3 tiling, which takes float16. The run's --cann-version says which."""
    q = torch.randn(8, 2, 128).half().to(DEVICE)

    def call():
        out, _ = kernels.torch_npu.npu_fused_infer_attention_score_v2(
            q, q, q, num_query_heads=2, num_key_value_heads=2, input_layout="TND", softmax_scale=0.08,
            atten_mask=CAUSAL.to(DEVICE), actual_seq_qlen=[3, 8], actual_seq_kvlen=[3, 8], sparse_mode=3)
        _sync()
        return out

    with kernels.use_backend(BACKEND), cann.emulated_version(settings().cann_version):  # the run's --cann-version
        if not cann.at_least("8.5.0"):
            with pytest.raises(REFUSED):
                call()
            return
        out = call()
    gold = reference.varlen_attention(q.cpu(), q.cpu(), q.cpu(), cu_seqlens_q=[0, 3, 8], cu_seqlens_k=[0, 3, 8],
                                      scale=0.08)
    torch.testing.assert_close(out.cpu().double(), gold, atol=2e-3, rtol=2e-3)


def _tnd_uniform(v: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
    """TND sparse_mode 3 with q = k = 0 (every score equal): row i is the mean of V over the keys it
    attends to, so one-hot V rows spell out the visible set."""
    q = torch.zeros(length, 1, 64, dtype=BF16, device=DEVICE)
    with kernels.use_backend(BACKEND):
        out, _ = kernels.torch_npu.npu_fused_infer_attention_score_v2(
            q, q, v.to(DEVICE), num_query_heads=1, num_key_value_heads=1, input_layout="TND", softmax_scale=1.0,
            atten_mask=mask.to(DEVICE), actual_seq_qlen=[length], actual_seq_kvlen=[length], sparse_mode=3,
            inner_precise=1)
    return out.cpu().float()


def test_inverted_mask_is_read_as_tiles_l4():
    """~triu(1) with L = 4 (one tile): the tile model predicts rows {1,2,3}, {2,3}, {3} and, for row 3
    (every computed key masked, -FLT_MAX fill), the uniform average over keys 0..3."""
    v = torch.zeros(4, 1, 64, dtype=BF16)
    v[torch.arange(4), 0, torch.arange(4)] = 1
    out = _tnd_uniform(v, ~CAUSAL, 4)[:, 0, :4]
    expected = torch.tensor([[0, 1 / 3, 1 / 3, 1 / 3], [0, 0, 0.5, 0.5], [0, 0, 0, 1], [0.25] * 4])
    torch.testing.assert_close(out, expected, atol=4e-3, rtol=0)


def test_inverted_mask_past_one_tile_keeps_tiles_below_the_diagonal_l700():
    """~triu(1) with L = 700: 512-row / 512-key tiles; row 600 sees keys 0..511 (a tile wholly below the
    diagonal is not masked) and 601..699 (its own tile read at the diagonal offset)."""
    v = torch.zeros(700, 1, 64, dtype=BF16)
    v[:512, 0, 0] = 1
    v[512:601, 0, 1] = 1
    v[601:, 0, 2] = 1
    out = _tnd_uniform(v, ~CAUSAL, 700)
    torch.testing.assert_close(out[600, 0, :3], torch.tensor([512 / 611, 0.0, 99 / 611]), atol=8e-3, rtol=0)


def test_canonical_mask_gives_exact_causal_attention_past_2048():
    """With triu(1) the kernel's tile reading equals bottom-right causal attention, also past the
    2048-wide mask (the emulator short-cuts the canonical mask to the documented result)."""
    g = torch.Generator().manual_seed(4)
    length = 2100
    q = torch.randn(length, 2, 64, generator=g).to(BF16)
    k = torch.randn(length, 1, 64, generator=g).to(BF16)
    v = torch.randn(length, 1, 64, generator=g).to(BF16)
    with kernels.use_backend(BACKEND):
        out, _ = kernels.torch_npu.npu_fused_infer_attention_score_v2(
            *_npu(q, k, v), num_query_heads=2, num_key_value_heads=1, input_layout="TND", softmax_scale=0.125,
            atten_mask=CAUSAL.to(DEVICE), actual_seq_qlen=[length], actual_seq_kvlen=[length], sparse_mode=3,
            inner_precise=1)
    gold = reference.varlen_attention(q, k, v, cu_seqlens_q=[0, length], cu_seqlens_k=[0, length], scale=0.125)
    torch.testing.assert_close(out.cpu().double(), gold, atol=3e-2, rtol=3e-2)


# ---- the three fidelity fixes


def test_decode_with_value_head_dim_unequal_to_key_head_dim_is_refused():
    """IFATiling::KvShapePostProcess refuses key/value of unequal shapes ("k v shape shoud be same") and the
    decode kernel takes Dv = D: a dense BNSD decode with D 192, Dv 128 is refused."""
    q = torch.randn(2, 4, 1, 192).half().to(DEVICE)
    k = torch.randn(2, 2, 5, 192).half().to(DEVICE)
    v = torch.randn(2, 2, 5, 128).half().to(DEVICE)
    with kernels.use_backend(BACKEND), pytest.raises(REFUSED):
        kernels.torch_npu.npu_fused_infer_attention_score_v2(q, k, v, num_query_heads=4, num_key_value_heads=2,
                                                             input_layout="BNSD", softmax_scale=0.07)
        _sync()


def _causal64(q, k, v, scale):
    """float64 bottom-right causal attention of one sequence: q [S1, N, D], k [S2, N, D], v [S2, N, Dv]."""
    scores = torch.einsum("qnd,knd->nqk", q.double(), k.double()) * scale
    s1, s2 = q.shape[0], k.shape[0]
    hidden = torch.arange(s2)[None, :] > torch.arange(s1)[:, None] + (s2 - s1)
    weights = torch.softmax(scores.masked_fill(hidden, float("-inf")), -1)
    return torch.einsum("nqk,knd->qnd", weights, v.double())


def test_tnd_paged_attention_with_value_head_dim_128_under_key_head_dim_192():
    """CheckPAKeyValueParams compares only the caches' leading dims and GetDFromInputShape reads Dv from the
    value cache: TND over a paged cache with D 192, Dv 128 is accepted, and the output has head dim 128."""
    g = torch.Generator().manual_seed(5)
    q = torch.randn(5, 2, 192, generator=g).to(BF16)
    k_rows = torch.randn(2, 128, 2, 192, generator=g).to(BF16)
    v_rows = torch.randn(2, 128, 2, 128, generator=g).to(BF16)
    q_n, k_n, v_n, t_n = _npu(q, k_rows.reshape(2, 128, 384), v_rows.reshape(2, 128, 256),
                              torch.tensor([[1], [0]], dtype=torch.int32))
    with kernels.use_backend(BACKEND):
        out, _ = kernels.torch_npu.npu_fused_infer_attention_score_v2(
            q_n, k_n, v_n, num_query_heads=2, num_key_value_heads=2, input_layout="TND", softmax_scale=0.07,
            atten_mask=CAUSAL.to(DEVICE), actual_seq_qlen=[2, 5], actual_seq_kvlen=[6, 9], block_table=t_n,
            block_size=128, sparse_mode=3)
    out = out.cpu()
    assert out.shape == (5, 2, 128)
    torch.testing.assert_close(out[:2].double(), _causal64(q[:2], k_rows[1, :6], v_rows[1, :6], 0.07),
                               atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(out[2:].double(), _causal64(q[2:], k_rows[0, :9], v_rows[0, :9], 0.07),
                               atol=2e-2, rtol=2e-2)


def test_reshape_and_cache_skips_a_slot_below_minus_num_blocks_times_block_size():
    """The doc's slot domain is (-nb*bs, nb*bs); every kernel variant only tests `slotValue < 0`, so the slot
    -nb*bs is skipped like -1: exactly one token lands."""
    key = torch.randn(2, 2, 16).half()
    with kernels.use_backend(BACKEND):
        kc, vc = _npu(torch.zeros(4, 4, 2, 16, dtype=torch.float16), torch.zeros(4, 4, 2, 16, dtype=torch.float16))
        kernels.torch_npu._npu_reshape_and_cache(*_npu(key, key), kc, vc,
                                                  torch.tensor([-16, 5], dtype=torch.int32, device=DEVICE))
        _sync()
    written = kc.cpu().view(16, 2, 16).abs().sum((1, 2)).nonzero().flatten().tolist()
    assert written == [5] and torch.equal(kc.cpu()[1, 1], key[1])


# ---- the ops beside FIA


def test_prompt_flash_attention_next_tokens_default_0_makes_an_empty_mask_causal():
    """npu_prompt_flash_attention's next_tokens defaults to 0 (FIA's to INT_MAX): sparse_mode 0 with an
    all-visible mask keeps -pre <= j - i <= 0, i.e. causal attention."""
    g = torch.Generator().manual_seed(6)
    q = torch.randn(1, 2, 6, 64, generator=g).to(BF16)
    kv = torch.randn(1, 2, 6, 64, generator=g).to(BF16)
    with kernels.use_backend(BACKEND):
        out = kernels.torch_npu.npu_prompt_flash_attention(
            *_npu(q, kv, kv), num_heads=2, input_layout="BNSD", scale_value=0.125,
            atten_mask=torch.zeros(6, 6, dtype=torch.bool, device=DEVICE))
    gold = _causal64(q[0].transpose(0, 1), kv[0].transpose(0, 1), kv[0].transpose(0, 1), 0.125)
    torch.testing.assert_close(out.cpu()[0].transpose(0, 1).double(), gold, atol=2e-2, rtol=2e-2)


def test_incre_flash_attention_decodes_like_the_reference():
    """npu_incre_flash_attention runs the decode kernel: its actual_seq_lengths are the KV lengths."""
    lens = [5, 100]
    q, ck, cv, table = _decode_case(lens, seed=7)
    q_n, k_n, v_n, t_n = _npu(q, ck, cv, table)
    with kernels.use_backend(BACKEND):
        out = kernels.torch_npu.npu_incre_flash_attention(
            q_n, k_n, v_n, num_heads=8, num_key_value_heads=2, input_layout="BNSD", scale_value=128 ** -0.5,
            block_table=t_n, block_size=128, actual_seq_lengths=lens)
    assert out.shape == q.shape
    torch.testing.assert_close(out.cpu().double().squeeze(2), _decode_golden(q, ck, cv, table, lens),
                               atol=2e-2, rtol=2e-2)


def test_incre_flash_attention_refuses_a_query_longer_than_16():
    """The decode tiling takes Q_S 1 (2-16 only in its multi-token mode): Q_S 17 is refused."""
    q = torch.randn(1, 2, 17, 64).half().to(DEVICE)
    with kernels.use_backend(BACKEND), pytest.raises(REFUSED):
        kernels.torch_npu.npu_incre_flash_attention(q, q, q, num_heads=2, input_layout="BNSD")
        _sync()


def test_out_variant_writes_the_functional_result_into_preallocated_tensors():
    """npu_fused_infer_attention_score_v2.out, as graph capture calls it (workspace from the workspace query,
    outputs as out=[...]): the same operator, so exactly the functional op's output, in the given tensor."""
    lens = [5, 100]
    q, ck, cv, table = _decode_case(lens, seed=8)
    q_n, k_n, v_n, t_n = _npu(q, ck, cv, table)
    kw = dict(num_query_heads=8, num_key_value_heads=2, input_layout="BNSD", softmax_scale=128 ** -0.5,
              block_table=t_n, block_size=128, actual_seq_kvlen=lens, inner_precise=1)
    with kernels.use_backend(BACKEND):
        expected, _ = kernels.torch_npu.npu_fused_infer_attention_score_v2(q_n, k_n, v_n, **kw)
        workspace = kernels.torch_npu._npu_fused_infer_attention_score_v2_get_max_workspace(q_n, k_n, v_n, **kw)
        out = torch.empty_like(expected)
        result = kernels.torch_npu.npu_fused_infer_attention_score_v2.out(
            q_n, k_n, v_n, **kw, workspace=workspace, out=[out, torch.empty(1, dtype=BF16, device=DEVICE)])
    assert workspace.dim() == 1 and workspace.dtype == BF16
    assert result[0] is out and torch.equal(out.cpu(), expected.cpu())


def test_scatter_pa_kv_cache_norm_writes_slots_and_skips_negative_ones():
    """cache_mode 'Norm': token t goes to cache[slot // block_size, slot % block_size]; the ND kernel skips
    a negative slot (scatter_pa_kv_cache_nd.h)."""
    key = torch.randn(3, 2, 32).half()
    value = torch.randn(3, 2, 16).half()
    with kernels.use_backend(BACKEND):
        kc, vc = _npu(torch.zeros(4, 16, 2, 32, dtype=torch.float16), torch.zeros(4, 16, 2, 16, dtype=torch.float16))
        kernels.torch_npu.npu_scatter_pa_kv_cache(*_npu(key, value), kc, vc,
                                                  torch.tensor([5, -1, 17], dtype=torch.int32, device=DEVICE),
                                                  cache_mode="Norm")
        _sync()
    kc, vc = kc.cpu(), vc.cpu()
    assert torch.equal(kc[0, 5], key[0]) and torch.equal(kc[1, 1], key[2])
    assert torch.equal(vc[0, 5], value[0]) and torch.equal(vc[1, 1], value[2])
    assert kc.view(64, -1).abs().sum(1).nonzero().flatten().tolist() == [5, 17]


def test_reshape_and_cache_siso_writes_only_the_key_cache():
    """_npu_reshape_and_cache_siso (ATB kvCacheCfg K_CACHE_V_BYPASS): the key-only write."""
    key = torch.randn(2, 2, 16).half()
    with kernels.use_backend(BACKEND):
        kc = _npu(torch.zeros(4, 4, 2, 16, dtype=torch.float16))[0]
        kernels.torch_npu._npu_reshape_and_cache_siso(_npu(key)[0], kc,
                                                       torch.tensor([9, -1], dtype=torch.int32, device=DEVICE))
        _sync()
    kc = kc.cpu()
    assert torch.equal(kc[2, 1], key[0]) and kc.view(16, -1).abs().sum(1).nonzero().flatten().tolist() == [9]
