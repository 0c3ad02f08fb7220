"""The runner adapter: the engine's own code that turns a step of the engine into the Context a layer reads.

A runner adapter is a function `build_context(step: EngineStep) -> Context | None`
(conformance.cases.engine documents the step). It returns the Context it built (an npu_attention.Context
or the engine's own Context class: any object with the contract's field names), or returns None after
setting it through the layer's context module, which the harness then reads back. The harness's own
builders (conformance.cases.contexts.build_context) are the default adapter, so the built-in path and a
user's go through the same code. docs/testing-your-layer.md shows an adapter around a nano-vllm-style
`ModelRunner` (prepare_prefill / prepare_decode and the graph padding) that loads no model and
allocates no device memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conformance.adapters.layer import ContextRoute
from conformance.cases.contexts import build_context as own_build_context
from conformance.cases.engine import EngineStep


class RunnerDefect(ValueError):
    """The runner under test broke the contract (its Context fails the validator, or it raised): the
    message names the field, the rule and the engine step that provoked it."""


@dataclass(frozen=True)
class RunnerAdapter:
    build_context: Callable[[EngineStep], Any]
    name: str = ""
    own: bool = False
    identity: dict = field(default_factory=dict, compare=False)

    def context_for(self, step: EngineStep, route: ContextRoute, device: str) -> Any:
        """The Context this runner builds for `step` (read back through the layer's route when the
        runner installs it itself and returns None)."""
        if self.own:
            return own_build_context(step, device=device)
        try:
            built = self.build_context(step)
        except Exception as exc:  # the runner under test failed on this step: named with the step, not hidden
            raise RunnerDefect(f"runner {self.name} raised {type(exc).__name__}: {exc} [{describe_step(step)}]") \
                from exc
        return route.read() if built is None else built


def describe_step(step: EngineStep) -> str:
    """The engine step in one line, for a runner defect's message."""
    c = step.config
    seqs = ", ".join(f"seq {s.seq_id}: {s.num_tokens} tokens in blocks {list(s.block_table)}" for s in step.sequences)
    mode = "prefill" if step.is_prefill else ("eager decode" if c.enforce_eager else "graph decode")
    return (f"{mode} step (block_size {c.block_size}, num_blocks {c.num_blocks}, max_num_seqs {c.max_num_seqs}, "
            f"max_model_len {c.max_model_len}, dummy block {c.dummy_block}; {seqs})")


OWN_RUNNER = RunnerAdapter(build_context=own_build_context, name="own", own=True)
