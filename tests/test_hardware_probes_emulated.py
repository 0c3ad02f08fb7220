"""The hardware probes, run against the CPU op emulator: it must predict every probed value.

The probes (conformance/suite/test_hardware_probes.py) settle the emulator's inferred rules on a real
device, where they are skipped here. Running the same functions on the emulator proves two things on
every CI run: the probe code works (it will not fail on its first device for a typo), and the emulator
gives exactly the values a device must give for the emulator to be right.
"""

import inspect

import pytest

from conformance.emulator import cann
from conformance.suite import test_hardware_probes as probes

PROBES = [(name, fn) for name, fn in inspect.getmembers(probes, inspect.isfunction)
          if name.startswith("test_") and fn.__module__ == probes.__name__]


def test_every_inferred_rule_of_the_issue_has_a_probe():
    names = {name for name, _ in PROBES}
    assert {"test_float16_with_layout_tnd_follows_the_cann_version", "test_inverted_mask_is_read_as_tiles_l4",
            "test_decode_with_kv_len_zero_gives_zeros_and_lse_minus_3_4e38",
            "test_decode_mask_without_a_batch_dim_is_refused",
            "test_eager_fia_accepts_an_int32_length_tensor_and_computes_with_it"} <= names


def test_every_fix_and_new_op_has_a_probe():
    names = {name for name, _ in PROBES}
    assert {"test_decode_with_value_head_dim_unequal_to_key_head_dim_is_refused",
            "test_tnd_paged_attention_with_value_head_dim_128_under_key_head_dim_192",
            "test_reshape_and_cache_skips_a_slot_below_minus_num_blocks_times_block_size",
            "test_prompt_flash_attention_next_tokens_default_0_makes_an_empty_mask_causal",
            "test_incre_flash_attention_decodes_like_the_reference",
            "test_incre_flash_attention_refuses_a_query_longer_than_16",
            "test_out_variant_writes_the_functional_result_into_preallocated_tensors",
            "test_scatter_pa_kv_cache_norm_writes_slots_and_skips_negative_ones",
            "test_reshape_and_cache_siso_writes_only_the_key_cache"} <= names


@pytest.mark.parametrize("version", list(cann.EMULATED_VERSIONS))
def test_the_version_keyed_probe_passes_at_every_emulated_version(version, monkeypatch, run_settings):
    monkeypatch.setattr(probes, "BACKEND", "emulated")
    monkeypatch.setattr(probes, "DEVICE", "cpu")
    run_settings(cann_version=version)  # what --cann-version sets: the probe expects that release's behaviour
    probes.test_float16_with_layout_tnd_follows_the_cann_version()


@pytest.mark.parametrize("name, probe", PROBES, ids=[name for name, _ in PROBES])
def test_probe_passes_on_the_emulator(name, probe, monkeypatch):
    monkeypatch.setattr(probes, "BACKEND", "emulated")
    monkeypatch.setattr(probes, "DEVICE", "cpu")
    probe()
