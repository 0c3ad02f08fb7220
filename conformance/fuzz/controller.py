"""A fuzz session: start the workers (one process per NPU, pinned before torch loads), watch them,
restart one that crashes, and merge their reports into one report folder as the session goes.

Each worker is `python -m pytest --pyargs conformance.suite -p conformance.fuzz.worker ...` with its
own report folder under OUT/workers/; all of them save failing cases into OUT/failures/. A worker
that dies (a kernel can kill its process) is recorded as a failure of the case it was judging (its
running.json becomes a case file) and started again for the time left; the reports it wrote are kept.
No torch here: the controller only reads JSON, so it stays responsive whatever the workers do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from conformance.fuzz.worker import JUDGED_WITH_NAME, RUNNING_NAME, STATUS_NAME
from conformance.harness.case_file_pair import case_file_data, case_file_paths, remove_case_file, write_data
from conformance.platform.devices import pin_environment
from conformance.report.merge import merge_reports
from conformance.report.schema import validate_report

ROOT = Path(__file__).resolve().parents[2]
#: A worker restarted with less time than this left would spend it all starting up.
MIN_RESTART_S = 15.0
#: How long after the deadline (plus grace) a worker may take to write its report before it is killed.
SHUTDOWN_S = 60.0


@dataclass
class FuzzOptions:
    budget_s: float
    out: Path
    workers: int = 1
    devices: list[str] = field(default_factory=list)
    max_cases: int | None = None
    database: str | None = None
    seed: int | None = None
    plant: str | None = None
    grace_s: float | None = None
    #: the run options every worker's pytest gets (conformance.harness.options.pytest_arguments), then
    #: the user's extra pytest arguments
    pytest_args: list[str] = field(default_factory=list)

    @property
    def grace(self) -> float:
        return self.grace_s if self.grace_s is not None else min(30.0, max(5.0, 0.1 * self.budget_s))


@dataclass
class Worker:
    index: int
    device: str | None
    folder: Path
    process: subprocess.Popen
    log: object
    restarts: int = 0
    ended: str | None = None  # why it ended: "finished", "crashed: ...", "usage error", ...


class FuzzSession:
    def __init__(self, options: FuzzOptions):
        self.o = options
        self.out = Path(options.out).resolve()
        self.started = time.time()
        self.deadline = self.started + options.budget_s
        self.workers: list[Worker] = []
        self.retired: list[Path] = []  # report folders of workers that crashed (their finds are kept)
        self.crashes: list[dict] = []  # records of the cases that killed a worker
        self.crash_failures: list[dict] = []
        self.interrupted = False
        self.usage_error: str | None = None
        self.no_tests = False  # a worker collected nothing (-k matched no property)
        self.internal_error: str | None = None

    # --- workers ---------------------------------------------------------------------------------
    def worker_argv(self, index: int, folder: Path) -> list[str]:
        o = self.o
        argv = [sys.executable, "-m", "pytest", "--pyargs", "conformance.suite", "-q", "-p", "no:cacheprovider",
                "-o", "console_output_style=classic", f"--rootdir={ROOT}", "-p", "conformance.fuzz.worker",
                # no gc sweeps for unraisable exceptions at the end: seconds per worker, nothing to find
                "-p", "no:unraisableexception",
                f"--conformance-report={folder}", f"--conformance-failures={self.out / 'failures'}",
                f"--junitxml={folder / 'junit.xml'}", f"--fuzz-until={self.deadline}", f"--fuzz-started={self.started}",
                f"--fuzz-grace={o.grace}", f"--fuzz-worker={index}"]
        if o.max_cases is not None:
            share = -(-o.max_cases // o.workers)
            argv.append(f"--fuzz-max-cases={share}")
        for flag, value in (("--fuzz-database", o.database), ("--fuzz-seed", o.seed), ("--fuzz-plant", o.plant)):
            if value is not None:
                argv.append(f"{flag}={value}")
        return argv + list(o.pytest_args)

    def start_worker(self, index: int, restarts: int = 0) -> Worker:
        folder = self.out / "workers" / (f"w{index}" + (f"-restart{restarts}" if restarts else ""))
        folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")
        device = pin_environment(env, index, self.o.devices)
        if device is None and self.o.workers > 1:  # CPU workers share the cores instead of oversubscribing them
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.o.workers)))
        log = open(folder / "worker.log", "w", encoding="utf-8")
        process = subprocess.Popen(self.worker_argv(index, folder), env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        worker = Worker(index, device, folder, process, log, restarts)
        return worker

    def start(self) -> None:
        (self.out / "failures").mkdir(parents=True, exist_ok=True)
        self.workers = [self.start_worker(i) for i in range(self.o.workers)]

    def poll(self) -> None:
        """Notice workers that ended; a crash is recorded and the worker restarted if time is left."""
        for k, worker in enumerate(self.workers):
            if worker.ended is not None or worker.process.poll() is None:
                continue
            code = worker.process.returncode
            worker.log.close()
            status = _read_json(worker.folder / STATUS_NAME) or {}
            if code == 4:  # pytest's usage error: a bad option reached the worker
                worker.ended = "usage error"
                self.usage_error = _log_tail(worker.folder)
            elif code == 5:  # pytest collected nothing
                worker.ended = "no tests"
                self.usage_error = _log_tail(worker.folder)
                self.no_tests = True
            elif code == 3:
                worker.ended = "internal error"
                self.internal_error = _log_tail(worker.folder)
            elif status.get("done") and code in (0, 1, 2):
                worker.ended = "finished"
            elif self.interrupted and code in (1, 2):
                worker.ended = "interrupted"
            else:
                worker.ended = f"crashed ({_describe_exit(code)})"
                self._record_crash(worker, code)
                self.retired.append(worker.folder)
                if self.deadline - time.time() > MIN_RESTART_S and not self.interrupted:
                    self.workers[k] = self.start_worker(worker.index, worker.restarts + 1)

    def _record_crash(self, worker: Worker, code: int) -> None:
        """The case the worker was judging becomes a failing case file and a failure of its own."""
        running = _read_json(worker.folder / RUNNING_NAME)
        judged_with = _read_json(worker.folder / JUDGED_WITH_NAME)
        why = f"worker {worker.index} died ({_describe_exit(code)}) while judging this case"
        case_file = None
        record = None
        test_id = (running or {}).get("test_id") or "(unknown test)"
        if running and judged_with and isinstance(running.get("case"), dict):
            case = running["case"]
            data = case_file_data(case, judged_with, {"verdict": "crash", "error": why}, None, running.get("session"))
            path = self.out / "failures" / f"crash-{case.get('phase', 'case')}-w{worker.index}-{int(time.time())}.json"
            case_file = str(write_data(path, data))
            record = {"test_id": test_id, "case_id": f"crash-w{worker.index}-{len(self.crashes)}",
                      "phase": case.get("phase"), "dtype": case.get("dtype"), "backend": judged_with.get("backend"),
                      "verdict": "error", "error": f"WorkerCrashed: {why}", "ratio": None, "hazards": [],
                      "case": case, "property": running.get("property") or "", "case_file": case_file}
            self.crashes.append(record)
        self.crash_failures.append({
            "signature": f"{test_id} | worker crashed: {_describe_exit(code, numbers=False)}", "test_id": test_id,
            "count": 1, "worker": worker.index, "first_seen_s": round(time.time() - self.started, 2),
            "case_id": record["case_id"] if record else None, "phase": record["phase"] if record else None,
            "dtype": record["dtype"] if record else None, "case_file": case_file,
            "replay": f"npu-conformance replay {case_file}" if case_file else None,
            "message": why if running else f"{why} (no case was running: it died outside a case)"})

    def running(self) -> bool:
        return any(w.ended is None for w in self.workers)

    def interrupt(self) -> None:
        """Ctrl-C: the workers got it too (same process group); make sure, and wait for their reports."""
        self.interrupted = True
        for worker in self.workers:
            if worker.ended is None and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGINT)

    def enforce_deadline(self) -> None:
        """A worker still running long after the deadline and grace (stuck in a kernel) is killed."""
        if time.time() > self.deadline + self.o.grace + SHUTDOWN_S:
            for worker in self.workers:
                if worker.ended is None and worker.process.poll() is None:
                    worker.process.kill()

    # --- the merged report ------------------------------------------------------------------------
    def worker_reports(self, validate: bool) -> list[tuple[str, dict]]:
        """The workers' report.json files (validated against the schema for the final merge; the
        in-progress snapshots skip that, so the controller takes no CPU from the workers)."""
        folders = list(self.retired) + [w.folder for w in self.workers]
        out = []
        for folder in dict.fromkeys(folders):
            report = _read_json(folder / "report.json")
            if report is None:
                continue  # a worker that died before its first snapshot left nothing to merge
            out.append((str(folder), validate_report(report, str(folder / "report.json")) if validate else report))
        return out

    def statuses(self) -> list[dict]:
        return [s for w in self.workers if (s := _read_json(w.folder / STATUS_NAME))]

    def merged(self, final: bool) -> dict | None:
        reports = self.worker_reports(validate=final)
        if not reports:
            return None
        complete, reason = True, None
        if not final:
            complete, reason = False, "the fuzz session is still running (in-progress snapshot)"
        elif self.interrupted:
            complete, reason = False, f"interrupted (Ctrl-C) after {time.time() - self.started:.0f} s of a " \
                                      f"{self.o.budget_s:.0f} s budget"
        elif any(w.ended != "finished" for w in self.workers):
            complete, reason = False, "a worker did not finish: " + ", ".join(
                f"worker {w.index} {w.ended}" for w in self.workers if w.ended != "finished")
        else:
            stale = [(src, r["incomplete_reason"]) for src, r in reports
                     if not r["complete"] and src not in map(str, self.retired)]
            if stale:
                complete, reason = False, "; ".join(f"{Path(src).name}: {why}" for src, why in stale)
        restarts = {w.index: w.restarts for w in self.workers}
        # dedupe: workers share the example database, so a case one worker found is judged again by another
        report = merge_reports([r for _, r in reports], sources=[s for s, _ in reports], complete=complete,
                               incomplete_reason=reason, extra_records=self.crashes, dedupe=True)
        fuzz = report.get("fuzz")
        if fuzz is not None:
            fuzz["failures"] = sorted(fuzz["failures"] + self.crash_failures, key=lambda f: f["first_seen_s"])
            fuzz["budget_s"] = self.o.budget_s  # elapsed_s: until the last worker stopped (merge_fuzz)
            for w in fuzz["workers"]:
                w["restarts"] = restarts.get(w["index"], 0)
            fuzz["workers_crashed"] = len(self.crash_failures)
            if fuzz["timeline"]:  # the last point counts every failure, a crash's included
                fuzz["timeline"][-1]["failures"] = sum(f["count"] for f in fuzz["failures"])
            if final:
                self.remove_unnamed_case_files(fuzz["failures"])
        return report

    def remove_unnamed_case_files(self, failures: list[dict]) -> None:
        """OUT/failures keeps one case file per failure signature, the one its replay names (each worker
        kept its own smallest case of each; the merge chose the smallest of those): the rest go."""
        named = {str(Path(f["case_file"]).resolve()) for f in failures if f.get("case_file")}
        for path in case_file_paths(self.out / "failures"):
            if str(path.resolve()) not in named:
                remove_case_file(path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _describe_exit(code: int, numbers: bool = True) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}" if numbers else "killed by a signal"
    return f"exit status {code}" if numbers else "exit status"


def _log_tail(folder: Path, lines: int = 15) -> str:
    try:
        text = (folder / "worker.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no worker log)"
    return "\n".join(text.strip().splitlines()[-lines:])
