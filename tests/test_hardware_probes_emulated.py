"""The hardware probes, run against the CPU op emulator: it must predict every probed value.

The probes (conformance/suite/test_hardware_probes.py) settle the emulator's inferred rules on a real
device, where they are skipped here. Running the same functions on the emulator proves two things on
every CI run: the probe code works (it will not fail on its first device for a typo), and the emulator
gives exactly the values a device must give for the emulator to be right.
"""

import inspect

import pytest

from conformance.suite import test_hardware_probes as probes

PROBES = [(name, fn) for name, fn in inspect.getmembers(probes, inspect.isfunction)
          if name.startswith("test_") and fn.__module__ == probes.__name__]


def test_every_inferred_rule_of_the_issue_has_a_probe():
    names = {name for name, _ in PROBES}
    assert {"test_float16_with_layout_tnd_is_refused", "test_inverted_mask_is_read_as_tiles_l4",
            "test_decode_with_kv_len_zero_gives_zeros_and_lse_minus_3_4e38",
            "test_decode_mask_without_a_batch_dim_is_refused",
            "test_eager_fia_accepts_an_int32_length_tensor_and_computes_with_it"} <= names


@pytest.mark.parametrize("name, probe", PROBES, ids=[name for name, _ in PROBES])
def test_probe_passes_on_the_emulator(name, probe, monkeypatch):
    monkeypatch.setattr(probes, "BACKEND", "emulated")
    monkeypatch.setattr(probes, "DEVICE", "cpu")
    probe()
