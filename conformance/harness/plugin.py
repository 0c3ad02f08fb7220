"""The pytest plugin: options (conformance.harness.options), markers, hypothesis profiles, the run's
settings, and the per-case records each test's report carries.

Per-run state lives in `config.stash` (conformance.harness.run); the harness's extension points are
pytest hooks (conformance.harness.hookspecs). Hypothesis profiles: dev (default), ci, fuzz, npu; pick
with --hypothesis-profile or HYPOTHESIS_PROFILE.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from pathlib import Path

from conformance.platform import devices

os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")  # before anything imports torch
devices.pin_this_xdist_worker()  # an xdist worker sees only its own NPU: before anything imports torch

import pytest  # noqa: E402
from hypothesis import settings as hyp_settings  # noqa: E402

from conformance.adapters.loading import SelectionError, identity, load_layer, load_runner  # noqa: E402
from conformance.emulator import cann  # noqa: E402
from conformance.harness import hookspecs, options, profiles, run  # noqa: E402
from conformance.harness.case_file_pair import remove_case_file  # noqa: E402
from conformance.harness.records import PROPERTY_KEY, compact_line, keep_named_failures  # noqa: E402
from conformance.judge.acknowledgements import LedgerError, default_ledger, load_ledger  # noqa: E402
from conformance.judge.policy import PolicyFileError, PolicySet, load_policy  # noqa: E402
from conformance.judge.settings import configure, settings  # noqa: E402
from conformance.names import PROFILES  # noqa: E402
from conformance.platform import npu_modules  # noqa: E402
from conformance.platform.backends import prepare_device, resolve_backend  # noqa: E402
from conformance.platform.probe import probe_npu  # noqa: E402

profiles.register()

#: The regression corpus's module: its tests run first (a known find is reported before anything new).
REGRESSION_MODULE = "test_regression.py"


def pytest_addhooks(pluginmanager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser):
    group = parser.getgroup("npu-conformance")
    options.add_pytest_options(group)
    group.addoption("--conformance-failures", metavar="DIR", default="conformance-failures",
                    help="directory where failing cases are saved as replayable JSON")


class Terminated(KeyboardInterrupt):
    """SIGTERM (what a CI runner sends on timeout), handled as Ctrl-C is: the run stops, and the report
    folder is written whole, marked incomplete."""


def _terminate(state: run.RunState, signum, frame):
    state.sigterm_received = True  # for stop_if_terminated, should this raise be swallowed
    raise Terminated("terminated by SIGTERM")


def stop_if_terminated(state: run.RunState) -> None:
    """Raise Terminated if SIGTERM arrived and the run is still going: the handler's own raise was
    swallowed (it landed in a gc callback). Checked before each test and each case."""
    if state.sigterm_received:
        raise Terminated("terminated by SIGTERM")


def _handle_sigterm(config) -> None:
    if threading.current_thread() is threading.main_thread():
        state = run.run_state(config)
        state.previous_sigterm = signal.signal(signal.SIGTERM, functools.partial(_terminate, state))


def pytest_runtest_setup(item):
    stop_if_terminated(run.run_state(item.config))


def pytest_conformance_case_starting(config, case, property_name, session):
    stop_if_terminated(run.run_state(config))


def pytest_configure(config):
    config.addinivalue_line("markers", "npu: needs a real Ascend NPU (skipped elsewhere, failed under --require-npu)")
    config.addinivalue_line("markers", "graph: exercises the compiled (torchair / aot_eager) decode path")
    config.addinivalue_line("markers", "suite: a conformance property (runs on the selected backend)")
    config.addinivalue_line("markers", "own_layer: about the project's own layer's code (skipped when --layer selects "
                                       "another, naming it)")
    state = run.enter(config)
    _handle_sigterm(config)
    if config.getoption("log_level", default=None) is None and not config.getini("log_level"):
        # torch's compile path logs DEBUG records (torch.__trace) that pytest >= 9.2 shows under every failing
        # case; runs log from WARNING up unless the user asks for more (--log-level / log_level). Set before
        # pytest's logging plugin configures itself (its pytest_configure runs last).
        config.option.log_level = "WARNING"
    profile = config.getoption("hypothesis_profile", default=None)
    if not profile:  # hypothesis' own plugin loads --hypothesis-profile; otherwise we choose
        profile = os.environ.get("HYPOTHESIS_PROFILE", "dev")
        if profile not in PROFILES:
            raise pytest.UsageError(f"HYPOTHESIS_PROFILE={profile!r}: choose one of {PROFILES}")
        hyp_settings.load_profile(profile)
    state.profile = profile
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
    layer, runner = _select_code_under_test(config, state, backend)
    configure(backend=backend, backend_reason=reason, strict_contracts=config.getoption("strict_contracts"),
              require_npu=config.getoption("require_npu"), policies=policies, acknowledgements=ledger,
              graph_mode=config.getoption("graph_mode"), shape_space=config.getoption("shape_space"),
              failures_dir=Path(config.getoption("conformance_failures")), layer=layer, runner=runner,
              cann_version=_cann_version(config.getoption("cann_version")))
    if npu_usable:
        prepare_device("npu")
    if backend == "npu" and not npu_usable:
        state.npu_missing = f"no usable NPU ({probe_npu().error or 'torch.npu.is_available() is False'})"
    if config.getoption("require_npu") and not npu_usable:
        # A hardware job must learn it has no hardware at once, not after every test has been skipped.
        why = state.npu_missing or f"backend {backend} ({reason})"
        raise pytest.UsageError(f"--require-npu: {why}")


def _select_code_under_test(config, state: run.RunState, backend: str):
    """The layer and runner under test (--layer, --layer-path, --layer-context, --runner). On the
    emulated backend, a selection from another code base gets the emulator as its torch_npu / torchair,
    installed before its module is imported and removed when the run ends."""
    get = config.getoption
    if get("layer_path") and not (get("layer") or get("runner")):
        raise pytest.UsageError(f"--layer-path {get('layer_path')}: needs --layer or --runner (it says where their "
                                "code lives)")
    was_installed = npu_modules.installed()
    try:
        layer = load_layer(get("layer"), get("layer_path"), get("layer_context"), backend=backend)
        runner = load_runner(get("runner"), None if get("layer") else get("layer_path"), backend=backend)
    except SelectionError as exc:
        raise pytest.UsageError(str(exc)) from exc
    finally:
        state.installed_npu_modules = npu_modules.installed() and not was_installed
    return layer, runner


def _cann_version(requested: str | None) -> str:
    if requested is None:
        return cann.DEFAULT_VERSION
    if requested not in cann.EMULATED_VERSIONS:
        raise pytest.UsageError(f"--cann-version {requested}: the emulator has rules for "
                                f"{', '.join(cann.EMULATED_VERSIONS)}")
    return requested


def pytest_unconfigure(config):
    state = run.run_state(config)
    if state.installed_npu_modules:
        npu_modules.uninstall()
    if state.previous_sigterm is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, state.previous_sigterm)
    run.leave(config)


def _hand_devices_to_workers(config) -> None:
    """On the process that starts pytest-xdist workers: tell them which cards to pin to (they inherit
    the environment, and pin at import; see conformance.platform.devices)."""
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
            f"hypothesis profile={run.run_state(config).profile}; tolerance policy={s.policies.default.source}; "
            f"acknowledgements={s.acknowledgements.source}; graph mode={s.graph_mode}; emulated CANN {s.cann_version}",
            f"npu-conformance: layer under test {identity(s.layer)['spec']}; runner {identity(s.runner)['spec']}"]


def pytest_collection_modifyitems(config, items):
    # The regression corpus first: a known find is reported before anything new is looked for.
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1] != REGRESSION_MODULE)
    missing = run.run_state(config).npu_missing
    layer = settings().layer
    for item in items:
        if item.get_closest_marker("own_layer") and not layer.own:
            item.add_marker(pytest.mark.skip(reason=f"about the project's own layer, and the layer under test is "
                                                    f"{identity(layer)['spec']} (--layer)"))
        if item.get_closest_marker("npu") and missing is None and settings().backend != "npu":
            item.add_marker(pytest.mark.skip(reason="needs a real NPU: run with --backend npu on an Ascend machine"))
        elif missing is not None and (item.get_closest_marker("npu") or item.get_closest_marker("suite")):
            item.add_marker(pytest.mark.skip(reason=f"--backend npu but {missing}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when == "call":
        state = run.run_state(item.config)
        kept = _keep_reported_case_files(report, state.drain_written())
        records = keep_named_failures(state.drain_records(), {str(p) for p in kept})
        for record in records:
            record["test_id"] = item.nodeid
            report.user_properties.append((PROPERTY_KEY, record))
            # junitxml writes the teardown report's properties, which pytest copies from the item:
            # a compact line per case there (the full record is in the call report and report.json).
            item.user_properties.append((PROPERTY_KEY, compact_line(record)))
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
            remove_case_file(path)
    return list(dict.fromkeys(kept))
