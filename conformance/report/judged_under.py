"""What a report was judged under, and how two reports differ in it: `report merge` and `diff` compare
like with like, and refuse (exit 2, naming the difference) reports judged under different settings or
of different code unless the user asks to mix them, and then show every input's settings."""

from __future__ import annotations

import hashlib
import json

from conformance.names import GRAPH_MODES


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


def _ledger(report: dict) -> str:
    """The acknowledgement ledger's entries (not where the file was): their count and a short digest."""
    entries = sorted(json.dumps({k: v for k, v in a.items() if k not in ("matched", "status")}, sort_keys=True)
                     for a in report.get("acknowledgements") or [])
    digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()[:10]
    return f"{len(entries)} entries (sha256 {digest})"


#: Each setting that decides a verdict: its label and how to read it from a report (a report written before a
#: setting was recorded had its default).
SETTINGS = (
    ("backend", lambda r: str(r["run"].get("backend"))),
    ("tolerance policy", lambda r: _policy(r["run"])),
    ("planted bug", lambda r: str(r["run"].get("planted") or (r.get("fuzz") or {}).get("planted") or "none")),
    ("shape space", lambda r: str(r["run"].get("shape_space", "auto"))),
    ("layer under test", lambda r: _subject(r["run"], "layer")),
    ("runner under test", lambda r: _subject(r["run"], "runner")),
    ("emulated CANN", lambda r: str((r["run"].get("cann_emulated") or {}).get("version", "-"))),
    ("strict contracts", lambda r: str(bool(r["run"].get("strict_contracts", False)))),
    ("graph mode", lambda r: str(r["run"].get("graph_mode") or GRAPH_MODES[0])),
    ("acknowledgements", _ledger),
)


def judged_under(report: dict) -> dict[str, str]:
    """The settings a report was judged under. A merged report's are its inputs' (a `--mix` merge keeps
    "mixed: a | b" where they differed, so merging or diffing it again cannot pass for like with like)."""
    own = {label: read(report) for label, read in SETTINGS}
    inputs = [i.get("judged_under") or {} for i in report["run"].get("merged_from") or []]
    for label in own:
        values = sorted({i.get(label, own[label]) for i in inputs} | {own[label]})
        if len(values) > 1:
            own[label] = "mixed: " + " | ".join(values)
    return own


def differences(reports: list[dict], names: list[str]) -> list[str]:
    """One line per setting that is not the same in every report: "<setting>: <name> <value>, ..."."""
    seen = [judged_under(r) for r in reports]
    lines = []
    for label, _ in SETTINGS:
        values = [s[label] for s in seen]
        if len(set(values)) > 1:
            lines.append(f"{label}: " + "; ".join(f"{name}: {value}" for name, value in zip(names, values)))
    return lines


def mixed_text(report: dict) -> str | None:
    """For a report merged with `--mix`: its sources and every setting they differed in, in one line."""
    mixed = {label: value for label, value in judged_under(report).items() if value.startswith("mixed: ")}
    if not mixed:
        return None
    sources = [str(i.get("source") or "?") for i in report["run"].get("merged_from") or []]
    return (f"merged with --mix from {', '.join(sources)}, judged under different settings: "
            + "; ".join(f"{label} {value}" for label, value in mixed.items()))
