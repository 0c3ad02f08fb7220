"""CPU op emulator: pure-PyTorch models of the Ascend NPU ops the attention layer calls.

Each op has the real signature and checks the kernel's contract before computing (RULES.md: every
rule with its public source, repo, path and line):
  torch_npu.npu_fused_infer_attention_score(_v2), torch_npu._npu_reshape_and_cache,
  torch_npu.scatter_update_ / scatter_update, torchair.ops.npu_fused_infer_attention_score.
Use them through the namespaces `conformance.emulator.torch_npu` and `conformance.emulator.torchair`,
which mirror the real modules. Findings (see `findings`): a call the kernel refuses raises
`ContractViolation`; an accepted but undefined one records a `Hazard` (the harness fails the case
unless its ledger acknowledges it), an accepted, well-defined one a `Note`; read them with
`record_hazards()` (`.notes` for notes) or `last_hazards()`; `strict_contracts()` raises hazards as
`HazardError`; an unmodelled feature raises `EmulatorUnsupported`. Where the kernel code shows how
it computes (the compressed 2048 mask, `fia_mask`), the emulator computes the same way, and NaN where
it cannot know.

Nothing here imports `reference` or `npu_attention`: the emulator is written independently of both.
"""

from conformance.emulator import torch_npu, torchair
from conformance.emulator.torchair import compiled_graph
from conformance.emulator.findings import (
    Note,
    ContractViolation,
    EmulatorUnsupported,
    Hazard,
    HazardError,
    HazardLog,
    is_strict,
    last_hazards,
    record_hazards,
    set_strict,
    strict_contracts,
)

__all__ = [
    "Note",
    "ContractViolation",
    "EmulatorUnsupported",
    "Hazard",
    "compiled_graph",
    "HazardError",
    "HazardLog",
    "is_strict",
    "last_hazards",
    "record_hazards",
    "set_strict",
    "strict_contracts",
    "torch_npu",
    "torchair",
]
