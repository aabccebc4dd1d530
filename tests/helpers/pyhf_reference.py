"""pyhf's own fit, MINOS and CLs limit of a workspace: the reference the fast model is checked against.

Slow (pyhf with scipy/minuit); used by the tests and ``bench/bench_fit.py`` only, so it lives
outside the package.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any


@contextlib.contextmanager
def _pyhf_backend(optimizer: Any) -> Iterator[Any]:
    import pyhf

    old = pyhf.get_backend()
    pyhf.set_backend("numpy", optimizer)
    try:
        yield pyhf
    finally:
        pyhf.set_backend(*old)


def cls_upper_limit_pyhf(
    spec: Mapping[str, Any], *, poi: str = "mu", level: float = 0.05, guess: float = 1.0
) -> tuple[float, list[float]]:
    """Asymptotic CLs upper limit (qtilde) computed by pyhf itself (reference; slow, ~0.1 s per point).

    Uses ``pyhf.infer.intervals.upper_limits.toms748_scan`` with the POI bounded at zero;
    returns the observed limit and the expected ones at [-2, -1, 0, +1, +2] sigma.
    """
    import pyhf

    with _pyhf_backend(pyhf.optimize.scipy_optimizer()), warnings.catch_warnings():
        # scipy's SLSQP may warn about clipping to bounds during line searches; pyhf 0.7.6 uses
        # the deprecated jsonschema.RefResolver.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        ws = pyhf.Workspace(dict(spec))
        model = ws.model(poi_name=poi)
        data = ws.data(model)
        bounds = model.config.suggested_bounds()
        idx = model.config.poi_index
        bounds[idx] = (0.0, max(bounds[idx][1], 50.0 * guess))
        obs, exp = pyhf.infer.intervals.upper_limits.toms748_scan(
            data,
            model,
            1e-3 * guess,
            3.0 * guess,
            level=level,
            rtol=1e-4,
            par_bounds=bounds,
            test_stat="qtilde",
        )
    return float(obs), [float(e) for e in exp]


def pyhf_minos(spec: Mapping[str, Any], *, poi: str = "mu") -> tuple[float, float, float]:
    """Plain pyhf fit (minuit optimizer) of ``spec``: (mu_hat, MINOS lower offset < 0, upper > 0).

    The cross-check of the fast path; used by the tests and the benchmark.
    """
    import pyhf

    with _pyhf_backend(pyhf.optimize.minuit_optimizer(tolerance=1e-3)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = pyhf.Workspace(dict(spec))
        model = ws.model(poi_name=poi)
        data = ws.data(model)
        pars, res = pyhf.infer.mle.fit(data, model, return_result_obj=True)
        m = res.minuit
        name = m.parameters[model.config.poi_index]
        m.minos(name)
        me = m.merrors[name]
    return float(pars[model.config.poi_index]), float(me.lower), float(me.upper)


__all__ = ["cls_upper_limit_pyhf", "pyhf_minos"]
