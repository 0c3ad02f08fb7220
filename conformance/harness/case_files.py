"""Case files: a failing case saved with everything that judged it, so that replay reproduces the verdict.

    {"format": "npu-conformance case", "version": 2,
     "case": {...},                          # conformance.cases.Case as plain data
     "judged_with": {"backend", "strict_contracts", "tolerance_policy", "acknowledgements", "mutation",
                     "compile_graph"},
     "verdict": {...},                       # what it gave when saved: verdict, failed checks, ratio
     "state": "decode_eager-<id>.safetensors" or null,   # the cache the case ran on, when not its own
     "session": {"graph_session": {...}, "step": k} or null}  # a step of a graph session: replay runs it all

A case judged on a cache of its own making (every property but the stateful engine) rebuilds it from
its seed; the engine's steps run on the engine's live cache, which is saved beside the JSON with
safetensors. A plain Case object (version 1, what older runs wrote) is read too, without settings.
Every field is checked on reading: a bad file is refused with the field and the rule, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from conformance.adapters.loading import identity
from conformance.cases.case import Case, CaseError, Tensors
from conformance.cases.graph_session import GraphSession
from conformance.emulator import cann
from conformance.formatting import jsonable
from conformance.harness.case_file_pair import FIELDS, FORMAT, VERSION, case_file_data, state_path, write_data
from conformance.judge.acknowledgements import LedgerError, ledger_from_entries
from conformance.judge.policy import PolicyFileError, PolicySet
from conformance.names import GRAPH_MODES

STATE_TENSORS = ("k_cache", "v_cache")


class CaseFileError(ValueError):
    """A case file that cannot be replayed; the message names the file, the field and the rule."""


@dataclass
class CaseFile:
    path: Path
    case: Case
    judged_with: dict | None  # None: an old plain-case file, no settings saved
    verdict: dict | None
    state: dict[str, torch.Tensor] | None  # k_cache / v_cache the case ran on, or None (its own)
    session: tuple | None = None  # (GraphSession, step index) when the case is a step of a graph session

    def tensors(self, device: str) -> Tensors:
        """The tensors the case was judged on: its own, or its q/k/v with the saved cache state."""
        own = self.case.materialise(device)
        if self.state is None:
            return own
        return Tensors(self.case, own.q, own.k, own.v, self.state["k_cache"].to(device),
                       self.state["v_cache"].to(device))


def judged_with(run) -> dict:
    """The settings of `run` (a RunSettings) that decide a verdict, as plain data."""
    ledger = run.acknowledgements
    return {"backend": run.backend, "strict_contracts": run.strict_contracts,
            "tolerance_policy": run.policies.as_dict(),
            "acknowledgements": {"source": ledger.source, "entries": [a.as_dict() for a in ledger.entries]},
            "mutation": run.mutation.name if run.mutation else None, "compile_graph": run.compile_graph,
            "graph_mode": run.graph_mode, "cann_version": run.cann_version,
            # which code was judged; the project's own is left out (and read back as the default)
            "layer": None if run.layer.own else identity(run.layer),
            "runner": None if run.runner.own else identity(run.runner)}


def session_data(session, step: int) -> dict:
    """A graph session step as a case file holds it."""
    return {"graph_session": session.to_dict(), "step": step}


def write_case_file(directory: Path, case: Case, run, verdict: dict,
                    state: dict[str, torch.Tensor] | None = None, session: tuple | None = None) -> Path:
    """Save `case` with the settings of `run` and, when it ran on a cache of someone else's (the
    engine's), that cache. Returns the JSON path (named by case id and state, so distinct failures
    never overwrite each other)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{case.phase}-{case.case_id}"
    blob = None
    if state is not None:
        blob = save({k: state[k].detach().cpu().contiguous() for k in STATE_TENSORS})
        name += "-" + hashlib.sha1(blob).hexdigest()[:8]
        state_path(directory / f"{name}.json").write_bytes(blob)
    path = directory / f"{name}.json"
    data = case_file_data(case.to_dict(), judged_with(run), verdict,
                          state_path(path).name if blob is not None else None,
                          None if session is None else session_data(*session))
    # jsonable: a NaN output has an infinite ratio, written "inf" as report.json writes it
    return write_data(path, jsonable(data))


def read_case_file(path: str | Path) -> CaseFile:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CaseFileError(f"cannot read case file {str(path)!r}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CaseFileError(f"{path} is not a case file: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CaseFileError(f"{path} is not a case file: expected a JSON object, got {type(data).__name__}")
    try:
        if "format" not in data:  # version 1: a bare Case
            return CaseFile(path, Case.from_dict(data), None, None, None)
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise CaseFileError(f"{path}: format {data.get('format')!r} version {data.get('version')!r} is not "
                                f"{FORMAT!r} version {VERSION}")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise CaseFileError(f"{path}: unknown field(s) {unknown}")
        case = Case.from_dict(data.get("case"))
        settings = _judged_with(path, data.get("judged_with"))
        state = _state(path, data.get("state"), case)
        session = _session(path, data.get("session"))
    except (CaseError, PolicyFileError, LedgerError) as exc:
        raise CaseFileError(f"{path}: {exc}") from None
    return CaseFile(path, case, settings, data.get("verdict"), state, session)


def _session(path: Path, raw) -> tuple | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("step"), int) or raw["step"] < 0:
        raise CaseFileError(f"{path}: 'session' must hold a graph_session and a step index >= 0")
    return GraphSession.from_dict(raw.get("graph_session")), raw["step"]


def _judged_with(path: Path, raw) -> dict:
    """The saved settings, checked, as RunSettings changes."""
    if not isinstance(raw, dict):
        raise CaseFileError(f"{path}: 'judged_with' must be an object")
    if raw.get("backend") not in ("npu", "emulated"):
        raise CaseFileError(f"{path}: judged_with.backend must be 'npu' or 'emulated', got {raw.get('backend')!r}")
    for key in ("strict_contracts", "compile_graph"):
        if not isinstance(raw.get(key), bool):
            raise CaseFileError(f"{path}: judged_with.{key} must be true or false, got {raw.get(key)!r}")
    ack = raw.get("acknowledgements")
    if not isinstance(ack, dict) or not isinstance(ack.get("entries"), list):
        raise CaseFileError(f"{path}: judged_with.acknowledgements must hold a list of 'entries'")
    graph_mode = raw.get("graph_mode", "max-autotune")
    if graph_mode not in GRAPH_MODES:
        raise CaseFileError(f"{path}: judged_with.graph_mode must be one of {list(GRAPH_MODES)}, got {graph_mode!r}")
    mutation = raw.get("mutation")
    if mutation is not None and not isinstance(mutation, str):
        raise CaseFileError(f"{path}: judged_with.mutation must be a planted bug's name or null")
    return {"backend": raw["backend"], "strict_contracts": raw["strict_contracts"],
            "compile_graph": raw["compile_graph"], "graph_mode": graph_mode,
            "policies": PolicySet.from_dict(raw.get("tolerance_policy"), "judged_with.tolerance_policy"),
            "acknowledgements": ledger_from_entries(ack["entries"], f"{path} (saved with the case)",
                                                    "judged_with.acknowledgements"),
            "mutation": mutation, "layer": _subject(path, raw, "layer"), "runner": _subject(path, raw, "runner"),
            "cann_version": _cann_version(path, raw)}


def _cann_version(path: Path, raw: dict) -> str:
    """The emulated CANN release the case was judged at (files from before the field: the first audited one)."""
    version = raw.get("cann_version", cann.AUDITED_VERSION)
    if version not in cann.EMULATED_VERSIONS:
        raise CaseFileError(f"{path}: judged_with.cann_version must be one of {list(cann.EMULATED_VERSIONS)}, "
                            f"got {version!r}")
    return version


def _subject(path: Path, raw: dict, key: str) -> dict | None:
    """The saved identity of the layer or runner that was judged (None: the project's own, as files
    written before the field say by leaving it out)."""
    subject = raw.get(key)
    if subject is None:
        return None
    if not isinstance(subject, dict) or not isinstance(subject.get("spec"), str) or not subject["spec"]:
        raise CaseFileError(f"{path}: judged_with.{key} must be an object with a 'spec' string, got {subject!r}")
    for name in ("file", "sha256", "context", "name"):
        if subject.get(name) is not None and not isinstance(subject[name], str):
            raise CaseFileError(f"{path}: judged_with.{key}.{name} must be a string or null")
    paths = subject.get("layer_path")
    if paths is not None and (not isinstance(paths, list) or not all(isinstance(x, str) for x in paths)):
        raise CaseFileError(f"{path}: judged_with.{key}.layer_path must be a list of folders or null")
    return subject


def _state(path: Path, name, case: Case) -> dict[str, torch.Tensor] | None:
    if name is None:
        return None
    if not isinstance(name, str) or Path(name).name != name:
        raise CaseFileError(f"{path}: 'state' must be the name of a file beside it, got {name!r}")
    try:
        state = load_file(str(path.parent / name))
    except (OSError, SafetensorError) as exc:
        raise CaseFileError(f"{path}: cannot read its cache state {name!r}: {exc}") from None
    shape = (case.num_blocks, case.block_size, case.num_kv_heads * case.head_dim)
    for key in STATE_TENSORS:
        t = state.get(key)
        if t is None or tuple(t.shape) != shape or t.dtype != case.torch_dtype:
            got = "missing" if t is None else f"{tuple(t.shape)} {t.dtype}"
            raise CaseFileError(f"{path}: state {key} must be {shape} {case.torch_dtype}, got {got}")
    return state
