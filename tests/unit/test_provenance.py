"""Tests of systpipe.provenance: seeds, code fingerprints and the run record."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from systpipe import provenance
from systpipe.provenance import STEP_MODULES, _source, code_fingerprint, derive_seed
from systpipe.runner import STEPS

RULES = Path(__file__).resolve().parents[2] / "workflow" / "rules"


@pytest.mark.parametrize("step", sorted(STEP_MODULES))
def test_every_fingerprinted_entry_resolves(step):
    for entry in STEP_MODULES[step]:
        assert _source(entry) != b"<missing>", f"{step}: {entry}"


def test_every_rule_step_has_a_fingerprint_and_a_runner():
    used = set()
    for smk in RULES.glob("*.smk"):
        used |= set(re.findall(r'code_fingerprint\("(\w+)"\)', smk.read_text()))
    assert used, "no rule passes a code fingerprint"
    assert used <= set(STEP_MODULES)
    assert set(STEP_MODULES) <= set(STEPS)


def test_fingerprint_follows_the_source(monkeypatch):
    before = code_fingerprint("scan")
    real = provenance._source

    def edited(entry: str) -> bytes:
        return real(entry) + (b"# edit" if entry == "scan" else b"")

    code_fingerprint.cache_clear()
    monkeypatch.setattr(provenance, "_source", edited)
    try:
        assert code_fingerprint("scan") != before
        assert code_fingerprint("simulate") == code_fingerprint.__wrapped__("simulate")
    finally:
        code_fingerprint.cache_clear()


def test_function_entries_hash_only_that_function():
    whole = _source("pipeline")
    part = _source("pipeline:scan")
    assert part.startswith(b"def scan(") and part in whole and len(part) < len(whole)


def test_derived_seeds_are_stable_32_bit():
    seed = derive_seed(42, "toys", "xgb")
    assert seed == derive_seed(42, "toys", "xgb") and 0 <= seed < 2**32
    assert len({derive_seed(42, "toys", c) for c in ("hgb", "lgbm", "xgb", "rf")}) == 4


def test_every_step_is_a_cli_subcommand_and_its_function_exists():
    import systpipe.pipeline_fit as pipeline_fit
    from systpipe.cli import STEP_HELP

    assert set(STEP_HELP) == set(STEPS)
    for name in ("workspace", "fit", "chi2", "toys", "toys_summary", "method_rows"):
        assert callable(getattr(pipeline_fit, name)), name
    rule_steps = set()
    for smk in RULES.glob("*.smk"):
        rule_steps |= set(re.findall(r'step="(\w+)"', smk.read_text()))
    assert rule_steps <= set(STEPS), rule_steps - set(STEPS)
