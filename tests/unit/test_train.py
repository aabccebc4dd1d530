"""Tests of systpipe.train with systpipe.models: registry, weights, thread-count independence,
native persistence."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from systpipe.errors import ConfigError, DataContractError, ModelError
from systpipe.metrics import evaluate, weighted_auc
from systpipe.models import (
    BUILTIN_TYPES,
    build_classifier,
    load_model,
    model_file_extension,
    save_model,
)
from systpipe.models.lightgbm import LightGBMBooster
from systpipe.score import predict_scores
from systpipe.train import (
    subsample_indices,
    train_classifier,
    training_weights,
    write_model_info,
)

FEATURES15 = [f"x{i}" for i in range(15)]
SMALL_PARAMS = {
    "hgb": {"max_iter": 20},
    "lgbm": {"n_estimators": 20, "num_leaves": 15},
    "xgb": {"n_estimators": 20, "max_depth": 4},
    "rf": {"n_estimators": 10, "max_depth": 8, "min_samples_leaf": 5},
}
LOGREG = "sklearn.linear_model:LogisticRegression"


def events15(n: int, seed: int = 0) -> pd.DataFrame:
    """15 features, mixed scales, a discrete one, 5 % negative weights, shuffled event_ids."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int8)
    X = rng.normal(size=(n, 15)) + 0.4 * y[:, None] * rng.normal(1.0, 0.3, 15)
    X[:, 3] = np.abs(X[:, 3]) * 50.0
    X[:, 7] = rng.integers(0, 5, n)
    w = np.where(y == 1, 0.01, rng.exponential(1.0, n))
    w[rng.random(n) < 0.05] *= -1.0
    df = pd.DataFrame(X, columns=FEATURES15)
    df.insert(0, "event_id", rng.choice(10**9, n, replace=False).astype(np.int64))
    df.insert(1, "process", np.where(y == 1, "sig", "bkg"))
    df.insert(2, "label", y)
    df.insert(3, "weight", w)
    return df


def separable(n: int, seed: int) -> pd.DataFrame:
    """Two unit-Gaussian features shifted by 1 between classes, one noise feature.

    The Bayes-optimal AUC is Phi(sqrt(2) / sqrt(2)) = Phi(1) = 0.8413.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(np.int8)
    return pd.DataFrame(
        {
            "event_id": np.arange(n, dtype=np.int64),
            "process": np.where(y == 1, "sig", "bkg"),
            "label": y,
            "weight": np.where(y == 1, 0.05, 2.0),
            "a": rng.normal(size=n) + y,
            "b": rng.normal(size=n) - y,
            "c": rng.normal(size=n),
        }
    )


def fit(type_, df, *, threads=1, seed=7, features=FEATURES15, params=None, **kw):
    kw = {"weighting": "balanced", "negative_weights": "abs", "max_train_events": None, **kw}
    return train_classifier(
        df,
        features=features,
        name=type_,
        type_=type_,
        params=SMALL_PARAMS.get(type_, {}) if params is None else params,
        threads=threads,
        seed=seed,
        **kw,
    )


@pytest.fixture(scope="module")
def data15():
    return events15(4000)


@pytest.fixture(scope="module")
def trained(data15):
    # absolute weighting: on these data LightGBM without our defaults depends on the thread count
    return {t: fit(t, data15, threads=2, weighting="absolute")[0] for t in SMALL_PARAMS}


# ---------------------------------------------------------------------------- weights


def test_balanced_weights_sum_to_half_the_events_per_class():
    rng = np.random.default_rng(1)
    y = (rng.random(1001) < 0.1).astype(np.int8)
    w = rng.exponential(1.0, y.size) * np.where(y == 1, 0.003, 1.0)
    out = training_weights(w, y)
    assert out[y == 1].sum() == pytest.approx(y.size / 2, rel=1e-12)
    assert out[y == 0].sum() == pytest.approx(y.size / 2, rel=1e-12)
    # relative weights within a class unchanged
    np.testing.assert_allclose(out[y == 0] / w[y == 0], out[y == 0][0] / w[y == 0][0], rtol=1e-12)


def test_absolute_weights_keep_the_class_ratio_and_have_unit_mean():
    y = np.array([1, 1, 0, 0, 0])
    w = np.array([0.01, 0.03, 1.0, 2.0, -1.0])
    out = training_weights(w, y, weighting="absolute", negative_weights="abs")
    assert np.mean(out) == pytest.approx(1.0)
    assert out[y == 1].sum() / out[y == 0].sum() == pytest.approx(0.04 / 4.0)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("abs", [1.0, 1.0, 1.0, 2.0, 1.0]),
        ("zero", [1.0, 1.0, 0.0, 2.0, 1.0]),
        ("keep", [1.0, 1.0, -1.0, 2.0, 1.0]),
    ],
)
def test_negative_weight_modes_applied_before_balancing(mode, expected):
    y = np.array([1, 1, 0, 0, 0])
    w = np.array([1.0, 1.0, -1.0, 2.0, 1.0])
    out = training_weights(w, y, weighting="balanced", negative_weights=mode)
    exp = np.array(expected)
    bkg_total = exp[2:].sum()
    np.testing.assert_allclose(out[2:], exp[2:] * 2.5 / bkg_total, rtol=1e-12)
    np.testing.assert_allclose(out[:2], [1.25, 1.25], rtol=1e-12)
    assert out[y == 0].sum() == pytest.approx(2.5) and out[y == 1].sum() == pytest.approx(2.5)
    assert (out < 0).any() == (mode == "keep")


def test_weight_errors_name_the_key():
    y, w = np.array([1, 0, 0]), np.array([1.0, -2.0, 1.0])
    with pytest.raises(ModelError, match="background.*negative_weights='keep'"):
        training_weights(w, y, negative_weights="keep")
    with pytest.raises(ModelError, match="signal \\(label 1\\) has 0 events"):
        training_weights([1.0, 1.0], [0, 0])
    with pytest.raises(ConfigError, match="training.weighting"):
        training_weights(w, y, weighting="equal")
    with pytest.raises(ConfigError, match="training.negative_weights"):
        training_weights(w, y, negative_weights="drop")
    with pytest.raises(DataContractError, match="label"):
        training_weights([1.0, 1.0], [0, 2])
    with pytest.raises(DataContractError, match="non-finite"):
        training_weights([1.0, np.nan], [0, 1])


def test_subsample_is_stratified_seeded_and_sorted():
    y = np.r_[np.ones(3000), np.zeros(7000)].astype(int)
    a = subsample_indices(y, 1000, seed=5)
    assert a.size == 1000 and int(y[a].sum()) == 300
    assert np.all(np.diff(a) > 0)
    assert np.array_equal(a, subsample_indices(y, 1000, seed=5))
    assert not np.array_equal(a, subsample_indices(y, 1000, seed=6))
    assert np.array_equal(subsample_indices(y, 10**6, seed=5), np.arange(y.size))
    with pytest.raises(ConfigError, match="training.max_train_events"):
        subsample_indices(y, "1000", seed=5)


# ---------------------------------------------------------------------------- registry


def test_unknown_type_names_key_and_builtins():
    with pytest.raises(ModelError, match=r"classifiers\[\]\.type.*'catboost'.*hgb, rf, lgbm, xgb"):
        build_classifier("catboost", {}, threads=1, seed=0)
    with pytest.raises(ModelError, match=r"classifiers\[\]\.type.*nosuchpkg"):
        build_classifier("nosuchpkg.mod:Clf", {}, threads=1, seed=0)
    with pytest.raises(ModelError, match="not a classifier"):
        build_classifier("sklearn.linear_model:LinearRegression", {}, threads=1, seed=0)


def test_params_validation():
    with pytest.raises(ModelError, match=r"\['n_jobs'\] are set by systpipe"):
        build_classifier("rf", {"n_jobs": 4}, threads=1, seed=0)
    with pytest.raises(ModelError, match="max_iterations.*valid:"):
        build_classifier("hgb", {"max_iterations": 5}, threads=1, seed=0)


def test_threads_and_seed_reach_the_library():
    lgbm = build_classifier("lgbm", {"num_leaves": 7}, threads=3, seed=11).get_params()
    assert (lgbm["n_jobs"], lgbm["random_state"], lgbm["num_leaves"]) == (3, 11, 7)
    assert lgbm["deterministic"] is True and lgbm["force_col_wise"] is True
    xgb = build_classifier("xgb", {}, threads=3, seed=11).get_params()
    assert (xgb["n_jobs"], xgb["random_state"], xgb["tree_method"]) == (3, 11, "hist")
    rf = build_classifier("rf", {}, threads=3, seed=11).get_params()
    assert (rf["n_jobs"], rf["random_state"]) == (3, 11)
    assert build_classifier("hgb", {}, threads=3, seed=11).get_params()["random_state"] == 11
    logreg = build_classifier(LOGREG, {}, threads=3, seed=11).get_params()
    assert logreg["n_jobs"] is None  # deprecated there: limited through joblib/threadpoolctl


def test_extensions():
    assert [model_file_extension(t) for t in BUILTIN_TYPES] == [
        "skops",
        "skops",
        "txt",
        "ubj",
        "npz",
    ]
    assert model_file_extension(LOGREG) == "skops"
    assert model_file_extension("lightgbm.LGBMClassifier") == "txt"
    assert model_file_extension("xgboost:XGBClassifier") == "ubj"


# ---------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    "type_", ["hgb", "lgbm", "xgb", "rf", LOGREG, "sklearn.linear_model.LogisticRegression"]
)
def test_auc_on_separable_data_is_near_the_bayes_limit(type_):
    bayes = norm.cdf(1.0)  # 0.8413
    params = {"max_iter": 1000} if "Logistic" in type_ else None
    model, info = fit(type_, separable(3000, 1), features=["a", "b", "c"], params=params)
    metrics = evaluate(model, separable(4000, 2), features=["a", "b", "c"], threads=1)
    assert bayes - 0.04 < metrics["auc"] < bayes + 0.02
    assert metrics["n_test"] == 4000
    assert info.n_train == 3000 and info.n_train_signal + info.n_train_background == 3000
    if info.feature_importances:  # informative features outrank the noise one
        imp = info.feature_importances
        assert sum(imp.values()) == pytest.approx(1.0)
        assert min(imp["a"], imp["b"]) > imp["c"]
    else:
        assert type_ in ("hgb",) or "Logistic" in type_


def test_weighted_auc_matches_sklearn_and_brute_force():
    rng = np.random.default_rng(3)
    s = np.round(rng.random(300), 1)  # many ties
    y = (rng.random(300) < 0.4).astype(int)
    w = rng.exponential(1.0, 300)
    assert weighted_auc(s, y, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), rel=1e-12)
    w[::7] *= -1.0  # signed weights: the pairwise definition
    S, B = y == 1, y == 0
    pair = (s[S][:, None] > s[B][None, :]) + 0.5 * (s[S][:, None] == s[B][None, :])
    brute = (w[S][:, None] * w[B][None, :] * pair).sum() / (w[S].sum() * w[B].sum())
    assert weighted_auc(s, y, w) == pytest.approx(brute, rel=1e-12)


def test_subsampling_respects_cap_and_row_order(data15):
    shuffled = data15.sample(frac=1.0, random_state=3)
    m1, i1 = fit("lgbm", data15, max_train_events=1500)
    m2, _ = fit("lgbm", shuffled, max_train_events=1500)
    assert i1.n_train == 1500 and i1.n_input == 4000
    assert i1.n_train_signal == round(1500 * (data15.label == 1).mean())
    p1 = predict_scores(m1, data15, features=FEATURES15, threads=1)
    assert np.array_equal(p1, predict_scores(m2, data15, features=FEATURES15, threads=1))


def test_single_class_and_missing_columns(data15):
    with pytest.raises(ModelError, match="both labels"):
        fit("lgbm", data15[data15.label == 0])
    with pytest.raises(DataContractError, match=r"\['x3'\] missing; columns present: \['event_id'"):
        fit("lgbm", data15.drop(columns="x3"))
    with pytest.raises(DataContractError, match="weight"):
        fit("lgbm", data15.drop(columns="weight"))


def test_negative_weights_keep(data15):
    model, _ = fit("lgbm", data15, negative_weights="keep")  # LightGBM accepts them
    assert np.all(np.isfinite(predict_scores(model, data15, features=FEATURES15, threads=1)))
    with pytest.raises(ModelError, match="negative_weights"):  # XGBoost refuses them
        fit("xgb", data15, negative_weights="keep")


@pytest.mark.parametrize("type_", ["hgb", "lgbm", "xgb", "rf"])
def test_progress_is_logged_about_ten_times(type_, data15, caplog):
    caplog.set_level(logging.INFO, logger="systpipe.train")
    fit(type_, data15.iloc[:1000], threads=1)
    progress = [
        r for r in caplog.records if "/20" in r.getMessage() or "/10 trees" in r.getMessage()
    ]
    assert len(progress) == 10


def test_rf_batches_equal_a_single_fit(data15, trained):
    X = data15.sort_values("event_id")[FEATURES15].to_numpy(dtype=np.float64)
    srt = data15.sort_values("event_id")
    w = training_weights(srt.weight.to_numpy(), srt.label.to_numpy(), weighting="absolute")
    ref = RandomForestClassifier(**SMALL_PARAMS["rf"], random_state=7, n_jobs=1)
    ref.fit(X, srt.label.to_numpy().astype(np.int64), sample_weight=w)
    assert trained["rf"].warm_start is False and trained["rf"].n_estimators == 10
    assert np.array_equal(
        ref.predict_proba(X)[:, 1],
        predict_scores(trained["rf"], srt, features=FEATURES15, threads=1),
    )


# ---------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("type_", ["hgb", "lgbm", "xgb", "rf"])
def test_one_and_two_threads_give_identical_models(type_, data15, trained, tmp_path):
    one, _ = fit(type_, data15, threads=1, weighting="absolute")
    p1 = predict_scores(one, data15, features=FEATURES15, threads=1)
    p2 = predict_scores(trained[type_], data15, features=FEATURES15, threads=2)
    assert np.array_equal(p1, p2)
    f1 = save_model(one, tmp_path / "one", type_).read_bytes()
    f2 = save_model(trained[type_], tmp_path / "two", type_).read_bytes()
    assert f1 == f2  # model files byte-identical too
    if type_ == "rf":  # the seed is used (boosters without subsampling ignore it)
        other, _ = fit(type_, data15, threads=2, seed=8, weighting="absolute")
        assert not np.array_equal(p2, predict_scores(other, data15, features=FEATURES15, threads=2))


@pytest.mark.parametrize("override", [{"force_row_wise": True}, {"deterministic": False}])
def test_lightgbm_negative_control(override, data15):
    """Without deterministic column-wise histograms LightGBM depends on the thread count on
    these data, so the test above can fail: each of the two defaults is needed."""
    params = {**SMALL_PARAMS["lgbm"], **override}
    p = [
        predict_scores(
            fit("lgbm", data15, threads=t, params=params, weighting="absolute")[0],
            data15,
            features=FEATURES15,
            threads=1,
        )
        for t in (1, 2)
    ]
    assert not np.array_equal(p[0], p[1])


# ---------------------------------------------------------------------------- persistence

LOADER = """
import sys, numpy as np, pandas as pd
from systpipe.models import load_model
from systpipe.score import predict_scores
df = pd.read_parquet(sys.argv[1])
for path, out, feats in zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3]):
    model = load_model(path)
    print(type(model).__name__)
    np.save(out, predict_scores(model, df, features=feats.split(","), threads=1))
"""


def test_round_trip_in_a_fresh_process(data15, trained, tmp_path):
    logreg, _ = fit(LOGREG, data15, params={"max_iter": 2000})
    models = {**trained, "logreg": logreg}
    types = {**{t: t for t in trained}, "logreg": LOGREG}
    data15.to_parquet(tmp_path / "events.parquet")
    args, expected = [], {}
    for key, model in models.items():
        path = save_model(model, tmp_path / key, types[key])
        assert path.name == f"{key}.{model_file_extension(types[key])}"
        head = path.read_bytes()[:4]
        assert head[:1] != b"\x80"  # not a pickle
        assert (
            head == {"txt": b"tree", "ubj": b"{L\x00\x00", "skops": b"PK\x03\x04"}[path.suffix[1:]]
        )
        if path.suffix == ".skops":
            with zipfile.ZipFile(path) as zf:
                assert "schema.json" in zf.namelist()
        expected[key] = predict_scores(model, data15, features=FEATURES15, threads=2)
        args += [str(path), str(tmp_path / f"{key}.npy"), ",".join(FEATURES15)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", LOADER, str(tmp_path / "events.parquet"), *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert done.stdout.split() == [
        "HistGradientBoostingClassifier",
        "LightGBMBooster",
        "XGBClassifier",
        "RandomForestClassifier",
        "LogisticRegression",
    ]
    for key in models:
        assert np.array_equal(np.load(tmp_path / f"{key}.npy"), expected[key]), key
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave nothing behind


def test_loader_dispatches_on_extension(trained, tmp_path):
    assert isinstance(
        load_model(save_model(trained["lgbm"], tmp_path / "m", "lgbm")), LightGBMBooster
    )
    assert (
        type(load_model(save_model(trained["xgb"], tmp_path / "m", "xgb"))).__name__
        == "XGBClassifier"
    )
    assert (
        type(load_model(save_model(trained["rf"], tmp_path / "m", "rf"))) is RandomForestClassifier
    )
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(ModelError, match="unknown model file extension '.pkl'"):
        load_model(tmp_path / "m.pkl")
    (tmp_path / "m.txt").rename(tmp_path / "x.ubj")
    with pytest.raises(ModelError, match="x.ubj: cannot load"):
        load_model(tmp_path / "x.ubj")
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "absent.skops")


class UntrustedClassifier(LogisticRegression):
    """A class outside scikit-learn: its skops file must be refused."""


def test_skops_refuses_types_outside_sklearn_and_numpy(tmp_path):
    import skops.io as sio

    df = separable(200, 0)
    model = UntrustedClassifier().fit(df[["a", "b"]].to_numpy(), df["label"].to_numpy())
    (tmp_path / "u.skops").write_bytes(sio.dumps(model))
    with pytest.raises(ModelError, match="refusing to load types.*UntrustedClassifier"):
        load_model(tmp_path / "u.skops")


def test_skops_bytes_are_canonical(trained, tmp_path):
    a = save_model(trained["hgb"], tmp_path / "a", "hgb").read_bytes()
    b = save_model(trained["hgb"], tmp_path / "b", "hgb").read_bytes()
    assert a == b
    assert trained["rf"].n_jobs == 2  # restored after saving with n_jobs=None
    assert load_model(save_model(trained["rf"], tmp_path / "rf", "rf")).n_jobs is None


def test_model_info_json(data15, tmp_path):
    model, info = fit("xgb", data15)
    metrics = evaluate(model, data15, features=FEATURES15, threads=1)
    record = json.loads(write_model_info(tmp_path / "xgb.json", info, metrics).read_text())
    for key in (
        "name",
        "type",
        "params",
        "training_time_s",
        "auc",
        "n_train",
        "feature_importances",
    ):
        assert key in record
    assert record["auc"] == metrics["auc"] and 0.5 < record["auc"] <= 1.0
    assert record["train_time_s"] == record["training_time_s"] > 0
    assert record["params"] == SMALL_PARAMS["xgb"] and record["n_train"] == 4000
    assert set(record["versions"]) >= {"sklearn", "lightgbm", "xgboost", "numpy", "systpipe"}
    assert sum(record["feature_importances"].values()) == pytest.approx(1.0)


def test_lightgbm_text_has_no_thread_count(trained, tmp_path):
    text = Path(save_model(trained["lgbm"], tmp_path / "l", "lgbm")).read_text()
    assert (
        "[num_threads: 0]" in text
        and "[deterministic: 1]" in text
        and "[force_col_wise: 1]" in text
    )
