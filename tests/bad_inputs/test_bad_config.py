"""Bad configs: YAML that hides values or carries code, names that break file names, reversed
ranges and impossible sizes; each refused naming the file, line, key or systematic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from systpipe.cli import main
from systpipe.config import load_config, read_config_file, validate_config
from systpipe.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _refused_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return str(err.value)


# --------------------------------------------------------------------------------------------
# YAML: duplicate keys, tags, __use_yte__, syntax


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "seed: 1\nseed: 2\n",
            "bad.yaml:2:1: not valid YAML: duplicate key 'seed' (first given on line 1)",
        ),
        (
            "classifiers:\n  - name: hgb\n    params:\n      max_iter: 10\n      max_iter: 20\n",
            "bad.yaml:5:7: not valid YAML: duplicate key 'max_iter' (first given on line 4)",
        ),
        (
            "scan:\n  min_signal: 3\nfit: {}\nscan:\n  min_background: 4\n",
            "bad.yaml:4:1: not valid YAML: duplicate key 'scan'",
        ),
    ],
)
def test_duplicate_keys_are_refused_with_line(tmp_path, no_leftovers, text, expected):
    msg = _refused_file(tmp_path, text)
    assert msg.startswith(str(tmp_path / expected.split(":", 1)[0])) and expected in msg
    assert "silently keep the last value" in msg
    no_leftovers(tmp_path, {"bad.yaml"})


@pytest.mark.parametrize(
    ("text", "tag", "where"),
    [
        (
            "classifiers:\n  - name: hgb\n    params:\n      loss: !!python/name:os.system\n",
            "!!python/name:os.system",
            "4:13",
        ),
        (
            "seed: !!python/object/apply:os.system ['true']\n",
            "!!python/object/apply:os.system",
            "1:7",
        ),
        ("fit:\n  data: !!python/object:pathlib.Path {}\n", "!!python/object:pathlib.Path", "2:9"),
        ("seed: !custom 3\n", "!custom", "1:7"),
        ("features: !!set {a: null}\n", "!!set", "1:11"),
        ("seed: !!binary aGVsbG8=\n", "!!binary", "1:7"),
    ],
)
def test_non_data_yaml_tags_are_refused_with_line(tmp_path, no_leftovers, text, tag, where):
    msg = _refused_file(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'bad.yaml'}:{where}: YAML tag {tag!r} is not allowed")
    assert "plain data only" in msg
    no_leftovers(tmp_path, {"bad.yaml"})


def test_use_yte_is_refused_naming_snakemake_and_yte(tmp_path, no_leftovers):
    msg = _refused_file(tmp_path, "__use_yte__: true\nseed: ?1 + 1\n")
    assert msg.startswith(f"{tmp_path / 'bad.yaml'}: key '__use_yte__' is not allowed")
    assert "Snakemake would run the config through YTE templating" in msg
    assert "evaluates Python expressions" in msg
    no_leftovers(tmp_path, {"bad.yaml"})


def test_use_yte_in_an_overlay_is_refused(tmp_path):
    # Overlays (partial configs such as config/no-fit.yaml) go through the same reader.
    path = tmp_path / "overlay.yaml"
    path.write_text("fit:\n  enabled: false\n__use_yte__: false\n")
    with pytest.raises(ConfigError, match=r"overlay\.yaml: key '__use_yte__' is not allowed"):
        read_config_file(path)


def test_use_yte_in_a_config_mapping_is_refused():
    with pytest.raises(ConfigError, match=r"invalid config: key '__use_yte__' is not allowed"):
        validate_config({"__use_yte__": True})


def test_python_objects_in_a_config_mapping_are_refused():
    # What Snakemake's own (FullLoader) reading of !!python/name: hands the workflow.
    with pytest.raises(
        ConfigError,
        match=r"'classifiers\[0\]\.params\.loss' holds a builtins\.builtin_function_or_method object; a config holds "
        r"plain data only \(was it written with a !!python tag\?\)",
    ):
        validate_config({"classifiers": [{"name": "hgb", "params": {"loss": os.system}}]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seed: [1,\n", ":2:1: not valid YAML"),
        ("seed: 1\n\tfit: {}\n", ":2:1: not valid YAML"),
        ("- seed\n- 3\n", "expected a mapping of keys at the top level, got list"),
    ],
)
def test_broken_yaml_names_file_and_line(tmp_path, text, expected):
    msg = _refused_file(tmp_path, text)
    assert str(tmp_path / "bad.yaml") in msg and expected in msg


def test_missing_config_file(tmp_path, no_leftovers):
    with pytest.raises(ConfigError, match=r"cannot read config file .*absent\.yaml: No such file"):
        load_config(tmp_path / "absent.yaml")
    no_leftovers(tmp_path, set())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seed: 1\nseed: 2\n", "bad.yaml:2:1: not valid YAML: duplicate key 'seed'"),
        ("__use_yte__: true\n", "bad.yaml: key '__use_yte__' is not allowed"),
        ("seed: !!python/name:os.system\n", "bad.yaml:1:7: YAML tag '!!python/name:os.system'"),
        ('systematics:\n  - {name: "jes\\n", type: norm, delta: 0.1}\n', "'systematics[0].name'"),
    ],
)
def test_cli_validate_refuses(tmp_path, capsys, no_leftovers, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no filled-in config printed
    assert err.startswith("systpipe validate: error: ") and expected in err
    no_leftovers(tmp_path, {"bad.yaml"})


# --------------------------------------------------------------------------------------------
# Names that become file names, wildcards and columns


@pytest.mark.parametrize(
    ("config", "key", "value"),
    [
        ({"classifiers": [{"name": "hgb\n"}]}, "classifiers[0].name", "hgb\n"),
        ({"classifiers": [{"name": "a/b", "type": "hgb"}]}, "classifiers[0].name", "a/b"),
        (
            {"systematics": [{"name": "lumi\n", "type": "norm", "delta": 0.1}]},
            "systematics[0].name",
            "lumi\n",
        ),
        (
            {"systematics": [{"name": "jes/../x", "type": "norm", "delta": 0.1}]},
            "systematics[0].name",
            "jes/../x",
        ),
        (
            {"systematics": [{"name": "tau es", "type": "norm", "delta": 0.1}]},
            "systematics[0].name",
            "tau es",
        ),
    ],
)
def test_bad_classifier_and_systematic_names(config, key, value):
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    msg = str(err.value)
    assert f"'{key}' = {value!r}: expected a name of letters, digits and underscores" in msg
    assert "no newline, space or path separator" in msg


@pytest.mark.parametrize(
    ("config", "key", "why"),
    [
        (
            {"systematics": [{"name": "x", "type": "norm", "delta": 0.1, "processes": ["tt\n"]}]},
            "systematics[0].processes[0]",
            "contains ['\\n']",
        ),
        (
            {
                "input": {"source": "files"},
                "features": ["a"],
                "files": {
                    "samples": [{"name": "a/b", "paths": ["x.parquet"]}],
                    "columns": {"a": "a"},
                },
            },
            "files.samples[0].name",
            "contains ['/']",
        ),
        (
            {
                "input": {"source": "files"},
                "features": ["a"],
                "files": {
                    "samples": [
                        {"name": "s", "paths": ["x.parquet"], "process_map": {"1": "ww\r"}}
                    ],
                    "columns": {"a": "a"},
                },
            },
            "files.samples[0].process_map.1",
            "contains ['\\r']",
        ),
        (
            {
                "input": {"source": "files"},
                "features": ["a"],
                "files": {
                    "samples": [{"name": "s", "paths": ["x.parquet"], "process": " ttbar"}],
                    "columns": {"a": "a"},
                },
            },
            "files.samples[0].process",
            "has leading or trailing blanks",
        ),
    ],
)
def test_bad_process_names(config, key, why):
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    msg = str(err.value)
    assert f"'{key}' = " in msg and why in msg and "may not contain newlines" in msg


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("jes_up", "ends in '_up': variations are named '<name>_up' and '<name>_down'"),
        ("jes_down", "ends in '_down'"),
        ("tot", "'tot' is reserved"),
        ("lin_sig", "'lin_sig' is reserved"),
        ("mc_stat", "'mc_stat' is reserved"),
        ("mu", "'mu' is reserved"),
    ],
)
def test_systematic_names_that_clash_with_systpipe_names(name, expected):
    with pytest.raises(ConfigError) as err:
        validate_config({"systematics": [{"name": name, "type": "norm", "delta": 0.1}]})
    assert "'systematics[0].name'" in str(err.value) and expected in str(err.value)


def test_underscored_systematic_names_work():
    from systpipe.systematics import (
        columns,
        feature_variations,
        parse_systematics,
        parse_variation,
        split_variation_name,
        variation_names,
    )

    systs = [
        {"name": "tau_es", "type": "scale", "delta": 0.03, "columns": ["tau_pt"]},
        {"name": "tau", "type": "norm", "delta": 0.1},
        {"name": "x_sec_tt", "type": "norm", "delta": 0.05, "processes": ["ttbar"]},
    ]
    cfg = validate_config({"systematics": systs})
    parsed = parse_systematics(cfg["systematics"])
    assert [s.name for s in parsed] == ["tau_es", "tau", "x_sec_tt"]
    names = variation_names(parsed)
    assert names == [
        "nominal",
        "tau_es_up",
        "tau_es_down",
        "tau_up",
        "tau_down",
        "x_sec_tt_up",
        "x_sec_tt_down",
    ]
    assert feature_variations(parsed) == ["tau_es_up", "tau_es_down"]
    assert [split_variation_name(n) for n in names[1:3]] == [("tau_es", "up"), ("tau_es", "down")]
    v = parse_variation("tau_es_down", parsed)
    assert (v.systematic.name, v.direction) == ("tau_es", "down")
    assert parse_variation("tau_down", parsed).systematic.name == "tau"
    all_columns = [
        *(
            f(s)
            for s in parsed
            for f in (columns.dmu, columns.d_up, columns.d_down, columns.dmu_lin)
        ),
        *(f(n) for n in names for f in (columns.s, columns.b, columns.mu)),
    ]
    assert len(set(all_columns)) == len(all_columns)  # no two names give one column
    assert columns.dmu(parsed[0]) == "dmu_tau_es" and columns.s(v) == "S_tau_es_down"


# --------------------------------------------------------------------------------------------
# Reversed ranges and impossible sizes


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"fit": {"poi_bounds": [10.0, -5.0]}},
            "'fit.poi_bounds' = [10.0, -5.0]: expected [lower, upper] with lower < upper",
        ),
        ({"fit": {"poi_bounds": [2.0, 2.0]}}, "'fit.poi_bounds' = [2.0, 2.0]"),
        (
            {"fit": {"poi_bounds": [-5.0, float("inf")]}},
            "'fit.poi_bounds' = [-5.0, inf]: expected finite bounds",
        ),
        (
            {"fit": {"optimise": {"thresholds": {"start": 0.9, "stop": 0.3}}}},
            "'fit.optimise.thresholds.start' must be below 'fit.optimise.thresholds.stop' (got start 0.9, stop 0.3)",
        ),
        (
            {"scan": {"thresholds": {"start": 0.6, "stop": 0.6}}},
            "'scan.thresholds.start' must be below 'scan.thresholds.stop' (got start 0.6, stop 0.6)",
        ),
    ],
)
def test_reversed_ranges_name_the_right_key(config, expected):
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("syst", "expected"),
    [
        (
            {"name": "lumi", "type": "norm", "delta": 1.0},
            "for the norm systematic 'lumi': expected a value below 1",
        ),
        (
            {"name": "jes", "type": "scale", "delta": 1.0, "columns": ["jet1_pt"]},
            "for the scale systematic 'jes': expected a value below 1",
        ),
    ],
)
def test_delta_of_one_is_refused(syst, expected):
    with pytest.raises(ConfigError) as err:
        validate_config({"systematics": [syst]})
    msg = str(err.value)
    assert "'systematics[0].delta' = 1.0" in msg and expected in msg and "1 - delta" in msg


def test_smear_delta_of_one_is_still_allowed():
    cfg = validate_config(
        {"systematics": [{"name": "res", "type": "smear", "delta": 1.0, "columns": ["met"]}]}
    )
    assert cfg["systematics"][0]["delta"] == 1.0


# --------------------------------------------------------------------------------------------
# The workflow's own config check


@pytest.mark.workflow
def test_workflow_refuses_a_yte_overlay(tmp_path):
    # Snakemake has already run the templates when the workflow sees the config (and dropped
    # the key), so the workflow re-reads the files itself and stops before building the DAG.
    (tmp_path / "config").mkdir()
    for name in ("config.yaml", "smoke.yaml"):
        (tmp_path / "config" / name).write_text((ROOT / "config" / name).read_text())
    (tmp_path / "overlay.yaml").write_text("__use_yte__: true\nseed: ?6 * 7\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
            "-n",
            "--configfile",
            "config/smoke.yaml",
            "overlay.yaml",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "overlay.yaml: key '__use_yte__' is not allowed" in text
    assert "Snakemake would run the config through YTE templating" in text
    assert not (tmp_path / "results").exists()
