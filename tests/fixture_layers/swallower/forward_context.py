"""The forward context (nano-vllm's convention)."""

from types import SimpleNamespace

_FIELDS = ("is_prefill", "cu_seqlens_q", "cu_seqlens_k", "max_seqlen_q", "max_seqlen_k", "slot_mapping",
           "context_lens", "block_tables", "is_enforce_eager", "real_bs", "block_size")
_current = SimpleNamespace(**dict.fromkeys(_FIELDS))


def get_context():
    return _current


def set_context(**fields):
    global _current
    _current = SimpleNamespace(**{name: fields.get(name) for name in _FIELDS})


def reset_context():
    global _current
    _current = SimpleNamespace(**dict.fromkeys(_FIELDS))
