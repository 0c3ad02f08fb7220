"""Fuzz session throughput: judged cases per second with 1 and 2 workers on the same budget, and the
share of the workers' test loop spent in the layer and the reference (not in generation, bookkeeping
and reporting). Each session gets a fresh example database, so neither replays the other's finds.

    TORCH_DEVICE_BACKEND_AUTOLOAD=0 python bench/fuzz_throughput.py [--budget 60s] [--workers 1,2]

Targets: 2 workers >= 1.7x the cases/s of 1 (on 2 cores); >= 70 % of the loop in layer + reference.
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def session(budget: str, workers: int, folder: Path) -> dict:
    out, db = folder / f"w{workers}", folder / f"db{workers}"
    cmd = [sys.executable, "-m", "conformance.cli", "fuzz", "--budget", budget, "--workers", str(workers),
           "--out", str(out), "--database", str(db), "--backend", "emulated"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"TORCH_DEVICE_BACKEND_AUTOLOAD": "0"})
    if proc.returncode not in (0, 1):
        sys.exit(f"fuzz --workers {workers} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    fuzz = report["fuzz"]
    return {"workers": workers, "cases": fuzz["cases"], "elapsed": fuzz["elapsed_s"],
            "rate": fuzz["cases"] / fuzz["elapsed_s"], "startup": fuzz["startup_s"] / workers,
            "share": fuzz["time_in_kernels_and_reference_s"] / max(fuzz["loop_s"], 1e-9),
            "failures": len(fuzz["failures"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="60s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [session(args.budget, n, Path(tmp)) for n in (1, 2)]
    print(f"fuzz sessions, budget {args.budget}, {os.cpu_count()} cores, emulated backend")
    print(f"{'workers':>7}  {'cases':>6}  {'s':>6}  {'cases/s':>8}  {'startup s':>9}  "
          f"{'layer+ref share':>15}  failures")
    for r in rows:
        print(f"{r['workers']:>7}  {r['cases']:>6}  {r['elapsed']:>6.1f}  {r['rate']:>8.2f}  {r['startup']:>9.1f}  "
              f"{r['share']:>15.0%}  {r['failures']:>8}")
    scale = rows[1]["rate"] / rows[0]["rate"]
    share = min(r["share"] for r in rows)
    ok_scale, ok_share = scale >= 1.7, share >= 0.70
    print(f"2 workers / 1: {scale:.2f}x (target >= 1.7x) {'ok' if ok_scale else 'MISSED'}; "
          f"layer+reference share {share:.0%} (target >= 70 %) {'ok' if ok_share else 'MISSED'}")
    return 0 if ok_scale and ok_share else 1


if __name__ == "__main__":
    sys.exit(main())
