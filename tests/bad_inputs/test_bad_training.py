"""Bad training inputs: misspelled library parameters, infinite features, impossible weights;
each refused before any training, naming the parameter, column, row or process, with no model
or record file written."""

from __future__ import annotations

import numpy as np
import pytest

from systpipe.errors import DataContractError, ModelError
from systpipe.score import predict_scores
from systpipe.train import check_physics_weights, train_classifier

LOGREG = "sklearn.linear_model:LogisticRegression"

# --------------------------------------------------------------------------------------------
# Unknown library parameters: refused with the closest valid names


@pytest.mark.parametrize(
    ("type_", "params", "expected"),
    [
        (
            "lgbm",
            {"n_estimator": 5},
            "of type 'lgbm': unknown parameter(s) for LightGBM: 'n_estimator' (closest valid: "
            "'n_estimators'",
        ),
        (
            "lgbm",
            {"bagging_fracton": 0.7, "learning_rate": 0.1},
            "for LightGBM: 'bagging_fracton' (closest valid: 'bagging_fraction'",
        ),
        ("lgbm", {"zzzz": 1}, "'zzzz' (no close match among the"),
        (
            "xgb",
            {"n_estimator": 5},
            "of classifier 'clf': unknown parameter(s) for XGBoost: 'n_estimator' (closest valid: "
            "'n_estimators'",
        ),
        (
            "xgb",
            {"lerning_rate": 0.1, "max_depht": 3},
            "'lerning_rate' (closest valid: 'learning_rate'); 'max_depht' (closest valid: "
            "'max_depth'",
        ),
        (
            "hgb",
            {"max_iterations": 5},
            "of type 'hgb': unknown parameter(s) for HistGradientBoostingClassifier: "
            "'max_iterations' (closest valid: 'max_iter'",
        ),
        (
            "rf",
            {"n_estimator": 5},
            "for RandomForestClassifier: 'n_estimator' (closest valid: 'n_estimators'",
        ),
        (
            LOGREG,
            {"max_iters": 50},
            "for LogisticRegression: 'max_iters' (closest valid: 'max_iter'",
        ),
    ],
)
def test_unknown_params_are_refused_before_training(
    run_train, tmp_path, no_leftovers, type_, params, expected
):
    with pytest.raises(ModelError) as err:
        run_train(type_, params)
    msg = str(err.value)
    assert msg.startswith("classifiers[].params of ") and expected in msg
    assert "the library would ignore or refuse them" in msg
    no_leftovers(tmp_path / "out", set())


def test_xgboost_typo_is_caught_before_the_real_fit(helpers, monkeypatch):
    # The probe runs one round on a few rows; the full fit (here 10^6 rounds) never starts.
    import xgboost as xgb

    calls = []
    real_fit = xgb.XGBClassifier.fit
    monkeypatch.setattr(
        xgb.XGBClassifier, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k)
    )
    with pytest.raises(ModelError, match="'n_estimator' \\(closest valid: 'n_estimators'"):
        train_classifier(
            helpers.events(),
            features=helpers.FEATURES,
            name="bdt",
            type_="xgb",
            params={"n_estimators": 1_000_000, "n_estimator": 5},
        )
    assert calls == []


def test_xgboost_bad_value_names_the_classifier(run_train, tmp_path, no_leftovers):
    with pytest.raises(
        ModelError, match=r"classifiers\[\]\.params of classifier 'clf': .*max_depth"
    ):
        run_train("xgb", {"max_depth": -1})
    no_leftovers(tmp_path / "out", set())


@pytest.mark.parametrize(
    ("type_", "params"),
    [
        (
            "lgbm",
            {"n_estimators": 3, "min_data_in_leaf": 5, "feature_fraction": 0.9, "verbose": -1},
        ),
        ("xgb", {"n_estimators": 3, "eta": 0.3, "monotone_constraints": "(1,0,-1)"}),
    ],
)
def test_valid_aliases_and_per_feature_params_still_train(run_train, type_, params):
    out = run_train(type_, params)
    assert sorted(p.suffix for p in out.iterdir()) == sorted(
        [".json", f".{'txt' if type_ == 'lgbm' else 'ubj'}"]
    )


# --------------------------------------------------------------------------------------------
# +/-inf in a feature


@pytest.mark.parametrize(
    ("type_", "params", "value"),
    [
        ("hgb", {"max_iter": 3}, np.inf),
        ("lgbm", {"n_estimators": 3}, -np.inf),
        ("xgb", {"n_estimators": 3}, np.inf),
        ("rf", {"n_estimators": 3}, -np.inf),
    ],
)
def test_infinite_feature_is_refused_naming_column_and_row(
    run_train, helpers, tmp_path, no_leftovers, type_, params, value
):
    df = helpers.events()
    df.loc[7, "b"] = value
    df.loc[9, "b"] = value
    with pytest.raises(DataContractError) as err:
        run_train(type_, params, df=df)
    msg = str(err.value)
    assert f"'b': 2 infinite value(s), first {value} at row 7 (event_id 1007)" in msg
    assert "NaN is allowed and means missing" in msg
    no_leftovers(tmp_path / "out", set())


def test_infinite_feature_names_the_source_file(helpers):
    df = helpers.events()
    df.loc[3, "c"] = np.inf
    with pytest.raises(DataContractError, match=r"^results/data/train\.parquet: feature column"):
        train_classifier(
            df,
            features=helpers.FEATURES,
            name="c",
            type_="hgb",
            params={},
            source="results/data/train.parquet",
        )


def test_infinite_feature_is_refused_when_scoring(fitted, helpers):
    df = helpers.events()
    df.loc[11, "a"] = -np.inf
    with pytest.raises(
        DataContractError, match=r"'a': 1 infinite value\(s\), first -inf at row 11"
    ):
        predict_scores(fitted["rf"], df, features=helpers.FEATURES, threads=1)


def test_nan_features_still_train(run_train, helpers):
    df = helpers.events()
    df.loc[::10, "a"] = np.nan
    assert (run_train("hgb", {"max_iter": 3}, df=df) / "clf.json").is_file()


# --------------------------------------------------------------------------------------------
# Weights no analysis can mean


@pytest.mark.parametrize("negative_weights", ["abs", "zero", "keep"])
def test_all_negative_background_is_refused_naming_the_process(
    run_train, helpers, tmp_path, no_leftovers, negative_weights
):
    df = helpers.events()
    df.loc[df["process"] == "tt", "weight"] *= -1.0
    with pytest.raises(DataContractError) as err:
        run_train("hgb", {"max_iter": 3}, df=df, negative_weights=negative_weights)
    n_tt = int((df["process"] == "tt").sum())
    # the train step names its input file first
    assert str(err.value) == (
        f"{tmp_path / 'in' / 'train.parquet'}: "
        f"process 'tt' (background) has total weight {-float(n_tt):g} over {n_tt} events "
        f"({n_tt} negative); expected a positive total (a sign flipped in the weight column or "
        "files.weight.scale?)"
    )
    no_leftovers(tmp_path / "out", set())


def test_negative_signal_total_without_process_column(helpers):
    df = helpers.events().drop(columns="process")
    df.loc[df["label"] == 1, "weight"] = -0.1
    with pytest.raises(
        DataContractError, match=r"^in\.parquet: label 1 \(signal\) has total weight -20"
    ):
        check_physics_weights(df["weight"], df["label"], source="in.parquet")


@pytest.mark.parametrize(
    ("value", "shown"), [(1e300, "1e+300"), (-1e31, "-1e+31"), (np.inf, "inf"), (np.nan, "nan")]
)
def test_absurd_weight_is_refused_naming_row_and_process(
    run_train, helpers, tmp_path, no_leftovers, value, shown
):
    df = helpers.events()
    df.loc[4, "weight"] = value
    with pytest.raises(DataContractError) as err:
        run_train("lgbm", {"n_estimators": 3}, df=df)
    msg = str(err.value)
    assert msg.startswith(
        f"{tmp_path / 'in' / 'train.parquet'}: column 'weight': 1 weight(s) non-finite or beyond +/-1e+30"
    )
    assert f"first {shown} at row 4 (process 'ww')" in msg
    no_leftovers(tmp_path / "out", set())


def test_absurd_weight_names_the_source_file(helpers):
    df = helpers.events()
    df.loc[0, "weight"] = 1e300
    with pytest.raises(DataContractError, match=r"^data/mc\.parquet: column 'weight'"):
        train_classifier(
            df,
            features=helpers.FEATURES,
            name="c",
            type_="hgb",
            params={},
            source="data/mc.parquet",
        )


def test_large_but_sane_weights_still_train(run_train, helpers):
    df = helpers.events()
    df["weight"] *= 1e20  # e.g. a cross section in fb x luminosity in fb^-1 gone wrong is >1e30
    assert (run_train("hgb", {"max_iter": 3}, df=df) / "clf.json").is_file()
