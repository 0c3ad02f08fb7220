"""The engine step a runner turns into a Context: the documented description a runner adapter is given.

The harness drives an engine model (which sequences are live, how long each is, which physical blocks
the block manager gave it); a step of that engine is an `EngineStep`. A runner adapter
(conformance.adapters.runner) is a function from an EngineStep to the Context the layer will read,
exactly what a nano-vllm-style `ModelRunner.prepare_prefill` / `prepare_decode` does with the
scheduler's batch. The reference output and the expected cache are computed from the same step (the
ground truth), never from the Context a runner built, so a runner that encodes the step wrongly fails
on output or cache.

    EngineStep(is_prefill, config=EngineConfig(block_size, num_blocks, max_num_seqs, max_model_len,
                                               enforce_eager, dummy_block),
               sequences=(ScheduledSequence(seq_id, num_tokens, num_scheduled_tokens, block_table), ...))

Plain data: frozen dataclasses of ints, bools and tuples; no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class EngineConfig:
    """What the engine was started with (static for its whole life)."""

    block_size: int
    num_blocks: int  # blocks in the pool, reserved ones included
    max_num_seqs: int  # compiled (graph) decode pads the batch to this many rows
    max_model_len: int  # the longest a sequence may grow; graph decode's block table is this wide in blocks
    enforce_eager: bool  # decode runs eagerly (True) or through the compiled graph (False)
    dummy_block: int  # the reserved block padded graph rows write; no sequence ever holds it

    @property
    def table_width(self) -> int:
        """Blocks a sequence of max_model_len tokens needs: the fixed width of the graph's block table."""
        return math.ceil(self.max_model_len / self.block_size)


@dataclass(frozen=True)
class ScheduledSequence:
    """One sequence of the step, as the scheduler hands it to the runner."""

    seq_id: int
    num_tokens: int  # tokens the sequence holds once this step's tokens are written (its length)
    num_scheduled_tokens: int  # tokens computed this step: the whole prompt in prefill, 1 in decode
    block_table: tuple[int, ...]  # physical block ids in logical order, as the block manager assigned them

    @property
    def first_new_position(self) -> int:
        return self.num_tokens - self.num_scheduled_tokens


@dataclass(frozen=True)
class EngineStep:
    is_prefill: bool
    config: EngineConfig
    sequences: tuple[ScheduledSequence, ...]

    @property
    def phase(self) -> str:
        if self.is_prefill:
            return "prefill"
        return "decode_eager" if self.config.enforce_eager else "decode_graph"


def slot_of(block_table: tuple[int, ...] | list[int], position: int, block_size: int) -> tuple[int, int]:
    """(block, offset) holding token `position` of a sequence: the ground truth of every cache write."""
    return block_table[position // block_size], position % block_size


def new_token_slots(step: EngineStep) -> list[tuple[int, int, int]]:
    """(sequence index, position, flat slot) of every token this step writes, in batch order."""
    bs = step.config.block_size
    out = []
    for b, seq in enumerate(step.sequences):
        for position in range(seq.first_new_position, seq.num_tokens):
            block, offset = slot_of(seq.block_table, position, bs)
            out.append((b, position, block * bs + offset))
    return out


@dataclass
class LiveSequence:
    seq_id: int
    num_tokens: int  # tokens it holds, the one being decoded included
    block_table: list[int]


class EngineModel:
    """The ground truth of an engine: its configuration, the live sequences (their tokens so far and the
    blocks the block manager gave them, in logical order) and the free list. Blocks go back to the front
    of the free list when a sequence finishes, stale contents and all, so the next sequence to need a
    block gets one. `step(...)` describes a step of it as the runner is given it (an EngineStep)."""

    def __init__(self, config: EngineConfig, free: list[int]):
        self.config = config
        self.free = list(free)
        self.live: dict[int, LiveSequence] = {}
        self.next_id = 0

    def blocks_for(self, num_tokens: int) -> int:
        return math.ceil(num_tokens / self.config.block_size)

    def admit(self, num_tokens: int, pick=lambda free: 0) -> int | None:
        """A new sequence of `num_tokens` (its prompt), if the scheduler would take it now: a batch slot,
        a length within max_model_len and enough free blocks (`pick(free list)` chooses each one's index).
        Returns its id, or None."""
        need = self.blocks_for(num_tokens)
        if len(self.live) >= self.config.max_num_seqs or num_tokens > self.config.max_model_len \
                or need > len(self.free):
            return None
        seq = LiveSequence(self.next_id, num_tokens, [self.free.pop(pick(self.free)) for _ in range(need)])
        self.live[seq.seq_id] = seq
        self.next_id += 1
        return seq.seq_id

    def grow(self, seq_id: int, pick=lambda free: 0) -> bool:
        """The sequence takes its next token (a new block when the token opens one). False when it
        cannot: at max_model_len, or no free block left (the caller finishes it or skips it)."""
        seq = self.live[seq_id]
        opens_block = seq.num_tokens % self.config.block_size == 0
        if seq.num_tokens + 1 > self.config.max_model_len or (opens_block and not self.free):
            return False
        if opens_block:
            seq.block_table.append(self.free.pop(pick(self.free)))
        seq.num_tokens += 1
        return True

    def finish(self, seq_id: int) -> None:
        self.free[:0] = self.live.pop(seq_id).block_table  # stale contents, handed out next

    def step(self, seq_ids, is_prefill: bool) -> EngineStep:
        seqs = tuple(ScheduledSequence(seq_id=i, num_tokens=self.live[i].num_tokens,
                                       num_scheduled_tokens=self.live[i].num_tokens if is_prefill else 1,
                                       block_table=tuple(self.live[i].block_table)) for i in seq_ids)
        return EngineStep(is_prefill=is_prefill, config=self.config, sequences=seqs)
