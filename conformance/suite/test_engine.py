"""A stateful engine over the runner contract: sequences arrive (prefill), grow (decode, eager or graph,
for any subset), finish (their blocks go back to the pool and are reused, stale data and all).

Every step's output is judged against the reference over the *current* cache state, and the layer's
cache must stay bit-identical to a model cache that only the reference's scatter writes to.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from conformance.cases.case import DTYPES, Case, Tensors
from conformance.cases.engine import EngineConfig, EngineModel
from conformance.cases.strategies import attention_shapes
from conformance.harness.verify import verify_case
from conformance.judge.settings import settings
from conformance.suite import _given

pytestmark = pytest.mark.suite

MAX_LIVE = 4
NUM_BLOCKS = 24  # block 0 never handed out; the last block is the graph-padding dummy


class EngineMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.shape = None
        self.engine: EngineModel | None = None  # the ground truth: live sequences, their blocks, the free list
        self.k_cache = self.v_cache = None

    # --- helpers ---------------------------------------------------------------------------
    def _ensure_shape(self, data):
        if self.shape is None:
            space = _given.shape_space()
            self.shape = data.draw(attention_shapes(space, "engine"), label="shape")  # prefill and decode
            bs = self.shape["block_size"]
            config = EngineConfig(block_size=bs, num_blocks=NUM_BLOCKS, max_num_seqs=MAX_LIVE + 1,
                                  max_model_len=(NUM_BLOCKS - 2) * bs, enforce_eager=True, dummy_block=NUM_BLOCKS - 1)
            self.engine = EngineModel(config, list(range(1, NUM_BLOCKS - 1)))
            dtype = DTYPES[self.shape["dtype"]]
            rows = (NUM_BLOCKS, self.shape["block_size"], self.shape["num_kv_heads"] * self.shape["head_dim"])
            self.k_cache = torch.full(rows, math.nan, dtype=dtype)
            self.v_cache = torch.full(rows, math.nan, dtype=dtype)

    @staticmethod
    def _pick(data):
        """The block manager's choice among the free blocks, drawn (shuffled allocation)."""
        return lambda free: data.draw(st.integers(0, len(free) - 1), label="block")

    def _run(self, case: Case, seed: int, property_name: str) -> None:
        """New q/k/v from `seed`, the engine's cache as the starting state; judge and keep the result."""
        values = case.materialise("cpu")  # only q/k/v are taken from it; the cache is the engine's
        device = settings().device
        tensors = Tensors(case, values.q.to(device), values.k.to(device), values.v.to(device),
                          self.k_cache.to(device), self.v_cache.to(device))
        outcome = verify_case(case, property_name, tensors=tensors)
        self.k_cache, self.v_cache = outcome.layer.k_cache, outcome.layer.v_cache

    def _case(self, phase: str, ids: list[int], seed: int, **extra) -> Case:
        live = self.engine.live
        return Case(phase=phase, **self.shape, num_blocks=NUM_BLOCKS, seq_lens=tuple(live[i].num_tokens for i in ids),
                    block_tables=tuple(tuple(live[i].block_table) for i in ids), seed=seed, **extra)

    # --- rules -----------------------------------------------------------------------------
    @initialize(data=st.data(), seed=st.integers(0, 2**31 - 1))
    def start_engine(self, data, seed):
        """Every run starts with an engine shape and a first prefill, so every rule is live from step 1
        (without it most examples ended before a decode step could run)."""
        self._ensure_shape(data)
        self._admit(data, seed)

    # No preconditions: hypothesis draws rules with a strong bias to the first, and a disabled one makes
    # it discard the example as invalid. A rule that cannot act (a full engine, a last sequence) is a no-op.
    @rule(data=st.data(), seed=st.integers(0, 2**31 - 1))
    def add_sequences(self, data, seed):
        if len(self.engine.live) < MAX_LIVE:
            self._admit(data, seed)

    def _admit(self, data, seed):
        bs = self.shape["block_size"]
        count = data.draw(st.integers(1, MAX_LIVE - len(self.engine.live)), label="new sequences")
        ids = []
        for _ in range(count):
            seq_id = self.engine.admit(data.draw(st.integers(1, 3 * bs), label="prompt length"), self._pick(data))
            if seq_id is None:  # not enough free blocks
                break
            ids.append(seq_id)
        if ids:
            self._run(self._case("prefill", ids, seed), seed, "engine/prefill")

    @rule(data=st.data(), seed=st.integers(0, 2**31 - 1), graph=st.booleans())
    def decode_step(self, data, seed, graph):
        ids = data.draw(st.lists(st.sampled_from(sorted(self.engine.live)), min_size=1, unique=True), label="decoding")
        ids = [i for i in ids if self.engine.grow(i, self._pick(data))]  # no free block for a new one: skipped
        if not ids:
            return
        extra = {}
        if graph:
            extra = {"max_num_seqs": MAX_LIVE + 1, "table_width": NUM_BLOCKS - 2}  # fixed, as max_model_len // bs
        self._run(self._case("decode_graph" if graph else "decode_eager", ids, seed, **extra), seed,
                  f"engine/decode_{'graph' if graph else 'eager'}")

    @rule(data=st.data())
    def finish_sequence(self, data):
        if len(self.engine.live) < 2:  # keep one sequence alive: every step after the first can decode
            return
        # Blocks return with their stale contents: a later reader that strays past its length sees them.
        self.engine.finish(data.draw(st.sampled_from(sorted(self.engine.live)), label="finished"))

    # --- invariants ------------------------------------------------------------------------
    @invariant()
    def blocks_are_owned_once(self):
        if self.engine is None:
            return
        owned = [b for seq in self.engine.live.values() for b in seq.block_table]
        assert len(owned) == len(set(owned)), f"a block is owned twice: {owned}"
        assert not set(owned) & set(self.engine.free), "a live block is on the free list"
        assert 0 not in owned and NUM_BLOCKS - 1 not in owned, "reserved blocks were handed out"


test_engine = EngineMachine.TestCase
