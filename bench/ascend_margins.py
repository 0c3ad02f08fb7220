"""How much margin each Ascend benchmark-standard metric leaves a correct kernel: not a timing.

Reads a report.json (by default it first writes one: `npu-conformance run --profile ci` of the
unmodified layer on the emulated backend) and prints, per dtype and metric, the distribution of the
kernel/baseline ratio over its L1 limit across every compared case: p50, p90, p99, max, and the
margin limit / max (how many times larger the worst ratio could grow before the metric fails).
EB is shown against msprobe's non-gating threshold. A metric whose max passes 1 fails the standard
on correct code; the script then exits 1.

    TORCH_DEVICE_BACKEND_AUTOLOAD=0 python bench/ascend_margins.py [--report DIR/report.json] [--profile ci]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from conformance.judge.ascend_standard import GATING_METRICS, METRICS
from conformance.report import load_report, num


def _quantile(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="an existing report.json (default: run the suite first)")
    parser.add_argument("--profile", default="ci", help="hypothesis profile of the run (default ci)")
    parser.add_argument("--seed", default="1", help="seed of the run (default 1)")
    args = parser.parse_args()
    path = args.report
    if path is None:
        out = Path(tempfile.mkdtemp(prefix="ascend-margins-"))
        cmd = [sys.executable, "-m", "conformance.cli", "run", "--backend", "emulated", "--profile", args.profile,
               "--seed", args.seed, "--out", str(out)]
        print("running:", " ".join(cmd[2:]), flush=True)
        code = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
        if code not in (0, 1):
            print(f"the run exited {code}", file=sys.stderr)
            return code
        path = out / "report.json"
    report = load_report(path)
    records = [r for r in report["records"] if r.get("ascend")]
    print(f"{len(records)} compared cases from {path} ({report['verdict']['reason'][:90]})")
    print(f"{'dtype':9} {'metric':22} {'cases':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'margin':>8}")
    failing = []
    for dtype in ("float16", "bfloat16", "float32"):
        mine = [r for r in records if r["dtype"] == dtype]
        if not mine:
            continue
        for metric in METRICS:
            xs = sorted(num(r["ascend"]["ratios"][metric]) / r["ascend"]["limits"][metric] for r in mine)
            worst = xs[-1]
            margin = math.inf if worst == 0 else 1 / worst
            tag = "" if metric in GATING_METRICS else "  (not gating)"
            print(f"{dtype:9} {metric:22} {len(xs):6d} {_quantile(xs, .5):7.3f} {_quantile(xs, .9):7.3f} "
                  f"{_quantile(xs, .99):7.3f} {worst:7.3f} {margin:8.2f}{tag}")
            if metric in GATING_METRICS and worst > 1:
                failing.append(f"{dtype} {metric}: {sum(x > 1 for x in xs)} of {len(xs)} cases above the limit")
    for line in failing:
        print("ABOVE THE LIMIT on the unmodified layer:", line)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
