"""Contract checks of fused infer attention: a `FiaCall` in, a `FiaPlan` (plain data) out.

Everything the kernel would refuse raises `ContractViolation`; everything it accepts but leaves
undefined or version-dependent is recorded as a hazard. The plan holds only Python values (lengths,
offsets, the visibility rule), so the compute in `fia_compute` needs no further checks
(`fia_output.output_meta` gives output shapes from shapes alone, for a fake/meta implementation).

The checks run in the kernel's own stages, one module each, in this order (the first refusal wins):
  1. attributes and dtypes                      fia_checks_attrs
  2. query and key/value shapes, head dims      fia_checks_shapes
  3. actual lengths, block table, block_size    fia_checks_lengths
  4. mask, sparse_mode, pre/next, inner_precise fia_checks_mask
and the rules that depend on which kernel a call reaches (entry point, CANN version) in fia_checks_route.
Path selection follows the FIA tiling (hicann/ops-transformer
attention/fused_infer_attention_score/op_host/fused_infer_attention_score_tiling.cpp, IsUsingIFA):
non-TND layouts with Q_S == 1 take the decode ("incre", IFA) path, everything else the prompt
(PFA) path.
"""

from __future__ import annotations

from conformance.emulator.fia_args import FiaCall
from conformance.emulator.fia_checks_attrs import check_dtypes, check_heads
from conformance.emulator.fia_checks_lengths import check_block_table, check_lengths, note_air_tnd
from conformance.emulator.fia_checks_mask import check_mask
from conformance.emulator.fia_checks_route import check_ifa_entry, check_tnd_float16_route
from conformance.emulator.fia_checks_shapes import check_head_dims, check_kv, check_layout, check_query
from conformance.emulator.fia_output import output_meta
from conformance.emulator.fia_plan import FiaPlan
from conformance.emulator.findings import Checker


def plan_call(call: FiaCall) -> FiaPlan:
    c = Checker(call.op, call.names)
    if call.unmodelled:
        name = next(iter(call.unmodelled))
        raise c.unsupported(name, "this feature (quantization, rope/MLA, pse, left padding, shared prefix, sink)")
    heads = check_heads(c, call)
    layout = check_layout(c, call)
    check_dtypes(c, call, layout)
    q = check_query(c, call, layout, heads)
    check_ifa_entry(c, call, q)
    kv = check_kv(c, call, q, heads)
    check_head_dims(c, q, kv, heads)
    check_tnd_float16_route(c, call, layout, q.head_dim, kv.value_dim)
    lengths = check_lengths(c, call, q, kv)
    if kv.paged:
        check_block_table(c, call, q, kv, lengths)
    mask = check_mask(c, call, q, kv, lengths)
    note_air_tnd(c, call, layout)
    out_shape, out_dtype, lse_shape = output_meta(
        call.query, call.value, input_layout=layout, num_heads=heads.num_heads,
        num_key_value_heads=heads.num_kv_heads, paged=kv.paged, return_lse=bool(call.return_lse))
    return FiaPlan(
        op=call.op, layout=layout, path=q.path, batch=lengths.batch, num_heads=heads.num_heads,
        num_kv_heads=heads.num_kv_heads, head_dim=q.head_dim, value_dim=kv.value_dim, q_lens=lengths.q_lens,
        kv_lens=lengths.kv_lens, q_starts=lengths.q_starts, kv_starts=lengths.kv_starts, paged=kv.paged,
        cache_form=kv.cache_form, block_size=kv.block_size, visibility=mask.visibility,
        pre_tokens=mask.pre_tokens, next_tokens=mask.next_tokens, mask_use=mask.mask_use,
        mask_batched=mask.mask_batched, mask_tiles=mask.mask_tiles, scale=heads.scale,
        inner_precise=mask.inner_precise, return_lse=bool(call.return_lse), out_dtype=out_dtype,
        out_shape=tuple(out_shape), lse_shape=tuple(lse_shape),
    )
