"""CPU op emulator: pure-PyTorch models of the Ascend NPU ops the attention layer calls.

Each op has the real signature and checks the public contract before computing:
  torch_npu.npu_fused_infer_attention_score(_v2), torch_npu._npu_reshape_and_cache,
  torch_npu.scatter_update_ / scatter_update, torchair.ops.npu_fused_infer_attention_score.
Use them through the namespaces `conformance.emulator.torch_npu` and `conformance.emulator.torchair`,
which mirror the real modules. Findings (see `findings`): a forbidden call raises
`ContractViolation`; an accepted-but-undefined call records a `Hazard` (read it with
`record_hazards()` or `last_hazards()`; `strict_contracts()` turns hazards into `HazardError`);
an unmodelled feature raises `EmulatorUnsupported`. The torchair op records a hazard when called
outside a compiled graph (`torch.compiler.is_compiling()` or an open `compiled_graph()` block).

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
