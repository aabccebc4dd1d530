"""Observed data for the fits: Asimov at any mu, or scored data events from a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from systpipe.config import ConfigError, load_config, validate_config
from systpipe.errors import DataContractError
from systpipe.models import save_model
from systpipe.runner import run
from systpipe.steps.fit import observed_counts
from systpipe.templates import build_templates, histogram
from systpipe.train import train_classifier

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["x1", "x2"]


def _config(**data) -> dict:
    cfg = load_config(ROOT / "config" / "smoke.yaml")
    cfg["fit"]["data"] = {"source": "asimov", "asimov_mu": 1.0, **data}
    cfg["features"] = FEATURES
    return cfg


@pytest.fixture
def templates():
    rng = np.random.default_rng(4)
    n = 2000
    label = (rng.random(n) < 0.3).astype(np.int8)
    frame = pd.DataFrame({
        "event_id": np.arange(n), "label": label, "process": np.where(label == 1, "H", "WW"),
        "weight": rng.uniform(0.5, 1.5, n), "score": np.where(label == 1, rng.beta(5, 2, n), rng.beta(2, 5, n)),
    })  # fmt: skip
    return build_templates({"nominal": frame}, bin_edges=np.array([0.5, 0.7, 0.9, 1.0]))


def test_asimov_data_at_any_signal_strength(templates):
    sig, bkg = templates.nominal[0], templates.nominal[1]
    np.testing.assert_allclose(observed_counts(_config()["fit"], templates), sig + bkg, rtol=1e-15)
    np.testing.assert_allclose(
        observed_counts(_config(asimov_mu=2.5)["fit"], templates), 2.5 * sig + bkg, rtol=1e-15
    )


def test_data_file_is_histogrammed_like_the_templates(templates):
    scores = pd.DataFrame(
        {"score": [0.2, 0.5, 0.6, 0.95, 1.0, 1.2], "weight": [1.0, 1.0, 2.0, 1.0, 1.0, 3.0]}
    )
    got = observed_counts(_config(source="file", path="unused")["fit"], templates, scores)
    # right-closed bins: 0.5 is outside, 0.6 in bin 0; 1.2 overflows into the last bin
    assert got.tolist() == [2.0, 0.0, 5.0]
    assert (
        got.tolist()
        == histogram(
            scores["score"].to_numpy(), scores["weight"].to_numpy(), [0.5, 0.7, 0.9, 1.0]
        ).tolist()
    )
    with pytest.raises(DataContractError, match="no scored data"):
        observed_counts(_config(source="file", path="unused")["fit"], templates, None)


def test_config_names_the_missing_data_path(tmp_path):
    raw = {"fit": {"data": {"source": "file"}}}
    with pytest.raises(ConfigError, match=r"'fit.data.path' is not set"):
        validate_config(raw)
    raw["fit"]["data"]["path"] = str(tmp_path / "nope.parquet")
    with pytest.raises(ConfigError, match=r"'fit.data.path' = .*nope.parquet.*file not found"):
        validate_config(raw)
    with pytest.raises(ConfigError, match="source"):
        validate_config({"fit": {"data": {"source": "real"}}})
    (tmp_path / "data.parquet").write_bytes(b"")
    raw["fit"]["data"]["path"] = str(tmp_path / "data.parquet")
    assert validate_config(raw)["fit"]["data"]["asimov_mu"] == 1.0


def test_score_data_step(tmp_path):
    rng = np.random.default_rng(9)
    n = 600
    label = (rng.random(n) < 0.5).astype(np.int8)
    train = pd.DataFrame({"x1": rng.normal(label, 1.0), "x2": rng.normal(0, 1, n), "label": label,
                          "weight": np.ones(n), "event_id": np.arange(n)})  # fmt: skip
    model, _ = train_classifier(train, features=FEATURES, name="lgbm", type_="lgbm",
                                params={"n_estimators": 5}, seed=1)  # fmt: skip
    model_path = save_model(model, tmp_path / "lgbm", "lgbm")
    data = pd.DataFrame({"x1": [-1.0, 0.0, 2.0], "x2": [0.0, 0.0, 0.0]})
    data.to_csv(tmp_path / "data.csv", index=False)
    out = tmp_path / "scores.parquet"
    run(
        "score_data",
        config=_config(),
        wildcards={"clf": "lgbm"},
        input={"model": model_path, "events": tmp_path / "data.csv"},
        output={"scores": out},
    )
    scored = pd.read_parquet(out)
    assert scored["event_id"].tolist() == [0, 1, 2] and scored["weight"].tolist() == [1.0, 1.0, 1.0]
    assert scored["score"].is_monotonic_increasing  # x1 separates the classes
    data.drop(columns="x2").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(
        DataContractError, match=r"missing column\(s\) \['x2'\]; columns present: \['x1'\]"
    ):
        run(
            "score_data",
            config=_config(),
            wildcards={"clf": "lgbm"},
            input={"model": model_path, "events": tmp_path / "bad.csv"},
            output={"scores": tmp_path / "bad.parquet"},
        )
    assert not (tmp_path / "bad.parquet").exists()
