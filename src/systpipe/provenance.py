"""Provenance: derived seeds, code fingerprints, package versions and the git commit."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import subprocess
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from . import __version__
from .config import config_hash

# Modules each workflow step imports (directly or through helpers): their source is hashed into
# the step's params so that Snakemake re-runs a step when code it depends on changes.
# "module" hashes a whole module; "module:function" only that function's source, so that
# editing one step's file-level wrapper does not re-run every other step.
_LOADING = ("pipeline:load_variation_scores",)
STEP_MODULES: dict[str, tuple[str, ...]] = {
    "simulate": ("simulate", "features", "io", "pipeline:simulate"),
    "ingest": ("ingest", "io", "pipeline:ingest", "pipeline:_files_kwargs"),
    "split": ("split", "io", "pipeline:split"),
    "train": ("train", "score", "io", "pipeline:train", "pipeline:classifier_spec"),
    "vary": ("variations", "features", "ingest", "io", "pipeline:vary", "pipeline:_files_kwargs"),
    "score": ("score", "train", "io", "pipeline:score"),
    "score_data": ("score", "train", "io", "pipeline:score_data"),
    "scan": ("scan", "stats", "variations", "io", "pipeline:scan", "pipeline:scan_thresholds", *_LOADING),
    "table": ("table", "scan", "stats", "io", "pipeline:table", "pipeline_fit:merge_method_rows"),
    "plots": ("plots", "scan", "stats", "pipeline_plots"),
    "studies": ("studies", "stats", "pipeline_plots:studies"),
    "workspace": ("templates", "fit", "scan", "io", "pipeline_fit", *_LOADING),
    "fit": ("fit", "fit_plots", "plots", "io", "pipeline_fit"),
    "chi2": ("chi2", "templates", "io", "pipeline_fit", *_LOADING),
    "toys": ("toys", "fit", "chi2", "templates", "io", "pipeline_fit"),
    "toys_summary": ("toys", "table", "io", "pipeline_fit"),
    "methods": ("table", "fit", "chi2", "scan", "templates", "io", "pipeline_fit", *_LOADING),
}

VERSIONED_PACKAGES = (
    "numpy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "xgboost-cpu", "xgboost",
    "skops", "pyhf", "iminuit", "uproot", "matplotlib", "mplhep", "snakemake",
)


def derive_seed(master: int, *names: str) -> int:
    """A 32-bit seed that depends only on the master seed and the names given.

    Example:
        >>> derive_seed(1, "split") == derive_seed(1, "split") != derive_seed(2, "split")
        True
    """
    blob = ":".join([str(master), *names]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")


def _source(entry: str) -> bytes:
    module, _, function = entry.partition(":")
    path = resources.files("systpipe").joinpath(f"{module}.py")
    if not path.is_file():
        return b"<missing>"
    text = path.read_text(encoding="utf-8")
    if not function:
        return text.encode()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return (ast.get_source_segment(text, node) or "").encode()
    return b"<missing>"


@cache
def code_fingerprint(step: str) -> str:
    """Hash of the source of every module (or function) ``step`` uses (``STEP_MODULES``)."""
    digest = hashlib.sha256()
    for entry in sorted(set(STEP_MODULES[step]) | {"config", "provenance", "errors"}):
        digest.update(entry.encode())
        digest.update(_source(entry))
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
            cwd=path, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def file_provenance(config: Mapping[str, Any], step: str, **extra: Any) -> dict[str, Any]:
    """Provenance stored in every Parquet hand-off (no timestamps: files stay byte-identical)."""
    return {
        "config_hash": config_hash(config),
        "systpipe_version": __version__,
        "seed": config.get("seed"),
        "step": step,
        "code": code_fingerprint(step) if step in STEP_MODULES else None,
        **extra,
    }


def run_provenance(config: Mapping[str, Any], workdir: str | Path = ".") -> dict[str, Any]:
    """The run-level record written to ``results/provenance.json``."""
    return {
        "config": dict(config),
        "config_hash": config_hash(config),
        "seed": config.get("seed"),
        "versions": package_versions(),
        "git_commit": git_commit(workdir),
        "code_fingerprints": {step: code_fingerprint(step) for step in STEP_MODULES},
    }


__all__ = ["code_fingerprint", "derive_seed", "file_provenance", "git_commit", "package_versions", "run_provenance"]
