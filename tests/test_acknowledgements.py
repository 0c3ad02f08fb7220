"""The acknowledgement ledger: loading and refusing files, matching hazards, the verdict it gives."""

import pytest

from conformance.emulator.catalogue import HAZARDS
from conformance.judge.acknowledgements import DEFAULT_LEDGER, LedgerError, default_ledger, judge_hazards, load_ledger

ENTRY = '''
[[acknowledge]]
id = "dummy"
op = "torch_npu.scatter_update_"
code = "scu/overlapping-targets"
phases = ["decode_graph"]
reason = "padded rows"
link = "somewhere"
'''
HAZARD = {"op": "torch_npu.scatter_update_", "code": "scu/overlapping-targets", "argument": "indices", "rule": "r"}


def _ledger(tmp_path, text):
    path = tmp_path / "ack.toml"
    path.write_text(text, encoding="utf-8")
    return load_ledger(path)


def test_the_shipped_ledger_loads_and_every_entry_is_narrow_and_explained():
    ledger = default_ledger()
    assert ledger.source == str(DEFAULT_LEDGER) and ledger.entries
    for entry in ledger.entries:
        assert entry.code in HAZARDS and entry.phases and len(entry.reason) > 40 and entry.link


def test_an_entry_matches_op_code_and_phase_only(tmp_path):
    ledger = _ledger(tmp_path, ENTRY)
    assert ledger.match(HAZARD, "decode_graph").id == "dummy"
    assert ledger.match(HAZARD, "decode_eager") is None
    assert ledger.match(HAZARD | {"code": "scu/negative-axis"}, "decode_graph") is None
    assert ledger.match(HAZARD | {"op": "torch_npu.scatter_update"}, "decode_graph") is None
    everywhere = _ledger(tmp_path, ENTRY.replace('phases = ["decode_graph"]\n', ""))
    assert everywhere.match(HAZARD, "prefill").id == "dummy"


def test_judged_hazards_pass_only_when_acknowledged_and_not_strict(tmp_path):
    ledger = _ledger(tmp_path, ENTRY)
    other = HAZARD | {"code": "scu/negative-axis"}
    judged = judge_hazards([HAZARD, other], "decode_graph", ledger, strict=False)
    assert [(h["acknowledgement"], h["accepted"]) for h in judged] == [("dummy", True), (None, False)]
    strict = judge_hazards([HAZARD], "decode_graph", ledger, strict=True)
    assert [(h["acknowledgement"], h["accepted"]) for h in strict] == [("dummy", False)]


@pytest.mark.parametrize("text, message", [
    ("[[acknowledge]\n", "not valid TOML"),
    ("[other]\nx = 1\n", "unknown top-level key(s) ['other']"),
    ("acknowledge = 3\n", "'acknowledge' must be an array of tables"),
    (ENTRY.replace('reason = "padded rows"\n', ""), "entry 1: field 'reason' is required"),
    (ENTRY.replace('reason = "padded rows"', 'reason = "  "'), "field 'reason' is required and must be a non-empty"),
    (ENTRY.replace('link = "somewhere"', "link = 3"), "field 'link' is required and must be a non-empty string"),
    (ENTRY.replace("scu/overlapping-targets", "scu/overlaping"), "field 'code' must be a hazard code"),
    (ENTRY.replace("scu/overlapping-targets", "fia/float32"), "field 'code' must be a hazard code"),  # a note
    (ENTRY.replace("torch_npu.scatter_update_", "torch_npu.scatter"), "field 'op' must name an emulated op"),
    (ENTRY.replace('["decode_graph"]', '["graph"]'), "field 'phases' must be a list of"),
    (ENTRY + 'extra = "x"\n', "unknown field(s) ['extra']"),
    (ENTRY + ENTRY, "entry 2: id 'dummy' is used twice"),
])
def test_bad_ledgers_are_refused_naming_entry_and_field(tmp_path, text, message):
    with pytest.raises(LedgerError) as info:
        _ledger(tmp_path, text)
    assert message in str(info.value) and "ack.toml" in str(info.value)


def test_a_missing_ledger_file_is_a_clear_error(tmp_path):
    with pytest.raises(LedgerError, match="cannot read it"):
        load_ledger(tmp_path / "nope.toml")
