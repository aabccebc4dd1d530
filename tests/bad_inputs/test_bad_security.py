"""Bad inputs that could run code or hide results: crafted skops model files, and output file
modes that ignore the umask."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from systpipe import io
from systpipe.errors import ModelError
from systpipe.models import load_model, save_model
from systpipe.models.persistence import load_skops
from systpipe.models.skops_types import SKOPS_TYPES

# --------------------------------------------------------------------------------------------
# skops: an explicit allow-list of exact type names


@pytest.fixture
def saved(fitted, tmp_path):
    """``saved(type_)``: the fitted model of ``type_`` saved as systpipe saves it."""

    def save(type_: str) -> Path:
        return save_model(fitted[type_], tmp_path / f"real_{type_}", type_)

    return save


@pytest.mark.parametrize(
    ("kind", "refused"),
    [("runstring", "numpy.testing._private.utils.runstring"), ("eval", "builtins.eval")],
)
@pytest.mark.parametrize("host", ["hgb", "rf"])
def test_trojaned_skops_model_is_refused_unloaded(
    saved, helpers, tmp_path, no_leftovers, kind, refused, host
):
    marker = tmp_path / "PWNED"
    real = saved(host)
    evil = helpers.craft_skops(real, tmp_path / "evil.skops", *helpers.payload_args(kind, marker))
    with pytest.raises(ModelError) as err:
        load_model(evil)
    msg = str(err.value)
    assert msg.startswith(f"{evil}: refusing to load types ['{refused}']")
    assert "code execution" in msg and "Nothing was loaded" in msg
    assert "SKOPS_TYPES" in msg  # says where the allow-list is kept
    assert not marker.exists()  # the payload never ran
    no_leftovers(tmp_path, {real.name, "evil.skops"})


@pytest.mark.parametrize("kind", ["runstring", "eval"])
def test_the_crafted_payloads_are_live(saved, helpers, tmp_path, kind):
    # The refusal above is not vacuous: trusting the file's own type list (what a prefix rule
    # did for numpy.*) runs the payload, and the trojaned model then scores like the real one.
    import skops.io as sio

    marker = tmp_path / "PWNED"
    real = saved("hgb")
    evil = helpers.craft_skops(real, tmp_path / "evil.skops", *helpers.payload_args(kind, marker))
    model = sio.load(evil, trusted=sio.get_untrusted_types(file=evil))
    assert marker.read_text() == "pwned"
    X = helpers.events()[helpers.FEATURES].to_numpy()
    assert np.array_equal(model.predict_proba(X), load_model(real).predict_proba(X))


def test_a_numpy_prefixed_function_is_refused(saved, helpers, tmp_path, no_leftovers):
    # numpy.load with pickles allowed would be trusted by any "numpy." prefix rule.
    real = saved("rf")
    node = helpers.payload_args("eval", tmp_path / "x")[2]
    evil = helpers.craft_skops(real, tmp_path / "np.skops", "numpy", "load", node)
    with pytest.raises(ModelError, match=r"np\.skops: refusing to load types \['numpy\.load'\]"):
        load_model(evil)
    no_leftovers(tmp_path, {real.name, "np.skops"})


def test_a_subclass_outside_sklearn_is_refused(tmp_path, helpers, no_leftovers):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    class Lookalike(LogisticRegression):
        pass

    df = helpers.events()
    model = Lookalike().fit(df[helpers.FEATURES].to_numpy(), df["label"].to_numpy())
    path = tmp_path / "u.skops"
    path.write_bytes(sio.dumps(model))
    with pytest.raises(ModelError, match=r"u\.skops: refusing to load types \[.*Lookalike'\]"):
        load_model(path)
    no_leftovers(tmp_path, {"u.skops"})


def test_extra_types_are_exact_names_not_prefixes(saved, helpers, tmp_path):
    real = saved("hgb")
    args = helpers.payload_args("eval", tmp_path / "PWNED")
    evil = helpers.craft_skops(real, tmp_path / "evil.skops", *args)
    with pytest.raises(ModelError, match=r"refusing to load types \['builtins\.eval'\]"):
        load_skops(evil, extra_types=["builtins", "builtins.", "builtins.eva"])
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("type_", ["hgb", "rf"])
def test_real_models_still_load_and_score_identically(fitted, saved, helpers, type_):
    path = saved(type_)
    import skops.io as sio

    assert set(sio.get_untrusted_types(file=path)) <= SKOPS_TYPES
    X = helpers.events(seed=5)[helpers.FEATURES].to_numpy()
    assert np.array_equal(load_model(path).predict_proba(X), fitted[type_].predict_proba(X))


def test_a_corrupt_skops_file_names_the_file(tmp_path, no_leftovers):
    path = tmp_path / "broken.skops"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelError, match=r"broken\.skops: cannot load model"):
        load_model(path)
    no_leftovers(tmp_path, {"broken.skops"})


# --------------------------------------------------------------------------------------------
# Output file modes follow the umask


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one is restored."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_follow_the_umask(umask, tmp_path, no_leftovers, mask, expected):
    umask(mask)
    assert io.current_umask() == mask
    paths = [
        io.write_table(pd.DataFrame({"x": [1.0]}), tmp_path / "t.parquet"),
        io.write_json({"a": 1}, tmp_path / "r.json"),
        io.write_bytes(b"\x00\x01", tmp_path / "b.bin"),
        io.write_text("text\n", tmp_path / "s.txt"),
    ]
    assert {p.name: oct(_mode(p)) for p in paths} == {p.name: oct(expected) for p in paths}
    no_leftovers(tmp_path, {"t.parquet", "r.json", "b.bin", "s.txt"})


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600)])
def test_model_files_follow_the_umask(umask, helpers, tmp_path, no_leftovers, mask, expected):
    from systpipe.models import build_classifier

    umask(mask)
    df = helpers.events()
    X, y = df[helpers.FEATURES].to_numpy(), df["label"].to_numpy()
    written = []
    for type_, params in (("hgb", {"max_iter": 3}), ("lgbm", {"n_estimators": 3}), ("xgb", {})):
        params = params or {"n_estimators": 3}
        model = build_classifier(type_, params, threads=1, seed=0).fit(X, y)
        written.append(save_model(model, tmp_path / type_, type_))
    assert {p.name: oct(_mode(p)) for p in written} == {p.name: oct(expected) for p in written}
    no_leftovers(tmp_path, {"hgb.skops", "lgbm.txt", "xgb.ubj"})


def test_an_existing_output_gets_the_new_mode(umask, tmp_path):
    # A rerun replaces the file: the mode is the one of the new write, not the old file's.
    umask(0o077)
    io.write_json({"a": 1}, tmp_path / "r.json")
    umask(0o022)
    path = io.write_json({"a": 2}, tmp_path / "r.json")
    assert oct(_mode(path)) == oct(0o644) and json.loads(path.read_text()) == {"a": 2}


def test_a_failed_write_leaves_nothing(tmp_path, no_leftovers):
    with pytest.raises(TypeError, match="cannot serialise object to JSON"):
        io.write_json({"bad": object()}, tmp_path / "r.json")
    no_leftovers(tmp_path, set())


def test_skops_zip_entries_are_readable(fitted, tmp_path):
    # Unzipping a model (or a report built from outputs) gives files that follow the umask too.
    path = save_model(fitted["hgb"], tmp_path / "m", "hgb")
    with zipfile.ZipFile(path) as zf:
        assert {(i.external_attr >> 16) & 0o777 for i in zf.infolist()} == {0o644}
