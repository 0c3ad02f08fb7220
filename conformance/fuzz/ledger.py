"""A fuzz worker's record of what it judged: one record per judged case, the failures by signature, the
worst ratio per phase x dtype, and the case files on disk. No pytest and no torch here (the worker feeds
it every judgment; its tests feed it hand-made records).

- **One record per case.** Every judgment the harness reports counts: shrink steps and the other examples
  a test's own report leaves out included. A case judged again (hypothesis replaying its database,
  re-running an example while shrinking, a second property judging the same case) counts once, by
  case id. Its record holds the worst of its judgments (conformance.report.merge.worse_judgment: an
  error over a failure over a pass, then the higher ratio; the first on a tie), so a repeat never hides
  a failure. (A stateful-engine step is named by its Case, not by the cache it ran on: the same step on
  another cache history is the same case here.)
- **One truth.** The counts (`cases`; `judgments` counts repeats too), the worst ratio per bucket, the
  timeline and the failure counts are all read from these records; the worker hands them to the
  report session in place of the harness's own, so report.json says what the console says.
- **Counted only.** Past a few thousand records, passing ones beyond each bucket's worst
  `keep_per_bucket` are folded into the tally; their ids are remembered (with what each added to the
  tally), so a repeat still counts once, and a counted pass judged again as a failure becomes a record.
  Each bucket's worst ratio stays among the records.
- **Failures.** Each failing record counts toward its signature (conformance.fuzz.signatures). A
  signature's replay names its smallest case (conformance.report.merge.case_size: fewest tokens, then
  smallest batch). That case's file is read when it is judged and put back if the harness removes it
  (the harness keeps only the files its test report names); every other case file is removed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from conformance.formatting import rank
from conformance.fuzz.signatures import record_signature
from conformance.harness.case_file_pair import remove_case_file, state_path
from conformance.report.merge import case_size, worse_judgment
from conformance.report.model import TALLY_FIELDS, tally_records


def _bucket(record: dict) -> str:
    return f"{record['phase']}/{record['dtype']}"


def _size(tokens: float, batch: float) -> dict:
    """case_size as a failure entry holds it (whole numbers; infinite when the record does not say)."""
    return {"tokens": int(tokens) if math.isfinite(tokens) else tokens,
            "batch": int(batch) if math.isfinite(batch) else batch}


class CaseLedger:
    def __init__(self, worker: int = 0, started: float | None = None):
        self.worker = worker
        self.started = time.time() if started is None else started
        self.kept: dict[str, dict] = {}  # case id -> record, in the order cases were first judged
        self.tallied: dict[str, tuple] = {}  # case id -> (phase, dtype, what it added per TALLY_FIELDS)
        self.tally: list[dict] = []  # tally rows (conformance.report.model.tally_records)
        self.worst: dict[str, object] = {}  # "phase/dtype" -> the worst ratio of its records (None: no ratio)
        self.failures: dict[str, dict] = {}  # signature -> the report's failure entry
        self.best: dict[str, dict] = {}  # signature -> its smallest case: case id, path, the file's bytes
        self.first_seen: dict[str, float] = {}  # signature -> seconds into the session it was first seen
        self.stats_of: dict[str, dict] = {}  # signature -> the statistics of the property that found it
        self.test_cases: dict[str, int] = {}  # test id -> distinct cases it judged first
        self.written: list[str] = []  # case files written since the last settle_files
        self.cases = 0  # distinct cases judged: records and counted only
        self.judgments = 0  # every judgment, a case judged again included
        self.failing_judgments = 0  # failing judgments, repeats included (the worker resets it per test run)

    # --- judgments ---------------------------------------------------------------------------------
    def take(self, record: dict, stats: dict | None = None) -> None:
        """Fold one judgment in (`record` carries its test_id; `stats`, the property's statistics, get
        `judgments`, `cases`, `failures` and `signatures` kept up to date)."""
        self.judgments += 1
        if stats is not None:
            stats["judgments"] = stats.get("judgments", 0) + 1
        case_id = record["case_id"]
        path = record.get("case_file")
        if path:
            self.written.append(str(path))  # removed at the next settle_files unless it is a replay's
        record["case_file"] = None  # only a failure's smallest case names its file (_add_failure)
        failing = record["verdict"] != "pass"
        if failing:
            self.failing_judgments += 1
            record["signature"] = record_signature(record)
        old = self.kept.get(case_id)
        if old is None and case_id in self.tallied:
            if not failing:
                return  # counted already, and passing again
            self._untally(case_id)  # a counted pass judged again as a failure: the failure is its record
        elif old is not None:
            if not worse_judgment(record, old):
                return
            if old["verdict"] != "pass":
                self._drop_failure(old)
        else:
            self.cases += 1
            self.test_cases[record["test_id"]] = self.test_cases.get(record["test_id"], 0) + 1
            if stats is not None:
                stats["cases"] += 1
        self.kept[case_id] = record  # a replaced record keeps its place
        if failing:
            self._add_failure(record, str(path) if path else None, stats)
        self._worst_after(record, old)

    def test_failure(self, signature: str, test_id: str, message: str, stats: dict | None = None) -> None:
        """A test that failed without a failing case (a metamorphic relation, a contract test): a failure
        of its own, counted once per run of the test (it is no case)."""
        entry = self.failures.get(signature)
        if entry is None:
            entry = self.failures[signature] = self._entry(signature, test_id, stats)
            entry["message"] = message[:500]
        entry["count"] += 1
        if stats is not None:
            stats["failures"] += 1

    def records(self) -> list[dict]:
        return list(self.kept.values())

    def tally_rows(self) -> list[dict] | None:
        return [dict(row) for row in self.tally] or None

    # --- the worst ratio per bucket ----------------------------------------------------------------
    def _worst_after(self, record: dict, old: dict | None) -> None:
        bucket = _bucket(record)
        if bucket not in self.worst or rank(record.get("ratio")) > rank(self.worst[bucket]):
            self.worst[bucket] = record.get("ratio")
        elif old is not None and rank(old.get("ratio")) >= rank(self.worst[bucket]):
            # the replaced judgment may have been the bucket's worst: read it again from the records
            # (never from a counted-only case: compaction keeps each bucket's worst passing records)
            self.worst[bucket] = max((r.get("ratio") for r in self.kept.values() if _bucket(r) == bucket), key=rank)

    # --- counted only ------------------------------------------------------------------------------
    def compact(self, keep_per_bucket: int) -> None:
        """Keep the failing records (and those outside a reported standard) and the worst
        `keep_per_bucket` passing ones per phase x dtype; count the rest, remembering their ids."""
        passing: dict[str, list[dict]] = {}
        for r in self.kept.values():
            if r["verdict"] == "pass" and "fail" not in (r.get("verdicts") or {}).values():
                passing.setdefault(_bucket(r), []).append(r)
        dropped = []
        for rows in passing.values():
            rows.sort(key=lambda r: -rank(r.get("ratio")))
            dropped += rows[keep_per_bucket:]
        shared: dict[tuple, tuple] = {}  # most counted cases add the same: one tuple for all of them
        for r in dropped:
            row = tally_records([r])[0]
            key = (r["phase"], r["dtype"], *(row[f] for f in TALLY_FIELDS))
            self.tallied[r["case_id"]] = shared.setdefault(key, key)
            del self.kept[r["case_id"]]
        if dropped:
            self.tally = tally_records(dropped, self.tally)

    def _untally(self, case_id: str) -> None:
        phase, dtype, *counts = self.tallied.pop(case_id)
        for row in self.tally:
            if (row["phase"], row["dtype"]) == (phase, dtype):
                for field, n in zip(TALLY_FIELDS, counts):
                    row[field] -= n
        self.tally = [row for row in self.tally if row["cases"] > 0]

    # --- failures ----------------------------------------------------------------------------------
    def _entry(self, signature: str, test_id: str, stats: dict | None) -> dict:
        if stats is not None:
            self.stats_of[signature] = stats
            if signature not in stats["signatures"]:
                stats["signatures"].append(signature)
        first = self.first_seen.setdefault(signature, round(time.time() - self.started, 2))
        return {"signature": signature, "test_id": test_id, "count": 0, "worker": self.worker,
                "first_seen_s": first, "case_id": None, "phase": None, "dtype": None, "case_file": None,
                "replay": None, "message": "", "size": None}

    def _add_failure(self, record: dict, path: str | None, stats: dict | None) -> None:
        """A failing record counts toward its signature; the smallest case of a signature (case_size:
        fewest tokens, then smallest batch) is the one its replay names. On a tie the first stays,
        unless it has no file to replay and this one has."""
        signature = record["signature"]
        entry = self.failures.get(signature)
        if entry is None:
            entry = self.failures[signature] = self._entry(signature, record["test_id"], stats)
        entry["count"] += 1
        if stats is not None:
            stats["failures"] += 1
        tokens, batch = case_size(record)
        if entry["case_id"] is not None:
            smallest = (entry["size"]["tokens"], entry["size"]["batch"])
            has_file = bool((self.best.get(signature) or {}).get("path"))
            if (tokens, batch) > smallest or ((tokens, batch) == smallest and (has_file or not path)):
                return
            previous = self.kept.get(entry["case_id"])
            if previous is not None and previous is not record:
                previous["case_file"] = None
        held = _read_pair(path) if path else None  # the harness may delete the file before its test ends
        self.best[signature] = {"case_id": record["case_id"], "path": path if held else None, "held": held}
        record["case_file"] = path if held else None
        entry.update(case_id=record["case_id"], phase=record["phase"], dtype=record["dtype"],
                     size=_size(tokens, batch), case_file=record["case_file"], message=_why(record),
                     replay=f"npu-conformance replay {record['case_file']}" if record["case_file"] else None)

    def _drop_failure(self, old: dict) -> None:
        """A failing record replaced by a worse judgment of its case no longer counts toward its
        signature; if it was the signature's smallest case, the next smallest takes its place (without
        a replay: only the smallest case's file was kept)."""
        signature = old["signature"]
        entry = self.failures.get(signature)
        if entry is None:
            return
        entry["count"] -= 1
        stats = self.stats_of.get(signature)
        if stats is not None:
            stats["failures"] -= 1
        if entry["count"] <= 0:
            del self.failures[signature]
            self.best.pop(signature, None)
            if stats is not None and signature in stats["signatures"]:
                stats["signatures"].remove(signature)
            return
        if entry["case_id"] != old["case_id"]:
            return
        self.best.pop(signature, None)
        rest = [r for r in self.kept.values() if r is not old and r.get("signature") == signature]
        if rest:
            smallest = min(rest, key=case_size)
            tokens, batch = case_size(smallest)
            entry.update(case_id=smallest["case_id"], phase=smallest["phase"], dtype=smallest["dtype"],
                         size=_size(tokens, batch), case_file=None, replay=None,
                         message=_why(smallest))

    def failure_count(self) -> int:
        return sum(f["count"] for f in self.failures.values())

    # --- case files --------------------------------------------------------------------------------
    def settle_files(self, also_written=()) -> None:
        """Of the case files written since the last call (and `also_written`: files saved for a judgment
        that was never reported), only each failure's smallest case's stays; it is put back if the
        harness removed it."""
        keep = {b["path"] for b in self.best.values() if b["path"]}
        for path in self.written + [str(p) for p in also_written]:
            if path not in keep:
                remove_case_file(Path(path))
        self.written = []
        for best in self.best.values():
            if best["path"] and not Path(best["path"]).is_file():
                _write_pair(Path(best["path"]), best["held"])


def _read_pair(path: str) -> tuple[bytes, bytes | None] | None:
    """A case file's bytes and its cache state's (None when it has none), or None if it is gone."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    try:
        state = state_path(Path(path)).read_bytes()
    except OSError:
        state = None
    return data, state


def _write_pair(path: Path, held: tuple[bytes, bytes | None]) -> None:
    data, state = held
    path.parent.mkdir(parents=True, exist_ok=True)
    if state is not None:
        state_path(path).write_bytes(state)
    path.write_bytes(data)


def _why(record: dict) -> str:
    """What failed, in one line from the record (the error, or the failed checks' reasons)."""
    if record.get("error"):
        return str(record["error"])[:500]
    reasons = list((record.get("output") or {}).get("reasons") or [])
    reasons += list((record.get("ascend") or {}).get("reasons") or [])
    reasons += [x for c in record.get("caches") or [] for x in c.get("reasons") or []]
    reasons += [f"unacknowledged hazard {h.get('code')}" for h in record.get("hazards") or [] if not h.get("accepted")]
    reasons += list((record.get("determinism") or {}).get("reasons") or [])
    return (f"{record['phase']} {record['dtype']} case {record['case_id']}: " + ("; ".join(reasons) or "failed"))[:500]
