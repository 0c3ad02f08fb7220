"""Writing the report folder: report.json (atomically, also as in-progress snapshots), report.html, summary.md.

junit.xml, the fourth artifact, is written by pytest's own junitxml plugin (the report hooks point
`--junitxml` at the folder when the user did not choose a path).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from conformance.formatting import dumps

JSON_NAME, HTML_NAME, MD_NAME, JUNIT_NAME = "report.json", "report.html", "summary.md", "junit.xml"
ARTIFACTS = (JSON_NAME, HTML_NAME, MD_NAME, JUNIT_NAME)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` in one step, so a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def clear_stale(out_dir: Path, names=ARTIFACTS) -> None:
    """Remove artifacts of an earlier run, so that an aborted run cannot leave an old green report."""
    for name in names:
        try:
            (out_dir / name).unlink()
        except FileNotFoundError:
            pass


def write_json(report: dict, out_dir: Path) -> Path:
    path = Path(out_dir) / JSON_NAME
    write_text_atomic(path, dumps(report))
    return path


def write_markdown(report: dict, path: Path) -> Path:
    from conformance.report.markdown import render_markdown  # the renderers load when a report is written

    write_text_atomic(Path(path), render_markdown(report))
    return Path(path)


def write_html(report: dict, path: Path) -> Path:
    from conformance.report.html import render_html  # matplotlib and jinja2: loaded when a page is rendered

    write_text_atomic(Path(path), render_html(report))
    return Path(path)


def write_artifacts(report: dict, out_dir: Path) -> dict[str, Path]:
    """report.json, summary.md and report.html for `report` in `out_dir`."""
    out_dir = Path(out_dir)
    return {"json": write_json(report, out_dir), "md": write_markdown(report, out_dir / MD_NAME),
            "html": write_html(report, out_dir / HTML_NAME)}
