"""The ``files`` config section as arguments of :func:`systpipe.ingest.ingest`, and the list of
input files the workflow's ``ingest`` rule declares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import IngestError
from .ingest_read import expand_paths


def as_list(value: Any) -> list[str]:
    """A path or a list of paths as a list.

    Example:
        >>> as_list("a.root"), as_list(["a", "b"]), as_list(None)
        (['a.root'], ['a', 'b'], [])
    """
    return [value] if isinstance(value, str) else list(value or [])


def ingest_kwargs(files: Mapping[str, Any], systematics: Any = ()) -> dict[str, Any]:
    """Keyword arguments of :func:`ingest` from the ``files`` config section; the up/down
    columns of weight systematics are carried along.

    Example:
        >>> kw = ingest_kwargs({"samples": [{"name": "s", "paths": ["a.csv"]}],
        ...                     "derive": ["m_ll"]}, [{"name": "w", "type": "weight",
        ...                     "up_column": "wu", "down_column": "wd"}])
        >>> kw["keep_columns"], kw["derive"], kw["test_samples"]
        (['wu', 'wd'], ['m_ll'], [])
    """
    from .systematics import parse_systematics

    keep = list(files.get("keep_columns", []))
    for syst in parse_systematics(systematics or ()):
        keep += [c for c in syst.kind_info.input_columns(syst) if c not in keep]
    return {
        "samples": files["samples"],
        "columns": files.get("columns", {}),
        "label": files.get("label"),
        "weight": files.get("weight", {}),
        "mev_to_gev": files.get("mev_to_gev", []),
        "missing_sentinels": files.get("missing_sentinels", []),
        "keep_columns": keep,
        "luminosity_fb": files.get("luminosity_fb"),
        "units": files.get("units") or {},
        "missing_values": files.get("missing_values", []),
        "csv": files.get("csv") or {},
        "derive": list(files.get("derive") or []),
        "derived_columns": files.get("derived_columns") or {},
        "split": files.get("split") or None,
        "test_samples": list(files.get("test_samples") or []),
    }


def alternative_kwargs(
    files: Mapping[str, Any], systematics: Any, paths: Sequence[str], name: str
) -> dict[str, Any]:
    """Keyword arguments of :func:`ingest` for the alternative files of a ``sample``
    systematic, mapped like the nominal files: when every sample reads the same files and
    selects its events (one file, several processes), every sample's mapping (process, label,
    selection, normalisation) is applied to the alternative files; otherwise the first
    sample's. No test files, no predefined split, and one label alone is allowed.

    Example:
        >>> s = [{"name": n, "paths": ["f.root"], "selection": f"pid == {i}"} for i, n in
        ...      enumerate(["a", "b"])]
        >>> kw = alternative_kwargs({"samples": s}, [], ["g.root"], "gen_up")
        >>> [(x["name"], x["paths"], x["selection"]) for x in kw["samples"]]
        [('a', ['g.root'], 'pid == 0'), ('b', ['g.root'], 'pid == 1')]
    """
    kwargs = ingest_kwargs(files, systematics)
    samples = kwargs["samples"]
    shared = len({tuple(s["paths"]) for s in samples}) == 1 and all(
        s.get("selection") for s in samples
    )
    chosen = samples if shared else samples[:1]
    alt = [
        {**{k: v for k, v in s.items() if k != "test_path"}, "paths": list(paths)} for s in chosen
    ]
    if not shared:
        alt[0]["name"] = name
    return {
        **kwargs,
        "samples": alt,
        "test_samples": [],
        "split": None,
        "require_both_labels": False,
    }


def input_files(
    files: Mapping[str, Any] | None, systematics: Any = (), *, base_dir: Path | None = None
) -> list[str]:
    """Every existing input file of the config (samples, test files, and the alternative files
    of ``sample`` systematics), sorted: the ``ingest`` rule's inputs. Patterns that match
    nothing are left for ingest to report.

    Example:
        >>> input_files(None)
        []
    """
    if not files:
        return []
    patterns = [p for s in files.get("samples") or [] for p in s.get("paths") or []]
    patterns += [p for s in files.get("samples") or [] for p in as_list(s.get("test_path"))]
    patterns += [p for s in files.get("test_samples") or [] for p in s.get("paths") or []]
    for syst in systematics or ():
        if syst.get("type") == "sample":
            patterns += [*syst.get("up_paths", []), *syst.get("down_paths", [])]
    found: set[str] = set()
    for pattern in patterns:
        try:
            found.update(str(p) for p in expand_paths([pattern], base_dir=base_dir, key="files"))
        except IngestError:
            continue
    if base_dir is None:
        found = {_relative(p) for p in found}
    return sorted(found)


def _relative(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


__all__ = ["alternative_kwargs", "as_list", "ingest_kwargs", "input_files"]
