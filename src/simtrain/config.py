"""Checks on a schema-validated config that JSON Schema cannot express.

Run by the Snakefile before any job starts, so a bad config fails in seconds with the
offending key named, and never after hours of simulation.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import yaml

from simtrain.common.plugins import PluginError, is_plugin, plugin_source_file
from simtrain.common.runs import FIX_SEPARATOR
from simtrain.data.folders import (
    FolderError,
    did_you_mean,
    planned_images,
    planned_labelled_images,
)
from simtrain.data.simulate import simulate_image
from simtrain.data.simulators import SimulatorError, resolve_simulator
from simtrain.data.split import validation_count
from simtrain.training.applications import architecture_problem
from simtrain.training.model_params import model_params_problem
from simtrain.training.options import OptionError, non_default_options, training_options


class ConfigError(ValueError):
    """A config value is invalid; the message names its key."""


def config_error_report(error: ConfigError, config_files: Sequence[str | os.PathLike]) -> str:
    """The few lines a person reads when a config is rejected: what, where, which file."""
    files = ", ".join(map(str, config_files)) or "(none; --config only)"
    lines = str(error).splitlines()
    return "\n".join(
        ["Invalid config: " + lines[0], *("  " + line for line in lines[1:])]
        + [f"  config file: {files}", "Nothing was run."]
    )


def check_schema(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Validate against the JSON schema; raise ConfigError with a short, readable message.

    Snakemake's own `validate` prints the whole schema and config; this names only the key,
    its value and what is allowed.
    """
    check_names(config)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(describe_schema_error(error))


def _key_path(path: Sequence[Any]) -> str:
    return ".".join(map(str, path)) or "(top level)"


def _kind(kinds: str | list[str]) -> str:
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return " or ".join("null" if k == "null" else f"a{'n' * (k[0] in 'aeiou')} {k}" for k in kinds)


def _allowed(error: jsonschema.ValidationError) -> str:
    """What the failing keyword allows, in words."""
    keyword, expected, schema = error.validator, error.validator_value, error.schema
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if keyword in bounds:
        limits = " and ".join(f"{bounds[k]} {schema[k]}" for k in bounds if k in schema)
        kinds = schema.get("type", "number")
        numeric = [k for k in kinds if k != "null"] if isinstance(kinds, list) else kinds
        return f"{_kind(numeric)} {limits}"
    if keyword == "type":
        return _kind(expected)
    if keyword == "enum":
        return "one of " + ", ".join(json.dumps(v) for v in expected)
    if keyword == "minLength":
        return f"a string of at least {expected} character(s)"
    if keyword == "minProperties":
        return f"at least {expected} entries"
    if keyword == "anyOf" and all("type" in option for option in expected):
        return " or ".join(_kind(option["type"]) for option in expected)  # e.g. null or a mapping
    return f"{keyword}: {expected}"


# `--config 'runs={small_cnn: {epochs: 3}}'`: Snakemake reads values nested in a --config
# entry with YAML's BaseLoader, so every one of them arrives as text ('3').
NESTED_CONFIG_HINT = [
    "if it came from --config: Snakemake reads values nested in {...} as text; change a run "
    "with a file instead,",
    "e.g. mine.yaml holding `runs: {small_cnn: {epochs: 3}}`, overlaid on the config with "
    "--configfile config/config.yaml mine.yaml",
]


def _reads_as_other_type(value: object) -> bool:
    """Text that YAML reads as a number, boolean or null when unquoted ('3', 'true')."""
    if not isinstance(value, str):
        return False
    try:
        return not isinstance(yaml.safe_load(value), str)
    except yaml.YAMLError:
        return False


def describe_schema_error(error: jsonschema.ValidationError) -> str:
    """Key path, bad value and what is allowed (or the closest known key for a typo)."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in known]
        key = unknown[0] if unknown else "?"
        lines = [f"{_key_path([*path, key])}: unknown key"]
        close = difflib.get_close_matches(str(key), known, n=1)
        if close:
            lines.append(f"did you mean {close[0]!r}?")
        lines.append(f"known keys here: {', '.join(known)}")
        return "\n".join(lines)
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return f"{_key_path([*path, *missing[:1]])}: required key is missing"
    if "propertyNames" in error.schema_path:
        # The error is about a name, one level down: jsonschema reports the parent's path.
        return (
            f"{_key_path([*path, error.instance])}: invalid name ({error.message})\n"
            "allowed: letters, digits, '_' and '-', starting with a letter or digit"
        )
    lines = [f"{_key_path(path)}: {error.message}"]
    if error.validator != "type":  # the message already says which type
        lines.append(f"allowed: {_allowed(error)}")
    elif len(path) > 1 and _reads_as_other_type(error.instance):
        lines += NESTED_CONFIG_HINT
    description = " ".join(str(error.schema.get("description", "")).split())
    if description:
        lines.append(f"meaning: {description}")
    return "\n".join(lines)


def class_image_count(config: Mapping[str, Any], name: str) -> int:
    """Images of a class before the split: images_per_class, or its folder's images."""
    spec = config["classes"][name]
    if "folder" not in spec:
        return config["images_per_class"]
    return len(planned_images(spec["folder"], f"classes.{name}.folder"))


def split_sizes(config: Mapping[str, Any]) -> tuple[int, int]:
    """(training images, validation images) the split will produce."""
    counts = [class_image_count(config, name) for name in config["classes"]]
    fraction = config["validation_fraction"]
    validation = sum(validation_count(n, fraction) for n in counts)
    return sum(counts) - validation, validation


def _check_folder_class(config: Mapping[str, Any], name: str, spec: Mapping[str, Any]) -> None:
    """A folder class: no simulator settings, a folder of images, enough of them to split."""
    if "simulator" in spec:
        raise ConfigError(
            f"classes.{name}: has both simulator and folder; a class takes its images from one"
        )
    if spec.get("params"):
        raise ConfigError(f"classes.{name}.params: only a simulator takes params, not a folder")
    key = f"classes.{name}.folder"
    try:
        count = class_image_count(config, name)
    except FolderError as error:
        raise ConfigError(str(error)) from error
    if count < 2:
        raise ConfigError(
            f"{key}: {spec['folder']} holds {count} image; the split needs at least 2 per class "
            "(one for training, one for validation)"
        )


def check_classes(config: Mapping[str, Any], search_path: str | os.PathLike | None) -> None:
    """Every simulator resolves and its first image meets the output contract; every class
    folder lists enough images (by name only: reading them is the ingest jobs' work)."""
    for name, spec in config["classes"].items():
        if "folder" in spec:
            _check_folder_class(config, name, spec)
            continue
        if "simulator" not in spec:
            raise ConfigError(f"classes.{name}: needs a simulator or a folder of images")
        key = f"classes.{name}.simulator"
        try:
            function = resolve_simulator(spec["simulator"], search_path)
        except SimulatorError as error:
            raise ConfigError(f"{key}: {error}") from error
        try:
            simulate_image(
                function,
                class_name=name,
                simulator_name=spec["simulator"],
                params=spec.get("params", {}),
                seed=config["seed"],
                index=0,
                size=config["image_size"],
            )
        except ValueError as error:
            raise ConfigError(f"classes.{name}: {error}") from error


def check_folders(config: Mapping[str, Any]) -> None:
    """Evaluation sets are labelled folders of the configured classes (typos get a
    did-you-mean); prediction folders hold images and name a configured run and replicate."""
    classes = sorted(config["classes"])
    try:
        for name, folder in config["evaluation"].items():
            planned_labelled_images(folder, tuple(classes), f"evaluation.{name}")
        for name, spec in config["predict"].items():
            key = f"predict.{name}"
            planned_images(spec["folder"], f"{key}.folder")
            run = spec["run"]
            if run not in config["runs"]:
                raise ConfigError(
                    f"{key}.run: {run!r} is not a configured run "
                    f"({', '.join(config['runs']) or 'none'}){did_you_mean(run, config['runs'])}"
                )
            settings = resolve_run(config, run)
            if spec["replicate"] >= settings["repeats"]:
                raise ConfigError(
                    f"{key}.replicate: {spec['replicate']} but run {run!r} has "
                    f"{settings['repeats']} replicate(s) (0 .. {settings['repeats'] - 1})"
                )
            if settings["model"] == BASELINE_MODEL and spec["model"] != "final":
                raise ConfigError(
                    f"{key}.model: the baseline has one fitted model; use final, "
                    f"not {spec['model']!r}"
                )
    except FolderError as error:
        raise ConfigError(str(error)) from error


# Built-in model names, kept here so planning a workflow does not import Keras
# (tests check they match simtrain.training.models); keras.applications names are
# checked by simtrain.training.applications, Keras-free too.
KERAS_MODELS = ("resnet50", "small_cnn")
BASELINE_MODEL = "baseline"


def resolve_run(config: Mapping[str, Any], run: str) -> dict[str, Any]:
    """A run's complete settings: seed and verify_fixes default to the top-level keys."""
    settings = dict(config["runs"][run])
    if settings.get("seed") is None:
        settings["seed"] = config["seed"]
    settings.setdefault("repeats", 1)
    if settings.get("verify_fixes") is None:
        deep = settings.get("model") != BASELINE_MODEL
        settings["verify_fixes"] = bool(config.get("verify_fixes", False)) and deep
    return settings


def check_runs(config: Mapping[str, Any], search_path: str | os.PathLike | None) -> None:
    """Model names resolve and step counts fit the data the split will produce."""
    train_total, validation_total = split_sizes(config)
    n_classes = len(config["classes"])
    for run in config["runs"]:
        settings = resolve_run(config, run)
        key = f"runs.{run}"
        if FIX_SEPARATOR in run:
            raise ConfigError(
                f"{key}: run names may not contain {FIX_SEPARATOR!r}; it marks the sibling "
                "runs that verify fixes"
            )
        if settings["model"] == BASELINE_MODEL and config["runs"][run].get("verify_fixes"):
            raise ConfigError(
                f"{key}.verify_fixes: the baseline has no training settings to change; "
                "verify the fixes of deep runs only"
            )
        model = settings["model"]
        if is_plugin(model):
            _check_importable(f"{key}.model", model, search_path)
        elif model not in (*KERAS_MODELS, BASELINE_MODEL):
            # A keras.applications name: known, and able to take the run's images.
            problem = architecture_problem(
                model, config["image_size"], other_models=(*KERAS_MODELS, BASELINE_MODEL)
            )
            if problem is not None:
                raise ConfigError(f"{key}.model: {problem}")
        train_images = settings["train_images"]
        if train_images is not None and not n_classes <= train_images <= train_total:
            raise ConfigError(
                f"{key}.train_images: {train_images} is outside [{n_classes}, {train_total}] "
                f"(one image per class at least; the split yields {train_total} training images)"
            )
        batch = settings["batch_size"]
        for name, images in (
            ("steps_per_epoch", train_images or train_total),
            ("validation_steps", validation_total),
        ):
            steps, available = settings[name], math.ceil(images / batch)
            if steps is not None and steps > available:
                raise ConfigError(
                    f"{key}.{name}: {steps} batches of {batch} exceed the data "
                    f"({images} images = {available} batches); use null for the whole set"
                )
        _check_training_options(key, settings, search_path)


def _check_training_options(
    key: str, settings: Mapping[str, Any], search_path: str | os.PathLike | None
) -> None:
    """The options fit together and the model takes its model_params (the baseline: none)."""
    if settings["model"] == BASELINE_MODEL:
        options = non_default_options(settings)
        if options:
            raise ConfigError(
                f"{key}.{options[0]}: the baseline has no training options; deep runs only"
            )
        return
    try:
        options = training_options(settings)
    except OptionError as error:
        raise ConfigError(f"{key}.{error}") from error
    problem = model_params_problem(settings["model"], options.model_params, search_path)
    if problem is not None:
        raise ConfigError(f"{key}.{problem}")


def _check_importable(key: str, spec: str, search_path: str | os.PathLike | None) -> None:
    """The plug-in's module is findable; not imported, so planning never loads Keras."""
    try:
        source = plugin_source_file(spec, "model", search_path)
    except PluginError as error:
        raise ConfigError(f"{key}: {error}") from error
    if source is None:
        module = spec.partition(":")[0]
        raise ConfigError(f"{key}: no module named {module!r} (searched {search_path} too)")


# Unquoted names YAML (1.1, as Snakemake and PyYAML read it) turns into something else.
RETYPED_NAMES = (
    "unquoted, null and ~ are nothing, yes/no/on/off/true/false are booleans, and names of "
    "digits such as 007 are numbers"
)


def _yaml_kind(value: object) -> str:
    if value is None:
        return "null (nothing)"
    return f"the {type(value).__name__} {value!r}"


def check_names(config: Mapping[str, Any], path: Sequence[str] = ()) -> None:
    """Every mapping key is text: a class or run named 007, yes or null in a --config value
    reaches the config as a number, a boolean or None, and the schema checks only text."""
    for key, value in config.items():
        if not isinstance(key, str):
            raise ConfigError(
                f"{_key_path([*path, str(key)])}: the name is {_yaml_kind(key)}, not text\n"
                f'quote it in the YAML ("{key}"): {RETYPED_NAMES}'
            )
        if isinstance(value, Mapping):
            check_names(value, [*path, key])


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)  # resolve '<<' merge keys first; they may repeat keys
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        where = f"{key_node.start_mark.name}, line {key_node.start_mark.line + 1}"
        if key in seen:
            raise ConfigError(f"{where}: duplicate key {key!r}")
        if not isinstance(key, str):
            written = key_node.value if isinstance(key_node, yaml.ScalarNode) else key
            raise ConfigError(
                f"{where}: the name {written} is read by YAML as {_yaml_kind(key)}, not as "
                f'the text {str(written)!r}\nquote it: "{written}": ({RETYPED_NAMES})'
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def check_config_files(paths: list[str | os.PathLike]) -> None:
    """Reject duplicate keys (e.g. two classes of the same name), which YAML would merge, and
    names YAML would re-type (`007:` as 7, `yes:` as True, `null:` as None), with the line."""
    for path in paths:
        with open(path) as handle:
            yaml.load(handle, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
