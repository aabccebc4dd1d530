"""The step layer without Snakemake: every core step on a tiny sample through the same runner
the rules use, the settings contract, and the argument mapping."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from systpipe import io
from systpipe.config import validate_config
from systpipe.errors import ConfigError
from systpipe.runner import run, step_arguments
from systpipe.steps import STEPS, UndeclaredSetting

CONFIG = {
    "seed": 3,
    "simulate": {
        "n_selected": {"ggH_WW": 600, "WW": 600, "ttbar": 600, "Ztautau": 600},
        "chunk_size": 5000,
    },
    "training": {"max_train_events": 1200, "threads": 1},
    "classifiers": [{"name": "xgb", "type": "xgb", "params": {"n_estimators": 15, "max_depth": 3}}],
    "systematics": [
        {"name": "lumi", "type": "norm", "delta": 0.01},
        {"name": "sig", "type": "norm", "delta": 0.05, "labels": ["signal"]},
        {
            "name": "det",
            "type": "scale",
            "delta": 0.02,
            "columns": [
                "lep1_pt",
                "lep2_pt",
                "jet1_pt",
                "jets_px",
                "jets_py",
                "soft_px",
                "soft_py",
            ],
        },
    ],
    "scan": {
        "thresholds": {"start": 0.0, "stop": 1.0, "step": 0.02},
        "min_signal": 2.0,
        "min_background": 2.0,
    },
    "fit": {
        "limits": False,
        "optimise": {
            "thresholds": {"start": 0.3, "stop": 0.9, "step": 0.1},
            "n_bins_options": [1, 2],
        },
    },
    "toys": {"n_toys": 20, "chunk_size": 20, "modes": ["challenge"]},
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The cut-and-count chain and the statistical model of one classifier, step by step."""
    cfg = validate_config(CONFIG)
    d = tmp_path_factory.mktemp("steps")
    p = {k: d / f"{k}.parquet" for k in ("events", "train", "test", "scan", "methods", "toys")}
    run("simulate", config=cfg, output={"events": p["events"]})
    run(
        "split",
        config=cfg,
        input={"events": p["events"]},
        output={"train": p["train"], "tests": [p["test"]], "sample": d / "sample.parquet"},
    )
    run(
        "train",
        config=cfg,
        params={"clf": "xgb"},
        input={"train": p["train"], "test": d / "sample.parquet"},
        output={"model": d / "xgb.ubj", "info": d / "xgb.json"},
    )
    variations = {}
    for v in ("lumi_up", "lumi_down", "sig_up", "sig_down", "det_up", "det_down"):
        run(
            "vary",
            config=cfg,
            wildcards={"variation": v, "part": "0"},
            input={"test": p["test"]},
            output={"events": d / f"{v}.parquet"},
        )
        variations[f"variation__{v}"] = d / f"{v}.parquet"
    (d / "hists").mkdir()
    run(
        "score",
        config=cfg,
        wildcards={"clf": "xgb", "part": "0"},
        input={"model": d / "xgb.ubj", "test": p["test"]} | variations,
        output={"hist": d / "hists" / "0.parquet", "pairs": d / "hists" / "0.pairs.parquet"},
    )
    run(
        "merge_histograms",
        config=cfg,
        wildcards={"clf": "xgb"},
        input={"hists": [d / "hists" / "0.parquet"], "pairs": [d / "hists" / "0.pairs.parquet"]},
        output={"hist": d / "hist.parquet", "pair_sums": d / "pairs.parquet"},
    )
    fit_in = {"hist": d / "hist.parquet", "pairs": d / "pairs.parquet"}
    run(
        "scan",
        config=cfg,
        wildcards={"clf": "xgb"},
        input=fit_in,
        output={"scan": p["scan"]},
    )
    run(
        "workspace",
        config=cfg,
        wildcards={"clf": "xgb"},
        input=fit_in | {"scan": p["scan"]},
        output={"workspace": d / "ws.json", "binning": d / "binning.json"},
    )
    run(
        "fit",
        config=cfg,
        wildcards={"clf": "xgb"},
        input={"workspace": d / "ws.json", "binning": d / "binning.json"},
        output={
            "fit": d / "fit.json",
            **{k: d / f"{k}.png" for k in ("impacts", "pulls", "correlation", "prefit", "postfit")},
        },
    )
    run(
        "chi2",
        config=cfg,
        wildcards={"clf": "xgb"},
        input=fit_in | {"binning": d / "binning.json"},
        output={"chi2": d / "chi2.json"},
    )
    run(
        "methods",
        config=cfg,
        wildcards={"clf": "xgb"},
        input=fit_in
        | {
            "scan": p["scan"],
            "binning": d / "binning.json",
            "fit": d / "fit.json",
            "chi2": d / "chi2.json",
        },
        output={"methods": p["methods"]},
    )
    run(
        "toys",
        config=cfg,
        wildcards={"clf": "xgb", "mode": "challenge", "chunk": "0"},
        input={"workspace": d / "ws.json"},
        output={"toys": p["toys"]},
        params={"toys_in_chunk": 20},
    )
    tables = {fmt: d / f"uncertainties.{fmt}" for fmt in ("parquet", "csv", "md", "tex")}
    summary = {
        f"classifiers{'' if fmt == 'parquet' else '_' + fmt}": d / f"classifiers.{fmt}"
        for fmt in ("parquet", "csv", "md", "tex")
    }
    run(
        "table",
        config=cfg,
        input={"scan__xgb": p["scan"], "info__xgb": d / "xgb.json", "methods__xgb": p["methods"]},
        output=tables | summary,
    )
    return d, cfg


def test_chain_gives_the_table_of_every_method(chain):
    d, _ = chain
    table = pd.read_parquet(d / "uncertainties.parquet")
    assert sorted(set(zip(table["working_point"], table["method"], strict=True))) == sorted(
        [(w, m) for w in ("max_ams", "min_dmu_tot") for m in ("shift", "linear", "profile", "chi2")]
        + [("profile_optimum", m) for m in ("shift", "linear", "profile", "chi2")]
    )
    assert np.all(np.isfinite(table["dmu_tot"])) and np.all(table["dmu_tot"] >= table["dmu_stat"])
    # at a cut-and-count working point the linear method's rate terms are the scan's Jacobian terms
    scan = pd.read_parquet(d / "scan.parquet")
    row = table[(table["working_point"] == "max_ams") & (table["method"] == "linear")].iloc[0]
    at = scan[scan["threshold"] == row["threshold"]].iloc[0]
    assert row["dmu_lumi"] == at["dmu_lin_lumi"] and row["dmu_sig"] == at["dmu_lin_sig"]
    assert row["dmu_det"] == at["dmu_det"]  # a shape systematic: its symmetrised shift
    # the chain ran as the workflow would: provenance of each step in its outputs
    assert io.read_provenance(d / "scan.parquet")["step"] == "scan"
    assert io.read_provenance(d / "scan.parquet")["code"] == STEPS["scan"].fingerprint()


def test_shift_method_of_the_toys_equals_the_vectorised_scan(chain):
    from systpipe.stat.methods import shift
    from systpipe.steps.fit import cut_at
    from systpipe.table import working_points

    d, cfg = chain
    scan = pd.read_parquet(d / "scan.parquet")
    for index in working_points(scan).values():
        row = scan.iloc[index]
        result = shift(cut_at(row, cfg["systematics"]), float(row["n"]), symmetrise="mean")
        assert result.mu_hat == pytest.approx(1.0, abs=1e-12)
        assert result.total.sym == pytest.approx(row["dmu_tot"], rel=1e-12)
        for k in ("lumi", "sig", "det"):
            assert result.systematics[k].sym == pytest.approx(row[f"dmu_{k}"], rel=1e-10)


def test_toys_and_fit_outputs_are_complete(chain):
    d, _ = chain
    toys = pd.read_parquet(d / "toys.parquet")
    assert len(toys) == 20 * 4 and set(toys["method"]) == {"shift", "linear", "profile", "chi2"}
    fit = json.loads((d / "fit.json").read_text())
    assert fit["binning"]["n_bins"] in (1, 2) and fit["dmu_up"] > 0


def test_a_step_reading_an_undeclared_section_fails_loudly(chain, tmp_path):
    d, cfg = chain
    # the scan step declares (scan, systematics): give it less and it must say what is missing
    with pytest.raises(
        UndeclaredSetting,
        match="step 'scan' read config section 'scan'.*declared: \\['systematics'\\]",
    ):
        run(
            "scan",
            config=cfg,
            settings={"systematics": []},
            wildcards={"clf": "xgb"},
            input={"hist": d / "hist.parquet"},
            output={"scan": tmp_path / "scan.parquet"},
        )
    assert not (tmp_path / "scan.parquet").exists()


def test_the_rules_code_fingerprint_is_the_one_stored(chain, tmp_path):
    """A rule passes its step's fingerprint (params.code, computed when Snakemake parsed the
    workflow); the job stores that one instead of parsing the import closure again."""
    d, cfg = chain
    run(
        "split",
        config=cfg,
        code="0123456789abcdef",
        input={"events": d / "events.parquet"},
        output={
            "train": tmp_path / "train.parquet",
            "tests": [tmp_path / "test.parquet"],
            "sample": tmp_path / "sample.parquet",
        },
    )
    assert io.read_provenance(tmp_path / "test.parquet")["code"] == "0123456789abcdef"
    assert io.read_provenance(d / "test.parquet")["code"] == STEPS["split"].fingerprint()


def test_arguments_are_checked_against_the_step_function():
    assert step_arguments(
        "score",
        input={"model": "m", "test": "t", "variation__lumi_up": "b"},
        output={"hist": "h", "pairs": "p"},
        wildcards={"clf": "x", "part": "0"},
    ) == {"model": "m", "test": "t", "variation": {"lumi_up": "b"}, "hist": "h", "pairs": "p",
          "clf": "x", "part": "0"}  # fmt: skip
    with pytest.raises(Exception, match="does not take \\['typo'\\]"):
        step_arguments(
            "split",
            input={"events": "e", "typo": "x"},
            output={"train": "a", "tests": ["b"], "sample": "c"},
        )
    with pytest.raises(Exception, match="needs \\['tests', 'sample'\\]"):
        step_arguments("split", input={"events": "e"}, output={"train": "a"})


def test_settings_of_each_step_are_the_sections_it_declares():
    cfg = validate_config({})
    assert set(STEPS["scan"].settings_from(cfg)) == {"scan", "systematics"}
    only = STEPS["train"].settings_from(cfg, classifiers="lgbm")
    assert [c["name"] for c in only["classifiers"]] == ["lgbm"]
    assert STEPS["provenance"].settings_from(cfg) == cfg


def test_diagnostics_step_gathers_every_source(chain, tmp_path):
    d, cfg = chain
    out = tmp_path / "diagnostics.json"
    run(
        "diagnostics",
        config=cfg,
        input={
            "table": d / "uncertainties.parquet",
            "fit__xgb": d / "fit.json",
            "workspace__xgb": d / "ws.json",
            "binning__xgb": d / "binning.json",
        },
        output={"diagnostics": out},
    )
    record = json.loads(out.read_text())
    assert set(record["counts"]) == {"error", "warning", "info"}
    assert sum(record["counts"].values()) == len(record["diagnostics"])
    order = ["error", "warning", "info"]
    severities = [order.index(x["severity"]) for x in record["diagnostics"]]
    assert severities == sorted(severities)
    # the tiny sample's det templates are decided on (kept or pruned) and recorded
    binning = json.loads((d / "binning.json").read_text())
    assert {e["systematic"] for e in binning["templates"]["entries"]} == {"det"}
    assert binning["templates"]["untouched"] == ["lumi", "sig"]


def test_settings_that_do_not_change_outputs_are_left_out_of_a_steps_settings():
    """training.threads and toys.n_toys do not reach the train and toys jobs' params, so
    changing them reruns nothing (Snakemake reruns a job whose params changed)."""
    from systpipe.config import MAX_TOY_JOBS, validate_config
    from systpipe.steps import STEPS

    cfg = validate_config({"toys": {"n_toys": 1000, "chunk_size": 250}})
    more = validate_config(
        {"toys": {"n_toys": 4000, "chunk_size": 250}, "training": {"threads": 7}}
    )
    for name in ("train", "toys"):
        assert STEPS[name].settings_from(cfg) == STEPS[name].settings_from(more), name
    assert "n_toys" not in STEPS["toys"].settings_from(cfg)["toys"]
    assert "threads" not in STEPS["train"].settings_from(cfg)["training"]
    with pytest.raises(ConfigError, match=r"toy jobs per classifier .*toys.chunk_size"):
        validate_config({"toys": {"n_toys": 40000, "chunk_size": 1}})
    assert MAX_TOY_JOBS >= 12
