"""INFERNO: Fisher-information loss vs closed forms, gradients, determinism, generator, files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from systpipe.errors import ModelError
from systpipe.inferno import synthetic as syn
from systpipe.inferno.adapter import InferenceAwareAdapter, InfernoClassifier
from systpipe.inferno.fisher import BinnedSpec, poi_sigma, poisson_fisher, template_fisher
from systpipe.inferno.network import Network, load_network, save_network
from systpipe.inferno.nuisances import Nuisance

S, B, T, A = 20.0, 100.0, 0.5, 1.3


def _two_bin_closed_form(xs: np.ndarray, xb: np.ndarray, nus: tuple[Nuisance, ...]) -> np.ndarray:
    """Fisher matrix of the 2-bin model with logits (A x, 0) / T, by hand.

    Bin 0 takes sigmoid(A x / T) of an event; the shift r moves the background's x, so
    d <sigmoid>/dr = <sigmoid (1 - sigmoid)> A / T; the norm factor (1 + b) scales it.
    """
    sig = 1 / (1 + np.exp(-A * xs / T))
    bkg = 1 / (1 + np.exp(-A * xb / T))
    ps, pb = sig.mean(), bkg.mean()
    dpb = (bkg * (1 - bkg)).mean() * A / T
    s, b = S * np.array([ps, 1 - ps]), B * np.array([pb, 1 - pb])
    cols = [s]
    for n in nus:
        cols.append(b if n.kind == "norm" else B * np.array([dpb, -dpb]))
    jac = np.column_stack(cols)
    fisher = np.zeros((1 + len(nus),) * 2)
    for i in range(2):  # sum over bins of J_ia J_ib / nu_i, written out
        fisher += np.outer(jac[i], jac[i]) / (s[i] + b[i])
    return fisher + np.diag([0.0, *(1 / n.sigma**2 for n in nus)])


def test_loss_equals_closed_form_on_two_bins() -> None:
    torch = pytest.importorskip("torch")
    from systpipe.inferno.fisher import fisher_information, inferno_hessian, inferno_loss

    xs, xb = np.array([[0.9], [0.4], [1.7]]), np.array([[-0.8], [0.1], [-1.5], [-0.2]])
    nus = (Nuisance("r", "shift", feature=0, sigma=0.5), Nuisance("bn", "norm", sigma=0.1))
    spec = BinnedSpec(S, B, nus)

    def net(x):
        return torch.cat([A * x, torch.zeros_like(x)], dim=1)

    ts, tb = torch.tensor(xs), torch.tensor(xb)
    expected = _two_bin_closed_form(xs, xb, nus)
    hess = inferno_hessian(net, ts, tb, spec, T).detach().numpy()
    np.testing.assert_allclose(hess, expected, rtol=1e-12)
    np.testing.assert_allclose(
        fisher_information(net, ts, tb, spec, T).detach().numpy(), expected, rtol=1e-12
    )
    var = float(inferno_loss(net, ts, tb, spec, T))
    assert var == pytest.approx(np.linalg.inv(expected)[0, 0], rel=1e-12)
    # mu and the background norm only: var(mu) = F_bb / (F_mm F_bb - F_mb^2), profiled
    f = _two_bin_closed_form(xs, xb, nus[1:])
    spec_n = BinnedSpec(S, B, nus[1:])
    var_n = float(inferno_loss(net, ts, tb, spec_n, T))
    assert var_n == pytest.approx(f[1, 1] / (f[0, 0] * f[1, 1] - f[0, 1] ** 2), rel=1e-12)
    # no nuisance: 1 / sum s_i^2 / nu_i, smaller than with the nuisances profiled
    var0 = float(inferno_loss(net, ts, tb, BinnedSpec(S, B), T))
    assert var0 == pytest.approx(1 / f[0, 0], rel=1e-12)
    assert var0 < var_n < var


def test_gradients_reach_every_weight() -> None:
    torch = pytest.importorskip("torch")
    from systpipe.inferno.fisher import inferno_loss

    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    rng = np.random.default_rng(2)
    xs = torch.tensor(syn.sample("signal", 300, rng), dtype=torch.float32)
    xb = torch.tensor(syn.sample("background", 300, rng), dtype=torch.float32)
    loss = inferno_loss(net, xs, xb, syn.BENCHMARKS[4], 0.1)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, name


def _tiny_fit(seed: int, **kw) -> Network:
    from systpipe.inferno.network import train_inferno

    rng = np.random.default_rng(5)
    xs, xb = syn.sample("signal", 400, rng), syn.sample("background", 400, rng)
    return train_inferno(
        xs, xb, syn.BENCHMARKS[4], n_bins=4, hidden=(8, 8), epochs=2, batch_size=200,
        seed=seed, threads=1, **kw,
    )  # fmt: skip


def test_same_seed_gives_identical_weights() -> None:
    torch = pytest.importorskip("torch")
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    a, b, c = _tiny_fit(3), _tiny_fit(3), _tiny_fit(4)
    for wa, wb in zip(a.weights + a.biases, b.weights + b.biases, strict=True):
        assert np.array_equal(wa, wb)
    assert not np.array_equal(a.weights[0], c.weights[0])
    # the fit's settings do not leak out
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, det)


def test_generator_moments_match_the_definitions() -> None:
    rng = np.random.default_rng(11)
    n = 400_000
    xb = syn.sample("background", n, rng, r=0.5, lam=2.5)
    xs = syn.sample("signal", n, rng)
    for x, mean, var in (
        (xb, [2.5, 0.0, 1 / 2.5], [5.0, 9.0, 1 / 2.5**2]),
        (xs, [0.0, 0.0, 0.5], [1.0, 1.0, 0.25]),
    ):
        se = np.sqrt(np.asarray(var) / n)
        np.testing.assert_array_less(np.abs(x.mean(axis=0) - mean), 5 * se)
        np.testing.assert_allclose(x.var(axis=0), var, rtol=0.02)
        assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 5 / np.sqrt(n)
    # the densities integrate to 1 and peak where they should
    assert syn.log_density("signal", np.array([[0.0, 0.0, 0.0]]))[0] == pytest.approx(
        -np.log(2 * np.pi) + np.log(2.0)
    )


def test_template_fisher_matches_gaussian_closed_form() -> None:
    """Two bins split at x0 = c, background N(2 + r, 5) on an exact quantile grid: the finite
    difference of the templates reproduces d P(x0 > c) / dr = phi((c - 2)/sqrt5)/sqrt5."""
    n, c = 200_000, 1.0
    q = norm.ppf((np.arange(n) + 0.5) / n)
    xb = np.column_stack([2 + np.sqrt(5) * q, np.zeros(n), np.ones(n)])
    xs = np.column_stack([q, np.zeros(n), np.ones(n)])
    spec = BinnedSpec(50.0, 1000.0, (Nuisance("r", "shift", feature=0, sigma=0.4, step=0.05),))
    fisher = template_fisher(lambda x: (x[:, 0] > c).astype(int), 2, xs, xb, spec)
    ps, pb = norm.sf(c), norm.sf(c, loc=2, scale=np.sqrt(5))
    dpb = norm.pdf(c, loc=2, scale=np.sqrt(5))
    s, b = 50 * np.array([1 - ps, ps]), 1000 * np.array([1 - pb, pb])
    jac = np.column_stack([s, 1000 * np.array([-dpb, dpb])])
    expected = poisson_fisher(s + b, jac) + np.diag([0, 1 / 0.16])
    np.testing.assert_allclose(fisher, expected, rtol=2e-3)
    assert 50 * poi_sigma(fisher) == pytest.approx(
        50 * math.sqrt(np.linalg.inv(expected)[0, 0]), rel=2e-3
    )


def test_save_load_round_trip_without_pickle(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    net = _tiny_fit(7)
    path = save_network(net, tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as z:  # every entry is a plain array
        assert all(z[k].dtype != object for k in z.files)
    back = load_network(path)
    for wa, wb in zip(net.weights + net.biases, back.weights + back.biases, strict=True):
        assert np.array_equal(wa, wb)
    assert back.meta == net.meta
    x = syn.sample("background", 50, np.random.default_rng(0))
    np.testing.assert_array_equal(back.logits(x), net.logits(x))
    # the numpy forward pass is the torch network's
    layers = []
    for k, (w, b) in enumerate(zip(back.weights, back.biases, strict=True)):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        lin.weight.data, lin.bias.data = torch.tensor(w), torch.tensor(b)
        layers += [lin] + ([torch.nn.ReLU()] if k < len(back.weights) - 1 else [])
    xt = torch.tensor((x - back.x_mean) / back.x_scale, dtype=torch.float32)
    ref = torch.nn.Sequential(*layers)(xt).detach().numpy()
    np.testing.assert_allclose(back.logits(x), ref, rtol=1e-4, atol=1e-5)
    score = back.score(x)
    assert score.shape == (50,) and ((score >= 0) & (score <= 1)).all()
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="bad.npz"):
        load_network(tmp_path / "bad.npz")


def test_adapter_fits_saves_and_loads(tmp_path) -> None:
    pytest.importorskip("torch")
    import logging

    from systpipe.models.base import FitProgress

    rng = np.random.default_rng(8)
    X = np.vstack([syn.sample("signal", 300, rng), syn.sample("background", 300, rng)])
    y = np.repeat([1, 0], 300)
    w = np.where(y == 1, 50 / 300, 1000 / 300)
    adapter = InferenceAwareAdapter()
    nus = [{"name": "r", "kind": "shift", "feature": "x0", "sigma": 0.4}]
    est = adapter.build(
        InfernoClassifier, {"nuisances": nus, "n_bins": 3, "hidden": (6,), "epochs": 1,
                            "batch_size": 100}, threads=1, seed=2, type_="inferno",
    )  # fmt: skip
    assert est.random_state == 2 and est.n_jobs == 1
    adapter.fit(est, X, y, w, features=["x0", "x1", "x2"], threads=1,
                progress=FitProgress("t", logging.getLogger("t")))  # fmt: skip
    spec = est.network_.meta["spec"]
    assert spec["signal"] == pytest.approx(50) and spec["background"] == pytest.approx(1000)
    assert spec["nuisances"][0]["feature"] == 0
    path = tmp_path / "clf.npz"
    adapter.save(est, path)
    assert adapter.owns(path)
    loaded = adapter.load(path)
    np.testing.assert_array_equal(
        adapter.predict_proba(loaded, X, 1), adapter.predict_proba(est, X, 1)
    )
    bad = InfernoClassifier(nuisances=[{"name": "r", "kind": "shift", "feature": "pt"}])
    with pytest.raises(ModelError, match="'pt' is not a training feature"):
        bad.spec(y, w, ["x0", "x1", "x2"])


def test_nuisance_errors_name_the_key() -> None:
    with pytest.raises(ModelError, match="'jes'.*kind 'smear'"):
        Nuisance("jes", "smear", feature=0)
    with pytest.raises(ModelError, match="'jes'.*needs a feature"):
        Nuisance("jes", "shift")
    with pytest.raises(ModelError, match="unknown key"):
        Nuisance.from_dict({"name": "x", "kind": "norm", "sigmaa": 1})
