"""How often the suite's strategies draw long sequences (> 512 and > 2048 positions), and how often the
graph sessions exercise each engine edge a runner must get right (conformance.cases.edges).

Not a timing: a frequency over N generated draws (hypothesis' generate phase, no database), to check
the rates `conformance.cases.strategies.sequence_lengths` documents. Exits 1 when a length share is far
from them, or an engine edge is never drawn.

    TORCH_DEVICE_BACKEND_AUTOLOAD=0 python bench/draw_shares.py [--draws 400] [--runs 5]
"""

from __future__ import annotations

import argparse
import sys

from hypothesis import HealthCheck, Phase, given, settings

from conformance.cases.edges import EDGES, session_edges
from conformance.cases.strategies import decode_cases, graph_cases, graph_sessions, prefill_cases

TARGETS = {"> 512": (0.03, 0.08), "> 2048": (0.005, 0.03)}  # docstring: ~5 % and ~1.5 %, means of --runs


def shares(strategy, draws: int) -> dict[str, float]:
    longest: list[int] = []

    @settings(max_examples=draws, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def sample(case):
        longest.append(max(case.seq_lens))

    sample()
    return {"> 512": sum(n > 512 for n in longest) / len(longest),
            "> 2048": sum(n > 2048 for n in longest) / len(longest), "draws": len(longest)}


def edge_shares(draws: int) -> dict[str, float]:
    """The share of generated graph sessions that exercise each engine edge."""
    found: list[set[str]] = []

    @settings(max_examples=draws, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(session=graph_sessions())
    def sample(session):
        found.append(session_edges(session))

    sample()
    return {edge: sum(edge in f for f in found) / len(found) for edge in EDGES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=400, help="draws per run (default 400)")
    parser.add_argument("--runs", type=int, default=5, help="independent runs averaged (default 5)")
    args = parser.parse_args()
    ok = True
    for name, strategy in (("prefill", prefill_cases()), ("decode_eager", decode_cases()),
                           ("decode_graph", graph_cases())):
        runs = [shares(strategy, args.draws) for _ in range(args.runs)]
        marks = []
        for key, (low, high) in TARGETS.items():
            mean = sum(r[key] for r in runs) / len(runs)
            inside = low <= mean <= high
            ok &= inside
            spread = f"{min(r[key] for r in runs):.1%}-{max(r[key] for r in runs):.1%}"
            marks.append(f"{key}: {mean:5.1%} (runs {spread}){'' if inside else f' OUTSIDE {low:.1%}-{high:.1%}'}")
        print(f"{name:<13} {args.runs} x {args.draws} draws   " + "   ".join(marks))
    runs = [edge_shares(args.draws) for _ in range(args.runs)]
    print(f"\nengine edges of graph sessions ({args.runs} x {args.draws} draws; a session can show several):")
    for edge in EDGES:
        mean = sum(r[edge] for r in runs) / len(runs)
        ok &= mean > 0
        print(f"  {edge:<28} {mean:6.1%}   (runs {min(r[edge] for r in runs):.1%}-{max(r[edge] for r in runs):.1%})"
              + ("" if mean > 0 else "   NEVER DRAWN"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
