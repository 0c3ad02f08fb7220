"""The output shapes of fused infer attention from shapes alone: usable on fake tensors (the custom ops'
fake implementations, conformance.emulator.graph_ops) as well as by the contract checks."""

from __future__ import annotations

import torch

#: input_layout -> (query layout, output layout, query rank): the layout map of the meta
#: registrations (Ascend/op-plugin op_plugin/python/meta/_meta_registrations.py,
#: get_query_and_attention_out_layout; the same table in torchair's op file).
LAYOUT_MAP = {
    "BSH": ("BSH", "BSH", 3), "BSND": ("BSND", "BSND", 4), "BNSD": ("BNSD", "BNSD", 4),
    "TND": ("TND", "TND", 3), "NTD": ("NTD", "NTD", 3), "BNSD_BSND": ("BNSD", "BSND", 4),
    "BSH_BNSD": ("BSH", "BNSD", 3), "BSND_BNSD": ("BSND", "BNSD", 4), "NTD_TND": ("NTD", "TND", 3),
    "BSH_NBSD": ("BSH", "NBSD", 3), "BSND_NBSD": ("BSND", "NBSD", 4), "BNSD_NBSD": ("BNSD", "NBSD", 4),
    "TND_NTD": ("TND", "NTD", 3), "NSD": ("NSD", "NSD", 3),
}

def output_meta(query: torch.Tensor, value: torch.Tensor, *, input_layout: str, num_heads: int,
                num_key_value_heads: int, paged: bool, return_lse: bool):
    """(out_shape, out_dtype, lse_shape) by the meta rules (op_plugin/python/meta/_meta_registrations.py)."""
    nkv = num_key_value_heads or num_heads
    q_layout, out_layout, _ = LAYOUT_MAP[input_layout]
    if paged:
        value_d = value.shape[2] // nkv if value.dim() == 3 else value.shape[3]
    elif q_layout == "BSH":
        value_d = value.shape[2] // nkv
    elif q_layout in ("BSND", "BNSD"):
        value_d = value.shape[3]
    else:
        value_d = value.shape[2]
    if q_layout == "TND":
        t, n = query.shape[0], query.shape[1]
        out_shape = (t, n, value_d)
        lse_shape = (t, n, 1)
    else:
        if q_layout == "BSH":
            b, s, n = query.shape[0], query.shape[1], num_heads
        elif q_layout == "BSND":
            b, s, n = query.shape[0], query.shape[1], query.shape[2]
        else:  # BNSD
            b, s, n = query.shape[0], query.shape[2], query.shape[1]
        out_shape = {"BSH": (b, s, n * value_d), "BSND": (b, s, n, value_d), "BNSD": (b, n, s, value_d)}[out_layout]
        lse_shape = (b, n, s, 1)
    # Not requested: an empty [0] tensor (op-plugin >= 7.2.0 and the meta; docs say [1], older bindings).
    return out_shape, query.dtype, (lse_shape if return_lse else (0,))
