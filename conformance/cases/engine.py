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
