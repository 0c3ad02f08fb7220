"""The pytest plugin (entry point `npu_conformance`): options, markers, profiles, per-case records.

    --backend auto|npu|emulated   which kernels run the layer (auto: npu if the subprocess probe
                                  finds a usable device, else the CPU op emulator)
    --require-npu                 a hardware job must not go green by skipping: skips become failures
    --strict-contracts            every emulator hazard fails its case: acknowledgements are ignored
    --acknowledgements FILE       the ledger of accepted hazards (default: the project's,
                                  conformance/acknowledged_hazards.toml); unacknowledged hazards fail
    --tolerance-policy FILE       TOML overrides of the tolerance policy for a hardware/CANN pair
    --conformance-failures DIR    where failing cases are saved as replayable JSON
    --conformance-report DIR      write report.json, report.html, summary.md, junit.xml (conformance.report)
    --devices 0-7                 the NPUs pytest-xdist workers are pinned to, one per worker (default:
                                  the cards this machine has; conformance.devices)
Hypothesis profiles: dev (default), ci, fuzz, npu; pick with --hypothesis-profile or HYPOTHESIS_PROFILE.
"""

from __future__ import annotations

import os
from pathlib import Path

from conformance import devices

os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")  # before anything imports torch
devices.pin_this_xdist_worker()  # an xdist worker sees only its own NPU: before anything imports torch

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings as hyp_settings  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

from conformance.acknowledgements import LedgerError, default_ledger, load_ledger  # noqa: E402
from conformance.backends import prepare_device, resolve_backend  # noqa: E402
from conformance.names import BACKENDS, GRAPH_MODES, PROFILES  # noqa: E402
from conformance.probe import probe_npu  # noqa: E402
from conformance.session import configure, settings  # noqa: E402
from conformance.tolerance import PolicyFileError, PolicySet, load_policy  # noqa: E402
from conformance.verify import drain_records, drain_written  # noqa: E402

PROPERTY_KEY = "conformance_case"

# --- report artifacts: --conformance-report DIR (hooks live in conformance/report/pytest_hooks.py) ---
pytest_plugins = ["conformance.report.pytest_hooks"]
# --- end report artifacts ---

_slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
            HealthCheck.filter_too_much]
# Our profiles derive from hypothesis' "default", never from whatever is loaded: with CI set in the
# environment hypothesis loads its own derandomized "ci" profile at import, and profiles derived from
# it would silently ignore --seed on every CI machine.
_BASE = hyp_settings.get_profile("default")
hyp_settings.register_profile("dev", parent=_BASE, max_examples=8, deadline=None, suppress_health_check=_slow_ok,
                              print_blob=True, stateful_step_count=8)
# Redefines hypothesis' built-in "ci" (derandomized, no database): more examples, failures kept.
hyp_settings.register_profile("ci", parent=_BASE, max_examples=60, deadline=None, suppress_health_check=_slow_ok,
                              print_blob=True, derandomize=False, stateful_step_count=20,
                              database=DirectoryBasedExampleDatabase(".hypothesis/examples"))
hyp_settings.register_profile("fuzz", parent=_BASE, max_examples=5000, deadline=None, suppress_health_check=_slow_ok,
                              print_blob=True, database=DirectoryBasedExampleDatabase(".hypothesis/examples"))
hyp_settings.register_profile("npu", parent=_BASE, max_examples=40, deadline=None, suppress_health_check=_slow_ok,
                              print_blob=True, stateful_step_count=20,
                              database=DirectoryBasedExampleDatabase(".hypothesis/examples"))


def pytest_addoption(parser):
    group = parser.getgroup("npu-conformance")
    group.addoption("--backend", choices=BACKENDS, default="auto",
                    help="kernels that run the layer: npu, emulated (CPU op emulator) or auto (default)")
    group.addoption("--require-npu", action="store_true",
                    help="fail instead of skipping when no NPU is usable (for hardware CI)")
    group.addoption("--strict-contracts", action="store_true",
                    help="every emulator hazard fails its case, acknowledged or not")
    group.addoption("--acknowledgements", metavar="FILE", default=None,
                    help="TOML ledger of accepted emulator hazards (default: the project's "
                         "conformance/acknowledged_hazards.toml); any other hazard fails its case")
    group.addoption("--graph-mode", choices=GRAPH_MODES, default="max-autotune",
                    help="torchair mode the decode graph is compiled in (default max-autotune, the only mode that "
                         "lowers torchair's attention op; reduce-overhead is aclgraph capture)")
    group.addoption("--tolerance-policy", metavar="FILE", default=None,
                    help="TOML file overriding the tolerance policy (k, mean_k, ulps, floor) and what gates "
                         "([gating]: the dual reference, the Ascend standard or both; determinism)")
    group.addoption("--shape-space", choices=("auto", "npu"), default="auto",
                    help="shapes to draw: auto = the backend's (the emulator also draws its extensions, e.g. "
                         "float32), npu = only what the real kernels accept, on either backend")
    group.addoption("--conformance-failures", metavar="DIR", default="conformance-failures",
                    help="directory where failing cases are saved as replayable JSON")
    group.addoption("--devices", metavar="IDS", default=None,
                    help="NPUs to pin pytest-xdist workers to, one card per worker, e.g. 0-7 or 0,2 "
                         "(default: the cards this machine has)")


def pytest_configure(config):
    config.addinivalue_line("markers", "npu: needs a real Ascend NPU (skipped elsewhere, failed under --require-npu)")
    config.addinivalue_line("markers", "graph: exercises the compiled (torchair / aot_eager) decode path")
    config.addinivalue_line("markers", "suite: a conformance property (runs on the selected backend)")
    profile = config.getoption("hypothesis_profile", default=None)
    if not profile:  # hypothesis' own plugin loads --hypothesis-profile; otherwise we choose
        profile = os.environ.get("HYPOTHESIS_PROFILE", "dev")
        if profile not in PROFILES:
            raise pytest.UsageError(f"HYPOTHESIS_PROFILE={profile!r}: choose one of {PROFILES}")
        hyp_settings.load_profile(profile)
    config._conformance_profile = profile
    _hand_devices_to_workers(config)

    requested = config.getoption("backend")
    backend, reason = resolve_backend(requested)
    policies = PolicySet()
    if config.getoption("tolerance_policy"):
        try:
            policies = load_policy(config.getoption("tolerance_policy"))
        except PolicyFileError as exc:
            raise pytest.UsageError(str(exc)) from exc
    ledger = default_ledger()
    if config.getoption("acknowledgements"):
        try:
            ledger = load_ledger(config.getoption("acknowledgements"))
        except LedgerError as exc:
            raise pytest.UsageError(str(exc)) from exc
    npu_usable = backend == "npu" and probe_npu().usable
    configure(backend=backend, backend_reason=reason, strict_contracts=config.getoption("strict_contracts"),
              require_npu=config.getoption("require_npu"), policies=policies, acknowledgements=ledger,
              graph_mode=config.getoption("graph_mode"), shape_space=config.getoption("shape_space"),
              failures_dir=Path(config.getoption("conformance_failures")))
    config._conformance_npu_missing = None
    if npu_usable:
        prepare_device("npu")
    if backend == "npu" and not npu_usable:
        config._conformance_npu_missing = f"no usable NPU ({probe_npu().error or 'torch.npu.is_available() is False'})"
    if config.getoption("require_npu") and not npu_usable:
        # A hardware job must learn it has no hardware at once, not after every test has been skipped.
        why = config._conformance_npu_missing or f"backend {backend} ({reason})"
        raise pytest.UsageError(f"--require-npu: {why}")


def _hand_devices_to_workers(config) -> None:
    """On the process that starts pytest-xdist workers: tell them which cards to pin to (they inherit
    the environment, and pin at import; see conformance.devices)."""
    if hasattr(config, "workerinput"):
        return
    spec = config.getoption("devices")
    try:
        cards = devices.parse_devices(spec) if spec else devices.detect_devices()
    except devices.DeviceSpecError as exc:
        raise pytest.UsageError(str(exc)) from exc
    if cards:
        os.environ[devices.WORKER_DEVICES] = ",".join(cards)


def pytest_report_header(config):
    s = settings()
    return [f"npu-conformance: backend={s.backend} ({s.backend_reason}); strict_contracts={s.strict_contracts}; "
            f"hypothesis profile={config._conformance_profile}; tolerance policy={s.policies.default.source}; "
            f"acknowledgements={s.acknowledgements.source}; graph mode={s.graph_mode}"]


REGRESSION_MODULE = "test_regression.py"


def pytest_collection_modifyitems(config, items):
    # The regression corpus first: a known find is reported before anything new is looked for.
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1] != REGRESSION_MODULE)
    missing = config._conformance_npu_missing
    for item in items:
        if item.get_closest_marker("npu") and missing is None and settings().backend != "npu":
            item.add_marker(pytest.mark.skip(reason="needs a real NPU: run with --backend npu on an Ascend machine"))
        elif missing is not None and (item.get_closest_marker("npu") or item.get_closest_marker("suite")):
            item.add_marker(pytest.mark.skip(reason=f"--backend npu but {missing}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when == "call":
        kept = _keep_reported_case_files(report, drain_written())
        records = _dedupe(drain_records(), {str(p) for p in kept})
        for record in records:
            record["test_id"] = item.nodeid
            report.user_properties.append((PROPERTY_KEY, record))
            # junitxml writes the teardown report's properties, which pytest copies from the item:
            # a compact line per case there (the full record is in the call report and report.json).
            item.user_properties.append((PROPERTY_KEY, _compact(record)))
        if kept:
            report.sections.append(("npu-conformance replay", "\n".join(
                f"case saved to {path} (with the settings that judged it)\nreplay: npu-conformance replay {path}"
                for path in kept)))
    if report.skipped and settings().require_npu and call.when in ("setup", "call"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"--require-npu: this test would have been skipped: {reason}"


def _keep_reported_case_files(report, written: list[Path]) -> list[Path]:
    """Every failing example saved its case file; keep the ones the failure report names (hypothesis
    shrinks through many failing examples and reports the minimal ones), and the last one written when
    the report names none; delete the rest, with their cache state."""
    if not written:
        return []
    text = report.longreprtext if report.failed else ""
    kept = [p for p in written if str(p) in text] or ([written[-1]] if report.failed else [])
    for path in written:
        if path not in kept:
            path.unlink(missing_ok=True)
            path.with_suffix(".safetensors").unlink(missing_ok=True)
    return list(dict.fromkeys(kept))


def _compact(record: dict) -> str:
    ratio = record.get("ratio")
    return (f"{record['case_id']} {record['phase']} {record['dtype']} {record['verdict']} "
            f"ratio={'-' if ratio is None else format(ratio, '.4g')}")


def _dedupe(records: list[dict], reported: set[str] = frozenset()) -> list[dict]:
    """Keep each passing case once, and of the failures the ones the test's failure report names
    (the explicit or shrunk examples hypothesis reports; one record each), or else the last one
    (earlier failures are steps of the shrink)."""
    passing, seen = [], set()
    for r in records:
        if r["verdict"] == "pass" and r["case_id"] not in seen:
            seen.add(r["case_id"])
            passing.append(r)
    failing = [r for r in records if r["verdict"] != "pass"]
    named = list({r["case_file"]: r for r in failing if r.get("case_file") in reported}.values())
    return passing + (named or failing[-1:])


def records_of(report) -> list[dict]:
    """The per-case records a test report carries."""
    return [value for key, value in report.user_properties if key == PROPERTY_KEY]
