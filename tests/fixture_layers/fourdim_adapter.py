"""The adapter file fourdim's layer needs (conformance.adapters.layer): its constructor takes a config
object, its caches are 4-D under other attribute names, and its metadata is installed by a function.

    npu-conformance run --layer fourdim_adapter:ADAPTER --layer-path tests/fixture_layers
"""

from fourdim.attention import AttnConfig, PagedAttention
from fourdim.metadata import forward_metadata

from conformance.adapters.layer import CacheLayout, LayerAdapter, function_context


def build(num_heads, head_dim, scale, num_kv_heads):
    return PagedAttention(AttnConfig(heads=num_heads, kv_heads=num_kv_heads, head_size=head_dim,
                                     softmax_scale=scale if scale is not None else head_dim ** -0.5))


def assign(layer, k_cache, v_cache):
    """The harness's 3-D caches, viewed 4-D (same storage)."""
    blocks, block_size, _ = k_cache.shape
    shape = (blocks, block_size, layer.config.kv_heads, layer.config.head_size)
    layer.key_cache, layer.value_cache = k_cache.view(shape), v_cache.view(shape)


def read(layer):
    blocks, block_size = layer.key_cache.shape[:2]
    return layer.key_cache.reshape(blocks, block_size, -1), layer.value_cache.reshape(blocks, block_size, -1)


ADAPTER = LayerAdapter(
    build=build,
    context=function_context(forward_metadata, "fourdim.metadata:forward_metadata"),
    caches=CacheLayout("key_cache/value_cache [num_blocks, block_size, kv_heads, head_size]", assign, read),
    name="fourdim",
    layer_class=PagedAttention,
)
