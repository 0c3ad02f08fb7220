"""The adapter file scatterpa's layer needs: 4-D ND caches [num_blocks, block_size, kv_heads, head_dim]
under the usual attribute names (CACHES_4D), and nanoport's context module (it shares nanoport's runner).

    npu-conformance run --layer scatterpa_adapter:ADAPTER --layer-path tests/fixture_layers --shape-space npu
"""

from nanoport.utils import context
from scatterpa.attention import Attention, NextSlotAttention

from conformance.adapters.layer import CACHES_4D, LayerAdapter, nano_vllm_context

ADAPTER = LayerAdapter(build=Attention, context=nano_vllm_context(context), caches=CACHES_4D, name="scatterpa",
                       layer_class=Attention)
NEXT_SLOT = LayerAdapter(build=NextSlotAttention, context=nano_vllm_context(context), caches=CACHES_4D,
                         name="scatterpa-next-slot", layer_class=NextSlotAttention)
