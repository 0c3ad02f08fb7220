"""report.html in a real headless browser (Debian's chromium): the page renders offline, with its
title, banner, tables and the three plots."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from conformance.report.artifacts import write_html

from sample_report import sample_report  # tests/ is on sys.path

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
