"""Stage 2 of the FIA contract checks: the query and key/value shapes (layout, cache form, head dims)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from conformance.emulator import sources as src
from conformance.emulator.fia_args import FiaCall
from conformance.emulator.fia_checks_attrs import Heads
from conformance.emulator.fia_output import LAYOUT_MAP
from conformance.emulator.findings import Checker

EMULATED_LAYOUTS = ("BSH", "BSND", "BNSD", "TND")


@dataclass(frozen=True)
class QueryShape:
    layout: str
    batch: int | None  # None for TND (the batch is the length list's)
    q_s: int | None  # None for TND
    total_q: int | None  # TND: T, else None
    head_dim: int
    route: str = "fia"  # FiaCall.route

    @property
    def path(self) -> str:
        """The kernel: the PFA/IFA ops run their own; FIA takes "decode" (IFA) for a non-TND query with
        Q_S == 1, else "prompt" (PFA) (FIA tiling IsUsingIFA)."""
        if self.route != "fia":
            return {"pfa": "prompt", "ifa": "decode"}[self.route]
        return "prompt" if self.layout == "TND" or self.q_s != 1 else "decode"


@dataclass(frozen=True)
class KvShape:
    paged: bool
    cache_form: str  # "" (dense), "BnBsH" or "BnNBsD"
    block_size: int
    num_blocks: int  # 0 when dense
    value_dim: int
    kv_s: int  # dense: the key S (TND: T_kv); paged: block_table columns x block_size


def check_layout(c: Checker, call: FiaCall) -> str:
    layout = call.input_layout
    c.require(layout in LAYOUT_MAP, "input_layout", "unknown layout", src.FIA_META, detail=f"{layout!r}")
    if layout not in EMULATED_LAYOUTS:
        raise c.unsupported("input_layout", f"layout {layout!r}")
    rank = LAYOUT_MAP[layout][2]
    c.require(call.query.dim() == rank, "query", f"layout {layout} needs a {rank}-D query", src.FIA_META,
              detail=f"got shape {tuple(call.query.shape)}")
    return layout


def check_query(c: Checker, call: FiaCall, layout: str, heads: Heads) -> QueryShape:
    query, num_heads = call.query, heads.num_heads
    total_q = None
    if layout == "BSH":
        batch, q_s, hidden = query.shape
        c.require(hidden % num_heads == 0, "query", "hidden size must be a multiple of num_heads (D = H / N)",
                  src.FIA_META, detail=f"H {hidden}, N {num_heads}")
        head_dim = hidden // num_heads
    elif layout == "BSND":
        batch, q_s, n_axis, head_dim = query.shape
    elif layout == "BNSD":
        batch, n_axis, q_s, head_dim = query.shape
    else:  # TND
        total_q, n_axis, head_dim = query.shape
        batch, q_s = None, None
    if layout != "BSH":
        c.require(n_axis == num_heads, "num_heads", "must equal the query's N axis", src.FIA_DOCS,
                  detail=f"num_heads {num_heads}, query N {n_axis}")
    c.require(0 < head_dim <= 512, "query", "head dim D must be in (0, 512]", src.PFA_TILING, detail=f"D {head_dim}")
    if batch is not None:
        c.require(batch <= 65536, "query", "batch must be <= 65536", src.FIA_DOCS, detail=f"B {batch}")
    return QueryShape(layout=layout, batch=batch, q_s=q_s, total_q=total_q, head_dim=head_dim, route=call.route)


def check_kv(c: Checker, call: FiaCall, q: QueryShape, heads: Heads) -> KvShape:
    kv = _paged_kv(c, call, q, heads) if call.block_table is not None else _dense_kv(c, call, q, heads)
    c.require(0 < kv.value_dim <= 512, "value", "value head dim must be in (0, 512]", src.PFA_TILING,
              detail=f"Dv {kv.value_dim}")
    _check_value_dim_equals_key_dim(c, q, kv)
    return kv


def _check_value_dim_equals_key_dim(c: Checker, q: QueryShape, kv: KvShape) -> None:
    """Only TND takes Dv != D: the decode tiling wants identical key/value shapes, the prompt tiling equal D."""
    if q.layout == "TND" or kv.value_dim == q.head_dim:
        return
    detail = f"D {q.head_dim}, Dv {kv.value_dim}"
    if q.path == "decode":
        # IFATiling::KvShapePostProcess refuses unequal key/value shapes; GetRopeAndGqaFlag sets headDimV_ =
        # headDim_ outside sliding-window mode (BSH with a block table only, so never on this dense path).
        raise c.violation("value", "decode (Q_S == 1) needs key and value of identical shapes (\"k v shape shoud be "
                          "same\"): the decode kernel takes Dv = D", src.at(src.IFA_TILING_MAIN, "667-668"),
                          detail=f"{detail}; also {src.at(src.IFA_TILING_MAIN, '375-377')}")
    raise c.violation("value", "layouts BSH/BSND/BNSD need the value head dim equal to D (\"queryD keyD valueD must "
                      "be equal\")", src.at(src.PFA_TILING, "5655-5670"),
                      detail=f"{detail}; called at {src.at(src.PFA_TILING, '3960-3963')}")


def _paged_kv(c: Checker, call: FiaCall, q: QueryShape, heads: Heads) -> KvShape:
    key, value, table = call.key, call.value, call.block_table
    block_size = int(call.block_size)
    c.require(table.dtype == torch.int32, "block_table", "dtype must be int32", src.FIA_V2_DOC,
              detail=f"got {table.dtype}")
    c.require(table.dim() == 2, "block_table", "must be 2-D [batch, max blocks per sequence]",
              src.FIA_V2_DOC, detail=f"got shape {tuple(table.shape)}")
    if key.dim() == 5:
        raise c.unsupported("key", "an NZ (5-D) paged cache")
    c.require(key.dim() in (3, 4), "key", "a paged cache must be 3-D (num_blocks, block_size, N*D) or "
              "4-D (num_blocks, N, block_size, D)", src.FIA_META, detail=f"got shape {tuple(key.shape)}")
    if q.layout == "TND":
        value_dim = _tnd_value_cache(c, key, value, heads.num_kv_heads)
    else:
        c.require(key.shape == value.shape, "value", "key and value caches must have identical shapes",
                  src.FIA_V2_DOC, detail=f"{tuple(key.shape)} vs {tuple(value.shape)}; also "
                                        f"{src.at(src.PFA_TILING, '2339-2342')}")
        value_dim = q.head_dim
    c.require(block_size > 0, "block_size", "must be > 0 when block_table is given", src.FIA_V2_DOC,
              detail=f"got {block_size}")
    if key.dim() == 3:
        cache_form = "BnBsH"
        _check_3d_cache(c, key, block_size, heads.num_kv_heads, q.head_dim)
    else:
        cache_form = "BnNBsD"
        _check_4d_cache(c, key, q.layout, block_size, heads.num_kv_heads, q.head_dim)
    return KvShape(paged=True, cache_form=cache_form, block_size=block_size, num_blocks=key.shape[0],
                   value_dim=value_dim, kv_s=table.shape[1] * block_size)  # kv_s: the extent a mask must cover


def _tnd_value_cache(c: Checker, key: torch.Tensor, value: torch.Tensor, num_kv_heads: int) -> int:
    """Dv of a TND paged value cache. CheckPAWhenBaseApi -> CheckPAKeyValueParams compares only the caches'
    rank and leading dims (and a 4-D cache's block_size), and GetDFromInputShape reads Dv from the value
    cache, so D != Dv (192/128) is accepted; the (D, Dv) pairs are then checked with the TND rules."""
    c.require(value.dim() == key.dim(), "value", "key and value caches must have the same rank",
              src.at(src.PFA_TILING, "2176-2181"), detail=f"{tuple(key.shape)} vs {tuple(value.shape)}")
    same = 3 if key.dim() == 4 else 2  # 4-D: (nb, N, bs) (L2191, L2131); 3-D: (nb, bs) (L2191)
    c.require(value.shape[:same] == key.shape[:same], "value", "key and value caches must agree in every dim but "
              "the last (num_blocks, block_size and, for a 4-D cache, N)", src.at(src.PFA_TILING, "2189-2193"),
              detail=f"{tuple(key.shape)} vs {tuple(value.shape)}; also {src.at(src.PFA_TILING, '2129-2133')}")
    if key.dim() == 4:
        return value.shape[3]  # GetDFromInputShape, BNBD
    # BBH: Dv = value.shape[2] / N_kv (integer division in the tiling); a remainder would make the kernel read
    # the cache with the wrong row stride, so the emulator refuses it. [inferred]
    c.require(value.shape[2] % num_kv_heads == 0, "value", "a 3-D value cache's last dim must be "
              "num_key_value_heads * Dv", src.at(src.PFA_TILING, "3194-3195"), inferred=True,
              detail=f"value {tuple(value.shape)}, N {num_kv_heads}")
    return value.shape[2] // num_kv_heads


def _check_3d_cache(c: Checker, key: torch.Tensor, block_size: int, num_kv_heads: int, head_dim: int) -> None:
    c.require(key.shape[1] == block_size, "key", "cache dim 1 must equal block_size", src.FIA_V2_DOC,
              detail=f"cache {tuple(key.shape)}, block_size {block_size}")
    c.require(key.shape[2] == num_kv_heads * head_dim, "key",
              "cache dim 2 must equal num_key_value_heads * D", src.FIA_V2_DOC,
              detail=f"cache {tuple(key.shape)}, N {num_kv_heads}, D {head_dim}")
    c.require(key.shape[2] <= 65535, "key", "num_key_value_heads * D must be <= 65535 in a 3-D cache",
              src.FIA_V2_DOC, detail=f"{key.shape[2]}")


def _check_4d_cache(c: Checker, key: torch.Tensor, layout: str, block_size: int, num_kv_heads: int,
                    head_dim: int) -> None:
    c.require(layout in ("BNSD", "TND"), "key",
              "a 4-D (num_blocks, N, block_size, D) cache needs a BNSD or TND query", src.FIA_V2_DOC,
              detail=f"layout {layout}")
    c.require(key.shape[1] == num_kv_heads and key.shape[2] == block_size and key.shape[3] == head_dim,
              "key", "4-D cache must be (num_blocks, num_key_value_heads, block_size, D)", src.FIA_V2_DOC,
              detail=f"cache {tuple(key.shape)}, N {num_kv_heads}, block_size {block_size}, D {head_dim}")
    if layout == "TND":
        c.hazard("fia/tnd-4d-cache", "key",
                 "TND with a 4-D cache: the v2 doc allows only (num_blocks, block_size, N*D) for "
                 "D != 512 while the PFA tiling accepts 3-D/4-D/5-D caches", src.FIA_V2_DOC,
                 detail=f"also {src.PFA_TILING}")


#: Per dense layout: (key dims that must be (N_kv, D) -> their axes, the key's batch axis or None, its S axis,
#: how many leading dims value shares with key).
_DENSE_AXES = {"BSND": ((2, 3), 0, 1, 3), "BNSD": ((1, 3), 0, 2, 3), "TND": ((1, 2), None, 0, 2)}
_DENSE_KEY_RULE = {"BSND": ("key must be (B, KV_S, num_key_value_heads, D)", src.FIA_DOCS),
                   "BNSD": ("key must be (B, num_key_value_heads, KV_S, D)", src.FIA_DOCS),
                   "TND": ("key must be (T_kv, num_key_value_heads, D)", src.PFA_TILING)}


def _dense_kv(c: Checker, call: FiaCall, q: QueryShape, heads: Heads) -> KvShape:
    key, value, nkv, head_dim = call.key, call.value, heads.num_kv_heads, q.head_dim
    c.require(key.dim() == call.query.dim() and value.dim() == call.query.dim(), "key",
              "without block_table key/value must have the query's rank", src.FIA_META,
              detail=f"query {call.query.dim()}-D, key {key.dim()}-D, value {value.dim()}-D")
    if q.layout == "BSH":
        c.require(key.shape[2] == nkv * head_dim, "key", "key H must equal num_key_value_heads * D",
                  src.FIA_DOCS, detail=f"key {tuple(key.shape)}, N {nkv}, D {head_dim}")
        c.require(value.shape[2] % nkv == 0, "value", "value H must be a multiple of "
                  "num_key_value_heads", src.FIA_META, detail=f"value {tuple(value.shape)}")
        value_dim, kv_batch, kv_s, shared = value.shape[2] // nkv, key.shape[0], key.shape[1], 2
    else:
        (n_axis, d_axis), batch_axis, s_axis, shared = _DENSE_AXES[q.layout]
        rule, source = _DENSE_KEY_RULE[q.layout]
        c.require(key.shape[n_axis] == nkv and key.shape[d_axis] == head_dim, "key", rule, source,
                  detail=f"key {tuple(key.shape)}, N {nkv}, D {head_dim}")
        value_dim, kv_s = value.shape[d_axis], key.shape[s_axis]
        kv_batch = None if batch_axis is None else key.shape[batch_axis]
    c.require(value.shape[:shared] == key.shape[:shared], "value", "value must match key in every dim but the "
              "head dim", src.FIA_DOCS, detail=f"key {tuple(key.shape)}, value {tuple(value.shape)}")
    if kv_batch is not None:
        c.require(kv_batch == q.batch, "key", "key batch must equal query batch", src.FIA_DOCS,
                  detail=f"{kv_batch} vs {q.batch}")
    return KvShape(paged=False, cache_form="", block_size=int(call.block_size), num_blocks=0, value_dim=value_dim,
                   kv_s=kv_s)


def check_head_dims(c: Checker, q: QueryShape, kv: KvShape, heads: Heads) -> None:
    """Head-dim rules: the docs disagree on alignment (a hazard); TND allows only some (D, Dv) pairs."""
    head_dim, value_dim = q.head_dim, kv.value_dim
    if head_dim % 16:
        c.hazard("fia/head-dim-alignment", "query",
                 "head dim not a multiple of 16: the v2 doc asks 16-element alignment, the v1 doc "
                 "16-byte alignment, and unaligned D is allowed only for B <= 128", src.FIA_DOCS,
                 detail=f"D {head_dim}")
    if q.layout == "TND":
        c.require((head_dim == 192 and value_dim in (192, 128)) or head_dim == value_dim in (128, 64), "query",
                  "layout TND needs (D, Dv) of (192, 192), (192, 128), (128, 128) or (64, 64)",
                  src.at(src.PFA_TILING, "3799-3802"), detail=f"D {head_dim}, Dv {value_dim}")
        c.require(not (value_dim == 192 and heads.num_heads != heads.num_kv_heads), "value",
                  "layout TND with GQA (G != 1) refuses value head dim 192", src.at(src.PFA_TILING, "3803-3806"),
                  detail=f"G {heads.num_heads // heads.num_kv_heads}, Dv {value_dim}")
