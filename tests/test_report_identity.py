"""What was judged: report.html's banner area and summary.md name the layer under test and the runner from
run.layer / run.runner ("<spec> (<file>, sha256 <12 hex>, git <12 hex>[, dirty])"); without them, the
project's own layer."""

from __future__ import annotations

import copy
import re
from html import unescape

import pytest
from sample_report import sample_report  # tests/ is on sys.path

from conformance.report import render_html, render_markdown
from conformance.report.html import meta_items

LAYER = {"spec": "nanovllm.layers.attention:Attention", "name": "Attention",
         "file": "/src/nano-vllm/nanovllm/layers/attention.py", "sha256": "ab" * 32,
         "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": True}}
RUNNER = {"spec": "nanovllm.engine.model_runner:ModelRunner", "name": None,
          "file": "/src/nano-vllm/nanovllm/engine/model_runner.py", "sha256": "cd" * 32,
          "git": {"commit": "89abcdef0123456789abcdef0123456789abcdef", "dirty": False}}


@pytest.fixture(scope="module")
def judged():
    report = copy.deepcopy(sample_report())  # schema validation is not the point here
    report["run"].update(layer=LAYER, runner=RUNNER)
    return report


def _text(fragment: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def _banner_area(html: str) -> str:
    return html[html.index('<div class="banner'):html.index("<h2>Run</h2>")]


def test_html_names_the_layer_and_runner_under_test(judged):
    lines = [_text(x) for x in re.findall(r'<div class="identity">.*?</div>', _banner_area(render_html(judged)), re.S)]
    assert lines == ["layer under test: nanovllm.layers.attention:Attention (/src/nano-vllm/nanovllm/layers/"
                     "attention.py, sha256 abababababab, git 0123456789ab, dirty)",
                     "runner: nanovllm.engine.model_runner:ModelRunner (/src/nano-vllm/nanovllm/engine/"
                     "model_runner.py, sha256 cdcdcdcdcdcd, git 89abcdef0123)"]


def test_summary_md_names_the_layer_and_runner_under_test(judged):
    md = render_markdown(judged)
    assert ("layer under test: `nanovllm.layers.attention:Attention` (`/src/nano-vllm/nanovllm/layers/attention.py`, "
            "sha256 abababababab, git 0123456789ab, dirty) · runner: `nanovllm.engine.model_runner:ModelRunner` "
            "(`/src/nano-vllm/nanovllm/engine/model_runner.py`, sha256 cdcdcdcdcdcd, git 89abcdef0123)") in md


@pytest.mark.parametrize("absent", [None, "missing"])
def test_without_them_the_projects_own_layer_is_named(absent):
    report = copy.deepcopy(sample_report())
    if absent is None:
        report["run"].update(layer=None, runner=None)
    own = "layer under test: npu_attention.attention:Attention (the project's own)"
    lines = [_text(x) for x in re.findall(r'<div class="identity">.*?</div>', _banner_area(render_html(report)), re.S)]
    assert lines == [own]
    assert own.replace("npu_attention.attention:Attention", "`npu_attention.attention:Attention`") in \
        render_markdown(report)


def test_a_partial_identity_shows_what_it_has(judged):
    report = copy.deepcopy(judged)
    report["run"]["layer"] = {"spec": "my_layer:Attention", "name": None, "file": None, "sha256": None, "git": None}
    report["run"].pop("runner")
    lines = [_text(x) for x in re.findall(r'<div class="identity">.*?</div>', _banner_area(render_html(report)), re.S)]
    assert lines == ["layer under test: my_layer:Attention"]


def test_the_emulated_cann_release_is_shown_next_to_the_installed_one():
    report = copy.deepcopy(sample_report())
    report["run"]["cann_emulated"] = {"version": "8.5.0", "source": "cannmirror/ops-transformer@6ead121"}
    meta = dict(meta_items(report))
    assert meta["CANN"] == "- (emulating 8.5.0)"
    assert "CANN - (emulating 8.5.0)" in render_markdown(report)
    report["run"].update(cann_emulated=None, versions=report["run"]["versions"] | {"cann": "8.3.RC1"})
    assert "CANN 8.3.RC1 ·" in render_markdown(report)


def test_a_layer_file_git_does_not_track_makes_its_checkout_dirty(tmp_path):
    import subprocess

    from conformance.adapters.identity import git_state

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "tracked.py").write_text("x = 1\n")
    git("add", "tracked.py")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one file")
    clean = git_state(str(tmp_path), str(tmp_path / "tracked.py"))
    assert clean is not None and len(clean["commit"]) == 40 and clean["dirty"] is False
    (tmp_path / "layer.py").write_text("class Attention: ...\n")  # written, never committed
    assert git_state(str(tmp_path), str(tmp_path / "layer.py"))["dirty"] is True
