"""Stage 1 of the FIA contract checks: the head-count attributes and the tensor dtypes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from conformance.emulator import cann
from conformance.emulator import sources as src
from conformance.emulator.fia_args import FiaCall
from conformance.emulator.findings import Checker

#: From this CANN version on, FIA sends fp16/bf16 TND calls to its own tiling (RouteToFia) first.
FIA_V3_ROUTE_VERSION = "8.5.0"


@dataclass(frozen=True)
class Heads:
    num_heads: int
    num_kv_heads: int  # the attribute, with 0 resolved to num_heads
    scale: float


def check_heads(c: Checker, call: FiaCall) -> Heads:
    num_heads = int(call.num_heads)
    c.require(num_heads > 0, "num_heads", "must be > 0", src.FIA_META, detail=f"got {num_heads}")
    nkv_attr = int(call.num_key_value_heads)
    c.require(nkv_attr >= 0, "num_key_value_heads", "must be >= 0 (0 means num_heads)", src.FIA_DOCS,
              detail=f"got {nkv_attr}")
    num_kv_heads = nkv_attr or num_heads  # 0 means "same as the query" (docs; meta)
    c.require(num_heads % num_kv_heads == 0, "num_key_value_heads", "must divide the number of query heads (GQA)",
              src.FIA_DOCS, detail=f"{num_heads} % {num_kv_heads} != 0")
    c.require(num_heads // num_kv_heads <= 64, "num_key_value_heads", "GQA group size must be <= 64",
              src.FIA_DOCS, detail=f"group {num_heads // num_kv_heads}")
    c.require(num_heads <= 256, "num_heads", "must be <= 256", src.FIA_DOCS, detail=f"got {num_heads}")
    # applied as given: the op never uses 1/sqrt(D) by itself (docs)
    return Heads(num_heads=num_heads, num_kv_heads=num_kv_heads, scale=float(call.scale))


def reaches_pfa_tiling_for_tnd(route: str) -> bool:
    """Whether a TND call meets the PFA tiling's dtype check: the PFA op always, FIA before CANN 8.5.0 (then
    RouteToFia sends it to the FIA v3 tiling first, fia_checks_route); the IFA op takes no TND here."""
    return route == "pfa" or (route == "fia" and not cann.at_least(FIA_V3_ROUTE_VERSION))


def check_dtypes(c: Checker, call: FiaCall, layout: str) -> None:
    """Docs: query fp16/bf16, int8 only with quantization; key/value as the query without antiquant."""
    query, key, value = call.query, call.key, call.value
    if query.dtype == torch.int8:
        raise c.unsupported("query", "an int8 (quantized) query")
    if key.dtype in (torch.int8, torch.int32) or value.dtype in (torch.int8, torch.int32):
        raise c.unsupported("key", "int8/int4 key/value (antiquant)")
    c.require(query.dtype in (torch.float16, torch.bfloat16, torch.float32), "query",
              "dtype must be float16 or bfloat16", src.FIA_V2_DOC, detail=f"got {query.dtype}")
    c.require(key.dtype == query.dtype and value.dtype == query.dtype, "key",
              "key and value must have the query's dtype (no quantization)", src.FIA_V2_DOC,
              detail=f"query {query.dtype}, key {key.dtype}, value {value.dtype}")
    if query.dtype == torch.float32:
        c.note("fia/float32", "query", "float32 is an emulator-only extension: the kernel refuses it (\"can not be "
               "DT_FLOAT\"), so a float32 result says nothing about the hardware", src.at(src.PFA_TILING, "3967"),
               detail="emulated in float32")
    if layout == "TND" and reaches_pfa_tiling_for_tnd(call.route):
        # Code and aclnn doc: bf16 only; the op-plugin v2 doc still lists fp16 for MHA (the code wins). From
        # CANN 8.5.0 FIA routes TND calls away from the PFA tiling first (fia_checks_route); the PFA op keeps it.
        c.require(query.dtype in (torch.bfloat16, torch.float32), "query", "layout TND needs bfloat16 (the tiling "
                  "refuses float16: \"When layout is TND, inputDataType should be bf16\")",
                  src.at(src.PFA_TILING, "3813-3815"),
                  detail=f"got {query.dtype}; also {src.at(src.FIA_ACLNN_V4_DOC, '1417')}")

