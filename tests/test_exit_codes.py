"""One exit code per outcome, the same in every subcommand (conformance.cli.exit_codes), and in --help."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_helpers import run_cli
from sample_report import sample_report  # tests/ is on sys.path

from conformance import cli
from conformance.cli import exit_codes
from conformance.formatting import dumps


def _write(path, report):
    path.write_text(dumps(report), encoding="utf-8")
    return path


def test_codes_are_distinct_and_documented_in_every_help():
    codes = [exit_codes.PASSED, exit_codes.FAILED, exit_codes.USAGE, exit_codes.NO_NPU, exit_codes.INTERNAL,
             exit_codes.INTERRUPTED]
    assert len(set(codes)) == len(codes) == 6
    parser = cli.build_parser()
    assert exit_codes.HELP in " ".join(parser.format_help().split())
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in sub.choices.items():
        text = " ".join(command.format_help().split())
        assert "exit status: 0 passed, 1 failed" in text and "5 interrupted" in text, name
        assert command.description, f"{name} has no description in --help"


def test_usage_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["no-such-command"])
    assert info.value.code == exit_codes.USAGE
    assert cli.main(["report", str(tmp_path / "none.json")]) == exit_codes.USAGE
    good = _write(tmp_path / "a.json", sample_report())
    assert cli.main(["diff", str(good), str(good), "--threshold", "-0.5"]) == exit_codes.USAGE
    assert "--threshold must be a finite number >= 0" in capsys.readouterr().err
    assert cli.main(["mutants", "--only", "nope", "--no-baseline"]) == exit_codes.USAGE


def test_a_red_verdict_exits_1_and_green_exits_0(tmp_path):
    report = _write(tmp_path / "r.json", sample_report())  # the sample is a failing run
    assert cli.main(["report", str(report)]) == exit_codes.PASSED  # rendering it worked
    assert cli.main(["info"]) == exit_codes.PASSED


def test_the_harness_crashing_is_internal_and_ctrl_c_is_interrupted(monkeypatch, capsys):
    def crash(args):
        raise RuntimeError("boom")

    def interrupt(args):
        raise KeyboardInterrupt

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), "info", crash))
    assert cli.main(["info"]) == exit_codes.INTERNAL
    err = capsys.readouterr().err
    assert "internal error (a bug in npu-conformance" in err and "RuntimeError: boom" in err
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), "info", interrupt))
    assert cli.main(["info"]) == exit_codes.INTERRUPTED


def _with_func(parser, name, func):
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    sub.choices[name].set_defaults(func=func)
    return parser


def test_run_with_a_broken_policy_is_a_usage_error_not_an_internal_one(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text("policy = 3\n")
    proc = run_cli(tmp_path, "run", "--backend", "emulated", "--out", tmp_path / "rep", "--tolerance-policy", policy,
                   "-k", "test_prefill_output")
    assert proc.returncode == exit_codes.USAGE, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "'policy' must be a table" in proc.stdout + proc.stderr
    assert "INTERNALERROR" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_version():
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("npu-conformance ")
