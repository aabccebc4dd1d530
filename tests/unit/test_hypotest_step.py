"""The hypotest workflow steps: chunks of toys merge exactly, and the merged toy CLs and p0 of a
one-bin model equal the exact Poisson values within the toys' binomial errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson

from systpipe.config import validate_config
from systpipe.runner import run
from systpipe.stat.likelihood import HistFactoryModel
from systpipe.stat.limits import cls_upper_limit

S, B, N_OBS = 5.0, 3.0, 6.0


def _spec() -> dict:
    return {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {"name": "s", "data": [S], "modifiers": [
                        {"name": "mu", "type": "normfactor", "data": None}]},
                    {"name": "b", "data": [B], "modifiers": []},
                ],
            }
        ],
        "observations": [{"name": "SR", "data": [N_OBS]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[-5.0, 10.0]]}]}}],
        "version": "1.0.0",
    }  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("hypotest")
    spec = _spec()
    (d / "ws.json").write_text(json.dumps(spec))
    model = HistFactoryModel(spec)
    mu_up, _ = cls_upper_limit(model, np.array([N_OBS]), None)
    q0 = 2 * (N_OBS * math.log(N_OBS / B) - (N_OBS - B))
    (d / "fit.json").write_text(json.dumps({"cls_observed": mu_up, "z0_observed": math.sqrt(q0)}))
    return d, mu_up


def _summary(d, name: str, n_toys: int, chunk_size: int) -> pd.DataFrame:
    cfg = validate_config({"hypotest": {"n_toys": n_toys, "chunk_size": chunk_size}})
    n_chunks = -(-n_toys // chunk_size)
    chunks = []
    for c in range(n_chunks):
        out = d / f"{name}_{c}.parquet"
        count = min(chunk_size, n_toys - c * chunk_size)
        run(
            "hypotest",
            config=cfg,
            seed=11,
            params={"clf": "x", "chunk": c, "toys_in_chunk": count},
            input={"workspace": d / "ws.json", "fit": d / "fit.json"},
            output={"counts": out},
        )
        chunks.append(out)
    run(
        "hypotest_summary",
        config=cfg,
        params={"clf": "x"},
        input={"counts": chunks, "fit": d / "fit.json"},
        output={k: d / f"{name}.{k}" for k in ("parquet", "csv", "md", "tex")},
    )
    return pd.read_parquet(d / f"{name}.parquet")


def test_any_split_of_the_toys_gives_the_same_numbers(inputs):
    d, _ = inputs
    one = _summary(d, "one", 600, 600)
    three = _summary(d, "three", 600, 250)  # 250 + 250 + 100
    pd.testing.assert_frame_equal(one, three)
    assert one["n_toys"].tolist() == [1200, 600]


def test_toy_cls_and_p0_equal_the_exact_poisson_values(inputs):
    d, mu_up = inputs
    t = _summary(d, "big", 2000, 2000).set_index("test")
    cls = t.iloc[0]
    # q-mu-tilde falls with n for mu-hat < mu: CLs = P(N <= n | mu s + b) / P(N <= n | b)
    exact_cls = poisson.cdf(N_OBS, mu_up * S + B) / poisson.cdf(N_OBS, B)
    assert cls["asymptotic"] == 0.05
    assert abs(cls["toys"] - exact_cls) < 3 * cls["toys_error"], (cls["toys"], exact_cls)
    # the asymptotic limit is off at 3 background events: the toys see it (exact CLs != 0.05)
    assert abs(exact_cls - 0.05) > 0.01
    p0 = t.iloc[1]
    exact_p0 = poisson.sf(N_OBS - 1, B)  # q0 rises with n above b: P(N >= 6 | 3) = 0.0839
    assert exact_p0 == pytest.approx(0.0839, abs=1e-4)
    assert abs(p0["toys"] - exact_p0) < 3 * p0["toys_error"], (p0["toys"], exact_p0)
    assert p0["asymptotic"] == pytest.approx(0.5 * math.erfc(math.sqrt(p0["q_obs"] / 2)), rel=1e-9)
    assert p0["n_failed"] == 0 and cls["n_failed"] == 0


def test_no_toy_above_gives_an_upper_bound_and_a_note():
    from systpipe.steps.hypotest import summarise_hypotests

    chunk = {"mu": 1.0, "q_obs": 3.0, "n_sb": 100, "n_sb_above": 5, "n_b": 100,
             "n_b_above": 50, "n_failed_cls": 0, "q0_obs": 30.0, "n_q0": 1000,
             "n_q0_above": 0, "n_failed_q0": 0}  # fmt: skip
    t = summarise_hypotests([pd.DataFrame([chunk])], {"z0_observed": None})
    p0 = t.iloc[1]
    assert p0["toys"] == 0.0 and p0["toys_upper_95"] == pytest.approx(1 - 0.05 ** (1 / 1000))
    assert "no toy reached" in p0["note"] and math.isnan(p0["asymptotic"])
