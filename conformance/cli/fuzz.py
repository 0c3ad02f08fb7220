"""`npu-conformance fuzz`: run the suite's properties for a time budget, in worker processes (one per
NPU on an Ascend host), sharing an example database, and write one report folder as the session goes.

Every property gets turns of a few seconds each until the budget is spent (conformance.fuzz.worker);
failures are shrunk, deduplicated by signature and saved as case files in OUT/failures/ (`npu-conformance
promote FILE` makes one part of every later run). The live display shows each property's cases, rate and
distinct failures, the worst error/bound ratio per phase x dtype, and the time left. Ctrl-C stops the
session with a report of everything found so far (marked incomplete). Exit status as for `run`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from conformance.cli import exit_codes
from conformance.cli.paths import folder_problem
from conformance.harness import options

REFRESH_S = 1.0
HEARTBEAT_S = 10.0
SNAPSHOT_S = 30.0


def add_parser(sub) -> None:
    parser = sub.add_parser("fuzz", help="fuzz the suite's properties for a time budget, on every NPU of the node",
                            description=__doc__.split("\n\n", 1)[1].strip().replace("\n", " "),
                            epilog=exit_codes.HELP)
    parser.add_argument("--budget", default="10m", metavar="DURATION",
                        help="how long to fuzz: 90s, 30m, 8h, 1h30m (default 10m)")
    parser.add_argument("--max-cases", type=int, default=None, metavar="N",
                        help="also stop after N judged cases in all")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes (default: one per NPU found, else 1)")
    parser.add_argument("--database", default=None, metavar="PATH|redis://HOST:PORT/N",
                        help="example database: a folder (default .hypothesis/examples) or a Redis server "
                             "shared by a fleet")
    parser.add_argument("--out", default="conformance-fuzz", metavar="DIR",
                        help="report folder (default conformance-fuzz)")
    options.add_cli_options(parser, "fuzz")
    parser.add_argument("--plant", metavar="MUTANT", default=None,
                        help="plant a catalogued bug (npu-conformance mutants --list), to see the session find it")
    parser.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                        help="extra pytest arguments for every worker, after '--'")
    parser.set_defaults(func=fuzz_command)


def _fail(console, message: str, code: int) -> int:
    console.print(f"FAILED: {message}", style="bold red", soft_wrap=True)
    return code


def fuzz_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from conformance.fuzz.budget import BudgetError, parse_duration
    from conformance.fuzz.controller import FuzzOptions, FuzzSession
    from conformance.fuzz.database import DatabaseError, open_database
    from conformance.platform.devices import DeviceSpecError, detect_devices, parse_devices

    console = Console(highlight=False, markup=False, emoji=False, width=None if sys.stdout.isatty() else 120)
    try:
        budget = parse_duration(args.budget)
        devices = parse_devices(args.devices) if args.devices else detect_devices()
    except (BudgetError, DeviceSpecError) as exc:
        return _fail(console, str(exc), exit_codes.USAGE)
    if args.max_cases is not None and args.max_cases < 1:
        return _fail(console, f"--max-cases must be at least 1, got {args.max_cases}", exit_codes.USAGE)
    workers = args.workers if args.workers is not None else max(1, len(devices))
    if workers < 1:
        return _fail(console, f"--workers must be at least 1, got {workers}", exit_codes.USAGE)
    if args.plant and (args.layer or args.runner):
        return _fail(console, f"--plant {args.plant}: planted bugs are planted in the project's own layer and runner "
                              f"only, not in {args.layer or args.runner} (drop --layer / --runner, or --plant)",
                     exit_codes.USAGE)
    problem = folder_problem("--out", args.out)
    if problem:
        return _fail(console, problem, exit_codes.USAGE)
    for option, path in (("--tolerance-policy", args.tolerance_policy), ("--acknowledgements", args.acknowledgements)):
        if path and not Path(path).is_file():
            return _fail(console, f"{option} {path}: no such file", exit_codes.USAGE)
    os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")
    if args.backend == "npu":
        from conformance.platform.probe import probe_npu

        probe = probe_npu()
        if not probe.usable:
            return _fail(console, f"--backend npu but no usable NPU ({probe.error or 'no device'})", exit_codes.NO_NPU)
    try:  # an unreachable Redis is said now, not after the budget
        open_database(args.database, "check")
    except DatabaseError as exc:
        return _fail(console, str(exc), exit_codes.USAGE)

    out = Path(args.out)
    _clear_previous(out)
    # The controller pins each worker to its card and seeds its slices: --devices and --seed stay here.
    run_args = options.pytest_arguments(args, "fuzz", exclude=("--devices", "--seed"))
    fuzz_options = FuzzOptions(budget_s=budget, out=out, workers=workers, devices=devices, max_cases=args.max_cases,
                               database=args.database, seed=args.seed, plant=args.plant,
                               pytest_args=run_args + list(args.pytest_args or []))
    session = FuzzSession(fuzz_options)
    pins = ", ".join(f"worker {i} on NPU {devices[i % len(devices)]}" for i in range(workers)) if devices else \
        "no NPU found: the emulated backend"
    console.print(f"npu-conformance fuzz: {workers} worker(s) for {args.budget} ({pins}); database "
                  f"{args.database or '.hypothesis/examples'}; report in {out}", style="dim", soft_wrap=True)
    session.start()
    display = LiveDisplay(console, session)
    try:
        while session.running():
            time.sleep(0.25)
            session.poll()
            if session.usage_error:  # every worker gets the same options: stop the rest too
                session.interrupt()
                _wait(session)
                break
            session.enforce_deadline()
            display.tick()
    except KeyboardInterrupt:
        console.print("interrupted: stopping the workers and writing the report ...", style="bold yellow")
        session.interrupt()
        _wait(session)
    finally:
        display.stop()
    return _finish(console, session, out, args.k)


def _clear_previous(out: Path) -> None:
    """An earlier session's report and finds in the same folder would read as this one's."""
    import shutil

    from conformance.report.artifacts import ARTIFACTS, clear_stale

    clear_stale(out, ARTIFACTS)
    for sub in ("workers", "failures"):
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)


def _wait(session) -> None:
    deadline = time.time() + 120
    while session.running() and time.time() < deadline:
        try:
            time.sleep(0.25)
            session.poll()
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, kill what is left
            break
    for worker in session.workers:
        if worker.ended is None:
            worker.process.kill()
            worker.process.wait()
            worker.ended = "killed at shutdown"


def _finish(console, session, out: Path, keyword: str | None) -> int:
    from conformance.report.artifacts import write_artifacts
    from conformance.report.console import summary_table
    from conformance.report.fuzz_section import judged_text
    from conformance.report.junit import write_junit

    if session.no_tests:
        return _fail(console, exit_codes.no_test_matched(keyword), exit_codes.USAGE)
    if session.usage_error:  # the worker's log, then its cause as the last line
        cause = exit_codes.usage_cause(session.usage_error)
        console.print(session.usage_error, style="dim", soft_wrap=True)
        return _fail(console, f"a worker could not start: {cause or 'see its log above'}", exit_codes.USAGE)
    report = session.merged(final=True)
    if report is None:
        return _fail(console, "no worker wrote a report (see the logs in " + str(out / "workers") + ")",
                     exit_codes.INTERNAL)
    paths = write_artifacts(report, out)
    paths["junit"] = write_junit(report, out / "junit.xml")
    console.print()
    console.print(summary_table(report))
    fuzz = report["fuzz"]
    elapsed = fuzz["elapsed_s"]
    share = fuzz["time_in_kernels_and_reference_s"] / max(fuzz["loop_s"], 1e-9)
    # cases: distinct judged cases, the number the verdict, the summary table and the timeline give too
    console.print(f"{fuzz['cases']} cases in {elapsed:.0f} s ({fuzz['cases'] / max(elapsed, 1e-9):.1f}/s)"
                  f"{judged_text(fuzz)} by {len(session.workers)} worker(s), {fuzz['slices']} slices; {share:.0%} of "
                  f"the workers' test loop "
                  f"in the layer and the reference ({fuzz['startup_s'] / max(1, len(session.workers)):.0f} s startup "
                  f"per worker); stopped: {fuzz['stopped']}", soft_wrap=True)
    if fuzz["database"].get("degraded"):
        console.print(f"database: {fuzz['database']['degraded']}", style="bold yellow", soft_wrap=True)
    for f in fuzz["failures"]:
        console.print(f"failure x{f['count']}: {f['signature']}", style="bold red", soft_wrap=True)
        if f.get("replay"):
            console.print(f"  replay: {f['replay']}   promote: npu-conformance promote {f['case_file']}",
                          soft_wrap=True)
    console.print("report: " + "  ".join(str(p) for p in paths.values()), soft_wrap=True)
    verdict = report["verdict"]
    if fuzz.get("planted"):
        console.print(f"planted bug: {fuzz['planted']}", style="bold yellow", soft_wrap=True)
    console.print(verdict["reason"], style="bold green" if verdict["passed"] else "bold red", soft_wrap=True)
    if session.internal_error:
        console.print(f"a worker hit an internal error:\n{session.internal_error}", style="bold red")
        return exit_codes.INTERNAL
    if session.interrupted or not report["complete"]:
        return exit_codes.INTERRUPTED
    return exit_codes.PASSED if verdict["passed"] else exit_codes.FAILED


class LiveDisplay:
    """Per property: cases, cases/s, distinct failures; for the session: worst ratio per bucket, time
    left. A live table on a terminal, a line every HEARTBEAT_S seconds in a log; the merged report is
    rewritten every SNAPSHOT_S seconds."""

    def __init__(self, console, session):
        self.console, self.session = console, session
        self.tty = console.is_terminal
        self.live = None
        self._last_draw = time.time()
        self._last_snapshot = time.time() - SNAPSHOT_S + 10  # the first merged snapshot after ~10 s

    def tick(self) -> None:
        now = time.time()
        if now - self._last_snapshot >= SNAPSHOT_S:
            self._last_snapshot = now
            self._snapshot()
        if now - self._last_draw < (REFRESH_S if self.tty else HEARTBEAT_S):
            return
        self._last_draw = now
        statuses = self.session.statuses()
        if self.tty:
            from rich.live import Live

            if self.live is None:
                self.live = Live(console=self.console, auto_refresh=False, transient=False)
                self.live.start()
            self.live.update(self.table(statuses), refresh=True)
        else:
            self.console.print(self.line(statuses), soft_wrap=True)

    def _snapshot(self) -> None:
        from conformance.report.artifacts import write_json

        report = self.session.merged(final=False)
        if report is not None:
            write_json(report, self.session.out)

    def numbers(self, statuses: list[dict]) -> dict:
        from conformance.formatting import rank

        props: dict[str, dict] = {}
        worst: dict[str, float] = {}
        failures = set(f["signature"] for f in self.session.crash_failures)
        for s in statuses:
            for p in s.get("properties") or []:
                e = props.setdefault(p["test_id"], {"cases": 0, "seconds": 0.0, "failures": set()})
                e["cases"] += p["cases"]
                e["seconds"] += p["seconds"]
                e["failures"] |= set(p.get("signatures") or [])
            for f in s.get("failures") or []:
                failures.add(f["signature"])
            for bucket, ratio in (s.get("worst") or {}).items():
                if rank(ratio) > rank(worst.get(bucket)):
                    worst[bucket] = ratio
        return {"props": props, "worst": worst, "failures": failures,
                "cases": sum(s.get("cases", 0) for s in statuses),
                "left": max(0.0, self.session.deadline - time.time()),
                "elapsed": time.time() - self.session.started}

    def table(self, statuses: list[dict]):
        from rich import box
        from rich.console import Group
        from rich.table import Table

        from conformance.formatting import fmt_ratio
        from conformance.fuzz.budget import format_duration

        n = self.numbers(statuses)
        table = Table(box=box.SIMPLE_HEAD, title_justify="left",
                      title=f"fuzzing: {n['cases']} cases, {len(n['failures'])} distinct failure(s), "
                            f"{format_duration(n['left'])} left")
        for name, justify in (("property", "left"), ("cases", "right"), ("cases/s", "right"), ("failures", "right")):
            table.add_column(name, justify=justify)
        for test_id, p in sorted(n["props"].items()):
            rate = p["cases"] / p["seconds"] if p["seconds"] else 0.0
            table.add_row(test_id.split("::", 1)[-1], str(p["cases"]), f"{rate:.1f}", str(len(p["failures"])),
                          style="bold red" if p["failures"] else None)
        worst = Table(box=box.SIMPLE_HEAD, title="worst error/bound so far", title_justify="left")
        worst.add_column("phase/dtype")
        worst.add_column("ratio", justify="right")
        for bucket, ratio in sorted(n["worst"].items()):
            worst.add_row(bucket, fmt_ratio(ratio))
        return Group(table, worst)

    def line(self, statuses: list[dict]) -> str:
        from conformance.formatting import fmt_ratio, rank

        n = self.numbers(statuses)
        top = max(n["worst"].items(), key=lambda kv: rank(kv[1]), default=None)
        worst = f"{fmt_ratio(top[1])} ({top[0]})" if top else "-"
        return (f"  ... {n['elapsed']:.0f} s: {n['cases']} cases ({n['cases'] / max(n['elapsed'], 1e-9):.1f}/s), "
                f"{len(n['failures'])} distinct failure(s), worst ratio {worst}, {n['left']:.0f} s left")

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
