"""Provenance: derived seeds, code fingerprints, package versions and the git commit."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import subprocess
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from . import __version__

VERSIONED_PACKAGES = (
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "lightgbm",
    "xgboost-cpu",
    "xgboost",
    "skops",
    "pyhf",
    "iminuit",
    "uproot",
    "matplotlib",
    "mplhep",
    "snakemake",
)


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable short hash of a (validated) config, recorded as provenance.

    Example:
        >>> config_hash({"a": 1}) == config_hash({"a": 1})
        True
    """
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def derive_seed(master: int, *names: str) -> int:
    """A 32-bit seed that depends only on the master seed and the names given.

    Example:
        >>> derive_seed(1, "split") == derive_seed(1, "split") != derive_seed(2, "split")
        True
    """
    blob = ":".join([str(master), *names]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")


@cache
def _module_path(module: str) -> Path | None:
    """Source file of a module inside the systpipe package, or None outside it."""
    parts = module.split(".")
    if parts[0] != "systpipe":
        return None
    base = Path(str(resources.files("systpipe"))).joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache  # a module is imported by many steps: parse it once per process
def _imported_modules(module: str, path: Path) -> frozenset[str]:
    """Modules inside systpipe that ``module`` imports, at module or function level.

    An import of one of the module's own parent packages is not followed: a package's
    ``__init__`` only gathers its submodules, and following it would make every module of a
    package depend on all the others.
    """
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        for target in targets:
            while target and _module_path(target) is None:
                target = target.rpartition(".")[0]
            if target and not module.startswith(target + ".") and target != module:
                found.add(target)
    return frozenset(found)


@cache
def import_closure(module: str) -> tuple[str, ...]:
    """``module`` and every systpipe module it imports, directly or not (sorted).

    Example:
        >>> "systpipe.errors" in import_closure("systpipe.config")
        True
    """
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        path = _module_path(current)
        if current in seen or path is None:
            continue
        seen.add(current)
        todo.extend(_imported_modules(current, path) - seen)
    return tuple(sorted(seen))


@cache
def code_fingerprint(module: str) -> str:
    """Hash of the source of ``module`` and of its whole import closure inside systpipe.

    A rule passes its step's fingerprint through ``params``, so Snakemake re-runs the step
    when any code it depends on changes (Snakemake itself only sees the adapter script).
    """
    digest = hashlib.sha256()
    for name in import_closure(module):
        path = _module_path(name)
        digest.update(name.encode())
        digest.update(path.read_bytes() if path is not None else b"<missing>")
    return digest.hexdigest()[:16]


def package_versions(names: Iterable[str] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the numbers."""
    out = {"systpipe": __version__}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def git_commit(path: str | Path = ".") -> str:
    """The git commit of ``path`` (with '-dirty' if modified), or 'unknown' outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def run_provenance(
    config: Mapping[str, Any], fingerprints: Mapping[str, str], workdir: str | Path = "."
) -> dict[str, Any]:
    """The run-level record written to ``results/provenance.json``."""
    return {
        "config": dict(config),
        "config_hash": config_hash(config),
        "seed": config.get("seed"),
        "versions": package_versions(),
        "git_commit": git_commit(workdir),
        "code_fingerprints": dict(fingerprints),
    }


__all__ = [
    "code_fingerprint",
    "config_hash",
    "derive_seed",
    "git_commit",
    "import_closure",
    "package_versions",
    "run_provenance",
]
