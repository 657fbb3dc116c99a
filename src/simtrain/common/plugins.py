"""Plug-ins by import path, 'package.module:function', for simulators and models alike.

`pkgutil.resolve_name` does the importing; this module adds the workflow's working directory
to the search path, checks the syntax first (resolve_name would accept 'module:' as the
module itself) and turns its errors into messages that name the plug-in.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Callable

PLUGIN_SYNTAX = "'package.module:function'"


class PluginError(ValueError):
    """A plug-in spec is malformed, does not import, or names no callable."""


def is_plugin(spec: str) -> bool:
    return isinstance(spec, str) and ":" in spec


def split_plugin(spec: str, kind: str) -> tuple[str, str]:
    """(module, function) of 'package.module:function'; PluginError if malformed."""
    module, _, function = spec.partition(":")
    parts = [*module.split("."), *function.split(".")]
    if not all(part.isidentifier() for part in parts):
        raise PluginError(f"malformed {kind} {spec!r}: expected {PLUGIN_SYNTAX}")
    return module, function


def add_search_path(search_path: str | os.PathLike | None) -> None:
    """Put the workflow's working directory first on sys.path so its modules import."""
    if search_path is None:
        return
    path = os.path.abspath(search_path)
    if path not in sys.path:
        sys.path.insert(0, path)
    importlib.invalidate_caches()  # files written since the last import must be seen


def resolve_plugin(
    spec: str, kind: str, search_path: str | os.PathLike | None = None
) -> Callable[..., object]:
    """The callable a plug-in spec names, imported from search_path or the installed packages."""
    module_name, function_name = split_plugin(spec, kind)
    add_search_path(search_path)
    try:
        function = pkgutil.resolve_name(spec)
    except ImportError as error:
        raise PluginError(
            f"{kind} {spec!r}: cannot import module {module_name!r}: {error}"
        ) from error
    except AttributeError as error:
        module = sys.modules.get(module_name)
        where = f"module {module_name!r} ({getattr(module, '__file__', '?')})"
        raise PluginError(f"{kind} {spec!r}: {where} has no attribute {function_name!r}") from error
    if not callable(function):
        raise PluginError(
            f"{kind} {spec!r}: {function_name!r} is a {type(function).__name__}, not callable"
        )
    return function


def plugin_source_file(
    spec: str, kind: str, search_path: str | os.PathLike | None = None
) -> str | None:
    """The .py file defining a plug-in, found without importing it (a workflow input, so
    editing it reruns the jobs that use it); None when it cannot be found."""
    module_name, _ = split_plugin(spec, kind)
    add_search_path(search_path)
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):  # a parent package is missing
        return None
    origin = found.origin if found is not None else None
    return origin if origin is not None and os.path.isfile(origin) else None
