"""The kill matrix as JSON, Markdown ("What it catches") and a rich table."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from conformance.mutants.catalogue import LOCATIONS, Mutant
from conformance.mutants.runner import SUITE_LAST, SUITE_ORDER, MutantResult

SCHEMA = "npu-conformance-mutants/1"
LOCATION_ORDER = tuple(LOCATIONS)  # what conformance.cli.mutants sorts --list by
_GITHUB = re.compile(r"https://github\.com/([^/\s]+/[^/\s]+)/(?:issues|pull)/(\d+)")


def short_source(source: str) -> str:
    """owner/repo#N for GitHub issue/PR links, owner/repo for other GitHub links, else the text."""
    url, _, rest = source.partition(" ")
    match = _GITHUB.match(url)
    if match:
        return f"{match.group(1)}#{match.group(2)}"
    if url.startswith("https://github.com/"):
        return url.removeprefix("https://github.com/") + (f" {rest}" if rest else "")
    return source


def markdown_source(source: str) -> str:
    url, _, rest = source.partition(" ")
    if not url.startswith("https://"):
        return source
    label = short_source(url)
    return f"[{label}]({url})" + (f" {rest}" if rest else "")


def short_test(test_id: str | None) -> str:
    if not test_id:
        return ""
    path, _, name = test_id.partition("::")
    return f"{Path(path).stem}::{name.split('::')[0]}"


def summary(results: list[MutantResult]) -> dict:
    killed = [r for r in results if r.killed]
    counts = [r.cases_to_kill for r in killed if r.cases_to_kill is not None]
    return {
        "total": len(results), "killed": len(killed),
        "survived": [r.name for r in results if r.status == "survived"],
        "errors": [r.name for r in results if r.status == "error"],
        "median_cases_to_kill": statistics.median(counts) if counts else None,
        "seconds": round(sum(r.seconds for r in results), 1),
    }


def matrix(mutants: list[Mutant], results: list[MutantResult], *, profile: str, seed: int | None,
           modules: list[str], baseline: MutantResult | None, seconds: float, explicit: bool = True) -> dict:
    rows = []
    for mutant, result in zip(mutants, results):
        rows.append({"name": mutant.name, "phase": mutant.phase, "via": mutant.via, "location": mutant.location,
                     "bug_class": mutant.bug_class,
                     "summary": mutant.summary, "needs": mutant.needs, "sources": list(mutant.sources),
                     **{k: v for k, v in result.as_dict().items() if k != "name"}})
    return {
        "schema": SCHEMA, "backend": "emulated", "profile": profile, "seed": seed,
        "derandomized": seed is None, "explicit_examples": explicit, "suite": modules, "seconds": round(seconds, 1),
        "baseline": None if baseline is None else baseline.as_dict(),
        "summary": summary(results), "mutants": rows,
    }


def write(data: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "mutants.json", out / "mutants.md"
    json_path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    md_path.write_text(to_markdown(data), encoding="utf-8")
    return json_path, md_path


def _cases(row: dict) -> str:
    if row["status"] != "killed":
        return ""
    total, within = row.get("cases_to_kill"), row.get("cases_in_property")
    return f"{total}" if total == within else f"{total} ({within} in the property)"


def _size(row: dict) -> str:
    c = row.get("counterexample")
    return f"B={c['batch']}, {c['total_tokens']} tokens" if c else ""


def to_markdown(data: dict) -> str:
    return "\n".join(["# What it catches", "", *_intro(data), *_table(data), "", _legend(), ""])


def _intro(data: dict) -> list[str]:
    s = data["summary"]
    randomness = "derandomized" if data["derandomized"] else f"seed {data['seed']}"
    if not data.get("explicit_examples", True):
        randomness += ", generated cases only (the suite's @example cases skipped)"
    lines = [
        f"Planted bugs in the production layer, run against the conformance suite on the emulated backend "
        f"(hypothesis profile `{data['profile']}`, {randomness}, "
        f"no example database; the suite stops at the first failing property). "
        f"**killed {s['killed']}/{s['total']}**; median cases to kill {s['median_cases_to_kill']}; "
        f"{data['seconds']} s in all.",
        "",
    ]
    base = data.get("baseline")
    if base is not None:
        verdict = "passes" if base["status"] == "survived" else f"FAILS ({base['status']}: {base['killed_by']})"
        lines += [f"Unmutated layer, same runs: {verdict} ({base['cases_run']} cases, {base['seconds']:.0f} s).", ""]
    return lines


def _table(data: dict) -> list[str]:
    lines = ["| mutant | bug class | source | killed by | caught as | cases to kill | counterexample |",
             "|---|---|---|---|---|---|---|"]
    for location in LOCATION_ORDER:
        group = [row for row in data["mutants"] if _location(row) == location]
        if group:
            killed = sum(row["status"] == "killed" for row in group)
            lines.append(f"| **{location} ({LOCATIONS[location]})** ({killed}/{len(group)} killed) | | | | | | |")
            lines += [_table_row(row) for row in group]
    return lines


def _table_row(row: dict) -> str:
    sources = ", ".join(markdown_source(x) for x in row["sources"])
    killed_by = f"`{short_test(row['killed_by'])}`" if row["status"] == "killed" else f"**{row['status'].upper()}**"
    return (f"| `{row['name']}` | {row['bug_class']} | {sources} | {killed_by} | {row.get('how') or ''} | "
            f"{_cases(row)} | {_size(row)} |")


def _legend() -> str:
    first = ", ".join(m.removeprefix("test_") for m in SUITE_ORDER + SUITE_LAST)
    return (f"Cases to kill: cases judged from the start of the run (cheap properties first: {first}) up to and "
            "including the first failing one. "
            "Counterexample: the last failing case of the killing property (hypothesis' shrunk example).")


def _location(row: dict) -> str:
    return row.get("location", "layer")  # a row of a matrix written before rows had a location


def print_table(data: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"planted bugs vs suite (profile {data['profile']})", show_lines=False)
    for column, kw in (("mutant", {}), ("where", {}), ("phase", {}), ("result", {}), ("killed by", {}),
                       ("caught as", {}), ("cases", {"justify": "right"}), ("counterexample", {}),
                       ("s", {"justify": "right"})):
        table.add_column(column, **kw)
    for row in data["mutants"]:
        style = {"killed": "green", "survived": "bold red", "error": "bold yellow"}[row["status"]]
        table.add_row(row["name"], _location(row), row["phase"], f"[{style}]{row['status']}[/]",
                      short_test(row["killed_by"]), row.get("how") or "", _cases(row), _size(row),
                      f"{row['seconds']:.1f}")
    console.print(table)
