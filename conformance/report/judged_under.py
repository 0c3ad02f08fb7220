"""What a report was judged under, and how two reports differ in it: `report merge` and `diff` compare
like with like, and refuse (exit 2, naming the difference) reports judged under different settings or
of different code unless the user asks to mix them, and then show every input's settings."""

from __future__ import annotations

import json


def _subject(run: dict, key: str) -> str:
    subject = run.get(key) or {}
    spec = subject.get("spec") or "the project's own"
    sha = subject.get("sha256")
    return f"{spec} (sha256 {sha[:12]})" if sha and subject.get("name") != "own" else spec


def _policy(run: dict) -> str:
    policy = dict(run.get("tolerance_policy") or {})
    gating = policy.pop("gating", None)
    return json.dumps({k: v for k, v in policy.items() if k != "hardware"}, sort_keys=True) + \
        f" gating {json.dumps(gating, sort_keys=True)}"


#: Each setting that decides a verdict: its label and how to read it from a report.
SETTINGS = (
    ("backend", lambda r: str(r["run"].get("backend"))),
    ("tolerance policy", lambda r: _policy(r["run"])),
    ("planted bug", lambda r: str(r["run"].get("planted") or (r.get("fuzz") or {}).get("planted") or "none")),
    ("shape space", lambda r: str(r["run"].get("shape_space", "auto"))),
    ("layer under test", lambda r: _subject(r["run"], "layer")),
    ("runner under test", lambda r: _subject(r["run"], "runner")),
    ("emulated CANN", lambda r: str((r["run"].get("cann_emulated") or {}).get("version", "-"))),
)


def judged_under(report: dict) -> dict[str, str]:
    return {label: read(report) for label, read in SETTINGS}


def differences(reports: list[dict], names: list[str]) -> list[str]:
    """One line per setting that is not the same in every report: "<setting>: <name> <value>, ..."."""
    seen = [judged_under(r) for r in reports]
    lines = []
    for label, _ in SETTINGS:
        values = [s[label] for s in seen]
        if len(set(values)) > 1:
            lines.append(f"{label}: " + "; ".join(f"{name}: {value}" for name, value in zip(names, values)))
    return lines
