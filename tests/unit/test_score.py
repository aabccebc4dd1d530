"""Tests of systpipe.score: the score table contract and thread-count independent predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import systpipe.models.sklearn as sklearn_adapter
from systpipe.errors import DataContractError, ModelError
from systpipe.models import load_model, save_model
from systpipe.score import predict_scores, score_table
from systpipe.train import train_classifier

FEATURES = ["a", "b", "c"]
PARAMS = {
    "hgb": {"max_iter": 15},
    "lgbm": {"n_estimators": 15},
    "xgb": {"n_estimators": 15},
    "rf": {"n_estimators": 8, "max_depth": 6},
}


def events(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int8)
    return pd.DataFrame(
        {
            "event_id": rng.choice(10**9, n, replace=False).astype(np.int64),
            "process": pd.Categorical(np.where(y == 1, "ggH_WW", rng.choice(["WW", "ttbar"], n))),
            "label": y,
            "weight": np.where(y == 1, 0.02, rng.exponential(1.0, n)),
            "a": rng.normal(size=n) + y,
            "b": rng.normal(size=n) - 0.5 * y,
            "c": rng.normal(size=n).astype(np.float32),
            "extra": 1.0,
        }
    )


@pytest.fixture(scope="module")
def df():
    return events()


@pytest.fixture(scope="module")
def models(df):
    out = {}
    for t, p in PARAMS.items():
        out[t] = train_classifier(
            df, features=FEATURES, name=t, type_=t, params=p, threads=2, seed=3
        )[0]
    return out


@pytest.mark.parametrize("type_", list(PARAMS))
def test_scores_are_the_library_probabilities_for_any_thread_count(type_, df, models):
    model = models[type_]
    X = np.ascontiguousarray(df[FEATURES].to_numpy(dtype=np.float64))
    if type_ == "rf":
        model.set_params(n_jobs=1)  # the sequential (reproducible) sum over trees
    # LightGBM was fitted with feature names: give them back to its scikit-learn API
    inputs = pd.DataFrame(X, columns=FEATURES) if type_ == "lgbm" else X
    reference = model.predict_proba(inputs)[:, 1].astype(np.float64)
    if type_ == "rf":
        model.set_params(n_jobs=2)
    s1 = predict_scores(model, df, features=FEATURES, threads=1)
    s2 = predict_scores(model, df, features=FEATURES, threads=2)
    assert s1.dtype == np.float64 and s1.shape == (len(df),)
    assert np.array_equal(s1, reference) and np.array_equal(s2, reference)
    assert 0.0 <= s1.min() and s1.max() <= 1.0


def test_forest_row_chunks_match_the_sequential_sum(df, models, monkeypatch):
    rf = models["rf"]
    monkeypatch.setattr(sklearn_adapter, "FOREST_CHUNK", 101)  # 30 chunks over 2 threads
    chunked = predict_scores(rf, df, features=FEATURES, threads=2)
    rf.set_params(n_jobs=1)
    sequential = rf.predict_proba(np.ascontiguousarray(df[FEATURES].to_numpy(np.float64)))[:, 1]
    rf.set_params(n_jobs=2)
    assert np.array_equal(chunked, sequential)
    assert rf.n_jobs == 2  # stored setting restored


def test_score_table_contract_and_row_order_independence(df, models, tmp_path):
    path = save_model(models["lgbm"], tmp_path / "lgbm", "lgbm")
    loaded = load_model(path)
    table = score_table(loaded, df, features=FEATURES, threads=2)
    assert list(table.columns) == ["event_id", "label", "process", "weight", "score"]
    assert [str(t) for t in table.dtypes] == ["int64", "int8", "category", "float64", "float64"]
    assert np.all(np.diff(table["event_id"].to_numpy()) > 0)
    shuffled = score_table(
        models["lgbm"], df.sample(frac=1.0, random_state=2), features=FEATURES, threads=1
    )
    pd.testing.assert_frame_equal(table, shuffled)
    merged = df.merge(table, on="event_id", suffixes=("", "_t"))
    assert np.array_equal(merged["weight"], merged["weight_t"])
    assert np.array_equal(merged["label"], merged["label_t"])


def test_missing_columns_are_listed(df, models):
    with pytest.raises(DataContractError, match=r"\['b'\] missing; columns present: \['event_id'"):
        predict_scores(models["xgb"], df.drop(columns="b"), features=FEATURES)
    with pytest.raises(
        DataContractError, match=r"missing column\(s\) \['process', 'b'\]; columns present"
    ):
        score_table(models["xgb"], df.drop(columns=["b", "process"]), features=FEATURES)
    with pytest.raises(DataContractError, match="not numeric"):
        predict_scores(models["xgb"], df.assign(a="x"), features=FEATURES)


def test_wrong_feature_count_and_threads(df, models):
    with pytest.raises(ModelError, match="trained on 3 features, got 2"):
        predict_scores(models["hgb"], df, features=["a", "b"])
    with pytest.raises(ModelError, match="threads"):
        predict_scores(models["hgb"], df, features=FEATURES, threads=0)


def test_empty_table(df, models):
    table = score_table(models["rf"], df.iloc[:0], features=FEATURES, threads=2)
    assert len(table) == 0 and table["score"].dtype == np.float64


def test_generic_estimator_ignores_memory_layout(df):
    """pandas may hand out column-major arrays; BLAS then sums in another order. Scores are
    computed from a C-ordered copy, so the layout of the input frame does not matter."""
    X = df[FEATURES].to_numpy(np.float64)
    model = LogisticRegression().fit(X, df["label"].to_numpy())
    c_frame = pd.DataFrame(np.ascontiguousarray(X), columns=FEATURES)
    f_frame = pd.DataFrame(np.asfortranarray(X), columns=FEATURES)
    s = predict_scores(model, c_frame, features=FEATURES, threads=2)
    assert np.array_equal(s, predict_scores(model, f_frame, features=FEATURES, threads=1))
    assert np.array_equal(s, model.predict_proba(np.ascontiguousarray(X))[:, 1])
    assert model.n_jobs is None


def test_signal_column_follows_classes(df):
    X = df[FEATURES].to_numpy(np.float64)
    y = np.where(df["label"] == 1, 1, 0)
    rf = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, 1 - y)  # classes_ [0, 1]
    rf.classes_ = np.array([1, 0])  # pretend the signal column is first
    s = predict_scores(rf, df, features=FEATURES)
    assert np.array_equal(s, rf.predict_proba(np.ascontiguousarray(X))[:, 0])
    rf.classes_ = np.array([0, 2])
    with pytest.raises(ModelError, match="do not include the signal label 1"):
        predict_scores(rf, df, features=FEATURES)
