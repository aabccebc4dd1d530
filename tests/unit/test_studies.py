"""Tests of systpipe.studies: the notebook-002 part-1 numbers and the files run_studies writes."""

from __future__ import annotations

import json
import math

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from systpipe import studies
from systpipe.errors import ConfigError
from systpipe.stats import dmu_linear


def test_sigma_mu_configurations():
    t = studies.sigma_mu_table()
    np.testing.assert_allclose(t.sigma_mu, [1.0, 0.1, 0.1], rtol=1e-12)
    np.testing.assert_allclose(t.n, [1e4, 1e4, 1e6])
    np.testing.assert_allclose(t.f_S, [0.01, 0.1, 0.01])


def test_linear_propagation_values():
    t = studies.linear_propagation_table().set_index("case")
    # Closed forms with (d_epsS, d_epsB, d_L) = (0.05, 0.02, 0.01) at mu = 1.
    expected = {
        "notebook example S=100, B=2500": math.sqrt(
            2600 / 100**2 + 0.05**2 + (25 * 0.02) ** 2 + (26 * 0.01) ** 2
        ),
        "n=10,000 with 200 signal": math.sqrt(0.5**2 + 0.05**2 + 0.98**2 + 0.5**2),
        "n=200 with 150 signal": math.sqrt(
            200 / 150**2 + 0.05**2 + (50 / 150 * 0.02) ** 2 + (200 / 150 * 0.01) ** 2
        ),
        "n=100 with 99 signal": math.sqrt(
            100 / 99**2 + 0.05**2 + (0.02 / 99) ** 2 + (100 / 99 * 0.01) ** 2
        ),
        "dmu_printer n=10,000, alpha=1, f_S=0.1": math.sqrt(0.1**2 + 0.05**2 + 0.18**2 + 0.1**2),
    }
    for case, value in expected.items():
        assert t.loc[case, "dmu_lin"] == pytest.approx(value, rel=1e-12), case
    assert round(t.loc["notebook example S=100, B=2500", "dmu_lin"], 3) == 0.762
    # The notebook's printed 0.234 belongs to its dmu_printer example, not to S=100, B=2500.
    assert round(t.loc["dmu_printer n=10,000, alpha=1, f_S=0.1", "dmu_lin"], 3) == 0.234
    quad = np.sqrt(t.dmu_stat**2 + t.dmu_sig**2 + t.dmu_bkg**2 + t.dmu_lumi**2)
    np.testing.assert_allclose(quad, t.dmu_lin, rtol=1e-12)
    three = t.iloc[1:4].dmu_lin
    assert three.idxmin() == "n=200 with 150 signal"


def test_linear_propagation_uses_given_deltas():
    t = studies.linear_propagation_table(
        [studies.YieldCase("x", 300.0, 700.0)], d_eps_s=0.1, d_eps_b=0.0, d_lumi=0.0
    )
    assert t.dmu_lin.iloc[0] == pytest.approx(math.hypot(math.sqrt(1000) / 300, 0.1))
    assert t.dmu_bkg.iloc[0] == 0.0 and t.dmu_lumi.iloc[0] == 0.0
    assert t.dmu_lin.iloc[0] == pytest.approx(
        float(dmu_linear(300.0, 700.0, d_eps_s=0.1, d_eps_b=0.0, d_lumi=0.0))
    )


def test_sigma_mu_vs_alpha_scaling():
    alpha = np.linspace(1.0, 1000.0, 500)
    y = studies.sigma_mu_vs_alpha(alpha)
    assert np.all(np.diff(y) < 0)
    np.testing.assert_allclose(y * np.sqrt(alpha), math.sqrt(10_100) / 100, rtol=1e-13)
    a = np.geomspace(1.0, 1000.0, 50)
    assert studies.loglog_slope(a, studies.sigma_mu_vs_alpha(a)) == pytest.approx(-0.5, abs=1e-12)
    a_t = studies.alpha_for_target(0.1)
    assert a_t == pytest.approx(101.0)
    assert float(studies.sigma_mu_vs_alpha(a_t)) == pytest.approx(0.1, rel=1e-12)


def test_sigma_mu_vs_fraction_and_n():
    f = np.geomspace(1e-3, 1.0, 40)
    assert studies.loglog_slope(f, studies.sigma_mu_vs_fraction(f)) == pytest.approx(
        -1.0, abs=1e-12
    )
    assert studies.fraction_for_target(0.1) == pytest.approx(0.1)
    n = np.geomspace(2_600.0, 250_000.0, 40)
    y = studies.sigma_mu_vs_n(n)
    assert studies.loglog_slope(n, y) == pytest.approx(-0.5, abs=1e-12)
    assert float(studies.sigma_mu_vs_n(250_000.0)) == pytest.approx(0.01, rel=1e-12)
    assert float(studies.sigma_mu_vs_n(2_600.0)) == pytest.approx(1 / (0.2 * math.sqrt(2600)))
    assert studies.n_for_target(0.01, f_s=0.2) == pytest.approx(250_000.0)


@pytest.mark.parametrize("bad", [0.0, -5.0, np.nan])
def test_bad_inputs_raise(bad):
    with pytest.raises(ConfigError, match="alpha"):
        studies.sigma_mu_vs_alpha([1.0, bad])
    with pytest.raises(ConfigError, match="target"):
        studies.alpha_for_target(bad)


def test_markdown_table_format():
    md = studies.markdown_table(pd.DataFrame({"case": ["a|b"], "n": [10000.0], "x": [0.76164]}))
    assert md.splitlines() == ["| case | n | x |", "|---|---:|---:|", r"| a\|b | 10000 | 0.7616 |"]


def test_run_studies_writes_everything(tmp_path):
    paths = studies.run_studies(tmp_path)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [f"sigma_mu_vs_{x}.{e}" for x in ("alpha", "fraction", "n") for e in ("png", "pdf")]
        + [
            "linear_propagation.csv",
            "linear_propagation.md",
            "sigma_mu_configurations.csv",
            "sigma_mu_configurations.md",
            "studies_summary.json",
        ]
    )
    for p in paths:
        assert p.is_file() and p.stat().st_size > 100
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            h, w = matplotlib.image.imread(p).shape[:2]
            assert 500 <= w <= 4000 and 400 <= h <= 3000
        if p.suffix == ".pdf":
            assert p.read_bytes()[:4] == b"%PDF"
    lin = pd.read_csv(tmp_path / "linear_propagation.csv")
    assert lin.dmu_lin.iloc[0] == pytest.approx(0.7616, abs=1e-4)
    assert "0.7616" in (tmp_path / "linear_propagation.md").read_text()
    sig = pd.read_csv(tmp_path / "sigma_mu_configurations.csv")
    np.testing.assert_allclose(sig.sigma_mu, [1.0, 0.1, 0.1])
    summary = json.loads((tmp_path / "studies_summary.json").read_text())
    assert summary["slope_sigma_mu_vs_alpha"] == pytest.approx(-0.5, abs=1e-9)
    assert summary["slope_sigma_mu_vs_fraction"] == pytest.approx(-1.0, abs=1e-9)
    assert summary["n_for_sigma_mu_0.01_at_f_s_0.2"] == pytest.approx(250_000.0)
    # Same inputs give byte-identical outputs.
    again = studies.run_studies(tmp_path / "again")
    for a, b in zip(paths, again, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
