"""Which kernel a call reaches, where that decides what the kernel accepts.

* npu_incre_flash_attention runs the decode (IFA) tiling whatever Q_S is, and only its three layouts.
* From CANN 8.5.0, FIA's RouteToFia sends fp16/bf16 TND calls to the FIA v3 tiling first, which takes
  float16 (the PFA tiling behind 8.5.0.alpha001 takes bfloat16 only): version-keyed (conformance.emulator.cann).
"""

from __future__ import annotations

import torch

from conformance.emulator import cann
from conformance.emulator import sources as src
from conformance.emulator.fia_args import FiaCall
from conformance.emulator.fia_checks_attrs import FIA_V3_ROUTE_VERSION
from conformance.emulator.fia_checks_shapes import QueryShape
from conformance.emulator.findings import Checker

#: (D, Dv) pairs the 8.5.0 RouteToFia sends to the FIA v3 tiling (CheckGqaDSupport, tiling_v3.cpp L570-573).
FIA_V3_TND_HEAD_DIMS = ((128, 128), (64, 64), (192, 128))
IFA_LAYOUTS = ("BSH", "BNSD", "BSND")


def check_ifa_entry(c: Checker, call: FiaCall, q: QueryShape) -> None:
    """npu_incre_flash_attention: layouts BSH/BNSD/BSND (doc), Q_S 1 (2-16 is the unmodelled MTP mode)."""
    if call.route != "ifa":
        return
    if q.layout not in IFA_LAYOUTS:
        raise c.unsupported("input_layout", f"layout {q.layout!r} with npu_incre_flash_attention (the doc lists "
                                            f"BSH, BNSD and BSND only; the tiling takes TND for MLA)")
    c.require(q.q_s <= 16, "query", "S of the query must be 1 (or 2-16, multi-token decode)",
              src.at(src.IFA_TILING_MAIN, "394-403"), detail=f"Q_S {q.q_s}")
    if q.q_s != 1:
        raise c.unsupported("query", f"Q_S {q.q_s} (the decode kernel's multi-token / MTP mode)")


def check_tnd_float16_route(c: Checker, call: FiaCall, layout: str, head_dim: int, value_dim: int) -> None:
    """CANN >= 8.5.0: which tiling a float16 TND FIA call reaches, hence whether float16 is accepted.

    8.5.0.alpha001 sends every non-MLA TND call to the PFA tiling, which takes bf16 only (check_dtypes).
    From 8.5.0 RouteToFia sends fp16/bf16 TND calls with (D, Dv) of (128, 128), (64, 64), (192, 128) to
    the FIA v3 tiling, whose dtype check takes float16 (CheckFeatureNoQuantDtype), except those
    CheckSpecConditions keeps for the FAI split-fuse tiling (sparse_mode 0/3 with GQA at inner_precise 0,
    or unmasked fp16 MHA at inner_precise 1; D = Dv <= 256; paged only with block_size 128: V3-850
    L661-713), which takes float16 too (FAI L992). Either way float16 is accepted; every other rule applied
    to such a call is the PFA tiling's, carried over, not re-read against the v3 or FAI tiling (RULES.md,
    "CANN versions"). Calls kept off both routes go back to the bf16-only PFA tiling, on conditions the
    emulator does not model."""
    if call.route != "fia" or layout != "TND" or call.query.dtype != torch.float16:
        return
    if not cann.at_least(FIA_V3_ROUTE_VERSION) or (head_dim, value_dim) in FIA_V3_TND_HEAD_DIMS:
        return
    raise c.unsupported("query", f"float16 with layout TND and (D, Dv) = ({head_dim}, {value_dim}) at CANN "
                        f"{cann.current()} (its route, FAI split-fuse or the bf16-only PFA tiling, depends on "
                        f"conditions not modelled: {src.at(src.FIA_TILING_V3_850, '661-713, 818-867')})")
