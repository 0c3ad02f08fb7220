"""Record msprobe's own benchmark-standard verdicts on fixed triples, for tests/test_ascend_standard_vs_msprobe.py.

conformance/judge/ascend_standard.py re-implements the benchmark standard of Ascend's msprobe
(api_accuracy_checker). This script runs msprobe itself, through the same two stages its checker runs, on a
fixed set of (golden, baseline, output) triples and writes what msprobe reported to
tests/data/msprobe_reference.json. The test rebuilds the triples from the parameters recorded there (and checks
their SHA-256) and compares conformance.judge.ascend_standard with the recorded numbers; it never needs msprobe.
CI never runs this script.

Recorded with mindstudio-probe 26.2.0 (msprobe build commit 078e720, 2026-10-15), torch 2.13.0+cpu,
numpy 2.4.6, Python 3.11, in a virtual environment of its own (msprobe must not replace the system torch):

    python -m venv /tmp/msprobe-venv
    /tmp/msprobe-venv/bin/pip install torch==2.13.0 mindstudio-probe numpy
    /tmp/msprobe-venv/bin/python tools/record_msprobe_reference.py      # from the repository root

(`torch==2.13.0` exactly: another torch spec may pull a multi-GB CUDA build.)

How msprobe is driven, as its checker drives it (paths under msprobe/pytorch/api_accuracy_checker/):
  * Stage 1, once for the NPU and once for the GPU run: `Comparator.compare_output` (compare/compare.py:243) with
    the benchmark output (the CPU result, computed in fp32 for fp16/bf16 inputs and fp64 for fp32:
    acc_check/acc_check_utils.py:45-49) and a device output. Here the "NPU" output is the triple's output, the
    "GPU" output its baseline, the benchmark its golden. For float outputs it runs `BenchmarkCompare`
    (precision_standard/benchmark_compare.py, metrics of compare/algorithm.py) and appends the metrics to a
    details CSV. The raw (unformatted) metrics and msprobe's mask counts are captured by a Comparator subclass
    that keeps the BenchmarkCompare instance; nothing of msprobe's is re-implemented here.
  * Stage 2: `api_precision_compare` (compare/api_precision_compare.py:102) reads the two CSVs and runs
    `BenchmarkPrecisionCompare` (precision_standard/benchmark_compare.py:136): ratios kernel/max(baseline,
    minimum_err), a status per metric, and the verdict ("compare_result"). msprobe picks the level from the API
    name only (precision_standard/standard_config.py:140-176), so each triple is entered under three API names:
    npu_fused_infer_attention_score (in neither list: L0), npu_fusion_attention (L1) and matmul (L2).

The triples are exact in the benchmark dtype (fp32 for fp16/bf16, fp64 for fp32), so msprobe and the project
see the same golden. The recipe is tests/msprobe_triples.py, shared with the test, which checks the recorded hashes.
"""

from __future__ import annotations

import csv
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "msprobe_reference.json"
LEVEL_APIS = {"L0": ("NPU", "npu_fused_infer_attention_score"), "L1": ("NPU", "npu_fusion_attention"),
              "L2": ("Torch", "matmul")}
LAYER_OPS = ("npu_fused_infer_attention_score", "scatter_update_", "_npu_reshape_and_cache")
N = 4096


# ----------------------------------------------------------------------------------------------- the triples
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from msprobe_triples import BENCH_DTYPE, DTYPES, build_triple, sha256  # noqa: E402  (the one recipe)


def cases() -> list[dict]:
    """The fixed set: per dtype, the same kinds with magnitudes in that dtype's units (for fp32 the ratio floor
    2^-14 is far above its rounding error, so its noise is scaled to the floor, not to its eps)."""
    eps = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-13}  # fp32: 2 * 2^-14 (the floor)
    ulp = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23}  # the dtype's own eps
    small_mag = {"float16": 2.0**-11, "bfloat16": 2.0**-11, "float32": 2.0**-21}
    out = []
    for dname in DTYPES:
        e = eps[dname]
        kinds = [
            ("correctly_rounded", {}),
            ("one_ulp_noise", {"noise_rel": ulp[dname]}),
            ("rounding", {"noise_rel": 0.25 * e}),
            ("noise_x1.3", {"noise_rel": 1.3 * e}),
            ("noise_x1.7", {"noise_rel": 1.7 * e}),
            ("noise_x3", {"noise_rel": 3.0 * e}),
            ("large_errors_x2", {"noise_rel": 0.25 * e, "large_count": 3, "large_rel": 2 * e}),
            ("large_errors_x4", {"noise_rel": 0.25 * e, "large_count": 3, "large_rel": 4 * e}),
            ("large_errors_x8", {"noise_rel": 0.25 * e, "large_count": 3, "large_rel": 8 * e}),
            ("large_errors_half", {"noise_rel": 0.25 * e, "large_count": 5, "large_rel": 0.5}),
            ("small_values_exact", {"noise_rel": 0.25 * e, "small_fraction": 0.5,
                                    "small_magnitude": small_mag[dname], "small_exact": True}),
            ("small_values_rounded", {"noise_rel": 0.25 * e, "small_fraction": 0.5,
                                      "small_magnitude": small_mag[dname], "small_exact": False}),
            ("small_values_exact_noisy", {"noise_rel": 1.0 * e, "small_fraction": 0.5,
                                          "small_magnitude": small_mag[dname], "small_exact": True}),
            ("small_values_only", {"noise_rel": 2.0 * e, "small_fraction": 1.0,
                                   "small_magnitude": small_mag[dname], "small_exact": False}),
            ("all_equal_exact", {"const": 0.5}),
            ("all_equal_rounded", {"const": 0.1}),
            ("nan_output", {"noise_rel": 0.25 * e, "nan_output": 1}),
            ("nan_output_many", {"noise_rel": 0.25 * e, "nan_output": 64}),
            ("nan_golden", {"noise_rel": 0.25 * e, "nan_golden": 3}),
            ("nan_golden_large_errors", {"noise_rel": 0.25 * e, "nan_golden": 3, "large_count": 3,
                                         "large_rel": 8 * e}),
            ("above_fp16_max_cast", {"noise_rel": 0.25 * e, "scale": 1000.0, "big_values": [70000.0, -1e5, 65520.0],
                                     "big_output": "cast"}),
            ("above_fp16_max_saturate", {"noise_rel": 0.25 * e, "scale": 1000.0,
                                         "big_values": [70000.0, -1e5, 65520.0], "big_output": "saturate"}),
        ]
        for i, (kind, extra) in enumerate(kinds):
            out.append({"id": f"{dname}/{kind}", "kind": kind,
                        "params": {"dtype": dname, "n": N, "seed": 1000 + 37 * list(DTYPES).index(dname) + i,
                                   **extra}})
    return out


# ----------------------------------------------------------------------------------------------- msprobe
def _f(x) -> float | None:
    if isinstance(x, str):
        return None if x.strip() == "" else float(x)
    return float(x)


def run_msprobe(all_cases: list[dict], work: Path) -> dict:
    import msprobe._build_info as build
    import numpy as np
    from msprobe.core.common.const import CompareConst
    from msprobe.pytorch.api_accuracy_checker.acc_check.acc_check_utils import UtDataInfo
    from msprobe.pytorch.api_accuracy_checker.compare.algorithm import get_abs_bench_with_eps
    from msprobe.pytorch.api_accuracy_checker.compare.api_precision_compare import CompareConfig, api_precision_compare
    from msprobe.pytorch.api_accuracy_checker.compare.compare import Comparator
    from msprobe.pytorch.api_accuracy_checker.compare.compare_utils import ApiPrecisionCompareColumn as Col
    from msprobe.pytorch.api_accuracy_checker.precision_standard.benchmark_compare import BenchmarkCompare
    from msprobe.pytorch.api_accuracy_checker.precision_standard.standard_config import StandardConfig

    class Recording(Comparator):
        """msprobe's Comparator, keeping each BenchmarkCompare it runs (for the raw metrics and the masks)."""

        last = None

        @staticmethod
        def _benchmark_compare(input_data):
            bc = BenchmarkCompare(input_data)
            bc.compare()
            Recording.last = bc

    sides = {"npu": "output", "gpu": "baseline"}
    comparators = {s: Recording(str(work / f"{s}_result.csv"), str(work / f"{s}_details.csv"), False)
                   for s in sides}
    names = {}
    for i, case in enumerate(all_cases):
        golden, baseline, output = build_triple(case["params"])
        case["sha256"] = {"golden": sha256(golden), "baseline": sha256(baseline), "output": sha256(output)}
        bench = golden.to(BENCH_DTYPE[case["params"]["dtype"]])
        tensors = {"npu": output, "gpu": baseline}
        case["msprobe"] = {"levels": {}}
        for side, role in sides.items():
            for level, (api_type, api) in LEVEL_APIS.items():
                full = f"{api_type}.{api}.{i}"
                names[f"{full}.forward.output.0"] = (case, level)
                Recording.last = None
                data = UtDataInfo(None, None, tensors[side].clone(), bench.clone(), None, None, "")
                comparators[side].compare_output(full, data)
                bc = Recording.last
                assert bc is not None, f"{case['id']}: msprobe ran no benchmark compare"
                col = bc.compare_column
                got = {"small_value_err_ratio": _f(col.small_value_err_ratio), "rmse": _f(col.rmse),
                       "max_rel_err": _f(col.max_rel_error), "mean_rel_err": _f(col.mean_rel_error),
                       "eb": _f(col.eb),
                       "elements": int(bc.bench_output.size),
                       "inf_nan": int(np.sum(bc.inf_nan_mask)),
                       "small_values": int(np.sum(bc.small_value_mask)),
                       "rmse_masked": int(np.sum(np.logical_or(bc.inf_nan_mask, bc.small_value_mask)))}
                prev = case["msprobe"].get(role)
                assert prev is None or prev == got, f"{case['id']}: stage 1 differs between API names"
                case["msprobe"][role] = got

    config = CompareConfig(str(work / "npu_details.csv"), str(work / "gpu_details.csv"),
                           str(work / "precision_result.csv"), str(work / "precision_details.csv"))
    api_precision_compare(config)
    with open(config.details_csv_path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    ratio_cols = {"small_value_err_ratio": Col.SMALL_VALUE_ERROR_RATIO, "rmse": Col.RMSE_RATIO,
                  "max_rel_err": Col.MAX_REL_ERR_RATIO, "mean_rel_err": Col.MEAN_REL_ERR_RATIO, "eb": Col.EB_RATIO}
    status_cols = {"small_value_err_ratio": Col.SMALL_VALUE_ERROR_STATUS, "rmse": Col.RMSE_STATUS,
                   "max_rel_err": Col.MAX_REL_ERR_STATUS, "mean_rel_err": Col.MEAN_REL_ERR_STATUS,
                   "eb": Col.EB_STATUS}
    for row in rows:
        case, level = names.pop(row[Col.API_NAME])
        assert row[Col.ALGORITHM] == CompareConst.BENCHMARK_COMPARE_ALGORITHM_NAME, row
        case["msprobe"]["levels"][level] = {
            "api_name": LEVEL_APIS[level][1],
            "ratios": {m: float(row[c]) for m, c in ratio_cols.items()},
            "status": {m: row[c] for m, c in status_cols.items()},
            "compare_result": row[Col.FINAL_RESULT],
            "message": row[Col.MESSAGE].strip(),
        }
    assert not names, f"msprobe's stage 2 left out {sorted(names)}"

    metric_keys = {"max_rel_err": CompareConst.MAX_REL_ERR, "mean_rel_err": CompareConst.MEAN_REL_ERR,
                   "rmse": CompareConst.RMSE, "small_value_err_ratio": CompareConst.SMALL_VALUE,
                   "eb": CompareConst.EB}
    thresholds = {level: {m: float(StandardConfig.get_benchmark_ratio_threshold(k, level=level))
                          for m, k in metric_keys.items()} for level in LEVEL_APIS}
    constants = {}
    for dname, dtype in DTYPES.items():
        bench_np = torch.zeros(1, dtype=BENCH_DTYPE[dname]).numpy()
        _, with_eps = get_abs_bench_with_eps(bench_np, dtype)
        constants[dname] = {
            "small_value": float(StandardConfig.get_small_value(dtype, CompareConst.BENCHMARK)),
            "small_value_atol": float(StandardConfig.get_small_value_atol(dtype, CompareConst.BENCHMARK)),
            "minimum_err": float(StandardConfig.get_minmum_err(str(dtype))),
            "rel_eps": float(with_eps[0]),
        }
    return {
        "msprobe": {"package": "mindstudio-probe", "version": build.VERSION, "build_commit": build.COMMIT_ID,
                    "build_date": build.BUILD_DATE, "torch": torch.__version__, "numpy": np.__version__,
                    "python": platform.python_version()},
        "constants": constants,
        "thresholds": thresholds,
        "api_levels": {op: StandardConfig.get_api_level(op)
                       for op in LAYER_OPS + ("npu_fusion_attention", "scatter_", "matmul")},
    }


def main() -> int:
    try:
        import msprobe  # noqa: F401
    except ImportError:
        print("msprobe is not installed: run this in the venv named in this script's docstring", file=sys.stderr)
        return 2
    all_cases = cases()
    with tempfile.TemporaryDirectory() as tmp:
        meta = run_msprobe(all_cases, Path(tmp))
    doc = {
        "about": "msprobe's own benchmark-standard results on fixed triples; written by "
                 "tools/record_msprobe_reference.py, read by tests/test_ascend_standard_vs_msprobe.py",
        **meta,
        "command": "/tmp/msprobe-venv/bin/python tools/record_msprobe_reference.py",
        "level_api_names": {level: api for level, (_, api) in LEVEL_APIS.items()},
        "cases": all_cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    print(f"wrote {len(all_cases)} cases to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
