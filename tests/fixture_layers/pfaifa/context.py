"""The forward context (nano-vllm's convention), as this engine keeps it."""

from dataclasses import dataclass, fields

import torch


@dataclass
class ForwardContext:
    is_prefill: bool = False
    cu_seqlens_q: torch.Tensor | None = None
    cu_seqlens_k: torch.Tensor | None = None
    max_seqlen_q: int = 0
    max_seqlen_k: int = 0
    slot_mapping: torch.Tensor | None = None
    context_lens: torch.Tensor | None = None
    block_tables: torch.Tensor | None = None
    is_enforce_eager: bool | None = None
    real_bs: int | None = None
    block_size: int | None = None


_current = ForwardContext()


def get_context() -> ForwardContext:
    return _current


def set_context(**kwargs) -> None:
    global _current
    _current = ForwardContext(**{f.name: kwargs.get(f.name) for f in fields(ForwardContext)})


def reset_context() -> None:
    global _current
    _current = ForwardContext()
