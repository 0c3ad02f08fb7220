"""Strategies bound to the backend selected at run time (the plugin sets it before the first draw)."""

from __future__ import annotations

from hypothesis import strategies as st

from conformance.cases import strategies
from conformance.judge.settings import settings


def shape_space() -> str:
    """Whose shapes to draw: the npu set on hardware; on the emulator also its extensions, which are
    notes (float32), never hazards, so they can run under --strict-contracts too. `--shape-space npu`
    draws the npu set on the emulator as well."""
    s = settings()
    return s.backend if s.shape_space == "auto" else s.shape_space


def cases(factory, **kwargs) -> st.SearchStrategy:
    """`factory(space, **kwargs)`, built lazily: the plugin configures the run before the first draw."""
    return st.deferred(lambda: factory(shape_space(), **kwargs))


prefill = cases(strategies.prefill_cases)
decode_eager = cases(strategies.decode_cases)
decode_graph = cases(strategies.graph_cases)
graph_session = cases(strategies.graph_sessions)
