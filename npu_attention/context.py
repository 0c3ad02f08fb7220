"""The forward Context a nano-vllm-style NPU runner hands to every Attention layer.

Field set and forms follow the runner of the NPU port (linzm1007/nano-vllm-ascend,
nanovllm/utils/context.py and nanovllm/engine/model_runner.py):

| field              | prefill                    | decode (eager)            | decode (graph)                  |
|--------------------|----------------------------|---------------------------|---------------------------------|
| is_prefill         | True                       | False                     | False                           |
| cu_seqlens_q/_k    | int32 [B+1], equal         | None                      | None                            |
| max_seqlen_q/_k    | int                        | 0                         | 0                               |
| slot_mapping       | int32 [T], flat            | int32 [B, 2] (block, off) | same, pads -> reserved block    |
| context_lens       | None                       | int32 [B] (incl. new tok) | padded rows 0                   |
| block_tables       | int32 [B, W], -1 padded    | int32 [B, W], -1 padded   | fixed [max_num_seqs, W], -1     |
| block_size         | int                        | int                       | int                             |
| is_enforce_eager   | None / True                | True                      | False                           |

Like the origin's `set_context`, every keyword not given is None (not the dataclass default).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class Context:
    is_prefill: bool = False
    cu_seqlens_q: torch.Tensor | None = None
    cu_seqlens_k: torch.Tensor | None = None
    max_seqlen_q: int = 0
    max_seqlen_k: int = 0
    slot_mapping: torch.Tensor | None = None
    context_lens: torch.Tensor | None = None
    block_tables: torch.Tensor | None = None
    is_enforce_eager: bool | None = True
    real_bs: int | None = -1
    block_size: int | None = 256

    @property
    def phase(self) -> str:
        """'prefill', 'decode_eager' or 'decode_graph': which kernel path forward() takes."""
        if self.is_prefill:
            return "prefill"
        return "decode_eager" if self.is_enforce_eager else "decode_graph"


_CONTEXT = Context()


def get_context() -> Context:
    return _CONTEXT


def set_context(
    is_prefill,
    cu_seqlens_q=None,
    cu_seqlens_k=None,
    max_seqlen_q=0,
    max_seqlen_k=0,
    slot_mapping=None,
    context_lens=None,
    block_tables=None,
    is_enforce_eager=None,
    real_bs=None,
    block_size=None,
) -> Context:
    """Replace the global context. Missing keywords become None, exactly as in the origin runner."""
    global _CONTEXT
    _CONTEXT = Context(
        is_prefill,
        cu_seqlens_q,
        cu_seqlens_k,
        max_seqlen_q,
        max_seqlen_k,
        slot_mapping,
        context_lens,
        block_tables,
        is_enforce_eager,
        real_bs,
        block_size,
    )
    return _CONTEXT


def reset_context() -> None:
    global _CONTEXT
    _CONTEXT = Context()


@contextlib.contextmanager
def use_context(context: Context) -> Iterator[Context]:
    """Install `context` for the duration of a block, then restore the previous one (for tests)."""
    global _CONTEXT
    previous = _CONTEXT
    _CONTEXT = context
    try:
        yield context
    finally:
        _CONTEXT = previous
