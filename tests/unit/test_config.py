"""Config validation: schema, defaults, semantic checks, and messages that name the key."""

from pathlib import Path

import pytest
import yaml

from systpipe.config import config_hash, load_config, load_schema, validate_config
from systpipe.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(ROOT / "config" / name)
    assert cfg["schema_version"] == "1.0.0"
    aware = {"lgbm_aug"} if name == "config.yaml" else set()
    assert {c["name"] for c in cfg["classifiers"]} == {"hgb", "lgbm", "xgb", "rf"} | aware
    assert [s["name"] for s in cfg["systematics"]] == ["lumi", "sig", "bkg", "det"]


def test_defaults_filled_in_nested():
    cfg = validate_config({"seed": 1, "simulate": {"detector": {"jet_pt_resolution": 0.2}}})
    assert cfg["simulate"]["detector"] == {
        "lepton_pt_resolution": 0.015,
        "jet_pt_resolution": 0.2,
        "soft_met_resolution_gev": 8.0,
    }
    assert cfg["scan"]["thresholds"]["step"] == 0.001
    assert cfg["split"]["test_fraction"] == 0.5


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"seed": "x"}, "'seed' = 'x': expected type integer"),
        ({"split": {"test_fraction": 1.5}}, "'split.test_fraction' = 1.5: expected a value < 1"),
        ({"split": {"test_fraction": 0}}, "'split.test_fraction' = 0: expected a value > 0"),
        ({"splt": {}}, "unknown key(s) ['splt'] in top level"),
        ({"scan": {"min_sigal": 3}}, "unknown key(s) ['min_sigal'] in 'scan'"),
        (
            {"classifiers": [{"name": "a", "typ": "x"}]},
            "unknown key(s) ['typ'] in 'classifiers[0]'",
        ),
        ({"classifiers": [{"name": "a", "type": "boost"}]}, "'classifiers[0].type' = 'boost'"),
        (
            {"classifiers": [{"name": "a"}, {"name": "a"}]},
            "'classifiers[].name' has the name 'a' twice",
        ),
        (
            {"systematics": [{"name": "det", "type": "scale", "delta": 0.1}]},
            "'systematics[0].columns' is required",
        ),
        (
            {"systematics": [{"name": "x", "type": "norm", "delta": 0.1, "columns": ["a"]}]},
            "'systematics[0].columns' does not apply",
        ),
        (
            {"systematics": [{"name": "x", "type": "norm", "delta": -0.1}]},
            "'systematics[0].delta' = -0.1",
        ),
        ({"systematics": [{"name": "nominal", "type": "norm", "delta": 0.1}]}, "reserved"),
        ({"input": {"source": "files"}}, "'files.samples' is required"),
        (
            {"scan": {"thresholds": {"start": 0.8, "stop": 0.2}}},
            "'scan.thresholds.start' must be below",
        ),
    ],
)
def test_bad_config_names_key(bad, fragment):
    with pytest.raises(ConfigError) as info:
        validate_config(bad)
    assert fragment in str(info.value)


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:2:1: not valid YAML"):
        load_config(broken)
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("seed: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(
        ConfigError, match=r"unsafe.yaml:1:7: YAML tag '!!python/object/apply:os.system'"
    ):
        load_config(unsafe)


def test_workflow_schema_is_the_package_schema():
    workflow_schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    assert yaml.safe_load(workflow_schema.read_text()) == load_schema()


def test_every_schema_property_is_documented():
    readme = (ROOT / "config" / "README.md").read_text()

    def walk(node, prefix=""):
        for key, sub in node.get("properties", {}).items():
            yield prefix + key
            yield from walk(sub, prefix + key + ".")
            if isinstance(sub.get("items"), dict):
                yield from walk(sub["items"], prefix + key + "[].")

    missing = [key for key in walk(load_schema()) if f"`{key}`" not in readme]
    assert missing == []


def test_config_hash_changes_with_content():
    a = validate_config({"seed": 1})
    b = validate_config({"seed": 2})
    assert config_hash(a) == config_hash(validate_config({"seed": 1}))
    assert config_hash(a) != config_hash(b)
