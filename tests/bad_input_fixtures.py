"""Fixtures of the bad-input suite: tiny event tables, configs, crafted model files, and the
check that a refused input leaves no output or temporary file behind."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

FEATURES = ["a", "b", "c"]


def events(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Separable signal/background events with the event-table columns and three features."""
    rng = np.random.default_rng(seed)
    label = (np.arange(n) % 2).astype(np.int8)
    x = rng.normal(size=(n, 3)) + label[:, None] * 1.5
    return pd.DataFrame(
        {
            "event_id": np.arange(n, dtype=np.int64) + 1000,
            "label": label,
            "process": np.where(label == 1, "sig", np.where(np.arange(n) % 4 == 0, "ww", "tt")),
            "weight": np.where(label == 1, 0.1, 1.0),
            **{f: x[:, i] for i, f in enumerate(FEATURES)},
        }
    )


@pytest.fixture
def no_leftovers() -> Callable[[Path, set[str]], None]:
    """``check(directory, expected)``: the directory holds exactly the ``expected`` file names
    (recursively, relative), so no output and no ``.name.*.tmp`` temporary file was left."""

    def check(directory: Path, expected: set[str]) -> None:
        present = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
        assert present == set(expected), f"unexpected files: {sorted(present - set(expected))}"

    return check


@pytest.fixture
def train_inputs(tmp_path: Path) -> Callable[..., dict[str, Path]]:
    """``make(df=None)``: train and test Parquet files in ``tmp_path/in`` (test = nominal)."""
    from systpipe import io

    def make(df: pd.DataFrame | None = None) -> dict[str, Path]:
        df = events() if df is None else df
        d = tmp_path / "in"
        return {
            "train": io.write_table(df, d / "train.parquet"),
            "test": io.write_table(events(seed=1), d / "test.parquet"),
        }

    return make


def train_config(type_: str, params: dict | None = None, **training: object) -> dict:
    """A validated config with one classifier ``clf`` of ``type_`` on the three features."""
    from systpipe.config import validate_config

    return validate_config(
        {
            "features": FEATURES,
            "classifiers": [{"name": "clf", "type": type_, "params": params or {}}],
            "training": {"threads": 1, **training},
        }
    )


@pytest.fixture
def run_train(tmp_path: Path, train_inputs) -> Callable[..., Path]:
    """``run(type_, params, df=None, **training)``: the train step through the runner, outputs
    under ``tmp_path/out``; returns that directory."""
    from systpipe.models import model_file_extension
    from systpipe.runner import run

    def go(type_: str, params: dict | None = None, df=None, **training) -> Path:
        cfg = train_config(type_, params, **training)
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        run(
            "train",
            config=cfg,
            params={"clf": "clf"},
            input=train_inputs(df),
            output={
                "model": out / f"clf.{model_file_extension(type_)}",
                "info": out / "clf.json",
            },
        )
        return out

    return go


def _json_node(value: object, node_id: int) -> dict:
    return {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
        "__id__": node_id,
    }


def craft_skops(model_file: Path, out: Path, module: str, name: str, args: list) -> Path:
    """A trojaned copy of a real ``.skops`` model: one extra attribute ``evil_`` whose value
    skops builds on load by calling ``module.name(*args)`` (a ``ConstructorFromReduceNode``).
    The model still scores like the original once loaded."""
    with zipfile.ZipFile(model_file) as zf:
        schema = json.loads(zf.read("schema.json"))
        blobs = {n: zf.read(n) for n in zf.namelist() if n != "schema.json"}
    attrs = schema["content"]
    attrs["content"]["evil_"] = {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": args,
            "__id__": 990_002,
        },
        "__id__": 990_003,
    }
    attrs["key_types"]["content"].append(
        {"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode", "__id__": 990_004}
    )
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("schema.json", json.dumps(schema))
        for entry, payload in blobs.items():
            zf.writestr(entry, payload)
    return out


def payload_args(kind: str, marker: Path) -> tuple[str, str, list]:
    """(module, function, argument nodes) of a payload that creates ``marker`` when run."""
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('pwned')"
    if kind == "runstring":
        empty_dict = {
            "__class__": "dict",
            "__module__": "builtins",
            "__loader__": "DictNode",
            "content": {},
            "key_types": {
                "__class__": "list",
                "__module__": "builtins",
                "__loader__": "ListNode",
                "content": [],
                "__id__": 990_006,
            },
            "__id__": 990_005,
        }
        return "numpy.testing._private.utils", "runstring", [_json_node(code, 990_001), empty_dict]
    if kind == "eval":
        return "builtins", "eval", [_json_node(code, 990_001)]
    raise ValueError(kind)


@pytest.fixture(scope="module")
def fitted() -> dict[str, object]:
    """Small fitted hgb and rf models (the skops types systpipe writes)."""
    from systpipe.models import build_classifier

    df = events()
    X, y = df[FEATURES].to_numpy(), df["label"].to_numpy()
    out = {}
    for type_, params in (("hgb", {"max_iter": 5}), ("rf", {"n_estimators": 3})):
        out[type_] = build_classifier(type_, params, threads=1, seed=0).fit(X, y)
    return out


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    """The module-level helpers above, for the test modules (conftest is not importable)."""
    return SimpleNamespace(
        FEATURES=FEATURES,
        events=events,
        train_config=train_config,
        craft_skops=craft_skops,
        payload_args=payload_args,
    )
