"""Test your own layer: a layer from another code base, unmodified, under the harness (--layer, --layer-path,
--layer-context, adapter files, the npu_conformance.layers entry points), with the emulator standing in
for torch_npu / torchair, refusals that a layer swallows still failing its case, and the layer named in
every report, case file and replay. The layers are the fixture packages in tests/fixture_layers/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import cli, cli_env, run_process

from conformance.cli import exit_codes
from conformance.report import load_report

FIXTURES = Path(__file__).resolve().parent / "fixture_layers"
THREE_PHASES = "test_prefill_output or test_decode_eager_output or test_decode_graph_session"
NANOPORT = ("--layer", "nanoport.layers.attention:Attention", "--layer-path", FIXTURES,
            "--layer-context", "nanoport.utils.context")


def _run(tmp_path: Path, *args, select: str = THREE_PHASES) -> tuple[int, str, dict | None]:
    out = tmp_path / "report"
    code, text = cli(tmp_path, "run", "--backend", "emulated", "--profile", "dev", "--seed", "7", "-k", select,
                     "--out", out, *args)
    report = load_report(out / "report.json") if (out / "report.json").exists() else None
    return code, text, report


def _graph_configurations(report: dict) -> set[tuple]:
    """The engine configurations the graph steps of a report ran on (what one compile each stands for)."""
    return {(c["num_heads"], c["num_kv_heads"], c["head_dim"], c["dtype"], c["block_size"], c["num_blocks"],
             c["max_num_seqs"], c["table_width"])
            for r in report["records"] if r["phase"] == "decode_graph" and r.get("graph") for c in [r["case"]]}


def test_a_nano_vllm_style_layer_passes_every_phase_with_one_compile_per_configuration(tmp_path):
    code, text, report = _run(tmp_path, *NANOPORT, select=THREE_PHASES + " or upstream_flat_decode")
    assert code == exit_codes.PASSED, text[-3000:]
    assert {r["phase"] for r in report["records"]} == {"prefill", "decode_eager", "decode_graph"}
    assert report["totals"]["graph_compiles"] == len(_graph_configurations(report)) > 0, "one compile each"
    assert not any("GraphRecompiled" in (r.get("error") or "") for r in report["records"])
    layer = report["run"]["layer"]
    assert layer["spec"] == "nanoport.layers.attention:Attention"
    assert layer["file"] == str(FIXTURES / "nanoport" / "layers" / "attention.py")
    assert len(layer["sha256"]) == 64 and layer["context"] == "nanoport.utils.context"
    verdict = [line for line in text.splitlines() if line.startswith("PASSED: ")]
    assert verdict and verdict[-1].endswith("[layer under test nanoport.layers.attention:Attention]"), text[-2000:]
    own_only = [t for t in report["tests"] if "upstream_flat_decode" in t["test_id"]]
    assert own_only and own_only[0]["outcome"] == "skipped", own_only
    assert "nanoport.layers.attention:Attention" in own_only[0]["reason"], "the skip names the layer under test"


def test_a_layer_with_4d_caches_and_its_own_constructor_passes_through_an_adapter_file(tmp_path):
    code, text, report = _run(tmp_path, "--layer", "fourdim_adapter:ADAPTER", "--layer-path", FIXTURES)
    assert code == exit_codes.PASSED, text[-3000:]
    assert {r["phase"] for r in report["records"]} == {"prefill", "decode_eager", "decode_graph"}
    assert report["totals"]["graph_compiles"] == len(_graph_configurations(report)) > 0
    layer = report["run"]["layer"]
    assert layer["name"] == "fourdim" and layer["file"] == str(FIXTURES / "fourdim" / "attention.py")
    assert layer["caches"].startswith("key_cache/value_cache")


def test_a_layer_that_swallows_the_kernel_refusal_fails_naming_the_refused_call(tmp_path):
    code, text, report = _run(tmp_path, "--layer", "swallower.attention:Attention", "--layer-path", FIXTURES,
                              select="test_prefill_output")
    assert code == exit_codes.FAILED, text[-3000:]
    refused = [r for r in report["records"] if "refused" in (r.get("failed_checks") or [])]
    assert refused, "the fallback's result is right, so only the recorded refusal can fail the case"
    first = refused[0]
    assert first["lengths"]["batch"] >= 2  # at batch 1 per-request lengths are the cumulative ones
    assert first["output"]["verdict"] == "pass" and first["failed_checks"] == ["refused"]
    assert any("npu_fused_infer_attention_score_v2" in r and "actual_seq_qlen" in r for r in first["refusals"])
    assert "the kernel refused this call" in text


def test_a_planted_wrong_slot_fails_and_its_replay_reloads_the_layer_and_fails_again(tmp_path):
    engine = tmp_path / "engine"
    shutil.copytree(FIXTURES / "nanoport", engine / "nanoport")
    spec = "nanoport.layers.attention:OffsetAttention"
    code, text, report = _run(tmp_path, "--layer", spec, "--layer-path", engine, select="test_decode_eager_output")
    assert code == exit_codes.FAILED, text[-3000:]
    [case_file] = [r["case_file"] for r in report["records"] if r.get("case_file")][:1]
    saved = json.loads(Path(case_file).read_text())
    assert saved["judged_with"]["layer"]["spec"] == spec
    assert saved["judged_with"]["layer"]["layer_path"] == [str(engine)]
    code, text = cli(tmp_path, "replay", case_file)
    assert code == exit_codes.FAILED, text
    assert f"layer under test {spec}" in text and "changed since" not in text
    # The layer's file changed since: the replay judges the code as it is now, and says so.
    layer_file = engine / "nanoport" / "layers" / "attention.py"
    layer_file.write_text(layer_file.read_text() + "\n# edited after the case was saved\n")
    code, text = cli(tmp_path, "replay", case_file)
    assert code == exit_codes.FAILED and "changed since the case was saved" in text, text


def test_a_layer_registered_as_an_entry_point_is_selected_by_name(tmp_path):
    dist = tmp_path / "site" / "fixture_engine-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fixture-engine\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[npu_conformance.layers]\nfourdim = fourdim_adapter:ADAPTER\n")
    out = tmp_path / "report"
    code, text = cli(tmp_path, "run", "--backend", "emulated", "--profile", "dev", "-k", "test_prefill_output",
                     "--out", out, "--layer", "fourdim", "--layer-path", FIXTURES, pythonpath=tmp_path / "site")
    assert code == exit_codes.PASSED, text[-3000:]
    assert load_report(out / "report.json")["run"]["layer"]["spec"] == "fourdim"


@pytest.mark.parametrize(("args", "expected"), [
    (("--layer", "no_such_engine.attention:Attention"), "cannot import no_such_engine.attention"),
    (("--layer", "nanoport.layers.attention:NoSuchClass", "--layer-path", FIXTURES), "has no attribute 'NoSuchClass'"),
    (("--layer-context", "nanoport.utils.context"), "--layer-context needs --layer"),
    (("--layer", "fourdim.attention:PagedAttention", "--layer-path", FIXTURES), "pass --layer-context"),
    (("--layer", "nanoport.layers.attention:Attention", "--layer-path", "/no/such/dir"), "no such directory"),
    (("--layer", "nanoport", "--layer-path", FIXTURES), "entry-point group npu_conformance.layers"),
    (("--runner", "nanoport_runner_adapter", "--layer-path", FIXTURES), "must be MODULE:FUNCTION"),
    (("--cann-version", "7.0"), "the emulator has rules for"),
    (("--layer", "fourdim_adapter:build", "--layer-path", FIXTURES), "is called with no arguments and returns a"),
    (("--layer-path", FIXTURES), "needs --layer or --runner"),
])
def test_a_bad_selection_is_one_line_and_exit_2(tmp_path, args, expected):
    code, text, _ = _run(tmp_path, *args, select="test_prefill_output")
    assert code == exit_codes.USAGE, text[-2000:]
    assert expected in text and "Traceback" not in text, text[-2000:]


@pytest.mark.parametrize("command", [("fuzz", "--budget", "30s", "--plant", "decode_newest_token_dropped"),
                                     ("mutants",)])
def test_planted_bugs_stay_on_the_projects_own_layer(tmp_path, command):
    code, text = cli(tmp_path, *command, "--layer", "nanoport.layers.attention:Attention", "--layer-path", FIXTURES)
    assert code == exit_codes.USAGE and "own layer" in text and "Traceback" not in text, text[-2000:]


EMULATED_MODULES_AFTER_A_RUN = textwrap.dedent("""
    import sys
    from conformance import cli
    code = cli.main(sys.argv[1:])
    print("EMULATED_MODULES_LEFT", [m for m in ("torch_npu", "torchair", "torchair.ops") if m in sys.modules])
    raise SystemExit(code)
""")


def test_the_emulator_modules_are_gone_after_the_run(tmp_path):
    proc = run_process([sys.executable, "-c", EMULATED_MODULES_AFTER_A_RUN, "run", "--backend", "emulated",
                        "--profile", "dev", "-k", "test_prefill_output", "--out", str(tmp_path / "r"),
                        *map(str, NANOPORT)],
                       tmp_path, cli_env())
    assert proc.returncode == exit_codes.PASSED, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "EMULATED_MODULES_LEFT []" in proc.stdout


NPU_BACKEND_NEVER_INSTALLS = textwrap.dedent("""
    import sys
    from conformance.adapters.loading import SelectionError, load_layer
    try:
        load_layer("nanoport.layers.attention:Attention", sys.argv[1], backend="npu")
    except SelectionError as exc:
        print("REFUSED", exc)
    print("INSTALLED", "torch_npu" in sys.modules)
""")


def test_the_emulator_is_never_installed_under_the_npu_backend(tmp_path):
    proc = run_process([sys.executable, "-c", NPU_BACKEND_NEVER_INSTALLS, str(FIXTURES)], tmp_path, cli_env())
    assert "REFUSED" in proc.stdout and "needs torch_npu, which this machine does not have" in proc.stdout, (
        proc.stdout + proc.stderr)
    assert "INSTALLED False" in proc.stdout


def test_the_real_kernel_loader_refuses_the_emulator_modules():
    code = textwrap.dedent("""
        from conformance.platform import npu_modules
        from npu_attention import kernels
        npu_modules.install()
        try:
            kernels.load_backend("npu")
        except kernels.KernelUnavailable as exc:
            print("REFUSED", exc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=300)
    assert "REFUSED" in proc.stdout and "CPU emulator standing in for it" in proc.stdout, proc.stdout + proc.stderr


def test_an_op_the_emulator_does_not_model_fails_at_its_call_naming_it():
    code = textwrap.dedent("""
        from conformance.platform import npu_modules
        npu_modules.install()
        import torch_npu
        rms_norm = torch_npu.npu_rms_norm  # looking it up is fine: a layer may import it and never call it
        try:
            rms_norm(None, None)
        except NotImplementedError as exc:
            print("ONE LINE:", exc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=300)
    line = [x for x in proc.stdout.splitlines() if x.startswith("ONE LINE:")]
    assert line and "torch_npu.npu_rms_norm is not modelled by the CPU op emulator" in line[0], (
        proc.stdout + proc.stderr)
    assert "npu-conformance info" in line[0]


SWALLOWED_CALLS_ARE_RECORDED = textwrap.dedent("""
    from conformance import emulator
    from conformance.platform import backends, npu_modules  # backends registers "emulated"
    from npu_attention import kernels
    npu_modules.install()
    import torch_npu
    with kernels.use_backend("emulated"), emulator.record_hazards() as log:
        for call in (lambda: torch_npu.npu_rms_norm(None, None),  # not modelled
                     lambda: torch_npu.scatter_update_(no_such_keyword=1)):  # not an argument of the op
            try:
                call()
            except Exception:  # noqa: BLE001 - what a falling-back layer does
                pass
    print("REFUSALS", [type(exc).__name__ for exc in log.refusals])
""")


def test_a_swallowed_call_to_an_unmodelled_op_or_with_a_wrong_argument_is_still_recorded():
    proc = subprocess.run([sys.executable, "-c", SWALLOWED_CALLS_ARE_RECORDED], capture_output=True, text=True,
                          env=cli_env(), timeout=300)
    assert "REFUSALS ['NotModelled', 'TypeError']" in proc.stdout, proc.stdout + proc.stderr


NPU_TENSOR_IN_FORWARD = textwrap.dedent("""
    from types import SimpleNamespace
    import torch
    from conformance.judge.layer_run import LayerMadeNpuTensor, _forward_off_npu_device
    from conformance.platform import npu_modules
    npu_modules.install()
    def forward(context, q, k, v):
        return torch.zeros(1, device="npu")  # what the emulation cannot place
    try:
        _forward_off_npu_device(forward, None, SimpleNamespace(q=None, k=None, v=None))
    except LayerMadeNpuTensor as exc:
        print("ONE LINE:", exc)
""")


def test_a_layer_making_npu_tensors_in_forward_is_told_so_in_one_line():
    proc = subprocess.run([sys.executable, "-c", NPU_TENSOR_IN_FORWARD], capture_output=True, text=True,
                          env=cli_env(), timeout=300)
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("ONE LINE:")] or [proc.stdout + proc.stderr]
    assert "created a tensor on device 'npu' inside forward" in line and "device=q.device" in line, line
    assert len(line) < 300, "one line, not the dispatcher's list of backends"


def test_a_context_module_gets_every_field_the_runner_set_and_keeps_its_defaults_for_the_rest():
    from types import ModuleType, SimpleNamespace

    from conformance.adapters.layer import nano_vllm_context

    engine_context = ModuleType("engine_context")
    state = {"now": None}

    def set_context(is_prefill=False, max_seqlen_q=0, slot_mapping=None, actual_seq_lengths=None):
        state["now"] = SimpleNamespace(is_prefill=is_prefill, max_seqlen_q=max_seqlen_q, slot_mapping=slot_mapping,
                                       actual_seq_lengths=actual_seq_lengths)

    engine_context.set_context = set_context
    engine_context.get_context = lambda: state["now"]
    engine_context.reset_context = lambda: set_context()
    route = nano_vllm_context(engine_context)
    # What a runner set through the module and the harness read back: an engine-only field, and no
    # max_seqlen_q at all.
    built = SimpleNamespace(is_prefill=True, slot_mapping=[5, 6], actual_seq_lengths=[2])
    with route.install(built):
        seen = route.read()
        assert (seen.is_prefill, seen.slot_mapping, seen.actual_seq_lengths) == (True, [5, 6], [2])
        assert seen.max_seqlen_q == 0, "a field the Context lacks keeps set_context's default, not None"
    assert route.read().is_prefill is False


def test_diff_and_merge_refuse_reports_of_different_layers_unless_asked_to_mix(tmp_path):
    from sample_report import sample_report

    from conformance.formatting import dumps

    own, other = sample_report(), sample_report()
    other["run"]["layer"] = {"spec": "nanoport.layers.attention:Attention", "name": "Attention", "file": "/x.py",
                             "sha256": "ab" * 32, "git": None}
    (tmp_path / "own.json").write_text(dumps(own))
    (tmp_path / "other.json").write_text(dumps(other))
    code, text = cli(tmp_path, "diff", "own.json", "other.json")
    assert code == exit_codes.USAGE and "layer under test" in text and "nanoport.layers.attention" in text, text
    code, text = cli(tmp_path, "report", "merge", "own.json", "other.json", "--out", "merged")
    assert code == exit_codes.USAGE and "--mix" in text, text
    code, text = cli(tmp_path, "report", "merge", "own.json", "other.json", "--out", "merged", "--mix")
    assert code in (exit_codes.PASSED, exit_codes.FAILED) and "layer under test" in text, text
    merged = load_report(tmp_path / "merged" / "report.json")
    assert [m["judged_under"]["layer under test"] for m in merged["run"]["merged_from"]][1].startswith("nanoport")


@pytest.mark.parametrize(("spec", "passes"), [
    ("pfaifa.attention:Attention", True),  # prefill on npu_prompt_flash_attention, decode on npu_incre_...
    ("pfaifa.attention:ScaledTwiceAttention", False),
    ("scatterpa_adapter:ADAPTER", True),  # the cache written with npu_scatter_pa_kv_cache
    ("scatterpa_adapter:NEXT_SLOT", False),
])
def test_layers_on_the_other_op_families_pass_and_their_planted_mistakes_fail(tmp_path, spec, passes):
    code, text, report = _run(tmp_path, "--layer", spec, "--layer-path", FIXTURES, "--shape-space", "npu",
                              select="test_prefill_output or test_decode_eager_output")
    assert code == (exit_codes.PASSED if passes else exit_codes.FAILED), text[-3000:]
    assert {r["phase"] for r in report["records"]} == {"prefill", "decode_eager"}
    if not passes:
        failed = [r for r in report["records"] if r["verdict"] == "fail"]
        assert failed and all(r["verdict"] != "error" for r in report["records"]), "caught by the verdict, not a crash"
