"""The production NPU Attention layer of a nano-vllm-style runner, and its forward Context.

Importing this package never imports torch_npu: kernels are loaded on first call (see kernels.py).
"""

from npu_attention.attention import Attention
from npu_attention.context import Context, get_context, reset_context, set_context, use_context
from npu_attention.validate import ContextError, validate_context

__all__ = [
    "Attention",
    "Context",
    "ContextError",
    "get_context",
    "reset_context",
    "set_context",
    "use_context",
    "validate_context",
]
