"""A synthetic report with every feature a renderer must show: failures (out of tolerance, NaN
output, a cache mismatch, nondeterministic), a case outside the Ascend standard that does not gate, an
erroring case, hazards, skipped and failed tests, optionally an incomplete run. Used by the report tests
(`from sample_report import ...`: pytest puts tests/ on sys.path) and to draw docs/report-screenshot.png.
Numbers are made up (seeded), shaped exactly like the records conformance.judge.outcome.Outcome.record()
produces.
"""

from __future__ import annotations

import hashlib
import math
import random

import torch

from conformance.judge.ascend_standard import GATING_METRICS, MINIMUM_ERR, limits
from conformance.report.model import build_report

_NOTE = {"op": "torch_npu.npu_fused_infer_attention_score_v2", "argument": "inner_precise",
         "rule": "bfloat16 ignores the precision bit of inner_precise", "code": "fia/bf16-inner-precise",
         "inferred": False,
         # the real sources, long unbreakable paths included: the page must wrap them, not run off the edge
         "source": "hicann/ops-transformer attention/prompt_flash_attention/op_host/prompt_flash_attention_tiling.cpp "
                   "L4016-4019",
         "detail": "got 1"}
_HAZARDS = [
    {"op": "torch_npu.scatter_update_", "argument": "indices", "code": "scu/overlapping-targets",
     "rule": "duplicate (overlapping) targets: the result at repeated positions is not guaranteed",
     "source": "hicann/ops-nn index/scatter/docs/aclnnInplaceScatterUpdate.md", "inferred": False,
     "detail": "row 3 -> (11, 0)",
     "acknowledgement": "graph-padding-dummy-slot", "accepted": True},
    {"op": "torch_npu.npu_fused_infer_attention_score_v2", "argument": "atten_mask", "code": "fia/mask-content",
     "rule": "the optimized mask must hold True strictly above the diagonal", "inferred": True,
     "source": "hicann/ops-transformer prompt_flash_attention_s1s2_bns1_mla_baseapi.h L1188-1240",
     "detail": "", "acknowledgement": None, "accepted": False},
]
LEDGER = [
    {"id": "graph-padding-dummy-slot", "op": "torch_npu.scatter_update_", "code": "scu/overlapping-targets",
     "phases": ["decode_graph"], "reason": "padded rows all write the dummy slot by design", "link": "sample"},
    {"id": "old-entry", "op": "torch_npu._npu_reshape_and_cache", "code": "rac/duplicate-slots", "phases": [],
     "reason": "an entry nothing needs any more", "link": "sample"},
]


def _run(complete: bool, require_npu: bool = False) -> dict:
    return {
        "tool_version": "0.1.0", "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:01:40+00:00" if complete else None, "duration_s": 100.0,
        "backend": "emulated", "backend_requested": "auto", "backend_reason": "auto: no usable NPU (sample)",
        "device": "cpu (x86_64, emulated kernels)",
        "npu": {"usable": False, "device_count": 0, "device_name": None, "error": "torch-npu is not installed"},
        "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "torch_npu": None, "cann": None,
                     "hypothesis": "6.155.2", "pytest": "9.0.3"},
        "hypothesis": {"profile": "dev", "seed": 1234, "max_examples": 8},
        "strict_contracts": False, "require_npu": require_npu,
        "tolerance_policy": {"source": "default",
                             "default": {"k": 2.0, "mean_k": 1.5, "ulps": 2.0, "floor": 1e-05, "source": "default"},
                             "per_dtype": {}, "hardware": {},
                             "gating": {"standards": "dual", "determinism": "gate", "ascend_level": "L1"}},
        "git_commit": "0123456789abcdef0123456789abcdef01234567", "host": "sample", "platform": "Linux",
        "workers": None, "pytest_args": ["--pyargs", "conformance.suite"], "pytest_exitstatus": 1 if complete else 2,
        "failures_dir": "conformance-report/failures",
    }


def _ascend(rng: random.Random, dtype: str, margin: float, nonfinite: bool) -> dict:
    """Benchmark-standard metrics whose worst gating metric sits at `margin` x its limit."""
    bounds = limits("L1")
    base = {"small_value_err_ratio": rng.uniform(0.3, 1.0), "rmse": 2.0**-9 * rng.uniform(0.5, 2),
            "max_rel_err": 2.0**-7 * rng.uniform(1, 8), "mean_rel_err": 2.0**-10 * rng.uniform(0.5, 2),
            "eb": rng.uniform(0, 0.05)}
    floor = MINIMUM_ERR[getattr(torch, dtype)]
    worst = rng.choice(GATING_METRICS)
    ratios = {m: (margin if m == worst else margin * rng.uniform(0.2, 0.9)) * bounds[m] for m in GATING_METRICS}
    ratios["eb"] = rng.uniform(0.5, 1.5)
    kernel = {m: ratios[m] * max(base[m], floor) for m in ratios}
    counts = {"elements": 4096, "small_values": rng.randint(0, 12)}
    reasons = [f"{m} ratio {ratios[m]:.3f} exceeds {bounds[m]:g}" for m in GATING_METRICS if ratios[m] > bounds[m]]
    if nonfinite:
        reasons.append("128 output element(s) are NaN/Inf where the golden is finite")
    return {"level": "L1", "kernel": {**kernel, **counts, "nonfinite": 128 if nonfinite else 0},
            "baseline": {**base, **counts, "nonfinite": 0}, "ratios": ratios, "limits": bounds, "minimum_err": floor,
            "margin": math.inf if nonfinite else margin, "worst_metric": worst,
            "verdict": "fail" if reasons else "pass", "reasons": reasons}


def _record(rng: random.Random, i: int, phase: str, dtype: str, test_id: str, ratio: float, *,
            mean_ratio: float | None = None, nonfinite: bool = False, cache_bad: bool = False,
            hazards: list[dict] = (), notes: list[dict] = (), ascend_margin: float | None = None,
            nondeterministic: bool = False) -> dict:
    eps = {"float16": 2**-10, "bfloat16": 2**-7, "float32": 2**-23}[dtype]
    base_max = eps * rng.uniform(0.5, 4)
    bound = max(2 * base_max + 2 * eps * 2, 1e-5)
    max_err = math.inf if nonfinite else ratio * bound
    mean_ratio = ratio * rng.uniform(0.3, 0.9) if mean_ratio is None else mean_ratio
    mean_bound = max(1.5 * base_max / 8, 1e-5)
    batch = rng.randint(1, 5)
    lens = sorted(rng.randint(1, 300) for _ in range(batch))
    worst_seq = rng.randrange(batch)
    out_verdict = "fail" if (ratio > 1 or mean_ratio > 1 or nonfinite) else "pass"
    reasons = []
    if nonfinite:
        reasons.append("1 row(s) hold NaN/Inf (first: row 3)")
    if ratio > 1 and not nonfinite:
        reasons.append(f"max error {max_err:.3e} exceeds the bound {bound:.3e} (ratio {ratio:.3f}; the k x "
                       "baseline term binds)")
    if mean_ratio > 1:
        reasons.append(f"mean error exceeds 1.5 x baseline mean (ratio {mean_ratio:.3f})")
    caches = [{"name": name, "slots": 256, "mismatched_slots": 2 if cache_bad and name == "v_cache" else 0,
               "first_mismatches": [{"block": 3, "offset": 5}] if cache_bad and name == "v_cache" else [],
               "verdict": "fail" if cache_bad and name == "v_cache" else "pass",
               "reasons": ["2 slot(s) differ from a correct write (first: block 3 offset 5)"]
               if cache_bad and name == "v_cache" else []} for name in ("k_cache", "v_cache")]
    own = random.Random(f"ascend/{i}")  # its own stream: the other sampled numbers stay as they were
    ascend = _ascend(own, dtype, ratio * own.uniform(0.05, 0.4) if ascend_margin is None else ascend_margin, nonfinite)
    determinism = {"runs": 2, "verdict": "pass", "differences": [], "reasons": []}
    if nondeterministic:
        determinism = {"runs": 2, "verdict": "fail", "reasons": [
            "nondeterministic: 37 output element(s) differ between runs on the same inputs; first at row 2 "
            "(sequence 0), head 5, dim 17: 0.4140625 then 0.4150390625"],
            "differences": [{"tensor": "output", "elements": 37, "row": 2, "seq": 0, "head": 5, "dim": 17,
                             "first": 0.4140625, "second": 0.4150390625}]}
    failed_checks = (["output"] if out_verdict == "fail" else []) + (["v_cache"] if cache_bad else []) + (
        ["hazards"] if any(not h["accepted"] for h in hazards) else []) + (["determinism"] if nondeterministic else [])
    verdict = "fail" if failed_checks else "pass"
    golden = rng.uniform(-3, 3)
    case = {"phase": phase, "num_heads": 8, "num_kv_heads": 2, "head_dim": 128, "dtype": dtype, "block_size": 128,
            "num_blocks": 12, "seq_lens": lens, "block_tables": [[1 + b] for b in range(batch)], "seed": i,
            "outlier_rows": [], "outlier_scale": 8.0, "max_num_seqs": 8 if phase == "decode_graph" else 0,
            "table_width": 4 if phase == "decode_graph" else 0, "scale": None}
    worst_ratio_total = math.inf if nonfinite else max(ratio, mean_ratio)
    return {
        "case_id": hashlib.sha1(f"{phase}/{dtype}/{i}".encode()).hexdigest()[:12], "phase": phase, "dtype": dtype,
        "backend": "emulated", "property": phase, "test_id": test_id,
        "shape": {"num_heads": 8, "num_kv_heads": 2, "head_dim": 128, "block_size": 128},
        "lengths": {"batch": batch, "min": lens[0], "max": lens[-1], "total": sum(lens)},
        "ratio": worst_ratio_total, "bound": bound, "verdict": verdict, "failed_checks": failed_checks,
        "verdicts": {"dual": out_verdict, "ascend": ascend["verdict"], "determinism": determinism["verdict"]},
        "ascend_ratio": ascend["margin"], "ascend": ascend, "determinism": determinism,
        "output": {"dtype": dtype, "rows": sum(lens), "max_abs_err": max_err, "mean_abs_err": mean_ratio * mean_bound,
                   "baseline_max_abs_err": base_max, "baseline_mean_abs_err": base_max / 8, "golden_absmax": 3.0,
                   "bound": bound, "mean_bound": mean_bound, "ratio": math.inf if nonfinite else ratio,
                   "bound_term": "k x baseline",
                   "mean_ratio": math.nan if nonfinite else mean_ratio, "worst_row": 3, "worst_seq": worst_seq,
                   "worst_head": rng.randrange(8),
                   "per_seq_ratio": [round(ratio * rng.uniform(0.1, 1), 4) for _ in range(batch)],
                   "worst_values": [{"row": 3, "seq": worst_seq, "head": 1, "dim": d,
                                     "out": math.nan if nonfinite else golden + max_err, "golden": golden,
                                     "baseline": golden + base_max, "abs_err": max_err} for d in (7, 64)],
                   "nonfinite_rows": [3] if nonfinite else [], "nonzero_empty_rows": [],
                   "policy": {"k": 2.0, "mean_k": 1.5, "ulps": 2.0, "floor": 1e-05, "source": "default"},
                   "verdict": out_verdict, "reasons": reasons},
        "caches": caches, "hazards": list(hazards), "notes": list(notes), "case": case, "case_file": None,
    }


def sample_records(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out, i = [], 0
    tests = {"prefill": "conformance/suite/test_prefill.py::test_prefill_output_and_cache_write",
             "decode_eager": "conformance/suite/test_decode.py::test_decode_eager_output_and_cache_write",
             "decode_graph": "conformance/suite/test_graph.py::test_decode_graph_session"}
    for phase in ("prefill", "decode_eager", "decode_graph"):
        for dtype in ("float16", "bfloat16", "float32"):
            for _ in range(rng.randint(4, 9)):
                i += 1
                ratio = 10 ** rng.uniform(-2.5, -0.1)
                notes = [_NOTE] if phase == "prefill" and dtype == "bfloat16" else []
                hazards = [_HAZARDS[0]] if phase == "decode_graph" and rng.random() < 0.3 else []
                out.append(_record(rng, i, phase, dtype, tests[phase], ratio, hazards=hazards, notes=notes))
    # The failures a report must put first.
    out.append(_record(rng, 901, "decode_eager", "bfloat16", tests["decode_eager"], 3.4))
    out.append(_record(rng, 902, "decode_graph", "float16", tests["decode_graph"], 0.5, nonfinite=True))
    out.append(_record(rng, 903, "prefill", "float16", tests["prefill"], 0.2, cache_bad=True))
    out.append(_record(rng, 905, "prefill", "bfloat16", tests["prefill"], 0.3, hazards=[_HAZARDS[1]]))
    out.append(_record(rng, 906, "decode_eager", "float16", tests["decode_eager"], 0.4, nondeterministic=True))
    # Within the dual reference, outside the Ascend standard: reported, not gating by default.
    out.append(_record(rng, 907, "prefill", "float16", tests["prefill"], 0.6, ascend_margin=1.3))
    error_case = dict(out[0]["case"], phase="decode_graph", dtype="float16", seed=904)
    out.append({"case_id": "0904deadbeef", "phase": "decode_graph", "dtype": "float16", "backend": "emulated",
                "verdict": "error", "ratio": None, "hazards": [], "case": error_case, "property": "decode_graph",
                "test_id": tests["decode_graph"],
                "case_file": "conformance-report/failures/decode_graph-0904deadbeef.json",
                "error": "ContractViolation: torch_npu.scatter_update_: argument 'updates': dim 0 must be <= dim 0 "
                         "of self (data) (4 > 3) [source: hicann/ops-nn aclnnInplaceScatterUpdate.md]"})
    return out


def sample_tests(records: list[dict]) -> list[dict]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["test_id"]] = counts.get(r["test_id"], 0) + 1
    tests = []
    for test_id, n in counts.items():
        bad = any(r["verdict"] != "pass" for r in records if r["test_id"] == test_id)
        tests.append({"test_id": test_id, "outcome": "failed" if bad else "passed", "duration_s": 12.5,
                      "reason": "AssertionError: \nprefill float16 Hq=8 ... out of tolerance" if bad else None,
                      "cases": n, "worker": None})
    tests.append({"test_id": "conformance/suite/test_npu_only.py::test_on_hardware", "outcome": "skipped",
                  "duration_s": 0.0, "reason": "needs a real NPU: run with --backend npu on an Ascend machine",
                  "cases": 0, "worker": None})
    tests.append({"test_id": "conformance/suite/test_contract.py::test_corrupted_contexts_are_refused",
                  "outcome": "passed", "duration_s": 3.0, "reason": None, "cases": 0, "worker": None})
    return tests


def sample_report(*, complete: bool = True, seed: int = 7) -> dict:
    """A schema-v2 report (JSON form) built from synthetic records."""
    records = sample_records(seed)
    tests = sample_tests(records)
    return build_report(_run(complete), records, tests, complete=complete,
                        incomplete_reason=None if complete else "interrupted (KeyboardInterrupt)",
                        tests_collected=len(tests) + (0 if complete else 3), acknowledgements=LEDGER, full_run=True)
