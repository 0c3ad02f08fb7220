"""Suite throughput: judged cases per second, per property.

    TORCH_DEVICE_BACKEND_AUTOLOAD=0 python bench/suite_throughput.py [--cases 40] [--sessions 12]
                                                                     [--pytest] [--profile dev]

1. conformance.judge.check.check_case (materialise the case, reference golden + baseline, layer on the
   emulated backend, tolerance and whole-cache checks) over a fixed list of cases drawn once from the
   suite's strategies (seeded, no database), timed without the drawing:
     prefill                          strategies.prefill_cases()
     decode_eager B<=8, ctx<=512      strategies.decode_cases(), longer contexts filtered out
     decode_eager B=8, ctx 1..512     fixed seeded cases at the edge of the target (Hq 8, Hkv 2, D 128)
   Target: >= 20 cases/s for decode_eager with B <= 8 and context <= 512 (both decode_eager rows).
2. Graph decode sessions (strategies.graph_sessions(), seeded): every step judged by check_case on the
   cache the previous step left, through one compiled graph per engine configuration:
     from a cold cache   every configuration compiled once, compiles included in the time
     replayed            the same sessions again: the graphs stay compiled (what a run spends its time on)
   Target: >= 30 judged steps/s replayed; the compile count must equal the configurations drawn.
3. With --pytest: each suite file run by pytest in process (the `npu-conformance mutants` runner,
   unmutated layer, derandomized, no database): judged cases / wall time, hypothesis and pytest
   session start-up (about a second: see the files that judge no case) included, and the decode
   graphs compiled. Target: the graph property's wall time <= 3x the eager decode property's.
Exit 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from conformance.cases import strategies  # noqa: E402
from conformance.judge.check import check_case  # noqa: E402
from conformance.judge.settings import configure  # noqa: E402

TARGET = 20.0  # cases/s, decode_eager with B <= 8 and context <= 512
GRAPH_TARGET = 30.0  # judged graph decode steps/s, replayed through compiled graphs
GRAPH_WALL_TARGET = 3.0  # the graph property's wall time / the eager decode property's, under pytest


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def draw(strategy, n: int, at: int = 0) -> list:
    """n cases from `strategy`, the same ones on every run (seeded, no database, generation only)."""
    cases = []

    @seed(at)
    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(case):
        cases.append(case)

    collect()
    return cases[:n]


def envelope(n: int, phase: str = "decode_eager") -> list:
    """n decode cases at the edge of the target: B = 8, contexts up to 512, GQA 4, D 128, shuffled blocks."""
    from conformance.cases.case import Case

    gen = torch.Generator().manual_seed(3)
    cases = []
    for i in range(n):
        block = (16, 32, 64, 128)[i % 4]
        lens = torch.randint(1, 513, (8,), generator=gen).tolist()
        needed = [-(-x // block) for x in lens]
        num_blocks = 2 + 2 * sum(needed)
        order = (torch.randperm(num_blocks - 2, generator=gen) + 1).tolist()
        tables, cursor = [], 0
        for count in needed:
            tables.append(tuple(order[cursor:cursor + count]))
            cursor += count
        cases.append(Case(phase=phase, num_heads=8, num_kv_heads=2, head_dim=128, dtype=("bfloat16", "float16")[i % 2],
                          block_size=block, num_blocks=num_blocks, seq_lens=tuple(lens), block_tables=tuple(tables),
                          seed=i))
    return cases


def short(case) -> bool:
    return max(case.seq_lens) <= 512


def throughput(cases) -> tuple[float, float, float, int]:
    """(cases/s, median ms per case, seconds, failures) of check_case over `cases`."""
    times, failures = [], 0
    for case in cases:
        start = time.perf_counter()
        outcome = check_case(case)
        times.append(time.perf_counter() - start)
        failures += not outcome.passed
    total = sum(times)
    return len(cases) / total, statistics.median(times) * 1e3, total, failures


def check_case_rows(n: int) -> tuple[list[list[str]], bool]:
    configure(backend="emulated", mutation=None)
    groups = [
        ("prefill", draw(strategies.prefill_cases(), n), None),
        ("decode_eager B<=8 ctx<=512", draw(strategies.decode_cases(max_batch=8).filter(short), n), TARGET),
        ("decode_eager B=8 ctx 1..512 (edge)", envelope(n), TARGET),
    ]
    check_case(groups[0][1][0])  # one warm-up (imports, first-call allocations)
    rows, met = [], True
    for name, cases, target in groups:
        rate, median_ms, total, failures = throughput(cases)
        verdict = "" if target is None else ("ok" if rate >= target else "MISSED")
        met &= target is None or rate >= target
        batches = [c.batch for c in cases]
        rows.append([name, str(len(cases)), f"{max(batches)}", f"{max(max(c.seq_lens) for c in cases)}",
                     f"{median_ms:.0f}", f"{rate:.1f}", "" if target is None else f">= {target:g}", verdict,
                     str(failures)])
    return rows, met


def session_rows(n: int) -> tuple[list[list[str]], bool]:
    """Graph sessions from a cold compile cache, then replayed: steps/s, compiles, configurations."""
    from conformance.cases.graph_session import run_session
    from conformance.judge import graph

    sessions = draw(strategies.graph_sessions(), n)
    configurations = len({(s.num_heads, s.num_kv_heads, s.head_dim, s.dtype, s.block_size, s.num_blocks,
                           s.max_num_seqs, s.table_width) for s in sessions})

    def judge(case, tensors, step):
        return check_case(case, tensors=tensors)

    graph.reset()
    rows, met = [], True
    for name, target in (("from a cold cache (compiles included)", None), ("replayed (graphs compiled)", GRAPH_TARGET)):
        compiles, steps, failures = graph.compile_count(), 0, 0
        start = time.perf_counter()
        for session in sessions:
            for _, outcome in run_session(session, "bench", judge=judge):
                steps += 1
                failures += not outcome.passed
        seconds = time.perf_counter() - start
        rate = steps / seconds
        verdict = "" if target is None else ("ok" if rate >= target else "MISSED")
        met &= target is None or rate >= target
        rows.append([name, str(len(sessions)), str(steps), str(graph.compile_count() - compiles), str(configurations),
                     f"{seconds:.1f}", f"{rate:.1f}", "" if target is None else f">= {target:g}", verdict,
                     str(failures)])
    return rows, met


def pytest_rows(profile: str) -> tuple[list[list[str]], bool]:
    import warnings

    from hypothesis.errors import HypothesisSideeffectWarning

    from conformance.mutants.runner import run_suite, suite_modules

    # The strategies above were built before pytest loads hypothesis' plugin: expected here.
    warnings.filterwarnings("ignore", category=HypothesisSideeffectWarning)
    from conformance.judge import graph

    rows, wall = [], {}
    for module in suite_modules():
        compiles = graph.compile_count()
        result = run_suite(None, profile=profile, modules=[module])
        name = module.rsplit(".", 1)[1]
        wall[name] = result.seconds
        rate = result.cases_run / result.seconds if result.seconds else 0.0
        rows.append([name, result.status if result.status != "survived" else "passed",
                     str(result.cases_run), f"{result.seconds:.1f}", f"{rate:.1f}",
                     str(graph.compile_count() - compiles)])
    ratio = wall["test_graph"] / wall["test_decode"]
    met = ratio <= GRAPH_WALL_TARGET
    rows.append(["test_graph / test_decode wall", "ok" if met else "MISSED", "", f"{ratio:.2f}x",
                 f"<= {GRAPH_WALL_TARGET:g}x", ""])
    return rows, met


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40, help="cases per eager property (default 40)")
    parser.add_argument("--sessions", type=int, default=12, help="graph decode sessions (default 12)")
    parser.add_argument("--pytest", action="store_true", help="also time every suite file under pytest")
    parser.add_argument("--profile", default="dev", help="hypothesis profile of the --pytest runs (default dev)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; emulated backend")
    rows, met = check_case_rows(args.cases)
    print(table(["check_case over drawn cases", "cases", "max B", "max ctx", "median ms", "cases/s", "target", "",
                 "failed"], rows))
    print()
    rows, graph_met = session_rows(args.sessions)
    print(table(["graph decode sessions", "sessions", "steps", "compiles", "configs", "s", "steps/s", "target", "",
                 "failed"], rows))
    wall_met = True
    if args.pytest:
        print()
        rows, wall_met = pytest_rows(args.profile)
        print(table([f"pytest per suite file ({args.profile})", "result", "cases", "s", "cases/s", "compiles"], rows))
    missed = [what for what, ok in (("decode_eager below 20 cases/s", met),
                                    ("graph decode below 30 steps/s", graph_met),
                                    ("graph property over 3x the eager decode property", wall_met)) if not ok]
    print("targets met" if not missed else "target missed: " + "; ".join(missed))
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
