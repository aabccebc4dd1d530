"""Tests of systpipe.provenance: seeds, code fingerprints from import closures, the run record."""

from __future__ import annotations

import pytest

from systpipe import provenance
from systpipe.provenance import code_fingerprint, derive_seed, import_closure
from systpipe.steps import STEPS


def test_closure_follows_imports_at_every_level():
    closure = import_closure("systpipe.steps.plots")
    # the studies step draws with the plot style: changing plots.style.DPI must rerun it
    assert STEPS["studies"].module == "systpipe.steps.plots"
    assert {"systpipe.studies", "systpipe.plots.style", "systpipe.io"} <= set(closure)
    # function-level imports count too (steps/fit.py imports stat.fit inside its functions)
    assert {"systpipe.stat.fit", "systpipe.stat.likelihood", "systpipe.plots.fit"} <= set(
        import_closure("systpipe.steps.fit")
    )


def test_closure_does_not_follow_parent_packages():
    # steps/scan.py imports steps._registry (so its package); it must not pull in every other step
    closure = import_closure("systpipe.steps.scan")
    assert "systpipe.steps._registry" in closure
    assert "systpipe.steps.fit" not in closure and "systpipe.stat.fit" not in closure


def test_fingerprint_changes_with_any_module_of_the_closure(monkeypatch, tmp_path):
    before = {name: step.fingerprint() for name, step in STEPS.items()}
    real = provenance._module_path
    style = real("systpipe.plots.style")
    edited = tmp_path / "style.py"
    edited.write_text(style.read_text().replace("DPI = ", "DPI = 1 + "))

    code_fingerprint.cache_clear()
    monkeypatch.setattr(
        provenance, "_module_path", lambda m: edited if m == "systpipe.plots.style" else real(m)
    )
    try:
        after = {name: step.fingerprint() for name, step in STEPS.items()}
    finally:
        code_fingerprint.cache_clear()
    changed = {n for n in STEPS if after[n] != before[n]}
    assert {"studies", "plots_summary", "plots_classifier", "fit"} <= changed
    assert "scan" not in changed and "simulate" not in changed


def test_fingerprints_are_stable_hex():
    fp = STEPS["scan"].fingerprint()
    assert fp == STEPS["scan"].fingerprint() and len(fp) == 16 and int(fp, 16) >= 0


def test_derived_seeds_are_stable_32_bit():
    seed = derive_seed(42, "toys", "xgb")
    assert seed == derive_seed(42, "toys", "xgb") and 0 <= seed < 2**32
    assert len({derive_seed(42, "toys", c) for c in ("hgb", "lgbm", "xgb", "rf")}) == 4


@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_step_module_resolves(step):
    closure = import_closure(STEPS[step].module)
    assert STEPS[step].module in closure and all(provenance._module_path(m) for m in closure)
