"""The layer adapter: what differs between attention layers, so the harness can put any of them under test.

Three things differ, each with presets for the common conventions:

* **construction** (`build`): by default `LayerClass(num_heads, head_dim, scale, num_kv_heads)`, the
  nano-vllm constructor;
* **how the Context reaches the layer** (`context`, a `ContextRoute`): the project's own
  `npu_attention.context` (`OWN_CONTEXT`), a context module in nano-vllm's convention
  (`nano_vllm_context(module)`: `set_context(**fields)` before a forward, `reset_context()` after), or a
  user function (`function_context(fn)`: `fn(context)` returns a context manager active around the forward);
* **where the caches live and in which layout** (`caches`, a `CacheLayout`): attributes `k_cache` /
  `v_cache` holding 3-D `[num_blocks, block_size, num_kv_heads*head_dim]` caches (`CACHES_3D`, the
  runner contract) or 4-D `[num_blocks, block_size, num_kv_heads, head_dim]` (`CACHES_4D`), converted to
  the 3-D form the oracle reads.

The Context is always installed outside the compiled decode graph, as a runner does before it calls
its compiled model, so graph guards see what they see on hardware. docs/testing-your-layer.md shows
how to write an adapter file when the presets do not fit.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from types import ModuleType
from typing import Any

import torch

from npu_attention import context as own_context_module
from npu_attention.context import Context

#: The Context fields of the runner contract (npu_attention.context.Context), in positional order.
CONTEXT_FIELDS = tuple(f.name for f in fields(Context))


def as_contract_context(obj: Any) -> Context:
    """A runner's Context (any object with the contract's field names, e.g. an engine's own Context
    dataclass) as an npu_attention.Context, for the validator. A field the object lacks is None, as the
    origin's set_context leaves a keyword it was not given."""
    if isinstance(obj, Context):
        return obj
    return Context(*(getattr(obj, name, None) for name in CONTEXT_FIELDS))


@dataclass(frozen=True)
class ContextRoute:
    """How a Context reaches a layer: `install(context)` is a context manager active around one forward;
    `read()` returns the Context currently installed (a runner may set it itself)."""

    describe: str
    install: Callable[[Any], contextlib.AbstractContextManager]
    read: Callable[[], Any]


def _own_install(context: Any) -> contextlib.AbstractContextManager:
    return own_context_module.use_context(context)


#: The project's own context module (npu_attention.context).
OWN_CONTEXT = ContextRoute("npu_attention.context", _own_install, own_context_module.get_context)


def _fields_of(context: Any) -> dict[str, Any]:
    """Every field a Context object carries: an engine's own Context may hold more than the contract's
    fields (and its layer may read them), or fewer (its set_context's defaults then apply)."""
    if is_dataclass(context):
        return {f.name: getattr(context, f.name) for f in fields(context)}
    if hasattr(context, "__dict__"):
        return {name: value for name, value in vars(context).items() if not name.startswith("_")}
    return {name: getattr(context, name) for name in CONTEXT_FIELDS if hasattr(context, name)}


def nano_vllm_context(module: ModuleType) -> ContextRoute:
    """A context module in nano-vllm's convention: `set_context(...)` receives the Context's fields as
    keywords (every field the Context carries that its signature names; all of them when it takes
    `**kwargs`), `get_context()` returns it, `reset_context()` clears it."""
    missing = [name for name in ("set_context", "get_context", "reset_context")
               if not callable(getattr(module, name, None))]
    if missing:
        raise AttributeError(f"{module.__name__} is not a context module in nano-vllm's convention: it has no "
                             f"{', '.join(missing)}")
    parameters = inspect.signature(module.set_context).parameters.values()
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    accepted = {p.name for p in parameters}

    @contextlib.contextmanager
    def install(context: Any):
        module.set_context(**{name: value for name, value in _fields_of(context).items()
                              if takes_any or name in accepted})
        try:
            yield
        finally:
            module.reset_context()

    return ContextRoute(module.__name__, install, module.get_context)


def function_context(fn: Callable[[Any], contextlib.AbstractContextManager], describe: str) -> ContextRoute:
    """A user function: `fn(context)` returns a context manager during which the layer sees `context`."""
    def read():
        raise RuntimeError(f"the context route {describe} cannot read a Context back: a runner adapter used with "
                           "it must return the Context it builds")

    return ContextRoute(describe, fn, read)


@dataclass(frozen=True)
class CacheLayout:
    """Where a layer keeps its caches and in which layout: `assign(layer, k, v)` gives it 3-D caches
    (converted to its layout, sharing storage), `read(layer)` returns them in the 3-D form."""

    describe: str
    assign: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], None]
    read: Callable[[torch.nn.Module], tuple[torch.Tensor, torch.Tensor]]


def _assign_3d(layer, k, v):
    layer.k_cache, layer.v_cache = k, v


def _read_3d(layer):
    return layer.k_cache, layer.v_cache


def _assign_4d(layer, k, v):
    nb, bs, _ = k.shape
    heads = layer.num_kv_heads
    layer.k_cache, layer.v_cache = k.view(nb, bs, heads, -1), v.view(nb, bs, heads, -1)


def _read_4d(layer):
    return tuple(c.reshape(c.shape[0], c.shape[1], -1) for c in (layer.k_cache, layer.v_cache))


CACHES_3D = CacheLayout("k_cache/v_cache [num_blocks, block_size, num_kv_heads*head_dim]", _assign_3d, _read_3d)
CACHES_4D = CacheLayout("k_cache/v_cache [num_blocks, block_size, num_kv_heads, head_dim] (needs layer.num_kv_heads)",
                        _assign_4d, _read_4d)


@dataclass(frozen=True)
class LayerAdapter:
    """Everything the harness needs to put a layer under test (see the module docstring)."""

    build: Callable[[int, int, float | None, int], torch.nn.Module]
    context: ContextRoute = OWN_CONTEXT
    caches: CacheLayout = CACHES_3D
    #: a short name for reports ("own", a registered adapter's name, or the class's)
    name: str = ""
    #: the layer's class, whose file identifies the code under test (default: `build`'s own file)
    layer_class: type | None = None
    #: the project's own layer: planted bugs and the tests about its own code apply only to it
    own: bool = False
    #: how it was selected and where its code lives (conformance.adapters.identity), filled by the loader
    identity: dict = field(default_factory=dict, compare=False)


def class_adapter(layer_class: type, context: ContextRoute = OWN_CONTEXT, caches: CacheLayout = CACHES_3D,
                  name: str = "") -> LayerAdapter:
    """The default construction: `layer_class(num_heads, head_dim, scale, num_kv_heads)`."""
    return LayerAdapter(build=layer_class, context=context, caches=caches, name=name or layer_class.__qualname__)
