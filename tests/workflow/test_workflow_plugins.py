"""A third-party plugin, found through its ``systpipe.plugins`` entry point, extends the workflow:
its systematic kind, classifier library and statistical method flow through the smoke dry run."""

from __future__ import annotations

import os

import pytest
from test_workflow import make_workdir, snakemake

from conftest import PLUGIN_DIR

pytestmark = pytest.mark.workflow

OVERLAY = """
classifiers:
  - {name: xgb, type: xgb, params: {n_estimators: 5}}
  - {name: nb, type: gnb}
systematics:
  - {name: lumi, type: norm, delta: 0.01}
  - {name: tt, type: xsec, delta: 0.1, processes: [ttbar]}
  - {name: det, type: scale, delta: 0.02, columns: [lep1_pt, lep2_pt]}
toys:
  n_toys: 10
  chunk_size: 10
  modes: [frequentist]
  methods: [shift, profile, stat_only]
  classifiers: [nb]
"""


def test_plugin_extensions_flow_through_the_dry_run(tmp_path):
    workdir = make_workdir(tmp_path)
    (workdir / "plugin.yaml").write_text(OVERLAY)
    args = ("-n", "--configfile", "config/smoke.yaml", "plugin.yaml")
    env = {"PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")])}
    out = snakemake(workdir, *args, env=env).stdout
    assert "results/models/nb.gnbjson" in out  # the plugin library's own model format
    assert "results/variations/tt_up/0.parquet" in out  # the plugin kind's variations
    assert "results/hists/nb/0.parquet" in out  # scored and histogrammed per partition
    assert "results/fit/nb/toys/frequentist_0.parquet" in out
    # without the plugin installed the same config is refused before any job, naming the key
    proc = snakemake(workdir, *args, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "invalid config" in text and any(
        f"'{name}'" in text for name in ("xsec", "gnb", "stat_only")
    )
