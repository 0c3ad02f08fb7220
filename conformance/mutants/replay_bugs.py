"""Bugs planted `via` "replay": the runner's graph capture and replay hands the compiled decode graph
other values than the Context it built.

The runner copies each step's Context into the buffers the graph was captured with and replays it.
Each bug here stands in for that copy as a `graph_call` hook (conformance.judge.mutation says what it
is given, and the `capture` dict it may keep state in), so it shows on a later step through the same
compiled graph, never on the step that captured it. A replay bug may come with the layer code that
reads what the runner hands the graph (a `layer_class`: LengthsFromHostList).
"""

from __future__ import annotations

import dataclasses

import torch

from npu_attention import Attention, Context


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
