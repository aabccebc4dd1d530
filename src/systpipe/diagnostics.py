"""Diagnostics: every warning a run has about its own numbers, with a severity and what it concerns.

Each check reads an output the workflow already wrote (the final table, a fit record, a workspace,
a coverage table) and returns :class:`Diagnostic` records; the ``diagnostics`` step gathers them
into ``results/diagnostics.json``, most severe first, and the run prints a summary at its end.
Nothing here changes a number: it says when a number could be an artefact (docs/statistics.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

SEVERITIES = ("info", "warning", "error")
#: Coverage of a 68.27 % interval.
CL68 = 0.6827
#: Toy failure rates above these are a warning / an error.
TOY_FAILURE_WARNING = 0.01
TOY_FAILURE_ERROR = 0.05
#: Methods whose dmu_tot differ by more than this factor at one working point are reported.
METHOD_RATIO = 1.5


@dataclass(frozen=True)
class Diagnostic:
    """One finding: how serious, which check, what it concerns and what it says."""

    severity: str
    check: str
    message: str
    step: str = ""
    classifier: str = ""
    working_point: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sort_key(d: Diagnostic) -> tuple[int, str, str, str, str]:
    """Most severe first, then by check, classifier and working point (a stable order)."""
    return (-SEVERITIES.index(d.severity), d.check, d.classifier, d.working_point, d.message)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


# --------------------------------------------------------------------------- final table


def from_table(table: pd.DataFrame) -> list[Diagnostic]:
    """Guard-limited working points and methods that disagree at one working point.

    Example:
        >>> t = pd.DataFrame({"classifier": ["a", "a"], "working_point": ["max_ams"] * 2,
        ...                   "method": ["shift", "chi2"], "dmu_tot": [0.3, 0.1]})
        >>> [d.check for d in from_table(t)]
        ['methods_disagree']
    """
    out: list[Diagnostic] = []
    if "guard" in table.columns:
        for row in table[
            (table["method"] == "shift") & (table["guard"].astype(str) != "none")
        ].itertuples():
            out.append(
                Diagnostic(
                    "warning", "guard_limited_working_point",
                    f"{row.classifier} {row.working_point}: the unguarded optimum was excluded by {row.guard}; "
                    "the working point is the best one that passes it",
                    step="table", classifier=str(row.classifier), working_point=str(row.working_point),
                    details={"guard": str(row.guard)},
                )
            )  # fmt: skip
    for (clf, wp), rows in table.groupby(["classifier", "working_point"], sort=True):
        values = {
            m: v
            for m, v in zip(rows["method"], rows["dmu_tot"], strict=True)
            if _finite(v) and v > 0
        }
        if len(values) < 2:
            continue
        hi_m, lo_m = max(values, key=values.__getitem__), min(values, key=values.__getitem__)
        ratio = values[hi_m] / values[lo_m]
        if ratio > METHOD_RATIO:
            out.append(
                Diagnostic(
                    "warning", "methods_disagree",
                    f"{clf} {wp}: dmu_tot of {hi_m} ({values[hi_m]:.3g}) is {ratio:.2f}x that of {lo_m} "
                    f"({values[lo_m]:.3g}); the methods treat MC statistics, shapes and control regions "
                    "differently (docs/statistics.md)",
                    step="table", classifier=str(clf), working_point=str(wp),
                    details={"ratio": ratio, "largest": hi_m, "smallest": lo_m, "dmu_tot": values},
                )
            )  # fmt: skip
    return out


# --------------------------------------------------------------------------- fit, workspace


def from_fit(record: Mapping[str, Any], classifier: str) -> list[Diagnostic]:
    """Fit failures, MINOS failures, bound-limited intervals and the fit's own diagnostics."""
    out: list[Diagnostic] = []
    # the fit's own diagnostics carry the reasons; the flags only cover older records
    own = {str(item.get("check")) for item in record.get("diagnostics") or []}
    if record.get("valid") is False and "fit_failed" not in own:
        out.append(
            Diagnostic(
                "error",
                "fit_failed",
                f"{classifier}: the main fit did not converge",
                "fit",
                classifier,
            )
        )
    if record.get("minos_valid") is False and "minos_failed" not in own:
        out.append(
            Diagnostic(
                "warning", "minos_failed",
                f"{classifier}: MINOS failed on mu; the interval comes from profile-likelihood root finding",
                "fit", classifier,
            )
        )  # fmt: skip
    bound = record.get("interval_at_bound")
    if bound and "interval_at_bound" not in own:
        out.append(
            Diagnostic(
                "error", "interval_at_bound",
                f"{classifier}: the mu interval reaches the POI bound ({bound}) even after widening; the "
                "per-systematic breakdown derived from it is not reported",
                "fit", classifier, details={"bound": bound},
            )
        )  # fmt: skip
    for item in record.get("diagnostics") or []:
        severity = item.get("severity", "warning")
        out.append(
            Diagnostic(
                severity if severity in SEVERITIES else "warning", str(item.get("check", "fit")),
                f"{classifier}: {item.get('message', '')}", "fit", classifier,
                details={k: v for k, v in item.items() if k not in ("severity", "check", "message")},
            )
        )  # fmt: skip
    for note in record.get("notes") or []:
        out.append(Diagnostic("info", "fit_note", f"{classifier}: {note}", "fit", classifier))
    return out


def from_workspace_findings(
    findings: Iterable[Mapping[str, Any]], classifier: str
) -> list[Diagnostic]:
    """The model check's findings (stat.validation) as diagnostics."""
    out = []
    for f in findings:
        severity = str(f.get("severity", "warning"))
        where = ", ".join(
            f"{k} {f[k]}" for k in ("sample", "modifier", "bin") if f.get(k) is not None
        )
        out.append(
            Diagnostic(
                severity if severity in SEVERITIES else "warning", f"model_check:{f.get('check', '')}",
                f"{classifier}: {f.get('message', '')}" + (f" ({where})" if where else ""),
                "workspace", classifier, details=dict(f),
            )
        )  # fmt: skip
    return out


def from_templates(record: Mapping[str, Any], classifier: str) -> list[Diagnostic]:
    """What the template post-processing pruned or smoothed (the workspace's record).

    Example:
        >>> rec = {"entries": [{"systematic": "det", "sample": "WW", "action": "processed",
        ...        "keep_norm": True, "keep_shape": False, "smoothed": False, "reason": "shape is MC noise"}]}
        >>> [d.message for d in from_templates(rec, "xgb")]
        ['xgb: det on WW: shape part pruned (shape is MC noise)']
    """
    out = []
    for e in record.get("entries", []):
        if e.get("action") != "processed":
            continue
        dropped = [part for part in ("norm", "shape") if e.get(f"keep_{part}") is False]
        if dropped:
            out.append(
                Diagnostic(
                    "info", "pruned_systematic",
                    f"{classifier}: {e['systematic']} on {e['sample']}: {' and '.join(dropped)} part pruned "
                    f"({e.get('reason', '')})",
                    "workspace", classifier, details={"systematic": e["systematic"], "sample": e["sample"]},
                )
            )  # fmt: skip
        if e.get("smoothed"):
            out.append(
                Diagnostic(
                    "info", "smoothed_systematic",
                    f"{classifier}: {e['systematic']} on {e['sample']}: templates smoothed ({e.get('smoothing')})",
                    "workspace", classifier,
                )
            )  # fmt: skip
    return out


# --------------------------------------------------------------------------- toys


def from_coverage(coverage: pd.DataFrame, classifier: str) -> list[Diagnostic]:
    """Toy failure rates and coverage of the 68.27 % intervals outside 2 binomial sigma.

    Example:
        >>> cov = pd.DataFrame({"mode": ["frequentist"], "method": ["profile"], "n_toys": [1000],
        ...                     "n_ok": [940], "n_failed": [60], "coverage": [0.60]})
        >>> sorted(d.check for d in from_coverage(cov, "xgb"))
        ['coverage_off', 'toy_failures']
    """
    out = []
    for row in coverage.itertuples():
        r: Any = row  # pandas' row tuples are untyped
        n_toys, n_failed = int(r.n_toys), int(r.n_failed)
        what = f"{classifier} {r.mode} {r.method}"
        rate = n_failed / n_toys if n_toys else 1.0
        if rate > TOY_FAILURE_WARNING:
            out.append(
                Diagnostic(
                    "error" if rate > TOY_FAILURE_ERROR else "warning", "toy_failures",
                    f"{what}: {n_failed} of {n_toys} toys failed ({100 * rate:.1f} %); the coverage counts "
                    "them as not covered",
                    "toys", classifier, details={"mode": r.mode, "method": r.method, "failure_rate": rate},
                )
            )  # fmt: skip
        if n_toys and _finite(r.coverage):
            sigma = math.sqrt(CL68 * (1.0 - CL68) / n_toys)
            pull = (float(r.coverage) - CL68) / sigma
            if abs(pull) > 2.0:
                under = pull < 0
                why = (
                    "the interval is too narrow"
                    if under
                    else "the interval is too wide for this toy design"
                )
                out.append(
                    Diagnostic(
                        "warning", "coverage_off",
                        f"{what}: coverage {float(r.coverage):.3f} is {abs(pull):.1f} binomial sigma "
                        f"{'below' if under else 'above'} 0.6827 ({why})",
                        "toys", classifier, details={"mode": r.mode, "method": r.method, "pull": pull},
                    )
                )  # fmt: skip
    return out


def from_hypotest(tests: pd.DataFrame, classifier: str) -> list[Diagnostic]:
    """Toy-based CLs or p0 more than 2 toy errors from the asymptotic value (the fit's limit or
    significance rests on formulae the toys contradict), and toys without a fit result.

    Example:
        >>> t = pd.DataFrame({"test": ["CLs at the asymptotic 95 % CL limit"], "n_toys": [2000],
        ...                   "n_failed": [0], "toys": [0.08], "toys_error": [0.01],
        ...                   "asymptotic": [0.05], "pull": [3.0]})
        >>> [d.check for d in from_hypotest(t, "xgb")]
        ['asymptotics_off']
    """
    out = []
    for row in tests.itertuples():
        r: Any = row
        if _finite(r.pull) and abs(float(r.pull)) > 2.0:
            out.append(
                Diagnostic(
                    "warning", "asymptotics_off",
                    f"{classifier} {r.test}: toys {float(r.toys):.4g} +/- {float(r.toys_error):.2g} "
                    f"against the asymptotic {float(r.asymptotic):.4g} ({float(r.pull):+.1f} sigma): "
                    "the fit's asymptotic limit or significance is off; quote the toys",
                    "hypotest", classifier, details={"test": r.test, "pull": float(r.pull)},
                )
            )  # fmt: skip
        if int(r.n_failed):
            out.append(
                Diagnostic(
                    "warning", "toy_failures",
                    f"{classifier} {r.test}: {int(r.n_failed)} of {int(r.n_toys)} toys without a fit result",
                    "hypotest", classifier, details={"test": r.test},
                )
            )  # fmt: skip
    return out


# --------------------------------------------------------------------------- the report


def summarise(diagnostics: Sequence[Diagnostic]) -> dict[str, Any]:
    """The JSON record: counts per severity and every diagnostic, most severe first.

    Example:
        >>> summarise([Diagnostic("info", "a", "x"), Diagnostic("error", "b", "y")])["counts"]
        {'error': 1, 'warning': 0, 'info': 1}
    """
    ordered = sorted(diagnostics, key=sort_key)
    counts = {s: sum(d.severity == s for d in ordered) for s in reversed(SEVERITIES)}
    return {"counts": counts, "diagnostics": [d.to_dict() for d in ordered]}


def summary_lines(record: Mapping[str, Any], *, limit: int = 10) -> list[str]:
    """A few lines for the end of a run: the counts and the most severe findings."""
    counts = record.get("counts", {})
    lines = [
        "systpipe diagnostics: "
        + ", ".join(f"{counts.get(s, 0)} {s}(s)" for s in reversed(SEVERITIES))
        + " (results/diagnostics.json)"
    ]
    for d in record.get("diagnostics", [])[:limit]:
        if d["severity"] != "info":
            lines.append(f"  [{d['severity']}] {d['check']}: {d['message']}")
    return lines


def should_fail(record: Mapping[str, Any], fail_on: str) -> bool:
    """True if the run must fail: ``fail_on`` is "never", "error" or "warning".

    Example:
        >>> rec = {"counts": {"error": 0, "warning": 2, "info": 0}}
        >>> should_fail(rec, "error"), should_fail(rec, "warning"), should_fail(rec, "never")
        (False, True, False)
    """
    counts = record.get("counts", {})
    if fail_on == "never":
        return False
    levels = SEVERITIES[SEVERITIES.index(fail_on) :]
    return any(counts.get(level, 0) for level in levels)


__all__ = [
    "SEVERITIES",
    "Diagnostic",
    "from_coverage",
    "from_fit",
    "from_table",
    "from_templates",
    "from_workspace_findings",
    "should_fail",
    "summarise",
    "summary_lines",
]
