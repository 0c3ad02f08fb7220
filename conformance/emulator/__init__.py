"""CPU op emulator: pure-PyTorch models of the Ascend NPU ops the attention layer calls.

Each op has the real signature and checks the kernel's contract before computing (RULES.md: every
rule with its public source, repo, path, line and the commit it was read at). The modelled ops, each
with a one-line summary, are `catalogue.MODELLED_OPS`: FIA v1/v2 with their `.out` variants and
workspace queries, npu_prompt_flash_attention, npu_incre_flash_attention, torchair's FIA,
_npu_reshape_and_cache(_siso), npu_scatter_pa_kv_cache and scatter_update(_).
Use them through the namespaces `conformance.emulator.torch_npu` and `conformance.emulator.torchair`,
which mirror the real modules; `torch_ops.install()` also defines them under `torch.ops.npu` (and
`atb`, `air`), on request only. Findings (see `findings`): a call the kernel refuses raises
`ContractViolation`; an accepted but undefined one records a `Hazard` (the harness fails the case
unless its ledger acknowledges it), an accepted, well-defined one a `Note`; read them with
`record_hazards()` (`.notes` for notes) or `last_hazards()`; `strict_contracts()` raises hazards as
`HazardError`; an unmodelled feature raises `EmulatorUnsupported`. Where the kernel code shows how
it computes (the compressed 2048 mask, `fia_mask`), the emulator computes the same way, and NaN where
it cannot know. Rules that differ between CANN releases follow `cann.current()` (`cann.set_version`,
`cann.emulated_version`, `cann.EMULATED_VERSIONS`).

Nothing here imports `reference` or `npu_attention`: the emulator is written independently of both.
"""

from conformance.emulator import cann, torch_npu, torchair
from conformance.emulator.findings import (
    ContractViolation,
    EmulatorUnsupported,
    Hazard,
    HazardError,
    HazardLog,
    Note,
    is_strict,
    last_hazards,
    record_hazards,
    set_strict,
    strict_contracts,
)
from conformance.emulator.torchair import compiled_graph

__all__ = [
    "cann",
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
