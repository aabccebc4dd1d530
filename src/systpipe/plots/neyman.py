"""Coverage diagnostics of confidence sets as a function of the true parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..stat.neyman_diagnostics import CoverageDiagnostic
from .style import OutPath, figure_style, new_figure, save_figure


def plot_coverage(
    diag: CoverageDiagnostic, out: OutPath, *, axis: int = 0, title: str | None = None
) -> list[Path]:
    """Coverage against parameter ``axis`` with its +/-2 sigma band, one line per value of the
    other grid columns, and the nominal level; written to ``out`` (.png and/or .pdf).

    Example:
        >>> import tempfile
        >>> from systpipe.stat.neyman_diagnostics import coverage_diagnostic
        >>> rng = np.random.default_rng(0)
        >>> theta = rng.random((2000, 2))
        >>> grid = np.array([[x, y] for y in (0.2, 0.8) for x in np.linspace(0, 1, 5)])
        >>> d = coverage_diagnostic(theta, rng.random(2000) < 0.68, grid, nominal=0.6827)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     [p.name for p in plot_coverage(d, Path(tmp) / "coverage.png")]
        ['coverage.png', 'coverage.pdf']
    """
    if not 0 <= axis < diag.grid.shape[1]:
        raise ConfigError(
            f"coverage plot: axis {axis} outside the grid's parameters {list(diag.names)}"
        )
    others = np.delete(diag.grid, axis, axis=1)
    keys = np.unique(others, axis=0) if others.shape[1] else np.zeros((1, 0))
    with figure_style():
        fig, axes = new_figure()
        ax = axes[0, 0]
        for key in keys:
            rows = np.all(others == key, axis=1)
            order = np.argsort(diag.grid[rows, axis])
            x = diag.grid[rows, axis][order]
            label = ", ".join(
                f"{n} = {v:.3g}" for n, v in zip(np.delete(diag.names, axis), key, strict=True)
            )
            (line,) = ax.plot(x, diag.coverage[rows][order], marker="o", label=label or None)
            ax.fill_between(
                x, diag.lower[rows][order], diag.upper[rows][order], color=line.get_color(),
                alpha=0.2, linewidth=0,
            )  # fmt: skip
        ax.axhline(diag.nominal, color="black", linestyle="--", label=f"nominal {diag.nominal:g}")
        ax.set_xlabel(diag.names[axis])
        ax.set_ylabel("coverage (band: $\\pm 2\\sigma$)")
        ax.set_title(title or f"coverage ({diag.method}, {diag.n} sets)")
        ax.legend(fontsize="small")
        return save_figure(fig, out)


__all__ = ["plot_coverage"]
