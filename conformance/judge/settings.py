"""The run's settings, shared by the pytest plugin, the CLI and the properties.

One place so that properties need no fixtures inside `@given` (hypothesis runs them many times).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from conformance.adapters.layer import LayerAdapter
from conformance.adapters.loading import OWN_LAYER
from conformance.adapters.runner import OWN_RUNNER, RunnerAdapter
from conformance.emulator import cann
from conformance.judge.acknowledgements import Ledger, default_ledger
from conformance.judge.policy import PolicySet

if TYPE_CHECKING:
    from conformance.judge.mutation import Mutation


@dataclass(frozen=True)
class RunSettings:
    backend: str = "emulated"  # resolved: "npu" or "emulated"
    backend_reason: str = "default for direct use"
    strict_contracts: bool = False  # no acknowledgement applies: every emulator hazard fails its case
    require_npu: bool = False
    policies: PolicySet = field(default_factory=PolicySet)
    acknowledgements: Ledger = field(default_factory=default_ledger)  # hazards accepted by the project
    failures_dir: Path = Path("conformance-failures")  # every failing case is saved here as JSON
    compile_graph: bool = True  # decode_graph: trace the layer with torch.compile (else call eagerly)
    graph_mode: str = "max-autotune"  # torchair mode decode graphs are compiled in (conformance.names.GRAPH_MODES)
    mutation: Mutation | None = None  # a planted bug (conformance.judge.mutation), for measuring the suite
    #: whose shapes the properties draw: "auto" = the backend's (the npu set on hardware, the emulator's
    #: wider one on CPU); "npu" = only what the real kernels accept, on either backend (a CPU preview
    #: of a hardware run)
    shape_space: str = "auto"
    #: the layer under test and the runner that builds its Contexts (conformance.adapters): the
    #: project's own unless --layer / --runner chose another code base's
    layer: LayerAdapter = OWN_LAYER
    runner: RunnerAdapter = OWN_RUNNER
    #: the CANN release whose rules the emulator applies where they differ (conformance.emulator.cann)
    cann_version: str = cann.DEFAULT_VERSION

    @property
    def device(self) -> str:
        return "npu" if self.backend == "npu" else "cpu"


_settings = RunSettings()


def settings() -> RunSettings:
    return _settings


def configure(**changes) -> RunSettings:
    global _settings
    _settings = replace(_settings, **changes)
    return _settings
