"""Graph decode as the engine runs it: one engine configuration, many decode steps through one graph.

A GraphSession is plain data: the static shapes the runner compiles decode for (heads, head dim, dtype,
block size, pool size, max_num_seqs, block-table width) and a sequence of steps. Before each step some
sequences leave (their blocks go back to the front of the free list, stale contents and all, so the
next sequence to need a block gets one) and some join (their history is written into the cache, as a
prefill would have left it); then every live sequence decodes one token, padded to max_num_seqs. A
sequence that would outgrow the table width or find no free block finishes instead.

`run_session` hands every step to a judge (conformance.harness.verify.verify_session: against the
reference, padded rows exactly 0, the whole cache bit-exact) on the cache the previous steps left, so all
steps of all sessions with one configuration replay one compiled graph (conformance.judge.graph): a value
frozen at capture, a stale buffer or a recompile shows on a later step. `run_session(..., eager=True)`
runs the same steps through eager decode, for the metamorphic relation between the two.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

import torch

from conformance.cases.case import DTYPES, SEED_MAX, Case, CaseError, Tensors, check_int, check_int_tuple
from conformance.cases.engine import EngineConfig, EngineModel, EngineStep, LiveSequence


@dataclass(frozen=True)
class SessionStep:
    join: tuple[int, ...] = ()  # lengths (history + the new token) of sequences that join before the step
    leave: tuple[int, ...] = ()  # positions, taken modulo the live count, of sequences that finish first


@dataclass(frozen=True)
class GraphSession:
    num_heads: int
    num_kv_heads: int
    head_dim: int
    dtype: str
    block_size: int
    num_blocks: int  # block 0 never handed out; the last block is the graph-padding dummy
    max_num_seqs: int
    table_width: int  # ceil(max_model_len / block_size): a sequence never holds more blocks
    seed: int
    block_order: tuple[int, ...]  # the free list at the start: blocks 1 .. num_blocks - 2, shuffled
    start: tuple[int, ...]  # lengths of the sequences live at the first step
    steps: tuple[SessionStep, ...] = field(default_factory=tuple)
    #: the engine's max_model_len (0: table_width * block_size); left out of the JSON when 0
    max_model_len: int = 0

    def __post_init__(self):
        """Check every field (a case file is data from anywhere) before anything is allocated."""
        owner = "GraphSession"
        if self.dtype not in DTYPES:
            raise CaseError(f"GraphSession.dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        for name in ("num_heads", "num_kv_heads", "head_dim", "block_size", "num_blocks", "max_num_seqs",
                     "table_width"):
            check_int(name, getattr(self, name), 1, owner=owner)
        check_int("seed", self.seed, 0, SEED_MAX, owner=owner)
        check_int("max_model_len", self.max_model_len, 0, owner=owner)
        if self.max_model_len and math.ceil(self.max_model_len / self.block_size) != self.table_width:
            raise CaseError(f"GraphSession.table_width ({self.table_width}) must be ceil(max_model_len / block_size) "
                            f"= {math.ceil(self.max_model_len / self.block_size)}")
        check_int_tuple("start", self.start, 1, owner=owner)
        check_int_tuple("block_order", self.block_order, 1, owner=owner)
        if not isinstance(self.steps, tuple) or not all(isinstance(s, SessionStep) for s in self.steps):
            raise CaseError("GraphSession.steps must be a list of {join, leave} steps")
        for i, step in enumerate(self.steps):
            check_int_tuple(f"steps[{i}].join", step.join, 1, owner=owner)
            check_int_tuple(f"steps[{i}].leave", step.leave, 0, owner=owner)
        longest = max([*self.start, *(n for s in self.steps for n in s.join)], default=0)
        if longest > self.max_len:
            raise CaseError(f"GraphSession: a sequence of {longest} tokens is longer than max_model_len "
                            f"({self.max_len}): the engine would never admit it")
        if self.num_blocks < self.max_num_seqs + 2:
            raise CaseError(f"GraphSession.num_blocks ({self.num_blocks}) must be >= max_num_seqs + 2 "
                            f"({self.max_num_seqs + 2}): block 0 and the dummy block are never handed out, and "
                            "every live sequence writes its new token into a block of its own")
        if sorted(self.block_order) != list(range(1, self.num_blocks - 1)):
            raise CaseError(f"GraphSession.block_order must be a permutation of blocks 1..{self.num_blocks - 2}")
        # The static shape as one padded step: heads that divide, the memory budget of the caches.
        Case(phase="decode_graph", num_heads=self.num_heads, num_kv_heads=self.num_kv_heads, head_dim=self.head_dim,
             dtype=self.dtype, block_size=self.block_size, num_blocks=self.num_blocks, seq_lens=(1,),
             block_tables=((1,),), seed=0, max_num_seqs=self.max_num_seqs, table_width=self.table_width)

    def to_dict(self) -> dict:
        data = asdict(self)
        if not data["max_model_len"]:
            del data["max_model_len"]  # the default: sessions saved before the field read the same
        return data

    @classmethod
    def from_dict(cls, data: dict) -> GraphSession:
        if not isinstance(data, dict):
            raise CaseError(f"a graph session must be an object, got {type(data).__name__}")
        data = dict(data)
        try:
            steps = tuple(SessionStep(tuple(s.get("join", ())), tuple(s.get("leave", ())))
                          for s in data.pop("steps", ()))
            return cls(**{**data, "block_order": tuple(data["block_order"]), "start": tuple(data["start"]),
                          "steps": steps})
        except (TypeError, KeyError, AttributeError) as exc:
            raise CaseError(f"not a graph session: {exc}") from None

    @property
    def max_len(self) -> int:
        """The engine's max_model_len: the longest a sequence may grow."""
        return self.max_model_len or self.table_width * self.block_size


def session_steps(session: GraphSession) -> Iterator[tuple[int, EngineStep, list[LiveSequence]]]:
    """The engine model of a session, step by step: (step index, the step as the runner is given it,
    the sequences admitted just before it) for every step with live sequences. Before each step the
    sequences that decoded last step take their next token (one that cannot, at max_model_len or with no
    free block, finishes), `leave` ones finish (positions in live order) and `join` ones are admitted."""
    config = EngineConfig(block_size=session.block_size, num_blocks=session.num_blocks,
                          max_num_seqs=session.max_num_seqs, max_model_len=session.max_len, enforce_eager=False,
                          dummy_block=session.num_blocks - 1)
    model = EngineModel(config, list(session.block_order))
    admitted = [model.admit(length) for length in session.start]
    for index, step in enumerate((SessionStep(),) + tuple(session.steps)):
        if index:
            for seq_id in list(model.live):
                if not model.grow(seq_id):
                    model.finish(seq_id)
            for position in step.leave:
                live = list(model.live)
                if live:
                    model.finish(live[position % len(live)])
            admitted += [model.admit(length) for length in step.join]
        if model.live:
            new = [model.live[i] for i in admitted if i is not None and i in model.live]
            admitted = []
            yield index, model.step(list(model.live), is_prefill=False), new


def _write_history(session: GraphSession, seq: LiveSequence, k_cache: torch.Tensor, v_cache: torch.Tensor) -> None:
    """Tokens 0 .. length-2 of a new sequence, as its prefill wrote them (values seeded per sequence)."""
    gen = torch.Generator().manual_seed((session.seed * 1_000_003 + seq.seq_id) % 2**63)
    width = session.num_kv_heads * session.head_dim
    for cache in (k_cache, v_cache):
        rows = torch.randn(seq.num_tokens - 1, width, generator=gen).to(cache.dtype).to(cache.device)
        for pos in range(seq.num_tokens - 1):
            cache[seq.block_table[pos // session.block_size], pos % session.block_size] = rows[pos]


@dataclass
class SessionCaches:
    """The cache a session's sequences share; a step starts from what the previous steps left."""

    k_cache: torch.Tensor
    v_cache: torch.Tensor


def step_cases(session: GraphSession, device: str = "cpu") -> Iterator[tuple[int, Case, SessionCaches]]:
    """(step index, the step's decode_graph Case, the caches before the step) for every step with live
    sequences. Callers replace the caches with what the step left."""
    shape = (session.num_blocks, session.block_size, session.num_kv_heads * session.head_dim)
    dtype = DTYPES[session.dtype]
    # Poison: a slot no sequence has written is NaN, so reading it shows.
    caches = SessionCaches(torch.full(shape, math.nan, dtype=dtype, device=device),
                           torch.full(shape, math.nan, dtype=dtype, device=device))
    for index, step, admitted in session_steps(session):
        for seq in admitted:
            _write_history(session, seq, caches.k_cache, caches.v_cache)
        case = Case(phase="decode_graph", num_heads=session.num_heads, num_kv_heads=session.num_kv_heads,
                    head_dim=session.head_dim, dtype=session.dtype, block_size=session.block_size,
                    num_blocks=session.num_blocks, seq_lens=tuple(s.num_tokens for s in step.sequences),
                    block_tables=tuple(s.block_table for s in step.sequences),
                    seed=(session.seed * 7919 + index) % 2**63, max_num_seqs=session.max_num_seqs,
                    table_width=session.table_width, max_model_len=session.max_model_len)
        yield index, case, caches


def eager_twin(case: Case) -> Case:
    """The same decode step without graph padding (what eager decode is given)."""
    return replace(case, phase="decode_eager", max_num_seqs=0, table_width=0,
                   outlier_rows=tuple(r for r in case.outlier_rows if r < case.batch))


def run_session(session: GraphSession, judge, *, device: str = "cpu", eager: bool = False,
                stop_after: int | None = None) -> Iterator[tuple[int, object]]:
    """Run every step of `session` in order, each on the cache the previous steps left: `judge(case,
    tensors, step)` judges a step and returns its outcome, whose `layer` caches the next step starts
    from; yields (step index, outcome). `eager` runs the same steps unpadded, as eager decode is given
    them. Judging is the caller's (conformance.harness.verify.verify_session records each step)."""
    for index, case, caches in step_cases(session, device):
        values = case.materialise(device)  # q/k/v of the step; the cache is the session's
        rows = case.batch if eager else case.num_new_tokens
        run_case = eager_twin(case) if eager else case
        tensors = Tensors(run_case, values.q[:rows], values.k[:rows], values.v[:rows], caches.k_cache,
                          caches.v_cache)
        outcome = judge(run_case, tensors, index)
        caches.k_cache = outcome.layer.k_cache.to(device).clone()
        caches.v_cache = outcome.layer.v_cache.to(device).clone()
        yield index, outcome
        if stop_after is not None and index >= stop_after:
            return
