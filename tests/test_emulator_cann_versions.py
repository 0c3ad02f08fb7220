"""Rules keyed to the emulated CANN version (conformance.emulator.cann).

The one rule read at two releases and found to differ: float16 with layout TND. At 8.5.0.alpha001
(hicann/ops-transformer @c29bc10) FIA sends every non-MLA TND call to the PFA tiling, which takes bf16
only; from 8.5.0 (tags v8.5.0, v9.0.0) RouteToFia sends it to the FIA v3 tiling, which takes float16.
"""

import pytest
import torch

from conformance import emulator
from conformance.emulator import ContractViolation, EmulatorUnsupported, cann

tn = emulator.torch_npu
MASK = torch.triu(torch.ones(2048, 2048, dtype=torch.bool), diagonal=1)


def _tnd_float16(d=128, dv=128):
    g = torch.Generator().manual_seed(3)
    q = torch.randn(8, 2, d, generator=g).half()
    k = torch.randn(8, 1, d, generator=g).half()
    v = torch.randn(8, 1, dv, generator=g).half()
    return q, k, v


def _fia(q, k, v, **over):
    kw = dict(num_query_heads=2, num_key_value_heads=1, input_layout="TND", softmax_scale=0.08, atten_mask=MASK,
              actual_seq_qlen=[3, 8], actual_seq_kvlen=[3, 8], sparse_mode=3)
    kw.update(over)
    return tn.npu_fused_infer_attention_score_v2(q, k, v, **kw)


def test_default_is_the_audited_version_and_versions_are_ordered():
    assert cann.current() == cann.DEFAULT_VERSION == cann.AUDITED_VERSION
    assert list(cann.EMULATED_VERSIONS)[0] == cann.AUDITED_VERSION
    assert all(cann.source_of(v) for v in cann.EMULATED_VERSIONS)


def test_float16_tnd_is_refused_at_the_audited_version():
    with cann.emulated_version("8.5.0.alpha001"), pytest.raises(ContractViolation, match="layout TND needs bfloat16"):
        _fia(*_tnd_float16())


@pytest.mark.parametrize("version", ["8.5.0", "9.0.0"])
def test_float16_tnd_is_accepted_from_8_5_0_and_equals_bfloat16_math(version):
    q, k, v = _tnd_float16()
    with cann.emulated_version(version):
        out, _ = _fia(q, k, v)
    with cann.emulated_version("8.5.0.alpha001"):
        ref, _ = _fia(q.float(), k.float(), v.float())
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), ref, atol=2e-3, rtol=2e-3)


def test_float16_tnd_off_the_fia_v3_route_is_not_modelled():
    q, k, v = _tnd_float16(d=192, dv=192)
    with cann.emulated_version("9.0.0"), pytest.raises(EmulatorUnsupported, match="float16 with layout TND"):
        _fia(q, torch.cat([k, k], 1), torch.cat([v, v], 1), num_key_value_heads=2)


def test_the_pfa_op_keeps_its_bf16_only_tnd_rule_at_every_version():
    q, k, v = _tnd_float16()
    with cann.emulated_version("9.0.0"), pytest.raises(ContractViolation, match="layout TND needs bfloat16"):
        tn.npu_prompt_flash_attention(q, k, v, num_heads=2, num_key_value_heads=1, input_layout="TND",
                                      scale_value=0.08, atten_mask=MASK, actual_seq_lengths=[3, 8],
                                      actual_seq_lengths_kv=[3, 8], sparse_mode=3)


def test_set_version_returns_the_previous_one_and_refuses_unknown_versions():
    previous = cann.set_version("9.0.0")
    try:
        assert cann.current() == "9.0.0" and cann.at_least("8.5.0") and cann.at_least("9.0.0")
    finally:
        cann.set_version(previous)
    assert cann.current() == previous
    with pytest.raises(cann.UnknownVersion, match="8.3.RC1"):
        cann.set_version("8.3.RC1")
