"""report.html in a real headless browser (Debian's chromium): the page renders offline, with its
title, banner, tables and the three plots; and at a 1400 px wide window nothing runs off the page or
is clipped (every table, caption and plot fits the content box, plots shown at the size they were
drawn, so their legend text is as large as drawn)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from sample_report import LEDGER, _run, sample_records, sample_report, sample_tests  # tests/ is on sys.path

from conformance.report.artifacts import write_html
from conformance.report.model import build_report

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed: apt-get install chromium")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BANNER_RED = (0xCF, 0x22, 0x2E)  # .failed banner background in report.html's CSS


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "report.html"
    write_html(sample_report(complete=True), path)
    return path


def test_report_renders_in_headless_chromium(tmp_path, page):
    import matplotlib.image as mpimg

    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (2000, 1280)
    rgb = np.round(pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    colours = np.unique(rgb, axis=0)
    assert len(colours) > 500, f"only {len(colours)} distinct colours: the page looks blank"
    # The verdict banner (CSS applied) is in the top of the page, and the page is mostly not background.
    top = rgb[: 300 * 1280]
    assert (np.abs(top.astype(int) - BANNER_RED).max(axis=1) <= 3).sum() > 10_000
    background = np.array([0xF4, 0xF6, 0xF8])
    assert (np.abs(rgb.astype(int) - background).max(axis=1) > 8).mean() > 0.3
    # Plot pixels: the error-vs-bound panels sit between ~800 and ~1900 px at this width.
    plots = np.round(pixels[800:1900, :, :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert len(np.unique(plots, axis=0)) > 300


def test_dom_has_the_title_banner_and_the_three_plots(tmp_path, page):
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert "<title>npu-conformance tolerance report: failed</title>" in dom
    assert re.search(r'<div class="banner failed">FAILED: 3 of 65 cases out of tolerance', dom)
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', dom)
    assert images == ["Observed error against allowed bound per phase and dtype", "Histogram of error/tolerance ratios",
                      "Ascend benchmark-standard ratios per metric, against their limits"]
    for heading in ("Run", "Summary per phase and dtype", "Error against tolerance", "Worst cases (failures first)",
                    "Hazards", "Tests"):
        assert f"<h2>{heading}</h2>" in dom


# Measures the laid-out page (in a copy of it made by the test: report.html itself has no script).
# Every <details> is opened first, so folded case details are measured too. An element "outside" sits
# past the content box of <main> (the page's column); an "overflowing" one holds content wider than
# itself (clipped or spilling over its neighbours); a "scaled" image is shown smaller than drawn.
PROBE = """
window.addEventListener("load", () => {
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const main = document.querySelector("main"), style = getComputedStyle(main), box = main.getBoundingClientRect();
  const left = box.left + parseFloat(style.paddingLeft), right = box.right - parseFloat(style.paddingRight);
  const name = (el) => el.tagName.toLowerCase() + (el.className ? "." + String(el.className).trim() : "") + " "
    + JSON.stringify((el.textContent || el.alt || "").trim().slice(0, 60));
  const out = {viewport: document.documentElement.clientWidth, scroll_width: document.documentElement.scrollWidth,
               outside: [], overflowing: [], scaled: [], captions: []};
  for (const el of main.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > right + 0.5 || r.left < left - 0.5) out.outside.push(name(el));
    if (getComputedStyle(el).display !== "inline" && el.clientWidth > 0
        && (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1 && el.tagName !== "DETAILS"
            && getComputedStyle(el).overflowY !== "visible")) out.overflowing.push(name(el));
  }
  for (const img of document.images) {
    if (img.width < img.naturalWidth - 1) out.scaled.push(img.alt + " " + img.width + "/" + img.naturalWidth);
  }
  for (const cap of document.querySelectorAll("figcaption")) {
    const r = cap.getBoundingClientRect();
    out.captions.push({text: cap.textContent, inside: r.left >= left - 0.5 && r.right <= right + 0.5,
                       height: r.height});
  }
  const pre = document.createElement("pre");
  pre.id = "layout-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


def _layout(tmp_path, page, width: int) -> dict:
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", f"<script>{PROBE}</script></body>"),
                      encoding="utf-8")
    dom = _chromium(tmp_path, "--dump-dom", f"--window-size={width},1000", probed.as_uri()).stdout
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.S)
    assert found, "the layout probe did not run"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def one_bucket_page(tmp_path_factory):
    """A run of one phase x dtype: the plots have a single panel (their captions were cut at both ends)."""
    records = [r for r in sample_records() if (r["phase"], r["dtype"]) == ("prefill", "float16")]
    report = build_report(_run(True), records, sample_tests(records), complete=True, acknowledgements=LEDGER)
    path = tmp_path_factory.mktemp("html-one") / "report.html"
    write_html(report, path)
    return path


@pytest.mark.parametrize("which", ["page", "one_bucket_page"])
def test_nothing_runs_off_the_page_or_is_clipped_at_1400px(tmp_path, request, which):
    layout = _layout(tmp_path, request.getfixturevalue(which), 1400)
    assert layout["scroll_width"] <= layout["viewport"], "the page scrolls sideways"
    assert layout["outside"] == [], "elements run past the page's column"
    assert layout["overflowing"] == [], "elements hold content wider than themselves (clipped or spilling)"
    assert layout["scaled"] == [], "plots shown smaller than drawn: their text would be smaller too"
    assert layout["captions"] and all(c["inside"] and c["height"] > 0 for c in layout["captions"])
    assert any("reported, not gating" in c["text"] for c in layout["captions"])
