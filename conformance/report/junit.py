"""junit.xml from a report (a merged fuzz report has no single pytest run whose junitxml to keep):
one testcase per test, with its failure or skip reason, and the case count as a property."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.formatting import num
from conformance.report.artifacts import write_text_atomic

#: What XML 1.0 forbids in text and attributes (its Char production allows tab, newline, carriage
#: return, and U+0020-U+D7FF, U+E000-U+FFFD, U+10000-U+10FFFF).
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` with every character XML 1.0 forbids written as \\xNN (a failure message holding an
    ANSI escape or a NUL would otherwise make junit.xml unparseable), as pytest's junitxml does."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def render_junit(report: dict) -> str:
    tests = report["tests"]
    failed = sum(1 for t in tests if t["outcome"] in ("failed", "xpassed"))
    errors = sum(1 for t in tests if t["outcome"] == "error")
    skipped = sum(1 for t in tests if t["outcome"] in ("skipped", "xfailed"))
    suite = ET.Element("testsuite", name="npu-conformance", tests=str(len(tests)), failures=str(failed),
                       errors=str(errors), skipped=str(skipped),
                       time=f"{sum(num(t.get('duration_s') or 0) for t in tests):.3f}")
    for t in tests:
        path, _, name = xml_text(t["test_id"]).partition("::")
        case = ET.SubElement(suite, "testcase", classname=path.removesuffix(".py").replace("/", "."), name=name,
                             time=f"{num(t.get('duration_s') or 0):.3f}")
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="cases", value=str(t.get("cases") or 0))
        reason = xml_text(t.get("reason") or "")
        if t["outcome"] in ("failed", "xpassed"):
            ET.SubElement(case, "failure", message=reason.splitlines()[0] if reason else t["outcome"]).text = reason
        elif t["outcome"] == "error":
            ET.SubElement(case, "error", message=reason.splitlines()[0] if reason else "error").text = reason
        elif t["outcome"] in ("skipped", "xfailed"):
            ET.SubElement(case, "skipped", message=reason)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write_junit(report: dict, path: Path) -> Path:
    write_text_atomic(Path(path), render_junit(report))
    return Path(path)
