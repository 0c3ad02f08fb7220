"""Strategies bound to the backend selected at run time (the plugin sets it before the first draw)."""

from __future__ import annotations

from hypothesis import strategies as st

from conformance import strategies
from conformance.session import settings


def cases(factory, **kwargs) -> st.SearchStrategy:
    """`factory(backend, **kwargs)`, built lazily so the npu backend only gets shapes it accepts."""
    return st.deferred(lambda: factory(settings().backend, **kwargs))


prefill = cases(strategies.prefill_cases)
decode_eager = cases(strategies.decode_cases)
decode_graph = cases(strategies.graph_cases)
