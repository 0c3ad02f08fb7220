"""Metamorphic relations: transform a case in a way that must not change the answer, and compare.

Each transform returns a new (Case, Tensors) pair holding the same per-sequence values, plus the
map from the new output rows back to the original rows. The layer must give bit-identical rows:
attention of one sequence does not depend on its neighbours or on where its blocks live.
"""

from __future__ import annotations

import dataclasses

import torch

from conformance.cases.case import Case, Tensors


def _rows_by_sequence(case: Case) -> list[list[int]]:
    """Input/output rows of each sequence (prefill: its tokens; decode: its one row)."""
    if not case.is_prefill:
        return [[b] for b in range(case.batch)]
    rows, start = [], 0
    for length in case.seq_lens:
        rows.append(list(range(start, start + length)))
        start += length
    return rows


def permute_batch(case: Case, t: Tensors, order: list[int]) -> tuple[Case, Tensors, list[int]]:
    """Sequences in a new order (same blocks, same values). Returns (case, tensors, source rows)."""
    if sorted(order) != list(range(case.batch)):
        raise ValueError(f"order must be a permutation of range({case.batch}), got {order}")
    groups = _rows_by_sequence(case)
    rows = [r for b in order for r in groups[b]]
    padding = list(range(sum(len(g) for g in groups), case.num_new_tokens))  # graph rows stay last
    index = torch.tensor(rows + padding, dtype=torch.long)
    new_case = dataclasses.replace(case, seq_lens=tuple(case.seq_lens[b] for b in order),
                                   block_tables=tuple(case.block_tables[b] for b in order), outlier_rows=())
    new_t = Tensors(new_case, t.q[index.to(t.q.device)], t.k[index.to(t.k.device)], t.v[index.to(t.v.device)],
                    t.k_cache.clone(), t.v_cache.clone())
    return new_case, new_t, rows + padding


def relabel_blocks(case: Case, t: Tensors, mapping: dict[int, int]) -> tuple[Case, Tensors, list[int]]:
    """Move every physical block b to mapping[b] (a permutation of the pool; unmapped blocks stay)."""
    perm = list(range(case.num_blocks))
    for old, new in mapping.items():
        perm[old] = new
    if sorted(perm) != list(range(case.num_blocks)):
        raise ValueError("mapping must permute the block pool")
    if perm[case.dummy_block] != case.dummy_block and case.phase == "decode_graph":
        raise ValueError("the graph-padding dummy block cannot move")
    new_case = dataclasses.replace(case, block_tables=tuple(tuple(perm[b] for b in row) for row in case.block_tables))
    inverse = torch.tensor([perm.index(i) for i in range(case.num_blocks)], dtype=torch.long)
    new_t = Tensors(new_case, t.q, t.k, t.v, t.k_cache[inverse.to(t.k_cache.device)].clone(),
                    t.v_cache[inverse.to(t.v_cache.device)].clone())
    return new_case, new_t, list(range(case.num_new_tokens))


def unrelabel_cache(case: Case, cache: torch.Tensor, mapping: dict[int, int]) -> torch.Tensor:
    """The relabelled cache moved back to the original block ids, to compare with the original run."""
    perm = list(range(case.num_blocks))
    for old, new in mapping.items():
        perm[old] = new
    return cache[torch.tensor(perm, dtype=torch.long)]
