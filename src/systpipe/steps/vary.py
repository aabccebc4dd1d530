"""Step of ``workflow/rules/variations.smk``: one systematic variation of the test events."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .. import io
from ..partitions import in_partition
from ..provenance import derive_seed
from ..systematics import VaryContext, parse_variation
from ..variations import Recompute
from ._registry import StepContext, step


@step(
    "vary",
    uses=("systematics", "features", "input", "files"),
    seeded=True,
    help="apply one systematic variation to one test partition (set: variation, part; in: test; out: events)",
)
def vary(
    ctx: StepContext, *, variation: str, test: str | Path, events: str | Path, part: str = "0"
) -> None:
    """Apply ``variation`` to the test events: weight-only kinds keep event_id and weight,
    feature-changing kinds carry the shifted features for re-scoring."""
    settings = ctx.settings
    nominal = io.read_table(test)
    id_range = io.read_provenance(test).get("id_range", [None, None])
    load_alt = None
    if settings["input"]["source"] == "files":
        from ..ingest import ingest as read_files

        def load_alt(paths: Sequence[str]) -> pd.DataFrame:
            from ..ingest import alternative_kwargs

            files = settings["files"]
            alt = read_files(**alternative_kwargs(files, settings["systematics"], paths, variation))
            # this partition's share of the alternative events: the same event_id range as its
            # test events (systpipe.partitions), so paired events stay in one partition
            mask = in_partition(alt["event_id"].to_numpy(), id_range)
            return alt[mask].reset_index(drop=True)

    target = parse_variation(variation, settings["systematics"])
    assert target.systematic is not None
    context = VaryContext(
        seed=derive_seed(ctx.seed, "smear"),
        features=tuple(settings["features"]),
        load_alternative=load_alt,
        recompute=Recompute.from_files(
            settings["files"] if settings["input"]["source"] == "files" else None
        ),
    )
    out = target.systematic.apply(nominal, target.direction, context)
    io.write_table(out, events, ctx.provenance(variation=variation))
