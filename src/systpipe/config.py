"""Load and validate a systpipe configuration: JSON Schema plus semantic checks."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError
from .models import BUILTIN_TYPES, classifier_types
from .plugins import load_plugins
from .provenance import config_hash
from .systematics import KINDS, kind_of

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.0.0"
BUILTIN_CLASSIFIERS = tuple(BUILTIN_TYPES)
SIMULATED_PROCESSES = ("ggH_WW", "WW", "ttbar", "Ztautau")
RESERVED_VARIATION = "nominal"


@cache
def schema_file() -> dict[str, Any]:
    """The config JSON Schema exactly as shipped with the package (cached; do not modify)."""
    text = resources.files("systpipe").joinpath("schemas/config.schema.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def load_schema() -> dict[str, Any]:
    """The config JSON Schema with the enums of the extension registries filled in.

    The schema file lists the built-in systematic kinds and statistical methods; plugins
    registered through the ``systpipe.plugins`` entry points add theirs here (docs/extending.md).
    """
    from .stat.methods import METHODS

    load_plugins()
    schema = copy.deepcopy(schema_file())
    props = schema["properties"]
    props["systematics"]["items"]["properties"]["type"]["enum"] = list(KINDS)
    props["toys"]["properties"]["methods"]["items"]["enum"] = list(METHODS)
    return schema


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config with safe loading, validate it and fill in defaults.

    Raises:
        ConfigError: the file is missing, not YAML, or fails validation.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    return validate_config(raw, source=str(path))


def _key_path(error: jsonschema.ValidationError) -> str:
    parts: list[str] = []
    for part in error.absolute_path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part}" if parts else str(part))
    return "".join(parts) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = (
            sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        )
        where = "top level" if key == "<top level>" else f"'{key}'"
        return f"unknown key(s) {extra} in {where}; expected one of {allowed}"
    if error.validator == "required":
        return f"'{key}': {error.message}"
    expected = {
        "type": lambda: f"expected type {error.validator_value}",
        "enum": lambda: f"expected one of {error.validator_value}",
        "minimum": lambda: f"expected a value >= {error.validator_value}",
        "maximum": lambda: f"expected a value <= {error.validator_value}",
        "exclusiveMinimum": lambda: f"expected a value > {error.validator_value}",
        "exclusiveMaximum": lambda: f"expected a value < {error.validator_value}",
        "pattern": lambda: f"expected a name matching {error.validator_value}",
        "minItems": lambda: f"expected at least {error.validator_value} item(s)",
        "maxItems": lambda: f"expected at most {error.validator_value} item(s)",
    }.get(str(error.validator), lambda: error.message)()
    return f"'{key}' = {error.instance!r}: {expected}"


def _fill_defaults(instance: Any, schema: Mapping[str, Any]) -> None:
    """Insert schema defaults for missing keys, recursively (objects and arrays of objects)."""
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                _fill_defaults(instance[key], sub)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _fill_defaults(item, schema["items"])


def validate_config(config: Mapping[str, Any], *, source: str = "config") -> dict[str, Any]:
    """Validate ``config`` against the schema and semantic rules; return a filled-in copy.

    Example:
        >>> cfg = validate_config({"seed": 3})
        >>> cfg["split"]["test_fraction"], [c["name"] for c in cfg["classifiers"]]
        (0.5, ['hgb', 'lgbm', 'xgb', 'rf'])
    """
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(f"invalid {source}: {_describe(best)}")
    cfg = copy.deepcopy(dict(config))
    _fill_defaults(cfg, schema)
    _semantic_checks(cfg, source)
    return cfg


def _unique(names: list[str], key: str, source: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(
                f"invalid {source}: '{key}' has the name {name!r} twice; names must be unique"
            )
        seen.add(name)


def _semantic_checks(cfg: dict[str, Any], source: str) -> None:
    _unique([c["name"] for c in cfg["classifiers"]], "classifiers[].name", source)
    _unique([s["name"] for s in cfg["systematics"]], "systematics[].name", source)
    for i, clf in enumerate(cfg["classifiers"]):
        type_ = clf.setdefault("type", clf["name"])
        known = list(classifier_types())  # built-in names and those of plugin libraries
        if type_ not in known and ":" not in type_ and "." not in type_:
            raise ConfigError(
                f"invalid {source}: 'classifiers[{i}].type' = {type_!r}: expected one of "
                f"{known} or an import path 'package.module:Class'"
            )
    for i, syst in enumerate(cfg["systematics"]):
        _check_systematic(syst, f"systematics[{i}]", source)
    thr = cfg["scan"]["thresholds"]
    if thr["start"] >= thr["stop"]:
        raise ConfigError(
            f"invalid {source}: 'scan.thresholds.start' must be below 'scan.thresholds.stop'"
        )
    if cfg["input"]["source"] == "files":
        files = cfg.get("files") or {}
        if not files.get("samples"):
            raise ConfigError(
                f"invalid {source}: 'files.samples' is required when 'input.source' is 'files'"
            )
        unmapped = [f for f in cfg["features"] if f not in files.get("columns", {})]
        if unmapped:
            raise ConfigError(
                f"invalid {source}: 'features' {unmapped} have no entry in 'files.columns' "
                "(canonical name -> column in the files)"
            )
    for mode in cfg["toys"]["modes"]:
        toy_count(cfg["toys"], mode)
    fit = cfg["fit"]
    data = fit["data"]
    if data["source"] == "file":
        if not data.get("path"):
            raise ConfigError(
                f"invalid {source}: 'fit.data.source' is 'file' but 'fit.data.path' is not set"
            )
        if not Path(data["path"]).is_file():
            raise ConfigError(
                f"invalid {source}: 'fit.data.path' = {data['path']!r}: file not found"
            )
    if fit["score_min"] >= fit["score_max"]:
        raise ConfigError(f"invalid {source}: 'fit.score_min' must be below 'fit.score_max'")
    unknown = sorted(
        set(cfg["toys"].get("classifiers", [])) - {c["name"] for c in cfg["classifiers"]}
    )
    if unknown:
        raise ConfigError(
            f"invalid {source}: 'toys.classifiers' names unknown classifier(s) {unknown}"
        )
    lo, hi = cfg["plots"]["luminosity_scale"]
    if lo >= hi:
        raise ConfigError(f"invalid {source}: 'plots.luminosity_scale' must be increasing")


def _check_systematic(syst: dict[str, Any], key: str, source: str) -> None:
    kind = kind_of(syst["type"])
    if syst["name"] == RESERVED_VARIATION:
        raise ConfigError(f"invalid {source}: '{key}.name' may not be 'nominal' (reserved)")
    for req in kind.required:
        if req not in syst:
            raise ConfigError(
                f"invalid {source}: '{key}.{req}' is required for a {kind.name!r} systematic"
            )
    # Keys with schema defaults (recompute_derived, linear_columns) are filled in for every
    # systematic; the kinds that do not take them drop them instead of refusing them.
    defaults = {"recompute_derived", "linear_columns"}
    specific = set().union(*(k.allowed for k in KINDS.values()))
    for extra in sorted(set(syst) & specific - kind.allowed - defaults):
        raise ConfigError(
            f"invalid {source}: '{key}.{extra}' does not apply to a {kind.name!r} systematic"
        )
    for default_key in sorted(defaults - kind.allowed):
        syst.pop(default_key, None)


def toy_count(toys: Mapping[str, Any], mode: str) -> int:
    """Number of pseudo-experiments of ``mode``: ``toys.n_toys`` is one count for every mode
    or a mapping mode -> count.

    Example:
        >>> toy_count({"n_toys": 500}, "challenge"), toy_count({"n_toys": {"challenge": 200}}, "challenge")
        (500, 200)
    """
    n = toys["n_toys"]
    if isinstance(n, Mapping):
        if mode not in n:
            raise ConfigError(
                f"'toys.n_toys' has no count for mode {mode!r}; give one for each of 'toys.modes'"
            )
        return int(n[mode])
    return int(n)


def toy_chunk_counts(toys: Mapping[str, Any]) -> dict[str, int]:
    """Mode -> number of jobs (chunks of ``toys.chunk_size``) that scatter its toys.

    Example:
        >>> toy_chunk_counts({"n_toys": {"frequentist": 1000, "challenge": 200}, "chunk_size": 250,
        ...                   "modes": ["frequentist", "challenge"]})
        {'frequentist': 4, 'challenge': 1}
    """
    return {mode: -(-toy_count(toys, mode) // toys["chunk_size"]) for mode in toys["modes"]}


__all__ = [
    "ConfigError",
    "config_hash",
    "load_config",
    "load_schema",
    "toy_chunk_counts",
    "toy_count",
    "validate_config",
]
