"""The kernel seam: names resolve at call time; asking for real kernels without torch_npu explains itself."""

from __future__ import annotations

import importlib.util

import pytest

from npu_attention import kernels


def fake_backend(tag):
    torch_npu = kernels.namespace(npu_fused_infer_attention_score_v2=lambda *a, **k: (tag, "v2"),
                                  _npu_reshape_and_cache=lambda *a: tag, scatter_update_=lambda *a: tag)
    torchair = kernels.namespace(ops=kernels.namespace(npu_fused_infer_attention_score=lambda *a, **k: (tag, "air")))
    return lambda: kernels.KernelBackend(tag, torch_npu, torchair)


def test_proxies_resolve_against_the_selected_backend_at_call_time():
    kernels.register_backend("fake-a", fake_backend("a"))
    kernels.register_backend("fake-b", fake_backend("b"))
    with kernels.use_backend("fake-a"):
        assert kernels.torch_npu.npu_fused_infer_attention_score_v2() == ("a", "v2")
        with kernels.use_backend("fake-b"):
            assert kernels.torchair.ops.npu_fused_infer_attention_score() == ("b", "air")
        assert kernels.torch_npu.scatter_update_() == "a"


def test_missing_op_names_the_backend_and_op():
    kernels.register_backend("fake-c", fake_backend("c"))
    with kernels.use_backend("fake-c"), pytest.raises(AttributeError, match="fake-c.*torch_npu.npu_rotary_mul"):
        _ = kernels.torch_npu.npu_rotary_mul


def test_a_backend_without_the_layer_ops_is_refused_on_load():
    kernels.register_backend("fake-partial", lambda: kernels.KernelBackend(
        "fake-partial", kernels.namespace(scatter_update_=print), kernels.namespace(ops=kernels.namespace())))
    with kernels.use_backend("fake-partial"), pytest.raises(kernels.KernelUnavailable) as info:
        _ = kernels.torch_npu.scatter_update_
    assert "torch_npu.npu_fused_infer_attention_score_v2" in str(info.value)
    assert "torchair.ops.npu_fused_infer_attention_score" in str(info.value)


def test_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown kernel backend 'tpu'.*npu"):
        kernels.select_backend("tpu")


@pytest.mark.skipif(importlib.util.find_spec("torch_npu") is not None, reason="torch_npu is installed here")
def test_real_kernels_without_torch_npu_say_how_to_get_them():
    with kernels.use_backend("npu"):
        with pytest.raises(kernels.KernelUnavailable) as info:
            _ = kernels.torch_npu.npu_fused_infer_attention_score_v2
    message = str(info.value)
    assert "npu-attention-conformance[npu]" in message and "--backend emulated" in message


def test_layer_module_is_the_only_importer_of_torch_npu():
    import pathlib

    root = pathlib.Path(kernels.__file__).parent
    importers = [p.name for p in root.glob("*.py")
                 if any(line.strip().startswith(("import torch_npu", "import torchair", "from torch_npu",
                                                 "from torchair"))
                        for line in p.read_text().splitlines())]
    assert importers == ["kernels.py"]
