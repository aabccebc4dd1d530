"""Load and validate a systpipe configuration: strict YAML, JSON Schema, semantic checks.

Config files are read with a loader stricter than ``yaml.safe_load``: a key given twice, any
YAML tag beyond the plain data types (``!!python/name:``, ``!!python/object``, local ``!tags``)
and Snakemake's ``__use_yte__`` switch are refused with the file, line and column
(:func:`read_config_file`). The workflow re-reads every config file Snakemake loaded with the
same function (``workflow/rules/common.smk``).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import re
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
from .systematics import DIRECTIONS, KINDS, kind_of

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.0.0"
BUILTIN_CLASSIFIERS = tuple(BUILTIN_TYPES)
SIMULATED_PROCESSES = ("ggH_WW", "WW", "ttbar", "Ztautau")
RESERVED_VARIATION = "nominal"
#: Classifier and systematic names: they become file names, wildcards and column names.
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: Systematic names that would collide with the columns and parameters systpipe itself names
#: ``dmu_<name>`` (dmu_stat, dmu_syst, dmu_mcstat, dmu_tot, dmu_lin, dmu_syst_tot, dmu_low,
#: dmu_high), the POI ``mu``, the MC-statistics group and the nominal variation.
RESERVED_SYSTEMATIC_NAMES = frozenset(
    {"nominal", "mu", "mc_stat", "stat", "syst", "mcstat", "tot", "lin", "syst_tot", "low", "high"}
)
#: Prefixes a systematic name may not start with (``dmu_lin_<name>`` columns, staterror modifiers).
RESERVED_SYSTEMATIC_PREFIXES = ("lin_", "staterror")
#: Snakemake's switch that runs a config through YTE templates (Python code) while loading it.
YTE_KEY = "__use_yte__"
#: The YAML tags a config may contain (explicitly or implicitly): plain data only.
ALLOWED_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str", "seq", "map")
)
_TAG_PREFIX = "tag:yaml.org,2002:"


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys (YAML would silently keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _TAG_PREFIX + "merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first given on line {first}); YAML would silently "
                    "keep the last value",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _tag_text(tag: str) -> str:
    return "!!" + tag[len(_TAG_PREFIX) :] if tag.startswith(_TAG_PREFIX) else tag


def _check_tags(node: yaml.Node, where: str) -> None:
    # Iterative walk over the node graph; aliases share nodes, so each is visited once
    # (a "billion laughs" document stays linear).
    stack, seen = [node], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.tag not in ALLOWED_TAGS and current.tag != _TAG_PREFIX + "merge":
            mark = current.start_mark
            raise ConfigError(
                f"{where}:{mark.line + 1}:{mark.column + 1}: YAML tag {_tag_text(current.tag)!r} "
                "is not allowed; a config holds plain data only (null, booleans, numbers, "
                "strings, lists, mappings): quote the value if it is meant as a string"
            )
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack += [key, value]
        elif isinstance(current, yaml.SequenceNode):
            stack += list(current.value)


def parse_yaml(text: str, *, source: str = "<string>") -> Any:
    """Parse one YAML document strictly: duplicate keys and non-data tags are refused.

    Raises:
        ConfigError: the message starts with ``source:line:column``.

    Example:
        >>> parse_yaml("seed: 3\\nfeatures: [a, b]\\n")
        {'seed': 3, 'features': ['a', 'b']}
        >>> parse_yaml("seed: 3\\nseed: 4\\n", source="c.yaml")
        Traceback (most recent call last):
        ...
        systpipe.errors.ConfigError: c.yaml:2:1: not valid YAML: duplicate key 'seed' (first given on line 1); YAML would silently keep the last value
    """
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_tags(node, source)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise ConfigError(f"{where}: not valid YAML: {what or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _refuse_yte(raw: Mapping[str, Any], source: str) -> None:
    if YTE_KEY in raw:
        raise ConfigError(
            f"{source}: key {YTE_KEY!r} is not allowed: Snakemake would run the config through "
            "YTE templating, which evaluates Python expressions written in the file, before the "
            "workflow sees the config (even in a dry run); systpipe configs are plain YAML: "
            "remove the key"
        )


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one config file (a full config or an overlay) strictly, without validating it.

    Refuses what Snakemake's own loader would accept silently or act on: duplicate keys,
    YAML tags beyond plain data (``!!python/name:`` ...), the ``__use_yte__`` switch, and a
    document that is not a mapping. An empty file is an empty mapping.

    Raises:
        ConfigError: the file is missing or unreadable, or one of the above (file, line, column).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text: {exc}") from exc
    raw = parse_yaml(text, source=str(path))
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {path}: expected a mapping of keys at the top level, got "
            f"{type(raw).__name__}"
        )
    _refuse_yte(raw, str(path))
    return raw


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
    """Read a YAML config strictly (:func:`read_config_file`), validate it and fill in defaults.

    Raises:
        ConfigError: the file is missing, not YAML, holds a refused construct, or fails
            validation.
    """
    return validate_config(read_config_file(path), source=str(path))


def _refuse_non_data(value: Any, key: str, source: str) -> None:
    # A config that did not come through read_config_file (Snakemake loads YAML with its own,
    # more permissive loader) may hold Python objects, e.g. a function from !!python/name:.
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(
                    f"invalid {source}: key {k!r} in '{key or '<top level>'}' is not a string"
                )
            _refuse_non_data(v, f"{key}.{k}" if key else k, source)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_non_data(v, f"{key}[{i}]", source)
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise ConfigError(
            f"invalid {source}: '{key}' holds a {type(value).__module__}.{type(value).__name__} "
            "object; a config holds plain data only (was it written with a !!python tag?)"
        )


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
    _refuse_yte(config, f"invalid {source}")
    _refuse_non_data(config, "", source)
    _check_names(config, source)  # before the schema, whose pattern message says less
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


def _check_name(name: str, key: str, source: str) -> None:
    # The schema's pattern ends in "$", which Python's re also matches before a final
    # newline: "hgb\n" would pass it and create files with line breaks under results/.
    if not NAME_RE.fullmatch(name):
        raise ConfigError(
            f"invalid {source}: '{key}' = {name!r}: expected a name of letters, digits and "
            "underscores starting with a letter (it becomes file names and wildcards: no "
            "newline, space or path separator)"
        )


def _check_label_text(name: Any, key: str, source: str) -> None:
    # Process and sample names: free text, but never control characters (newlines) or path
    # separators, and no surrounding blanks that would make two names look equal.
    if not isinstance(name, str):
        return
    bad = [c for c in name if ord(c) < 32 or ord(c) == 127 or c in "/\\"]
    if not name.strip() or bad or name != name.strip():
        why = (
            f"contains {sorted(set(bad))}"
            if bad
            else ("is blank" if not name.strip() else "has leading or trailing blanks")
        )
        raise ConfigError(
            f"invalid {source}: '{key}' = {name!r} {why}; process and sample names may not "
            "contain newlines, control characters or path separators ('/' or '\\')"
        )


def _check_process_names(cfg: dict[str, Any], source: str) -> None:
    files = cfg.get("files") or {}
    for i, sample in enumerate(files.get("samples") or []):
        if not isinstance(sample, Mapping):
            continue
        for field in ("name", "process"):
            _check_label_text(sample.get(field), f"files.samples[{i}].{field}", source)
        for code, proc in (sample.get("process_map") or {}).items():
            _check_label_text(proc, f"files.samples[{i}].process_map.{code}", source)
    for i, syst in enumerate(cfg["systematics"]):
        for j, proc in enumerate(syst.get("processes") or []):
            _check_label_text(proc, f"systematics[{i}].processes[{j}]", source)


def _check_increasing(pair: Any, key: str, source: str, what: str) -> None:
    lo, hi = pair
    if not lo < hi:
        raise ConfigError(f"invalid {source}: '{key}' = {list(pair)!r}: expected {what}")


def _check_names(config: Mapping[str, Any], source: str) -> None:
    for section in ("classifiers", "systematics"):
        entries = config.get(section)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                _check_name(entry["name"], f"{section}[{i}].name", source)


def _semantic_checks(cfg: dict[str, Any], source: str) -> None:
    _check_process_names(cfg, source)
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
    for i, clf in enumerate(cfg["classifiers"]):
        if clf.get("systematics_aware") is not None:
            from .augment import parse_aware

            try:
                parse_aware(clf["systematics_aware"], cfg["systematics"],
                            key=f"classifiers[{i}].systematics_aware")  # fmt: skip
            except ConfigError as exc:
                raise ConfigError(f"invalid {source}: {exc}") from exc
    for key, thr in (
        ("scan.thresholds", cfg["scan"]["thresholds"]),
        ("fit.optimise.thresholds", cfg["fit"]["optimise"]["thresholds"]),
    ):
        if thr["start"] >= thr["stop"]:
            raise ConfigError(
                f"invalid {source}: '{key}.start' must be below '{key}.stop' "
                f"(got start {thr['start']!r}, stop {thr['stop']!r})"
            )
    if cfg["input"]["source"] == "files":
        files = cfg.get("files") or {}
        if not files.get("samples"):
            raise ConfigError(
                f"invalid {source}: 'files.samples' is required when 'input.source' is 'files'"
            )
        produced = {
            *files.get("columns", {}),
            *files.get("derive", []),
            *files.get("derived_columns", {}),
        }
        unmapped = [f for f in cfg["features"] if f not in produced]
        if unmapped:
            raise ConfigError(
                f"invalid {source}: 'features' {unmapped} have no entry in 'files.columns' "
                "(canonical name -> column in the files), 'files.derive' or "
                "'files.derived_columns'"
            )
    for mode in cfg["toys"]["modes"]:
        toy_count(cfg["toys"], mode)
    jobs = sum(toy_chunk_counts(cfg["toys"]).values())
    if jobs > MAX_TOY_JOBS:
        raise ConfigError(
            f"invalid {source}: 'toys.n_toys' / 'toys.chunk_size' make {jobs} toy jobs per "
            f"classifier (more than {MAX_TOY_JOBS}); raise 'toys.chunk_size' (the batched fitter "
            "does thousands of toys per second)"
        )
    from .stat.priors import parse_priors

    try:
        parse_priors(cfg["toys"]["priors"], cfg["systematics"])
    except ConfigError as exc:
        raise ConfigError(f"invalid {source}: {exc}") from None
    lo, hi = cfg["toys"]["mu_range"]
    if not lo < hi:
        raise ConfigError(
            f"invalid {source}: 'toys.mu_range' must be [lo, hi] with lo < hi, got {[lo, hi]}"
        )
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
    _check_increasing(
        fit["poi_bounds"], "fit.poi_bounds", source, "[lower, upper] with lower < upper"
    )
    if not all(math.isfinite(b) for b in fit["poi_bounds"]):
        raise ConfigError(
            f"invalid {source}: 'fit.poi_bounds' = {fit['poi_bounds']!r}: expected finite bounds"
        )
    unknown = sorted(
        set(cfg["toys"].get("classifiers", [])) - {c["name"] for c in cfg["classifiers"]}
    )
    if unknown:
        raise ConfigError(
            f"invalid {source}: 'toys.classifiers' names unknown classifier(s) {unknown}"
        )
    _check_increasing(
        cfg["plots"]["luminosity_scale"], "plots.luminosity_scale", source, "increasing values"
    )


def _check_systematic(syst: dict[str, Any], key: str, source: str) -> None:
    kind = kind_of(syst["type"])
    name = syst["name"]
    if name == RESERVED_VARIATION:
        raise ConfigError(f"invalid {source}: '{key}.name' may not be 'nominal' (reserved)")
    if name in RESERVED_SYSTEMATIC_NAMES or name.startswith(RESERVED_SYSTEMATIC_PREFIXES):
        raise ConfigError(
            f"invalid {source}: '{key}.name' = {name!r} is reserved: the names "
            f"{sorted(RESERVED_SYSTEMATIC_NAMES)} and the prefixes "
            f"{list(RESERVED_SYSTEMATIC_PREFIXES)} clash with columns and fit parameters "
            "systpipe names itself (dmu_stat, dmu_lin_<name>, mu, mc_stat, ...)"
        )
    suffix = next((d for d in DIRECTIONS if name.endswith(f"_{d}")), None)
    if suffix is not None:
        raise ConfigError(
            f"invalid {source}: '{key}.name' = {name!r} ends in '_{suffix}': variations are "
            f"named '<name>_up' and '<name>_down', so a name may not end in a direction "
            "(underscores elsewhere are fine, e.g. 'tau_es')"
        )
    if kind.name in ("norm", "scale") and syst.get("delta") is not None and syst["delta"] >= 1:
        raise ConfigError(
            f"invalid {source}: '{key}.delta' = {syst['delta']!r} for the {kind.name} systematic "
            f"{name!r}: expected a value below 1, since the down variation multiplies "
            f"{'weights' if kind.name == 'norm' else 'the columns'} by 1 - delta (0 or negative)"
        )
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


def chunk_size_of(total: int, chunk_size: int, chunk: int, what: str) -> int:
    """Items in chunk ``chunk`` of ``total`` split into chunks of ``chunk_size``: ``chunk_size``,
    or what is left in the last one (toys and hypothesis-test toys alike).

    Example:
        >>> [chunk_size_of(2500, 1000, c, "hypotest") for c in range(3)]
        [1000, 1000, 500]
    """
    count = min(chunk_size, total - int(chunk) * chunk_size)
    if count <= 0:
        raise ConfigError(f"{what} has no chunk {chunk} ({total} in chunks of {chunk_size})")
    return count


def toy_chunk_size(toys: Mapping[str, Any], mode: str, chunk: int) -> int:
    """Toys in chunk ``chunk`` of ``mode``: ``chunk_size``, or what is left in the last one.

    Example:
        >>> cfg = {"n_toys": 600, "chunk_size": 250, "modes": ["frequentist"]}
        >>> [toy_chunk_size(cfg, "frequentist", c) for c in range(3)]
        [250, 250, 100]
    """
    return chunk_size_of(toy_count(toys, mode), toys["chunk_size"], chunk, f"toys: mode {mode!r}")


#: At most this many toy jobs per classifier: a dry run over many more takes minutes and GBs.
MAX_TOY_JOBS = 400


__all__ = [
    "MAX_TOY_JOBS",
    "ConfigError",
    "config_hash",
    "load_config",
    "load_schema",
    "parse_yaml",
    "read_config_file",
    "toy_chunk_counts",
    "toy_chunk_size",
    "toy_count",
    "validate_config",
]
