"""report.html comes from jinja2 templates with autoescape: the templates and report.css ship in the
package, the page inlines report.css verbatim (one offline file), and whatever a report holds (test ids,
rules, sources, errors, reasons, host names) reaches the page as text, never as markup."""

from __future__ import annotations

import copy
import re
from importlib import resources

from sample_report import sample_report  # tests/ is on sys.path

from conformance.report import render_html
from conformance.report.html import environment

EVIL = '<img src=x onerror="alert(1)">'
ESCAPED = "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"


def test_templates_and_css_ship_in_the_package():
    folder = resources.files("conformance.report").joinpath("templates")
    names = {p.name for p in folder.iterdir()}
    assert {"report.html", "report.css", "macros.html", "summary.html", "cases.html", "case_detail.html",
            "findings.html", "plots.html", "tests.html"} <= names
    for name in names:  # nothing in a template turns escaping off
        text = folder.joinpath(name).read_text(encoding="utf-8")
        assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text, name


def test_autoescape_is_on_for_every_template():
    env = environment()
    assert all(env.autoescape(name) for name in ("report.html", "report.css", "anything.txt"))


def test_the_page_inlines_report_css_verbatim():
    css = resources.files("conformance.report").joinpath("templates/report.css").read_text(encoding="utf-8")
    page = render_html(sample_report())
    style = re.search(r"<style>(.*?)</style>", page, re.S)[1]
    assert style.strip() == css.strip()
    assert page.count("<style>") == 1 and "<link" not in page and "<script" not in page


def test_every_value_from_a_report_is_escaped():
    report = copy.deepcopy(sample_report())
    report["verdict"]["reason"] += EVIL
    report["run"]["host"] = EVIL
    report["run"]["layer"] = {"spec": EVIL, "name": None, "file": "/x/" + EVIL + ".py", "sha256": None, "git": None}
    report["tests"][0]["reason"] = EVIL
    report["hazards"][0].update(rule=EVIL, source=EVIL)
    report["notes"][0]["example_detail"] = EVIL
    report["acknowledgements"][0]["reason"] = EVIL
    report["collection_errors"] = [{"nodeid": EVIL, "message": EVIL}]
    failing = next(r for r in report["records"] if r["verdict"] == "fail" and r["caches"])
    failing["caches"][1]["reasons"] = [EVIL]
    failing["output"]["reasons"] = [EVIL]
    failing["case"]["note"] = EVIL
    next(r for r in report["records"] if r["verdict"] == "error")["error"] = EVIL
    page = render_html(report)
    assert "<img src=x" not in page
    assert page.count(ESCAPED) >= 10
