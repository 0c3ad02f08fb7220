"""The Attention layer imports and builds on a CPU machine without torch_npu."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from npu_attention import Attention


def test_packages_import_without_torch_npu():
    code = "import sys, npu_attention, reference, conformance; print('torch_npu' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_defaults_follow_the_seed():
    layer = Attention(num_heads=8, head_dim=128, scaling=None, num_kv_heads=2)
    assert layer.scale == pytest.approx(1 / math.sqrt(128))
    assert (layer.num_heads, layer.num_kv_heads, layer.head_dim, layer.block_size) == (8, 2, 128, 0)
    assert layer.k_cache.numel() == 0 and layer.v_cache.numel() == 0
    assert Attention(4, 64, 0.5, 4).scale == 0.5


def test_mask_is_2048_causal_true_above_diagonal_and_not_persistent():
    layer = Attention(4, 64, None, 1)
    assert layer.mask.shape == (2048, 2048) and layer.mask.dtype == torch.bool
    assert torch.equal(layer.mask, torch.triu(torch.ones(2048, 2048, dtype=torch.bool), diagonal=1))
    assert "mask" not in layer.state_dict()


def test_mask_follows_the_default_device():
    with torch.device("meta"):
        layer = Attention(4, 64, None, 1)
    assert layer.mask.device.type == "meta"


@pytest.mark.parametrize("heads, kv_heads, dim, rule", [(6, 4, 64, "multiple of num_kv_heads"),
                                                         (0, 1, 64, "positive"), (4, 2, -1, "positive")])
def test_bad_head_config_is_refused(heads, kv_heads, dim, rule):
    with pytest.raises(ValueError, match=rule):
        Attention(heads, dim, None, kv_heads)
