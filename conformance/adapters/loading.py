"""Selecting the layer and the runner under test: `--layer`, `--layer-path`, `--layer-context`, `--runner`.

    --layer MODULE:CLASS        a layer class, built as CLASS(num_heads, head_dim, scale, num_kv_heads)
    --layer MODULE:ADAPTER      a LayerAdapter (or a function returning one): an adapter file
    --layer NAME                an adapter an engine registered in the entry-point group npu_conformance.layers
    --layer-path DIR[:DIR]      prepended to sys.path first (a checkout of another engine, not installed)
    --layer-context MODULE      a context module in nano-vllm's convention (set_context / get_context /
                                reset_context); MODULE:FUNCTION a function(context) -> context manager.
                                Default: the context module the layer's own module imports get_context from.
    --runner MODULE:FUNCTION    a runner adapter: FUNCTION(step: EngineStep) -> Context (or None after
                                setting it through the layer's context module)

On the emulated backend the emulator is installed as `torch_npu` / `torchair` (conformance.platform.
npu_modules) before the user's module is imported, and only then. Every problem is one `SelectionError`
line naming the option and the rule.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import replace
from functools import lru_cache
from importlib import metadata
from types import ModuleType

import torch

from conformance.adapters.identity import identity_of
from conformance.adapters.layer import (
    OWN_CONTEXT,
    ContextRoute,
    LayerAdapter,
    class_adapter,
    function_context,
    nano_vllm_context,
)
from conformance.adapters.runner import OWN_RUNNER, RunnerAdapter
from conformance.cases.contexts import build_context as own_build_context
from conformance.platform import npu_modules
from npu_attention import context as own_context_module
from npu_attention.attention import Attention

ENTRY_POINT_GROUP = "npu_conformance.layers"
OWN_LAYER_SPEC = "npu_attention.attention:Attention"
OWN_RUNNER_SPEC = "conformance.cases.contexts:build_context"
OWN_LAYER = LayerAdapter(build=Attention, context=OWN_CONTEXT, name="own", own=True)


class SelectionError(ValueError):
    """A --layer / --layer-path / --layer-context / --runner that cannot be used (the message names it)."""


def add_paths(paths: str | None) -> list[str]:
    """Prepend each of `paths` (os.pathsep-separated) to sys.path; returns them, resolved."""
    added = []
    for raw in (paths or "").split(os.pathsep):
        if not raw:
            continue
        path = os.path.abspath(raw)
        if not os.path.isdir(path):
            raise SelectionError(f"--layer-path {raw}: no such directory")
        if path in sys.path:  # already there further down: moved to the front, as "prepended" promises
            sys.path.remove(path)
        sys.path.insert(0, path)
        added.append(path)
    return added


def _import(option: str, value: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise _import_error(option, value, module_name, exc) from None
    except Exception as exc:  # the user's module raised while importing: bad input, said in one line
        raise SelectionError(f"{option} {value}: importing {module_name} raised {type(exc).__name__}: {exc}") from None


def _import_error(option: str, value: str, what: str, exc: ImportError) -> SelectionError:
    if exc.name in npu_modules.MODULE_NAMES:  # the NPU stack itself is missing, not the user's code
        return SelectionError(f"{option} {value}: importing {what} needs {exc.name}, which this machine does not "
                              "have (without the NPU stack, run --backend emulated)")
    return SelectionError(f"{option} {value}: cannot import {what} ({type(exc).__name__}: {exc}; is --layer-path "
                          "right?)")


def _install_emulator(option: str, value: str) -> None:
    """The emulator as torch_npu / torchair, before the user's module is imported."""
    try:
        npu_modules.install()
    except RuntimeError as exc:  # a real torch_npu is already imported in this process
        raise SelectionError(f"{option} {value}: {exc}") from None


def _resolve(option: str, value: str) -> object:
    """MODULE:ATTR (dotted ATTR allowed) or a registered entry point NAME (for --layer)."""
    if ":" not in value:
        if option != "--layer":
            raise SelectionError(f"{option} {value}: must be MODULE:FUNCTION")
        found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == value]
        if not found:
            names = sorted(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))
            raise SelectionError(f"--layer {value}: not MODULE:CLASS, and no adapter of that name is registered in the "
                                 f"entry-point group {ENTRY_POINT_GROUP} (registered: {names or 'none'})")
        try:
            return found[0].load()
        except ImportError as exc:
            raise _import_error(option, value, f"the entry point {found[0].value}", exc) from None
        except Exception as exc:  # the engine's module raised while importing: said in one line
            raise SelectionError(f"{option} {value}: loading the entry point {found[0].value} raised "
                                 f"{type(exc).__name__}: {exc}") from None
    module_name, _, attr = value.partition(":")
    obj: object = _import(option, value, module_name)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SelectionError(f"{option} {value}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _context_route(value: str | None, layer_class: type | None) -> ContextRoute:
    if value:
        target = _resolve("--layer-context", value) if ":" in value else _import("--layer-context", value, value)
        if isinstance(target, ModuleType):
            if target is own_context_module:
                return OWN_CONTEXT
            try:
                return nano_vllm_context(target)
            except AttributeError as exc:
                raise SelectionError(f"--layer-context {value}: {exc}") from None
        if callable(target):
            return function_context(target, value)
        raise SelectionError(f"--layer-context {value}: must name a context module or a function(context)")
    # Default: the context module the layer's own module takes get_context from (nano-vllm's convention).
    module = sys.modules.get(getattr(layer_class, "__module__", ""), None)
    getter = getattr(module, "get_context", None)
    home = inspect.getmodule(getter) if callable(getter) else None
    if home is own_context_module:
        return OWN_CONTEXT
    if home is not None:
        try:
            return nano_vllm_context(home)
        except AttributeError:
            pass  # not a context module after all: say what to pass instead
    raise SelectionError(f"--layer {layer_class.__module__}:{layer_class.__qualname__}: cannot tell how the Context "
                         "reaches it (its module imports no get_context from a module that also has set_context and "
                         "reset_context); pass --layer-context MODULE (a context "
                         "module in nano-vllm's convention) or MODULE:FUNCTION")


def _as_adapter(spec: str, obj: object, context: str | None) -> LayerAdapter:
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
        adapter = class_adapter(obj, _context_route(context, obj))
        return replace(adapter, identity=identity_of(obj, spec, adapter.name, context=adapter.context.describe))
    if callable(obj) and not isinstance(obj, LayerAdapter) and not isinstance(obj, type):
        obj = _call_adapter_function(spec, obj)
    if not isinstance(obj, LayerAdapter):
        raise SelectionError(f"--layer {spec}: must name an nn.Module class, a LayerAdapter or a function returning "
                             f"one (got {type(obj).__name__})")
    if context:
        obj = replace(obj, context=_context_route(context, None))
    layer_code = getattr(obj, "layer_class", None) or obj.build
    return replace(obj, identity=identity_of(layer_code, spec, obj.name, context=obj.context.describe,
                                             caches=obj.caches.describe))


def _call_adapter_function(spec: str, fn) -> object:
    """A function returning the adapter, called with no arguments."""
    try:
        inspect.signature(fn).bind()
    except TypeError:
        raise SelectionError(f"--layer {spec}: a function named by --layer is called with no arguments and returns a "
                             f"LayerAdapter; this one takes {inspect.signature(fn)}") from None
    except ValueError:
        pass  # no signature to read (a builtin): calling it says the rest
    try:
        return fn()
    except Exception as exc:  # the user's adapter function raised: bad input, said in one line
        raise SelectionError(f"--layer {spec}: calling it raised {type(exc).__name__}: {exc}") from None


def load_layer(spec: str | None, path: str | None = None, context: str | None = None, *,
               backend: str = "emulated") -> LayerAdapter:
    """The layer adapter for `--layer spec` (None: the project's own layer)."""
    if not spec:
        if context:
            raise SelectionError("--layer-context needs --layer (the project's own layer reads npu_attention.context)")
        return own_layer()
    paths = add_paths(path)
    if backend == "emulated":
        _install_emulator("--layer", spec)
    adapter = _as_adapter(spec, _resolve("--layer", spec), context)
    return replace(adapter, identity=adapter.identity | {"layer_path": paths or None, "layer_context": context})


def load_runner(spec: str | None, path: str | None = None, *, backend: str = "emulated") -> RunnerAdapter:
    """The runner adapter for `--runner spec` (None: the project's own runner)."""
    if not spec:
        return OWN_RUNNER
    paths = add_paths(path)
    if backend == "emulated":
        _install_emulator("--runner", spec)
    obj = _resolve("--runner", spec)
    if isinstance(obj, RunnerAdapter):
        return replace(obj, identity=identity_of(obj.build_context, spec, obj.name) | {"layer_path": paths or None})
    if not callable(obj):
        raise SelectionError(f"--runner {spec}: must name a function(step) -> Context or a RunnerAdapter")
    return RunnerAdapter(build_context=obj, name=getattr(obj, "__name__", spec),
                         identity=identity_of(obj, spec, getattr(obj, "__name__", None))
                         | {"layer_path": paths or None})


def own_layer() -> LayerAdapter:
    return OWN_LAYER


@lru_cache(maxsize=2)
def _own_identity(kind: str) -> dict:
    if kind == "layer":
        return identity_of(Attention, OWN_LAYER_SPEC, "own", context=OWN_CONTEXT.describe)
    return identity_of(own_build_context, OWN_RUNNER_SPEC, "own")


def identity(adapter: LayerAdapter | RunnerAdapter) -> dict:
    """What was judged: spec, name, file, sha256, git commit and dirty flag (computed once for the own ones)."""
    if adapter.own:
        return _own_identity("layer" if isinstance(adapter, LayerAdapter) else "runner")
    return adapter.identity
