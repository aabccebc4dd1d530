"""skops model files: canonical bytes, thread-neutral saving, loading only the exact types
systpipe writes (:mod:`.skops_types`).

Used by the scikit-learn adapters (HistGradientBoosting, forests, import-path estimators).
Models are never pickled.
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import logging
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..io import write_bytes
from .skops_types import SKOPS_TYPES

log = logging.getLogger(__name__)


def _canonical_skops(data: bytes) -> bytes:
    """Rewrite a skops zip so that equal models give equal bytes.

    skops names arrays and ``__id__`` fields after ``id(obj)`` (memory addresses), names byte
    blobs with random UUIDs and stamps the current time on each zip entry. Ids and file names
    are renumbered in order of first appearance in the schema and every entry gets a fixed
    timestamp; the structure (and so what ``skops.io.load`` rebuilds) is unchanged.
    """
    with zipfile.ZipFile(_io.BytesIO(data)) as src:
        schema = json.loads(src.read("schema.json"))
        blobs = {n: src.read(n) for n in src.namelist() if n != "schema.json"}
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    value = ids.setdefault(value, len(ids) + 1)
                elif key == "file" and isinstance(value, str) and value in blobs:
                    value = files.setdefault(value, f"{len(files) + 1}{Path(value).suffix}")
                else:
                    value = walk(value)
                out[key] = value
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(schema)
    if set(files) != set(blobs):
        log.warning("skops file layout not recognised; model file bytes may vary between runs")
        return data
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as dst:
        entries = [("schema.json", json.dumps(schema, indent=2).encode())]
        entries += sorted(((new, blobs[old]) for old, new in files.items()), key=lambda e: e[0])
        for entry_name, payload in entries:
            info = zipfile.ZipInfo(entry_name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            dst.writestr(info, payload)
    return buf.getvalue()


@contextlib.contextmanager
def _neutral_threads(model: Any) -> Iterator[None]:
    # The thread count is an execution setting, not part of the model: store None (= decide
    # at run time) so that the files written on 1 and on 2 cores are byte-identical. That is
    # ``n_jobs`` of forests and the thread count HistGradientBoosting's fitted bin mapper keeps
    # (only used to bin data; prediction takes its thread count at call time).
    params = model.get_params() if hasattr(model, "get_params") else {}
    old_jobs = params.get("n_jobs")
    binner: Any = getattr(model, "_bin_mapper", None)
    old_binner = getattr(binner, "n_threads", None)
    if old_jobs is not None:
        model.set_params(n_jobs=None)
    if old_binner is not None:
        binner.n_threads = None
    try:
        yield
    finally:
        if old_jobs is not None:
            model.set_params(n_jobs=old_jobs)
        if old_binner is not None:
            binner.n_threads = old_binner


class _NoTorch:
    """A meta-path finder that makes ``import torch`` fail (ModuleNotFoundError) while it is
    installed, without a ``sys.modules`` entry that code checking ``"torch" in sys.modules``
    would then use."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden while skops.io loads)")


def _import_skops_io() -> Any:
    """``skops.io``, imported without importing PyTorch.

    Importing ``skops.io`` lists every scikit-learn estimator (``all_estimators``), which walks
    every scikit-learn package; the walk imports scikit-learn's array-API shim for PyTorch and,
    when torch is installed (the optional ``nn`` extra), torch itself: 2-7 s per process, in
    every job that loads a model. No torch type is ever in the allow-list, so during that
    import ``import torch`` fails, which ``pkgutil.walk_packages`` skips. A process that
    already imported torch keeps it.
    """
    import sys

    if "skops.io" in sys.modules or "torch" in sys.modules:
        import skops.io as sio

        return sio
    finder = _NoTorch()
    sys.meta_path.insert(0, finder)  # type: ignore[arg-type]
    try:
        import skops.io as sio
    finally:
        sys.meta_path.remove(finder)  # type: ignore[arg-type]
        shim = "sklearn.externals.array_api_compat.torch"
        for name in [m for m in sys.modules if m.startswith(shim)]:
            del sys.modules[name]  # a half-imported shim must not stay cached
    return sio


def save_skops(model: Any, path: Path) -> None:
    """Write ``model`` as skops with canonical ids and timestamps and no thread count, atomically."""
    sio = _import_skops_io()

    with _neutral_threads(model):
        data = sio.dumps(model)
    write_bytes(_canonical_skops(data), path)


def load_skops(path: Path, extra_types: Iterable[str] = ()) -> Any:
    """Load a skops file whose types are all among those systpipe's own models contain.

    The file's schema is inspected first (nothing is built): every type skops does not trust by
    default must be in :data:`~.skops_types.SKOPS_TYPES` (exact names, never a prefix) or in
    ``extra_types`` (exact names the caller trusts, e.g. the types of an import-path estimator
    it configured itself).

    Raises:
        ModelError: the file contains other types (named in the message); nothing is loaded.
    """
    sio = _import_skops_io()

    untrusted = sio.get_untrusted_types(file=path)
    allowed = SKOPS_TYPES | frozenset(extra_types)
    refused = sorted(t for t in untrusted if t not in allowed)
    if refused:
        raise ModelError(
            f"{path}: refusing to load types {refused}: systpipe's own model files never contain "
            "them, and a skops file can call such a function or class while it is loaded "
            f"(code execution); allowed beyond skops' defaults: {sorted(allowed)} "
            "(systpipe.models.skops_types.SKOPS_TYPES). Nothing was loaded."
        )
    return sio.load(path, trusted=list(untrusted))


__all__ = ["SKOPS_TYPES", "load_skops", "save_skops"]
