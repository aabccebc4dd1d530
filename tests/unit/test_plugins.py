"""One test-only extension of each kind (tests/plugins/systpipe_testplugin.py), registered the way
a third-party plugin is, flows through config validation and the science it extends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import toy_score_frames
from systpipe.config import validate_config
from systpipe.errors import ConfigError
from systpipe.scan import scan_scores
from systpipe.stat import toys
from systpipe.stat.workspace import build_workspace
from systpipe.systematics import KINDS
from systpipe.templates import build_templates

RATE = {"delta": 0.1, "labels": ["background"]}


def test_registries_are_back_to_the_builtins_without_the_plugin():
    assert "xsec" not in KINDS
    with pytest.raises(ConfigError, match="expected one of .*'norm'"):
        validate_config({"systematics": [{"name": "tt", "type": "xsec", "delta": 0.1}]})


def test_plugin_kind_behaves_like_the_kind_it_extends(test_plugin):
    cfg = validate_config({"systematics": [{"name": "tt", "type": "xsec", **RATE}]})
    assert cfg["systematics"][0]["type"] == "xsec"
    as_plugin = [{"name": "tt", "type": "xsec", **RATE}]
    as_norm = [{"name": "tt", "type": "norm", **RATE}]
    frames = toy_score_frames(systematics=as_norm)
    thresholds = np.linspace(0, 0.9, 10)
    a = scan_scores(frames, systematics=as_plugin, thresholds=thresholds)
    b = scan_scores(frames, systematics=as_norm, thresholds=thresholds)
    pd.testing.assert_frame_equal(a, b)  # the same numbers, the linear Jacobian term included
    assert "dmu_lin_tt" in a
    spec = build_workspace(
        build_templates(frames, bin_edges=[0.5, 0.75, 1.0], group_by="label"),
        as_plugin,
        mc_stat=False,
    )
    types = {
        m["type"]
        for s in spec["channels"][0]["samples"]
        for m in s["modifiers"]
        if m["name"] == "tt"
    }
    assert types == {"normsys"}


def test_plugin_method_runs_in_the_toys(test_plugin):
    validate_config({"toys": {"methods": ["shift", "stat_only"]}})
    frames = toy_score_frames(systematics=[{"name": "tt", "type": "xsec", **RATE}])
    spec = build_workspace(
        build_templates(frames, bin_edges=[0.5, 0.75, 1.0], group_by="label"),
        [{"name": "tt", "type": "xsec", **RATE}],
        mc_stat=False,
    )
    df = toys.run_toys(
        spec, mode="frequentist", seed=1, start=0, count=30, methods=["shift", "stat_only"]
    )
    wide = df.pivot(index="toy", columns="method", values="width")
    assert (df["status"] == "ok").all()
    assert (wide["stat_only"] < wide["shift"]).all()  # no systematic term
    summary = toys.summarise(df).set_index("method")
    assert summary.loc["stat_only", "n_ok"] == 30


def test_plugin_library_trains_saves_and_scores(test_plugin, tmp_path):
    from systpipe.models import load_model, model_file_extension, save_model
    from systpipe.score import predict_scores
    from systpipe.train import train_classifier

    validate_config({"classifiers": [{"name": "nb", "type": "gnb"}]})
    assert model_file_extension("gnb") == "gnbjson"
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {
            "x": np.r_[rng.normal(1, 1, 300), rng.normal(-1, 1, 300)],
            "label": np.r_[np.ones(300), np.zeros(300)].astype(np.int8),
            "weight": 1.0,
        }
    )
    model, info = train_classifier(
        df,
        features=["x"],
        name="nb",
        type_="gnb",
        params={},
        weighting="balanced",
        negative_weights="abs",
        max_train_events=None,
        threads=1,
        seed=1,
    )
    path = save_model(model, tmp_path / "nb", "gnb")
    assert path.suffix == ".gnbjson" and b"theta_" in path.read_bytes()
    before = predict_scores(model, df, features=["x"])
    after = predict_scores(load_model(path), df, features=["x"])
    np.testing.assert_array_equal(before, after)
    assert before[:300].mean() > 0.6 > 0.4 > before[300:].mean()
