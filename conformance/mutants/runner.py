"""Run the conformance suite against one planted bug, in process, and say whether and how it died.

For each mutant: `configure(mutation=...)`, then `pytest.main(["-x", "--pyargs", <suite modules>])`
under a derived hypothesis profile with the example database disabled (so one mutant's failures do
not seed the next) and derandomized (every mutant sees the same generated cases until it dies), then
the previous settings are restored. A collector plugin reads, in order:
  * every per-case record the properties make, as it is made (the `pytest_conformance_case_judged`
    hook), before the plugin dedupes them onto the report, so "cases to kill" counts every judged case
    up to the first failure;
  * the first example that raises, by wrapping the property's `.hypothesis.inner_test` (the hook
    hypothesis offers plugins), to place the first failure among those records when the property
    that fails makes no failing record (metamorphic relations);
  * the test reports: which property failed first (the test id) and with what message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import Phase
from hypothesis import settings as hyp_settings

import conformance.suite as suite
from conformance.harness import profiles
from conformance.judge.settings import configure, settings
from conformance.mutants import kills
from conformance.mutants.catalogue import Mutant
from conformance.names import PROFILES

SUITE_PACKAGE = "conformance.suite"
#: Cheap properties first: a mutant usually dies in the first file that exercises its phase.
#: Suite files not named here run after these and before the stateful engine.
SUITE_ORDER = ("test_prefill", "test_decode", "test_graph", "test_contract", "test_metamorphic")
SUITE_LAST = ("test_engine",)
EXCLUDED = ("test_regression",)
#: The directory holding the `conformance` package: test ids read conformance/suite/test_*.py::name.
ROOT = Path(__file__).resolve().parents[2]


def suite_modules(only: tuple[str, ...] | None = None) -> list[str]:
    """Dotted names of the suite's test modules in run order (`only`: a subset of short names)."""
    # The regression corpus replays earlier finds: it is not part of what the kill matrix measures
    # (a planted decode bug would be "killed" by an old float32 case before the properties ran).
    present = sorted(p.stem for p in Path(suite.__file__).parent.glob("test_*.py") if p.stem not in EXCLUDED)
    order = [m for m in SUITE_ORDER if m in present]
    order += [m for m in present if m not in SUITE_ORDER and m not in SUITE_LAST]
    order += [m for m in SUITE_LAST if m in present]
    if only is not None:
        unknown = sorted(set(only) - set(present))
        if unknown:
            raise ValueError(f"no suite module(s) {unknown}; the suite has {present}")
        order = [m for m in order if m in only]
    return [f"{SUITE_PACKAGE}.{m}" for m in order]


def mutant_profile(profile: str, seed: int | None = None, explicit: bool = True) -> str:
    """Register (again) and name the hypothesis profile mutant runs use: `profile` with no example
    database, no explain phase (it only re-runs the failure to annotate the message) and, unless a
    seed is given, derandomized. `explicit=False` also drops the suite's @example cases, to measure
    what the generated cases alone catch."""
    profiles.register()  # dev / ci / fuzz / npu, when no pytest run has registered them yet
    if profile not in PROFILES:
        raise ValueError(f"unknown hypothesis profile {profile!r}: choose one of {PROFILES}")
    parent = hyp_settings.get_profile(profile)
    phases = tuple(p for p in parent.phases if p is not Phase.explain and (explicit or p is not Phase.explicit))
    name = f"mutants-{profile}" + ("" if seed is None else "-seeded") + ("" if explicit else "-generated")
    hyp_settings.register_profile(name, parent=parent, database=None, derandomize=seed is None,
                                  print_blob=False, phases=phases)
    return name


@dataclass
class Counterexample:
    test_id: str
    phase: str
    dtype: str
    batch: int
    total_tokens: int
    seq_lens: list[int]
    shape: str
    case_id: str
    case_file: str | None = None


@dataclass
class MutantResult:
    name: str
    status: str  # "killed" | "survived" | "error" (the run broke, or the planted code itself crashed: not a kill)
    killed_by: str | None = None  # test id of the first failing property
    #: how the suite's verdict caught it (conformance.mutants.kills: its KILL_CLASSES, joined by " + ");
    #: for an error, what broke
    how: str | None = None
    cases_to_kill: int | None = None  # judged cases (records) of the run up to and including the first failure
    cases_in_property: int | None = None  # the same, counted within the killing property only
    cases_run: int = 0  # every record the run made (shrinking included)
    counterexample: Counterexample | None = None  # the last failing case of the killing property (shrunk)
    message: str = ""  # first lines of the failure
    seconds: float = 0.0
    exit_code: int = 0
    log: str = field(default="", repr=False)

    @property
    def killed(self) -> bool:
        return self.status == "killed"

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("log")
        return data


class _Collector:
    """pytest plugin that watches one in-process run."""

    def __init__(self):
        self.records: list[tuple[str, dict]] = []  # (test id, record), in the order they were made
        self.first_failed_case_at: int | None = None  # len(records) when the first failing example ended
        self.first_failed_case_test: str | None = None
        self.first_exception: BaseException | None = None  # what the first failing example raised
        self.failed_reports: list[pytest.TestReport] = []
        self.test_start: dict[str, int] = {}
        self._current: str | None = None
        self._base = 0

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        self._current, self._base = item.nodeid, len(self.records)
        self.test_start[item.nodeid] = self._base
        handle = getattr(getattr(item, "obj", None), "hypothesis", None)
        inner = getattr(handle, "inner_test", None)
        if inner is not None:
            handle.inner_test = self._watch(inner, item.nodeid)
        try:
            yield
        finally:
            if inner is not None:
                handle.inner_test = inner
            self._current = None

    def pytest_conformance_case_judged(self, config, record, seconds):
        if self._current is not None:
            self.records.append((self._current, record))

    def _watch(self, inner, test_id: str):
        from hypothesis.errors import HypothesisException

        def example(*args, **kwargs):
            try:
                return inner(*args, **kwargs)
            except Exception as exc:
                if self.first_failed_case_at is None and not isinstance(exc, HypothesisException):
                    self.first_failed_case_at = len(self.records)
                    self.first_failed_case_test = test_id
                    self.first_exception = exc
                raise
        return example

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed_reports.append(report)


def _fresh_suite_modules() -> None:
    """Hypothesis binds a test's settings when the module is imported: drop already-imported suite
    modules (e.g. collected by an outer pytest session) so they are imported under our profile."""
    for name in [n for n in sys.modules if n.startswith(f"{SUITE_PACKAGE}.test_")]:
        del sys.modules[name]


@contextlib.contextmanager
def _restored_state():
    """Put back the session settings, the hypothesis profile and hypothesis' forced seed afterwards."""
    from hypothesis import core
    from hypothesis import settings as hyp_settings

    saved = settings()
    profile = hyp_settings.get_current_profile_name() if hasattr(hyp_settings, "get_current_profile_name") else None
    forced_seed = getattr(core, "global_force_seed", None)
    try:
        yield
    finally:
        configure(**{f.name: getattr(saved, f.name) for f in dataclasses.fields(saved)})
        if profile is not None:
            hyp_settings.load_profile(profile)
        if hasattr(core, "global_force_seed"):
            core.global_force_seed = forced_seed


def run_suite(mutant: Mutant | None, *, profile: str = "dev", seed: int | None = None,
              modules: list[str] | None = None, failures_dir: Path | None = None, explicit: bool = True,
              extra_args: tuple[str, ...] = ()) -> MutantResult:
    """Run the suite (stop at the first failure) with `mutant` planted (None: the unmutated layer).
    `explicit=False` runs only generated cases (the suite's @example cases are skipped)."""
    name = mutant.name if mutant else "(none)"
    modules = modules or suite_modules()
    hyp_profile = mutant_profile(profile, seed, explicit)
    failures_dir = failures_dir or Path("conformance-report") / "mutant-cases" / name.strip("()")
    # One-token options (a path given as a separate token would move pytest's rootdir), a fixed
    # rootdir (stable test ids) and no ini addopts (e.g. -n from a user's config).
    args = ["-x", "-q", "-p", "no:cacheprovider", f"--rootdir={ROOT}", "-o", "addopts=", "--backend=emulated",
            f"--hypothesis-profile={hyp_profile}", f"--conformance-failures={failures_dir}",
            *([f"--hypothesis-seed={seed}"] if seed is not None else []), *extra_args, "--pyargs", *modules]
    collector = _Collector()
    out = io.StringIO()
    started = time.perf_counter()
    with _restored_state():
        configure(mutation=mutant.mutation() if mutant else None)
        _fresh_suite_modules()
        with contextlib.redirect_stdout(out):
            code = int(pytest.main(args, plugins=[collector]))
    seconds = time.perf_counter() - started
    return _result(name, code, collector, seconds, out.getvalue(), failures_dir)


def _result(name: str, code: int, collector: _Collector, seconds: float, log: str, failures_dir: Path) -> MutantResult:
    result = MutantResult(name, "survived", cases_run=len(collector.records), seconds=seconds, exit_code=code, log=log)
    failed = [r for r in collector.failed_reports if r.when == "call"]
    if code == 0:
        return result
    if code != 1 or not failed:
        # Collection errors, usage errors, interrupted runs, fixture errors: the run is broken, not a kill.
        result.status = "error"
        result.message = _tail(log, 15)
        return result
    _judge_kill(result, failed[0], collector, failures_dir)
    return result


def _judge_kill(result: MutantResult, report, collector: _Collector, failures_dir: Path) -> None:
    """Fill `result` from the report of the first failing property: a kill, or an error when the suite's
    verdict caught nothing (the planted code, or the harness, crashed)."""
    test_id = report.nodeid
    result.status, result.killed_by = "killed", test_id
    result.message = _first_lines(report.longreprtext, 6)
    start = collector.test_start.get(test_id, 0)
    result.cases_to_kill = _cases_to_kill(collector, test_id, start)
    result.cases_in_property = result.cases_to_kill - start
    in_test = [r for t, r in collector.records if t == test_id]
    bad = [r for r in in_test if r["verdict"] != "pass"]
    exc = collector.first_exception if collector.first_failed_case_test == test_id else None
    detected, result.how = kills.how(bad[0] if bad else None, report, exc)
    if not detected:
        result.status = "error"
    last = _reported_case(bad, in_test)
    if last is not None:
        result.counterexample = _counterexample(test_id, last, failures_dir)


def _cases_to_kill(collector: _Collector, test_id: str, start: int) -> int:
    """Records of the run up to and including the first failing case of `test_id` (which starts at record
    `start`): its first failing record, or the first example that raised, whichever came first."""
    first_bad = next((i for i, (t, r) in enumerate(collector.records) if t == test_id and r["verdict"] != "pass"), None)
    marks = [i + 1 for i in (first_bad,) if i is not None]
    if collector.first_failed_case_test == test_id and collector.first_failed_case_at is not None:
        marks.append(max(collector.first_failed_case_at, start + 1))
    return min(marks) if marks else len(collector.records)


def _reported_case(bad: list[dict], in_test: list[dict]) -> dict | None:
    """The reported failure: the last failing case whose file the plugin kept (it keeps the ones hypothesis
    reports, the explicit or shrunk examples), else the last failing one, else the property's last case."""
    kept = [r for r in bad if r.get("case_file") and Path(r["case_file"]).is_file()]
    return (kept or bad)[-1] if bad else (in_test[-1] if in_test else None)


def _counterexample(test_id: str, record: dict, failures_dir: Path) -> Counterexample:
    case = record["case"]
    lens = list(case["seq_lens"])
    path = Path(record.get("case_file") or failures_dir / f"{case['phase']}-{record['case_id']}.json")
    return Counterexample(
        test_id=test_id, phase=case["phase"], dtype=case["dtype"], batch=len(lens), total_tokens=sum(lens),
        seq_lens=lens, shape=f"Hq={case['num_heads']} Hkv={case['num_kv_heads']} D={case['head_dim']} "
                             f"bs={case['block_size']}",
        case_id=record["case_id"], case_file=str(path) if path.exists() else None)


def _first_lines(text: str, n: int) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip().startswith("E ")] or text.splitlines()
    return "\n".join(ln.rstrip() for ln in lines[:n])


def _tail(text: str, n: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])
