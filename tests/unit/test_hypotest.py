"""Toy-based CLs and test statistics against exact constructions and the asymptotic formulae."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from systpipe.stat.hypotest import ToyCLs, qtilde, toy_cls
from systpipe.stat.likelihood import HistFactoryModel


def counting_spec(s: float, b: float) -> dict:
    return {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {"name": "s", "data": [s], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
                    {"name": "b", "data": [b], "modifiers": []},
                ],
            }
        ],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [{"name": "mu", "bounds": [[-5.0, 10.0]]}]}}],
    }  # fmt: skip


def test_toy_cls_reproduces_the_exact_poisson_construction_at_low_counts():
    """b = 3, s = 5, n_obs = 3: q-tilde falls with n below mu s + b, so q >= q_obs <=> n <= 3 and
    CLs = P(N <= 3 | 8) / P(N <= 3 | 3) exactly (0.0655); the asymptotic formula is far off."""
    model = HistFactoryModel(counting_spec(5.0, 3.0))
    exact = stats.poisson.cdf(3, 8.0) / stats.poisson.cdf(3, 3.0)
    result = toy_cls(model, np.array([3.0]), None, 1.0, seed=4, count=4000)
    result = result + toy_cls(model, np.array([3.0]), None, 1.0, seed=4, start=4000, count=4000)
    assert result.n_sb == result.n_b == 8000 and result.n_failed == 0
    assert result.p_sb == pytest.approx(stats.poisson.cdf(3, 8.0), abs=4 * math.sqrt(0.042 / 8000))
    assert abs(result.cls - exact) < 3 * result.cls_error, (result.cls, exact, result.cls_error)
    # any split of the toys gives the same counts
    halves = toy_cls(model, np.array([3.0]), None, 1.0, seed=4, count=3000) + toy_cls(
        model, np.array([3.0]), None, 1.0, seed=4, start=3000, count=5000
    )
    assert halves == result


def test_qtilde_is_monotonic_in_the_count_below_the_tested_yield():
    model = HistFactoryModel(counting_spec(5.0, 3.0))
    q = qtilde(model, np.arange(0.0, 12.0)[:, None], None, 1.0)
    assert np.all(np.diff(q[:8]) < 0) and np.all(q[8:] == 0.0)
    # closed form for n >= b (mu-hat = (n - b)/s >= 0): 2 (lambda - n + n ln(n / lambda))
    for n in (3.0, 5.0, 7.0):
        want = 2 * (8.0 - n + n * math.log(n / 8.0))
        assert q[int(n)] == pytest.approx(want, abs=1e-7)


def test_toy_and_asymptotic_cls_agree_in_the_gaussian_regime():
    """A three-bin model with thousands of events, a normalisation and a shape systematic: the
    toy-based CLs at the asymptotic 95 % limit is 0.05 within 2 toy standard deviations."""
    from conftest import simple_spec
    from systpipe.stat.limits import cls_upper_limit

    spec = simple_spec()
    for ch in spec["channels"]:
        for sample in ch["samples"]:
            sample["data"] = [10 * x for x in sample["data"]]
            for mod in sample["modifiers"]:
                if mod["type"] == "histosys":
                    mod["data"] = {k: [10 * x for x in v] for k, v in mod["data"].items()}
    model = HistFactoryModel(spec)
    data = model.expected(
        model.nominal_pars * np.where(np.arange(model.n_pars) == model.poi_index, 0.0, 1.0)
    )
    limit, _ = cls_upper_limit(model, data)
    result = toy_cls(model, data, None, limit, seed=9, count=3000)
    assert result.n_failed == 0
    assert abs(result.cls - 0.05) < 2 * result.cls_error, (result.cls, result.cls_error)


def test_toy_cls_counts_merge_only_for_the_same_test():
    a = ToyCLs(1.0, 2.0, 10, 3, 10, 6)
    assert (a + a).cls == pytest.approx(0.5)
    with pytest.raises(ValueError, match="different tests"):
        a + ToyCLs(2.0, 2.0, 10, 3, 10, 6)
