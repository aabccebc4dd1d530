"""Step of ``workflow/rules/variations.smk``: one systematic variation of the test events."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .. import io
from ..provenance import derive_seed
from ..systematics import VaryContext, parse_variation
from ..variations import Recompute
from ._registry import StepContext, step


@step(
    "vary",
    uses=("systematics", "features", "input", "files"),
    seeded=True,
    help="apply one systematic variation (set: variation; in: test; out: variation)",
)
def vary(ctx: StepContext, *, variation: str, test: str | Path, events: str | Path) -> None:
    """Apply ``variation`` to the test events: weight-only kinds keep event_id and weight,
    feature-changing kinds carry the shifted features for re-scoring."""
    settings = ctx.settings
    nominal = io.read_table(test)
    load_alt = None
    if settings["input"]["source"] == "files":
        from ..ingest import ingest as read_files

        def load_alt(paths: Sequence[str]) -> pd.DataFrame:
            from ..ingest import alternative_kwargs

            files = settings["files"]
            return read_files(
                **alternative_kwargs(files, settings["systematics"], paths, variation)
            )

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
