"""Shared test fixtures: the default systematics, small score frames, the repository paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"


def default_features() -> list[str]:
    """The default configuration's feature list (config/config.yaml), the one place it lives."""
    import yaml

    return list(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["features"])


# tests/plugins holds a test-only plugin that registers extensions when imported: only the
# tests that want it put it on the path (the doctest collection must not import it).
collect_ignore = ["plugins"]
# the bad-input suite's fixtures: a second conftest.py would shadow this module as "conftest"
pytest_plugins = ["bad_input_fixtures", "core_lock", "smoke_session"]

#: The reference notebook's systematics as the default config declares them.
SYSTEMATICS = [
    {"name": "lumi", "type": "norm", "delta": 0.01},
    {"name": "sig", "type": "norm", "delta": 0.05, "labels": ["signal"]},
    {"name": "bkg", "type": "norm", "delta": 0.02, "labels": ["background"]},
    {"name": "det", "type": "scale", "delta": 0.02, "columns": ["lep1_pt", "lep2_pt"]},
]


def toy_score_frames(
    n: int = 4000, *, seed: int = 1, systematics: list[dict] | None = None
) -> dict[str, pd.DataFrame]:
    """Score frames of every variation of ``systematics`` for a toy classifier: signal scores
    Beta(5, 2), background Beta(2, 5); norm variations rescale weights, others shift scores."""
    from systpipe.systematics import all_variations

    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.3).astype(np.int8)
    score = np.where(label == 1, rng.beta(5, 2, n), rng.beta(2, 5, n))
    weight = np.where(label == 1, 0.05, 1.0) * rng.uniform(0.5, 1.5, n)
    process = np.where(label == 1, "sig", np.where(rng.random(n) < 0.5, "bkg_a", "bkg_b"))
    nominal = pd.DataFrame(
        {
            "event_id": np.arange(n, dtype=np.int64),
            "label": label,
            "process": process,
            "weight": weight,
            "score": score,
        }
    )
    frames = {"nominal": nominal}
    for v in all_variations(systematics if systematics is not None else SYSTEMATICS)[1:]:
        syst = v.systematic
        sign = 1.0 if v.direction == "up" else -1.0
        frame = nominal.copy()
        if syst.changes_features:
            frame["score"] = np.clip(score * (1.0 + sign * syst["delta"]), 0.0, 1.0)
        else:
            labels = syst.get("labels")
            hit = (
                np.ones(n, bool)
                if labels is None
                else np.isin(label, [1 if x == "signal" else 0 for x in labels])
            )
            frame.loc[hit, "weight"] = weight[hit] * (1.0 + sign * syst["delta"])
        frames[v.name] = frame
    return frames


def simple_spec() -> dict:
    """A workspace of three bins, one background normalisation and one shape systematic, no MC
    statistics (the toys' and the batched fitter's tests)."""
    nom = np.array([[20.0, 40.0, 60.0], [400.0, 200.0, 100.0]])
    var = {
        "bkg_up": nom * [[1.0], [1.05]],
        "bkg_down": nom * [[1.0], [0.95]],
        "det_up": nom * [[0.97, 1.0, 1.04], [1.03, 1.0, 0.96]],
        "det_down": nom * [[1.02, 1.0, 0.97], [0.98, 1.0, 1.05]],
    }
    from systpipe.stat.workspace import build_workspace
    from systpipe.templates import Templates

    t = Templates(
        np.array([0.5, 0.7, 0.85, 1.0]), ["signal", "background"], [True, False], nom, nom / 50, var
    )
    systs = [
        {"name": "bkg", "type": "norm", "delta": 0.05},
        {"name": "det", "type": "scale", "delta": 0.02},
    ]
    return build_workspace(t, systs, mc_stat=False)


@pytest.fixture
def score_frames() -> dict[str, pd.DataFrame]:
    return toy_score_frames()


@pytest.fixture
def test_plugin(monkeypatch):
    """The test-only plugin of tests/plugins, imported (so registered) for one test, then removed."""
    import importlib
    import sys

    from systpipe.models import unregister_library
    from systpipe.stat.methods import unregister_method
    from systpipe.systematics import unregister_kind

    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    sys.modules.pop("systpipe_testplugin", None)
    module = importlib.import_module("systpipe_testplugin")
    try:
        yield module
    finally:
        unregister_kind("xsec")
        unregister_library("gnb")
        unregister_method("stat_only")
        sys.modules.pop("systpipe_testplugin", None)
