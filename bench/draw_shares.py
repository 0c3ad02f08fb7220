"""How often the suite's strategies draw long sequences (> 512 and > 2048 positions).

Not a timing: a frequency over N generated draws (hypothesis' generate phase, no database), to check
the rates `conformance.strategies.sequence_lengths` documents. Exits 1 when a share is far from them.

    TORCH_DEVICE_BACKEND_AUTOLOAD=0 python bench/draw_shares.py [--draws 400]
"""

from __future__ import annotations

import argparse
import sys

from hypothesis import HealthCheck, Phase, given, settings

from conformance.cases.strategies import decode_cases, graph_cases, prefill_cases

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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
