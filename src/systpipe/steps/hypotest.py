"""Steps of ``workflow/rules/hypotest.smk``: toy-based CLs and discovery p-value of a fit
workspace, scattered over chunks of toys and merged exactly (the chunks hold counts)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import io
from ..config import chunk_size_of
from ..errors import ConfigError, DataContractError
from ..provenance import derive_seed
from ..table import write_table
from ._registry import StepContext, step

if TYPE_CHECKING:
    from ..stat.likelihood import HistFactoryModel

log = logging.getLogger(__name__)

#: The level of the asymptotic upper limit at which the toy-based CLs is evaluated.
CLS_LEVEL = 0.05

CHUNK_COLUMNS = [
    "mu",
    "q_obs",
    "n_sb",
    "n_sb_above",
    "n_b",
    "n_b_above",
    "n_failed_cls",
    "q0_obs",
    "n_q0",
    "n_q0_above",
    "n_failed_q0",
]


def hypotest_chunk_count(cfg: Mapping[str, Any], chunk: int) -> int:
    """Toys per hypothesis in chunk ``chunk`` (:func:`~systpipe.config.chunk_size_of`).

    Example:
        >>> [hypotest_chunk_count({"n_toys": 2500, "chunk_size": 1000}, c) for c in range(3)]
        [1000, 1000, 500]
    """
    return chunk_size_of(cfg["n_toys"], cfg["chunk_size"], chunk, "hypotest")


def _observed(spec: dict) -> tuple[HistFactoryModel, np.ndarray, np.ndarray]:
    from ..stat.likelihood import HistFactoryModel

    model = HistFactoryModel(spec)
    if not np.all(np.isfinite(model.observed)):
        raise DataContractError("hypotest: the workspace has no observations for every channel")
    return model, model.observed, model.aux_nominal


def _number(record: dict, key: str) -> float:
    """A number of fit.json: null (NaN) and missing keys are NaN, "inf" is inf."""
    value = record.get(key)
    return math.nan if value is None else float(value)


@step(
    "hypotest",
    uses=("hypotest",),
    seeded=True,
    ignores=("hypotest.n_toys",),
    help="toy-based CLs and p0 of one chunk (set: clf, chunk, toys_in_chunk; in: workspace, fit; out: counts)",
)
def hypotest(
    ctx: StepContext,
    *,
    clf: str,
    chunk: str | int,
    toys_in_chunk: str | int,
    workspace: str | Path,
    fit: str | Path,
    counts: str | Path,
) -> None:
    """One chunk: toys chunk*chunk_size .. of each hypothesis. CLs (q-mu-tilde) at the fit's
    asymptotic observed 95 % CL upper limit; q0 on the background-only toys."""
    from ..stat.hypotest import toy_cls, toy_p0

    cfg = ctx.settings["hypotest"]
    index = int(chunk)
    start = index * cfg["chunk_size"]
    n = int(toys_in_chunk)
    if not 0 < n <= cfg["chunk_size"]:
        raise ConfigError(f"hypotest chunk {index}: {n} toys, outside 1..hypotest.chunk_size")
    model, data, aux = _observed(json.loads(Path(workspace).read_text()))
    mu_up = _number(json.loads(Path(fit).read_text()), "cls_observed")
    seed = derive_seed(ctx.seed, "hypotest", clf)
    row: dict[str, float] = dict.fromkeys(CHUNK_COLUMNS, math.nan)
    if math.isfinite(mu_up) and mu_up > 0:
        log.info(
            "hypotest %s chunk %d: %d toys per hypothesis, CLs at mu = %.6g", clf, index, n, mu_up
        )
        cls = toy_cls(model, data, aux, mu_up, seed=seed, start=start, count=n)
        row |= {
            "mu": cls.mu,
            "q_obs": cls.q_obs,
            "n_sb": cls.n_sb,
            "n_sb_above": cls.n_sb_above,
            "n_b": cls.n_b,
            "n_b_above": cls.n_b_above,
            "n_failed_cls": cls.n_failed,
        }
    else:
        log.warning("hypotest %s: no finite asymptotic upper limit in the fit, CLs skipped", clf)
    p0 = toy_p0(model, data, aux, seed=seed, start=start, count=n)
    row |= {
        "q0_obs": p0.q0_obs,
        "n_q0": p0.n_b,
        "n_q0_above": p0.n_above,
        "n_failed_q0": p0.n_failed,
    }
    frame = pd.DataFrame([row], columns=CHUNK_COLUMNS)
    io.write_table(frame, counts, ctx.provenance(classifier=clf, chunk=index, toys=n))


def summarise_hypotests(chunks: Sequence[pd.DataFrame], fit: dict) -> pd.DataFrame:
    """Sum the chunks' counts; one row per test with the toy value, its binomial error, the
    asymptotic value and their difference in units of the toy error.

    Example (two chunks of the same test merge into one):
        >>> c = {"mu": 1.5, "q_obs": 2.7, "n_sb": 500, "n_sb_above": 30, "n_b": 500,
        ...      "n_b_above": 300, "n_failed_cls": 0, "q0_obs": 9.0, "n_q0": 500,
        ...      "n_q0_above": 1, "n_failed_q0": 0}
        >>> t = summarise_hypotests([pd.DataFrame([c]), pd.DataFrame([c])], {"z0_observed": 3.0})
        >>> t["n_toys"].tolist(), round(float(t["toys"][0]), 4), round(float(t["asymptotic"][1]), 5)
        ([2000, 1000], 0.1, 0.00135)
    """
    from scipy.stats import norm

    from ..stat.hypotest import ToyCLs, ToyP0

    frame = pd.concat(list(chunks), ignore_index=True)
    for col in ("mu", "q_obs", "q0_obs"):
        values = frame[col].dropna().unique()
        if len(values) > 1:
            raise DataContractError(f"hypotest chunks disagree on {col}: {sorted(values)[:3]}")
    rows = []
    if frame["mu"].notna().all():
        ints = frame[["n_sb", "n_sb_above", "n_b", "n_b_above", "n_failed_cls"]].sum().astype(int)
        cls = ToyCLs(float(frame["mu"].iloc[0]), float(frame["q_obs"].iloc[0]), *map(int, ints))
        value, error = cls.cls, cls.cls_error
        rows.append(
            _row("CLs at the asymptotic 95 % CL limit", cls.mu, cls.q_obs, cls.n_sb + cls.n_b,
                 cls.n_sb_above + cls.n_b_above, cls.n_failed, value, error, CLS_LEVEL)
        )  # fmt: skip
    ints = frame[["n_q0", "n_q0_above", "n_failed_q0"]].sum().astype(int)
    p0 = ToyP0(float(frame["q0_obs"].iloc[0]), *map(int, ints))
    z_obs = _number(fit, "z0_observed")
    asym = float(norm.sf(z_obs)) if math.isfinite(z_obs) else math.nan
    rows.append(
        _row("p0 (discovery, q0)", 0.0, p0.q0_obs, p0.n_b, p0.n_above, p0.n_failed, p0.p0,
             p0.p0_error, asym, upper=p0.p0_upper if p0.n_above == 0 else math.nan)
    )  # fmt: skip
    return pd.DataFrame(rows)


def _row(test: str, mu: float, q_obs: float, n: int, n_above: int, n_failed: int, value: float,
         error: float, asym: float, upper: float = math.nan) -> dict[str, Any]:  # fmt: skip
    pull = (value - asym) / error if error > 0 and math.isfinite(error) else math.nan
    note = ""
    if n_above == 0:
        note = f"no toy reached the observed statistic: value < {upper:.3g} (95 % CL)"
    elif n_failed:
        note = f"{n_failed} toys without a fit result (counted in neither numerator)"
    return {
        "test": test,
        "mu": mu,
        "q_obs": q_obs,
        "n_toys": n,
        "n_above": n_above,
        "n_failed": n_failed,
        "toys": value,
        "toys_error": error,
        "toys_upper_95": upper,
        "asymptotic": asym,
        "pull": pull,
        "note": note,
    }


@step(
    "hypotest_summary",
    uses=(),
    help="merge the hypotest chunks (set: clf; in: counts, fit; out: parquet, csv, md, tex)",
)
def hypotest_summary(
    ctx: StepContext,
    *,
    clf: str,
    counts: Sequence[str | Path],
    fit: str | Path,
    parquet: str | Path,
    csv: str | Path,
    md: str | Path,
    tex: str | Path,
) -> None:
    """Gather the chunks: toy-based CLs and p0 against the asymptotic values, with pulls."""
    table = summarise_hypotests(
        [io.read_table(p) for p in counts], json.loads(Path(fit).read_text())
    )
    table.insert(0, "classifier", clf)
    for _, r in table.iterrows():
        log.info(
            "%s %s: toys %.4g +/- %.2g (%d toys), asymptotic %.4g, pull %+.2f",
            clf, r["test"], r["toys"], r["toys_error"], r["n_toys"], r["asymptotic"], r["pull"],
        )  # fmt: skip
    write_table(table, str(parquet).removesuffix(".parquet"), provenance=ctx.provenance())
