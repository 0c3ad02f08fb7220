"""The report at the terminal: the per-bucket table `run`, `fuzz` and `report` print."""

from __future__ import annotations

from rich import box
from rich.table import Table

from conformance.formatting import fmt_ratio


def summary_table(report: dict) -> Table:
    """Worst error/tolerance ratio per phase x dtype, and the totals, as a rich table."""
    table = Table(title="error/tolerance per phase x dtype (ratio <= 1 passes)", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for name, justify in (("phase", "left"), ("dtype", "left"), ("cases", "right"), ("passed", "right"),
                          ("failed", "right"), ("errors", "right"), ("worst ratio", "right"),
                          ("worst case", "left")):
        table.add_column(name, justify=justify)
    for s in report["summaries"]:
        bad = s["failed"] + s["errors"]
        table.add_row(s["phase"], s["dtype"], str(s["cases"]), str(s["passed"]), str(s["failed"]), str(s["errors"]),
                      fmt_ratio(s["worst_ratio"]), s["worst_case_id"] or "-", style="bold red" if bad else None)
    t = report["totals"]
    table.add_row("all", "", str(t["cases"]), str(t["passed"]), str(t["failed"]), str(t["errors"]),
                  fmt_ratio(t["worst_ratio"]), t["worst_case_id"] or "-", style="bold", end_section=True)
    return table
