"""The default config with its test events in 1 and in 4 partitions: the same table to the
byte (docs/scaling.md). About 6 minutes on 2 cores, so `make test-partitions` (run by .ci/run)
runs it, not `make test`."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from test_workflow import make_workdir, snakemake

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("SYSTPIPE_TEST_DEFAULT_PARTITIONS") != "1",
        reason="the default config twice (about 6 minutes): make test-partitions",
    ),
]
#: the table and what it rests on (scans, fits, Neyman intervals); no toys, plots or report
TARGETS = ["results/tables/uncertainties.parquet"]


def _run(tmp_path, partitions: int):
    workdir = make_workdir(tmp_path / f"parts_{partitions}")
    (workdir / "parts.yaml").write_text(f"input:\n  partitions: {partitions}\n")
    snakemake(workdir, "--configfile", "config/config.yaml", "parts.yaml", "--cores", "2",
              *TARGETS)  # fmt: skip
    return workdir / "results"


def test_default_config_gives_the_same_table_in_four_partitions(tmp_path):
    one, four = _run(tmp_path, 1), _run(tmp_path, 4)
    assert len(list((four / "data" / "test").glob("*.parquet"))) == 4
    for ext in ("csv", "md", "tex"):
        name = f"tables/uncertainties.{ext}"
        assert (four / name).read_bytes() == (one / name).read_bytes(), name
    for path in sorted((one / "hists").glob("*.parquet")):
        other = pd.read_parquet(four / "hists" / path.name)
        pd.testing.assert_frame_equal(pd.read_parquet(path), other, check_exact=True)
    # the training subsample does not depend on the partitions: the same models
    for record in sorted((one / "models").glob("*.json")):
        a = json.loads(record.read_text())
        b = json.loads((four / "models" / record.name).read_text())
        assert a["n_train"] == b["n_train"] and a["auc"] == b["auc"], record.name
