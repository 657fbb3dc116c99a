"""A run's `model_params`: keyword arguments of its model builder, checked by name against
what the builder takes, at plan time without Keras (built-in and keras.applications tables,
a plug-in's source read with `ast`) and again by signature when the job builds the model."""

from __future__ import annotations

import ast
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from simtrain.common.plugins import PluginError, is_plugin, plugin_source_file, split_plugin
from simtrain.training.applications import ARCHITECTURES
from simtrain.training.options import OptionError

# Builder arguments simtrain sets itself, never a model parameter.
_FIXED_ARGUMENTS = ("input_shape", "num_classes")
# The built-in models' keyword parameters (tests check them against simtrain.training.models).
BUILTIN_MODEL_PARAMETERS: dict[str, tuple[str, ...]] = {
    "small_cnn": ("filters", "dropout"),
    "resnet50": (),
}


def check_builder_parameters(builder: Callable[..., Any], params: Mapping[str, Any]) -> None:
    """OptionError naming `model_params.<key>` when `builder(input_shape, num_classes,
    **params)` would not accept a key (checked by signature, before building)."""
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # a builtin or C callable: let the call tell
        return
    parameters = list(signature.parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        accepted = None
    else:
        # The first two take input_shape and num_classes, whatever their names.
        accepted = [
            p.name for p in parameters[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
    _check_names(params, accepted, getattr(builder, "__name__", "the model"))


def _check_names(params: Mapping[str, Any], accepted: Sequence[str] | None, model: str) -> None:
    for name in params:
        if name in _FIXED_ARGUMENTS:
            raise OptionError(f"model_params.{name}", "set by simtrain, not a model parameter")
        if accepted is not None and name not in accepted:
            takes = ", ".join(accepted) if accepted else "none"
            raise OptionError(
                f"model_params.{name}",
                f"{model} takes no parameter {name!r} (its parameters: {takes})",
            )


def _plugin_parameters(spec: str, search_path: str | os.PathLike | None) -> list[str] | None:
    """A plug-in builder's keyword parameters, read from its source without importing it; None
    when they cannot be read there (not a plain `def`, or it takes **kwargs)."""
    try:
        source = plugin_source_file(spec, "model", search_path)
        _, function = split_plugin(spec, "model")
    except PluginError:
        return None
    if source is None:
        return None
    with open(source, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            if node.args.kwarg is not None:
                return None
            arguments = [*node.args.posonlyargs, *node.args.args]
            keywords = [a.arg for a in [*node.args.args, *node.args.kwonlyargs]]
            positional = {a.arg for a in arguments[:2]}
            return [name for name in keywords if name not in positional]
    return None


def model_params_problem(
    model: str, params: Mapping[str, Any], search_path: str | os.PathLike | None = None
) -> OptionError | None:
    """Why `model` cannot take `model_params`, found without Keras, or None."""
    if not params:
        return None
    if model in BUILTIN_MODEL_PARAMETERS:
        accepted: Sequence[str] | None = BUILTIN_MODEL_PARAMETERS[model]
    elif model in ARCHITECTURES:
        accepted = ARCHITECTURES[model].parameters
    elif is_plugin(model):
        accepted = _plugin_parameters(model, search_path)  # None: checked when the job builds it
    else:
        return None  # an unknown model is reported on its own key
    try:
        _check_names(params, accepted, model)
    except OptionError as error:
        return error
    return None
