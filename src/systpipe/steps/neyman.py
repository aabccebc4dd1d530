"""Step of ``workflow/rules/neyman.smk``: the learned Neyman construction of one classifier at its
working points (docs/statistics.md, "The neyman method"): calibration of the critical value
c(mu, nu) on the binned model, stored as a grid (Parquet), and the interval on the observed data
(JSON, read by the ``methods`` step)."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..errors import ConfigError
from ..provenance import derive_seed
from ._frames import load_histograms, read_data_scores
from ._registry import StepContext, step

log = logging.getLogger(__name__)

PathMap = Mapping[str, str | Path]
#: Points of the grid on which the observed set is scanned (pieces, bounds).
SET_GRID = 201


def working_point_spec(
    settings: Mapping[str, Any],
    wp: str,
    *,
    workspace: str | Path | None,
    hist: str | Path | None,
    scan: str | Path | None,
    pairs: str | Path | None,
    data_scores: str | Path | None,
) -> dict[str, Any]:
    """The workspace of a working point: the fit's (``profile_optimum``), or the one-bin
    workspace above the cut-and-count working point's threshold, built exactly as the
    ``methods`` step builds its profile row's (:func:`~.fit.workspace_for_edges`)."""
    from ..table import working_points
    from .fit import workspace_for_edges

    if wp == "profile_optimum":
        if workspace is None:
            raise ConfigError("neyman at profile_optimum needs the input 'workspace'")
        spec: dict[str, Any] = json.loads(Path(workspace).read_text())
        return spec
    if hist is None or scan is None:
        raise ConfigError(f"neyman at {wp} needs the inputs 'hist' and 'scan'")
    systematics, fit_cfg = settings["systematics"], settings["fit"]
    scan_table = io.read_table(scan)
    points = working_points(scan_table)
    if wp not in points:
        raise ConfigError(f"neyman: unknown working point {wp!r}; expected {sorted(points)}")
    row = scan_table.iloc[points[wp]]
    frames = load_histograms(hist, pairs)
    edges = [float(row["threshold"]), fit_cfg["score_max"]]
    spec, _ = workspace_for_edges(
        fit_cfg,
        systematics,
        frames,
        edges,
        mc_stat=fit_cfg["mc_stat"],
        data_scores=read_data_scores(data_scores),
    )
    return spec


def calibrate(
    spec: Mapping[str, Any], cfg: Mapping[str, Any], seed: int, threads: int = 1
) -> tuple[Any, dict[str, Any]]:
    """Learn the construction of ``spec`` (``neyman`` config) and the interval on its observed
    data. Returns the :class:`~systpipe.stat.neyman_binned.Calibration` and the record."""
    from ..stat import neyman_binned as nb
    from ..stat.likelihood import HistFactoryModel

    model = HistFactoryModel(spec)
    counts, aux = model.observed, model.aux_nominal
    if not np.all(np.isfinite(counts)):
        raise ConfigError("neyman: the workspace has no observations for every bin")
    k = int(cfg["nuisances"])
    index, impacts, fit = nb.dominant_nuisances(model, counts, aux, k)
    mu_obs = float(fit.values[0, model.poi_index])
    box = nb.construction_box(
        model,
        index,
        fit,
        mu_points=[mu_obs, 1.0],
        box_sigma=float(cfg["box_sigma"]),
        nuisance_range=float(cfg["nuisance_range"]),
    )
    nm = nb.BinnedNeyman(model, np.array([model.poi_index, *index]), box)
    grid_points = [int(cfg["grid"]["mu"])] + [int(cfg["grid"]["nu"])] * k
    t0 = time.perf_counter()
    grid, cost = nb.learn(
        nm,
        budget=int(cfg["budget"]),
        seed=seed,
        grid_points=grid_points,
        threads=threads,
        regression=cfg["regression"],
    )
    cal = nb.Calibration(
        grid,
        tuple(int(i) for i in nm.index),
        nm.names,
        str(cfg["method"]),
        nb.spec_hash(spec),
        {"box": box.tolist(), "budget": int(cfg["budget"])},
    )
    res = nb.neyman_intervals(model, cal, counts[None, :], aux[None, :])
    mu_grid = np.linspace(box[0, 0], box[0, 1], SET_GRID)
    accepted, t_grid, c_grid = nb.set_on_grid(model, cal, counts, aux, mu_grid)
    lo, hi = float(res.lo[0]), float(res.hi[0])
    n_pieces = nb.pieces(accepted)
    flags = []
    if res.failed[0] or not (math.isfinite(lo) and math.isfinite(hi)):
        flags.append("failed")
    if res.at_bound[0]:
        flags.append("poi_bound")
    if accepted[0] or accepted[-1]:
        flags.append("box_edge")
    if n_pieces > 1:
        flags.append(f"{n_pieces}_pieces")
    seconds = time.perf_counter() - t0
    # wall-clock figures go to the log only: the record is byte-identical run to run
    timing = {k: cost.pop(k) for k in [k for k in cost if k.startswith(("seconds", "simul"))]}
    log.info(
        "neyman calibration: %d simulations, %.1f s (simulation %.1f s, %.0f per second; "
        "regression %.1f s)",
        cost["budget"],
        seconds,
        timing["seconds_simulation"],
        timing["simulations_per_second"],
        timing["seconds_regression"],
    )
    record = {
        "method": cal.method,
        "level": nb.LEVEL,
        "parameters": list(nm.names),
        "nuisances": list(nm.names[1:]),
        "remaining": nb.REMAINING,
        "impacts": dict(sorted(impacts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "box": box.tolist(),
        "mu_hat": float(res.mu_hat[0]),
        "lo": lo,
        "hi": hi,
        "width": hi - lo,
        "dmu_down": float(res.mu_hat[0]) - lo,
        "dmu_up": hi - float(res.mu_hat[0]),
        "dmu_tot": 0.5 * (hi - lo),
        "n_pieces": n_pieces,
        "set_grid": {"lo": float(box[0, 0]), "hi": float(box[0, 1]), "points": SET_GRID},
        "set_grid_edges": _grid_edges(mu_grid, accepted),
        "flags": flags,
        "critical_range": [float(grid.values.min()), float(grid.values.max())],
        "critical_at_mu_hat": float(np.interp(float(res.mu_hat[0]), mu_grid, c_grid)),
        "cost": cost,
    }
    return cal, record


def _grid_edges(grid: np.ndarray, accepted: np.ndarray) -> list[list[float]]:
    """[first, last] grid value of every accepted run."""
    out, start = [], None
    for i, a in enumerate(accepted):
        if a and start is None:
            start = i
        if start is not None and (not a or i == len(accepted) - 1):
            end = i if a else i - 1
            out.append([float(grid[start]), float(grid[end])])
            start = None
    return out


#: The working points with profile rows in the table, in the order they are calibrated.
WORKING_POINTS = ("max_ams", "min_dmu_tot", "profile_optimum")


@step(
    "neyman",
    uses=("neyman", "fit", "systematics"),
    seeded=True,
    help="learned Neyman critical values and observed intervals of one classifier at every working point (set: clf; in: workspace, hist, pairs, scan; out: critical__<wp>, interval__<wp>)",
)
def neyman(
    ctx: StepContext,
    *,
    clf: str,
    critical: PathMap,
    interval: PathMap,
    workspace: str | Path | None = None,
    hist: str | Path | None = None,
    scan: str | Path | None = None,
    pairs: str | Path | None = None,
    data_scores: str | Path | None = None,
) -> None:
    """Calibrate the construction of each working point's workspace (the working points are
    the keys of ``critical`` and ``interval``) and write its critical values (grid, Parquet,
    with the construction's description in the metadata) and observed interval (JSON). One
    job per classifier: the score files are read once; each working point has its own seed,
    so the results do not depend on which others are calibrated with it."""
    if set(critical) != set(interval):
        raise ConfigError(
            f"neyman {clf}: outputs critical__<wp> {sorted(critical)} and interval__<wp> "
            f"{sorted(interval)} must name the same working points"
        )
    unknown = sorted(set(critical) - set(WORKING_POINTS))
    if unknown:
        raise ConfigError(
            f"neyman: unknown working point(s) {unknown}; expected {list(WORKING_POINTS)}"
        )
    settings = ctx.settings
    for wp in [w for w in WORKING_POINTS if w in critical]:
        spec = working_point_spec(
            settings,
            wp,
            workspace=workspace,
            hist=hist,
            scan=scan,
            pairs=pairs,
            data_scores=data_scores,
        )
        seed = derive_seed(ctx.seed, "neyman", clf, wp)
        cal, record = calibrate(spec, settings["neyman"], seed, threads=ctx.threads)
        log.info(
            "neyman %s %s: mu_hat %.4f in [%.4f, %.4f] over %s; flags %s",
            clf,
            wp,
            record["mu_hat"],
            record["lo"],
            record["hi"],
            record["parameters"],
            record["flags"],
        )
        frame = cal.grid.to_frame()
        io.write_table(
            frame, critical[wp], ctx.provenance(classifier=clf, working_point=wp, **cal.metadata())
        )
        io.write_json({**record, "classifier": clf, "working_point": wp}, interval[wp])
