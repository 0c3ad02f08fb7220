"""The runner adapter for nanoport's ModelRunner (docs/testing-your-layer.md, "Your runner"): the harness's
engine step becomes nanoport Sequences, and the runner's own prepare_prefill / prepare_decode build the
Context, through nanoport's context module. No model is loaded, no device memory allocated.

    npu-conformance run --layer nanoport.layers.attention:Attention --runner nanoport_runner_adapter:build_context \\
        --layer-path tests/fixture_layers
"""

from nanoport.engine.model_runner import Config, ModelRunner
from nanoport.engine.sequence import Sequence


def runner_for(step) -> ModelRunner:
    """A ModelRunner with the engine's configuration, built without __init__ (which would load a model)."""
    c = step.config
    runner = ModelRunner.__new__(ModelRunner)
    runner.config = Config(max_num_seqs=c.max_num_seqs, max_model_len=c.max_model_len, kvcache_block_size=c.block_size,
                           enforce_eager=c.enforce_eager, num_kvcache_blocks=c.dummy_block + 1)
    runner.block_size, runner.enforce_eager = c.block_size, c.enforce_eager
    return runner


def sequences(step) -> list[Sequence]:
    seqs = []
    for s in step.sequences:
        seq = Sequence([0] * s.num_tokens)  # token ids do not matter to the Context
        seq.block_size = step.config.block_size
        seq.block_table = list(s.block_table)
        seqs.append(seq)
    return seqs


def build_context(step):
    runner = runner_for(step)
    seqs = sequences(step)
    if step.is_prefill:
        runner.prepare_prefill(seqs)
    else:
        runner.prepare_decode(seqs)
    return None  # set through nanoport.utils.context: the harness reads it back


class FlatSlotsRunner(ModelRunner):
    """A planted mistake for the harness's tests: upstream nano-vllm's flat decode slots
    (block * block_size + offset) where the NPU layer's scatter_update_ wants [block, offset] rows."""

    def prepare_decode(self, seqs):
        ids, positions = super().prepare_decode(seqs)
        from nanoport.utils.context import get_context

        ctx = get_context()
        ctx.slot_mapping = ctx.slot_mapping[:, 0] * self.block_size + ctx.slot_mapping[:, 1]
        return ids, positions


def build_context_flat_decode(step):
    runner = runner_for(step)
    runner.__class__ = FlatSlotsRunner
    seqs = sequences(step)
    runner.prepare_prefill(seqs) if step.is_prefill else runner.prepare_decode(seqs)
    return None
