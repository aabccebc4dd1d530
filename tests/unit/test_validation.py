"""Tests of systpipe.stat.validation: every model check fires on a workspace built to trigger it
and stays silent on one built not to."""

from __future__ import annotations

import numpy as np
import pytest

from systpipe.stat.validation import CHECKS, check_workspace
from systpipe.stat.workspace import build_workspace
from systpipe.templates import Templates

SIG = [5.0, 10.0, 20.0]
BKG = [100.0, 50.0, 20.0]


def _spec(modifiers=(), *, sig=SIG, bkg=BKG, bkg_staterror=None) -> dict:
    bkg_mods = list(modifiers)
    if bkg_staterror is not None:
        bkg_mods.append({"name": "staterror_SR", "type": "staterror", "data": list(bkg_staterror)})
    return {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {
                        "name": "signal",
                        "data": list(sig),
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {"name": "bkg", "data": list(bkg), "modifiers": bkg_mods},
                ],
            }
        ],
        "observations": [{"name": "SR", "data": [a + b for a, b in zip(sig, bkg, strict=True)]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }


def _histosys(hi, lo, name="k") -> dict:
    return {"name": name, "type": "histosys", "data": {"hi_data": list(hi), "lo_data": list(lo)}}


def _normsys(hi, lo, name="k") -> dict:
    return {"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}}


def _checks(spec, **kwargs) -> list[tuple]:
    return [
        (f["check"], f["severity"], f["sample"], f["modifier"], f["bin"])
        for f in check_workspace(spec, **kwargs)
    ]


GOOD_SHAPE = _histosys([105.0, 51.0, 19.0], [95.0, 49.0, 21.0])


def test_a_sound_workspace_has_no_findings():
    assert (
        _checks(_spec([GOOD_SHAPE, _normsys(1.05, 0.95, "n")], bkg_staterror=[5.0, 4.0, 3.0])) == []
    )


def test_same_sign():
    assert _checks(_spec([_normsys(1.05, 1.02)])) == [("same_sign", "warning", "bkg", "k", None)]
    up_up = _histosys([105.0, 51.0, 21.0], [102.0, 50.0, 20.5])
    assert ("same_sign", "warning", "bkg", "k", None) in _checks(_spec([up_up]))
    assert _checks(_spec([_normsys(1.05, 0.97)])) == []


def test_identical_up_and_down():
    same = _histosys([105.0, 51.0, 19.0], [105.0, 51.0, 19.0])
    got = _checks(_spec([same]))
    assert ("identical_up_down", "warning", "bkg", "k", None) in got
    assert ("identical_up_down", "warning", "bkg", "k", None) in _checks(
        _spec([_normsys(0.9, 0.9)])
    )
    assert not any(c[0] == "identical_up_down" for c in _checks(_spec([GOOD_SHAPE])))


def test_empty_variation():
    empty = _histosys([0.0, 0.0, 0.0], [95.0, 49.0, 21.0])
    got = _checks(_spec([empty]))
    assert ("empty_variation", "error", "bkg", "k", None) in got
    assert ("empty_variation", "error", "bkg", "k", None) in _checks(_spec([_normsys(1.1, 0.0)]))
    # an empty variation of an empty nominal is no finding
    spec = _spec([_histosys([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])], bkg=[0.0, 0.0, 0.0])
    assert not any(c[0] == "empty_variation" for c in _checks(spec))


def test_large_norm():
    assert _checks(_spec([_normsys(1.12, 0.9)])) == [("large_norm", "warning", "bkg", "k", None)]
    assert _checks(_spec([_normsys(1.12, 0.9)]), norm_large=0.15) == []
    big = _histosys([115.0, 57.5, 23.0], [95.0, 49.0, 21.0])  # +15 % up, with a shape
    assert [c[0] for c in _checks(_spec([big]))] == ["large_norm"]
    assert _checks(_spec([_normsys(1.099, 0.901)])) == []


def test_no_shape_effect():
    flat = _histosys([110.0, 55.0, 22.0], [90.0, 45.0, 18.0])  # exactly +-10 %: norm only
    assert ("no_shape", "info", "bkg", "k", None) in _checks(_spec([flat]))
    assert ("no_shape", "info", "bkg", "k", None) not in _checks(_spec([GOOD_SHAPE]))
    tiny = _histosys([110.0, 55.0, 22.0 * (1 + 1e-4)], [90.0, 45.0, 18.0])
    assert ("no_shape", "info", "bkg", "k", None) not in _checks(_spec([tiny]))


def test_empty_background_bin():
    spec = _spec(bkg=[100.0, 50.0, 0.0])
    assert _checks(spec) == [("empty_background_bin", "error", None, None, 2)]
    assert _checks(_spec(bkg=[100.0, 50.0, 0.0], sig=[5.0, 10.0, 0.0])) == []


def test_mc_stat_error_from_staterror_and_from_templates():
    spec = _spec(bkg_staterror=[5.0, 60.0, 3.0])
    assert _checks(spec) == [("mc_stat_error", "warning", "bkg", None, 1)]
    assert _checks(spec, rel_mc_error=1.5) == []
    t = Templates(
        bin_edges=np.array([0.5, 0.7, 0.9, 1.0]),
        samples=["signal", "bkg"],
        is_signal=[True, False],
        nominal=np.array([SIG, BKG]),
        sumw2=np.array([[1.0, 1.0, 1.0], [25.0, 16.0, 30.0**2]]),  # bkg bin 2: 30 / 20
    )
    assert _checks(spec, templates=t) == [("mc_stat_error", "warning", "bkg", None, 2)]


def test_one_bin_shape():
    spec = _spec([_histosys([108.0], [92.0])], sig=[5.0], bkg=[100.0])
    assert _checks(spec) == [("one_bin_shape", "info", "bkg", "k", None)]
    assert _checks(_spec([_normsys(1.08, 0.92)], sig=[5.0], bkg=[100.0])) == []


def test_every_check_is_covered_and_findings_are_complete():
    spec = _spec(
        [_normsys(1.3, 1.2, "a"), _histosys([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], "b")],
        bkg=[100.0, 50.0, 0.0],
        bkg_staterror=[200.0, 1.0, 0.0],
    )
    findings = check_workspace(spec)
    assert {f["check"] for f in findings} <= set(CHECKS)
    assert all(
        set(f) == {"check", "severity", "channel", "sample", "modifier", "bin", "message"}
        and f["channel"] == "SR"
        and f["message"]
        for f in findings
    )


def test_a_norm_only_scale_systematic_enters_as_a_normsys_and_is_not_flagged():
    """What the post-processing leaves after pruning a shape (a uniform rescaling) enters the
    workspace as a normsys (TRExFitter's norm-only systematic), so no no_shape finding."""
    nominal = np.array([[5.0, 10.0, 20.0], [100.0, 50.0, 20.0]])
    t = Templates(
        bin_edges=np.array([0.5, 0.7, 0.9, 1.0]),
        samples=["signal", "bkg"],
        is_signal=[True, False],
        nominal=nominal,
        sumw2=nominal / 10,
        variations={"det_up": nominal * [[1.0], [1.02]], "det_down": nominal * [[1.0], [0.98]]},
    )
    spec = build_workspace(t, [{"name": "det", "type": "scale", "delta": 0.02, "columns": ["x"]}])
    bkg = spec["channels"][0]["samples"][1]
    assert [m["type"] for m in bkg["modifiers"]] == ["normsys", "staterror"]
    assert bkg["modifiers"][0]["data"] == pytest.approx({"hi": 1.02, "lo": 0.98}, rel=1e-12)
    assert _checks(spec, templates=t) == []


def test_split_norm_shape_enters_a_normsys_and_a_histosys_on_one_parameter():
    import pyhf

    from systpipe.stat.likelihood import HistFactoryModel

    nominal = np.array([[5.0, 10.0, 20.0], [100.0, 50.0, 20.0]])
    up = nominal * [[1.0, 1.0, 1.0], [1.06, 1.02, 0.99]]
    dn = nominal * [[1.0, 1.0, 1.0], [0.95, 0.97, 1.0]]
    t = Templates(
        np.array([0.5, 0.7, 0.9, 1.0]),
        ["signal", "bkg"],
        [True, False],
        nominal,
        nominal / 10,
        {"det_up": up, "det_down": dn},
    )
    systs = [{"name": "det", "type": "scale", "delta": 0.02, "columns": ["x"]}]
    spec = build_workspace(t, systs, split_norm_shape=True)
    mods = spec["channels"][0]["samples"][1]["modifiers"]
    assert [(m["name"], m["type"]) for m in mods] == [
        ("det", "normsys"),
        ("det", "histosys"),
        ("staterror_SR", "staterror"),
    ]
    assert mods[0]["data"]["hi"] == pytest.approx(up[1].sum() / nominal[1].sum(), rel=1e-12)
    # at alpha = +/-1 the model reproduces the templates, in pyhf and in the fast model
    pmodel = pyhf.Model(spec, poi_name="mu", validate=False)  # build_workspace validated it
    fast = HistFactoryModel(spec)
    for alpha, want in ((1.0, up), (-1.0, dn)):
        pars = np.array(pmodel.config.suggested_init())
        pars[pmodel.config.par_slice("det")] = alpha
        np.testing.assert_allclose(
            np.asarray(pmodel.expected_actualdata(pars)), want.sum(axis=0), rtol=1e-10
        )
        p = fast.nominal_pars.copy()
        p[fast.names.index("det")] = alpha
        np.testing.assert_allclose(fast.expected(p), want.sum(axis=0), rtol=1e-10)
