"""The planted bugs themselves: layer subclasses, wrapped kernel calls and runner-Context transforms.

Nothing here edits a file. Each bug is applied through one of the hooks of `conformance.judge.mutation`:
  * a subclass of the production `Attention` (the layer's own code, with one thing done wrong);
  * a wrapper around a kernel op: the layer's call reaches the op with one argument changed, which
    is what the layer would pass if its code had the bug (the op itself stays the emulator's);
  * a transform of the Context the runner builds (a runner that breaks the contract).
`conformance.mutants.catalogue` says which bug class and public source each one stands for.

Kernel wrappers must stay traceable: in the graph phase the layer is compiled with
torch.compile(aot_eager, fullgraph=True), so they use plain tensor ops and Python ints from
arguments, never `.tolist()` or data-dependent Python branches.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch

from npu_attention import Attention, Context, kernels
from npu_attention.context import get_context
from npu_attention.kernels import torch_npu

V2 = "npu_fused_infer_attention_score_v2"
AIR = "npu_fused_infer_attention_score"  # torchair.ops.<this>: the graph decode op
RESHAPE_AND_CACHE = "_npu_reshape_and_cache"
SCATTER = "scatter_update_"

OpWrapper = Callable[[Callable], Callable]


# --- kernel backends with some ops wrapped ---------------------------------------------------------

def _public(obj) -> dict:
    return {name: getattr(obj, name) for name in dir(obj) if not name.startswith("__")}


def wrap_ops(torch_npu_ops: dict[str, OpWrapper] | None = None,
             air_ops: dict[str, OpWrapper] | None = None) -> Callable[[kernels.KernelBackend], kernels.KernelBackend]:
    """A `wrap_kernels` hook: the base backend with the named ops replaced by `wrapper(original)`.
    `torch_npu_ops` name torch_npu ops; `air_ops` name torchair.ops ops."""
    torch_npu_ops, air_ops = torch_npu_ops or {}, air_ops or {}

    def wrap(base: kernels.KernelBackend) -> kernels.KernelBackend:
        npu = _public(base.torch_npu)
        for name, wrapper in torch_npu_ops.items():
            npu[name] = wrapper(getattr(base.torch_npu, name))
        air = _public(base.torchair)
        ops = _public(base.torchair.ops)
        for name, wrapper in air_ops.items():
            ops[name] = wrapper(getattr(base.torchair.ops, name))
        air["ops"] = kernels.namespace(**ops)
        return kernels.KernelBackend(f"{base.name}+planted", kernels.namespace(**npu), kernels.namespace(**air))

    return wrap


def _when_layout(layout: str, change: Callable[[dict], dict]) -> OpWrapper:
    """Wrap a FIA op so that calls with `input_layout == layout` get their keyword arguments changed."""
    def wrapper(op):
        def call(query, key, value, **kwargs):
            if kwargs.get("input_layout") == layout:
                kwargs = change(dict(kwargs))
            return op(query, key, value, **kwargs)
        return call
    return wrapper


def _always(change: Callable[[dict], dict]) -> OpWrapper:
    def wrapper(op):
        def call(query, key, value, **kwargs):
            return op(query, key, value, **change(dict(kwargs)))
        return call
    return wrapper


def prefill_call(change: Callable[[dict], dict]):
    """The layer's prefill FIA-v2 call (layout TND) with `change` applied to its keyword arguments."""
    return wrap_ops({V2: _when_layout("TND", change)})


def decode_call(change_v2: Callable[[dict], dict], change_air: Callable[[dict], dict]):
    """The layer's decode attention calls: eager FIA-v2 (BNSD) and the graph torchair op."""
    return wrap_ops({V2: _when_layout("BNSD", change_v2)}, {AIR: _always(change_air)})


def every_attention_call(change_v2: Callable[[dict], dict], change_air: Callable[[dict], dict]):
    return wrap_ops({V2: _always(change_v2)}, {AIR: _always(change_air)})


# --- prefill (TND) argument changes ---------------------------------------------------------------

def per_request_lengths(kw: dict) -> dict:
    """actual_seq_qlen / kvlen as per-request lengths, where TND wants cumulative end offsets."""
    for name in ("actual_seq_qlen", "actual_seq_kvlen"):
        ends = list(kw[name])
        kw[name] = [end - start for start, end in zip([0] + ends[:-1], ends)]
    return kw


def one_sequence(kw: dict) -> dict:
    """The whole batch as one sequence: every token sees the earlier requests' tokens."""
    total = list(kw["actual_seq_qlen"])[-1]
    kw["actual_seq_qlen"], kw["actual_seq_kvlen"] = [total], [total]
    return kw


def causal_disabled(kw: dict) -> dict:
    """sparse_mode 0 and no mask: TND prefill attends to future tokens."""
    kw["sparse_mode"], kw["atten_mask"] = 0, None
    return kw


# --- scale / softmax / heads, every attention call ------------------------------------------------

def zero_scale_v2(kw: dict) -> dict:
    kw["softmax_scale"] = 0.0  # every score 0: softmax gives equal weights, the output is a plain mean
    return kw


def zero_scale_air(kw: dict) -> dict:
    kw["scale"] = 0.0
    return kw


def heads_as_mha_v2(kw: dict) -> dict:
    kw["num_key_value_heads"] = kw["num_query_heads"]
    return kw


def heads_as_mha_air(kw: dict) -> dict:
    kw["num_key_value_heads"] = kw["num_heads"]
    return kw


def _modulo_order(num_heads: int, num_kv_heads: int) -> tuple[list[int], list[int]]:
    """(order, inverse): the kernel reads KV head p // g for query slot p. Putting query head
    h = a*n_kv + j at slot p = j*g + a makes head h read KV head j = h % n_kv (tiled), not h // g."""
    group = num_heads // num_kv_heads
    order = [a * num_kv_heads + j for j in range(num_kv_heads) for a in range(group)]
    inverse = [0] * num_heads
    for slot, head in enumerate(order):
        inverse[head] = slot
    return order, inverse


def gqa_modulo(heads_key: str) -> OpWrapper:
    """Query head h attends with KV head h % n_kv instead of h // g (GQA tiling instead of interleaving).
    The head axis is dim 1 for both TND [T, N, D] and BNSD [B, N, S, D] queries and outputs."""
    def wrapper(op):
        def call(query, key, value, **kwargs):
            heads, kv_heads = int(kwargs[heads_key]), int(kwargs.get("num_key_value_heads") or kwargs[heads_key])
            order, inverse = _modulo_order(heads, kv_heads)
            to_slots = torch.tensor(order, device=query.device)
            out, lse = op(query.index_select(1, to_slots), key, value, **kwargs)
            return out.index_select(1, torch.tensor(inverse, device=out.device)), lse
        return call
    return wrapper


def output_through_bf16(op):
    """The attention output passes through a bf16 buffer (8 mantissa bits) before the output dtype:
    precision lost in the kernel, invisible in bf16 cases, visible in fp16 / fp32 ones."""
    def call(query, key, value, **kwargs):
        out, lse = op(query, key, value, **kwargs)
        return out.to(torch.bfloat16).to(out.dtype), lse
    return call


# --- decode (BNSD / torchair) argument changes ----------------------------------------------------

def _kv_lengths(name: str, change: Callable[[torch.Tensor, int], torch.Tensor]) -> Callable[[dict], dict]:
    def apply(kw: dict) -> dict:
        lengths = kw[name]
        kw[name] = change(lengths if isinstance(lengths, torch.Tensor) else torch.tensor(lengths),
                          int(kw["block_size"]))
        return kw
    return apply


def newest_dropped(lengths: torch.Tensor, block_size: int) -> torch.Tensor:
    return (lengths - 1).clamp_min(0)


def rounded_to_block(lengths: torch.Tensor, block_size: int) -> torch.Tensor:
    return (lengths + (block_size - 1)) // block_size * block_size


def full_last_block_dropped(lengths: torch.Tensor, block_size: int) -> torch.Tensor:
    """The last block counted as empty when the length is a block multiple (a `len % bs` used as
    the last block's fill): the whole last block goes missing."""
    return torch.where((lengths % block_size == 0) & (lengths > 0), lengths - block_size, lengths)


def shorter_unaligned_lose_newest(lengths: torch.Tensor, block_size: int) -> torch.Tensor:
    """Rows shorter than the longest row of the batch and not block-aligned lose their newest token."""
    hit = (lengths < lengths.max()) & (lengths % block_size != 0)
    return torch.where(hit, lengths - 1, lengths)


def query_lengths(lengths: torch.Tensor, block_size: int) -> torch.Tensor:
    """The query length of every decode row (1; 0 for graph padding rows)."""
    return lengths.clamp_max(1)


def decode_kv_lengths(change) -> Callable:
    return decode_call(_kv_lengths("actual_seq_kvlen", change), _kv_lengths("actual_seq_lengths_kv", change))


def row0_table(kw: dict) -> dict:
    table = kw["block_table"]
    kw["block_table"] = table[:1].expand(table.shape[0], table.shape[1]).contiguous()
    return kw


def empty_rows_nan(op):
    """The graph op without an empty-row guard: rows with no key (padding, context_lens 0) give NaN
    (0/0 in a naive softmax) instead of 0."""
    def call(query, key, value, **kwargs):
        out, lse = op(query, key, value, **kwargs)
        empty = (kwargs["actual_seq_lengths_kv"] == 0).view(-1, 1, 1, 1)
        return torch.where(empty, torch.full_like(out, math.nan), out), lse
    return call


# --- cache writes ---------------------------------------------------------------------------------

def slots_plus_one(op):
    """_npu_reshape_and_cache with every flat slot one too far."""
    def call(key, value, key_cache, value_cache, slot_indices, *args, **kwargs):
        return op(key, value, key_cache, value_cache, slot_indices + 1, *args, **kwargs)
    return call


def offsets_as_1d_index(op):
    """scatter_update_ given only the offset column of the [B, 2] (block, offset) pairs: the documented
    1-D form, which writes update row i into data row i (block i) at that offset."""
    def call(data, indices, updates, axis):
        if indices.dim() == 2:
            indices = indices[:, 1].contiguous()
        return op(data, indices, updates, axis)
    return call


# --- layer subclasses ------------------------------------------------------------------------------

class ScaleOneOverD(Attention):
    """softmax scale 1/d instead of 1/sqrt(d)."""

    def __init__(self, num_heads, head_dim, scaling, num_kv_heads):
        super().__init__(num_heads, head_dim, scaling, num_kv_heads)
        self.scale = scaling if scaling is not None else 1.0 / head_dim


class ScaleFromModelWidth(Attention):
    """softmax scale from the model width (num_heads * head_dim) instead of the head dim."""

    def __init__(self, num_heads, head_dim, scaling, num_kv_heads):
        super().__init__(num_heads, head_dim, scaling, num_kv_heads)
        self.scale = scaling if scaling is not None else (num_heads * head_dim) ** -0.5


class MaskPolarityInverted(Attention):
    """The 2048 mask built in torch's polarity (True = attend: tril) where FIA wants True = masked (~tril)."""

    def __init__(self, num_heads, head_dim, scaling, num_kv_heads):
        super().__init__(num_heads, head_dim, scaling, num_kv_heads)
        self.mask = torch.tril(torch.ones_like(self.mask))


class ScaleAppliedTwice(Attention):
    """q is pre-scaled by the layer and the kernel scales the scores again."""

    def forward(self, q, k, v):
        return super().forward(q * self.scale, k, v)


class AttendBeforeCacheWrite(Attention):
    """Decode attends over the paged cache before the new token's K/V is written into it."""

    def forward(self, q, k, v):
        context = get_context()
        if context.is_prefill:
            return super().forward(q, k, v)
        self.block_size = context.block_size
        batch_size = q.shape[0]
        if k.ndim == 2:
            k = k.view(-1, self.num_kv_heads, self.head_dim)
            v = v.view(-1, self.num_kv_heads, self.head_dim)
            q = q.view(-1, self.num_heads, self.head_dim)
        q_bnsd = q.view(batch_size, 1, self.num_heads, self.head_dim).transpose(1, 2).contiguous()
        if context.is_enforce_eager:
            out = self._decode_eager(q_bnsd, context)
        else:
            out = self._decode_graph(q_bnsd, context)
        self._store_kvcache(k, v, context)  # planted: the write comes after the read
        return out.transpose(1, 2).reshape(batch_size, -1)


class UpstreamFourDimCache(Attention):
    """The decode write sees upstream nano-vllm's 4-D [num_blocks, block_size, num_kv_heads, head_dim]
    cache (what an upstream runner allocates) instead of the 3-D one scatter_update_ was written for."""

    def _store_kvcache(self, k, v, context: Context) -> None:
        if context.is_prefill:
            return super()._store_kvcache(k, v, context)
        num_blocks, block_size = self.k_cache.shape[0], self.k_cache.shape[1]
        shape = (num_blocks, block_size, self.num_kv_heads, self.head_dim)
        key_rows = k.view(k.shape[0], 1, -1).contiguous()
        value_rows = v.view(v.shape[0], 1, -1).contiguous()
        torch_npu.scatter_update_(self.k_cache.view(shape), context.slot_mapping, key_rows, -2)
        torch_npu.scatter_update_(self.v_cache.view(shape), context.slot_mapping, value_rows, -2)


# --- runner Context transforms (case, ctx) -> ctx -------------------------------------------------

def _padded_rows(ctx: Context) -> list[int]:
    return [] if ctx.context_lens is None else [b for b, n in enumerate(ctx.context_lens.tolist()) if n == 0]


def cached_prefix_prefill(case, ctx: Context) -> Context:
    """Upstream nano-vllm's prefill on a prefix-cache hit: the cached whole blocks of each prompt are
    not recomputed, so cu_seqlens_q counts only the new tokens while cu_seqlens_k counts the full
    prompt, and slot_mapping covers only the new tokens. (The q/k/v rows still hold every token: the
    NPU runner recomputes whole prompts.)"""
    if not ctx.is_prefill:
        return ctx
    lens = list(case.seq_lens)
    cached = [(n - 1) // case.block_size * case.block_size for n in lens]
    if not any(cached):
        return ctx  # no prompt has a full block before its last token: no prefix hit possible
    starts = ctx.cu_seqlens_k[:-1].tolist()
    keep = [s + c + i for s, c, n in zip(starts, cached, lens) for i in range(n - c)]
    new_q = [0]
    for n, c in zip(lens, cached):
        new_q.append(new_q[-1] + n - c)
    device = ctx.cu_seqlens_q.device
    return dataclasses.replace(
        ctx, cu_seqlens_q=torch.tensor(new_q, dtype=torch.int32, device=device),
        max_seqlen_q=max(n - c for n, c in zip(lens, cached)),
        slot_mapping=ctx.slot_mapping[torch.tensor(keep, dtype=torch.long, device=device)])


def flat_decode_slots(case, ctx: Context) -> Context:
    """Upstream nano-vllm's decode slot_mapping: flat block*block_size+offset [B], not [B, 2] pairs."""
    if ctx.is_prefill:
        return ctx
    pairs = ctx.slot_mapping
    return dataclasses.replace(ctx, slot_mapping=(pairs[:, 0] * case.block_size + pairs[:, 1]).to(torch.int32))


def decode_offset_plus_one(case, ctx: Context) -> Context:
    """The runner's decode slot is one past the new token: offset = last_block_num_tokens instead of
    last_block_num_tokens - 1 (at a block boundary: an offset equal to block_size)."""
    if ctx.is_prefill:
        return ctx
    pairs = ctx.slot_mapping.clone()
    real = [b for b in range(pairs.shape[0]) if b not in set(_padded_rows(ctx))]
    pairs[real, 1] += 1
    return dataclasses.replace(ctx, slot_mapping=pairs)


def padding_to_block_zero(case, ctx: Context) -> Context:
    """Graph padding rows write slot (0, 0), the null block, instead of the reserved dummy block."""
    padded = _padded_rows(ctx)
    if ctx.is_prefill or not padded:
        return ctx
    pairs = ctx.slot_mapping.clone()
    pairs[padded] = 0
    return dataclasses.replace(ctx, slot_mapping=pairs)


def padding_context_len_one(case, ctx: Context) -> Context:
    """Graph padding rows get context_lens 1 (to avoid zero-length rows) and a block table pointing at
    the dummy block, so they read the dummy slot; a runner without the origin's real_bs field (-1)."""
    padded = _padded_rows(ctx)
    if ctx.is_prefill or not padded:
        return ctx
    lens, tables = ctx.context_lens.clone(), ctx.block_tables.clone()
    lens[padded] = 1
    tables[padded, 0] = case.dummy_block
    return dataclasses.replace(ctx, context_lens=lens, block_tables=tables, real_bs=-1)


def padding_slot_minus_one(case, ctx: Context) -> Context:
    """Upstream's CUDA-graph padding slot -1, converted to (block, offset) with floor division as a
    port would: (-1 // bs, -1 % bs) = (-1, bs - 1), i.e. block -1 read as a Python index (the last
    block)."""
    padded = _padded_rows(ctx)
    if ctx.is_prefill or not padded:
        return ctx
    flat = torch.full((len(padded),), -1, dtype=torch.int32)
    pairs = ctx.slot_mapping.clone()
    pairs[padded] = torch.stack([torch.div(flat, case.block_size, rounding_mode="floor"),
                                 torch.remainder(flat, case.block_size)], 1).to(pairs)
    return dataclasses.replace(ctx, slot_mapping=pairs)


# --- graph capture and replay: (capture, replay, ctx, q, k, v) -> out ------------------------------
# The runner copies each step's Context into the buffers the compiled graph was captured with and
# replays it. `capture` is a dict that lives as long as the compiled graph (one per configuration).

def _frozen_at_capture(field: str):
    """The runner fills the static `field` buffer at capture only; later replays see the first step's
    values (graph inputs that were baked in instead of copied in every step)."""

    def graph_call(capture, replay, ctx: Context, q, k, v):
        frozen = capture.setdefault(field, getattr(ctx, field).clone())
        return replay(dataclasses.replace(ctx, **{field: frozen}), q, k, v)

    return graph_call


context_lens_frozen = _frozen_at_capture("context_lens")
block_tables_frozen = _frozen_at_capture("block_tables")


def stale_length_tail(capture, replay, ctx: Context, q, k, v):
    """The persistent context_lens buffer (max_num_seqs long, zeroed at capture) gets only the live rows
    copied in each step: when the batch shrinks, the padded tail keeps the lengths of sequences that
    left, so padded rows attend to whatever their table row holds."""
    real = ctx.real_bs
    buffer = capture.setdefault("context_lens", torch.zeros_like(ctx.context_lens))
    buffer[:real] = ctx.context_lens[:real]
    return replay(dataclasses.replace(ctx, context_lens=buffer.clone()), q, k, v)


def padded_to_live_plus_one(capture, replay, ctx: Context, q, k, v):
    """The padded request count is computed from the live batch (real_bs + 1 rows, one padding row)
    instead of max_num_seqs: the graph's input shapes change whenever the live batch does, so every
    such step recompiles (a graph compile inside the decode loop). The output is padded back to
    max_num_seqs rows with zeros, as the runner slices it."""
    rows = min(ctx.real_bs + 1, q.shape[0])
    short = dataclasses.replace(ctx, slot_mapping=ctx.slot_mapping[:rows], context_lens=ctx.context_lens[:rows],
                                block_tables=ctx.block_tables[:rows])
    out = replay(short, q[:rows], k[:rows], v[:rows])
    return torch.cat([out, out.new_zeros((q.shape[0] - rows,) + tuple(out.shape[1:]))])


def host_context_lens(capture, replay, ctx: Context, q, k, v):
    """The runner hands the graph the lengths as the host-side Python list it built them from: Dynamo
    bakes each int into the graph and guards on it, so every step with new lengths recompiles."""
    return replay(dataclasses.replace(ctx, context_lens=ctx.context_lens.tolist()), q, k, v)


class LengthsFromHostList(Attention):
    """The graph path turns a host list of lengths into the kernel's int64 tensor (with host_context_lens)."""

    def _decode_graph(self, q_bnsd, context: Context):
        if isinstance(context.context_lens, list):
            context = dataclasses.replace(
                context, context_lens=torch.tensor(context.context_lens, dtype=torch.int64, device=q_bnsd.device))
        return super()._decode_graph(q_bnsd, context)
