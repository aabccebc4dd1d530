"""Steps of ``workflow/rules/data.smk``: the event table (simulation or files) and the split."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import io
from ..provenance import derive_seed
from ._registry import StepContext, step

log = logging.getLogger(__name__)


@step(
    "simulate",
    uses=("simulate",),
    seeded=True,
    help="generate the built-in H->WW sample (out: events)",
)
def simulate(ctx: StepContext, *, events: str | Path) -> None:
    """Generate the built-in H->WW sample (docs/simulation.md) into ``events``, written chunk
    by chunk: memory is one ``simulate.chunk_size`` chunk however many events are asked for."""
    from ..simulate.driver import simulate_to_parquet

    sim = ctx.settings["simulate"]
    started = time.perf_counter()
    stats = simulate_to_parquet(
        events,
        provenance=lambda stats: ctx.provenance(**stats.summary()),
        n_selected=sim["n_selected"],
        seed=derive_seed(ctx.seed, "simulate"),
        luminosity_fb=sim["luminosity_fb"],
        chunk_size=sim["chunk_size"],
        cross_sections_pb=sim.get("cross_sections_pb"),
        **sim["detector"],
        **sim["selection"],
    )
    log.info(
        "simulated %d selected events in %.1f s", stats.n_events, time.perf_counter() - started
    )
    log.info("generation summary: %s", stats.summary())


def files_kwargs(files: Mapping[str, Any], systematics: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`systpipe.ingest.ingest` from the ``files`` section; the
    up/down columns of weight systematics are carried along."""
    from ..ingest import ingest_kwargs

    return ingest_kwargs(files, systematics)


@step(
    "ingest",
    uses=("files", "systematics"),
    help="read ROOT/Parquet/CSV files into the event table (out: events)",
)
def ingest(ctx: StepContext, *, events: str | Path) -> None:
    """Read the user's ROOT/Parquet/CSV files into the event table."""
    from ..ingest import ingest as read_files

    files = ctx.settings["files"]
    df = read_files(**files_kwargs(files, ctx.settings["systematics"]))
    log.info("ingested %d events from %d sample(s)", len(df), len(files["samples"]))
    io.write_table(df, events, ctx.provenance())


@step(
    "split",
    uses=("split", "files"),
    seeded=True,
    help="train/test split into test partitions (in: events; out: train, tests, sample)",
)
def split(
    ctx: StepContext,
    *,
    events: str | Path,
    train: str | Path,
    tests: Sequence[str | Path] | str | Path,
    sample: str | Path,
) -> None:
    """Stratified, seeded train/test split with weights rescaled to the full luminosity,
    streamed into the training file, the test partitions (``tests``, in partition order) and
    a bounded test sample (docs/scaling.md)."""
    from ..partitions import split_into_partitions
    from ..split import predefined_rescale

    split_into_partitions(
        events,
        train=train,
        tests=[tests] if isinstance(tests, str | Path) else list(tests),
        sample=sample,
        test_fraction=ctx.settings["split"]["test_fraction"],
        seed=derive_seed(ctx.seed, "split"),
        rescale=predefined_rescale(ctx.settings["files"]),
        provenance=ctx.provenance(),
    )
