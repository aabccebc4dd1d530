"""Steps of ``workflow/rules/toys.smk``: pseudo-experiments (scattered over chunks) and their
coverage summary (gathered)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from .. import io
from ..errors import ConfigError
from ..provenance import derive_seed
from ..table import write_table
from ._registry import StepContext, step

log = logging.getLogger(__name__)


@step(
    "toys",
    uses=("toys", "scan", "systematics"),
    seeded=True,
    # a chunk's toys depend on its index and size only: more toys add chunks, rerun none
    ignores=("toys.n_toys",),
    help="pseudo-experiments of one chunk (set: clf, mode, chunk, toys_in_chunk; in: workspace; out: toys)",
)
def toys(
    ctx: StepContext,
    *,
    clf: str,
    mode: str,
    chunk: str | int,
    toys_in_chunk: str | int,
    workspace: str | Path,
    toys: str | Path,
    neyman: str | Path | None = None,
) -> None:
    """One chunk of pseudo-experiments (scatter): toys chunk*chunk_size .. +toys_in_chunk-1,
    ``toys_in_chunk`` = chunk_size except in the last chunk (:func:`~systpipe.config.toy_chunk_size`)."""
    from ..stat.priors import parse_priors
    from ..stat.toys import prepare, run_toys

    cfg = ctx.settings["toys"]
    index = int(chunk)
    start = index * cfg["chunk_size"]
    count = int(toys_in_chunk)
    if not 0 < count <= cfg["chunk_size"]:
        raise ConfigError(f"toys chunk {index}: {count} toys, outside 1..toys.chunk_size")
    spec = json.loads(Path(workspace).read_text())
    setup = prepare(spec, systematics=ctx.settings["systematics"])
    if "neyman" in cfg["methods"]:
        setup.extras["neyman"] = load_calibration(neyman, spec)
    seed = derive_seed(ctx.seed, "toys", clf)
    log.info(
        "toys %s chunk %d: %d toys from %d, methods %s", mode, index, count, start, cfg["methods"]
    )
    frame = run_toys(
        setup,
        mode=mode,
        seed=seed,
        start=start,
        count=count,
        methods=cfg["methods"],
        symmetrise=ctx.settings["scan"]["symmetrise"],
        fitter=cfg["fitter"],
        priors=parse_priors(cfg["priors"], ctx.settings["systematics"]),
        mu_range=tuple(cfg["mu_range"]),
    )
    io.write_table(frame, toys, ctx.provenance(classifier=clf, mode=mode, chunk=index))


def load_calibration(path: str | Path | None, spec: dict) -> object:
    """The neyman calibration of the workspace ``spec`` (``results/fit/<clf>/neyman/
    profile_optimum.parquet``), checked to be of this workspace."""
    from ..stat.neyman_binned import Calibration, spec_hash

    if path is None:
        raise ConfigError("toys.methods has neyman: the rule needs the input 'neyman'")
    cal = Calibration.from_frame(io.read_table(path), io.read_provenance(path))
    if cal.spec_hash != spec_hash(spec):
        raise ConfigError(f"{path}: the calibration is of another workspace (spec hash differs)")
    return cal


@step(
    "toys_summary",
    uses=("labels", "input", "simulate", "files"),
    help="coverage summary of the toy chunks (set: clf; in: toys; out: parquet, csv, md, tex)",
)
def toys_summary(
    ctx: StepContext,
    *,
    clf: str,
    toys: Sequence[str | Path],
    parquet: str | Path,
    csv: str | Path,
    md: str | Path,
    tex: str | Path,
    plot: str | Path | None = None,
    plot_pdf: str | Path | None = None,
) -> None:
    """Gather the toy chunks: coverage, width, bias and challenge score per mode and method
    (and the coverage plot per method, with binomial errors, when ``plot`` is given)."""
    from ..stat.toys import summarise

    summary = summarise([io.read_table(p) for p in toys])
    summary.insert(0, "classifier", clf)
    write_table(summary, str(parquet).removesuffix(".parquet"), provenance=ctx.provenance())
    if plot is not None:
        from ..plots.labels import labels_from_settings
        from ..plots.validation import plot_coverage
        from ._frames import stem

        labels = labels_from_settings(ctx.settings)
        text = f"{labels.classifier(clf)}: toys of the fit workspace (profile-likelihood optimum)"
        plot_coverage(summary, stem(plot), labels=labels, text=text)
