"""Which engine edges a graph session exercises: what a runner must get right at the boundaries of its
configuration. The strategies draw them (conformance.cases.strategies.graph_sessions); this names them
per session, so their shares can be counted (bench/draw_shares.py) and their presence tested."""

from __future__ import annotations

from conformance.cases.graph_session import GraphSession, session_steps


def model_len_edge(session: GraphSession) -> str:
    """Where max_model_len sits relative to a multiple of block_size (MODEL_LEN_EDGES' names)."""
    bs, top = session.block_size, session.table_width * session.block_size
    return {top: "at a multiple", top - 1: "just below a multiple",
            top - bs + 1: "just above a multiple"}.get(session.max_len, "not a multiple")


def session_edges(session: GraphSession) -> set[str]:
    edges = {model_len_edge(session)}
    if session.num_blocks == 2 + session.max_num_seqs * session.table_width:
        edges.add("exactly enough blocks")
    owner: dict[int, int] = {}
    for _, step, admitted in session_steps(session):
        lengths = [s.num_tokens for s in step.sequences]
        if session.max_len in lengths:
            edges.add("reaches max_model_len")
        if len(lengths) == session.max_num_seqs:
            edges.add("full batch")
        if len(lengths) == 1:
            edges.add("one live sequence")
        for seq in admitted:
            if seq.num_tokens == 1:
                edges.add("prompt of 1 token")
            if seq.num_tokens == session.block_size:
                edges.add("prompt of exactly one block")
        for s in step.sequences:
            for block in s.block_table:
                if owner.setdefault(block, s.seq_id) != s.seq_id:
                    edges.add("block reused")
                    owner[block] = s.seq_id
    return edges


#: Every edge session_edges can name, in report order.
EDGES = ("at a multiple", "just below a multiple", "just above a multiple", "not a multiple",
         "reaches max_model_len", "full batch", "one live sequence", "exactly enough blocks", "block reused",
         "prompt of 1 token", "prompt of exactly one block")
