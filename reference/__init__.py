"""Independent pure-PyTorch oracle for paged attention.

Imports only torch and the standard library, never the code under test.
"""

from .attention import paged_attention, varlen_attention
from .cache import scatter_kv

__all__ = ["paged_attention", "scatter_kv", "varlen_attention"]
