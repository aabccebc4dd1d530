"""Bad ingest inputs through the command line: exit code 2, a message naming the key, column,
file or row and what was expected, and no output or temporary file left behind."""

from __future__ import annotations

import numpy as np
import pytest
import uproot
import yaml

from systpipe.cli import main

N = 60


def write_inputs(d):
    rng = np.random.default_rng(2)
    data = {
        "pid": np.arange(N, dtype=np.int32) % 2,
        "pt": rng.uniform(20, 100, N),
        "w": rng.uniform(0.5, 1.5, N),
    }
    with uproot.recreate(d / "nt.root") as f:
        f.mktree("tree_event;1", {k: v.dtype for k, v in data.items()}).extend(data)
    rows = ["pt,w,y"] + [f"{40 + i},1,{i % 2}" for i in range(N)]
    (d / "ok.csv").write_text("\n".join(rows) + "\n")


def config(d, **files):
    base = {
        "samples": [
            {
                "name": "s",
                "paths": [str(d / "nt.root")],
                "tree": "tree_event;1",
                "process": "S",
                "label": "signal",
                "selection": "pid == 1",
            },
            {
                "name": "b",
                "paths": [str(d / "nt.root")],
                "tree": "tree_event",
                "process": "B",
                "label": "background",
                "selection": "pid == 0",
            },
        ],
        "columns": {"lep1_pt": "pt"},
        "weight": {"column": "w"},
    }
    base.update(files)
    return {"input": {"source": "files"}, "features": ["lep1_pt"], "files": base}


def csv_config(d, text, **files):
    (d / "bad.csv").write_text(text)
    return config(
        d,
        samples=[{"name": "c", "paths": [str(d / "bad.csv")]}],
        label={"column": "y", "signal": [1], "background": [0]},
        **files,
    )


def _sample(d, **extra):
    cfg = config(d)
    cfg["files"]["samples"][0].update(extra)
    return cfg


CASES = {
    "tree typo": (
        lambda d: _sample(d, tree="tree_evnt"),
        ["tree 'tree_evnt' ('files.samples[0].tree') not found", "['tree_event;1']"],
    ),
    "selection attribute": (
        lambda d: _sample(d, selection="pid.__class__ == 1"),
        ["'files.samples[0].selection' = 'pid.__class__ == 1'", "(Attribute) is not allowed"],
    ),
    "selection call": (
        lambda d: _sample(d, selection="open('x') == 1"),
        ["the call \"open('x')\" (Call) is not allowed"],
    ),
    "selection subscript": (
        lambda d: _sample(d, selection="pid[0] == 1"),
        ["'pid[0]' (Subscript) is not allowed"],
    ),
    "selection unknown column": (
        lambda d: _sample(d, selection="proc == 1"),
        ["'proc' (from 'files.samples[0].selection')", "columns present in this file"],
    ),
    "selection not a condition": (
        lambda d: _sample(d, selection="pid * 2"),
        ["'files.samples[0].selection' = 'pid * 2' is not a condition"],
    ),
    "xsec without lumi": (
        lambda d: _sample(d, cross_section_pb=1.0, sum_weights="auto"),
        ["'files.samples[0].cross_section_pb' is set but 'files.luminosity_fb' is not"],
    ),
    "xsec without sum": (
        lambda d: {
            **_sample(d, cross_section_pb=1.0),
            "files": {**_sample(d, cross_section_pb=1.0)["files"], "luminosity_fb": 1.0},
        },
        ["needs 'files.samples[0].sum_weights'"],
    ),
    "derived unknown column": (
        lambda d: config(d, derived_columns={"r": "lep1_pt / nope"}),
        ["'files.derived_columns.r' = 'lep1_pt / nope' uses column(s) ['nope']"],
    ),
    "derived lambda": (
        lambda d: config(d, derived_columns={"r": "(lambda: 1)()"}),
        ["'files.derived_columns.r' = '(lambda: 1)()': the call"],
    ),
    "derive inputs missing": (
        lambda d: config(d, derive=["m_ll"]),
        ["'files.derive' ['m_ll'] needs column(s)", "lep1_eta"],
    ),
    "csv text in numeric": (
        lambda d: csv_config(d, "pt,w,y\n40,1,1\nn/a,1,0\n"),
        [
            "bad.csv: column 'pt' ('files.columns.lep1_pt') is not numeric",
            "the first 'n/a' at row 1",
        ],
    ),
    "csv sentinel weight": (
        lambda d: csv_config(d, "pt,w,y\n40,1,1\n41,-7,0\n", missing_values=[-7]),
        ["weight column 'w' holds the missing-value sentinel -7", "row 1"],
    ),
    "split value unknown": (
        lambda d: config(d, split={"column": "pid", "train": [0], "test": [2]}),
        ["split column 'pid' has value(s) ['1'] outside the mapping 'files.split'"],
    ),
    "split and test files": (
        lambda d: config(
            d,
            split={"column": "pid", "train": [0], "test": [1]},
            test_samples=[{"name": "t", "paths": ["x"], "label": "signal"}],
        ),
        ["'files.split.column' and test files"],
    ),
    "units unmapped": (
        lambda d: config(d, units={"met": "MeV"}),
        ["'files.units' lists 'met', which is not a column mapped in 'files.columns'"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_ingest_input_fails_cleanly(tmp_path, capsys, case):
    make, fragments = CASES[case]
    data = tmp_path / "data"
    data.mkdir()
    write_inputs(data)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(make(data)))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = sorted(p.name for p in data.iterdir())
    code = main(["ingest", "-c", str(cfg_path), "--out", f"events={out_dir / 'events.parquet'}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "systpipe ingest: error: " in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert list(out_dir.iterdir()) == []
    assert sorted(p.name for p in data.iterdir()) == before
    # validate --data reports the same problem, before any job.
    assert main(["validate", str(cfg_path), "--data"]) == 2
    assert fragments[0] in capsys.readouterr().err
    assert list(out_dir.iterdir()) == []
